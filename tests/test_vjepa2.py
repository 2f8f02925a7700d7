"""V-JEPA 2: 3-D RoPE, the attentive pooler, checkpoint layouts and multi-clip scoring.

References: a hand-written RoPE formula (both layouts), and transformers' ``VJEPA2ForVideoClassification``
/ ``VJEPA2Model`` on random weights (LayerNorm scales ~1, non-zero biases everywhere). Where the port
differs from the code that trained the weights, the reference is adjusted to upstream and the test says
so: the probe's LayerNorm eps (port 1e-6, upstream 1e-5), RoPE positions (port: from ``crop_size``). The
original pretraining ``.pt`` is written from the same weights with upstream's key names by this file's own
key map (``original_layout``).
"""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

import vidzoo
from benchmarks._common import randomize
from vidzoo._convert import CheckpointError, CheckpointMismatchError
from vidzoo.layers import apply_rope, rope3d_dim, rope3d_tables

transformers = pytest.importorskip("transformers")
from transformers import VJEPA2Config, VJEPA2ForVideoClassification, VJEPA2Model  # noqa: E402

ARCH = "vjepa2_joint_large_patch16x2_256"
# head_dim 16: 4 / 4 / 4 rotated channels + 4 left as they are
HF_TINY = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, num_pooler_layers=2, patch_size=8,
               pred_hidden_size=32, pred_num_attention_heads=2, pred_num_hidden_layers=1)
VZ_TINY = dict(embed_dim=64, depth=2, num_heads=4, attn_pool_heads=4, attn_pool_depth=3, patch_size=8)


def hf_model(cls=VJEPA2ForVideoClassification, crop=32, frames=4, seed=0, **kw):
    torch.manual_seed(seed)
    m = cls(VJEPA2Config(crop_size=crop, frames_per_clip=frames, num_labels=5, **HF_TINY, **kw))
    m.config._attn_implementation = "eager"
    return randomize(m, seed)


def upstream_probe_eps(hf, eps=1e-5):
    """The probe was trained with nn.LayerNorm's default eps 1e-5; transformers builds it with 1e-6."""
    for m in hf.pooler.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = eps
    return hf


def clip(t=4, h=32, w=32, b=2, seed=1):
    return torch.randn(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed))


def hf_logits(hf, x):
    with torch.no_grad():
        out = hf(pixel_values_videos=x.transpose(1, 2)).logits
    assert out.abs().max() > 0.1, "degenerate logits would make parity meaningless"
    return out


def vz_from(sd, num_frames=4, img_size=32, **kw):
    args = dict(VZ_TINY, num_classes=5, num_frames=num_frames, img_size=img_size)
    args.update(kw)
    return vidzoo.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd), **args).eval()


def original_layout(hf_sd: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The original V-JEPA 2 files of an HF state dict: the pretraining ``.pt`` (``encoder`` entry with
    ``module.backbone.`` names, fused ``qkv``, plus a predictor and the unused ``pos_embed`` the hub loader
    skips) and the probe's ``AttentiveClassifier`` keys (``module.pooler.*``: fused ``qkv`` / cross ``kv``,
    ``module.linear``), as transformers' conversion scripts read them."""
    enc, probe, parts = {}, {}, {}
    for k, v in hf_sd.items():
        k = k.replace("vjepa2.", "", 1) if k.startswith("vjepa2.") else k
        if k.startswith("predictor."):
            continue
        if m := re.match(r"encoder\.layer\.(\d+)\.attention\.(query|key|value)\.(weight|bias)", k):
            parts.setdefault(f"module.backbone.blocks.{m[1]}.attn.qkv.{m[3]}", {})[m[2][0]] = v
        elif m := re.match(r"pooler\.self_attention_layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", k):
            parts.setdefault(f"module.pooler.blocks.{m[1]}.attn.qkv.{m[3]}", {})[m[2]] = v
        elif m := re.match(r"pooler\.cross_attention_layer\.cross_attn\.([kv])_proj\.(weight|bias)", k):
            parts.setdefault(f"module.pooler.cross_attention_block.xattn.kv.{m[2]}", {})[m[1]] = v
        elif k.startswith("encoder."):
            k = (k.replace("encoder.embeddings.patch_embeddings.", "patch_embed.").replace("encoder.layernorm.", "norm.")
                 .replace("encoder.layer.", "blocks.").replace("attention.proj", "attn.proj"))
            enc["module.backbone." + k] = v
        else:
            k = (k.replace("pooler.self_attention_layers.", "pooler.blocks.").replace("self_attn.out_proj", "attn.proj")
                 .replace("pooler.cross_attention_layer.", "pooler.cross_attention_block.")
                 .replace("cross_attn.q_proj", "xattn.q").replace("layer_norm", "norm").replace("classifier.", "linear."))
            probe["module." + k] = v
    for k, p in parts.items():
        (enc if ".backbone." in k else probe)[k] = torch.cat([p[c] for c in ("qkv" if ".qkv." in k else "kv")])
    d = enc["module.backbone.norm.weight"].shape[0]
    enc["module.backbone.pos_embed"] = torch.zeros(1, 8, d)  # upstream files may carry one; RoPE models skip it
    return {"encoder": enc, "probe": probe,
            "pt": {"encoder": enc, "predictor": {"module.backbone.mask_tokens.0": torch.zeros(1, 1, 32)}, "epoch": 1}}


