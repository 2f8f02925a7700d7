"""Core model zoo: registry, factory, every registered model and every tokenizer x attention pair."""
from __future__ import annotations

import itertools

import pytest
import timm
import torch

import vidzoo
from vidzoo.engine.model_io import model_complexity
from vidzoo.models.tables import PAPER_FIGURES, VIT_SIZES
from vidzoo.models.video_transformer import VideoTransformer

torch.set_num_threads(2)

TINY = dict(embed_dim=32, depth=1, num_heads=2, num_frames=4, img_size=32, patch_size=8, num_classes=3)
PAIRS = list(itertools.product(["uniform", "tubelet"], ["joint", "factorised_encoder", "factorised_self_attention",
                                                       "factorised_dot_product", "divided", "space_only"]))


def _clip(model: VideoTransformer, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *model.pretrained_cfg["input_size"], generator=g)


def _randomise_embeddings(model: VideoTransformer) -> None:
    """Zero-initialised tables (time_embed) would hide order bugs: give them values."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" in name and "proj" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_registries_list_the_required_components():
    assert {"uniform", "tubelet"} <= set(vidzoo.list_tokenizers())
    assert {"joint", "factorised_encoder", "factorised_self_attention", "factorised_dot_product", "divided",
            "space_only"} <= set(vidzoo.list_attention())


def test_list_models_filters_like_timm():
    allm = vidzoo.list_models()
    assert len(allm) >= 20 and allm == sorted(allm, key=lambda s: s)  # natural order equals lexical here
    vivit = vidzoo.list_models("vivit_*")
    assert vivit and all(n.startswith("vivit_") for n in vivit)
    assert set(vidzoo.list_models(["vivit_fsa_*", "timesformer_space_*"])) == {
        n for n in allm if n.startswith(("vivit_fsa_", "timesformer_space_"))}
    no_tiny = vidzoo.list_models("*", exclude_filters=["*_tiny_*", "*_small_*"])
    assert no_tiny and not any("_tiny_" in n or "_small_" in n for n in no_tiny)
    assert vidzoo.list_models(module="timesformer") == vidzoo.list_models("timesformer_*")
    assert all("." not in n for n in allm)  # tags only with pretrained / include_tags


def test_aliases_resolve_and_are_models():
    aliases = vidzoo.list_aliases()
    assert aliases["vivit_tubelet"] == "vivit_joint_base_patch16x2_224"
    assert aliases["timesformer"] == "timesformer_divided_base_patch16_224"
    assert "vivit_uniform" in aliases and vidzoo.is_model("vivit_uniform")
    assert vidzoo.is_model("vivit_organmnist3d") and not vidzoo.is_model("vivit_nonexistent")
    m = vidzoo.create_model("vivit_tubelet", **TINY)
    assert m.architecture == "vivit_joint_base_patch16x2_224"
    assert m.model_args["tokenizer"] == "tubelet" and m.model_args["attention"] == "joint"
    assert vidzoo.create_model("vivit_uniform", **TINY).model_args["tokenizer"] == "uniform"


def test_unknown_names_list_closest_matches():
    with pytest.raises(ValueError, match=r"Unknown model 'vivit_jiont_base_patch16x2_224'.*vivit_joint_base_patch16x2_224"):
        vidzoo.create_model("vivit_jiont_base_patch16x2_224")
    with pytest.raises(ValueError, match=r"Unknown tokenizer 'tubelets'.*tubelet"):
        vidzoo.create_model("vivit_tubelet", tokenizer="tubelets", **TINY)
    with pytest.raises(ValueError, match=r"Unknown attention variant 'divide'.*divided"):
        vidzoo.create_model("vivit_tubelet", attention="divide", **TINY)
    with pytest.raises(ValueError, match=r"Unknown pretrained tag 'nope'"):
        vidzoo.create_model("vivit_joint_base_patch16x2_224.nope")
    with pytest.raises(TypeError, match=r"Unexpected model argument.*'temporal_depth'.*Accepted:"):
        vidzoo.create_model("vivit_tubelet", temporal_depth=2, **TINY)


@pytest.mark.parametrize("name", vidzoo.list_models())
def test_every_registered_model_forward_backward(name):
    """Each entry point with tiny overrides: logits shape, finite gradients reaching the tokenizer."""
    kwargs = dict(TINY)
    if vidzoo.get_pretrained_cfg(name).input_size[0] == 1:  # one-channel volumes model keeps its chans
        kwargs["num_classes"] = 11
    model = vidzoo.create_model(name, **kwargs)
    assert isinstance(model, VideoTransformer)
    x = _clip(model)
    out = model(x)
    assert out.shape == (2, kwargs["num_classes"])
    out.logsumexp(-1).sum().backward()
    grad = model.patch_embed.proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == tuple(x.shape[1:]) and cfg["num_frames"] == x.shape[2]
    assert len(cfg["mean"]) == len(cfg["std"]) == x.shape[1]


@pytest.mark.parametrize("tokenizer,attention", PAIRS)
def test_tokenizer_attention_pairs_compose(tokenizer, attention, monkeypatch):
    """Every tokenizer with every attention variant (2 x 6 pairs): shape, backward, SDPA vs eager parity."""
    model = vidzoo.create_model("vivit_tubelet", tokenizer=tokenizer, attention=attention, embed_dim=48, depth=2,
                                num_heads=4, num_frames=4, img_size=32, patch_size=8, num_classes=3)
    assert model.model_args["tokenizer"] == tokenizer and model.attention == attention
    t_expected = 4 if tokenizer == "uniform" else 2
    assert model.grid_size == (t_expected, 4, 4)
    _randomise_embeddings(model)
    x = _clip(model)
    y = model(x)
    assert y.shape == (2, 3)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        vidzoo.set_fused_attn(False)
        try:
            eager = model(x)
        finally:
            vidzoo.set_fused_attn(True)
        # these sequences are short enough for the CPU eager shortcut: force SDPA everywhere
        monkeypatch.setattr(vidzoo.layers.attention, "_CPU_EAGER_MAX_LEN", 0)
        fused = model(x)
    assert torch.allclose(eager, fused, atol=1e-5), (eager - fused).abs().max()
    assert not torch.allclose(fused[0], fused[1])  # different clips, different logits


@pytest.mark.parametrize("attention", ["joint", "divided", "factorised_self_attention", "factorised_dot_product",
                                       "factorised_encoder"])
def test_temporal_variants_see_frame_order(attention):
    model = vidzoo.create_model("vivit_tubelet", tokenizer="uniform", attention=attention, **TINY).eval()
    _randomise_embeddings(model)
    with torch.no_grad():  # strong weights so that temporal mixing is far above float noise
        for name, p in model.named_parameters():
            if p.ndim == 2 and "embed" not in name:
                p.normal_(0, 0.3)
    x = _clip(model, batch=1)
    with torch.no_grad():
        a, b = model(x), model(x.flip(2))
        assert (a - b).abs().max() > 1e-3, (a - b).abs().max()


def test_space_only_ignores_frame_order_and_averages_frames():
    """Space-only encodes frames independently and averages them (official TimeSformer)."""
    model = vidzoo.create_model("timesformer_space_base_patch16_224", **TINY).eval()
    _randomise_embeddings(model)
    x = _clip(model, batch=1)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        assert torch.allclose(model(x), model(x[:, :, perm]), atol=1e-6)
        # Reference: each frame through the same model as a 1-frame clip, token states averaged.
        single = vidzoo.create_model("timesformer_space_base_patch16_224", **dict(TINY, num_frames=1)).eval()
        single.load_state_dict(model.state_dict())
        frames = []
        for t in range(4):
            tokens = single.patch_embed(x[:, :, t:t + 1]) + single.pos_embed[:, 1:].unsqueeze(1)
            seq = torch.cat([single._prefix(1), tokens.flatten(1, 2)], 1)
            for blk in single.blocks:
                seq = blk(seq)
            frames.append(seq)
        ref = single.head(single.norm(torch.stack(frames).mean(0))[:, 0])
        assert torch.allclose(model(x), ref, atol=1e-5)


def test_uniform_joint_single_frame_matches_timm_vit():
    """A 1-frame uniform/joint model is a ViT: logits equal timm's VisionTransformer with the same weights."""
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=48,
                            depth=2, num_heads=3, num_classes=5).eval()
    model = vidzoo.create_model("vivit_tubelet", tokenizer="uniform", attention="joint", num_frames=1, img_size=32,
                                patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5,
                                act_layer="gelu").eval()
    missing, unexpected = model.load_state_dict(vit.state_dict(), strict=False)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), vit(x[:, :, 0]), atol=1e-5)


