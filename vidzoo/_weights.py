"""Pretrained weights: read a checkpoint (state dict, file or Hub), convert it, load it all-or-nothing.

``create_model(..., pretrained=True)`` ends in :func:`load_pretrained`. The source is the first
present of ``pretrained_cfg.state_dict``, ``.file`` and ``.hf_hub_id``; a file in an upstream
format goes through exactly the conversion a Hub download does (and reads the ``config.json``
beside it, as the Hub path reads the repo's). Safetensors files are read with safetensors,
anything else with ``torch.load(weights_only=True)`` only.

The converted state dict is checked against the model before any parameter is written, so a
checkpoint that does not fit raises :class:`CheckpointMismatchError` and leaves the model as it was.
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ._convert import CheckpointError, CheckpointMismatchError, convert_state_dict
from ._hub import WEIGHT_FILES, download_file, download_weights
from ._pretrained import PretrainedCfg, pretrained_cfg_from_dict

_logger = logging.getLogger(__name__)

__all__ = ["WEIGHT_FILES", "CorruptCheckpointError", "load_state_dict_from_file", "pretrained_cfg_from_dict",
           "load_checkpoint", "load_pretrained", "apply_state_dict", "torch_load_reason",
           "refused_pickle_reason"]
_GENERIC_LABEL = "LABEL_{}"


class CorruptCheckpointError(CheckpointError, OSError):
    """A checkpoint file exists but cannot be read (truncated, corrupt, unsafe pickle, not a checkpoint)."""


# ----------------------------------------------------------------------------------- reading
def _resolve_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        for name in WEIGHT_FILES:
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"No checkpoint in folder '{p}': expected one of {', '.join(WEIGHT_FILES)}.")
    if not p.is_file():
        raise FileNotFoundError(f"Checkpoint file '{p}' does not exist.")
    return p


def load_state_dict_from_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file (or a folder holding ``model.safetensors`` / ``pytorch_model.bin``).

    ``.safetensors`` files are read with safetensors; ``.bin`` / ``.pth`` / ``.pt`` / ``.pyth`` and
    other files with ``torch.load(weights_only=True)`` (never an unrestricted pickle).

    Raises:
        FileNotFoundError: Nothing at ``path``.
        CorruptCheckpointError: The file cannot be read; the message names it.
    """
    p = _resolve_file(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(p), device="cpu")
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every reader error means the same to the caller
        refused = refused_pickle_reason(e) if _foreign_file(p) is None else None
        if refused is not None:
            raise CorruptCheckpointError(
                f"Refusing to load checkpoint file '{p}': {refused}. vidzoo reads checkpoints with "
                "torch.load(weights_only=True) only, so a file that pickles code or objects is not loaded; save "
                "the plain state dict (tensors) instead.") from e
        raise CorruptCheckpointError(
            f"Could not read checkpoint file '{p}': {torch_load_reason(e, p)}. The file is "
            "truncated, corrupt or not a checkpoint. If it came from the Hugging Face cache, delete it there (or "
            "pass force_download) and load again.") from e
    if not isinstance(sd, Mapping):
        raise CorruptCheckpointError(f"Checkpoint file '{p}' holds a {type(sd).__name__}, not a state dict.")
    return dict(sd)


