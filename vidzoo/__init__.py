"""vidzoo: video transformers (ViViT, TimeSformer, VideoMAE) built by name from interchangeable tokenizers
and attention variants, with pretrained weights from the Hugging Face Hub.

The public names below are imported on first use (PEP 562 ``__getattr__``): ``import vidzoo`` and
the ``vidzoo --help`` command do not import torch; ``vidzoo.create_model`` (or
``from vidzoo import create_model``) imports what it needs the first time it is touched.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# public name -> submodule that defines it
_LAZY = {
    "CheckpointError": "_convert", "CheckpointMismatchError": "_convert",
    "create_model": "_factory",
    "HubDownloadError": "_hub", "HubUploadError": "_hub", "ModelConfigError": "_hub", "push_to_hub": "_hub",
    "save_pretrained": "_hub", "OutputError": "_hub",
    "PretrainedCfg": "_pretrained",
    # the registry's readers come through vidzoo.models, whose import registers every family
    "get_pretrained_cfg": "models", "is_model": "models", "list_aliases": "models",
    "list_models": "models", "list_pretrained": "models", "register_model": "models",
    "register_model_alias": "models", "split_model_name_tag": "models",
    "set_fused_attn": "layers", "set_gelu_recompute": "layers", "use_fused_attn": "layers",
    "VideoTransformer": "models", "list_attention": "models", "register_attention": "models",
    "inflate_patch_kernel": "tokenizers", "list_tokenizers": "tokenizers", "register_tokenizer": "tokenizers",
    "CorruptCheckpointError": "_weights", "load_checkpoint": "_weights",
}
# sub-packages reachable as attributes after a bare ``import vidzoo``
_SUBMODULES = ("data", "engine", "layers", "models", "tokenizers")

__all__ = ["create_model", "list_models", "list_pretrained", "is_model", "list_aliases", "get_pretrained_cfg",
           "register_model", "register_model_alias", "split_model_name_tag", "PretrainedCfg", "VideoTransformer",
           "list_attention", "register_attention", "list_tokenizers", "register_tokenizer", "inflate_patch_kernel",
           "set_fused_attn", "set_gelu_recompute", "use_fused_attn", "save_pretrained", "push_to_hub",
           "load_checkpoint", "CheckpointError", "CheckpointMismatchError", "CorruptCheckpointError",
           "HubDownloadError", "HubUploadError", "ModelConfigError", "OutputError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from ._convert import CheckpointError, CheckpointMismatchError
    from ._factory import create_model
    from ._hub import HubDownloadError, HubUploadError, ModelConfigError, OutputError, push_to_hub, save_pretrained
    from ._pretrained import PretrainedCfg
    from .models import (get_pretrained_cfg, is_model, list_aliases, list_models, list_pretrained, register_model,
                         register_model_alias, split_model_name_tag)
    from ._weights import CorruptCheckpointError, load_checkpoint
    from .layers import set_fused_attn, set_gelu_recompute, use_fused_attn
    from .models import VideoTransformer, list_attention, register_attention
    from .tokenizers import inflate_patch_kernel, list_tokenizers, register_tokenizer
