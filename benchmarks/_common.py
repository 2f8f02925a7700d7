"""Shared helpers of the vidzoo benchmark scripts.

Timing (CPU wall clock or CUDA events, medians), the device's own dense-matmul rate
(the roofline every model is measured against), peak memory (CUDA allocator peak, or the
process RSS high-water mark ``VmHWM`` on CPU, reset through ``/proc/self/clear_refs``),
a profile of where forward time goes, and CSV / Markdown / machine-state writers.

Nothing here imports vidzoo or transformers, so the HF side of a comparison is measured by
exactly the same code.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import gc
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# --------------------------------------------------------------------------------------- setup


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The scripts' ``--help``: the docstring as written, and every option's default."""


def finish_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every option shows its default in ``--help``, those added without a help text included."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if action.help is None and action.option_strings and action.default not in (None, False, []):
            action.help = "(default: %(default)s)"
    return parser


def setup_torch(threads: int | None, device: str) -> dict[str, Any]:
    """Fix the thread count (CPU) and return what was set, for the results."""
    if threads:
        torch.set_num_threads(threads)
    info = {"torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info


def sync(device: str | torch.device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def autocast_ctx(device: str, dtype: str):
    """bf16/fp16 autocast on the device, or nothing for fp32."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[dtype])


def train_step(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
               opt: torch.optim.Optimizer, device: str, dtype: str) -> Callable[[], None]:
    """One training step as a closure: cross-entropy of ``model(x)`` against ``y`` under ``dtype``
    autocast, backward, optimizer step, gradients freed (the step every training benchmark times)."""
    def step() -> None:
        with autocast_ctx(device, dtype):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere, for parity checks (here and in the tests): LayerNorm scales around 1,
    every bias (q/v biases included) and norm bias non-zero, so a wrong, dropped or misplaced tensor
    cannot hide behind an init of zeros and ones; logits come out of order 1. Returns the model in
    eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name and name.endswith("weight"):  # also transformers' "layernorm_*"
                p.copy_(1 + 0.2 * noise)
            elif "classifier" in name:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.05 * noise)
    return model.eval()


# -------------------------------------------------------------------------------------- timing


def process_cpu_s() -> float:
    """User + system CPU seconds of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Clock:
    """Times one call: CUDA events on a GPU (device time), perf_counter on CPU. Also records the
    process CPU time of the call (``last_cpu``): on a shared CPU, CPU time / wall time below the
    thread count shows the process was waiting for a core."""

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith("cuda")
        self.last_cpu = float("nan")

    def __call__(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            c0 = process_cpu_s()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            self.last_cpu = process_cpu_s() - c0
            return start.elapsed_time(end) / 1e3
        c0 = process_cpu_s()
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        self.last_cpu = process_cpu_s() - c0
        return t


def time_fn(fn: Callable[[], Any], device: str, warmup: int = 1, runs: int = 3,
            cpu_times: list[float] | None = None) -> list[float]:
    """Seconds of each of ``runs`` timed calls after ``warmup`` untimed ones (CPU seconds of each
    appended to ``cpu_times`` when given)."""
    clock = _Clock(device)
    for _ in range(warmup):
        clock(fn)
    out = []
    for _ in range(runs):
        out.append(clock(fn))
        if cpu_times is not None:
            cpu_times.append(clock.last_cpu)
    return out


def time_interleaved(fns: dict[str, Callable[[], Any]], device: str, warmup: int = 1,
                     runs: int = 3, cpu_times: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Time several callables alternately (A B A B ...) so load drift on a shared machine hits
    all of them alike. Warm-up rounds are interleaved too and not recorded."""
    clock = _Clock(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + runs):
        for k, fn in fns.items():
            t = clock(fn)
            if i >= warmup:
                times[k].append(t)
                if cpu_times is not None:
                    cpu_times.setdefault(k, []).append(clock.last_cpu)
    return times


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------ roofline


# Shapes whose best rate is taken as the device's dense-matmul peak: two squares and the ViT-B MLP
# product of one TimeSformer clip (1568 tokens x 768 -> 3072). A single square can sit below the
# rate the model's own products reach (2048^3 measured ~12% below 4096^3 here), which would put
# the model above "100% of peak".
CPU_MATMUL_SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (1568, 768, 3072))
GPU_MATMUL_SHAPES = ((8192, 8192, 8192), (4096, 4096, 4096), (6272, 768, 3072))


def matmul_rate(device: str, dtype: str = "fp32", n: int | None = None, warmup: int = 2,
                runs: int = 5) -> dict[str, float]:
    """The device's own dense-matmul rate: the best median FLOP/s over a few ``m x k @ k x n`` products.

    By default the shapes in ``CPU_MATMUL_SHAPES`` / ``GPU_MATMUL_SHAPES``; ``n`` measures the single
    ``n x n`` square instead (quick runs, tests). bf16 on CPU runs the product in bf16 (oneDNN /
    MKL), as autocast does for the model's linears.
    """
    cuda = str(device).startswith("cuda")
    shapes = [(n, n, n)] if n else list(GPU_MATMUL_SHAPES if cuda else CPU_MATMUL_SHAPES)
    dt = DTYPES[dtype]
    best: dict[str, Any] = {}
    rates = {}
    for m_, k_, n_ in shapes:
        a = torch.randn(m_, k_, device=device, dtype=dt)
        b = torch.randn(k_, n_, device=device, dtype=dt)
        t = median(time_fn(lambda: torch.mm(a, b), device, warmup, runs))
        del a, b
        tflops = 2 * m_ * k_ * n_ / t / 1e12
        rates[f"{m_}x{k_}x{n_}"] = tflops
        if not best or tflops > best["matmul_tflops"]:
            best = {"matmul_shape": f"{m_}x{k_}x{n_}", "matmul_s": t, "matmul_tflops": tflops}
    return {**best, "matmul_dtype": dtype, "matmul_rates": rates}


# ------------------------------------------------------------------------------------- memory


def _read_status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int | None:
    return _read_status("VmRSS")


def release_free_memory() -> None:
    """Return freed heap memory to the OS so that RSS counts only live memory.

    glibc keeps freed blocks (and, after the first large free, serves even big tensors from the
    heap), so without this the RSS after a training step still holds its activations and a
    "memory in use" reading is too high by however much the last step happened to free.
    """
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, readings are upper bounds
        pass


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark (VmHWM) to the current RSS (Linux >= 4.0, ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """VmHWM, or ``ru_maxrss`` (never reset within a process) where /proc is not available."""
    hwm = _read_status("VmHWM")
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory over a ``with`` block: CUDA allocator peak on a GPU, RSS high-water mark on CPU.

    ``peak`` is absolute (runtime, weights, optimizer state and activations alike); ``start`` is
    what was live when the block began (on CPU after returning freed heap memory to the OS), so
    ``peak - start`` is what the block added on top: for a training step after a warm-up step,
    activations, gradients and temporaries.
    """

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith("cuda")
        self.method = "cuda.max_memory_allocated" if self.cuda else "VmHWM (malloc_trim, clear_refs reset)"
        for k, v in MEMORY_WORKER_ENV.items():  # say how this process's allocator was set up
            if not self.cuda and os.environ.get(k) == v:
                self.method += f", {k}={v}"
        self.start = self.peak = 0

    def __enter__(self) -> "PeakMemory":
        self.start = current_memory("cuda" if self.cuda else "cpu")
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        elif not reset_peak_rss():
            self.method = "ru_maxrss (not resettable: peak of the whole process)"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = peak_rss_bytes()

    @property
    def added(self) -> int:
        return max(self.peak - self.start, 0)


def current_memory(device: str) -> int:
    """Live memory now: CUDA allocated bytes, or RSS after returning freed heap memory to the OS."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    release_free_memory()
    return rss_bytes() or 0


# ------------------------------------------------------------------------------------ profile

# Ops whose self time is "useful" dense math: matmuls (including oneDNN's linear with its fused
# bias / GELU epilogue), convolutions (the tokenizer) and fused attention kernels. Everything else (LayerNorm, GELU, adds, copies for folding axes, softmax
# of an eager attention, ...) is overhead.
_MATH_CPU = re.compile(r"^mkldnn::_linear_pointwise$|^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_addmm_activation|"
                       r"_scaled_dot_product.*|_flash_attention.*|_efficient_attention.*|"
                       r"convolution|_convolution|mkldnn_convolution|conv[123]d|_slow_conv.*|"
                       r"mkldnn_linear|_mkldnn.*)$")
_MATH_CUDA = re.compile(r"(gemm|matmul|cutlass|xmma|flash|fmha|attention|conv|cublas|sm\d+_)", re.I)


def profile_forward(fn: Callable[[], Any], device: str, warmup: int = 1) -> dict[str, Any]:
    """Share of forward time spent in matmul / attention / convolution kernels.

    CPU: self CPU time of the aten matmul, SDPA and convolution ops over the self CPU time of all
    ops. GPU: self device time of GEMM / attention / conv kernels over all kernel time.
    """
    from torch.profiler import ProfilerActivity, profile
    cuda = str(device).startswith("cuda")
    for _ in range(warmup):
        fn()
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        sync(device)
    events = prof.key_averages()
    if cuda:
        rows = [(e.key, e.self_device_time_total) for e in events if e.self_device_time_total > 0
                and not e.key.startswith(("aten::", "cuda", "Memcpy", "Memset"))]
        pat = _MATH_CUDA
    else:
        rows = [(e.key, e.self_cpu_time_total) for e in events if e.self_cpu_time_total > 0]
        pat = _MATH_CPU
    total = sum(t for _, t in rows)
    math_t = sum(t for k, t in rows if pat.search(k))
    top = sorted(((k, t) for k, t in rows if not pat.search(k)), key=lambda r: -r[1])[:6]
    return {"math_share": math_t / total if total else float("nan"),
            "overhead_share": 1 - math_t / total if total else float("nan"),
            "profiled_ms": total / 1e3,
            "top_overhead": "; ".join(f"{k.replace('aten::', '')} {t / total:.1%}" for k, t in top)}


# --------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_state() -> dict[str, Any]:
    """Machine, software and load, recorded with every result."""
    info: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    try:
        info["loadavg"] = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        info["loadavg"] = "n/a"
    try:
        info["top"] = subprocess.run(["top", "-bn1"], capture_output=True, text=True, timeout=10).stdout.splitlines()[:15]
    except (OSError, subprocess.SubprocessError):
        info["top"] = []
    return info


def machine_markdown(info: dict[str, Any]) -> str:
    lines = [f"- time: {info['time']}",
             f"- CPU: {info['cpu']} ({info['cpu_count']} logical cores visible, affinity {info['cpu_affinity']})",
             f"- torch {info['torch']}, threads {info['torch_threads']}, Python {info['python']}"
             + (f", transformers {info['transformers']}" if "transformers" in info else ""),
             f"- GPU: {info.get('gpu', 'none (CPU run)')}",
             f"- load average (1/5/15 min) at start: {info['loadavg']}"]
    if info.get("top"):
        lines += ["", "```", *info["top"], "```"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- writers


def fmt(v: Any, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """``columns``: (key, header, format spec)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k), s) for k, _, s in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


# ---------------------------------------------------------------------------- subprocesses


RESULT_PREFIX = "BENCH_RESULT_JSON:"

# Environment of the CPU memory-measurement subprocesses: glibc serves every block of 64 KiB or
# more from its own mapping and unmaps it on free, so RSS follows live tensor memory (what
# ``cuda.max_memory_allocated`` reports on a GPU). With the default heap, blocks freed during a
# step are reused or not depending on allocation order, which moved TimeSformer-B's measured
# training peak by ~0.4 GB (checked: 1.55 GB above state with the heap, 1.18 GB live). Slower
# (page faults), so timing runs in separate processes with the default allocator.
MEMORY_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def memory_worker_env(device: str) -> dict[str, str] | None:
    """Environment for a memory-measurement subprocess on ``device`` (None: the default one)."""
    return None if str(device).startswith("cuda") else MEMORY_WORKER_ENV


def emit_result(obj: Any) -> None:
    """Worker side: print one result line the parent picks up."""
    print(RESULT_PREFIX + json.dumps(obj), flush=True)


def run_worker(argv: list[str], timeout: float | None = None, env: dict[str, str] | None = None) -> Any:
    """Run ``python argv...`` in a fresh process (its own memory high-water mark) and return the
    object it emitted with :func:`emit_result`; raise with its stderr tail if it failed."""
    full_env = dict(os.environ, **(env or {}))
    repo = str(Path(__file__).resolve().parents[1])
    full_env["PYTHONPATH"] = repo + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=full_env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-25:])
    raise RuntimeError(f"worker {' '.join(argv)} failed (rc {proc.returncode}):\n{tail}")


def gb(x: float | int | None) -> float | None:
    return None if x is None else x / 2 ** 30
