"""Random weights for the parity tests against transformers (shared by test_convert and test_videomae)."""
from __future__ import annotations

import torch


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere: LayerNorm scales around 1, every bias (q/v biases included) and
    norm bias non-zero, so a wrong, dropped or misplaced tensor cannot hide behind an init of zeros
    and ones; logits come out of order 1. Returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name and name.endswith("weight"):  # also transformers' "layernorm_*"
                p.copy_(1 + 0.2 * noise)
            elif "classifier" in name:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.05 * noise)
    return model.eval()
