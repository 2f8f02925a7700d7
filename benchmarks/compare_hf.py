#!/usr/bin/env python
"""vidzoo against HF transformers ViViT, TimeSformer and VideoMAE, same configuration, same weights.

For each pair: build the HF model (random weights, fixed seed), convert its state dict with
vidzoo's own converter (``create_model(..., pretrained=True, pretrained_cfg_overlay=dict(state_dict=...))``),
**assert logits parity** (fp32, eval), then time both alternately in one process
(vidzoo, HF, vidzoo, HF, ...) for inference and for a training step (forward + backward +
AdamW step), and measure each side's peak memory in its own fresh subprocess. The dense-matmul
rate of the device is measured in the same process before and after the timings, and each
side's achieved FLOP rate is reported as a fraction of it.

Pairs: ``vivit`` (ViViT-B/16x2 joint, 32x224, HF ``attn_implementation='sdpa'``), ``timesformer``
(TimeSformer-B divided, 8x224), ``timesformer_joint``, ``timesformer_space`` (HF
``attention_type`` joint_space_time / space_only), ``videomae`` (VideoMAE ViT-B/16x2, 16x224,
HF ``attn_implementation='sdpa'``). HF TimeSformer has a single, eager
attention implementation in transformers; that is what it is timed with.

Examples::

    python benchmarks/compare_hf.py --pairs vivit timesformer            # CPU fp32, full size
    python benchmarks/compare_hf.py --pairs timesformer --train-set depth=6   # reduced training config
    python benchmarks/compare_hf.py --device cuda --dtype bf16 --batch-size 8 --runs 10
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from benchmarks import _common as C
from vidzoo.engine.complexity import count_flops
from vidzoo.engine.options import parse_overrides

PAIRS = {
    "vivit": dict(vidzoo="vivit_joint_base_patch16x2_224", hf="vivit", hf_attn="sdpa"),
    "timesformer": dict(vidzoo="timesformer_divided_base_patch16_224", hf="timesformer",
                        attention_type="divided_space_time"),
    "timesformer_joint": dict(vidzoo="timesformer_joint_base_patch16_224", hf="timesformer",
                              attention_type="joint_space_time"),
    # HF space_only returns per-frame logits (B*T, classes): the classifier runs on every frame's class
    # token, where the official model (and vidzoo) averages the frames before the final norm and head.
    # Parity is therefore asserted on the trunk (the last block's output, (B*T, 1+N, D)), and the HF
    # training loss is the cross-entropy of the per-frame logits.
    "timesformer_space": dict(vidzoo="timesformer_space_base_patch16_224", hf="timesformer",
                              attention_type="space_only", parity="trunk"),
    # VideoMAE ViT-B/16x2, 16x224. HF is built with the original code's LayerNorm eps (1e-6, also in
    # fc_norm, where transformers hard-codes 1e-5), the eps vidzoo uses for the family.
    "videomae": dict(vidzoo="videomae_joint_base_patch16x2_224", hf="videomae", hf_attn="sdpa"),
}
# vidzoo override -> HF config field
_HF_KEYS = {"num_frames": "num_frames", "img_size": "image_size", "depth": "num_hidden_layers",
            "num_heads": "num_attention_heads", "num_classes": "num_labels"}


def hf_config(pair: str, overrides: dict[str, Any]):
    from transformers import TimesformerConfig, VideoMAEConfig, VivitConfig
    spec = PAIRS[pair]
    kw: dict[str, Any] = {"num_labels": 400}
    for k, v in overrides.items():
        if k == "embed_dim":
            kw.update(hidden_size=v, intermediate_size=4 * v)
        elif k in _HF_KEYS:
            kw[_HF_KEYS[k]] = v
        else:
            raise SystemExit(f"override {k!r} has no HF counterpart; use one of {sorted(_HF_KEYS) + ['embed_dim']}")
    if spec["hf"] == "vivit":
        return VivitConfig(attn_implementation=spec["hf_attn"], **kw)
    if spec["hf"] == "videomae":
        return VideoMAEConfig(attn_implementation=spec["hf_attn"], layer_norm_eps=1e-6, **kw)
    return TimesformerConfig(attention_type=spec["attention_type"], **kw)


def build_hf(pair: str, overrides: dict[str, Any], device: str, seed: int = 0):
    from transformers import (TimesformerForVideoClassification, VideoMAEForVideoClassification,
                              VivitForVideoClassification)
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4.x (e.g. a GPU image's)
        from transformers.modeling_utils import no_init_weights
    cfg = hf_config(pair, overrides)
    cls = {"vivit": VivitForVideoClassification, "videomae": VideoMAEForVideoClassification}.get(
        PAIRS[pair]["hf"], TimesformerForVideoClassification)
    with no_init_weights():  # every parameter is overwritten by randomize()
        model = C.randomize(cls(cfg), seed)
    if getattr(model, "fc_norm", None) is not None:
        model.fc_norm.eps = cfg.layer_norm_eps  # VideoMAE: the original code's eps (see PAIRS)
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    if not getattr(cls, "_supports_sdpa", False) and not getattr(cls, "_supports_attention_backend", False):
        impl = "eager (only implementation in transformers)"
    return model.to(device), impl


def build_vidzoo(pair: str, hf_model, device: str):
    """The vidzoo model of the HF config, with the HF weights through vidzoo's converter."""
    import vidzoo
    from vidzoo.convert import model_args_from_hf_config
    arch, args = model_args_from_hf_config(hf_model.config.to_dict())
    if arch != PAIRS[pair]["vidzoo"]:
        raise RuntimeError(f"HF config maps to {arch}, expected {PAIRS[pair]['vidzoo']}")
    sd = {k: v.detach().cpu() for k, v in hf_model.state_dict().items()}
    model = vidzoo.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd), **args)
    return model.to(device), args


