"""Tokenizers, filter inflation, attention switch and position-embedding resampling."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

import vidzoo
from vidzoo.layers import attend, resample_pos_embed_3d, resample_time_embed
from vidzoo.tokenizers import TubeletTokenizer, UniformFrameTokenizer, get_tokenizer, inflate_patch_kernel


def test_tubelet_tokens_equal_explicit_patch_projection():
    """Conv3d tokens == flattening each t x p x p tubelet and applying the kernel as a matrix, in (t, h, w) order."""
    tok = TubeletTokenizer(img_size=(16, 24), num_frames=6, patch_size=8, tubelet_size=3, in_chans=2, embed_dim=5)
    x = torch.randn(2, 2, 6, 16, 24)
    out = tok(x)
    assert tok.grid_size == (2, 2, 3) and out.shape == (2, 2, 6, 5)
    patches = rearrange(x, "b c (t pt) (h ph) (w pw) -> b t (h w) (c pt ph pw)", pt=3, ph=8, pw=8)
    ref = patches @ tok.proj.weight.reshape(5, -1).T + tok.proj.bias
    assert torch.allclose(out, ref, atol=1e-5)


def test_uniform_tokens_are_per_frame_vit_patches():
    tok = UniformFrameTokenizer(img_size=16, num_frames=3, patch_size=8, in_chans=3, embed_dim=4)
    x = torch.randn(2, 3, 3, 16, 16)
    out = tok(x)
    assert tok.grid_size == (3, 2, 2) and tok.tubelet_size == 1
    for t in range(3):
        ref = rearrange(tok.proj(x[:, :, t]), "b d h w -> b (h w) d")
        assert torch.allclose(out[:, t], ref, atol=1e-6)


def test_inflation_average_reproduces_image_embedding_on_static_clip():
    w2d, b = torch.randn(6, 3, 4, 4), torch.randn(6)
    tok = TubeletTokenizer(img_size=8, num_frames=4, patch_size=4, tubelet_size=4, embed_dim=6)
    tok.init_from_2d(w2d, b, mode="average")
    frame = torch.randn(1, 3, 8, 8)
    static = frame.unsqueeze(2).repeat(1, 1, 4, 1, 1)
    ref = rearrange(F.conv2d(frame, w2d, b, stride=4), "b d h w -> b (h w) d")
    assert torch.allclose(tok(static)[:, 0], ref, atol=1e-5)


def test_inflation_central_frame_only_sees_the_middle_frame():
    w2d = torch.randn(6, 3, 4, 4)
    w3d = inflate_patch_kernel(w2d, 3, "central_frame")
    assert w3d.shape == (6, 3, 3, 4, 4)
    assert torch.equal(w3d[:, :, 1], w2d) and w3d[:, :, [0, 2]].abs().sum() == 0
    w_even = inflate_patch_kernel(w2d, 2, "central_frame")  # t // 2: the second of two frames
    assert torch.equal(w_even[:, :, 1], w2d) and w_even[:, :, 0].abs().sum() == 0
    assert torch.allclose(inflate_patch_kernel(w2d, 2, "average").sum(2), w2d, atol=1e-6)
    with pytest.raises(ValueError, match="Unknown inflation mode 'nearest'"):
        inflate_patch_kernel(w2d, 2, "nearest")
    with pytest.raises(ValueError, match="Expected a 2-D patch kernel"):
        inflate_patch_kernel(torch.randn(6, 3, 4), 2)


def test_pad_mode_zero_pads_instead_of_dropping():
    tok_pad = TubeletTokenizer(img_size=10, num_frames=3, patch_size=4, tubelet_size=2, embed_dim=4, pad_mode="pad")
    tok_ref = TubeletTokenizer(img_size=12, num_frames=4, patch_size=4, tubelet_size=2, embed_dim=4)
    tok_ref.load_state_dict(tok_pad.state_dict())
    x = torch.randn(1, 3, 3, 10, 10)
    assert tok_pad.grid_size == (2, 3, 3)
    assert torch.allclose(tok_pad(x), tok_ref(F.pad(x, (0, 2, 0, 2, 0, 1))), atol=1e-6)
    with pytest.raises(ValueError, match=r"img_size\[0\] \(10\) is not a multiple of patch_size \(4\).*pad_mode=.pad."):
        TubeletTokenizer(img_size=10, num_frames=4, patch_size=4, tubelet_size=2)
    with pytest.raises(ValueError, match="pad_mode must be one of"):
        TubeletTokenizer(pad_mode="crop")


def test_tokenizer_registry():
    assert get_tokenizer("tubelet") is TubeletTokenizer
    with pytest.raises(ValueError, match=r"Unknown tokenizer 'uniformly'.*uniform"):
        get_tokenizer("uniformly")


def test_short_cpu_sequences_skip_sdpa(monkeypatch):
    """On CPU, <= _CPU_EAGER_MAX_LEN tokens take the (faster) eager path; longer ones SDPA."""
    import vidzoo.layers.attention as A
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(A.F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(1) or sdpa(*a, **kw))
    for L, expect_sdpa in ((A._CPU_EAGER_MAX_LEN, False), (A._CPU_EAGER_MAX_LEN + 1, True)):
        calls.clear()
        q, k, v = torch.randn(3, 2, 3, L, 8).unbind(0)
        out = attend(q, k, v)
        assert bool(calls) == expect_sdpa, L
        ref = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, -1) @ v
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_fused_and_eager_attention_agree_and_switch_is_global(monkeypatch):
    import vidzoo.layers.attention as A
    monkeypatch.setattr(A, "_CPU_EAGER_MAX_LEN", 0)  # SDPA even for this short sequence
    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    assert vidzoo.use_fused_attn()
    fused = attend(q, k, v)
    vidzoo.set_fused_attn(False)
    try:
        assert not vidzoo.use_fused_attn()
        eager = attend(q, k, v)
    finally:
        vidzoo.set_fused_attn(True)
    ref = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, -1) @ v
    assert torch.allclose(fused, ref, atol=1e-5) and torch.allclose(eager, ref, atol=1e-5)


def test_resample_pos_embed_identity_and_prefix():
    pe = torch.randn(1, 1 + 2 * 3 * 3, 8)
    assert resample_pos_embed_3d(pe, (2, 3, 3), (2, 3, 3), 1) is pe
    out = resample_pos_embed_3d(pe, (2, 3, 3), (4, 6, 6), 1)
    assert out.shape == (1, 1 + 4 * 36, 8) and torch.equal(out[:, :1], pe[:, :1])
    with pytest.raises(ValueError, match=r"does not fit grid \(2, 4, 4\)"):
        resample_pos_embed_3d(pe, (2, 4, 4), (2, 3, 3), 1)


def test_resample_pos_embed_axes_are_independent():
    T, H, W, D = 2, 3, 3, 4
    pe = torch.randn(1, T * H * W, D)
    grid = rearrange(pe, "1 (t h w) d -> t h w d", t=T, h=H)
    # Time only, nearest x2: each frame's spatial table repeated, untouched.
    out = rearrange(resample_pos_embed_3d(pe, (T, H, W), (4, H, W), 0, temporal_mode="nearest"),
                    "1 (t h w) d -> t h w d", t=4, h=H)
    assert torch.equal(out[0], grid[0]) and torch.equal(out[1], grid[0]) and torch.equal(out[3], grid[1])
    # Time only, linear: frames in between are blends; the spatial pattern of each is unchanged per location.
    lin = rearrange(resample_pos_embed_3d(pe, (T, H, W), (3, H, W), 0), "1 (t h w) d -> t h w d", t=3, h=H)
    ref = F.interpolate(rearrange(grid, "t h w d -> 1 (h w d) t"), size=3, mode="linear", align_corners=False)
    assert torch.allclose(lin, rearrange(ref, "1 (h w d) t -> t h w d", h=H, w=W), atol=1e-6)
    # Space only, nearest x2: every value replicated in a 2x2 block, per frame.
    sp = rearrange(resample_pos_embed_3d(pe, (T, H, W), (T, 6, 6), 0, spatial_mode="nearest"),
                   "1 (t h w) d -> t h w d", t=T, h=6)
    assert torch.equal(sp[:, ::2, ::2], grid) and torch.equal(sp[:, 1::2, 1::2], grid)


def test_resample_time_embed():
    te = torch.randn(1, 4, 6)
    assert resample_time_embed(te, 4) is te
    near = resample_time_embed(te, 8, mode="nearest")
    assert torch.equal(near[:, ::2], te) and torch.equal(near[:, 1::2], te)
    assert resample_time_embed(te, 2).shape == (1, 2, 6)


# ------------------------------------------------------------------------------ GELU recompute
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_gelu_linear_gradients_match_autograd(approximate, bias):
    from vidzoo.layers import GeluLinear
    torch.manual_seed(0)
    h = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True) if bias else None
    torch.autograd.gradcheck(lambda h, w, b: GeluLinear.apply(h, w, b, approximate), (h, w, b))
    ref = F.linear(F.gelu(h, approximate=approximate), w, b)
    out = GeluLinear.apply(h, w, b, approximate)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    inputs = [t for t in (h, w, b) if t is not None]
    for a, r in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(a, r)


def _saved_bytes(fn) -> int:
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_mlp_keeps_one_hidden_copy_and_same_gradients():
    """Training saves fc1's output only (GELU is recomputed): one tokens x hidden tensor less."""
    from vidzoo import set_gelu_recompute
    from vidzoo.models.blocks import Mlp
    torch.manual_seed(0)
    mlp = Mlp(16, 64).train()
    x = torch.randn(2, 50, 16, requires_grad=True)
    hidden = 2 * 50 * 64 * 4
    results = {}
    for on in (True, False):
        set_gelu_recompute(on)
        try:
            saved = _saved_bytes(lambda: mlp(x))
            mlp.zero_grad()
            x.grad = None
            mlp(x).square().sum().backward()
            results[on] = (saved, [p.grad.clone() for p in mlp.parameters()] + [x.grad.clone()])
        finally:
            set_gelu_recompute(True)
    assert results[False][0] - results[True][0] == hidden
    for a, b in zip(results[True][1], results[False][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mlp_gelu_recompute_under_cpu_autocast_and_dropout():
    from vidzoo import set_gelu_recompute
    from vidzoo.models.blocks import Mlp
    torch.manual_seed(0)
    mlp = Mlp(16, 64).train()
    x = torch.randn(2, 50, 16)
    grads = {}
    for on in (True, False):
        set_gelu_recompute(on)
        try:
            mlp.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = mlp(x)
            assert out.dtype == torch.bfloat16
            out.float().square().sum().backward()
            grads[on] = [p.grad.clone() for p in mlp.parameters()]
        finally:
            set_gelu_recompute(True)
    for a, b in zip(grads[True], grads[False]):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
    # with dropout between GELU and fc2 the plain graph runs (dropout needs GELU's output)
    drop = Mlp(16, 64, drop=0.5).train()
    assert _saved_bytes(lambda: drop(x.requires_grad_())) > _saved_bytes(lambda: mlp(x))


def test_bias_only_training_gets_gradients():
    """Frozen weights, trainable biases (BitFit): the CPU fused-linear fast path must not take
    over, since oneDNN's fused linear has no backward."""
    from vidzoo.layers import Attention
    from vidzoo.models.blocks import Mlp
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    for m in (Attention(8, 2), Mlp(8, 16)):
        for name, p in m.named_parameters():
            p.requires_grad_(name.endswith("bias"))
        m(x).square().sum().backward()
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                assert p.grad is not None and p.grad.abs().sum() > 0, name