def _masked_reference_attention(attn, x, mask_fn):
    """Eager multi-head attention over the whole sequence with a boolean (i, j) -> allowed mask per head."""
    B, L, D = x.shape
    H = attn.num_heads
    q, k, v = attn.qkv(x).reshape(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)
    logits = (q @ k.transpose(-2, -1)) * (D // H) ** -0.5
    allowed = torch.stack([mask_fn(h) for h in range(H)])  # (H, L, L)
    logits = logits.masked_fill(~allowed, float("-inf"))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, L, D)
    return attn.proj(out)


def test_factorised_dot_product_matches_masked_full_attention():
    """ViViT model 4: first half of heads restricted to the same frame, second half to the same location."""
    from vidzoo.models.blocks import FactorisedDotProductAttention
    T, N, D, H = 3, 5, 32, 4
    attn = FactorisedDotProductAttention(D, H).eval()
    x = torch.randn(2, T * N, D)
    frame = torch.arange(T * N) // N
    loc = torch.arange(T * N) % N
    same_frame = frame[:, None] == frame[None, :]
    same_loc = loc[:, None] == loc[None, :]
    ref = _masked_reference_attention(attn, x, lambda h: same_frame if h < H // 2 else same_loc)
    with torch.no_grad():
        assert torch.allclose(attn(x, (T, N)), ref, atol=1e-5)


def test_factorised_self_attention_block_matches_masked_reference():
    """ViViT model 3: spatial attention (same frame), then temporal attention (same location), then MLP."""
    from vidzoo.models.blocks import FactorisedSelfAttentionBlock
    T, N, D = 3, 5, 32
    blk = FactorisedSelfAttentionBlock(D, 4).eval()
    x = torch.randn(2, T * N, D)
    frame, loc = torch.arange(T * N) // N, torch.arange(T * N) % N
    same_frame = frame[:, None] == frame[None, :]
    same_loc = loc[:, None] == loc[None, :]
    with torch.no_grad():
        ref = x + _masked_reference_attention(blk.attn, blk.norm1(x), lambda h: same_frame)
        ref = ref + _masked_reference_attention(blk.temporal_attn, blk.temporal_norm1(ref), lambda h: same_loc)
        ref = ref + blk.mlp(blk.norm2(ref))
        assert torch.allclose(blk(x, (T, N)), ref, atol=1e-5)
        # The order is configurable and matters.
        blk_ts = FactorisedSelfAttentionBlock(D, 4, attention_order=("time", "space")).eval()
        blk_ts.load_state_dict(blk.state_dict())
        assert not torch.allclose(blk_ts(x, (T, N)), ref, atol=1e-4)


def test_divided_block_matches_official_timesformer_equations():
    """Divided space-time block against a direct transcription of the official TimeSformer Block
    (tokens in its (h w t) order, class token repeated per frame and averaged)."""
    from einops import rearrange
    from vidzoo.models.blocks import DividedSpaceTimeBlock
    T, Hh, Ww, D = 3, 2, 2, 32
    N = Hh * Ww
    blk = DividedSpaceTimeBlock(D, 4).eval()
    torch.nn.init.normal_(blk.temporal_fc.weight, std=0.1)
    x_ours = torch.randn(2, 1 + T * N, D)  # (t n) order
    x = torch.cat([x_ours[:, :1], rearrange(x_ours[:, 1:], "b (t n) m -> b (n t) m", t=T)], 1)  # official order
    B = 2
    with torch.no_grad():
        xt = x[:, 1:, :]
        xt = rearrange(xt, "b (h w t) m -> (b h w) t m", b=B, h=Hh, w=Ww, t=T)
        res_temporal = blk.temporal_attn(blk.temporal_norm1(xt))
        res_temporal = rearrange(res_temporal, "(b h w) t m -> b (h w t) m", b=B, h=Hh, w=Ww, t=T)
        res_temporal = blk.temporal_fc(res_temporal)
        xt = x[:, 1:, :] + res_temporal
        init_cls_token = x[:, 0, :].unsqueeze(1)
        cls_token = init_cls_token.repeat(1, T, 1)
        cls_token = rearrange(cls_token, "b t m -> (b t) m", b=B, t=T).unsqueeze(1)
        xs = rearrange(xt, "b (h w t) m -> (b t) (h w) m", b=B, h=Hh, w=Ww, t=T)
        xs = torch.cat((cls_token, xs), 1)
        res_spatial = blk.attn(blk.norm1(xs))
        cls_token = res_spatial[:, 0, :]
        cls_token = rearrange(cls_token, "(b t) m -> b t m", b=B, t=T)
        cls_token = torch.mean(cls_token, 1, True)
        res_spatial = res_spatial[:, 1:, :]
        res_spatial = rearrange(res_spatial, "(b t) (h w) m -> b (h w t) m", b=B, h=Hh, w=Ww, t=T)
        out = torch.cat((init_cls_token, xt), 1) + torch.cat((cls_token, res_spatial), 1)
        out = out + blk.mlp(blk.norm2(out))
        ref = torch.cat([out[:, :1], rearrange(out[:, 1:], "b (n t) m -> b (t n) m", t=T)], 1)
        assert torch.allclose(blk(x_ours, (T, N)), ref, atol=1e-5)


def test_factorised_encoder_structure():
    model = vidzoo.create_model("vivit_fenc_base_patch16x2_224", **dict(TINY, depth=2), temporal_depth=3)
    assert len(model.blocks) == 2 and len(model.temporal_blocks) == 3
    assert model.pos_embed.shape == (1, 1 + 16, 32)  # spatial table with class token
    assert model.temporal_pos_embed.shape == (1, 1 + 2, 32)  # temporal table, 2 tubelet steps
    feats = model.forward_features(_clip(model))
    assert feats.shape == (2, 1 + 2, 32)
    # Switching the variant away drops temporal_depth from the spec instead of failing.
    assert vidzoo.create_model("vivit_fenc_base_patch16x2_224", attention="joint", **TINY).attention == "joint"


@pytest.mark.parametrize("name", PAPER_FIGURES)
def test_counts_match_the_papers(name):
    """Parameters (1%) and multiply-adds per view (2%) of the paper models, counted on the meta device."""
    paper = PAPER_FIGURES[name]
    info = model_complexity(name, num_classes=400)
    assert abs(info["params"] / 1e6 - paper.params_m) / paper.params_m < 0.01, (name, info["params"])
    if paper.gmacs is not None:
        assert abs(info["gmacs"] - paper.gmacs) / paper.gmacs < 0.02, (name, info["gmacs"])


@pytest.mark.parametrize("name,size,tubelet,frames,img", [
    ("vivit_joint_base_patch16x2_224", "base", 2, 32, 224),
    ("vivit_joint_large_patch16x2_224", "large", 2, 32, 224),
    ("vivit_fenc_large_patch16x2_224", "large", 2, 32, 224),
    ("timesformer_divided_base_patch16_448", "base", 1, 16, 448),
    ("timesformer_divided_base_patch16_224", "base", 1, 8, 224),
    ("videomae_joint_huge_patch16x2_224", "huge", 2, 16, 224),
    ("vjepa2_joint_giant_patch16x2_384", "giant", 2, 64, 384),
])
def test_named_architectures_have_paper_sizes(name, size, tubelet, frames, img):
    with torch.device("meta"):
        model = vidzoo.create_model(name)
    vit = VIT_SIZES[size]
    assert model.embed_dim == vit.embed_dim and len(model.blocks) == vit.depth
    assert model.blocks[0].attn.num_heads == vit.num_heads and model.model_args.get("mlp_ratio", 4.0) == vit.mlp_ratio
    assert model.patch_embed.tubelet_size == tubelet and model.num_frames == frames and model.img_size == (img, img)
    if name.startswith("vivit"):
        assert model.model_args["act_layer"] == "gelu_tanh"  # official JAX ViViT


def test_organmnist3d_recipe_model():
    model = vidzoo.create_model("vivit_organmnist3d")
    assert model.architecture == "vivit_joint_mini_patch8x8_28"
    assert model.embed_dim == 128 and len(model.blocks) == 8 and model.blocks[0].attn.num_heads == 8
    assert model.patch_embed.tubelet_size == 8 and model.patch_embed.patch_size == (8, 8)
    assert model.num_classes == 11 and model.pretrained_cfg["input_size"] == (1, 28, 28, 28)
    assert model.grid_size == (4, 4, 4)  # 28 zero-padded to 32: no voxel dropped
    x = torch.rand(3, 1, 28, 28, 28)
    assert model(x).shape == (3, 11)
    # Padding is real: a voxel in the last (partial) tubelet changes the output.
    y = x.clone()
    y[:, :, -1, -1, -1] += 5.0
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(y))


