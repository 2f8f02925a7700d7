"""load_pretrained: tags, source priority, ImageNet (timm ViT) initialisation, failures, vidzoo's own format."""
from __future__ import annotations

import json
import logging

import pytest
import timm
import torch

import vidzoo
from benchmarks._common import randomize
from vidzoo import CheckpointError, CheckpointMismatchError, CorruptCheckpointError

D = dict(embed_dim=64, depth=2, num_heads=4)


# ------------------------------------------------------------------------------ tags / registry
def test_tags_registered():
    others = ["videomae_*", "vjepa2_*"]  # VideoMAE, V-JEPA 2: tests/test_videomae.py, tests/test_vjepa2.py
    tags = set(vidzoo.list_pretrained(exclude_filters=others))
    want = {"vivit_joint_base_patch16x2_224.k400"}
    want |= {f"timesformer_divided_base_patch16_{r}.{t}" for r in (224, 448) for t in ("k400", "k600", "ssv2")}
    want |= {"timesformer_divided_base_patch16_224_f96.k400"}
    want |= {f"vivit_{a}_base_patch16x2_224.in21k" for a in ("joint", "fenc", "fsa", "fdp")}
    want |= {"vivit_joint_base_patch16_224.in21k", "timesformer_divided_base_patch16_448.in21k",
             "timesformer_divided_base_patch16_224_f96.in21k"}
    want |= {f"timesformer_{a}_base_patch16_224.in21k" for a in ("divided", "joint", "space")}
    assert tags == want
    assert set(vidzoo.list_models(pretrained=True, exclude_filters=others)) == want  # timm: arch.tag names
    assert "vivit_joint_tiny_patch16x2_224" not in vidzoo.list_models(pretrained=True, include_tags=False)


@pytest.mark.parametrize("name,repo,classes,frames,size,mean", [
    ("vivit_joint_base_patch16x2_224", "google/vivit-b-16x2-kinetics400", 400, 32, 224, 0.5),
    ("timesformer_divided_base_patch16_224.k600", "facebook/timesformer-base-finetuned-k600", 600, 8, 224, 0.45),
    ("timesformer_divided_base_patch16_224.ssv2", "facebook/timesformer-base-finetuned-ssv2", 174, 8, 224, 0.45),
    ("timesformer_hr.ssv2", "facebook/timesformer-hr-finetuned-ssv2", 174, 16, 448, 0.45),
    ("timesformer_l", "fcakyon/timesformer-large-finetuned-k400", 400, 96, 224, 0.45),
    ("vivit_fenc_base_patch16x2_224", "timm/vit_base_patch16_224.augreg_in21k", 400, 32, 224, 0.5),
])
def test_tag_cfgs(name, repo, classes, frames, size, mean):
    """The first tag of an arch is its default; cfgs say where the weights are and how to feed the model."""
    cfg = vidzoo.get_pretrained_cfg(name)
    assert cfg.hf_hub_id == repo and cfg.num_classes == classes and cfg.num_frames == frames
    assert cfg.input_size == (3, frames, size, size) and cfg.mean == (mean,) * 3
    assert cfg.hf_hub_filename == ("model.safetensors" if repo.startswith("timm/") else "pytorch_model.bin")
    assert cfg.license and cfg.paper_ids
    assert (cfg.sampling == "uniform") == name.endswith("ssv2")


# -------------------------------------------------------------------------- source priority
def _tiny(name="timesformer_divided_tiny_patch16_224", **kw):
    return vidzoo.create_model(name, **{**dict(img_size=32, num_frames=2, num_classes=5), **D, **kw})


