"""Building blocks shared by tokenizers and models (no model imports here)."""
from .attention import Attention, attend, set_fused_attn, use_fused_attn
from .mlp import GeluLinear, set_gelu_recompute
from .pos_embed import resample_pos_embed_3d, resample_time_embed, sincos_pos_embed_1d
from .rope import ROPE_LAYOUTS, apply_rope, rope3d_dim, rope3d_tables

__all__ = ["Attention", "GeluLinear", "attend", "set_fused_attn", "set_gelu_recompute", "use_fused_attn",
           "resample_pos_embed_3d", "resample_time_embed", "sincos_pos_embed_1d", "ROPE_LAYOUTS", "apply_rope",
           "rope3d_dim", "rope3d_tables"]
