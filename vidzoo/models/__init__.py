"""Video transformer models: blocks, heads, the composed model, and the named families (ViViT, TimeSformer,
VideoMAE, V-JEPA 2)."""
from .blocks import (Block, DividedSpaceTimeBlock, FactorisedDotProductAttention, FactorisedDotProductBlock,
                     FactorisedSelfAttentionBlock)
from .heads import AttentivePooler
from .video_transformer import (VideoTransformer, get_attention, list_attention, register_attention)
from . import vivit, timesformer, videomae, vjepa2  # noqa: F401  (register the named architectures)
