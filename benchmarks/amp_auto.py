#!/usr/bin/env python
"""``--amp auto`` on this CPU: what it chooses and why, and what the choice is worth against ``--amp none``.

1. The choice: the CPU's flags, the start-up probe (measured afresh into a temporary cache, then
   ``--probes`` more times to show its spread) and the line ``--amp auto`` says.
2. A tiny model's training epoch: the demo's model and data (``vidzoo demo``: ViViT width 64, one block,
   8 x 32 x 32 clips of motion videos, batch 16, frames cached in memory, one thread), ``train()`` with
   ``amp="auto"``, ``"none"`` and ``"bf16"`` (forced) in turn, ``--rounds`` runs each; the first epoch
   of each run (decoding into the cache) is left out; best and median epoch time.
3. Inference of ``--infer-model`` (default TimeSformer-S divided, 8 x 224), fp32 and under the autocast
   ``auto`` chose, calls alternating; best and median; the logits' relative difference.

Example::

    python benchmarks/amp_auto.py --out benchmarks/results/amp_auto_cpu
"""
from __future__ import annotations

import argparse
import json
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


def measure_choice(probes: int) -> dict[str, Any]:
    from vidzoo.engine import precision as P
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("VIDZOO_CACHE")
        os.environ["VIDZOO_CACHE"] = cache
        try:
            t0 = time.perf_counter()
            choice = P.choose_amp("auto", torch.device("cpu"))
            first_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            P.choose_amp("auto", torch.device("cpu"))
            cached_s = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("VIDZOO_CACHE")
            else:
                os.environ["VIDZOO_CACHE"] = old
    flags = P.cpu_flags() or frozenset()
    spread = [P.run_bf16_probe().speedup for _ in range(probes)]
    return {"line": choice.line(), "dtype": choice.name, "native_flags": [f for f in P.NATIVE_BF16_FLAGS if f in flags],
            "decision_s_first": first_s, "decision_s_cached": cached_s,
            "probe": choice.record().get("probe"), "probe_speedups": spread}


