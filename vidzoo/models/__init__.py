"""Video transformer models: blocks, the composed model, and the named ViViT / TimeSformer families."""
from .blocks import (Block, DividedSpaceTimeBlock, FactorisedDotProductAttention, FactorisedDotProductBlock,
                     FactorisedSelfAttentionBlock)
from .video_transformer import (VideoTransformer, get_attention, list_attention, register_attention)
from . import vivit, timesformer, videomae  # noqa: F401  (register the named architectures)
