#!/usr/bin/env python
"""One prepared accelerator check of vidzoo, sized to a short GPU lease (at most 6 minutes on one H200).

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT                         # the GPU run
    PYTHONPATH=. python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gc    # CPU dry run (< 60 s)

Writes ``gpu_check.json`` (rewritten after every section, so a run stopped at its limit still leaves
what it measured), ``gpu_check.md`` and ``gpu_check.log`` into ``--out``. Needs nothing beyond torch,
timm, einops, safetensors, huggingface_hub and transformers (no PyAV: the training data is an npz made
on the spot). Sections, each guarded (a failure or a time-out is recorded with its error and the next
section runs) and each with a wall-clock limit:

- ``env``: versions, GPU, SDPA backends available, the device's dense-matmul rate (bf16, fp32).
- ``correctness``: every attention variant x tokenizer (tiny configs), forward and backward on the
  device in fp32 (TF32 off) and in bf16 autocast, against the same model in CPU fp32.
- ``sdpa_kernels``: which SDPA kernel runs in bf16 (and fp32), read from ``torch.profiler`` op and
  kernel names, for every attention variant and two base models; every backend
  ``torch.nn.attention.sdpa_kernel`` can force, against the math backend.
- ``grad_checkpointing``: same gradients with ``set_grad_checkpointing(True)`` (and the blocks really
  recomputed); on a GPU also TimeSformer-B's bf16 training peak with and without it.
- ``hf_speed``: ``compare_hf.py`` (parity asserted first) for TimeSformer-B divided 8x224, ViViT-B
  32x224 and VideoMAE-B when that pair exists: bf16, batch 8, inference and training step, CUDA-event
  medians, peak memory, MFU; read against the targets.
- ``torchrun``: ``python -m torch.distributed.run --nproc_per_node 1 -m vidzoo train`` on an npz of
  random volumes; then the same training with an NCCL process group up (vidzoo starts one only for
  world_size > 1, as timm does), plus DDP steps of every attention variant over NCCL.
- ``compile``: ``torch.compile`` of TimeSformer-B as ``--compile`` runs it (``vidzoo.engine.compile.
  maybe_compile``; bf16 inference, then a training step if time is left): compiled without an eager
  fallback, compile time, speed-up over eager, same logits.

Exit status 1 when any check failed or a section did not finish; 0 when all passed. Speed targets
that are missed are reported, not failed.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks import _common as C

REPO = Path(__file__).resolve().parents[1]

# Relative L2 error ||got - ref|| / ||ref|| allowed against CPU fp32.
# fp32 with TF32 off: fp32 rounds at 2^-24 (6e-8); kernels that sum in another order move a depth-2 model's
# logits and gradients by ~1e-6. 1e-4 leaves two orders of magnitude for that and is still four below what
# a wrong fold, mask or missing term gives (errors of order 1).
TOL_FP32 = 1e-4
# bf16 autocast: bf16 keeps 8 significant bits (relative spacing 2^-8 = 3.9e-3); every matmul input is
# rounded to it, so each product carries ~2^-9 relative error and the few tens of chained products of a
# forward + backward accumulate to the 1e-3..1e-2 that bf16 operands give. 3e-2 is ~8 bf16 steps.
TOL_BF16 = 3e-2
# One parameter's gradient may be small and noisier than the whole: its error is taken relative to
# max(|its reference|, 0.1 x the rms per-tensor gradient norm) and allowed 3x the tolerance.
PER_TENSOR_FACTOR = 3.0
# Weight scale of the checked models, x 1/sqrt(fan_in) (see randomise()). At 0.5 attention scores are
# spread out (a 1% change of one qkv weight moves fp32 logits or gradients by 1e-4 to 2e-3, >= TOL_FP32)
# while bf16's error stays ~5x under TOL_BF16 (CPU bf16 autocast, GPU config: at most 6e-3 logits, 8e-3
# worst tensor); at 1.0 factorised_encoder's bf16 logits were already 2.3e-2 off.
GAIN = 0.5

# Wall-clock limits per section (seconds) on the GPU; the whole run is kept under --budget.
LIMITS = {"env": 25, "correctness": 50, "sdpa_kernels": 40, "grad_checkpointing": 30, "hf_speed": 150,
          "torchrun": 75, "compile": 120}
# The CPU dry run takes ~60 s on 2 idle cores; its limits are loose so that a loaded CI machine passes too.
LIMITS_TINY = {"env": 30, "correctness": 60, "sdpa_kernels": 40, "grad_checkpointing": 40, "hf_speed": 60,
               "torchrun": 100, "compile": 60}
SECTIONS = tuple(LIMITS)

# Datasheet dense bf16 rate (no sparsity) for MFU against the vendor figure, beside the measured one.
DATASHEET_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}

# Performance targets of the GPU run (read there only).
TARGETS = [("timesformer", "train", "speedup", 1.5, "TimeSformer-B bf16 training step >= 1.5x HF"),
           ("vivit", "train", "speedup", 1.1, "ViViT-B bf16 training step >= 1.1x HF (SDPA)"),
           ("timesformer", "train", "vidzoo_roofline", 0.45, "TimeSformer-B training MFU >= 45%"),
           ("vivit", "train", "vidzoo_roofline", 0.45, "ViViT-B training MFU >= 45%"),
           ("timesformer", "train", "peak_ratio_below", 1.0, "TimeSformer-B training peak memory below HF"),
           ("vivit", "train", "peak_ratio_below", 1.0, "ViViT-B training peak memory below HF")]


class SectionTimeout(Exception):
    pass


class Log:
    """print() to stdout (flushed) and to ``gpu_check.log``."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", buffering=1)

    def __call__(self, *parts: Any) -> None:
        msg = " ".join(str(p) for p in parts)
        print(msg, flush=True)
        self.f.write(msg + "\n")


