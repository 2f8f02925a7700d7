"""vidzoo: video transformers (ViViT, TimeSformer) built by name from interchangeable tokenizers
and attention variants, with pretrained weights from the Hugging Face Hub."""
from ._convert import CheckpointError, CheckpointMismatchError
from ._factory import create_model
from ._hub import HubDownloadError, HubUploadError, ModelConfigError, push_to_hub, save_pretrained
from ._pretrained import PretrainedCfg
from ._registry import (get_pretrained_cfg, is_model, list_aliases, list_models, list_pretrained, register_model,
                        register_model_alias, split_model_name_tag)
from .layers import set_fused_attn, set_gelu_recompute, use_fused_attn
from .models import VideoTransformer, list_attention, register_attention
from .tokenizers import inflate_patch_kernel, list_tokenizers, register_tokenizer
from ._weights import CorruptCheckpointError, load_checkpoint
from .version import __version__

__all__ = ["create_model", "list_models", "list_pretrained", "is_model", "list_aliases", "get_pretrained_cfg",
           "register_model", "register_model_alias", "split_model_name_tag", "PretrainedCfg", "VideoTransformer",
           "list_attention", "register_attention", "list_tokenizers", "register_tokenizer", "inflate_patch_kernel",
           "set_fused_attn", "set_gelu_recompute", "use_fused_attn", "save_pretrained", "push_to_hub",
           "load_checkpoint", "CheckpointError", "CheckpointMismatchError", "CorruptCheckpointError",
           "HubDownloadError", "HubUploadError", "ModelConfigError", "__version__"]