def test_source_priority_state_dict_then_file_then_hub(tmp_path):
    a, b = randomize(_tiny(), 1), randomize(_tiny(), 2)
    torch.save(b.state_dict(), tmp_path / "b.pth")
    hub = "vidzoo-tests/not-a-repo"  # never contacted: a higher-priority source is present
    m = _tiny(pretrained=True, pretrained_cfg=dict(state_dict=a.state_dict(), file=str(tmp_path / "b.pth"),
                                                   hf_hub_id=hub))
    assert all(torch.equal(m.state_dict()[k], v) for k, v in a.state_dict().items())
    m = _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "b.pth"), hf_hub_id=hub))
    assert all(torch.equal(m.state_dict()[k], v) for k, v in b.state_dict().items())


def test_no_weights_is_an_error():
    with pytest.raises(ValueError, match="No pretrained weights for 'vivit_joint_tiny_patch16x2_224'"):
        vidzoo.create_model("vivit_joint_tiny_patch16x2_224", pretrained=True, img_size=32, num_frames=4)


# ------------------------------------------------------------------- ImageNet (timm ViT) init
@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    """A tiny timm ViT (21 classes, 32 px) with random weights, saved as timm saves its hub weights."""
    from safetensors.torch import save_file
    vit = randomize(timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, num_classes=21, **D))
    path = tmp_path_factory.mktemp("vit") / "model.safetensors"
    save_file(vit.state_dict(), str(path))
    return vit, str(path)


def _from_vit(arch, vit_file, **kw):
    kw = {**dict(pretrained_cfg_overlay=dict(file=vit_file), img_size=32, num_classes=5), **D, **kw}
    return vidzoo.create_model(f"{arch}.in21k", pretrained=True, **kw).eval()


def _vit_tokens(vit, img):
    """The ViT's patch tokens with position embeddings (no class token): (B, N, D)."""
    return vit.patch_embed(img) + vit.pos_embed[:, 1:]


def _pre_logits(model, x):
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


@pytest.mark.parametrize("inflation", ["central_frame", "average"])
def test_in21k_tubelet_joint_static_clip(vit_file, inflation):
    """ViViT tubelets from a ViT: on a static clip (all frames the same image) either inflation gives
    every tubelet the ViT's patch embedding, the tiled joint table gives every time step the ViT's
    position embedding, and with one tubelet in time the whole model is the ViT."""
    vit, path = vit_file
    img = torch.randn(2, 3, 32, 32)
    static = img.unsqueeze(2).expand(-1, -1, 4, -1, -1)
    m = _from_vit("vivit_joint_base_patch16x2_224", path, num_frames=4,
                  pretrained_cfg_overlay=dict(file=path, inflation=inflation))
    with torch.no_grad():
        tokens = m._pos_embed(m.patch_embed(static))  # (B, 1 + T'*N, D), class token first
        want = _vit_tokens(vit, img)
        N = want.shape[1]
        for t in range(2):
            torch.testing.assert_close(tokens[:, 1 + t * N:1 + (t + 1) * N], want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m.pos_embed[:, 0], vit.pos_embed[:, 0], rtol=0, atol=0)
        torch.testing.assert_close(m.cls_token, vit.cls_token, rtol=0, atol=0)
    one = _from_vit("vivit_joint_base_patch16x2_224", path, num_frames=2, act_layer="gelu",
                    pretrained_cfg_overlay=dict(file=path, inflation=inflation))
    torch.testing.assert_close(_pre_logits(one, img.unsqueeze(2).expand(-1, -1, 2, -1, -1)), _pre_logits(vit, img),
                               rtol=0, atol=1e-5)