# ------------------------------------------------------------------------------------------- RoPE
def hand_rope(x: torch.Tensor, grid: tuple[int, int, int], layout: str) -> torch.Tensor:
    """The rotation written out channel by channel, float64: slice a (t, h, w) of d channels; channel pair
    (2i, 2i+1) of a slice becomes (x0 cos a0 - x1 sin a0, x1 cos a1 + x0 sin a1) with a = pos * 10000^(-k/(d/2)),
    k = j mod d/2 for channel j ('vjepa2': the half table repeated) or j // 2 ('interleave')."""
    x = x.double()
    out = x.clone()
    d = 2 * ((x.shape[-1] // 3) // 2)
    T, H, W = grid
    positions = [(t, h, w) for t in range(T) for h in range(H) for w in range(W)]
    for n, pos in enumerate(positions):
        for axis in range(3):
            for j in range(0, d, 2):
                c = axis * d + j
                k0, k1 = (j % (d // 2), (j + 1) % (d // 2)) if layout == "vjepa2" else (j // 2, j // 2)
                a0, a1 = pos[axis] * 10000 ** (-k0 / (d / 2)), pos[axis] * 10000 ** (-k1 / (d / 2))
                x0, x1 = x[..., n, c], x[..., n, c + 1]
                out[..., n, c] = x0 * math.cos(a0) - x1 * math.sin(a0)
                out[..., n, c + 1] = x1 * math.cos(a1) + x0 * math.sin(a1)
    return out


def test_rope_channel_split():
    assert [rope3d_dim(h) for h in (64, 80, 88, 16)] == [20, 26, 28, 4]  # 20/20/20 + 4, 26*3 + 2, 28*3 + 4
    cos, sin = rope3d_tables((2, 3, 4), 64)
    assert cos.shape == sin.shape == (24, 60)
    x = torch.randn(2, 4, 24, 64)
    y = apply_rope(x, cos, sin)
    assert torch.equal(y[..., 60:], x[..., 60:])  # the 4 trailing channels are not rotated
    assert torch.equal(y[0, 0, 0], x[0, 0, 0])  # token (0, 0, 0): every angle is 0
    assert not torch.allclose(y[..., 1:, :60], x[..., 1:, :60])
    with pytest.raises(ValueError, match="at least 6 channels"):
        rope3d_tables((1, 1, 1), 5)
    with pytest.raises(ValueError, match="rope_layout must be one of"):
        rope3d_tables((1, 1, 1), 64, layout="rotate_half")


@pytest.mark.parametrize("layout", ["vjepa2", "interleave"])
@pytest.mark.parametrize("head_dim", [16, 20])
def test_rope_matches_hand_written_formula(layout, head_dim):
    grid = (3, 2, 5)  # non-square, every axis with its own length
    x = torch.randn(2, 30, head_dim, generator=torch.Generator().manual_seed(0))
    got = apply_rope(x, *rope3d_tables(grid, head_dim, layout))
    torch.testing.assert_close(got.double(), hand_rope(x, grid, layout), atol=1e-5, rtol=1e-5)


def test_interleave_is_relative_and_vjepa2_is_not():
    """The standard pairing is a rotation per pair, so q.k depends on the offset only; upstream's layout
    gives the two channels of a pair different angles (why it is kept only for the weights' sake)."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)
    grid = (8, 1, 1)  # positions along time only: token index = t

    def dots(layout):
        cos, sin = rope3d_tables(grid, 16, layout)
        rq, rk = apply_rope(q.expand(8, 16), cos, sin), apply_rope(k.expand(8, 16), cos, sin)
        return (rq[1] @ rk[3]).item(), (rq[4] @ rk[6]).item()  # same offset, other places
    a, b = dots("interleave")
    assert a == pytest.approx(b, abs=1e-5)
    a, b = dots("vjepa2")
    assert abs(a - b) > 1e-3


def test_rope_positions_come_from_the_models_grid():
    """No table: the same weights run at any clip length / size; the rotation uses the model's own
    (T', H', W') grid, here 3 x 6 x 4 (non-square)."""
    small = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=5)
    big = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=6, img_size=(48, 32), num_classes=5).eval()
    assert "pos_embed" not in dict(big.named_parameters()) and big.pos_embed is None
    assert small.state_dict().keys() == big.state_dict().keys()
    big.load_state_dict(small.state_dict())  # strict, no resampling
    seen = []
    attn = big.blocks[0].attn
    attn.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["rope"]), with_kwargs=True)
    with torch.no_grad():
        out = big(clip(6, 48, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    cos, sin = seen[0]
    want_cos, want_sin = rope3d_tables((3, 6, 4), 16, "vjepa2")
    assert torch.equal(cos, want_cos) and torch.equal(sin, want_sin)
    x = torch.randn(72, 16)
    torch.testing.assert_close(apply_rope(x, cos, sin).double(), hand_rope(x, (3, 6, 4), "vjepa2"), atol=1e-5,
                               rtol=1e-5)


def test_rope_at_another_size_matches_transformers_built_for_it_not_for_its_crop():
    """transformers derives positions from config.crop_size: right only at that size. vidzoo takes them
    from the clip's grid, so at 48 px it equals the port configured for 48 px, not the one for 32 px."""
    hf32 = upstream_probe_eps(hf_model(crop=32))
    hf48 = upstream_probe_eps(hf_model(crop=48))
    hf48.load_state_dict(hf32.state_dict())
    x = clip(4, 48, 48)
    vz = vz_from(hf32.state_dict(), img_size=48)
    with torch.no_grad():
        got = vz(x)
    right = (got - hf_logits(hf48, x)).abs().max()
    wrong = (got - hf_logits(hf32, x)).abs().max()  # the 32-px port reads a 6x6 grid as rows of 4
    assert right < 1e-5 and wrong > 1e-4 and wrong > 100 * right


@pytest.mark.parametrize("fused", [False, True])
def test_rope_sdpa_and_eager_agree(fused, monkeypatch):
    monkeypatch.setattr(vidzoo.layers.attention, "_CPU_EAGER_MAX_LEN", 0)  # SDPA even on short sequences
    m = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=5).eval()
    randomize(m)
    x = clip()
    vidzoo.set_fused_attn(fused)
    try:
        with torch.no_grad():
            a = m(x)
    finally:
        vidzoo.set_fused_attn(True)
    vidzoo.set_fused_attn(not fused)
    try:
        with torch.no_grad():
            b = m(x)
    finally:
        vidzoo.set_fused_attn(True)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rope_under_bf16_autocast():
    m = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=5).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(clip())
    assert out.shape == (2, 5) and torch.isfinite(out).all()


# --------------------------------------------------------------------- parity with transformers
def test_classifier_parity_with_transformers_in_memory_state_dict():
    hf = upstream_probe_eps(hf_model())
    x = clip()
    vz = vz_from(hf.state_dict())
    with torch.no_grad():
        got = vz(x)
    torch.testing.assert_close(got, hf_logits(hf, x), atol=1e-5, rtol=1e-5)
    # the port's own probe eps (1e-6) moves logits by ~1e-5: a small but real difference
    diff = (got - hf_logits(upstream_probe_eps(hf, 1e-6), x)).abs().max()
    assert 1e-7 < diff < 1e-3


def test_hub_files_and_config_labels(tmp_path):
    """A save_pretrained folder (model.safetensors + config.json): same logits, id2label read, the predictor
    dropped."""
    hf = upstream_probe_eps(hf_model())
    hf.config.id2label = {i: f"action {i}" for i in range(5)}
    hf.config.label2id = {v: k for k, v in hf.config.id2label.items()}
    hf.save_pretrained(tmp_path)
    vz = vidzoo.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "model.safetensors")),
                             **VZ_TINY, num_frames=4, img_size=32, num_classes=5).eval()
    assert vz.pretrained_cfg["label_names"] == [f"action {i}" for i in range(5)]
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(vz(x), hf_logits(hf, x), atol=1e-5, rtol=1e-5)