def measure_epochs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from vidzoo.data import make_motion_dataset
    from vidzoo.engine.config import TrainConfig
    from vidzoo.engine.demo import DEMO_MODEL, DEMO_OVERRIDES
    from vidzoo.engine.trainer import train
    data = work / "motion"
    if not (data / "train").is_dir():
        make_motion_dataset(data, 4, args.videos_per_class, 16, (32, 32), split="train")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.train_threads)
    epochs: dict[str, list[float]] = {"auto": [], "none": [], "bf16": []}
    loss: dict[str, list[float]] = {"auto": [], "none": [], "bf16": []}
    chosen, reason = {}, ""
    try:
        for r in range(args.rounds):
            for amp in epochs:
                cfg = TrainConfig(model=DEMO_MODEL, data=str(data / "train"), output=str(work / f"run_{amp}"), epochs=args.epochs,
                                  batch_size=16, lr=2e-3, warmup_epochs=1, model_overrides=dict(DEMO_OVERRIDES),
                                  num_frames=8, img_size=32, sampling="dense", frame_stride=2, hflip=0.0,
                                  crop_scale=(1.0, 1.0), cache_videos=True, overwrite=True, seed=r, progress=False,
                                  amp=amp)
                res = train(cfg)
                precision = json.loads((work / f"run_{amp}" / "train_config.json").read_text())["precision"]
                chosen[amp] = precision["dtype"]
                reason = precision["reason"] if amp == "auto" else reason
                epochs[amp] += [h["time_s"] for h in res.history[1:]]
                loss[amp].append(res.history[-1]["train_loss"])
                print(f"[epoch] round {r + 1} --amp {amp} ({chosen[amp]}): "
                      + " ".join(f"{h['time_s']:.2f}" for h in res.history) + " s", file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
    out: dict[str, Any] = {"threads": args.train_threads, "clips": 4 * args.videos_per_class, "chosen": chosen,
                           "auto_reason": reason, "final_train_loss": loss}
    for amp, ts in epochs.items():
        out[f"{amp}_best_s"], out[f"{amp}_median_s"], out[f"{amp}_epochs_s"] = min(ts), C.median(ts), ts
    for amp in ("auto", "bf16"):
        out[f"{amp}_speedup_best"] = out["none_best_s"] / out[f"{amp}_best_s"]
        out[f"{amp}_speedup_median"] = out["none_median_s"] / out[f"{amp}_median_s"]
    return out


def measure_inference(args: argparse.Namespace) -> dict[str, Any]:
    import vidzoo
    from vidzoo.engine.precision import autocast_context, choose_amp
    dev = torch.device("cpu")
    torch.manual_seed(0)
    model = vidzoo.create_model(args.infer_model, **parse_overrides(args.infer_set)).eval()
    auto = choose_amp("auto", dev, model=model, batch=args.infer_batch)
    x = torch.randn(args.infer_batch, *model.pretrained_cfg["input_size"])

    def call(dtype):
        def f() -> torch.Tensor:
            with torch.no_grad(), autocast_context(dev, dtype):
                return model(x)
        return f
    fns = {"auto": call(auto.dtype), "none": call(None)}
    ref, got = fns["none"]().float(), fns["auto"]().float()
    times = C.time_interleaved(fns, "cpu", warmup=1, runs=args.infer_runs)
    out: dict[str, Any] = {"model": args.infer_model, "input": "x".join(map(str, x.shape)), "auto": auto.name,
                           "auto_reason": auto.reason,
                           "threads": torch.get_num_threads(),
                           "rel_diff": ((got - ref).norm() / ref.norm()).item()}
    for k, ts in times.items():
        out[f"{k}_best_ms"], out[f"{k}_median_ms"] = min(ts) * 1e3, C.median(ts) * 1e3
        out[f"{k}_times_ms"] = " ".join(f"{t * 1e3:.0f}" for t in ts)
    out["speedup_best"] = out["none_best_ms"] / out["auto_best_ms"]
    out["speedup_median"] = out["none_median_ms"] / out["auto_median_ms"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=5, help="extra probe runs (their spread)")
    p.add_argument("--videos-per-class", type=int, default=100, help="training videos of each of the 4 classes")
    p.add_argument("--epochs", type=int, default=4, help="epochs per training run (the first is not counted)")
    p.add_argument("--rounds", type=int, default=3, help="training runs per --amp value, alternating")
    p.add_argument("--train-threads", type=int, default=1, help="torch threads of the training runs (the demo's)")
    p.add_argument("--infer-model", default="timesformer_divided_small_patch16_224")
    p.add_argument("--infer-set", nargs="*", default=[], metavar="KEY=VALUE", help="inference model overrides")
    p.add_argument("--infer-batch", type=int, default=1)
    p.add_argument("--infer-runs", type=int, default=5, help="timed rounds of the inference calls")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the inference calls (0: torch's default)")
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--no-infer", action="store_true")
    p.add_argument("--work", help="folder for the generated videos and runs (default: a temporary one)")
    p.add_argument("--out", default="benchmarks/results/amp_auto_cpu", help="output prefix (.md, .json)")
    args = C.finish_help(p).parse_args(argv)

    C.setup_torch(args.threads, "cpu")
    state = C.machine_state()
    cmd = "python benchmarks/amp_auto.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res: dict[str, Any] = {"machine": state, "command": cmd, "choice": measure_choice(args.probes)}
    print(f"[choice] {res['choice']['line']}", file=sys.stderr)
    if not args.no_infer:
        res["inference"] = measure_inference(args)
    if not args.no_train:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.work) if args.work else Path(tmp)
            res["epoch"] = measure_epochs(args, work)

    ch = res["choice"]
    md = [f"# --amp auto on this CPU\n", f"`{cmd}`\n", C.machine_markdown(state), "",
          f"- native bf16 flags: {', '.join(ch['native_flags']) or 'none'}",
          f"- `--amp auto` says: `{ch['line']}`",
          f"- decision time: {ch['decision_s_first'] * 1e3:.0f} ms with the probe, "
          f"{ch['decision_s_cached'] * 1e3:.1f} ms from the cache",
          f"- probe speed-up (bf16 / fp32 block), {len(ch['probe_speedups'])} more runs: "
          + ", ".join(f"{s:.2f}" for s in ch["probe_speedups"])]
    if "inference" in res:
        i = res["inference"]
        md += ["", f"## Inference: {i['model']}, input {i['input']}, {i['threads']} threads (auto = {i['auto']})", "",
               "| --amp | best (ms) | median (ms) | runs (ms) |", "|---|---|---|---|"]
        md += [f"| {k} | {i[f'{k}_best_ms']:.0f} | {i[f'{k}_median_ms']:.0f} | {i[f'{k}_times_ms']} |" for k in ("none", "auto")]
        md += ["", f"Speed-up of auto: {i['speedup_best']:.2f}x (best), {i['speedup_median']:.2f}x (median); "
                   f"logits' relative difference {i['rel_diff']:.1e}. Auto's reason: {i['auto_reason']}."]
    if "epoch" in res:
        e = res["epoch"]
        md += ["", f"## Training epoch: the demo's model and data ({e['clips']} clips of 8x32x32, batch 16, "
                   f"{e['threads']} thread(s), auto = {e['chosen'].get('auto')})", "",
               "| --amp | best (s) | median (s) | epochs (s) | final train loss per run |", "|---|---|---|---|---|"]
        md += [f"| {k} ({e['chosen'][k]}) | {e[f'{k}_best_s']:.2f} | {e[f'{k}_median_s']:.2f} | "
               f"{' '.join(f'{t:.2f}' for t in e[f'{k}_epochs_s'])} | "
               f"{' '.join(f'{v:.3f}' for v in e['final_train_loss'][k])} |" for k in ("none", "auto", "bf16")]
        md += ["", f"Speed-up over none: auto {e['auto_speedup_best']:.2f}x (best), {e['auto_speedup_median']:.2f}x "
                   f"(median); bf16 forced {e['bf16_speedup_best']:.2f}x (best), {e['bf16_speedup_median']:.2f}x "
                   f"(median). Auto's reason: {e['auto_reason']}."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str))
    print("\n".join(md))
    return res


if __name__ == "__main__":
    main()