def test_in21k_inflation_modes_differ_on_moving_clips(vit_file):
    """central_frame sees only frame t//2 of a tubelet; average sees the mean of its frames."""
    vit, path = vit_file
    x = torch.randn(1, 3, 2, 32, 32, generator=torch.Generator().manual_seed(0))  # not the global RNG: order-independent
    per_frame = [vit.patch_embed(x[:, :, i]) - vit.patch_embed.proj.bias for i in range(2)]  # linear parts
    bias = vit.patch_embed.proj.bias
    with torch.no_grad():
        c = _from_vit("vivit_joint_base_patch16x2_224", path, num_frames=2).patch_embed(x)[:, 0]
        a = _from_vit("vivit_joint_base_patch16x2_224", path, num_frames=2,
                      pretrained_cfg_overlay=dict(file=path, inflation="average")).patch_embed(x)[:, 0]
        torch.testing.assert_close(c, per_frame[1] + bias, rtol=0, atol=1e-5)
        torch.testing.assert_close(a, (per_frame[0] + per_frame[1]) / 2 + bias, rtol=0, atol=1e-5)


def test_in21k_timesformer_divided(vit_file, caplog):
    """Official TimeSformer init from a ViT: temporal attention/norm copied from the spatial ones,
    temporal_fc zero except in block 0, time embedding zero, ViT head dropped. Hence with block 0's
    temporal_fc also zero the model *is* the ViT on a static clip (of any length)."""
    vit, path = vit_file
    with caplog.at_level(logging.INFO, logger="vidzoo"):
        m = _from_vit("timesformer_divided_base_patch16_224", path, num_frames=3)
    assert "21 classes, the model 5" in caplog.text
    assert m.head.weight.shape == (5, 64)
    assert torch.count_nonzero(m.time_embed) == 0
    for i, blk in enumerate(m.blocks):
        vb = vit.blocks[i]
        assert torch.equal(blk.temporal_attn.qkv.weight, vb.attn.qkv.weight)
        assert torch.equal(blk.temporal_attn.proj.bias, vb.attn.proj.bias)
        assert torch.equal(blk.temporal_norm1.weight, vb.norm1.weight)
        assert torch.equal(blk.attn.qkv.weight, vb.attn.qkv.weight)
        assert torch.equal(blk.mlp.fc2.weight, vb.mlp.fc2.weight)
        assert (torch.count_nonzero(blk.temporal_fc.weight) > 0) == (i == 0)
    img = torch.randn(2, 3, 32, 32)
    static = img.unsqueeze(2).expand(-1, -1, 3, -1, -1)
    assert not torch.allclose(_pre_logits(m, static), _pre_logits(vit, img), atol=1e-3)  # block 0's temporal_fc
    with torch.no_grad():
        m.blocks[0].temporal_fc.weight.zero_()
        m.blocks[0].temporal_fc.bias.zero_()
    torch.testing.assert_close(_pre_logits(m, static), _pre_logits(vit, img), rtol=0, atol=1e-5)


def test_in21k_space_only_is_the_vit(vit_file):
    vit, path = vit_file
    m = _from_vit("timesformer_space_base_patch16_224", path, num_frames=3)
    img = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(_pre_logits(m, img.unsqueeze(2).expand(-1, -1, 3, -1, -1)), _pre_logits(vit, img),
                               rtol=0, atol=1e-5)


def test_in21k_vivit_factorised_variants(vit_file):
    """fsa: temporal attention copied from spatial, temporal norm at its init (Scenic defaults);
    fenc: spatial encoder = ViT, temporal encoder left at its init; fdp: blocks copied, class token
    dropped (these variants pool by average)."""
    vit, path = vit_file
    fsa = _from_vit("vivit_fsa_base_patch16x2_224", path, num_frames=4)
    for blk, vb in zip(fsa.blocks, vit.blocks):
        assert torch.equal(blk.temporal_attn.qkv.weight, vb.attn.qkv.weight)
        assert torch.equal(blk.temporal_norm1.weight, torch.ones(64))
    assert fsa.cls_token is None and fsa.pos_embed.shape == (1, 2 * 4, 64)
    torch.testing.assert_close(fsa.pos_embed[:, 4:], vit.pos_embed[:, 1:], rtol=0, atol=0)  # tiled, no cls row
    torch.manual_seed(0)
    fenc_init = vidzoo.create_model("vivit_fenc_base_patch16x2_224", img_size=32, num_frames=4, num_classes=5, **D)
    torch.manual_seed(0)
    fenc = _from_vit("vivit_fenc_base_patch16x2_224", path, num_frames=4)
    assert torch.equal(fenc.norm.weight, vit.norm.weight) and torch.equal(fenc.pos_embed, vit.pos_embed)
    assert torch.equal(fenc.blocks[1].mlp.fc1.weight, vit.blocks[1].mlp.fc1.weight)
    assert torch.equal(fenc.temporal_blocks[0].attn.qkv.weight, fenc_init.temporal_blocks[0].attn.qkv.weight)
    assert torch.equal(fenc.temporal_pos_embed, fenc_init.temporal_pos_embed)
    fdp = _from_vit("vivit_fdp_base_patch16x2_224", path, num_frames=4)
    assert torch.equal(fdp.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)