def test_encoder_only_checkpoints_keep_a_fresh_probe():
    """VJEPA2Model (encoder + predictor): the encoder's tokens equal transformers' last_hidden_state; the
    pooler and head are the model's fresh ones and the provenance says so."""
    enc = hf_model(VJEPA2Model)
    x = clip()
    with torch.no_grad():
        ref = enc(pixel_values_videos=x.transpose(1, 2), skip_predictor=True).last_hidden_state
    vz = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=7).eval()
    fresh = {k: v.clone() for k, v in vz.state_dict().items() if k.startswith(("attn_pool.", "head."))}
    from vidzoo._weights import _convert_and_apply
    report = _convert_and_apply(vz, enc.state_dict(), "VJEPA2Model", None, None, True)
    assert report["format"] == "hf_vjepa2" and report["head_dropped"]
    assert any("predictor" in n for n in report["notes"])
    assert all(torch.equal(vz.state_dict()[k], v) for k, v in fresh.items())
    with torch.no_grad():
        torch.testing.assert_close(vz.forward_features(x), ref, atol=1e-5, rtol=1e-5)
    built = vz_from(enc.state_dict(), num_classes=7)
    assert built.pretrained_cfg["provenance"]["head"] == "fresh"


def test_original_pretraining_pt_and_probe_keys(tmp_path):
    """The original .pt ({'encoder': module.backbone.*, 'predictor': ...}) as upstream's hub loader reads
    it, and an upstream probe's keys merged with it, against transformers with the same weights."""
    hf = upstream_probe_eps(hf_model())
    orig = original_layout(hf.state_dict())
    x = clip()
    torch.save(orig["pt"], tmp_path / "vitl.pt")
    enc_only = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=0).eval()
    report = vidzoo.load_checkpoint(enc_only, tmp_path / "vitl.pt")
    assert report["format"] == "vjepa2" and report["head_dropped"]
    assert any("'encoder' entry" in n and "predictor" in n for n in report["notes"])
    assert any("pos_embed dropped" in n for n in report["notes"])
    with torch.no_grad():
        ref = hf.vjepa2(pixel_values_videos=x.transpose(1, 2), skip_predictor=True).last_hidden_state
        torch.testing.assert_close(enc_only.forward_features(x), ref, atol=1e-5, rtol=1e-5)
    full = vz_from({**orig["encoder"], **orig["probe"]})
    with torch.no_grad():
        torch.testing.assert_close(full(x), hf_logits(hf, x), atol=1e-5, rtol=1e-5)


