"""``--compile``: ``torch.compile`` with an eager fallback, for every command that runs a model.

``torch.compile`` compiles lazily: at the first call of each new input signature (batch size, train
or eval mode, autocast dtype) and, in training, the backward graph at the first backward. Where it
cannot compile here (no C++ compiler for inductor's CPU kernels, no Triton for its GPU kernels, a
Python or platform that dynamo does not support, a graph a backend fails on) the model runs eagerly
and one line says why, instead of the run stopping with a compiler traceback.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable

import torch
from torch import nn

from .errors import note

__all__ = ["maybe_compile", "CompiledModel", "compile_unavailable", "is_compile_error"]

Log = Callable[[str], None]


def compile_unavailable(device: torch.device | str, backend: Any = "inductor") -> str | None:
    """Why ``torch.compile(backend=backend)`` cannot run on ``device`` here, known before compiling
    (None: nothing known against it; a graph may still fail, see :class:`CompiledModel`)."""
    import torch._dynamo
    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]} on {sys.platform} in torch {torch.__version__}"
    if backend != "inductor":
        return None
    device = torch.device(device)
    if device.type == "cpu":
        try:  # inductor builds its CPU kernels with a C++ compiler (torch._inductor.config.cpp.cxx, or $CXX)
            from torch._inductor import config as inductor_config
            from torch._inductor.cpp_builder import cpp_compiler_search
            cxx = inductor_config.cpp.cxx
            cpp_compiler_search(tuple(cxx) if isinstance(cxx, (list, tuple)) else (cxx,))
        except ImportError:
            return None  # torch moved its compiler search: the first call will tell
        except Exception:  # noqa: BLE001 (InvalidCxxCompiler, or whatever the search raises)
            return "no working C++ compiler for inductor's CPU kernels: install g++ or set CXX"
    elif device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return None
        if not has_triton():
            return "Triton is not installed, which inductor's GPU kernels need: pip install triton"
    return None


def is_compile_error(e: BaseException) -> bool:
    """Whether ``e`` comes from compiling (dynamo, AOTAutograd, a backend), not from the model's own
    code: a model that raises ``ValueError`` on a wrong input shape raises it compiled too."""
    import torch._dynamo.exc
    return isinstance(e, torch._dynamo.exc.TorchDynamoException)


def _reason(e: BaseException) -> str:
    inner = getattr(e, "inner_exception", None) or e
    first = next((line.strip() for line in str(inner).splitlines() if line.strip()), "")
    text = f"{type(inner).__name__}: {first}" if first else type(inner).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _backward_compiled_with_forward() -> contextlib.AbstractContextManager:
    """AOTAutograd compiles the backward graph at the first backward, where a failure could no
    longer fall back; with this it compiles it in the forward call, where it can."""
    try:
        import torch._functorch.config as functorch_config
        if hasattr(functorch_config, "force_non_lazy_backward_lowering"):
            return functorch_config.patch(force_non_lazy_backward_lowering=True)
    except ImportError:
        pass
    return contextlib.nullcontext()


class CompiledModel(nn.Module):
    """A model run through ``torch.compile``, falling back to the eager model for good at the first
    compile failure (one line through ``log`` says why). Attributes and methods other than
    ``forward`` are the model's (``num_classes``, ``pretrained_cfg``...); its state dict is the
    model's under ``_orig_mod.``, as ``torch.compile``'s.

    Attributes:
        compiled: False once it has fallen back to eager.
        fallback_reason: Why it fell back (None while compiled).
        first_call_s: Seconds of the first compiled call (the compilation), once it ran.
    """

    def __init__(self, model: nn.Module, compiled: Callable[..., Any] | None, log: Log,
                 fallback_reason: str | None = None) -> None:
        super().__init__()
        self._orig_mod = model
        # not a submodule: its parameters are the model's
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_log", log)
        self.fallback_reason = fallback_reason
        self.first_call_s: float | None = None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def record(self) -> dict[str, Any]:
        """For run files: ``{'compiled': bool, 'first_call_s': s}`` or ``{'compiled': False, 'fallback': why}``."""
        if self.fallback_reason is not None:
            return {"compiled": False, "fallback": self.fallback_reason}
        return {"compiled": self.compiled, "first_call_s": self.first_call_s}

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "_orig_mod":
                raise
            return getattr(self._orig_mod, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is not None:
            t0 = time.perf_counter()
            try:
                with _backward_compiled_with_forward() if torch.is_grad_enabled() else contextlib.nullcontext():
                    out = self._compiled(*args, **kwargs)
            except Exception as e:
                if not is_compile_error(e):
                    raise
                self.fallback_reason = _reason(e)
                object.__setattr__(self, "_compiled", None)
                self._log(f"--compile: torch.compile failed ({self.fallback_reason}); running eager")
            else:
                if self.first_call_s is None:
                    self.first_call_s = time.perf_counter() - t0
                    self._log(f"--compile: compiled the model in {self.first_call_s:.1f} s (first call)")
                return out
        return self._orig_mod(*args, **kwargs)


def maybe_compile(model: nn.Module, enabled: bool = True, *, backend: Any = "inductor", mode: str | None = None,
                  device: torch.device | str | None = None, log: Log | None = None) -> nn.Module:
    """``model`` compiled with ``torch.compile`` when ``enabled``: a :class:`CompiledModel`.

    Args:
        model: The module to run (a ``DistributedDataParallel`` wrapper too).
        enabled: ``--compile``; False returns ``model`` itself, untouched.
        backend: ``torch.compile``'s backend (``"eager"`` traces with dynamo only).
        mode: ``torch.compile``'s mode (``"max-autotune"``...).
        device: Where the model runs (default: where its first parameter is).
        log: Where the one-line notes go (default: stderr, prefixed ``vidzoo:``).

    Returns:
        A :class:`CompiledModel`: compiled, or running ``model`` eagerly where it cannot compile here
        (one line said why, ``fallback_reason`` holds it), and falling back at a compile failure.
    """
    if not enabled:
        return model
    log = log or note
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    why = compile_unavailable(device, backend)
    if why is None:
        try:
            return CompiledModel(model, torch.compile(model, backend=backend, mode=mode), log)
        except Exception as e:  # noqa: BLE001 (torch.compile refuses this Python / platform / backend)
            why = _reason(e)
    log(f"--compile: cannot compile here ({why}); running eager")
    return CompiledModel(model, None, log, fallback_reason=why)
