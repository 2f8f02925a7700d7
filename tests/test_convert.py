"""Converters proved by logits parity with HF transformers (random weights, float32, same clip).

transformers models are built with random weights, saved with ``save_pretrained`` and loaded into
vidzoo through ``create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=...))`` —
the code path of a Hub download. transformers takes ``(B, T, C, H, W)``, vidzoo ``(B, C, T, H, W)``.
"""
from __future__ import annotations

import inspect
import json
import logging

import pytest
import torch

import vidzoo
from benchmarks._common import randomize
from vidzoo.convert import convert_checkpoint, model_args_from_hf_config

transformers = pytest.importorskip("transformers")
from transformers import (TimesformerConfig, TimesformerForVideoClassification, VivitConfig,  # noqa: E402
                          VivitForVideoClassification)
from transformers.initialization import no_init_weights  # noqa: E402

TOL = 1e-4
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
VZ_TINY = dict(embed_dim=64, depth=2, num_heads=4)


def build(cls, config):
    with no_init_weights():  # every parameter is overwritten by randomize()
        return randomize(cls(config))


def hf_vivit(tmp_path, name="hfv", **kw):
    cfg = dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], num_labels=7, **TINY)
    cfg.update(kw)
    m = build(VivitForVideoClassification, VivitConfig(**cfg))
    m.save_pretrained(tmp_path / name)
    return m, tmp_path / name


def hf_timesformer(tmp_path, name="hft", **kw):
    cfg = dict(image_size=32, num_frames=4, num_labels=7, **TINY)
    cfg.update(kw)
    m = build(TimesformerForVideoClassification, TimesformerConfig(**cfg))
    m.save_pretrained(tmp_path / name)
    return m, tmp_path / name


def logits_diff(hf, vz, x):
    with torch.no_grad():
        a = hf(pixel_values=x).logits
        b = vz(x.transpose(1, 2))
    assert a.shape == b.shape
    assert a.abs().max() > 0.1, "degenerate logits would make parity meaningless"
    return (a - b).abs().max().item()


def clip(b=2, t=4, s=32, seed=1):
    return torch.randn(b, t, 3, s, s, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------- ViViT (tiny)
def test_vivit_hf_parity_tiny(tmp_path):
    hf, d = hf_vivit(tmp_path)
    vz = vidzoo.create_model("vivit_joint_base_patch16x2_224.k400", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                             img_size=32, num_frames=4, num_classes=7, **VZ_TINY).eval()
    assert logits_diff(hf, vz, clip()) <= TOL


@pytest.mark.parametrize("names", ["legacy_bin", "module_names"])
def test_vivit_hf_key_variants(tmp_path, names):
    """pytorch_model.bin with the Hub's (transformers 4) names, and transformers 5 module names."""
    hf, d = hf_vivit(tmp_path)
    if names == "legacy_bin":
        from safetensors.torch import load_file
        sd = load_file(str(d / "model.safetensors"))  # transformers saves the legacy names
        assert any(".attention.attention.query." in k for k in sd)
    else:
        sd = hf.state_dict()
        assert any(".q_proj." in k for k in sd)
    path = tmp_path / "pytorch_model.bin"
    torch.save(sd, path)
    vz = vidzoo.create_model("vivit_joint_base_patch16x2_224.k400", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(path)), img_size=32, num_frames=4,
                             num_classes=7, **VZ_TINY).eval()
    assert logits_diff(hf, vz, clip()) <= TOL


# -------------------------------------------------------------------------- TimeSformer (tiny)
@pytest.mark.parametrize("attention_type,arch", [("divided_space_time", "timesformer_divided_base_patch16_224"),
                                                 ("joint_space_time", "timesformer_joint_base_patch16_224")])
def test_timesformer_hf_parity_tiny(tmp_path, attention_type, arch):
    hf, d = hf_timesformer(tmp_path, attention_type=attention_type)
    vz = vidzoo.create_model(arch, pretrained=True, pretrained_cfg=dict(file=str(d / "model.safetensors")),
                             img_size=32, num_frames=4, num_classes=7, **VZ_TINY).eval()
    assert logits_diff(hf, vz, clip()) <= TOL


