"""Convert checkpoints of other formats to vidzoo state dicts.

Only vidzoo's own format is handled here so far; upstream converters (HF transformers ViViT and
TimeSformer, official TimeSformer, timm 2-D ViT) are added by the weights work.
"""
from __future__ import annotations

import torch
from torch import nn


def convert_state_dict(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` mapped onto ``model``'s parameter names and shapes."""
    return dict(state_dict)