def test_in21k_real_vit_b16_layout():
    """A timm ViT-B/16 (random weights; width, patches and 224 px grid of
    timm/vit_base_patch16_224.augreg_in21k, 2 blocks to stay fast) maps onto the default-size ViViT
    tubelet model and TimeSformer-HR (position table resampled 14x14 -> 28x28)."""
    sd = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=21843, depth=2).state_dict()
    m = vidzoo.create_model("vivit_joint_base_patch16x2_224.in21k", pretrained=True, depth=2,
                            pretrained_cfg_overlay=dict(state_dict=sd))
    assert m.patch_embed.proj.weight.shape == (768, 3, 2, 16, 16) and m.head.weight.shape == (400, 768)
    assert torch.equal(m.pos_embed[:, 1 + 196 * 15:], sd["pos_embed"][:, 1:])
    m = vidzoo.create_model("timesformer_hr.in21k", pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd),
                            num_classes=10, depth=2)
    assert m.pos_embed.shape == (1, 1 + 28 * 28, 768) and m.head.weight.shape == (10, 768)


def test_separable_checkpoint_into_joint_layout(tmp_path):
    """A TimeSformer checkpoint (spatial table + time embedding) loaded with pos_embed='joint': the
    joint table is pos[n] + time[t], so the model computes exactly the same function."""
    src = randomize(_tiny(num_frames=3))
    torch.save(src.state_dict(), tmp_path / "sep.pth")
    joint = _tiny(num_frames=3, pos_embed="joint", pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "sep.pth")))
    assert joint.time_embed is None and joint.pos_embed.shape == (1, 1 + 3 * 4, 64)
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(joint.eval()(x), src(x), rtol=0, atol=1e-5)


# -------------------------------------------------------------------------------- failures
def test_checkpoint_that_does_not_fit_lists_keys_and_shapes(tmp_path):
    src = randomize(_tiny(depth=3))
    torch.save(src.state_dict(), tmp_path / "deep.pth")
    with pytest.raises(CheckpointMismatchError) as e:
        _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "deep.pth")))
    assert "unexpected key(s): blocks.2.norm1.weight" in str(e.value) and "deep.pth" in str(e.value)
    assert "blocks.2.temporal_fc.bias" in e.value.unexpected
    wide = randomize(_tiny(embed_dim=96, num_heads=4))
    torch.save(wide.state_dict(), tmp_path / "wide.pth")
    with pytest.raises(CheckpointMismatchError) as e:
        _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "wide.pth")))
    assert "blocks.0.attn.qkv.weight checkpoint (288, 96) vs model (192, 64)" in str(e.value)


