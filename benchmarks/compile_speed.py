#!/usr/bin/env python
"""``--compile`` against eager, as vidzoo runs it (``vidzoo.engine.compile.maybe_compile``), in fp32 and
under bf16 autocast, for inference and a training step.

Each (dtype, step) cell runs in a fresh process with an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR``
a new temporary folder), so its compile time is what a first run on a machine pays; a rerun with a warm
cache compiles much faster. In the cell: one eager call, then the first compiled call (compilation
included: reported apart as ``compile (s)``), one more of each, then eager and compiled calls
alternate (A B A B ...) for ``--runs`` rounds so that load from other jobs hits both alike; best and
median of each, and the compiled output's relative error against eager's on the same input.

Examples::

    # the default: TimeSformer-S divided, 8 x 224, batch 1, fp32 and bf16, inference and training step
    python benchmarks/compile_speed.py --out benchmarks/results/compile_cpu
    # TimeSformer-B bf16 inference only
    python benchmarks/compile_speed.py --model timesformer_divided_base_patch16_224 --dtypes bf16 --modes infer
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `vidzoo` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks import _common as C
from vidzoo.engine.options import parse_overrides

MODES = ("infer", "train")


def run_cell(cfg: dict[str, Any]) -> dict[str, Any]:
    """Eager vs compiled for one (dtype, mode) in this process."""
    import vidzoo
    from vidzoo.engine.compile import maybe_compile
    device, dtype, mode = cfg["device"], cfg["dtype"], cfg["mode"]
    C.setup_torch(cfg["threads"], device)
    torch.manual_seed(0)
    model = vidzoo.create_model(cfg["model"], **cfg["overrides"]).to(device)
    x = torch.randn(cfg["batch_size"], *model.pretrained_cfg["input_size"], device=device)
    y = torch.randint(0, model.num_classes, (cfg["batch_size"],), device=device)
    notes: list[str] = []
    compiled = maybe_compile(model, backend=cfg["backend"], device=device, log=notes.append)

    if mode == "infer":
        model.eval()

        def call(m):
            def f() -> torch.Tensor:
                with torch.no_grad(), C.autocast_ctx(device, dtype):
                    return m(x)
            return f
        eager_fn, comp_fn = call(model), call(compiled)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        eager_fn, comp_fn = (C.train_step(m, x, y, opt, device, dtype) for m in (model, compiled))

    clock = C._Clock(device)
    eager_first = clock(eager_fn)
    first = clock(comp_fn)  # compiles
    out: dict[str, Any] = {"model": cfg["model"], "mode": mode, "dtype": dtype, "batch": cfg["batch_size"],
                           "threads": torch.get_num_threads(), "eager_first_s": eager_first, "compile_s": first,
                           "compiled": compiled.compiled, "fallback": compiled.fallback_reason, "notes": notes}
    if mode == "infer":
        with torch.no_grad(), C.autocast_ctx(device, dtype):
            ref, got = model(x).float(), compiled(x).float()
        out["rel_err"] = ((got - ref).norm() / ref.norm()).item()
    times = C.time_interleaved({"eager": eager_fn, "compiled": comp_fn}, device, warmup=cfg["warmup"],
                               runs=cfg["runs"])
    for k, ts in times.items():
        out[f"{k}_best_ms"] = min(ts) * 1e3
        out[f"{k}_median_ms"] = C.median(ts) * 1e3
        out[f"{k}_times_ms"] = " ".join(f"{t * 1e3:.0f}" for t in ts)
    out["speedup_best"] = out["eager_best_ms"] / out["compiled_best_ms"]
    out["speedup_median"] = out["eager_median_ms"] / out["compiled_median_ms"]
    return out


COLUMNS = [("mode", "step", ""), ("dtype", "dtype", ""), ("compile_s", "compile (s, cold cache)", ".1f"),
           ("eager_best_ms", "eager best (ms)", ".0f"), ("eager_median_ms", "eager median (ms)", ".0f"),
           ("compiled_best_ms", "compiled best (ms)", ".0f"), ("compiled_median_ms", "compiled median (ms)", ".0f"),
           ("speedup_best", "speed-up (best)", ".2f"), ("speedup_median", "speed-up (median)", ".2f"),
           ("rel_err", "rel. error vs eager", ".1e"), ("compiled", "compiled", "")]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="timesformer_divided_small_patch16_224", help="a registered name")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model overrides, e.g. num_frames=4")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"], help="bf16: autocast")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="inductor", help="torch.compile backend ('eager': dynamo tracing only)")
    p.add_argument("--warmup", type=int, default=1, help="interleaved rounds after the first calls, not recorded")
    p.add_argument("--runs", type=int, default=5, help="interleaved timed rounds (best and median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per cell process")
    p.add_argument("--no-isolate", action="store_true",
                   help="run the cells in this process (compile times then depend on the cells before)")
    p.add_argument("--out", default="benchmarks/results/compile_cpu", help="output prefix (.csv, .md, .json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = C.finish_help(p).parse_args(argv)
    if args.worker:
        C.emit_result(run_cell(json.loads(args.worker)))
        return []

    C.setup_torch(args.threads, args.device)
    state = C.machine_state()
    cmd = "python benchmarks/compile_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for dtype in args.dtypes:
        for mode in args.modes:
            cfg = dict(model=args.model, overrides=parse_overrides(args.set), batch_size=args.batch_size, dtype=dtype,
                       mode=mode, device=args.device, backend=args.backend, warmup=args.warmup, runs=args.runs,
                       threads=args.threads)
            t0 = time.perf_counter()
            try:
                if args.no_isolate:
                    import torch._dynamo
                    torch._dynamo.reset()
                    r = run_cell(cfg)
                else:
                    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
                        r = C.run_worker([str(Path(__file__).resolve()), "--worker", json.dumps(cfg)],
                                         timeout=args.timeout, env={"TORCHINDUCTOR_CACHE_DIR": cache})
            except Exception as e:  # one cell failing is a result too
                print(f"[{dtype} {mode}] FAILED: {str(e).splitlines()[-1] if str(e) else e!r}", file=sys.stderr)
                rows.append({"mode": mode, "dtype": dtype, "error": str(e).splitlines()[-1][:200] if str(e) else repr(e)})
                continue
            print(f"[{dtype} {mode}] compile {r['compile_s']:.1f} s, eager {r['eager_median_ms']:.0f} ms, compiled "
                  f"{r['compiled_median_ms']:.0f} ms (median), x{r['speedup_median']:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            rows.append(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ovr = " ".join(args.set) or "none"
    md = [f"# --compile vs eager ({args.model}, batch {args.batch_size}, {args.device}, backend {args.backend})\n",
          f"`{cmd}`\n", C.machine_markdown(state), "",
          f"Model overrides: {ovr}. Compile time: the first compiled call (compilation included) in a fresh "
          f"process with an empty inductor cache. Timed: {args.runs} rounds of eager and compiled calls "
          f"alternating after {args.warmup} untimed round(s); best and median of each. Rel. error: "
          f"||compiled - eager|| / ||eager|| of the logits on the same input.", "",
          C.markdown_table(rows, COLUMNS)]
    errors = [r for r in rows if "error" in r or r.get("fallback")]
    md += [f"\n- {r['dtype']} {r['mode']}: {r.get('error') or r.get('fallback')}" for r in errors]
    (out.with_suffix(".md")).write_text("\n".join(md) + "\n")
    C.write_csv(out.with_suffix(".csv"), rows)
    out.with_suffix(".json").write_text(json.dumps({"machine": state, "command": cmd, "rows": rows}, indent=2,
                                                   default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o)))
    print("\n".join(md))
    return rows


if __name__ == "__main__":
    main()