def test_checkpoint_errors_are_all_or_nothing():
    sd = hf_model().state_dict()
    broken = {k: v for k, v in sd.items() if "layer.1.attention.key." not in k}
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.qkv\.weight needs the q/k/v"):
        vz_from(broken)
    m = vidzoo.create_model(ARCH, **{**VZ_TINY, "embed_dim": 128}, num_frames=4, img_size=32, num_classes=5)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    from vidzoo._weights import load_pretrained
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        load_pretrained(m, dict(state_dict=sd, architecture=ARCH))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# ------------------------------------------------------------------------------- multi-level probe
def test_multilevel_probe_reads_the_normed_tokens_of_its_blocks():
    """Diving48 probes: the final norm applied to the output of each listed block, tokens concatenated
    (upstream's multilevel wrapper), checked against the encoder run block by block."""
    m = vidzoo.create_model(ARCH, **{**VZ_TINY, "depth": 3}, attn_pool_layers=[0, 2], num_frames=4, img_size=32,
                            num_classes=5).eval()
    randomize(m)
    x = clip()
    with torch.no_grad():
        feats = m.forward_features(x)
        _, inter = m.forward_intermediates(x, indices=[0, 2], output_fmt="NLC")
        final, _ = m.forward_intermediates(x, indices=1, output_fmt="NLC")
        want = torch.cat([m.norm(t) for t in inter], dim=1)
        assert feats.shape == (2, 2 * 32, 64)
        torch.testing.assert_close(feats, want)
        torch.testing.assert_close(final, feats)
        torch.testing.assert_close(m(x), m.forward_head(want))


