"""Precision policy shared by training, evaluation and prediction: which autocast dtype ``--amp``
means on a device, why, and the autocast context for it.

``--amp auto`` on CUDA: bf16 where the GPU has it, else fp16. On a CPU, bf16 only where it is native
(AMX or AVX512-BF16 on x86, the BF16 extension on Arm: read from ``/proc/cpuinfo``) *and* measured
faster than fp32, twice:

1. by a probe of a transformer MLP block (~0.1 s; cached per CPU model and torch version in
   ``user_cache_dir()/cpu_bf16_probe.json``): are bf16 matmuls native-fast here at all;
2. by a probe of the run's own model (its training step or forward, at a batch that keeps the call
   near a GMAC, so only models small enough to time in well under a second): small models gain
   little from faster matmuls and lose to autocast's casts and to bf16 attention backward, which is
   slower than fp32's on CPUs for short sequences (the demo's model trained 0.65x as fast in bf16
   on an AMX CPU, where TimeSformer-S ran inference 2.5x as fast). Larger models are matmul-bound
   and follow the block probe.

fp32 otherwise: elsewhere bf16 is emulated and several times slower. (``torch.backends.cpu.
get_cpu_capability()`` does not tell: it reports ``AVX512`` with or without BF16.)
"""
from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Collection

import torch
import torch.nn.functional as F

from .._choices import AMP_MODES
from .._utils import user_cache_dir
from .errors import UserError

__all__ = ["AMP_MODES", "AmpChoice", "Bf16Probe", "choose_amp", "resolve_amp", "autocast_context", "amp_name",
           "cpu_flags", "decide_cpu_bf16", "run_bf16_probe", "probe_model", "cached_bf16_probe", "NATIVE_BF16_FLAGS",
           "MIN_PROBE_SPEEDUP", "MIN_MODEL_SPEEDUP", "MODEL_PROBE_MACS"]

# /proc/cpuinfo flags of native bf16 matmuls: Intel AMX (Sapphire Rapids+), AVX512-BF16 (Cooper Lake+,
# AMD Zen 4+), Arm's BF16 extension (Neoverse V1+, "Features" line).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# bf16 must beat fp32 on the probe block by this much: a model gains less than a matmul-heavy block
# (autocast casts, LayerNorm / softmax in fp32), and a tie is not worth bf16's coarser rounding.
MIN_PROBE_SPEEDUP = 1.25
# ...and on the model's own step by this much (it is the thing itself; a tie keeps fp32).
MIN_MODEL_SPEEDUP = 1.1
# The model probe times calls of at most this many multiply-adds (about 40 ms in fp32 on one core of
# the AMX machine this was tuned on); a model whose single clip costs more is not probed.
MODEL_PROBE_MACS = 1e9
CPUINFO = Path("/proc/cpuinfo")
PROBE_CACHE = "cpu_bf16_probe.json"
_CACHE_VERSION = 1


@dataclass(frozen=True)
class AmpChoice:
    """What ``--amp`` resolved to on a device, and why.

    Attributes:
        requested: The ``--amp`` value.
        dtype: The autocast dtype (None: full precision).
        reason: Why, in a few words.
        probe: The CPU's block probe the choice read (``auto`` on a CPU with native bf16).
        model_probe: The model's own probe (``auto``, a CPU whose block probe passed, a small model).
    """

    requested: str
    dtype: torch.dtype | None
    reason: str
    probe: Bf16Probe | None = None
    model_probe: Bf16Probe | None = None

    @property
    def name(self) -> str:
        return amp_name(self.dtype)

    def line(self) -> str:
        """``'precision: bf16 autocast (--amp auto: ...)'``."""
        what = "fp32" if self.dtype is None else f"{self.name} autocast"
        return f"precision: {what} (--amp {self.requested}: {self.reason})"

    def record(self) -> dict[str, Any]:
        """For run files: ``{'amp': requested, 'dtype': 'bf16', 'reason': ..., 'probe': {...}}``."""
        out: dict[str, Any] = {"amp": self.requested, "dtype": self.name, "reason": self.reason}
        for key, probe in (("probe", self.probe), ("model_probe", self.model_probe)):
            if probe is not None:
                out[key] = dict(asdict(probe), speedup=round(probe.speedup, 3))
        return out


@dataclass(frozen=True)
class Bf16Probe:
    """Best-of times of one call in fp32 and under bf16 autocast, on ``threads`` threads; ``what`` was
    timed (``'probe block'``, ``'training step, batch 16'``)."""

    fp32_ms: float
    bf16_ms: float
    threads: int
    what: str = "probe block"

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.bf16_ms