_BLOCKED_GLOBAL = re.compile(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked")
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")
_REFUSED = "(weights-only loading refuses it)"


def _global_name(name: str) -> str:
    """A pickled global as the user knows it: torch prints ``builtins.eval`` as ``eval`` and
    ``os.system`` is pickled as ``posix.system`` (``nt.system`` on Windows)."""
    if "." not in name:
        return f"builtins.{name}"
    module, _, attr = name.rpartition(".")
    return f"{name} (os.{attr})" if module in ("posix", "nt") else name


def refused_pickle_reason(e: BaseException) -> str | None:
    """What a ``torch.load(weights_only=True)`` refusal refused, or None when ``e`` is no refusal.

    Names the pickled global that was blocked (``posix.system (os.system)``, ``builtins.eval``,
    a class) when torch's message says which; torch's advice to retry with ``weights_only=False``
    or to allow-list the global is never repeated.
    """
    text = str(e)
    if not (isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in text):
        return None
    blocked = _BLOCKED_GLOBAL.search(text)
    if blocked:
        name, module = _global_name(blocked.group(1)), blocked.group(2)
        return f"it pickles the global {name} of blocked module '{module}' {_REFUSED}"
    unsafe = _UNSAFE_GLOBAL.search(text)
    if unsafe:
        return f"it pickles the global {_global_name(unsafe.group(1))}, not a tensor or plain value {_REFUSED}"
    # Another refusal: the unpickler's own sentence, without torch's advice around it.
    body = text.split("WeightsUnpickler error:", 1)[-1]
    keep = [ln.strip() for ln in body.splitlines() if ln.strip() and not any(
        w in ln for w in ("weights_only", "Weights only load failed", "add_safe_globals", "safe_globals(",
                          "documentation of torch.load", "Please file an issue", "trust"))]
    return f"{keep[0].rstrip('. ') if keep else 'unsupported content'} {_REFUSED}"


def _foreign_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` is no PyTorch checkpoint at all (neither a zip archive nor a pickle), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if head and not head.startswith((b"PK\x03\x04", b"\x80")):
        return f"not a PyTorch checkpoint (neither a zip archive nor a pickle; it starts with {head!r})"
    return None


def torch_load_reason(e: BaseException, path: str | os.PathLike | None = None) -> str:
    """Why ``torch.load`` failed, without torch's advice to retry with ``weights_only=False``.

    A refused pickle names what it refused (:func:`refused_pickle_reason`, ending in
    ``(weights-only loading refuses it)``); a file that is neither a zip archive nor a pickle (a
    text file, say, which torch reports as a bare ``KeyError``) is called what it is; anything
    else gives the error's first line.
    """
    foreign = _foreign_file(path) if path is not None else None
    if foreign is not None:  # torch's unpickler refuses a text file too: say what the file is instead
        return foreign
    refused = refused_pickle_reason(e)
    if refused is not None:
        return refused
    text = str(e)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def _sibling_hf_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The HF transformers ``config.json`` next to a checkpoint file, if there is one."""
    p = Path(path)
    cfg = _read_json((p if p.is_dir() else p.parent) / "config.json")
    return cfg if cfg and cfg.get("model_type") in ("vivit", "timesformer", "videomae", "vjepa2") else None


def hf_source_grid(config: Mapping[str, Any] | None) -> tuple[int, int, int] | None:
    """Token grid ``(T, H, W)`` of an HF transformers ViViT / TimeSformer / VideoMAE checkpoint from its config."""
    if not config:
        return None
    size = config.get("image_size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    frames = config.get("num_frames", 8)
    if config.get("model_type") == "vivit":
        t, ph, pw = config.get("tubelet_size", (2, 16, 16))
    elif config.get("model_type") == "timesformer":
        t = 1
        ph = pw = config.get("patch_size", 16)
    else:
        return None
    return frames // t, h // ph, w // pw


def label_names_from_config(config: Mapping[str, Any] | None) -> list[str] | None:
    """Class names from an HF ``config.json``'s ``id2label`` (None when absent or the generic ``LABEL_i``)."""
    id2label = (config or {}).get("id2label")
    if not isinstance(id2label, Mapping) or not id2label:
        return None
    names = []
    for i in range(len(id2label)):  # JSON keys are strings; a dict made in Python may have ints
        name = id2label.get(str(i), id2label.get(i))  # type: ignore[call-overload]
        if name is None:
            return None
        names.append(str(name))
    return None if all(n == _GENERIC_LABEL.format(i) for i, n in enumerate(names)) else names


# ----------------------------------------------------------------------------------- loading
def _call_filter(filter_fn: Callable, state_dict: Mapping[str, Any], model: nn.Module, **kwargs: Any) -> dict:
    """Call a checkpoint filter with the keyword arguments it accepts (user filters may take only two)."""
    params = inspect.signature(filter_fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return filter_fn(state_dict, model, **kwargs)
    return filter_fn(state_dict, model, **{k: v for k, v in kwargs.items() if k in params})


def _describe(keys: list[str], limit: int = 12) -> str:
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def apply_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                     strict: bool = True) -> None:
    """Load ``state_dict`` into ``model`` only if it fits: every key and shape is checked first.

    Raises:
        CheckpointMismatchError: Listing missing and unexpected keys and shape mismatches; the
            model is left unchanged.
    """
    target = model.state_dict()
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(target[k].shape)) for k in state_dict
                  if k in target and state_dict[k].shape != target[k].shape]
    if mismatched or (strict and (missing or unexpected)):
        name = getattr(model, "architecture", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_describe(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_describe(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): " + _describe(
                [f"{k} checkpoint {s} vs model {t}" for k, s, t in mismatched], limit=8))
        raise CheckpointMismatchError(
            f"{source} does not fit {name}: " + "; ".join(parts) + ". Nothing was loaded; the model is unchanged. "
            "Create the model with the checkpoint's architecture arguments (embed_dim, depth, num_heads, "
            "attention, tokenizer, ...).", missing, unexpected, mismatched)
    with torch.no_grad():
        model.load_state_dict(state_dict, strict=strict)


def load_checkpoint(model: nn.Module, checkpoint_path: str | os.PathLike, *, strict: bool = True,
                    filter_fn: Callable | None = None, inflation: str = "central_frame",
                    source_format: str | None = None) -> dict[str, Any]:
    """Load a checkpoint file of any supported format into an existing vidzoo model.

    The file is converted as a pretrained tag's download is (HF transformers ViViT / TimeSformer /
    VideoMAE, official TimeSformer, original VideoMAE, timm ViT or vidzoo), using the ``config.json``
    beside it when there is one.

    Returns:
        The conversion report: ``format``, ``head_dropped``, ``notes``.
    """
    hf_cfg = _sibling_hf_config(checkpoint_path)
    return _convert_and_apply(model, load_state_dict_from_file(checkpoint_path), f"Checkpoint '{checkpoint_path}'",
                              hf_cfg, filter_fn, strict, inflation=inflation, source_format=source_format,
                              source_grid=hf_source_grid(hf_cfg))


def _convert_and_apply(model: nn.Module, state_dict: Mapping[str, Any], source: str,
                       hf_config: Mapping[str, Any] | None, filter_fn: Callable | None, strict: bool,
                       **convert_kwargs: Any) -> dict[str, Any]:
    """Convert with the filter, load all-or-nothing, attach the HF config's label names."""
    report: dict[str, Any] = {}
    sd = _call_filter(filter_fn or convert_state_dict, state_dict, model, report=report, **convert_kwargs)
    apply_state_dict(model, sd, source=source, strict=strict)
    cfg = getattr(model, "pretrained_cfg", None)
    names = label_names_from_config(hf_config)
    if isinstance(cfg, dict) and not report.get("head_dropped") and names and len(names) == model.num_classes:
        cfg["label_names"] = names
    return report


def stored_numel(cfg: PretrainedCfg) -> int | None:
    """Number of values in the weights a cfg names, without loading them: the in-memory state dict,
    or the header of a ``.safetensors`` file (local, or a saved vidzoo model on the Hub, downloaded
    here instead of after the build); None when unknown (a pickle, a file that cannot be read)."""
    if cfg.state_dict is not None:
        return sum(v.numel() for v in cfg.state_dict.values() if isinstance(v, torch.Tensor))
    path = cfg.file
    if not path and cfg.hf_hub_id and cfg.source_format == "vidzoo":  # the load reads the same cached file
        path = download_weights(cfg.hf_hub_id, cfg.hf_hub_filename, revision=cfg.hf_hub_revision)
    if path and str(path).endswith(".safetensors") and os.path.isfile(path):
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        except Exception:  # noqa: BLE001 - an unreadable file is reported by the load itself
            return None
    return None


def check_head_kept(report: Mapping[str, Any], model: nn.Module, asked: bool, weights: str,
                    declared: str = "the model") -> None:
    """The one rule for a classifier that does not fit: it is replaced by a fresh (random) one only
    when the caller asked for a class count other than the one the weights come with.

    A checkpoint whose classifier has another size than the model it was declared for (a saved
    folder whose ``config.json`` disagrees with its ``model.safetensors``, a tag's file with another
    class count) is refused; nothing would say that the head is random. The classifier of an image
    checkpoint (``timm_vit`` format) belongs to another task and is always replaced, as its tags say.

    Args:
        report: The conversion report of the load (``head_dropped``, ``head_classes``, ``format``).
        model: The loaded model.
        asked: The caller asked for this class count (e.g. ``num_classes=`` other than the cfg's).
        weights: The weights, for the message.
        declared: What declared the model's class count, for the message (``its config.json``).

    Raises:
        CheckpointMismatchError: Naming both class counts.
    """
    n = getattr(model, "num_classes", 0)
    if not report.get("head_dropped") or not n or asked or report.get("format") == "timm_vit":
        return
    have = report.get("head_classes")
    held = f"a classifier of {have} classes" if have else "no classifier"
    fix = (f"pass num_classes={have} to load it as it is, or " if have else "") \
        + "ask for the class count you want explicitly (num_classes=N) to start a new head for fine-tuning"
    raise CheckpointMismatchError(f"{weights} holds {held}, but {declared} has {n} classes: its head would be "
                                  f"random; {fix}", mismatched=[("head.weight", (have or 0,), (n,))])


def _cfg_grid_hint(cfg: PretrainedCfg, model: nn.Module) -> tuple[int, int, int] | None:
    """The token grid of a tag's own weights (its native num_frames / input size) for this model's patches."""
    tok = getattr(model, "patch_embed", None)
    if tok is None or not cfg.input_size or len(cfg.input_size) != 4:
        return None
    t = getattr(tok, "tubelet_size", 1)
    ph, pw = tok.patch_size
    return cfg.num_frames // t, cfg.input_size[2] // ph, cfg.input_size[3] // pw


def load_pretrained(model: nn.Module, pretrained_cfg: PretrainedCfg | Mapping[str, Any] | None = None,
                    filter_fn: Callable | None = None, strict: bool = True) -> dict[str, Any]:
    """Load the weights named by ``pretrained_cfg`` into ``model`` (state_dict > file > Hub).

    The Hub path downloads ``hf_hub_filename`` of ``hf_hub_id`` at ``hf_hub_revision`` through
    huggingface_hub (its cache, token and offline mode apply). For HF transformers checkpoints the
    repo's ``config.json`` is read too, for the checkpoint's grid and ``id2label`` (attached as
    ``model.pretrained_cfg['label_names']``); if it cannot be fetched the weights still load.

    Returns:
        The conversion report: ``format``, ``head_dropped`` (the checkpoint's classifier had
        another class count and a fresh head was initialised), ``notes``.

    Raises:
        ValueError: The cfg names no weights.
        vidzoo._hub.HubDownloadError: Not cached and the Hub cannot be reached (or repo/file unknown).
        CorruptCheckpointError: A file cannot be read.
        CheckpointMismatchError: The converted checkpoint does not fit; the model is unchanged.
    """
    if pretrained_cfg is None:
        pretrained_cfg = getattr(model, "pretrained_cfg", None) or {}
    cfg = pretrained_cfg if isinstance(pretrained_cfg, PretrainedCfg) else pretrained_cfg_from_dict(pretrained_cfg)
    name = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else (cfg.architecture or type(model).__name__)
    hf_cfg: dict[str, Any] | None = None
    if cfg.state_dict is not None:
        sd, source = cfg.state_dict, "pretrained_cfg.state_dict"
    elif cfg.file:
        sd, source = load_state_dict_from_file(cfg.file), f"Checkpoint file '{cfg.file}'"
        hf_cfg = _sibling_hf_config(cfg.file)
    elif cfg.hf_hub_id:
        path = download_weights(cfg.hf_hub_id, cfg.hf_hub_filename, revision=cfg.hf_hub_revision)
        sd, source = load_state_dict_from_file(path), f"Checkpoint '{cfg.hf_hub_id}/{Path(path).name}'"
        if (cfg.source_format or "").startswith("hf_"):
            try:
                hf_cfg = _read_json(download_file(cfg.hf_hub_id, "config.json", revision=cfg.hf_hub_revision))
            except Exception as e:  # noqa: BLE001 - labels are optional, the weights are not
                _logger.info("config.json of %s could not be fetched (%s): label names stay unset.", cfg.hf_hub_id, e)
    else:
        raise ValueError(f"No pretrained weights for '{name}': its cfg has no state_dict, file or hf_hub_id. "
                         f"Tags with weights: vidzoo.list_pretrained('{cfg.architecture or '*'}*').")
    grid = cfg.extra.get("source_grid") or hf_source_grid(hf_cfg) or _cfg_grid_hint(cfg, model)
    report = _convert_and_apply(model, sd, source, hf_cfg, filter_fn, strict, inflation=cfg.inflation,
                                source_format=cfg.source_format, source_grid=grid)
    _logger.info("Loaded pretrained weights for %s from %s (%s format).", name, source, report.get("format", "?"))
    return report