def clip_for(model) -> tuple[int, ...]:
    return tuple(model.pretrained_cfg["input_size"])


def check_parity(vz, hf, x: torch.Tensor, tol: float, what: str = "logits") -> dict[str, Any]:
    """fp32 eval outputs of both on the same clip; raises if they differ by more than ``tol``
    (relative to the largest value, at least 1). ``what``: ``logits``, or ``trunk`` (the last
    block's output, for HF space_only whose head differs)."""
    vz.eval(), hf.eval()
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # GPU: the patch-embedding conv in true fp32 on both sides
    with torch.no_grad():
        if what == "trunk":
            got = []
            h = vz.blocks[-1].register_forward_hook(lambda m, i, o: got.append(o))
            vz(x)
            h.remove()
            a = got[0].float()
            b = hf(pixel_values=x.transpose(1, 2), output_hidden_states=True).hidden_states[-1].float()
        else:
            a = vz(x).float()
            b = hf(pixel_values=x.transpose(1, 2)).logits.float()
    torch.backends.cudnn.allow_tf32 = tf32
    if a.shape != b.shape:
        raise AssertionError(f"{what} parity: vidzoo shape {tuple(a.shape)} != HF shape {tuple(b.shape)}")
    diff = (a - b).abs().max().item()
    scale = max(1.0, b.abs().max().item())
    if not diff <= tol * scale:
        raise AssertionError(f"{what} parity failed: max |vidzoo - HF| = {diff:.3g} > {tol:g} x {scale:.3g}")
    return {"parity_on": what, "parity_max_abs_diff": diff, "logits_max_abs": b.abs().max().item()}