def test_timesformer_resampled_at_other_size_matches_hf(tmp_path):
    """Loaded at 6 frames / 48 px from a 4-frame / 32 px checkpoint: vidzoo resamples its tables
    once (nearest, as upstream); HF TimeSformer interpolates them on the fly for the same input."""
    hf, d = hf_timesformer(tmp_path)
    vz = vidzoo.create_model("timesformer_divided_base_patch16_224.k400", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                             img_size=48, num_frames=6, num_classes=7, **VZ_TINY).eval()
    assert vz.pos_embed.shape == (1, 1 + 9, 64) and vz.time_embed.shape == (1, 6, 64)
    hf.config.num_frames, hf.config.image_size = 6, 48  # HF layers read the grid from the config
    assert logits_diff(hf, vz, clip(t=6, s=48)) <= TOL


def test_vivit_resampled_at_other_size(tmp_path):
    """ViViT (joint table over the clip) loaded at 8 frames / 48 px: the table is resampled in time
    (linear) and space (bicubic) with the layers helper; the class-token row is kept."""
    from safetensors.torch import load_file
    from vidzoo.layers import resample_pos_embed_3d
    hf, d = hf_vivit(tmp_path)
    vz = vidzoo.create_model("vivit_joint_base_patch16x2_224.k400", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                             img_size=48, num_frames=8, num_classes=7, **VZ_TINY).eval()
    src = load_file(str(d / "model.safetensors"))["vivit.embeddings.position_embeddings"]
    want = resample_pos_embed_3d(src, (2, 2, 2), (4, 3, 3), num_prefix_tokens=1)
    assert vz.pos_embed.shape == (1, 1 + 36, 64)
    torch.testing.assert_close(vz.pos_embed.data, want, rtol=0, atol=0)
    torch.testing.assert_close(vz.pos_embed.data[:, 0], src[:, 0], rtol=0, atol=0)
    # Same grid: the table passes through untouched and the model equals HF.
    same = vidzoo.create_model("vivit_joint_base_patch16x2_224.k400", pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                               img_size=32, num_frames=4, num_classes=7, **VZ_TINY)
    torch.testing.assert_close(same.pos_embed.data, src, rtol=0, atol=0)


def test_official_timesformer_checkpoint(tmp_path):
    """An official TimeSformer .pyth: {'model_state': {'model.<vidzoo key>': ...}, 'epoch': ...}."""
    hf, d = hf_timesformer(tmp_path)
    ref = vidzoo.create_model("timesformer_divided_base_patch16_224.k400", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                              img_size=32, num_frames=4, num_classes=7, **VZ_TINY).eval()
    path = tmp_path / "TimeSformer_divST_8x32_224_K400.pyth"
    torch.save({"epoch": 15, "model_state": {f"model.{k}": v for k, v in ref.state_dict().items()},
                "cfg": "MODEL: ..."}, path)
    vz = vidzoo.create_model("timesformer_divided_base_patch16_224", pretrained=True,
                             pretrained_cfg=dict(file=str(path)), img_size=32, num_frames=4, num_classes=7,
                             **VZ_TINY).eval()
    x = clip().transpose(1, 2)
    with torch.no_grad():
        assert torch.equal(vz(x), ref(x))
    assert logits_diff(hf, vz, clip()) <= TOL


def test_label_names_from_config_id2label(tmp_path):
    hf, d = hf_timesformer(tmp_path, id2label={i: f"action {i}" for i in range(7)})
    vz = vidzoo.create_model("timesformer_divided_base_patch16_224.k400", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                             img_size=32, num_frames=4, num_classes=7, **VZ_TINY)
    assert vz.pretrained_cfg["label_names"] == [f"action {i}" for i in range(7)]
    # Generic LABEL_i names are not label names.
    hf, d = hf_vivit(tmp_path)
    vz = vidzoo.create_model("vivit_joint_base_patch16x2_224.k400", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                             img_size=32, num_frames=4, num_classes=7, **VZ_TINY)
    assert vz.pretrained_cfg["label_names"] is None


# ----------------------------------------------------------------------------- default size
@pytest.mark.parametrize("config,arch", [(VivitConfig, "vivit_joint_base_patch16x2_224"),
                                         (TimesformerConfig, "timesformer_divided_base_patch16_224")])
