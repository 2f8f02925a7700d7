"""Precision policy shared by training, evaluation and prediction: which autocast dtype ``--amp``
means on a device, why, and the autocast context for it.

``--amp auto`` on CUDA: bf16 where the GPU has it, else fp16. On a CPU, bf16 only where it is native
(AMX or AVX512-BF16 on x86, the BF16 extension on Arm: read from ``/proc/cpuinfo``) *and* measured
faster than fp32 by a probe of a small transformer MLP block (~0.1 s), whose result is cached per
CPU model and torch version in ``user_cache_dir()/cpu_bf16_probe.json``; fp32 otherwise. Elsewhere
bf16 is emulated and several times slower than fp32. (``torch.backends.cpu.get_cpu_capability()``
does not tell: it reports ``AVX512`` with or without BF16.)
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
           "cpu_flags", "decide_cpu_bf16", "run_bf16_probe", "cached_bf16_probe", "NATIVE_BF16_FLAGS",
           "MIN_PROBE_SPEEDUP"]

# /proc/cpuinfo flags of native bf16 matmuls: Intel AMX (Sapphire Rapids+), AVX512-BF16 (Cooper Lake+,
# AMD Zen 4+), Arm's BF16 extension (Neoverse V1+, "Features" line).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# bf16 must beat fp32 on the probe block by this much: the model gains less than a matmul-heavy block
# (autocast casts, LayerNorm / softmax in fp32), and a tie is not worth bf16's coarser rounding.
MIN_PROBE_SPEEDUP = 1.25
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
        probe: The CPU probe the choice read (``auto`` on a CPU with native bf16).
    """

    requested: str
    dtype: torch.dtype | None
    reason: str
    probe: Bf16Probe | None = None

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
        if self.probe is not None:
            out["probe"] = dict(asdict(self.probe), speedup=round(self.probe.speedup, 3))
        return out


@dataclass(frozen=True)
class Bf16Probe:
    """Best-of times of the probe block in fp32 and under bf16 autocast, on ``threads`` threads."""

    fp32_ms: float
    bf16_ms: float
    threads: int

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


def run_bf16_probe(rounds: int = 7) -> Bf16Probe:
    """Time a ViT-S MLP block (LayerNorm, 384 -> 1536 -> 384 with GELU, 512 tokens) in fp32 and under
    CPU bf16 autocast, alternately, best of ``rounds`` (~0.1 s where bf16 is native).

    One thread, timed in that thread's CPU seconds: the ratio is a property of the core's
    instructions, and it stays the same on a machine busy with other work (wall-clock times on
    shared cores varied from 0.8x to 2.5x between runs here; CPU times did not). Leaves torch's
    global RNG alone, so a run's seeded stream does not depend on whether the result was cached.
    """
    g = torch.Generator().manual_seed(0)
    d, h, n = 384, 1536, 512
    x = torch.randn(n, d, generator=g)
    w1, w2 = torch.randn(h, d, generator=g) / d ** 0.5, torch.randn(d, h, generator=g) / h ** 0.5
    b1, b2 = torch.zeros(h), torch.zeros(d)

    def block(bf16: bool) -> float:
        t0 = time.thread_time()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            F.linear(F.gelu(F.linear(F.layer_norm(x, (d,)), w1, b1)), w2, b2)
        return time.thread_time() - t0

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        block(False), block(True)  # first calls: oneDNN primitive creation
        best = {False: math.inf, True: math.inf}
        for _ in range(rounds):
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], block(bf16))
    finally:
        torch.set_num_threads(threads)
    return Bf16Probe(fp32_ms=best[False] * 1e3, bf16_ms=best[True] * 1e3, threads=1)


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
def decide_cpu_bf16(flags: Collection[str] | None, probe: Bf16Probe | None) -> tuple[bool, str]:
    """Whether ``--amp auto`` takes bf16 on a CPU with ``flags`` (None: unknown) whose probe measured
    ``probe`` (None: not run), and why."""
    if flags is None:
        return False, "the CPU's flags are unknown here (no /proc/cpuinfo), so bf16 may be emulated; --amp bf16 forces it"
    native = [f for f in NATIVE_BF16_FLAGS if f in flags]
    if not native:
        return False, "this CPU has no AMX, AVX512-BF16 or Arm BF16, so bf16 would be emulated and slower than fp32"
    if probe is None:
        return False, f"the CPU has {', '.join(native)} but the speed probe did not run"
    ratio = f"bf16 ran {probe.speedup:.2f}x as fast as fp32 on a probe block"
    if probe.speedup >= MIN_PROBE_SPEEDUP:
        return True, f"the CPU has {', '.join(native)} and {ratio}"
    return False, f"the CPU has {', '.join(native)}, but {ratio} (bf16 needs {MIN_PROBE_SPEEDUP}x)"


def choose_amp(amp: str, device: torch.device, say: Callable[[str], None] | None = None) -> AmpChoice:
    """What ``--amp`` means on ``device``, and why (see the module's docstring for ``auto``).

    Args:
        amp: One of :data:`AMP_MODES`.
        device: Where the model runs.
        say: Given, it is told the choice in one line (:meth:`AmpChoice.line`) when ``amp`` is
            ``auto`` and turned autocast on, so the numbers differ from fp32's (a value the user gave
            needs no explaining, nor does full precision).

    Raises:
        UserError: Not one of :data:`AMP_MODES`, or fp16 off CUDA.
    """
    choice = _choose(amp, device)
    if say is not None and amp == "auto" and choice.dtype is not None:
        say(choice.line())
    return choice


def _choose(amp: str, device: torch.device) -> AmpChoice:
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
    probe, source = None, ""
    if flags is not None and any(f in flags for f in NATIVE_BF16_FLAGS):
        probe, source = cached_bf16_probe()
    use_bf16, reason = decide_cpu_bf16(flags, probe)
    if source:
        reason += f"; probe {source}"
    return AmpChoice(amp, torch.bfloat16 if use_bf16 else None, reason, probe)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``--amp`` on ``device`` (None: full precision); see :func:`choose_amp`."""
    return choose_amp(amp, device).dtype


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def amp_name(dtype: torch.dtype | None) -> str:
    """``'fp32'``, ``'bf16'`` or ``'fp16'``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