# ------------------------------------------------------------------------------------ helpers


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def grad_errors(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Global relative gradient error and the worst per-tensor one (floored denominator, see above)."""
    if set(got) != set(ref):
        return {"grad_rel": float("inf"), "grad_worst_rel": float("inf"), "grad_worst": f"missing {set(ref) ^ set(got)}"}
    num = sum(((got[k].double().cpu() - ref[k].double()) ** 2).sum().item() for k in ref)
    den = sum((ref[k].double() ** 2).sum().item() for k in ref)
    if not all(torch.isfinite(got[k]).all() for k in got):
        num = float("inf")
    rms = math.sqrt(den / max(len(ref), 1))
    worst, worst_k = 0.0, ""
    for k in ref:
        e = (got[k].double().cpu() - ref[k].double()).norm().item() / max(ref[k].double().norm().item(), 0.1 * rms, 1e-30)
        if not e <= worst:
            worst, worst_k = e, k
    return {"grad_rel": math.sqrt(num / max(den, 1e-300)), "grad_worst_rel": worst, "grad_worst": worst_k}


def grads_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().float().cpu().clone() for n, p in model.named_parameters() if p.grad is not None}


def randomise(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Weights of unit gain, and values for zero- or one-initialised tensors (time embeddings, norms,
    biases), so that every branch shapes the output and a term left out or applied on the wrong axis
    changes it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() >= 2 and "embed" not in name and "token" not in name:
                # unit gain (std 1/sqrt(fan_in)): with the init's std of 0.02 attention scores are ~0 and each
                # block adds almost nothing to the residual stream, so a wrong attention would hardly show
                p.copy_(noise * GAIN * p[0].numel() ** -0.5)
            elif p.dim() <= 1 or "embed" in name or "token" in name:
                p.add_(noise * (0.5 if "embed" in name and "proj" not in name else 0.1))
    return model


def tiny_kwargs(tiny: bool, head_dim: int = 16) -> dict[str, Any]:
    """Tiny model overrides: ``--tiny`` sizes for the CPU dry run, a little larger on a GPU."""
    if tiny:
        return dict(embed_dim=2 * head_dim, depth=1, num_heads=2, num_frames=4, img_size=32, patch_size=8, num_classes=5)
    return dict(embed_dim=4 * head_dim, depth=2, num_heads=4, num_frames=8, img_size=64, patch_size=16, num_classes=5)


def make_model(attention: str, tokenizer: str, kw: dict[str, Any]) -> torch.nn.Module:
    import vidzoo
    torch.manual_seed(0)
    return randomise(vidzoo.create_model("vivit_tubelet", attention=attention, tokenizer=tokenizer, **kw))


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor, w: torch.Tensor, dtype: str) -> tuple[torch.Tensor, dict]:
    """Logits and parameter gradients of ``(logits * w).sum()`` (a loss with no cancelling symmetry)."""
    model.zero_grad(set_to_none=True)
    with C.autocast_ctx(str(x.device), dtype):
        out = model(x)
    (out.float() * w).sum().backward()
    return out, grads_of(model)


def set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def check(name: str, passed: bool, **detail: Any) -> dict[str, Any]:
    return {"check": name, "status": "passed" if passed else "failed", **detail}


def partial(ctx: dict[str, Any], key: str, empty: Any = None) -> Any:
    """A list (or ``empty``) the section fills as it goes; kept in the record if the section is stopped."""
    return ctx.setdefault("partial", {}).setdefault(key, [] if empty is None else empty)


def left(deadline: float) -> float:
    return deadline - time.perf_counter()


# ------------------------------------------------------------------------------------ sections


def section_env(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    dev = ctx["device"]
    info: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0], "device": dev,
                            "tiny": ctx["tiny"], "cpu_count": os.cpu_count()}
    for mod in ("transformers", "timm", "einops", "safetensors", "huggingface_hub", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001 - recorded, the section that needs it fails on its own
            info[mod] = f"missing ({type(e).__name__})"
    try:
        import av  # noqa: F401
        info["av"] = av.__version__
    except ImportError:
        info["av"] = "not installed (not needed: npz data)"
    info["sdpa_kernel_api"] = _sdpa_kernel_api() is not None
    if dev.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                    gpu_memory_gib=round(p.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(),
                    nccl=_nccl_version())
        for flag in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "cudnn_sdp_enabled", "math_sdp_enabled"):
            fn = getattr(torch.backends.cuda, flag, None)
            info[flag] = fn() if fn else "n/a in this torch"
        try:  # read-only query of the card's state
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,"
                                "temperature.gpu,memory.used", "--format=csv"], capture_output=True, text=True, timeout=10)
            info["nvidia_smi"] = q.stdout.strip().splitlines()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia_smi"] = f"unavailable ({e})"
    set_tf32(False)
    info["tf32"] = "off (matmul and cuDNN) for every fp32 figure"
    n = 128 if ctx["tiny"] else None
    mm = C.matmul_rate(dev, "bf16", n=n)
    info["matmul_bf16_tflops"], info["matmul_bf16_rates"] = mm["matmul_tflops"], mm["matmul_rates"]
    mm = C.matmul_rate(dev, "fp32", n=n or 4096)
    info["matmul_fp32_tflops"] = mm["matmul_tflops"]
    ctx["env"] = info
    return {"info": info, "checks": [check("device usable", True)]}


def section_correctness(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    import vidzoo
    dev, tiny = ctx["device"], ctx["tiny"]
    kw = tiny_kwargs(tiny)
    checks = partial(ctx, "checks")
    set_tf32(False)
    for attention in vidzoo.list_attention():
        for tokenizer in vidzoo.list_tokenizers():
            name = f"{attention} x {tokenizer}"
            if left(deadline) < 2:
                checks.append(check(name, False, error="not reached within the section's limit"))
                continue
            ref_model = make_model(attention, tokenizer, kw).train()
            g = torch.Generator().manual_seed(2)
            x = torch.randn(2, 3, kw["num_frames"], kw["img_size"], kw["img_size"], generator=g)
            w = torch.randn(2, kw["num_classes"], generator=g)
            ref_out, ref_grads = fwd_bwd(ref_model, x, w, "fp32")
            model = copy.deepcopy(ref_model).to(dev)
            for dtype, tol in (("fp32", TOL_FP32), ("bf16", TOL_BF16)):
                out, grads = fwd_bwd(model, x.to(dev), w.to(dev), dtype)
                r = {"attention": attention, "tokenizer": tokenizer, "dtype": dtype, "tol": tol,
                     "out_dtype": str(out.dtype).replace("torch.", ""), "out_rel": rel_err(out, ref_out),
                     **grad_errors(grads, ref_grads)}
                ok = (r["out_rel"] <= tol and r["grad_rel"] <= tol and r["grad_worst_rel"] <= PER_TENSOR_FACTOR * tol
                      and (dtype == "fp32" or out.dtype == torch.bfloat16))  # autocast really ran in bf16
                checks.append(check(f"{name} {dtype}", ok, **r))
            ctx["log"](f"  {name}: " + ", ".join(f"{c['dtype']} out {c['out_rel']:.1e} grad {c['grad_rel']:.1e}"
                                                 for c in checks[-2:]))
    return {"checks": checks, "tolerances": {"fp32": TOL_FP32, "bf16": TOL_BF16, "per_tensor_factor": PER_TENSOR_FACTOR},
            "config": kw, "reference": "the same model (deep copy) on CPU in fp32"}


def _nccl_version() -> str | None:
    try:
        v = torch.cuda.nccl.version()
    except Exception:  # noqa: BLE001 - a torch built without NCCL
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _sdpa_kernel_api():
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return SDPBackend, sdpa_kernel
    except ImportError:
        return None


# SDPA backend <- the aten ops SDPA dispatches to (what decides), e.g. aten::_scaled_dot_product_flash_attention
# (CPU: ..._flash_attention_for_cpu), _efficient_attention_forward, _scaled_dot_product_cudnn_attention,
# _scaled_dot_product_attention_math, and their backward ops.
_OP_PATTERNS = (("cudnn", ("cudnn_attention",)), ("flash", ("flash_attention",)),
                ("efficient", ("efficient_attention",)), ("math", ("_scaled_dot_product_attention_math",)))
# Device kernels of those backends (listed beside the ops as evidence; names vary between versions):
# pytorch_flash::flash_fwd_kernel, fmha_cutlassF_... (PyTorchMemEffAttention), cudnn_generated_..._sdpa_...
_KERNEL_PATTERNS = ("flash_fwd", "flash_bwd", "pytorch_flash", "fmha", "memeffattention", "attentionkernel", "sdpa")


def sdpa_backends_seen(ops: list[str]) -> list[str]:
    """SDPA backends whose aten ops appear in ``ops``."""
    return [b for b, pats in _OP_PATTERNS if any(p in o.lower() for o in ops for p in pats)]


def profile_names(fn: Callable[[], Any], device: str) -> tuple[list[str], list[str]]:
    """(aten op names, device kernel names) of one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile
    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        C.sync(device)
    ops, kernels = set(), set()
    for e in prof.key_averages():
        if e.key.startswith(("aten::", "mkldnn::")):
            ops.add(e.key)
        elif cuda and getattr(e, "self_device_time_total", 0) > 0:
            kernels.add(e.key)
    return sorted(ops), sorted(kernels)


def _variants(tiny: bool) -> list[str]:
    """Attention variants whose SDPA kernels are profiled: all on a GPU; the CPU dry run (which only keeps
    the code from rotting) takes one with one sequence kind (joint) and one with two (divided)."""
    import vidzoo
    names = vidzoo.list_attention()
    return [a for a in names if a in ("joint", "divided")] or names[:2] if tiny else names


def section_sdpa_kernels(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    import vidzoo
    dev, tiny = ctx["device"], ctx["tiny"]
    cuda = dev.startswith("cuda")
    kw = tiny_kwargs(tiny, head_dim=16 if tiny else 64)
    models = [(f"{a} (tiny, head_dim {kw['embed_dim'] // kw['num_heads']})", lambda a=a: make_model(a, "uniform", kw), 2)
              for a in _variants(tiny)]
    if not tiny:
        models += [(m, lambda m=m: vidzoo.create_model(m), 2)
                   for m in ("timesformer_divided_base_patch16_224", "vivit_joint_base_patch16x2_224")]
    rows, checks = partial(ctx, "rows"), partial(ctx, "checks")
    for name, build, batch in models:
        if left(deadline) < 3:
            rows.append({"model": name, "error": "not reached within the section's limit"})
            continue
        model = build().to(dev).train()
        x = torch.randn(batch, *model.pretrained_cfg["input_size"], device=dev)
        row: dict[str, Any] = {"model": name}
        for dtype in ("bf16", "fp32"):
            def step() -> None:
                model.zero_grad(set_to_none=True)
                with C.autocast_ctx(dev, dtype):
                    out = model(x)
                out.float().sum().backward()
            step()  # warm-up: kernel selection and handles outside the profile
            ops, kernels = profile_names(step, dev)
            attn_ops = [o for o in ops if "attention" in o]
            attn_kernels = [k for k in kernels if any(p in k.lower() for p in _KERNEL_PATTERNS)]
            row[f"{dtype}_backends"] = sdpa_backends_seen(attn_ops) or ["none (eager attention path)"]
            row[f"{dtype}_ops"] = attn_ops
            row[f"{dtype}_kernels"] = [k[:120] for k in attn_kernels][:8]
        rows.append(row)
        if cuda:  # bf16 on a GPU must run a fused kernel; the math fallback materialises (L, L) in bf16
            fused = [b for b in row["bf16_backends"] if b in ("flash", "efficient", "cudnn")]
            checks.append(check(f"{name}: fused SDPA kernel in bf16", bool(fused) and "math" not in row["bf16_backends"],
                                backends=row["bf16_backends"]))
        del model
    forced = _forced_backends(ctx, kw, deadline)
    checks += forced["checks"]
    if not cuda:
        checks.append(check("profiler read (CPU: the fused-kernel check applies on a GPU only)", bool(rows)))
    return {"rows": rows, "forced": forced["rows"], "checks": checks}


def _forced_backends(ctx: dict[str, Any], kw: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Every backend ``sdpa_kernel`` can force, on each attention variant in bf16, against MATH."""
    import vidzoo
    api = _sdpa_kernel_api()
    dev = ctx["device"]
    if api is None:
        return {"rows": [{"note": "torch.nn.attention.sdpa_kernel not in this torch"}], "checks": []}
    SDPBackend, sdpa_kernel = api
    names = ["MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"]
    backends = [(n, getattr(SDPBackend, n)) for n in names if hasattr(SDPBackend, n)]
    rows, checks = [], []
    from vidzoo.layers import attention as attn_mod
    saved = attn_mod._CPU_EAGER_MAX_LEN
    attn_mod._CPU_EAGER_MAX_LEN = 0  # CPU: SDPA for every sequence, so the forced backend is what runs
    try:
        for a in _variants(ctx["tiny"]):
            if left(deadline) < 2:
                rows.append({"attention": a, "error": "not reached within the section's limit"})
                continue
            model = make_model(a, "uniform", kw).to(dev).eval()
            x = torch.randn(2, *model.pretrained_cfg["input_size"], device=dev)
            outs, row = {}, {"attention": a}
            for n, b in backends:
                try:
                    with torch.no_grad(), sdpa_kernel([b]), C.autocast_ctx(dev, "bf16"):
                        outs[n] = model(x).float()
                except RuntimeError as e:  # "No available kernel" for these inputs / this device
                    row[n] = f"unsupported ({str(e).splitlines()[0][:80]})"
            for n, o in outs.items():
                if n != "MATH" and "MATH" in outs:
                    row[n] = rel_err(o, outs["MATH"])
                    checks.append(check(f"{a}: {n} vs MATH (bf16)", row[n] <= TOL_BF16, rel=row[n], tol=TOL_BF16))
            rows.append(row)
    finally:
        attn_mod._CPU_EAGER_MAX_LEN = saved
    return {"rows": rows, "checks": checks}


def section_grad_checkpointing(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    import vidzoo
    dev, tiny = ctx["device"], ctx["tiny"]
    kw = tiny_kwargs(tiny)
    set_tf32(False)
    checks = partial(ctx, "checks")
    for attention in vidzoo.list_attention():
        if left(deadline) < 2:
            checks.append(check(attention, False, error="not reached within the section's limit"))
            continue
        model = make_model(attention, "uniform", kw).to(dev).train()
        x = torch.randn(2, *model.pretrained_cfg["input_size"], device=dev)
        w = torch.randn(2, kw["num_classes"], device=dev)
        calls = []
        blk = next(m for m in model.modules() if type(m).__name__.endswith("Block"))
        # a pre-hook: non-reentrant checkpointing stops the recomputation once it has what backward needs,
        # so the block's forward may not run to its end (where a forward hook would fire)
        hook = blk.register_forward_pre_hook(lambda *a: calls.append(1))
        for dtype, tol in (("fp32", 1e-5), ("bf16", TOL_BF16)):
            model.set_grad_checkpointing(False)
            calls.clear()
            _, plain = fwd_bwd(model, x, w, dtype)
            n_plain = len(calls)
            model.set_grad_checkpointing(True)
            calls.clear()
            _, ckpt = fwd_bwd(model, x, w, dtype)
            e = grad_errors(ckpt, plain)
            # the block ran again in backward: checkpointing was on, not silently ignored
            checks.append(check(f"{attention} {dtype}", e["grad_rel"] <= tol and len(calls) == 2 * n_plain, tol=tol,
                                block_calls_plain=n_plain, block_calls_ckpt=len(calls), **e))
        hook.remove()
    out: dict[str, Any] = {"checks": checks}
    if dev.startswith("cuda") and not tiny and left(deadline) > 10:
        out["timesformer_b_bf16_b8"] = _ckpt_memory(dev)
    return out


def _ckpt_memory(dev: str) -> dict[str, Any]:
    """TimeSformer-B bf16 training step at batch 8 with and without checkpointing: peak and time."""
    import vidzoo
    model = vidzoo.create_model("timesformer_divided_base_patch16_224").to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(8, *model.pretrained_cfg["input_size"], device=dev)
    y = torch.randint(0, model.num_classes, (8,), device=dev)
    step = C.train_step(model, x, y, opt, dev, "bf16")
    res = {}
    for on in (False, True):
        model.set_grad_checkpointing(on)
        step()
        with C.PeakMemory(dev) as mem:
            step()
        t = C.median(C.time_fn(step, dev, warmup=1, runs=3))
        res["ckpt" if on else "plain"] = {"peak_gb": C.gb(mem.peak), "step_gb": C.gb(mem.added), "step_ms": t * 1e3}
    res["peak_ratio"] = res["ckpt"]["peak_gb"] / res["plain"]["peak_gb"]
    res["time_ratio"] = res["ckpt"]["step_ms"] / res["plain"]["step_ms"]
    return res


def section_hf_speed(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    from benchmarks import compare_hf
    dev, tiny = ctx["device"], ctx["tiny"]
    # VideoMAE-B joins once compare_hf has a pair for it (another change adds one)
    pairs = [p for p in ("timesformer", "vivit") if p in compare_hf.PAIRS] + \
        [p for p in compare_hf.PAIRS if p.startswith("videomae")][:1]
    if tiny:
        small = ["num_frames=4", "img_size=32", "depth=1", "embed_dim=32", "num_heads=2", "num_classes=7"]
        args = ["--batch-size", "1", "--warmup", "0", "--runs", "1", "--matmul-n", "128",
                "--infer-set", *small, "--train-set", *small]
    else:
        args = ["--batch-size", "8", "--warmup", "3", "--runs", "10"]
    common = ["--device", dev, "--dtype", "bf16", "--no-isolate", "--threads", str(min(16, os.cpu_count() or 1))]
    rows, checks = partial(ctx, "rows"), partial(ctx, "checks")
    for pair in pairs:
        if left(deadline) < (5 if tiny else 30):
            checks.append(check(f"{pair}: parity, timing, memory", False, error="not reached within the section's limit"))
            continue
        t0 = time.perf_counter()
        try:
            r = compare_hf.main(["--pairs", pair, *common, *args, "--out", str(ctx["tmp"] / f"compare_hf_{pair}")])
        except Exception as e:  # noqa: BLE001 - parity failure (AssertionError) or a broken side: this pair fails
            checks.append(check(f"{pair}: parity, timing, memory", False, error=f"{type(e).__name__}: {e}",
                                traceback=traceback.format_exc()[-1500:]))
            continue
        set_tf32(False)  # compare_hf leaves the flags as it found them; keep fp32 checks strict
        for row in r:
            gpu = ctx.get("env", {}).get("gpu", "")
            peak = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in gpu), None)
            row["vidzoo_mfu_datasheet"] = row["vidzoo_tflops"] / peak if peak else None
            row["hf_mfu_datasheet"] = row["hf_tflops"] / peak if peak else None
        rows += r
        checks.append(check(f"{pair}: parity (fp32) then bf16 timing and memory", True,
                            parity_max_abs_diff=r[0]["parity_max_abs_diff"], wall_s=time.perf_counter() - t0))
        ctx["log"](f"  {pair}: " + "; ".join(f"{x['mode']} {x['speedup']:.2f}x HF, MFU {x['vidzoo_roofline']:.0%}, "
                                             f"peak {x.get('peak_ratio', float('nan')):.2f} of HF" for x in r))
    targets = []
    if not tiny:
        for pair, mode, key, goal, what in TARGETS:
            row = next((x for x in rows if x["pair"] == pair and x["mode"] == mode), None)
            if row is None:
                targets.append({"target": what, "measured": None, "met": None})
                continue
            v = row.get("peak_ratio") if key == "peak_ratio_below" else row.get(key)
            met = None if v is None else (v < goal if key == "peak_ratio_below" else v >= goal)
            targets.append({"target": what, "measured": v, "met": met})
    return {"rows": rows, "pairs": pairs, "targets": targets, "checks": checks,
            "videomae": "included" if any(p.startswith("videomae") for p in pairs)
            else "no videomae pair in compare_hf.PAIRS (not registered yet)"}


def make_npz(path: Path, frames: int, size: int, n_train: int = 16, n_val: int = 8, classes: int = 2) -> Path:
    """A MedMNIST-style npz of random uint8 volumes (no PyAV needed to read it)."""
    rng = np.random.default_rng(0)
    vol = lambda n: rng.integers(0, 256, size=(n, frames, size, size), dtype=np.uint8)  # noqa: E731
    lab = lambda n: (np.arange(n) % classes).reshape(n, 1)  # noqa: E731
    np.savez(path, train_images=vol(n_train), train_labels=lab(n_train), val_images=vol(n_val), val_labels=lab(n_val),
             test_images=vol(n_val), test_labels=lab(n_val))
    return path


def train_argv(ctx: dict[str, Any], npz: Path, out: Path) -> list[str]:
    tiny, cuda = ctx["tiny"], ctx["device"].startswith("cuda")
    size = 16 if tiny else 32
    model = ["--set", "embed_dim=32", "depth=1", "num_heads=2", "patch_size=8"] if tiny else \
        ["--set", "embed_dim=128", "depth=2", "num_heads=4", "patch_size=8"]
    return ["train", "--model", "vivit_joint_tiny_patch16x2_224", "--data", str(npz), "--output", str(out),
            "--epochs", "1", "--batch-size", "4", "--num-frames", "4" if tiny else "8", "--img-size", str(size),
            "--no-progress", "--workers", "0", "--device", "cuda" if cuda else "cpu", "--amp", "bf16" if cuda else "none",
            *model]


def _torchrun(argv: list[str], env: dict[str, str], timeout: float, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=max(timeout, 1), cwd=cwd)


def section_torchrun(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    dev, tiny, tmp = ctx["device"], ctx["tiny"], ctx["tmp"]
    cuda = dev.startswith("cuda")
    npz = make_npz(tmp / "volumes.npz", frames=4 if tiny else 8, size=16 if tiny else 32)
    env = dict(os.environ, OMP_NUM_THREADS="1", NCCL_DEBUG="INFO",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    checks, runs = partial(ctx, "checks"), partial(ctx, "runs", {})
    # 1. the CLI exactly as a user launches it
    out1 = tmp / "run_cli"
    argv = train_argv(ctx, npz, out1)
    r = _torchrun(["-m", "vidzoo", *argv], env, left(deadline) - (25 if tiny else 30), tmp)
    log = r.stdout + r.stderr
    metrics = _read_json(out1 / "metrics.json")
    expect = f"training on {'cuda:0' if cuda else 'cpu'} x 1 process(es), {'bf16' if cuda else 'fp32'}"
    runs["cli"] = {"command": "python -m torch.distributed.run --standalone --nproc_per_node 1 -m vidzoo " + " ".join(argv),
                   "returncode": r.returncode, "epochs_logged": len(metrics or []), "log_tail": log[-2500:],
                   "process_group": "none: vidzoo starts one only for world_size > 1 (as timm)"}
    checks.append(check("torchrun -m vidzoo train exits 0 and trains one epoch",
                        r.returncode == 0 and bool(metrics) and expect in log, expect=expect, returncode=r.returncode))
    # 2. the same training with a process group up (NCCL on a GPU), plus DDP steps of every variant
    cfg = {"device": dev, "tiny": tiny, "train_argv": train_argv(ctx, npz, tmp / "run_pg")}
    r = _torchrun([str(Path(__file__).resolve()), "--pg-worker", json.dumps(cfg)], env, left(deadline) - 2, tmp)
    log = r.stdout + r.stderr
    res = next((json.loads(line[len(C.RESULT_PREFIX):]) for line in r.stdout.splitlines()
                if line.startswith(C.RESULT_PREFIX)), None)
    want = "nccl" if cuda else "gloo"
    runs["process_group"] = {"returncode": r.returncode, "result": res, "log_tail": log[-2500:],
                             "nccl_info_lines": sum("NCCL INFO" in line for line in log.splitlines())}
    ok = (r.returncode == 0 and res is not None and res.get("backend") == want and res.get("all_reduce_ok") is True
          and res.get("train_rc") == 0)
    if cuda:  # NCCL itself said it ran (NCCL_DEBUG=INFO), not only torch's backend name
        ok = ok and runs["process_group"]["nccl_info_lines"] > 0
    checks.append(check(f"{want} process group: vidzoo train with the group up exits 0", ok, backend=(res or {}).get("backend")))
    for d in (res or {}).get("ddp", []):
        checks.append(check(f"DDP over {want}: {d['attention']}", d["ok"], **d))
    if res is None:
        checks.append(check(f"DDP over {want}", False, error="worker gave no result"))
    return {"runs": runs, "checks": checks}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pg_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run under torchrun (one process): start the process group, check DDP steps of every attention
    variant against plain steps, then run ``vidzoo train`` with the group up (its metric reductions,
    RNG-state gathering and barriers then go through the group)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import vidzoo
    from vidzoo.cli import main as cli_main
    cuda = cfg["device"].startswith("cuda")
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    res: dict[str, Any] = {"backend": dist.get_backend(), "world_size": dist.get_world_size(), "ddp": []}
    t = torch.arange(4.0, device=dev)
    dist.all_reduce(t)
    res["all_reduce_ok"] = bool(torch.equal(t.cpu(), torch.arange(4.0) * dist.get_world_size()))
    kw = tiny_kwargs(cfg["tiny"])
    set_tf32(False)
    for a in vidzoo.list_attention():
        try:
            model = make_model(a, "uniform", kw).to(dev).train()
            ddp = DDP(copy.deepcopy(model), device_ids=[dev] if cuda else None)
            x = torch.randn(2, *model.pretrained_cfg["input_size"], device=dev)
            w = torch.randn(2, kw["num_classes"], device=dev)
            errs = []
            for _ in range(2):  # a parameter without gradient makes DDP's second iteration raise
                _, ref = fwd_bwd(model, x, w, "fp32")
                _, got = fwd_bwd(ddp, x, w, "fp32")
                errs.append(grad_errors({k.removeprefix("module."): v for k, v in got.items()}, ref)["grad_rel"])
            res["ddp"].append({"attention": a, "grad_rel": max(errs), "ok": max(errs) <= TOL_FP32})
        except Exception as e:  # noqa: BLE001
            res["ddp"].append({"attention": a, "ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"})
    try:
        res["train_rc"] = cli_main(cfg["train_argv"])
    except SystemExit as e:
        res["train_rc"] = e.code
    res["group_still_up"] = dist.is_initialized()
    if dist.is_initialized():
        dist.destroy_process_group()
    return res


def section_compile(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    import vidzoo
    from vidzoo.engine.compile import maybe_compile
    dev, tiny = ctx["device"], ctx["tiny"]
    # CPU dry run: dynamo tracing only (inductor's C++ build takes minutes on 2 cores); a GPU: inductor
    backend = "eager" if tiny else "inductor"
    if tiny:
        name, batch, kw = "timesformer_divided_tiny_patch16_224", 1, dict(num_frames=2, img_size=32, depth=1)
    else:
        name, batch, kw = "timesformer_divided_base_patch16_224", 8, {}
    torch._dynamo.reset()
    model = vidzoo.create_model(name, **kw).to(dev).eval()
    x = torch.randn(batch, *model.pretrained_cfg["input_size"], device=dev)
    runs = 2 if tiny else 10

    def infer(m) -> Callable[[], torch.Tensor]:
        def f() -> torch.Tensor:
            with torch.no_grad(), C.autocast_ctx(dev, "bf16"):
                return m(x)
        return f
    eager_fn = infer(model)
    ref = eager_fn().float()
    t_eager = C.median(C.time_fn(eager_fn, dev, warmup=1, runs=runs))
    cmodel = maybe_compile(model, backend=backend, device=dev, log=lambda m: ctx["log"](f"  {m}"))  # what --compile runs
    comp_fn = infer(cmodel)
    t0 = time.perf_counter()
    out = comp_fn().float()
    C.sync(dev)
    compile_s = time.perf_counter() - t0
    t_comp = C.median(C.time_fn(comp_fn, dev, warmup=1, runs=runs))
    e = rel_err(out, ref)
    res: dict[str, Any] = {"model": name, "batch": batch, "backend": backend, "dtype": "bf16 autocast",
                           "infer": {"compile_s": compile_s, "eager_ms": t_eager * 1e3, "compiled_ms": t_comp * 1e3,
                                     "speedup": t_eager / t_comp, "rel_err_vs_eager": e}}
    checks = [check("compiled, no eager fallback", cmodel.compiled, reason=cmodel.fallback_reason),
              check("compiled inference logits = eager (bf16 tolerance)", e <= TOL_BF16, rel=e, tol=TOL_BF16)]
    ctx["log"](f"  inference: compile {compile_s:.1f} s, eager {t_eager * 1e3:.1f} ms, compiled {t_comp * 1e3:.1f} ms")
    # training step, if the limit leaves room for a second (fwd + bwd) compilation
    if left(deadline) > (5 if tiny else 70):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        y = torch.randint(0, model.num_classes, (batch,), device=dev)
        eager_step, compiled_step = (C.train_step(m, x, y, opt, dev, "bf16") for m in (model, cmodel))
        t_eager_tr = C.median(C.time_fn(eager_step, dev, warmup=1, runs=runs))
        t0 = time.perf_counter()
        compiled_step()
        C.sync(dev)
        compile_tr = time.perf_counter() - t0
        t_comp_tr = C.median(C.time_fn(compiled_step, dev, warmup=1, runs=runs))
        res["train"] = {"compile_s": compile_tr, "eager_ms": t_eager_tr * 1e3, "compiled_ms": t_comp_tr * 1e3,
                        "speedup": t_eager_tr / t_comp_tr}
        checks.append(check("training step compiled, no eager fallback", cmodel.compiled, reason=cmodel.fallback_reason))
        ctx["log"](f"  training step: compile {compile_tr:.1f} s, eager {t_eager_tr * 1e3:.1f} ms, "
                   f"compiled {t_comp_tr * 1e3:.1f} ms")
    else:
        res["train"] = "skipped: too little of the section's limit left for a second compilation"
    return {**res, "checks": checks}


SECTION_FNS: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
    "env": section_env, "correctness": section_correctness, "sdpa_kernels": section_sdpa_kernels,
    "grad_checkpointing": section_grad_checkpointing, "hf_speed": section_hf_speed, "torchrun": section_torchrun,
    "compile": section_compile}


# ------------------------------------------------------------------------------------ runner


def _cpu_s() -> float:
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_section(name: str, ctx: dict[str, Any], limit: float) -> dict[str, Any]:
    log = ctx["log"]
    log(f"[gpu_check] {name}: start (limit {limit:.0f} s)")
    t0, c0 = time.perf_counter(), _cpu_s()
    rec: dict[str, Any] = {"section": name, "limit_s": round(limit, 1)}

    def on_alarm(signum, frame):
        raise SectionTimeout(f"section '{name}' passed its limit of {limit:.0f} s")
    ctx["partial"] = {}
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit + 5)  # hard stop; sections also stop themselves at the deadline
    try:
        res = SECTION_FNS[name](ctx, t0 + limit)
        checks = res.get("checks", [])
        failed = [c["check"] for c in checks if c["status"] != "passed"]
        rec.update(res, status="failed" if failed or not checks else "passed", failed_checks=failed)
    except BaseException as e:  # noqa: BLE001 - one broken section must not stop the others
        if isinstance(e, KeyboardInterrupt):
            raise
        rec.update(ctx["partial"])  # what the section measured before it stopped
        rec.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-3000:],
                   failed_checks=[c["check"] for c in ctx["partial"].get("checks", []) if c["status"] != "passed"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    rec["wall_s"] = round(time.perf_counter() - t0, 1)
    rec["cpu_s"] = round(_cpu_s() - c0, 1)  # this process and its finished children (torchrun)
    log(f"[gpu_check] {name}: {rec['status']} in {rec['wall_s']:.1f} s"
        + (f" ({rec['error']})" if "error" in rec else "")
        + (f"; failed: {', '.join(rec['failed_checks'][:6])}" if rec.get("failed_checks") else ""))
    if ctx["device"].startswith("cuda"):
        torch.cuda.empty_cache()
    return rec


def _f(v: Any, spec: str) -> str:
    return C.fmt(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else ("-" if v is None else str(v))


def markdown(report: dict[str, Any]) -> str:
    env = next((s.get("info", {}) for s in report["sections"] if s["section"] == "env"), {})
    lines = [f"# vidzoo GPU check ({report['device']}{', tiny' if report['tiny'] else ''})", "",
             f"`{report['command']}`", "",
             f"- {env.get('gpu', 'no GPU (CPU dry run)')}; torch {env.get('torch', torch.__version__)}, CUDA "
             f"{env.get('cuda', '-')}, transformers {env.get('transformers', '-')}, timm {env.get('timm', '-')}",
             f"- dense matmul rate measured here: bf16 {_f(env.get('matmul_bf16_tflops'), '.4g')} TFLOP/s, fp32 (TF32 "
             f"off) {_f(env.get('matmul_fp32_tflops'), '.4g')} TFLOP/s",
             f"- started {report['started']}, total {report['wall_s']:.0f} s; overall: **{report['status']}**", "",
             "| section | status | wall (s) | CPU (s) | limit (s) | failed checks / error |", "|---|---|---|---|---|---|"]
    for s in report["sections"]:
        why = s.get("error") or ", ".join(s.get("failed_checks", [])[:5])
        lines.append(f"| {s['section']} | {s['status']} | {s['wall_s']:.1f} | {_f(s.get('cpu_s'), '.1f')} | "
                     f"{s['limit_s']:.0f} | {why or '-'} |")
    sec = {s["section"]: s for s in report["sections"]}
    if "correctness" in sec and sec["correctness"].get("checks"):
        lines += ["", "## Correctness against CPU fp32", "",
                  f"Relative L2 error of logits and of all gradients (worst single tensor beside it). Tolerances: fp32 "
                  f"(TF32 off) {TOL_FP32:g}, bf16 autocast {TOL_BF16:g} (see the constants' comments in gpu_check.py).", "",
                  "| attention | tokenizer | dtype | logits | gradients | worst tensor | status |", "|---|---|---|---|---|---|---|"]
        for c in sec["correctness"]["checks"]:
            lines.append(f"| {c.get('attention', c['check'])} | {c.get('tokenizer', '')} | {c.get('dtype', '')} | "
                         f"{_f(c.get('out_rel'), '.1e')} | {_f(c.get('grad_rel'), '.1e')} | "
                         f"{_f(c.get('grad_worst_rel'), '.1e')} {c.get('grad_worst', '')} | {c['status']} |")
    if "sdpa_kernels" in sec and sec["sdpa_kernels"].get("rows"):
        lines += ["", "## SDPA kernels (torch.profiler)", "", "| model | bf16 | fp32 | bf16 kernels |", "|---|---|---|---|"]
        for r in sec["sdpa_kernels"]["rows"]:
            lines.append(f"| {r['model']} | {', '.join(r.get('bf16_backends', [r.get('error', '-')]))} | "
                         f"{', '.join(r.get('fp32_backends', ['-']))} | {'<br>'.join(r.get('bf16_kernels', [])[:3]) or '-'} |")
        forced = sec["sdpa_kernels"].get("forced", [])
        if forced and "attention" in forced[0]:
            keys = [k for k in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION") if any(k in r for r in forced)]
            lines += ["", "Forced with `sdpa_kernel`, bf16 logits vs the MATH backend (relative L2):", "",
                      "| attention | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
            for r in forced:
                lines.append(f"| {r['attention']} | " + " | ".join(_f(r.get(k), ".1e") for k in keys) + " |")
    if "grad_checkpointing" in sec:
        g = sec["grad_checkpointing"]
        if g.get("checks"):
            worst = max((c.get("grad_rel", float("inf")) for c in g["checks"]), default=float("nan"))
            lines += ["", "## Gradient checkpointing", "",
                      f"{sum(c['status'] == 'passed' for c in g['checks'])}/{len(g['checks'])} variant x dtype checks "
                      f"passed (largest gradient difference {worst:.1e}; blocks ran again in backward)."]
        m = g.get("timesformer_b_bf16_b8")
        if m:
            lines.append(f"TimeSformer-B bf16 batch 8 training step: peak {m['plain']['peak_gb']:.2f} -> "
                         f"{m['ckpt']['peak_gb']:.2f} GiB ({m['peak_ratio']:.2f}x), time {m['plain']['step_ms']:.0f} -> "
                         f"{m['ckpt']['step_ms']:.0f} ms ({m['time_ratio']:.2f}x).")
    if "hf_speed" in sec and sec["hf_speed"].get("rows"):
        h = sec["hf_speed"]
        lines += ["", "## vidzoo vs HF transformers (bf16 autocast, parity asserted in fp32 first)", "",
                  "MFU: counted FLOPs (training step = 3x forward) / median time, over the dense bf16 matmul rate "
                  "measured in the same process (benchmarks/README.md); 'datasheet' over the vendor's dense bf16 rate.", "",
                  "| pair | mode | input | parity | vidzoo (ms) | HF (ms) | HF/vidzoo | vidzoo MFU | HF MFU | vidzoo MFU (datasheet) "
                  "| peak GiB vidzoo / HF | peak ratio |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in h["rows"]:
            lines.append(f"| {r['pair']} | {r['mode']} | {r['input']} | {_f(r.get('parity_max_abs_diff'), '.1e')} | "
                         f"{_f(r['vidzoo_ms'], '.1f')} | {_f(r['hf_ms'], '.1f')} | {_f(r['speedup'], '.3f')} | "
                         f"{_f(r['vidzoo_roofline'], '.0%')} | {_f(r['hf_roofline'], '.0%')} | "
                         f"{_f(r.get('vidzoo_mfu_datasheet'), '.0%')} | {_f(r.get('vidzoo_peak_gb'), '.2f')} / "
                         f"{_f(r.get('hf_peak_gb'), '.2f')} | {_f(r.get('peak_ratio'), '.3f')} |")
        lines.append(f"\nVideoMAE: {h.get('videomae')}.")
        if h.get("targets"):
            lines += ["", "| target | measured | met |", "|---|---|---|"]
            for t in h["targets"]:
                lines.append(f"| {t['target']} | {_f(t['measured'], '.3f')} | "
                             f"{'-' if t['met'] is None else ('yes' if t['met'] else '**no**')} |")
    if "torchrun" in sec and sec["torchrun"].get("runs"):
        t = sec["torchrun"]
        lines += ["", "## torchrun", "", f"`{t['runs']['cli']['command']}`", ""]
        lines += [f"- {c['check']}: {c['status']}" for c in t["checks"]]
        lines.append(f"- NCCL_DEBUG=INFO lines of the process-group run: "
                     f"{t['runs'].get('process_group', {}).get('nccl_info_lines', '-')}")
    if "compile" in sec and "infer" in sec["compile"]:
        c = sec["compile"]
        lines += ["", f"## torch.compile ({c['model']}, batch {c['batch']}, backend {c['backend']}, {c['dtype']})", "",
                  "| step | compile (s) | eager (ms) | compiled (ms) | speed-up |", "|---|---|---|---|---|"]
        for k in ("infer", "train"):
            if isinstance(c.get(k), dict):
                v = c[k]
                lines.append(f"| {k} | {v['compile_s']:.1f} | {v['eager_ms']:.1f} | {v['compiled_ms']:.1f} | {v['speedup']:.2f} |")
        if isinstance(c.get("train"), str):
            lines.append(f"\ntraining step: {c['train']}")
    return "\n".join(lines) + "\n"


def summary(report: dict[str, Any]) -> str:
    """A few lines: each section's status, the HF comparison and the targets."""
    lines = ["", "== gpu_check summary =="]
    for s in report["sections"]:
        lines.append(f"{s['section']:>20}: {s['status']} ({s['wall_s']:.0f} s)"
                     + (f" {s.get('error', '')[:150]}" if s.get("error") else "")
                     + (f" failed: {', '.join(s['failed_checks'][:4])}" if s.get("failed_checks") else ""))
    for s in report["sections"]:
        for r in s.get("rows", []) if s["section"] == "hf_speed" else []:
            lines.append(f"{r['pair']:>12} {r['mode']:<5} vidzoo {r['vidzoo_ms']:.1f} ms, HF {r['hf_ms']:.1f} ms, "
                         f"{r['speedup']:.2f}x; MFU {r['vidzoo_roofline']:.0%} (HF {r['hf_roofline']:.0%}); peak "
                         f"{_f(r.get('vidzoo_peak_gb'), '.2f')} / {_f(r.get('hf_peak_gb'), '.2f')} GiB")
        for t in s.get("targets", []) if s["section"] == "hf_speed" else []:
            lines.append(f"target {t['target']}: {_f(t['measured'], '.3f')} "
                         f"{'-' if t['met'] is None else ('met' if t['met'] else 'MISSED')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="folder for gpu_check.json / .md / .log (the device's $OUT); required")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: the dry run)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes everywhere (CPU dry run)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run (default 330 on a GPU, 400 with --tiny); sections' limits shrink to fit")
    p.add_argument("--pg-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.pg_worker:
        C.emit_result(pg_worker(json.loads(args.pg_worker)))
        return 0
    if not args.out:
        p.error("--out is required (the folder for gpu_check.json / .md / .log)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: error: --device cuda but CUDA is not available here; use --device cpu --tiny")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    limits = LIMITS_TINY if args.tiny else LIMITS
    budget = args.budget or (400.0 if args.tiny else 330.0)
    log = Log(out / "gpu_check.log")
    t_start = time.perf_counter()
    report: dict[str, Any] = {"command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
                              "device": args.device, "tiny": args.tiny, "budget_s": budget,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "sections": []}
    with tempfile.TemporaryDirectory(prefix="vidzoo_gpu_check_") as tmp:
        ctx = {"device": args.device, "tiny": args.tiny, "tmp": Path(tmp), "log": log}
        for i, name in enumerate(args.sections):
            remaining = budget - (time.perf_counter() - t_start)
            rest = sum(limits[n] for n in args.sections[i + 1:])
            # its own limit plus what earlier sections left unused, never more than the run has left
            limit = min(remaining, max(limits[name], remaining - rest))
            if remaining < 2:
                rec = {"section": name, "status": "failed", "error": "not started: the run's budget was spent",
                       "limit_s": 0, "wall_s": 0.0}
            else:
                rec = run_section(name, ctx, limit)
            report["sections"].append(rec)
            report["wall_s"] = time.perf_counter() - t_start
            report["status"] = "passed" if all(s["status"] == "passed" for s in report["sections"]) else "failed"
            (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    report["wall_s"] = time.perf_counter() - t_start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    md = markdown(report)
    (out / "gpu_check.md").write_text(md)
    log(md)
    log(summary(report))  # last, so that the end of the output (all a device call returns) holds it
    log(f"[gpu_check] {report['status']} in {report['wall_s']:.0f} s; results in {out}")
    return 0 if report["status"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