def test_bad_input_errors_name_expected_and_received():
    model = vidzoo.create_model("vivit_tubelet", **TINY)
    with pytest.raises(ValueError, match=r"5-D clip .*\(B, 3, 4, 32, 32\).*4-D"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"channels 1 != 3"):
        model(torch.randn(2, 1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"frames 6 != 4"):
        model(torch.randn(2, 3, 6, 32, 32))
    with pytest.raises(ValueError, match=r"height 40 != 32, width 48 != 32"):
        model(torch.randn(2, 3, 4, 40, 48))
    with pytest.raises(ValueError, match=r"num_frames \(5\) is not a multiple of tubelet_size \(2\)"):
        vidzoo.create_model("vivit_tubelet", **dict(TINY, num_frames=5))
    with pytest.raises(ValueError, match=r"'uniform' tokenizer embeds single frames"):
        vidzoo.create_model("vivit_tubelet", tokenizer="uniform", tubelet_size=2, **TINY)
    with pytest.raises(ValueError, match=r"num_heads must be even"):
        vidzoo.create_model("vivit_tubelet", attention="factorised_dot_product", **dict(TINY, num_heads=1))
    with pytest.raises(ValueError, match=r"no class token"):
        vidzoo.create_model("vivit_tubelet", attention="factorised_self_attention", class_token=True, **TINY)
    with pytest.raises(ValueError, match=r"act_layer must be 'gelu' or 'gelu_tanh'"):
        vidzoo.create_model("vivit_tubelet", act_layer="relu", **TINY)
    with pytest.raises(ValueError, match=r"pos_embed='joint' is not supported by 'space_only'"):
        vidzoo.create_model("vivit_tubelet", attention="space_only", pos_embed="joint", **TINY)


def test_tokenizer_override_resets_tubelet_size_only_when_not_given():
    m = vidzoo.create_model("vivit_tubelet", tokenizer="uniform", **TINY)
    assert m.patch_embed.tubelet_size == 1 and m.grid_size[0] == 4
    m = vidzoo.create_model("timesformer", tokenizer="tubelet", tubelet_size=4, **TINY)
    assert m.patch_embed.tubelet_size == 4 and m.grid_size[0] == 1


def test_model_api_head_and_features():
    model = vidzoo.create_model("timesformer_divided_base_patch16_224", **TINY)
    x = _clip(model)
    feats = model.forward_features(x)
    assert feats.shape == (2, 1 + 4 * 16, 32)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 32)
    model.reset_classifier(7)
    assert model.num_classes == 7 and model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, 32)
    model.reset_classifier(5, global_pool="avg")
    assert model.global_pool == "avg" and model(x).shape == (2, 5)
    assert {"pos_embed", "cls_token", "time_embed"} <= model.no_weight_decay()
    assert model.default_cfg is model.pretrained_cfg


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = vidzoo.create_model("vivit_fsa_base_patch16x2_224", **dict(TINY, depth=2))
    x = _clip(model)
    model(x).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-6), n


def test_divided_temporal_fc_initialised_like_official():
    model = vidzoo.create_model("timesformer", **dict(TINY, depth=3))
    assert model.blocks[0].temporal_fc.weight.abs().sum() > 0
    for blk in model.blocks[1:]:
        assert blk.temporal_fc.weight.abs().sum() == 0 and blk.temporal_fc.bias.abs().sum() == 0
    assert model.time_embed.abs().sum() == 0  # official: time embedding starts at zero