def test_diving48_tags_use_upstreams_layers():
    assert vidzoo.create_model(f"{ARCH}.diving48", num_classes=3, depth=24, embed_dim=64, num_heads=4,
                               attn_pool_heads=4, img_size=32, patch_size=16).attn_pool_layers == (17, 19, 21, 23)
    g = vidzoo.create_model("vjepa2_joint_giant_patch16x2_384.diving48", embed_dim=88, num_heads=1, depth=40,
                            attn_pool_heads=8, img_size=32, patch_size=16, num_frames=2, num_classes=3)
    assert g.attn_pool_layers == (24, 29, 34, 39)
    assert vidzoo.create_model(f"{ARCH}.ssv2", **VZ_TINY, img_size=32).attn_pool_layers is None


# ------------------------------------------------------------------------------ registry, cfgs
def test_registry_tags_frames_licences():
    names = set(vidzoo.list_pretrained("vjepa2*"))
    assert names == {f"{ARCH}.{t}" for t in ("ssv2", "diving48", "pt_vm22m")} | {
        "vjepa2_joint_huge_patch16x2_256.pt_vm22m", "vjepa2_joint_giant_patch16x2_256.pt_vm22m"} | {
        f"vjepa2_joint_giant_patch16x2_384.{t}" for t in ("ssv2", "diving48", "pt_vm22m")}
    want = {  # tag: (repo, frames, classes, size, views)
        f"{ARCH}.ssv2": ("facebook/vjepa2-vitl-fpc16-256-ssv2", 16, 174, 256, (2, 3)),
        f"{ARCH}.diving48": ("facebook/vjepa2-vitl-fpc32-256-diving48", 32, 48, 256, (4, 3)),
        f"{ARCH}.pt_vm22m": ("facebook/vjepa2-vitl-fpc64-256", 64, 0, 256, (1, 1)),
        "vjepa2_joint_huge_patch16x2_256.pt_vm22m": ("facebook/vjepa2-vith-fpc64-256", 64, 0, 256, (1, 1)),
        "vjepa2_joint_giant_patch16x2_256.pt_vm22m": ("facebook/vjepa2-vitg-fpc64-256", 64, 0, 256, (1, 1)),
        "vjepa2_joint_giant_patch16x2_384.ssv2": ("facebook/vjepa2-vitg-fpc64-384-ssv2", 64, 174, 384, (2, 3)),
        "vjepa2_joint_giant_patch16x2_384.diving48": ("facebook/vjepa2-vitg-fpc32-384-diving48", 32, 48, 384, (4, 3)),
        "vjepa2_joint_giant_patch16x2_384.pt_vm22m": ("facebook/vjepa2-vitg-fpc64-384", 64, 0, 384, (1, 1)),
    }
    for name, (repo, frames, classes, size, views) in want.items():
        cfg = vidzoo.get_pretrained_cfg(name)
        assert (cfg.hf_hub_id, cfg.num_frames, cfg.num_classes) == (repo, frames, classes), name
        assert cfg.input_size == (3, frames, size, size) and cfg.source_format == "hf_vjepa2"
        assert (cfg.test_num_clips, cfg.test_num_crops) == views and cfg.crop_pct == 224 / 256
        assert cfg.license in ("mit", "apache-2.0") and cfg.extra["license_source"]
        assert cfg.mean == (0.485, 0.456, 0.406)
    assert vidzoo.list_aliases()["vjepa2"] == ARCH
    # a tag builds the model at its clip length; an override still wins
    assert vidzoo.create_model(f"{ARCH}.diving48", depth=24, embed_dim=64, num_heads=4, attn_pool_heads=4).num_frames == 32
    assert vidzoo.create_model("vjepa2.ssv2", **VZ_TINY, num_frames=8).num_frames == 8


