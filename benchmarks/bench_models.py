#!/usr/bin/env python
"""Speed, memory and FLOPs of registered vidzoo models.

For every model matching the filters: parameters, GMACs per view (multiply-adds, as the papers
report them; counted with ``torch.utils.flop_counter``), inference latency and throughput,
training-step time (forward + backward + AdamW step), peak memory (CUDA allocator peak on a
GPU, process RSS high-water mark on CPU), optionally the same training step with gradient
checkpointing, and the share of forward time spent in matmul / attention kernels. Each model's
achieved FLOP rate is reported as a fraction of the dense-matmul rate measured in the same
process just before it (the roofline).

Each (model, mode) runs in a fresh subprocess by default, so a peak-RSS figure belongs to one
model and one mode only.

Examples::

    # CPU fp32, the TimeSformer-B family, 1 warm-up + 3 timed runs, with grad-checkpointing rows
    python benchmarks/bench_models.py --models 'timesformer_*_base_patch16_224' --grad-ckpt --profile
    # GPU bf16 with torch.compile
    python benchmarks/bench_models.py --models 'vivit_*_base_patch16x2_224' --device cuda --dtype bf16 \
        --batch-size 8 --compile --warmup 3 --runs 10
    # paper fidelity table (parameters and GMACs only, no timing)
    python benchmarks/bench_models.py --fidelity
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `vidzoo` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from benchmarks import _common as C
from vidzoo.engine.compile import maybe_compile
from vidzoo.engine.complexity import MetaInit, count_flops
from vidzoo.engine.options import parse_overrides
from vidzoo.models.tables import PAPER_FIGURES

MODES = ("infer", "train", "train_ckpt")


# ----------------------------------------------------------------------------------- worker


def _build(name: str, overrides: dict[str, Any], device: str):
    import vidzoo
    model = vidzoo.create_model(name, **overrides).to(device)
    C_, T, H, W = model.pretrained_cfg["input_size"]
    return model, (C_, T, H, W)


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    """Measure one model in one mode (``infer``, ``train`` or ``train_ckpt``) in this process.

    ``cfg["measure"]``: ``"time"`` (timing, FLOPs, profile), ``"memory"`` (one warm-up call, then
    the peak over one more) or ``"both"`` (in one process, for ``--no-isolate``).
    """
    import vidzoo
    device, dtype, mode, B = cfg["device"], cfg["dtype"], cfg["mode"], cfg["batch_size"]
    C.setup_torch(cfg.get("threads"), device)
    vidzoo.set_fused_attn(not cfg.get("eager_attn", False))
    torch.manual_seed(0)
    what = cfg.get("measure", "both")
    out: dict[str, Any] = {"model": cfg["model"], "mode": mode}
    if what != "memory":  # roofline of this process, right before the model runs
        out.update(C.matmul_rate(device, dtype, cfg.get("matmul_n")))
    model, in_size = _build(cfg["model"], cfg["overrides"], device)
    out["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    out["input"] = "x".join(map(str, (B, *in_size)))
    x = torch.randn(B, *in_size, device=device)
    y = torch.randint(0, max(model.num_classes, 1), (B,), device=device)
    run_model = maybe_compile(model, bool(cfg.get("compile")), device=device)  # as --compile runs it
    amp = lambda: C.autocast_ctx(device, dtype)  # noqa: E731

    if mode == "infer":
        model.eval()

        def step() -> None:
            with torch.no_grad(), amp():
                run_model(x)
    else:
        model.train()
        model.set_grad_checkpointing(mode == "train_ckpt")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        step = C.train_step(run_model, x, y, opt, device, dtype)

    t_first = time.perf_counter()
    step()  # first call: compiles under --compile, allocates the optimizer state in training
    t_first = time.perf_counter() - t_first
    if what != "time":
        # ``start``: the state carried between steps (runtime, weights, optimizer state; gradients
        # freed); ``peak - start``: what one step adds on top (activations, gradients, temporaries).
        with C.PeakMemory(device) as mem:
            step()
        out["peak_mem_gb"] = C.gb(mem.peak)
        out["state_mem_gb"] = C.gb(mem.start)
        out["step_mem_gb"] = C.gb(mem.added)
        out["mem_method"] = mem.method
        if what == "memory":
            return out
    cpu_times: list[float] = []
    times = C.time_fn(step, device, max(cfg["warmup"] - 1, 0), cfg["runs"], cpu_times)
    out["first_call_s"] = t_first
    out["times_s"] = times
    out["median_s"] = C.median(times)
    out["median_cpu_s"] = C.median(cpu_times)
    out["clips_per_s"] = B / out["median_s"]

    # FLOPs in fp32 eager (the count does not depend on dtype or compile), batch B, per view = / B.
    # Training uses the model-FLOPs convention of MFU: 3x the forward (backward = 2x), whatever the
    # kernels recompute; the fwd+bwd count of the flop counter is kept as ``flops_counted``.
    if mode != "train_ckpt":
        model.set_grad_checkpointing(False)

        def fwd_count() -> None:
            with torch.no_grad():
                model(x)
        fwd_flops, by_op = count_flops(fwd_count)
        out["gmacs_per_view"] = fwd_flops / B / 2e9
        out["flops_by_op"] = {k: v / B for k, v in by_op.items()}
        if mode == "infer":
            flops = fwd_flops
        else:
            flops = 3 * fwd_flops
            counted, _ = count_flops(lambda: F.cross_entropy(model(x), y).backward())
            model.zero_grad(set_to_none=True)
            out["flops_counted_per_view"] = counted / B
        out["flops_per_view"] = flops / B
        out["achieved_tflops"] = flops / out["median_s"] / 1e12
        out["roofline_frac"] = out["achieved_tflops"] / out["matmul_tflops"]

    if mode == "infer" and cfg.get("profile"):
        model.eval()

        def fwd() -> None:
            with torch.no_grad(), amp():
                run_model(x)
        out.update(C.profile_forward(fwd, device))
    return out


# ----------------------------------------------------------------------------------- driver


def measure(cfg: dict[str, Any], isolate: bool, timeout: float | None = None) -> dict[str, Any]:
    """Timing and memory of one (model, mode); with ``isolate`` each in its own fresh process, the
    memory one with :data:`C.MEMORY_WORKER_ENV` on CPU (RSS = live memory)."""
    if not isolate:
        return run_one(dict(cfg, measure="both"))
    worker = [str(Path(__file__).resolve()), "--worker"]
    out = C.run_worker(worker + [json.dumps(dict(cfg, measure="time"))], timeout=timeout)
    mem = C.run_worker(worker + [json.dumps(dict(cfg, measure="memory"))], timeout=timeout,
                       env=C.memory_worker_env(cfg["device"]))
    out.update({k: mem[k] for k in ("peak_mem_gb", "state_mem_gb", "step_mem_gb", "mem_method")})
    return out


def collect(models: list[str], args: argparse.Namespace, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    modes = [m for m in MODES if (m == "infer" and not args.no_infer) or (m == "train" and not args.no_train)
             or (m == "train_ckpt" and args.grad_ckpt)]
    rows = []
    for name in models:
        row: dict[str, Any] = {"model": name, "batch": args.batch_size, "dtype": args.dtype, "device": args.device,
                               "compile": args.compile, "attn": "eager" if args.eager_attn else "sdpa",
                               "overrides": " ".join(f"{k}={v}" for k, v in overrides.items())}
        for mode in modes:
            cfg = dict(model=name, mode=mode, overrides=overrides, device=args.device, dtype=args.dtype,
                       batch_size=args.batch_size, warmup=args.warmup, runs=args.runs, compile=args.compile,
                       threads=args.threads, profile=args.profile, eager_attn=args.eager_attn, matmul_n=args.matmul_n)
            t0 = time.perf_counter()
            try:
                r = measure(cfg, not args.no_isolate, args.timeout)
            except Exception as e:  # keep going: one model failing (e.g. out of memory) is a result too
                print(f"[{name} {mode}] FAILED: {str(e).splitlines()[-1] if str(e) else e!r}", file=sys.stderr)
                row[f"{mode}_error"] = str(e).splitlines()[-1][:200] if str(e) else repr(e)
                continue
            print(f"[{name} {mode}] {r['median_s'] * 1e3:.1f} ms median of {len(r['times_s'])}, peak "
                  f"{r['peak_mem_gb']:.2f} GB, matmul {r['matmul_tflops']:.3f} TFLOP/s "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            row.setdefault("params_m", r["params_m"])
            row.setdefault("input", r["input"])
            row.setdefault("mem_method", r["mem_method"])
            p = {"infer": "infer", "train": "train", "train_ckpt": "ckpt"}[mode]
            row[f"{p}_ms"] = r["median_s"] * 1e3
            row[f"{p}_clips_s"] = r["clips_per_s"]
            row[f"{p}_times_ms"] = " ".join(f"{t * 1e3:.1f}" for t in r["times_s"])
            row[f"{p}_cpu_util"] = r["median_cpu_s"] / r["median_s"]  # cores busy on average
            row[f"{p}_peak_gb"] = r["peak_mem_gb"]
            row[f"{p}_state_gb"] = r["state_mem_gb"]
            row[f"{p}_step_gb"] = r["step_mem_gb"]
            row[f"{p}_matmul_tflops"] = r["matmul_tflops"]
            row[f"{p}_first_call_s"] = r["first_call_s"]
            if "gmacs_per_view" in r:
                if mode == "infer":
                    row["gmacs"] = r["gmacs_per_view"]
                    row["gflops"] = 2 * r["gmacs_per_view"]
                else:
                    row["train_gflops"] = r["flops_per_view"] / 1e9
                    row["train_gflops_counted"] = r["flops_counted_per_view"] / 1e9
                row[f"{p}_tflops"] = r["achieved_tflops"]
                row[f"{p}_roofline"] = r["roofline_frac"]
            if "math_share" in r:
                row["math_share"] = r["math_share"]
                row["overhead_share"] = r["overhead_share"]
                row["top_overhead"] = r["top_overhead"]
        if "train_peak_gb" in row and "ckpt_peak_gb" in row:
            row["ckpt_peak_ratio"] = row["ckpt_peak_gb"] / row["train_peak_gb"]
            step, step_ck = row["train_step_gb"], row["ckpt_step_gb"]
            row["ckpt_step_ratio"] = step_ck / step if step > 0 else None
        ref = PAPER_FIGURES.get(name)
        if ref and not overrides and "gmacs" in row:
            row["paper_gmacs"] = ref.gmacs
            row["paper_params_m"] = ref.params_m
        rows.append(row)
    return rows


SPEED_COLUMNS = [("model", "model", ""), ("input", "input (B,C,T,H,W)", ""), ("params_m", "params (M)", ".1f"),
                 ("gmacs", "GMACs/view", ".1f"), ("infer_ms", "infer latency (ms)", ".0f"),
                 ("infer_clips_s", "infer clips/s", ".3g"), ("infer_cpu_util", "cores busy (CPU s / wall s)", ".2f"), ("infer_roofline", "infer % of matmul peak", ".0%"),
                 ("infer_peak_gb", "infer peak mem (GB)", ".2f"), ("train_ms", "train step (ms)", ".0f"),
                 ("train_roofline", "train % of matmul peak", ".0%"), ("train_peak_gb", "train peak mem (GB)", ".2f"),
                 ("train_step_gb", "of which the step (GB)", ".2f"),
                 ("ckpt_ms", "ckpt train step (ms)", ".0f"), ("ckpt_peak_gb", "ckpt train peak (GB)", ".2f"),
                 ("ckpt_step_gb", "of which the step (GB)", ".2f"),
                 ("ckpt_peak_ratio", "ckpt/plain peak", ".2f"), ("ckpt_step_ratio", "ckpt/plain step memory", ".2f"),
                 ("math_share", "fwd time in matmul/attn", ".1%"), ("top_overhead", "largest overheads", "")]

FIDELITY_COLUMNS = [("model", "model", ""), ("paper", "paper model", ""), ("params_m", "params (M)", ".2f"),
                    ("paper_params_m", "paper params (M)", ".1f"), ("params_diff", "diff", "+.2%"),
                    ("gmacs", "GMACs/view (counted)", ".1f"), ("paper_gmacs", "paper GMACs/view", ".1f"),
                    ("gmacs_diff", "diff", "+.2%"), ("attn_gmacs", "of which attention", ".1f")]


def fidelity(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Parameters and GMACs per view of the paper models next to the papers' figures.

    Counted on the meta device (shapes only: no memory, no compute; the same ops and counts as a
    CPU forward, checked on the ViViT and TimeSformer rows), heads at 400 classes."""
    import vidzoo
    C.setup_torch(args.threads, "cpu")
    rows = []
    for name, ref in PAPER_FIGURES.items():
        with MetaInit():
            model = vidzoo.create_model(name, num_classes=400).eval()
        x = torch.empty(1, *model.pretrained_cfg["input_size"], device="meta")

        def fwd() -> None:
            with torch.no_grad():
                model(x)
        flops, by_op = count_flops(fwd)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        attn = sum(v for k, v in by_op.items() if "attention" in k or "bmm" in k) / 2e9
        rows.append(dict(model=name, paper=ref.paper, params_m=params, paper_params_m=ref.params_m,
                         params_diff=params / ref.params_m - 1, gmacs=flops / 2e9, paper_gmacs=ref.gmacs,
                         gmacs_diff=flops / 2e9 / ref.gmacs - 1 if ref.gmacs else None, attn_gmacs=attn,
                         flops_by_op=json.dumps({k: round(v / 2e9, 3) for k, v in by_op.items()})))
        print(f"{name}: {params:.2f}M params, {flops / 2e9:.1f} GMACs/view", file=sys.stderr)
        del model
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["timesformer_divided_base_patch16_224"],
                   help="fnmatch filters over vidzoo.list_models() (default: TimeSformer-B divided)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model overrides for every model, e.g. num_frames=8 depth=4 img_size=112")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (as vidzoo's --compile does)")
    p.add_argument("--eager-attn", action="store_true", help="vidzoo.set_fused_attn(False) (default: SDPA)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls (the first one also allocates / compiles)")
    p.add_argument("--runs", type=int, default=3, help="timed calls; the median is reported")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--no-infer", action="store_true")
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--grad-ckpt", action="store_true", help="also a training step with set_grad_checkpointing(True)")
    p.add_argument("--profile", action="store_true", help="torch.profiler: share of forward time in matmul/attention")
    p.add_argument("--no-isolate", action="store_true",
                   help="measure in this process (peak memory then needs /proc clear_refs; default: one subprocess "
                        "per model and mode)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per subprocess")
    p.add_argument("--matmul-n", type=int, default=None,
                   help="roofline: time one n x n matmul (default: best of C.CPU_MATMUL_SHAPES / GPU_MATMUL_SHAPES)")
    p.add_argument("--fidelity", action="store_true", help="only the paper fidelity table (params, GMACs)")
    p.add_argument("--out", default="benchmarks/results/bench_models", help="output prefix (.csv, .md, .json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = C.finish_help(p).parse_args(argv)

    if args.worker:
        C.emit_result(run_one(json.loads(args.worker)))
        return []

    C.setup_torch(args.threads, args.device)
    state = C.machine_state()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/bench_models.py " + " ".join(sys.argv[1:] if argv is None else argv)

    if args.fidelity:
        rows = fidelity(args)
        md = [f"# vidzoo vs paper: parameters and GMACs per view\n", f"`{cmd}`\n", C.machine_markdown(state), "",
              C.markdown_table(rows, FIDELITY_COLUMNS), "",
              "GMACs counted with torch.utils.flop_counter (matmuls, convolutions, attention; LayerNorm, softmax, "
              "GELU and adds not counted) at batch 1; multiply-adds = FLOPs / 2. Heads at 400 classes."]
    else:
        import vidzoo
        models = vidzoo.list_models(args.models)
        if not models:
            raise SystemExit(f"no registered model matches {args.models}")
        overrides = parse_overrides(args.set)
        rows = collect(models, args, overrides)
        md = [f"# vidzoo model benchmark ({args.device}, {args.dtype}, batch {args.batch_size}"
              f"{', torch.compile' if args.compile else ''})\n", f"`{cmd}`\n", C.machine_markdown(state), "",
              f"Warm-up {args.warmup}, timed runs {args.runs}, medians. Memory: "
              f"{rows[0].get('mem_method', '-') if rows else '-'}"
              f"{', timing and memory each in a fresh subprocess per model and mode' if not args.no_isolate else ', in one process'}. "
              f"Peak memory is absolute (runtime, weights, optimizer state, activations); 'of which the step' "
              f"is the peak above the memory live between steps (runtime, weights, optimizer state), i.e. "
              f"activations, gradients and temporaries. "
              f"Roofline: the best dense {args.dtype} matmul rate over a few shapes, measured in the same process "
              f"before each model (median over the processes "
              f"{C.median(r.get('infer_matmul_tflops', r.get('train_matmul_tflops', float('nan'))) for r in rows):.3f} TFLOP/s).",
              "", C.markdown_table(rows, SPEED_COLUMNS)]
    C.write_csv(out.with_suffix(".csv"), rows)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "machine": state, "rows": rows}, indent=1))
    print("\n".join(md))
    print(f"\nwrote {out}.csv / .md / .json", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
