"""Getting a model for the engine: by registry name with overrides, from a saved folder, from a
training checkpoint or a training output folder; counting its parameters and multiply-adds."""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors
from torch.utils.flop_counter import FlopCounterMode

from .. import create_model
from .checkpoint import load_checkpoint
from .errors import UserError

PathLike = str | os.PathLike


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``['depth=4', 'img_size=(32, 32)', 'act_layer=gelu']`` -> ``{'depth': 4, 'img_size': (32, 32), ...}``.

    Values are Python literals when they parse as one, else strings.

    Raises:
        UserError: An item has no ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key] = value.strip()
    return out


def build_model(name: str, num_classes: int | None = None, pretrained: bool | None = None,
                **overrides: Any) -> nn.Module:
    """``create_model`` with user-facing errors: unknown names and arguments, sizes that do not fit.

    Args:
        name: Registered name, alias, ``arch.tag``, ``hf-hub:`` or ``local-dir:``.
        num_classes: Classifier outputs (the pretrained head is dropped when it differs).
        pretrained: Load the tag's weights; None keeps ``create_model``'s default (random init
            for registry names, the saved weights for ``hf-hub:`` / ``local-dir:`` models).
        **overrides: Model overrides (``num_frames``, ``img_size``, ``depth``, ...).

    Raises:
        UserError: The model cannot be built as asked.
    """
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    if pretrained is not None:
        overrides["pretrained"] = pretrained
    from .._convert import CheckpointError
    try:
        return create_model(name, **overrides)
    except (ValueError, TypeError) as e:
        raise UserError(f"cannot build model '{name}': {str(e).splitlines()[0]}") from e
    except (OSError, CheckpointError) as e:  # weights not downloadable / not found / not fitting
        raise UserError(f"cannot load the weights of '{name}': {str(e).splitlines()[0]}") from e


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model of a training checkpoint (architecture, arguments, weights, input cfg)."""
    model = build_model(ckpt["architecture"], **dict(ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    model.pretrained_cfg = dict(ckpt["pretrained_cfg"])
    return model


def resolve_model_path(path: Path) -> Path:
    """A training output folder -> its saved model folder (``model/``) or best/last checkpoint."""
    if path.is_dir() and not (path / "config.json").is_file():
        from .run_layout import RunLayout  # the run folder is defined once
        for cand in RunLayout(path).model_candidates():
            if cand.exists() and (cand.is_file() or (cand / "config.json").is_file()):
                return cand
        raise UserError(f"'{path}' is neither a saved vidzoo model folder (config.json + model.safetensors) "
                        f"nor a training output folder (model/ or checkpoints/)")
    return path


def load_model(name_or_path: str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """The model of ``vidzoo eval/predict --model``.

    Args:
        name_or_path: A registry name (``pretrained`` loads its tag's weights); a saved model
            folder; a training output folder (its ``model/``, else ``checkpoints/best.pth``, else
            ``last.pth``); a training checkpoint ``.pth``; ``hf-hub:org/repo`` or ``local-dir:DIR``.
        pretrained: For registry names.
        **overrides: For registry names.

    Returns:
        The model in eval mode.
    """
    path = Path(name_or_path)
    if path.exists():
        path = resolve_model_path(path)
        if path.is_file():
            model = model_from_checkpoint(load_checkpoint(path))
        else:
            model = build_model(f"local-dir:{path}")
    elif any(c in name_or_path for c in "/\\") and ":" not in name_or_path:
        raise UserError(f"--model '{name_or_path}' does not exist (and is not a registered model name)")
    else:
        model = build_model(name_or_path, pretrained=pretrained or None, **overrides)
    return model.eval()


def save_model_folder(model: nn.Module, path: PathLike) -> Path:
    """Save ``model`` in vidzoo's safetensors folder format (``config.json`` + ``model.safetensors``)
    through :func:`vidzoo.save_pretrained`; returns the folder."""
    from .._hub import save_pretrained
    return Path(save_pretrained(model, path))


# ---------------------------------------------------------------------------------- complexity
class _MetaInit(TorchFunctionMode):
    """Build a model with parameters on the meta device (no memory, no init cost), except the small
    index tensors some constructors read back (``linspace`` / ``arange``), which stay on CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _device_constructors() and kwargs.get("device") is None \
                and func not in (torch.linspace, torch.arange):
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def model_complexity(name: str, **overrides: Any) -> dict[str, Any]:
    """Parameters and multiply-adds of one forward pass of a batch of 1 at the model's input size.

    The model is built on the meta device and counted with
    :class:`torch.utils.flop_counter.FlopCounterMode`, so even ViViT-L takes well under a second and
    no memory. Multiply-adds (``GMACs``, FLOPs / 2) are what the ViViT and TimeSformer papers call
    "GFLOPs"; only matrix multiplications and convolutions are counted (as in fvcore).

    Returns:
        ``{'params': int, 'gmacs': float, 'input_size': (C, T, H, W), 'model': the (meta) model}``.
    """
    try:
        with _MetaInit():
            model = build_model(name, **overrides)
        on_meta = True
    except UserError:
        raise
    except Exception:  # a constructor that reads values back: build it for real on CPU
        model = build_model(name, **overrides)
        on_meta = False
    input_size = tuple(model.pretrained_cfg["input_size"])
    x = torch.empty(1, *input_size, device="meta" if on_meta else "cpu")
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return {"params": count_params(model), "gmacs": counter.get_total_flops() / 2e9, "input_size": input_size,
            "model": model}