def test_spec_follows_upstream():
    with torch.device("meta"):  # shapes only
        g = vidzoo.create_model("vjepa2_joint_giant_patch16x2_384.ssv2", depth=1, num_frames=2, img_size=32)
    assert g.blocks[0].attn.num_heads == 22 and g.attn_pool.num_heads == 16 and g.attn_pool.depth == 4
    assert g.blocks[0].mlp.fc1.out_features == 6144  # 1408 * 48 / 11
    assert g.attn_pool.blocks[0].mlp.fc1.out_features == g.attn_pool.cross_attention_block.mlp.fc1.out_features == 5632
    assert g.norm.eps == g.blocks[0].norm1.eps == 1e-6
    assert {m.eps for m in g.attn_pool.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
    assert g.cls_token is None and g.pos_embed_type == "rope3d" and g.rope_layout == "vjepa2"
    assert not hasattr(g.attn_pool.cross_attention_block.xattn, "proj")  # no output projection


def test_param_counts_on_the_meta_device():
    """Upstream: ViT-L encoder 303.9M, ViT-g 1012.2M; probes ~49.5M (ViT-L, 174 classes) and ~93.5M (ViT-g)."""
    def counts(name):
        with torch.device("meta"):
            m = vidzoo.create_model(name)
        head = sum(p.numel() for mod in m.head_modules().values() for p in mod.parameters())
        return (sum(p.numel() for p in m.parameters()) - head) / 1e6, head / 1e6
    enc, probe = counts(f"{ARCH}.ssv2")
    assert round(enc, 1) == 303.9 and round(probe, 1) == 49.5
    enc, probe = counts("vjepa2_joint_giant_patch16x2_384.ssv2")
    assert round(enc, 1) == 1012.2 and round(probe, 1) == 93.5
    enc, _ = counts("vjepa2_joint_huge_patch16x2_256")
    assert round(enc, 1) == 631.6


# ------------------------------------------------------------------------- options and their checks
@pytest.mark.parametrize("kwargs,match", [
    (dict(attn_pool_depth=0), r"attn_pool_depth must be in \[1, "),
    (dict(attn_pool_heads=5), r"attn_pool_heads \(5\) must divide embed_dim \(64\)"),
    (dict(attn_pool_layers=[1, 0]), "attn_pool_layers must be strictly increasing"),
    (dict(attn_pool_layers=[0, 2]), r"strictly increasing block indices in \[0, 1\]"),
    (dict(rope_layout="half"), "rope_layout must be one of"),
    (dict(global_pool="avg", attn_pool_depth=2), "attn_pool_depth applies only with global_pool='attentive'"),
    (dict(pos_embed="sincos", rope_layout="interleave"), "rope_layout applies only with pos_embed='rope3d'"),
    (dict(global_pool="attentive", class_token=True), "gives no position to a class token"),
    (dict(attention="divided"), "(?s)pos_embed='rope3d' is not supported by 'divided'"),
    (dict(num_heads=16), "embed_dim // num_heads must be >= 6"),
])
def test_bad_options_are_one_line_errors(kwargs, match):
    args = dict(VZ_TINY, num_frames=4, img_size=32)
    args.update(kwargs)
    if kwargs.get("attention") == "divided":
        args["pos_embed"] = "rope3d"
    with pytest.raises(ValueError, match=match):
        vidzoo.create_model(ARCH, **args)


def test_overrides_drop_the_arguments_of_the_replaced_choice():
    enc_tiny = {k: v for k, v in VZ_TINY.items() if not k.startswith("attn_pool")}
    m = vidzoo.create_model(ARCH, **enc_tiny, num_frames=4, img_size=32, pos_embed="sincos", global_pool="avg",
                            fc_norm=True)
    assert m.pos_embed_type == "sincos" and m.attn_pool is None and m.global_pool == "avg"
    assert not {"rope_layout", "attn_pool_depth", "attn_pool_heads"} & set(m.model_args)
    d = vidzoo.create_model(ARCH, **enc_tiny, attention="divided", num_frames=4, img_size=32, attn_pool_heads=4)
    assert d.pos_embed_type == "separable" and "rope_layout" not in d.model_args
    assert d.global_pool == "attentive"  # pooling is independent of the attention variant
    i = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, rope_layout="interleave")
    assert i.rope_layout == "interleave"
    with pytest.raises(ValueError, match="attn_pool_layers is not supported by 'space_only'"):
        vidzoo.create_model("timesformer", global_pool="attentive", attn_pool_layers=[0], attention="space_only",
                            embed_dim=32, depth=1, num_heads=2, num_frames=2, img_size=32, pos_embed="space")


def test_info_shows_positions_and_head(capsys):
    from vidzoo.cli import main
    assert main(["info", "vjepa2_joint_giant_patch16x2_384.diving48"]) == 0
    out = capsys.readouterr().out
    assert "rope3d (3-D rotary embedding of q and k" in out and "vjepa2 layout" in out
    assert "attentive pooler (4 blocks, 16 heads) over the normed tokens of blocks 24, 29, 34, 39" in out
    assert "48 classes" in out and "(3, 32, 384, 384)" in out and "4 clips x 3 crops" in out