def test_registered_spec_is_the_upstream_default(config, arch):
    """The tag's architecture with no overrides is transformers' default config (width, depth, heads, frames,
    size, patch, tubelet, activation, eps, biases): together with parity at the small sizes above, the
    converted default-size checkpoints compute what upstream computes (no 224 px forward needed)."""
    hf_arch, hf_args = model_args_from_hf_config(config(num_labels=400).to_dict())
    assert hf_arch == arch
    with torch.device("meta"):
        model = vidzoo.create_model(f"{arch}.k400")
    defaults = {k: p.default for k, p in inspect.signature(type(model).__init__).parameters.items()}
    mine = {**defaults, **model.model_args, "num_classes": model.num_classes}
    assert {k: mine[k] for k in hf_args} == hf_args


# -------------------------------------------------------------------------- vidzoo convert
@pytest.mark.parametrize("family", ["vivit", "timesformer"])
def test_convert_checkpoint_hf_folder(tmp_path, family):
    make = hf_vivit if family == "vivit" else hf_timesformer
    hf, d = make(tmp_path, id2label={i: f"class {i}" for i in range(7)})
    model = convert_checkpoint(str(d), tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["architecture"] == ("vivit_joint_base_patch16x2_224" if family == "vivit"
                                   else "timesformer_divided_base_patch16_224")
    assert cfg["model_args"]["num_frames"] == 4 and cfg["model_args"]["img_size"] == 32
    assert cfg["model_args"]["embed_dim"] == 64 and cfg["model_args"]["depth"] == 2
    assert cfg["pretrained_cfg"]["label_names"] == [f"class {i}" for i in range(7)]
    assert cfg["pretrained_cfg"]["origin_url"] == str(d)
    assert model.pretrained_cfg["label_names"][3] == "class 3"
    vz = vidzoo.create_model(f"local-dir:{tmp_path / 'out'}", pretrained=True).eval()
    assert logits_diff(hf, vz, clip()) <= TOL


def test_convert_checkpoint_file_needs_model_name(tmp_path):
    hf, d = hf_timesformer(tmp_path)
    torch.save(hf.state_dict(), tmp_path / "weights.pth")  # no config.json beside it
    with pytest.raises(ValueError, match="model_name"):
        convert_checkpoint(str(tmp_path / "weights.pth"), tmp_path / "out")
    convert_checkpoint(str(tmp_path / "weights.pth"), tmp_path / "out", "timesformer_divided_base_patch16_224.k400",
                       img_size=32, num_frames=4, num_classes=7, **VZ_TINY)
    vz = vidzoo.create_model(f"local-dir:{tmp_path / 'out'}", pretrained=True).eval()
    assert vz.pretrained_cfg["mean"] == (0.45, 0.45, 0.45)
    assert logits_diff(hf, vz, clip()) <= TOL


def test_model_args_from_hf_config():
    arch, args = model_args_from_hf_config(VivitConfig().to_dict())
    assert arch == "vivit_joint_base_patch16x2_224"
    assert args == dict(img_size=224, num_frames=32, in_chans=3, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                        qkv_bias=True, norm_eps=1e-6, act_layer="gelu_tanh", num_classes=2, patch_size=16,
                        tubelet_size=2)
    arch, args = model_args_from_hf_config(TimesformerConfig(image_size=448, num_frames=16).to_dict())
    assert arch == "timesformer_divided_base_patch16_448" and args["act_layer"] == "gelu"
    with pytest.raises(ValueError, match="model_type"):
        model_args_from_hf_config({"model_type": "bert"})


def test_conversion_logs_what_it_did(tmp_path, caplog):
    hf, d = hf_timesformer(tmp_path)
    with caplog.at_level(logging.INFO, logger="vidzoo"):
        vidzoo.create_model("timesformer_divided_base_patch16_224.k400", pretrained=True,
                            pretrained_cfg_overlay=dict(file=str(d / "model.safetensors")),
                            img_size=32, num_frames=8, num_classes=7, **VZ_TINY)
    assert "time embedding resampled from 4 to 8 frames (nearest)" in caplog.text