# ------------------------------------------------------------------------------------- inputs
def cpu_flags(path: Path | None = None) -> frozenset[str] | None:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) from ``/proc/cpuinfo``; None where it
    cannot be read (not Linux)."""
    try:
        with open(path or CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return frozenset()


def cpu_model_name(path: Path | None = None) -> str:
    """``model name`` from ``/proc/cpuinfo`` (else the platform's processor string)."""
    try:
        with open(path or CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model name"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _best_times(call: Callable[[bool], None], rounds: int, budget_s: float | None = None) -> tuple[float, float] | None:
    """Best thread-CPU seconds of ``call(False)`` (fp32) and ``call(True)`` (bf16), alternating, on one
    thread: the ratio is a property of the core's instructions, and it stays the same on a machine
    busy with other work (wall-clock ratios on shared cores varied from 0.8x to 2.5x between runs
    here; CPU-time ones did not). None when the first fp32 call exceeds ``budget_s``."""
    def timed(bf16: bool) -> float:
        t0 = time.thread_time()
        call(bf16)
        return time.thread_time() - t0

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if budget_s is not None and timed(False) > budget_s:
            return None
        timed(False), timed(True)  # first calls: oneDNN primitive creation
        best = {False: math.inf, True: math.inf}
        for _ in range(rounds):
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], timed(bf16))
    finally:
        torch.set_num_threads(threads)
    return best[False], best[True]


def run_bf16_probe(rounds: int = 7) -> Bf16Probe:
    """Time a ViT-S MLP block (LayerNorm, 384 -> 1536 -> 384 with GELU, 512 tokens) in fp32 and under
    CPU bf16 autocast, alternately, best of ``rounds``, on one thread (~0.1 s where bf16 is native).
    Leaves torch's global RNG alone, so a run's seeded stream does not depend on whether the result
    was cached."""
    g = torch.Generator().manual_seed(0)
    d, h, n = 384, 1536, 512
    x = torch.randn(n, d, generator=g)
    w1, w2 = torch.randn(h, d, generator=g) / d ** 0.5, torch.randn(d, h, generator=g) / h ** 0.5
    b1, b2 = torch.zeros(h), torch.zeros(d)

    def block(bf16: bool) -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            F.linear(F.gelu(F.linear(F.layer_norm(x, (d,)), w1, b1)), w2, b2)
    fp32_s, bf16_s = _best_times(block, rounds)  # type: ignore[misc]
    return Bf16Probe(fp32_ms=fp32_s * 1e3, bf16_ms=bf16_s * 1e3, threads=1)


