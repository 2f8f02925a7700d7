"""Training checkpoints: atomic writes, RNG state capture, loading with ``weights_only=True``.

A checkpoint is a plain dict of tensors and Python primitives (model, optimizer, scheduler and
grad-scaler state, epoch, history, per-rank RNG states, the run's config), so it loads with
``torch.load(..., weights_only=True)``: opening one never runs pickled code.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._hub import atomic_replace, atomic_write_text
from .._local import LocalModelError, read_training_checkpoint
from .errors import UserError

PathLike = str | os.PathLike


_atomic_replace = atomic_replace  # one implementation, shared with vidzoo.save_pretrained


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` that is atomic on one filesystem.

    Raises:
        OutputError: A full disk, a read-only folder...: one line naming the file; nothing is left
            behind.
    """
    def write(tmp: str) -> None:
        # Through a Python file object, not a path: torch's own file writer reports a full disk only
        # as "RuntimeError: [enforce fail at inline_container.cc]"; with a file object the OSError
        # of the failed write is raised (or is the context of torch's RuntimeError, raised while
        # closing the archive). The archive still streams to disk (no second copy in memory).
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
        except RuntimeError as e:
            cause = _os_error_in(e)
            if cause is None:
                raise
            raise cause from e
    return _atomic_replace(write, path)


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError (with an errno) that ``e`` was raised from or while handling, if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


def atomic_write_json(obj: Any, path: PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN and infinities written as ``null``: the file is
    always valid JSON)."""
    return atomic_write_text(json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n", path)


def atomic_copy(src: PathLike, dst: PathLike) -> Path:
    """Copy a file atomically."""
    return _atomic_replace(lambda tmp: shutil.copyfile(src, tmp), dst)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):  # NaN / inf: not JSON
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _json_safe(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------------ RNG
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) RNG states as weights-only-loadable data."""
    py = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(np_state["state"]["key"]).astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------- checkpoints
def save_checkpoint(state: dict[str, Any], path: PathLike) -> Path:
    """Write a training checkpoint atomically."""
    return atomic_save(state, path)


def load_checkpoint(path: PathLike, mmap: bool = False) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`save_checkpoint` (on CPU, weights only).

    Args:
        path: The file.
        mmap: Map the tensors instead of reading them (cheap when only the metadata is read).

    Raises:
        UserError: The file does not exist or is not a vidzoo training checkpoint.
    """
    try:
        return read_training_checkpoint(path, mmap=mmap)
    except LocalModelError as e:
        raise UserError(str(e)) from e


def optimizer_mismatch(saved: dict[str, Any], current: dict[str, Any], limit: int = 4) -> str:
    """How a saved optimizer ``state_dict`` differs from the optimizer's own: the parameter groups
    (count, sizes and settings such as weight decay and lr scale), the first ``limit`` that differ."""
    a, b = saved.get("param_groups") or [], current.get("param_groups") or []
    if len(a) != len(b):
        return (f"{len(a)} parameter group(s) saved, {len(b)} now (e.g. another --opt, --weight-decay 0 or "
                "--layer-decay groups the parameters differently)")
    diffs = []
    for i, (ga, gb) in enumerate(zip(a, b)):
        if len(ga.get("params", ())) != len(gb.get("params", ())):
            diffs.append(f"group {i}: {len(ga['params'])} parameters saved, {len(gb['params'])} now")
        for key in sorted(set(ga) & set(gb) - {"params", "lr", "initial_lr"}):  # lr moves with the schedule
            if ga[key] != gb[key]:
                diffs.append(f"group {i}: {key} {ga[key]!r} saved, {gb[key]!r} now")
    more = f", ... ({len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more if diffs else "its state does not match the parameters"
