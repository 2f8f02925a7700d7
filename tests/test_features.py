"""timm-style feature API: ``forward_intermediates`` / ``prune_intermediate_layers`` for every
attention variant, checked against forward hooks on the blocks and against ``forward_features``."""
from __future__ import annotations

import pytest
import torch
from einops import rearrange

import vidzoo
from vidzoo.models.video_transformer import list_attention

TINY = dict(embed_dim=32, depth=3, num_heads=2, num_frames=4, img_size=32, patch_size=8, num_classes=3)


def _model(attention: str, tokenizer: str = "tubelet", **kw) -> torch.nn.Module:
    args = dict(TINY, attention=attention, tokenizer=tokenizer, **kw)
    if tokenizer == "tubelet":
        args.setdefault("tubelet_size", 2)
    torch.manual_seed(0)
    return vidzoo.create_model("vivit_tubelet", **args).eval()


def _block_outputs(model, x):
    """Every block's raw output, in feature-index order (spatial then temporal blocks), by hooks."""
    outs = []
    blocks = list(model.blocks) + list(getattr(model, "temporal_blocks", []))
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o)) for b in blocks]
    with torch.no_grad():
        model.forward_features(x)
    for h in hooks:
        h.remove()
    return outs


def _expected_map(model, y, i, B):
    """Reference feature map (B, D, T', H', W') and prefix from a hooked block output."""
    T, H, W = model.grid_size
    P = model.num_prefix_tokens
    if model.attention == "factorised_encoder" and i >= len(model.blocks):  # temporal: one token per step
        return rearrange(y[:, P:], "b t d -> b d t 1 1"), (y[:, :P] if P else None)
    if model.attention in ("space_only", "factorised_encoder"):  # frames encoded alone
        m = rearrange(y[:, P:], "(b t) (h w) d -> b d t h w", b=B, h=H)
        return m, (rearrange(y[:, :P], "(b t) p d -> b t p d", b=B) if P else None)
    return rearrange(y[:, P:], "b (t h w) d -> b d t h w", t=T, h=H), (y[:, :P] if P else None)


@pytest.mark.parametrize("tokenizer", ["tubelet", "uniform"])
@pytest.mark.parametrize("attention", list_attention())
def test_forward_intermediates_every_variant(attention, tokenizer):
    model = _model(attention, tokenizer)
    B = 2
    x = torch.randn(B, *model.pretrained_cfg["input_size"])
    T, H, W = model.grid_size
    n_blocks = len(model.blocks) + len(getattr(model, "temporal_blocks", []))
    ref = _block_outputs(model, x)
    assert len(ref) == n_blocks
    with torch.no_grad():
        final, feats = model.forward_intermediates(x, return_prefix_tokens=True)
        expected_final = model.forward_features(x)
    torch.testing.assert_close(final, expected_final)
    assert len(feats) == n_blocks
    for i, item in enumerate(feats):
        fmap, prefix = item if model.num_prefix_tokens else (item, None)
        want_map, want_prefix = _expected_map(model, ref[i], i, B)
        temporal = model.attention == "factorised_encoder" and i >= len(model.blocks)
        assert fmap.shape == ((B, model.embed_dim, T, 1, 1) if temporal else (B, model.embed_dim, T, H, W))
        torch.testing.assert_close(fmap, want_map)
        if model.num_prefix_tokens:
            torch.testing.assert_close(prefix, want_prefix)
    # Last 2 blocks, normalised, tokens: (B, T'H'W', D) with the final norm applied.
    with torch.no_grad():
        nlc = model.forward_intermediates(x, indices=2, norm=True, output_fmt="NLC", intermediates_only=True)
    assert len(nlc) == 2 and all(isinstance(t, torch.Tensor) for t in nlc)
    last_norm = model.temporal_norm if model.attention == "factorised_encoder" else model.norm
    want = rearrange(_expected_map(model, last_norm(ref[-1]), n_blocks - 1, B)[0], "b d t h w -> b (t h w) d")
    torch.testing.assert_close(nlc[-1], want)


def test_indices_and_errors():
    model = _model("joint")
    x = torch.randn(1, *model.pretrained_cfg["input_size"])
    ref = _block_outputs(model, x)
    with torch.no_grad():
        feats = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
    assert len(feats) == 2  # class token present but not asked for: maps only
    torch.testing.assert_close(feats[0], _expected_map(model, ref[0], 0, 1)[0])
    torch.testing.assert_close(feats[1], _expected_map(model, ref[2], 2, 1)[0])
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NCHW")
    with pytest.raises(AssertionError, match="out of range"):
        model.forward_intermediates(x, indices=[3])


def test_intermediates_only_skips_later_blocks():
    model = _model("divided")
    calls = []
    model.blocks[2].register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        model.forward_intermediates(x, indices=[1], intermediates_only=True)
    assert not calls
    with torch.no_grad():
        model.forward_intermediates(x, indices=[1])
    assert calls  # the final tokens need every block


@pytest.mark.parametrize("attention", list_attention())
def test_prune_intermediate_layers(attention):
    model = _model(attention)
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        before = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    kept = model.prune_intermediate_layers(indices=[1], prune_norm=True)
    assert kept == [1]
    assert len(model.blocks) == 2 and model.num_classes == 0 and isinstance(model.head, torch.nn.Identity)
    assert isinstance(model.norm, torch.nn.Identity)
    if attention == "factorised_encoder":
        assert len(model.temporal_blocks) == 0
    with torch.no_grad():
        after = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    torch.testing.assert_close(after[0], before[0])


def test_prune_factorised_encoder_keeps_spatial_stage_for_temporal_features():
    model = _model("factorised_encoder", temporal_depth=3)  # feature indices 0-2 spatial, 3-5 temporal
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        before = model.forward_intermediates(x, indices=[4], intermediates_only=True)
    assert model.prune_intermediate_layers(indices=[4]) == [4]
    assert len(model.blocks) == 3 and len(model.temporal_blocks) == 2
    with torch.no_grad():
        after = model.forward_intermediates(x, indices=[4], intermediates_only=True)
    assert after[0].shape == (2, 32, model.grid_size[0], 1, 1)
    torch.testing.assert_close(after[0], before[0])


def test_grad_checkpointing_does_not_change_intermediates():
    model = _model("factorised_self_attention")
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    a = model.forward_intermediates(x, intermediates_only=True)
    model.set_grad_checkpointing(True)
    b = model.forward_intermediates(x, intermediates_only=True)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    sum(t.sum() for t in b).backward()
    assert model.patch_embed.proj.weight.grad is not None
