"""Video transformer models: blocks, heads, the composed model, and the named families (ViViT,
TimeSformer, VideoMAE, V-JEPA 2).

Importing this package registers every family's architectures, so the registry functions
re-exported here (as ``timm.models`` does) always see all of them.
"""
from .._registry import (closest_architectures_hint, get_pretrained_cfg, is_architecture, is_model, list_aliases,
                         list_models, list_pretrained, model_entrypoint, register_model, register_model_alias,
                         resolve_alias, split_model_name_tag)
from .blocks import (Block, DividedSpaceTimeBlock, FactorisedDotProductAttention, FactorisedDotProductBlock,
                     FactorisedSelfAttentionBlock)
from .heads import AttentivePooler
from .video_transformer import (VideoTransformer, get_attention, list_attention, register_attention)
from . import vivit, timesformer, videomae, vjepa2  # noqa: F401,E402  (register the named architectures)

__all__ = [
    "VideoTransformer", "get_attention", "list_attention", "register_attention", "AttentivePooler",
    "Block", "DividedSpaceTimeBlock", "FactorisedDotProductAttention", "FactorisedDotProductBlock",
    "FactorisedSelfAttentionBlock",
    "list_models", "list_pretrained", "list_aliases", "is_model", "is_architecture", "get_pretrained_cfg",
    "model_entrypoint", "resolve_alias", "split_model_name_tag", "closest_architectures_hint",
    "register_model", "register_model_alias",
]