def test_failed_load_leaves_model_unchanged(tmp_path):
    model = randomize(_tiny(), 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = randomize(_tiny(), 4).state_dict()
    del bad["blocks.1.mlp.fc2.bias"]  # everything else fits
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError, match="1 missing key\\(s\\): blocks.1.mlp.fc2.bias"):
        vidzoo.load_checkpoint(model, tmp_path / "bad.pth")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_head_mismatch_is_dropped(tmp_path, caplog):
    src = randomize(_tiny())
    torch.save(src.state_dict(), tmp_path / "w.pth")
    with caplog.at_level(logging.INFO, logger="vidzoo"):
        m = _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "w.pth")), num_classes=9)
    assert "head has 5 classes, the model 9" in caplog.text
    assert m.head.weight.shape == (9, 64)
    assert torch.equal(m.blocks[1].temporal_fc.weight, src.blocks[1].temporal_fc.weight)
    feats = _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "w.pth")), num_classes=0)
    assert isinstance(feats.head, torch.nn.Identity)


@pytest.mark.parametrize("name,content", [("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"),
                                          ("pytorch_model.bin", None)])
def test_corrupt_file_is_named(tmp_path, name, content):
    path = tmp_path / name
    if content is None:  # a truncated torch.save file
        torch.save(randomize(_tiny()).state_dict(), path)
        content = path.read_bytes()[:1000]
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=str(path)):
        _tiny(pretrained=True, pretrained_cfg=dict(file=str(path)))


class _NotATensor:
    pass


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"pos_embed": torch.zeros(1), "payload": _NotATensor()}, path)
    with pytest.raises(CorruptCheckpointError, match="weights_only"):
        _tiny(pretrained=True, pretrained_cfg=dict(file=str(path)))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "nope.safetensors")))
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="Unrecognised checkpoint format"):
        _tiny(pretrained=True, pretrained_cfg=dict(file=str(tmp_path / "other.pth")))


# ------------------------------------------------------------------------- vidzoo's own format
@pytest.mark.parametrize("name", ["vivit_fenc_tiny_patch16x2_224", "vivit_fsa_tiny_patch16x2_224",
                                  "timesformer_divided_tiny_patch16_224"])
def test_save_pretrained_local_dir_roundtrip(tmp_path, name):
    labels = [f"class {i}" for i in range(5)]
    model = randomize(vidzoo.create_model(name, img_size=32, num_frames=4, num_classes=5,
                                          pretrained_cfg_overlay=dict(label_names=labels), **D))
    vidzoo.save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["architecture"] == name and cfg["num_classes"] == 5 and cfg["format"] == "vidzoo"
    assert cfg["model_args"]["attention"] == model.model_args["attention"] and cfg["model_args"]["img_size"] == 32
    assert cfg["pretrained_cfg"]["label_names"] == labels and "file" not in cfg["pretrained_cfg"]
    loaded = vidzoo.create_model(f"local-dir:{tmp_path / 'm'}").eval()  # a saved model: weights included
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.pretrained_cfg["label_names"] == labels
    assert loaded.pretrained_cfg["mean"] == model.pretrained_cfg["mean"]
    # Fine-tuning at another class count keeps everything but the head.
    ft = vidzoo.create_model(f"local-dir:{tmp_path / 'm'}", pretrained=True, num_classes=3)
    assert ft.head.weight.shape[0] == 3 and ft.pretrained_cfg["label_names"] is None
    assert torch.equal(ft.blocks[1].mlp.fc1.weight, model.blocks[1].mlp.fc1.weight)
    # pretrained=False: the saved architecture (and its cfg) with fresh weights, as timm does.
    arch = vidzoo.create_model(f"local-dir:{tmp_path / 'm'}", pretrained=False)
    assert arch.model_args == loaded.model_args and arch.pretrained_cfg["label_names"] == labels
    assert not torch.equal(arch.blocks[1].mlp.fc1.weight, model.blocks[1].mlp.fc1.weight)


def test_local_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a vidzoo model folder"):
        vidzoo.create_model(f"local-dir:{tmp_path}", pretrained=True)
    model = _tiny()
    vidzoo.save_pretrained(model, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CorruptCheckpointError, match="model.safetensors"):
        vidzoo.create_model(f"local-dir:{tmp_path / 'm'}", pretrained=True)
