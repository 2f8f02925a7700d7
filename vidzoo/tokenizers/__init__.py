"""Registry of video tokenizers: ``uniform`` (per-frame ViT patches) and ``tubelet`` (3-D patches)."""
from __future__ import annotations

from typing import Callable

from .._utils import unknown_name_error
from .base import VideoTokenizer
from .tubelet import INFLATION_MODES, TubeletTokenizer, inflate_patch_kernel
from .uniform import UniformFrameTokenizer

_TOKENIZERS: dict[str, type[VideoTokenizer]] = {}


def register_tokenizer(name: str) -> Callable[[type[VideoTokenizer]], type[VideoTokenizer]]:
    """Class decorator adding a :class:`VideoTokenizer` subclass to the registry under ``name``."""
    def wrap(cls: type[VideoTokenizer]) -> type[VideoTokenizer]:
        _TOKENIZERS[name] = cls
        return cls
    return wrap


def list_tokenizers() -> list[str]:
    """Names of the registered tokenizers."""
    return sorted(_TOKENIZERS)


def get_tokenizer(name: str) -> type[VideoTokenizer]:
    """Tokenizer class registered as ``name`` (ValueError listing close names if unknown)."""
    if name not in _TOKENIZERS:
        raise unknown_name_error("tokenizer", name, _TOKENIZERS)
    return _TOKENIZERS[name]


register_tokenizer("uniform")(UniformFrameTokenizer)
register_tokenizer("tubelet")(TubeletTokenizer)

__all__ = ["VideoTokenizer", "UniformFrameTokenizer", "TubeletTokenizer", "inflate_patch_kernel",
           "INFLATION_MODES", "register_tokenizer", "list_tokenizers", "get_tokenizer"]
