#!/usr/bin/env python
"""Start-up time of the ``vidzoo`` command: wall clock of ``python -m vidzoo ARGS`` from process
start to exit, for ``--help``, ``<cmd> --help``, ``list`` and ``info``, each run ``--runs`` times in
a fresh process (after one untimed warm-up run that fills the OS file cache). The median and the
best run are reported; on a shared machine the best run is the less noisy of the two.

Examples::

    python benchmarks/startup.py                       # the default commands, 5 runs each
    python benchmarks/startup.py --runs 9 --out benchmarks/results/startup
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (
    ("--help",),
    ("train", "--help"),
    ("list",),
    ("info", "vivit_joint_tiny_patch16x2_224"),
)


def time_command(args: tuple[str, ...], runs: int, env: dict[str, str]) -> list[float]:
    """Seconds of ``runs`` executions of ``python -m vidzoo *args`` (after one untimed run)."""
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vidzoo", *args], capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"vidzoo {' '.join(args)} failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")
        if i:
            times.append(dt)
    return times


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="timed runs per command (after one untimed warm-up)")
    p.add_argument("--out", default=None, help="output prefix: writes PREFIX.json and PREFIX.md")
    args = p.parse_args(argv)
    env = dict(os.environ)
    rows = []
    for cmd in COMMANDS:
        ts = time_command(cmd, args.runs, env)
        rows.append({"command": "vidzoo " + " ".join(cmd), "median_s": statistics.median(ts), "best_s": min(ts),
                     "runs_s": ts})
        print(f"{rows[-1]['command']:<48} median {rows[-1]['median_s']:.2f} s   best {rows[-1]['best_s']:.2f} s",
              flush=True)
    if args.out:
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        meta = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "loadavg_after": load, "runs": args.runs}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        lines = ["| command | median (s) | best (s) |", "|---|---|---|"]
        lines += [f"| `{r['command']}` | {r['median_s']:.2f} | {r['best_s']:.2f} |" for r in rows]
        Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