# --------------------------------------------------------------------- the pooler on any backbone
def test_reset_classifier_attentive_on_any_backbone(tmp_path):
    """A fresh attentive pooler on TimeSformer (class token, divided attention): the API a probe trains."""
    m = vidzoo.create_model("timesformer", embed_dim=32, depth=2, num_heads=2, num_frames=2, img_size=32,
                            patch_size=8, num_classes=3)
    m.reset_classifier(5, global_pool="attentive", attn_pool_depth=2, attn_pool_heads=4)
    assert m.attn_pool.depth == 2 and m.attn_pool.num_heads == 4 and len(m.attn_pool.blocks) == 1
    assert set(m.head_modules()) == {"attn_pool", "head"} and m.get_classifier() is m.head
    x = torch.randn(2, 3, 2, 32, 32)
    tokens = m.forward_features(x)
    assert tokens.shape == (2, 1 + 2 * 16, 32)
    assert m.forward_head(tokens, pre_logits=True).shape == (2, 32) and m(x).shape == (2, 5)
    assert "attn_pool.query_tokens" in m.no_weight_decay()
    assert m.model_args["global_pool"] == "attentive" and m.model_args["attn_pool_depth"] == 2
    m.eval()
    vidzoo.save_pretrained(m, tmp_path / "m")
    back = vidzoo.create_model(f"local-dir:{tmp_path / 'm'}").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_args"]["attn_pool_heads"] == 4 and cfg["num_classes"] == 5
    # keeping the pooling keeps the pooler; another pooling removes it and its arguments
    pool = m.attn_pool
    m.reset_classifier(7)
    assert m.attn_pool is pool and m(x).shape == (2, 7)
    m.reset_classifier(7, attn_pool_depth=3)  # asking for another pooler gives a fresh one
    assert m.attn_pool is not pool and m.attn_pool.depth == 3 and m.attn_pool.num_heads == 2
    m.reset_classifier(7, global_pool="token")
    assert m.attn_pool is None and "attn_pool_depth" not in m.model_args
    with pytest.raises(ValueError, match="apply only with global_pool='attentive'"):
        m.reset_classifier(7, attn_pool_depth=2)


def test_reset_classifier_keeps_the_factorised_encoders_frame_pooling():
    m = vidzoo.create_model("vivit_fenc_tiny_patch16x2_224", embed_dim=32, depth=1, num_heads=2, temporal_depth=1,
                            num_frames=4, img_size=32, patch_size=8, num_classes=3).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        before = m.forward_features(x)
        m.reset_classifier(3, global_pool="attentive")
        torch.testing.assert_close(m.forward_features(x), before)  # the backbone is unchanged


def test_pooler_layer_decay_weight_decay_and_checkpointing():
    from vidzoo.engine import TrainConfig, build_optimizer
    m = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=5)
    opt = build_optimizer(m, TrainConfig(layer_decay=0.5))
    scale = {n: g["lr_scale"] for g in opt.param_groups for p in g["params"] for n, q in m.named_parameters()
             if q is p}
    assert scale["attn_pool.blocks.0.attn.qkv.weight"] == scale["attn_pool.query_tokens"] == scale["head.weight"] == 1
    assert scale["blocks.1.attn.qkv.weight"] == 0.5 and scale["patch_embed.proj.weight"] == 0.5 ** 3
    no_wd = {n for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]
             for n, q in m.named_parameters() if q is p}
    assert "attn_pool.query_tokens" in no_wd
    torch.manual_seed(0)
    x = clip()
    m(x).sum().backward()
    ref = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.set_grad_checkpointing(True)
    assert m.attn_pool.grad_checkpointing
    m(x).sum().backward()
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], atol=1e-6, rtol=1e-5)


def test_prune_for_features_drops_the_pooler():
    m = vidzoo.create_model(ARCH, **{**VZ_TINY, "depth": 3}, attn_pool_layers=[1, 2], num_frames=4, img_size=32)
    assert m.prune_intermediate_layers(indices=[0]) == [0]
    assert m.attn_pool is None and m.attn_pool_layers is None and m.global_pool == "avg" and len(m.blocks) == 1
    assert len(m.forward_intermediates(clip(), indices=[0], intermediates_only=True)) == 1


def test_upstream_pooler_initialisation():
    """Upstream's scheme: block i's output projections / sqrt(2 i), the cross block's MLP output / sqrt(2 (depth-1))."""
    torch.manual_seed(0)
    from vidzoo.models import AttentivePooler
    p = AttentivePooler(256, 4, depth=4)
    stds = [p.blocks[i].attn.proj.weight.std().item() * math.sqrt(2 * (i + 1)) for i in range(3)]
    assert all(0.019 < s < 0.021 for s in stds), stds  # normal 0.02 (truncated at +-2, far out), rescaled
    assert 0.019 < p.cross_attention_block.mlp.fc2.weight.std().item() * math.sqrt(6) < 0.021
    assert p.cross_attention_block.xattn.kv.bias.abs().sum() == 0