def probe_model(model: torch.nn.Module, batch: int = 1, train: bool = False, rounds: int = 3) -> Bf16Probe | None:
    """Time ``model``'s own forward (``train``: forward and backward, in training mode) on random clips,
    fp32 against bf16 autocast, alternately, best of ``rounds``, on one thread.

    The batch is ``batch`` or less, so that one call stays near :data:`MODEL_PROBE_MACS`
    multiply-adds (estimated as tokens x parameters per clip, x3 with the backward). The model is
    left as it was: its mode, its gradients and torch's global RNG.

    Returns:
        The probe, or None for a model whose single clip costs more than that (matmul-bound: the
        block probe speaks for it) or that is not a video model on the CPU.
    """
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
    grid = getattr(model, "grid_size", None)
    params = list(model.parameters())
    if not size or not grid or not params or params[0].device.type != "cpu":
        return None
    macs = math.prod(grid) * sum(p.numel() for p in params) * (3 if train else 1)
    batch = min(batch, int(MODEL_PROBE_MACS // max(macs, 1)))
    if batch < 1:
        return None
    x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(0), dtype=params[0].dtype)
    was_training, grads = model.training, [p.grad for p in params]

    def step(bf16: bool) -> None:
        with torch.set_grad_enabled(train), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        if train:
            out.float().sum().backward()
            for p in params:
                p.grad = None
    try:
        for p in params:  # the probe's backward must not add into them
            p.grad = None
        with torch.random.fork_rng(devices=[]):
            model.train(train)
            times = _best_times(step, rounds, budget_s=1.0)
    finally:
        model.train(was_training)
        for p, g in zip(params, grads):
            p.grad = g
    if times is None:
        return None
    what = f"{'training step' if train else 'forward'}, batch {batch}"
    return Bf16Probe(fp32_ms=times[0] * 1e3, bf16_ms=times[1] * 1e3, threads=1, what=what)


def probe_cache_key() -> str:
    """The cache entry of this machine: CPU model and torch version."""
    return f"{cpu_model_name()} | torch {torch.__version__}"


def _read_probe_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; an unreadable, corrupt or foreign file counts as empty (and is rewritten)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION or not isinstance(data.get("probes"), dict):
        return {}
    return data["probes"]


def _probe_of(entry: Any) -> Bf16Probe | None:
    try:
        probe = Bf16Probe(float(entry["fp32_ms"]), float(entry["bf16_ms"]), int(entry["threads"]))
    except (TypeError, KeyError, ValueError):
        return None
    ok = all(math.isfinite(v) and v > 0 for v in (probe.fp32_ms, probe.bf16_ms))
    return probe if ok else None


def cached_bf16_probe(cache_dir: Path | None = None) -> tuple[Bf16Probe, str]:
    """This machine's probe from the cache, else measured now and written to it (atomically; a corrupt
    cache file is replaced).

    Returns:
        The probe and where it came from (``'cached'``, ``'measured now'``, or ``'measured now, not
        cached (...)'`` when the cache cannot be written).
    """
    from .checkpoint import atomic_write_json
    path = (cache_dir or user_cache_dir()) / PROBE_CACHE
    key = probe_cache_key()
    probes = _read_probe_cache(path)
    probe = _probe_of(probes.get(key))
    if probe is not None:
        return probe, "cached"
    probe = run_bf16_probe()
    probes = {k: v for k, v in probes.items() if _probe_of(v) is not None}
    probes[key] = dict(asdict(probe), speedup=round(probe.speedup, 3), time=time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        atomic_write_json({"version": _CACHE_VERSION, "probes": probes}, path)
    except OSError as e:  # vidzoo's OutputError included
        return probe, f"measured now, not cached ({str(e).splitlines()[0]})"
    return probe, "measured now"


# ----------------------------------------------------------------------------------- decision
def decide_cpu_bf16(flags: Collection[str] | None, probe: Bf16Probe | None,
                    model_probe: Bf16Probe | None = None) -> tuple[bool, str]:
    """Whether ``--amp auto`` takes bf16 on a CPU with ``flags`` (None: unknown) whose block probe
    measured ``probe`` and the model's own probe ``model_probe`` (None: not run), and why."""
    if flags is None:
        return False, "the CPU's flags are unknown here (no /proc/cpuinfo), so bf16 may be emulated; --amp bf16 forces it"
    native = [f for f in NATIVE_BF16_FLAGS if f in flags]
    if not native:
        return False, "this CPU has no AMX, AVX512-BF16 or Arm BF16, so bf16 would be emulated and slower than fp32"
    if probe is None:
        return False, f"the CPU has {', '.join(native)} but the speed probe did not run"
    ratio = f"bf16 ran {probe.speedup:.2f}x as fast as fp32 on a probe block"
    if probe.speedup < MIN_PROBE_SPEEDUP:
        return False, f"the CPU has {', '.join(native)}, but {ratio} (bf16 needs {MIN_PROBE_SPEEDUP}x)"
    if model_probe is None:
        return True, f"the CPU has {', '.join(native)} and {ratio}"
    own = f"{model_probe.speedup:.2f}x on the model's {model_probe.what}"
    if model_probe.speedup < MIN_MODEL_SPEEDUP:
        return False, f"the CPU has {', '.join(native)} and {ratio}, but {own} (bf16 needs {MIN_MODEL_SPEEDUP}x)"
    return True, f"the CPU has {', '.join(native)}, {ratio} and {own}"


def choose_amp(amp: str, device: torch.device, say: Callable[[str], None] | None = None,
               model: torch.nn.Module | None = None, batch: int = 1, train: bool = False) -> AmpChoice:
    """What ``--amp`` means on ``device``, and why (see the module's docstring for ``auto``).

    Args:
        amp: One of :data:`AMP_MODES`.
        device: Where the model runs.
        say: Given, it is told the choice in one line (:meth:`AmpChoice.line`) when ``amp`` is
            ``auto`` and turned autocast on, so the numbers differ from fp32's (a value the user gave
            needs no explaining, nor does full precision).
        model: The run's model, probed on a CPU when small (:func:`probe_model`).
        batch: Clips per call of the run (the model probe's batch, at most).
        train: The run trains (the model probe times a training step).

    Raises:
        UserError: Not one of :data:`AMP_MODES`, or fp16 off CUDA.
    """
    choice = _choose(amp, device, model, batch, train)
    if say is not None and amp == "auto" and choice.dtype is not None:
        say(choice.line())
    return choice


def _choose(amp: str, device: torch.device, model: torch.nn.Module | None, batch: int, train: bool) -> AmpChoice:
    if amp not in AMP_MODES:
        raise UserError(f"--amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "none":
        return AmpChoice(amp, None, "full precision as asked")
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 or none on CPU")
    if amp in ("bf16", "fp16"):
        return AmpChoice(amp, torch.bfloat16 if amp == "bf16" else torch.float16, "as asked")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return AmpChoice(amp, torch.bfloat16, "the GPU supports bf16")
        return AmpChoice(amp, torch.float16, "the GPU has no bf16")
    if device.type != "cpu":
        return AmpChoice(amp, None, f"no autocast policy for {device.type}")
    flags = cpu_flags()
    probe = model_probe = None
    source = ""
    if flags is not None and any(f in flags for f in NATIVE_BF16_FLAGS):
        probe, source = cached_bf16_probe()
        if model is not None and probe.speedup >= MIN_PROBE_SPEEDUP:
            model_probe = probe_model(model, batch, train)
    use_bf16, reason = decide_cpu_bf16(flags, probe, model_probe)
    if source:
        reason += f"; block probe {source}"
    return AmpChoice(amp, torch.bfloat16 if use_bf16 else None, reason, probe, model_probe)


def resolve_amp(amp: str, device: torch.device, model: torch.nn.Module | None = None, batch: int = 1,
                train: bool = False) -> torch.dtype | None:
    """Autocast dtype for ``--amp`` on ``device`` (None: full precision); see :func:`choose_amp`."""
    return choose_amp(amp, device, model=model, batch=batch, train=train).dtype


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def amp_name(dtype: torch.dtype | None) -> str:
    """``'fp32'``, ``'bf16'`` or ``'fp16'``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
