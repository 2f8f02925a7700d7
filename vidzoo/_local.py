"""What a local path given as a model is, for ``create_model(path)`` and ``--model PATH`` alike.

A path (anything that exists, has a path separator, or starts with ``.`` / ``~``: a registry name has
none of these) is one of:

* a vidzoo model folder: ``config.json`` + ``model.safetensors`` (loaded as ``local-dir:PATH``);
* a training run folder of ``vidzoo train``: its ``model/``, else ``checkpoints/best.pth``, else
  ``checkpoints/last.pth`` (named in :mod:`vidzoo._run_files`; the run's other files are
  :class:`vidzoo.engine.run_layout.RunLayout`'s);
* a training checkpoint ``.pth`` written by ``vidzoo train`` (read with ``weights_only=True``), which
  carries its architecture, arguments, input cfg and class names.

This module reads files and builds nothing: :mod:`vidzoo._factory` builds the model, the one place
models are built.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ._hub import CONFIG_NAME
from ._pretrained import PretrainedCfg, pretrained_cfg_from_dict, training_provenance
from ._run_files import run_model_candidates
from ._weights import torch_load_reason

__all__ = ["LocalModelError", "looks_like_path", "resolve_model_path", "read_training_checkpoint",
           "checkpoint_model_spec", "CHECKPOINT_KEYS"]

PathLike = str | os.PathLike

# What every training checkpoint holds (vidzoo.engine.trainer writes it).
CHECKPOINT_KEYS = ("model", "model_name", "architecture", "model_args", "pretrained_cfg", "classes")

_SCHEMES = ("hf-hub:", "local-dir:")


class LocalModelError(ValueError):
    """A local path that is not a model vidzoo can load (not a model folder, run folder or vidzoo
    training checkpoint, or an unreadable one); the message is one line naming the path."""


def looks_like_path(name: str) -> bool:
    """Whether a model name is a path (checked before any ``name.tag`` parsing).

    Existing files and folders are paths; so is anything with a path separator or starting with
    ``.`` / ``~`` (a registry name never has these), so ``runs/exp.v2`` is a missing path, not the
    architecture ``runs/exp`` with tag ``v2``.
    """
    if name.startswith(_SCHEMES):
        return False
    return Path(name).expanduser().exists() or any(c in name for c in "/\\") or name.startswith((".", "~"))


def resolve_model_path(path: PathLike) -> Path:
    """A run folder -> its saved model folder or best/last checkpoint; a model folder or a file as it is.

    Raises:
        LocalModelError: ``path`` does not exist, or is a folder that is neither kind.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise LocalModelError(f"'{path}' does not exist (and is not a registered model name)")
    if path.is_dir() and not (path / CONFIG_NAME).is_file():
        for cand in run_model_candidates(path):
            if cand.exists() and (cand.is_file() or (cand / CONFIG_NAME).is_file()):
                return cand
        raise LocalModelError(f"'{path}' is neither a saved vidzoo model folder (config.json + model.safetensors) "
                              f"nor a training output folder (model/ or checkpoints/)")
    return path


def read_training_checkpoint(path: PathLike, mmap: bool = False) -> dict[str, Any]:
    """A training checkpoint written by ``vidzoo train``, loaded on CPU with ``weights_only=True`` (opening
    one never runs pickled code); ``mmap`` maps the tensors instead of reading them (cheap when only the
    metadata is read).

    Raises:
        LocalModelError: The file does not exist, is not a PyTorch file, holds foreign pickled objects, is
            truncated, or is not a vidzoo training checkpoint (one line naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise LocalModelError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # truncated file, not a torch file, foreign pickled objects
        reason = torch_load_reason(e, path)
        if reason.startswith("not a PyTorch checkpoint"):
            raise LocalModelError(f"'{path}' is not a vidzoo checkpoint: {reason}") from e
        if "weights-only loading refuses it" in reason:
            raise LocalModelError(f"refusing to load checkpoint '{path}': {reason}") from e
        raise LocalModelError(f"cannot read checkpoint '{path}': {reason} (truncated or corrupt?)") from e
    if not isinstance(ckpt, dict):
        raise LocalModelError(f"'{path}' is not a vidzoo checkpoint: it holds a {type(ckpt).__name__}, not a "
                              "training checkpoint dict")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise LocalModelError(f"'{path}' is not a vidzoo checkpoint: it has no {', '.join(repr(k) for k in missing)} "
                              "(a vidzoo training checkpoint is written by `vidzoo train`; for other weights use "
                              "`vidzoo convert`)")
    return ckpt


def checkpoint_model_spec(ckpt: dict[str, Any], path: PathLike, is_registered: Callable[[str], bool]
                          ) -> tuple[PretrainedCfg, str, dict[str, Any], dict[str, Any], list[str]]:
    """What to build from a training checkpoint: ``(pretrained_cfg, architecture, model_args, provenance,
    class names)``. The cfg carries the checkpoint's weights (``state_dict``, format ``vidzoo``) and input
    settings (the weight average of a run trained with ``--ema``), never where the weights it was fine-tuned
    from came from; the provenance says how it was trained.

    Raises:
        LocalModelError: No registered ``architecture``, or no ``model_args`` / ``pretrained_cfg`` dicts.
    """
    arch, args, pcfg = ckpt.get("architecture"), ckpt.get("model_args"), ckpt.get("pretrained_cfg")
    if not isinstance(arch, str) or not is_registered(arch) or not isinstance(args, dict) \
            or not isinstance(pcfg, dict):
        raise LocalModelError(f"'{path}' is not a vidzoo training checkpoint (no registered 'architecture', "
                              "'model_args' and 'pretrained_cfg')")
    classes: Sequence[str] = ckpt.get("classes") or []
    provenance = training_provenance(pcfg.get("provenance"), ckpt.get("config") or {}, classes)
    cfg = pretrained_cfg_from_dict({k: v for k, v in pcfg.items()
                                    if k not in ("file", "hf_hub_id", "hf_hub_filename", "hf_hub_revision")})
    # a run trained with --ema is its weight average, as the run's saved model is
    weights = ckpt["model_ema"] if ckpt.get("model_ema") is not None else ckpt["model"]
    cfg = cfg.replace(state_dict=weights, source_format="vidzoo", provenance=None, tag="")
    return cfg, arch, dict(args), provenance, list(classes)