# ------------------------------------------------------------------------- multi-clip scoring
def test_token_merge_scores_like_upstream():
    """Per crop: the clips' tokens concatenated, the probe run once; softmax averaged over crops."""
    from vidzoo.engine.evaluation import predict_probs, predict_probs_merged_tokens
    m = vidzoo.create_model(ARCH, **VZ_TINY, num_frames=4, img_size=32, num_classes=5).eval()
    randomize(m)
    x = torch.randn(2, 6, 3, 4, 32, 32)  # 2 clips x 3 crops, clip-major
    with torch.no_grad():
        got = predict_probs_merged_tokens(m, x, num_clips=2)
        want = []
        for b in range(2):
            per_crop = []
            for s in range(3):
                toks = torch.cat([m.forward_features(x[b, c * 3 + s][None]) for c in range(2)], dim=1)
                per_crop.append(m.forward_head(toks).softmax(-1))
            want.append(torch.cat(per_crop).mean(0))
        torch.testing.assert_close(got, torch.stack(want))
        assert (got - predict_probs(m, x)).abs().max() > 1e-4  # not the probability average


def test_cli_eval_view_merge_tokens(tmp_path, capsys):
    from vidzoo.cli import main
    from vidzoo.data import make_motion_dataset
    from vidzoo.engine.model_io import save_model_folder
    make_motion_dataset(tmp_path / "data", num_classes=2, videos_per_class=2, num_frames=8, size=(16, 16))
    m = vidzoo.create_model(ARCH, **{**VZ_TINY, "embed_dim": 32, "num_heads": 2, "attn_pool_heads": 2},
                            num_frames=4, img_size=16, num_classes=2)
    save_model_folder(m, tmp_path / "model", run_config={"data": "motion", "epochs": 1}, classes=["left", "right"])
    args = ["eval", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"), "--views", "2x3",
            "--no-progress", "--num-samples", "0"]
    assert main([*args, "--view-merge", "tokens", "--output", str(tmp_path / "tok")]) == 0
    assert "2x3 views (clip tokens merged)" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "tok" / "metrics.json").read_text())
    assert metrics["view_merge"] == "tokens" and metrics["num_samples"] == 4
    assert main([*args, "--output", str(tmp_path / "prob")]) == 0
    assert json.loads((tmp_path / "prob" / "metrics.json").read_text())["view_merge"] == "probs"
    other = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", embed_dim=32, depth=1, num_heads=2, patch_size=8,
                                num_frames=4, img_size=16, num_classes=2)
    save_model_folder(other, tmp_path / "token_model", run_config={"data": "motion", "epochs": 1},
                      classes=["left", "right"])
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "token_model"), "--data", str(tmp_path / "data"),
                 "--view-merge", "tokens", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidzoo: error: --view-merge tokens") and "'token'" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------------- convert
def test_convert_reads_transformers_vjepa2_configs(tmp_path):
    from vidzoo.convert import _registered_tag_of, convert_checkpoint, model_args_from_hf_config
    hf = upstream_probe_eps(hf_model())
    hf.save_pretrained(tmp_path / "hf")
    # the probe's head count is not in transformers' config (it uses the encoder's); upstream's ViT-L/g
    # probes have 16, the architecture's default, so this 4-head toy says it
    model = convert_checkpoint(str(tmp_path / "hf"), tmp_path / "out", attn_pool_heads=4).eval()
    assert model.architecture == ARCH and model.attn_pool.depth == 3 and model.num_classes == 5
    x = clip()
    back = vidzoo.create_model(f"local-dir:{tmp_path / 'out'}").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x), hf_logits(hf, x), atol=1e-5, rtol=1e-5)
    arch, args = model_args_from_hf_config(dict(model_type="vjepa2", hidden_size=1408, crop_size=384, frames_per_clip=64,
                                                num_attention_heads=22, num_hidden_layers=40, mlp_ratio=48 / 11))
    assert arch == "vjepa2_joint_giant_patch16x2_384" and args["num_classes"] == 0 and args["num_frames"] == 64
    # a tag's own repo converts as that tag (the Diving48 probes' layers are in no config)
    assert _registered_tag_of("facebook/vjepa2-vitl-fpc32-256-diving48", ARCH) == f"{ARCH}.diving48"
    assert _registered_tag_of("someone/else", ARCH) is None