def make_step(side: str, model, x: torch.Tensor, y: torch.Tensor, device: str, dtype: str, train: bool):
    """``(step, forward)`` of one side: ``step`` is a no-grad forward or a full training step."""
    if side == "hf":
        xh = x.transpose(1, 2).contiguous()  # HF takes (B, T, C, H, W); each side gets its native layout
        fwd = lambda: model(pixel_values=xh).logits  # noqa: E731
    else:
        fwd = lambda: model(x)  # noqa: E731
    amp = lambda: C.autocast_ctx(device, dtype)  # noqa: E731
    if not train:
        model.eval()

        def step() -> None:
            with torch.no_grad(), amp():
                fwd()
        return step, fwd
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        with amp():
            out = fwd()  # HF space_only: per-frame logits, each frame gets the clip's label
            loss = F.cross_entropy(out, y.repeat_interleave(out.shape[0] // y.shape[0]))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, fwd


def low_precision_agreement(models: dict[str, Any], device: str, dtype: str, clips: int,
                            shape: tuple[int, ...]) -> dict[str, Any]:
    """Each side's logits in fp32 and under ``dtype`` autocast on ``clips`` random clips (batches of
    the benchmark's batch size): top-1 agreement and the largest logit difference. HF space_only
    gives per-frame logits, so its outputs are frames, not clips."""
    out: dict[str, Any] = {"agree_clips": clips}
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(shape, generator=g) for _ in range(-(-clips // shape[0]))]
    for side, model in models.items():
        model.eval()
        fwd = (lambda x: model(pixel_values=x.transpose(1, 2).contiguous()).logits) if side == "hf" else model
        same = total = 0
        diff = 0.0
        t_ref: list[float] = []
        t_low: list[float] = []
        for x in xs:
            x = x.to(device)
            with torch.no_grad():
                t0 = time.perf_counter()
                ref = fwd(x).float()
                t1 = time.perf_counter()
                with C.autocast_ctx(device, dtype):
                    low = fwd(x).float()
                t_low.append(time.perf_counter() - t1)
                t_ref.append(t1 - t0)
            same += int((ref.argmax(-1) == low.argmax(-1)).sum())
            total += ref.shape[0]
            diff = max(diff, (ref - low).abs().max().item())
        out[f"{side}_low_top1_agree"] = same / total
        out[f"{side}_low_max_abs_diff"] = diff
        out[f"{side}_low_outputs"] = total
        if device == "cpu":  # CPU wall times of the same calls, fp32 then low precision, alternating
            out[f"{side}_agree_fp32_ms"] = C.median(t_ref) * 1e3
            out[f"{side}_agree_low_ms"] = C.median(t_low) * 1e3
    return out


def forward_flops(fwd) -> int:
    """FLOPs of one forward (fp32 eager). A training step counts as 3x this (the MFU convention:
    backward = 2x forward), so HF's eager and vidzoo's flash attention are credited alike."""
    with torch.no_grad():
        return count_flops(fwd)[0]


# ---------------------------------------------------------------------------- memory worker


def memory_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of one side in this (fresh) process: ``steps`` calls after one warm-up."""
    C.setup_torch(cfg["threads"], cfg["device"])
    device, B = cfg["device"], cfg["batch_size"]
    torch.manual_seed(0)
    # CUDA: what other models of this process hold (--no-isolate) is not counted; 0 in a fresh process
    base = C.current_memory(device) if device.startswith("cuda") else 0
    # Memory does not depend on weight values: each side builds only its own model (random
    # init), so nothing of the other side's model is left in this process's RSS.
    if cfg["side"] == "vidzoo":
        import vidzoo
        from vidzoo.convert import model_args_from_hf_config
        arch, vz_args = model_args_from_hf_config(hf_config(cfg["pair"], cfg["overrides"]).to_dict())
        model = vidzoo.create_model(arch, **vz_args).to(device)
        in_size = clip_for(model)
    else:
        model, _ = build_hf(cfg["pair"], cfg["overrides"], device)
        c = model.config
        in_size = (c.num_channels, c.num_frames, c.image_size, c.image_size)
    x = torch.randn(B, *in_size, device=device)
    y = torch.randint(0, cfg["num_classes"], (B,), device=device)
    step, _ = make_step(cfg["side"], model, x, y, device, cfg["dtype"], cfg["mode"] == "train")
    step()  # warm-up: allocates the optimizer state in training
    with C.PeakMemory(device) as mem:
        for _ in range(cfg["steps"]):
            step()
    return {"peak_gb": C.gb(mem.peak - base), "state_gb": C.gb(mem.start - base), "step_gb": C.gb(mem.added),
            "method": mem.method}


# ------------------------------------------------------------------------------------- main


def run_pair(pair: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    device, B = args.device, args.batch_size
    rows = []
    modes = [("infer", parse_overrides(args.infer_set))] + ([("train", parse_overrides(args.train_set))]
                                                              if not args.no_train else [])
    built: dict[str, Any] = {}
    for mode, overrides in modes:
        key = json.dumps(overrides, sort_keys=True)
        torch.manual_seed(0)
        if key not in built:
            hf, impl = build_hf(pair, overrides, device)
            vz, vz_args = build_vidzoo(pair, hf, device)
            x = torch.randn(B, *clip_for(vz), device=device)
            parity = check_parity(vz, hf, x, args.tol, PAIRS[pair].get("parity", "logits"))
            print(f"[{pair} {key}] parity OK: max |diff| {parity['parity_max_abs_diff']:.2e} "
                  f"(logits up to {parity['logits_max_abs']:.2f}); HF attention: {impl}", file=sys.stderr)
            built = {key: (hf, impl, vz, x, parity)}  # keep one pair of models in memory at a time
        hf, impl, vz, x, parity = built[key]
        y = torch.randint(0, vz.num_classes, (B,), device=device)
        steps = {side: make_step(side, m, x, y, device, args.dtype, mode == "train")
                 for side, m in (("vidzoo", vz), ("hf", hf))}
        agree = (low_precision_agreement({"vidzoo": vz, "hf": hf}, device, args.dtype, args.agree_clips,
                                         (B, *clip_for(vz)))
                 if mode == "infer" and args.dtype != "fp32" and args.agree_clips else {})
        mm0 = C.matmul_rate(device, args.dtype, args.matmul_n)
        cpu_times: dict[str, list[float]] = {}
        times = C.time_interleaved({s: f for s, (f, _) in steps.items()}, device, args.warmup, args.runs, cpu_times)
        mm1 = C.matmul_rate(device, args.dtype, args.matmul_n)
        mm = (mm0["matmul_tflops"] + mm1["matmul_tflops"]) / 2
        row: dict[str, Any] = {"pair": pair, "mode": mode, "vidzoo_model": PAIRS[pair]["vidzoo"],
                               "input": "x".join(map(str, x.shape)),
                               "overrides": " ".join(f"{k}={v}" for k, v in overrides.items()) or "(paper config)",
                               "batch": B, "dtype": args.dtype, "device": device, "vidzoo_attn": "sdpa",
                               "hf_attn": impl, **parity, **agree,
                               "matmul_tflops_before": mm0["matmul_tflops"], "matmul_tflops_after": mm1["matmul_tflops"]}
        for side in ("vidzoo", "hf"):
            row[f"{side}_ms"] = C.median(times[side]) * 1e3
            row[f"{side}_times_ms"] = " ".join(f"{t * 1e3:.0f}" for t in times[side])
            row[f"{side}_cpu_ms"] = C.median(cpu_times[side]) * 1e3
            fwd_flops = forward_flops(steps[side][1])
            flops = 3 * fwd_flops if mode == "train" else fwd_flops
            row[f"{side}_gmacs_per_view"] = fwd_flops / B / 2e9
            row[f"{side}_tflops"] = flops / (row[f"{side}_ms"] / 1e3) / 1e12
            row[f"{side}_roofline"] = row[f"{side}_tflops"] / mm
        row["speedup"] = row["hf_ms"] / row["vidzoo_ms"]
        row["cpu_time_ratio"] = row["hf_cpu_ms"] / row["vidzoo_cpu_ms"]
        print(f"[{pair} {mode}] vidzoo {row['vidzoo_ms']:.0f} ms, HF {row['hf_ms']:.0f} ms -> {row['speedup']:.2f}x",
              file=sys.stderr)
        if not args.no_memory:
            for side in ("vidzoo", "hf"):
                cfg = dict(pair=pair, side=side, mode=mode, overrides=overrides, device=device, dtype=args.dtype,
                           batch_size=B, threads=args.threads, steps=args.mem_steps, num_classes=vz.num_classes)
                if args.no_isolate:
                    r = memory_worker(cfg)
                else:
                    r = C.run_worker([str(Path(__file__).resolve()), "--worker", json.dumps(cfg)], timeout=args.timeout,
                                     env=C.memory_worker_env(device))
                row[f"{side}_peak_gb"] = r["peak_gb"]
                row[f"{side}_state_gb"] = r["state_gb"]
                row[f"{side}_step_gb"] = r["step_gb"]
                row["mem_method"] = r["method"] + (", own subprocess per side" if not args.no_isolate else ", in-process")
            row["peak_ratio"] = row["vidzoo_peak_gb"] / row["hf_peak_gb"]
            ev, eh = row["vidzoo_step_gb"], row["hf_step_gb"]
            row["step_ratio"] = ev / eh if eh > 0 else None
            print(f"[{pair} {mode}] peak vidzoo {row['vidzoo_peak_gb']:.2f} GB, HF {row['hf_peak_gb']:.2f} GB",
                  file=sys.stderr)
        rows.append(row)
    return rows


COLUMNS = [("pair", "pair", ""), ("mode", "mode", ""), ("input", "input (B,C,T,H,W)", ""), ("overrides", "config", ""),
           ("hf_attn", "HF attention", ""), ("parity_on", "parity on", ""), ("parity_max_abs_diff", "max abs diff", ".1e"),
           ("vidzoo_ms", "vidzoo (ms)", ".0f"), ("hf_ms", "HF (ms)", ".0f"), ("speedup", "HF/vidzoo time", ".3f"), ("cpu_time_ratio", "HF/vidzoo CPU time", ".3f"),
           ("vidzoo_roofline", "vidzoo % matmul peak", ".0%"), ("hf_roofline", "HF % matmul peak", ".0%"),
           ("vidzoo_peak_gb", "vidzoo peak (GB)", ".2f"), ("hf_peak_gb", "HF peak (GB)", ".2f"),
           ("peak_ratio", "peak vidzoo/HF", ".3f"), ("vidzoo_step_gb", "vidzoo step memory (GB)", ".2f"),
           ("hf_step_gb", "HF step memory (GB)", ".2f"), ("step_ratio", "step memory vidzoo/HF", ".3f"),
           ("vidzoo_agree_fp32_ms", "vidzoo fp32 (ms)", ".0f"), ("hf_agree_fp32_ms", "HF fp32 (ms)", ".0f"),
           ("vidzoo_low_top1_agree", "vidzoo top-1 = fp32", ".0%"), ("hf_low_top1_agree", "HF top-1 = fp32", ".0%"),
           ("vidzoo_low_max_abs_diff", "vidzoo max |logit diff| vs fp32", ".3f"),
           ("hf_low_max_abs_diff", "HF max |logit diff| vs fp32", ".3f")]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="+", default=["vivit", "timesformer"], choices=sorted(PAIRS))
    p.add_argument("--infer-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"config overrides for inference, applied to both sides ({', '.join(_HF_KEYS)}, embed_dim)")
    p.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for the training step (e.g. a reduced config on a small CPU)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast (parity is checked in fp32)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="timed calls per side, interleaved; medians reported")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tol", type=float, default=1e-4, help="parity tolerance relative to max(1, max |logit|)")
    p.add_argument("--agree-clips", type=int, default=4,
                   help="--dtype bf16: random clips on which each side's bf16 and fp32 logits are compared "
                        "(top-1 agreement, max |diff|); 0 skips")
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--mem-steps", type=int, default=1, help="calls measured for peak memory, after one warm-up "
                                                            "call (which allocates the optimizer state)")
    p.add_argument("--no-isolate", action="store_true", help="memory in this process (VmHWM reset), not subprocesses")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--matmul-n", type=int, default=None,
                   help="roofline: time one n x n matmul (default: best of C.CPU_MATMUL_SHAPES / GPU_MATMUL_SHAPES)")
    p.add_argument("--out", default="benchmarks/results/compare_hf")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = C.finish_help(p).parse_args(argv)
    if args.worker:
        C.emit_result(memory_worker(json.loads(args.worker)))
        return []

    C.setup_torch(args.threads, args.device)
    state = C.machine_state()
    cmd = "python benchmarks/compare_hf.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    rows = []
    for pair in args.pairs:
        rows += run_pair(pair, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = [f"# vidzoo vs HF transformers ({args.device}, {args.dtype}, batch {args.batch_size})\n", f"`{cmd}`\n",
          C.machine_markdown(state), "",
          f"Logits parity asserted first (fp32, eval, tolerance {args.tol:g} x max(1, max |logit|)). Timings interleaved "
          f"vidzoo/HF in one process: {args.warmup} warm-up + {args.runs} timed calls each, medians. Training step = "
          f"forward + cross-entropy + backward + AdamW step. Peak memory: {rows[0].get('mem_method', '-') if rows else '-'}"
          f", 1 warm-up + {args.mem_steps} measured calls; 'step memory' is the peak above the memory live between calls "
          f"(runtime, weights, optimizer state). HF/vidzoo time > 1 means vidzoo is faster. Total {time.perf_counter() - t0:.0f} s.",
          "", C.markdown_table(rows, COLUMNS)]
    C.write_csv(out.with_suffix(".csv"), rows)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "machine": state, "rows": rows}, indent=1))
    print("\n".join(md))
    return rows


if __name__ == "__main__":
    main()
