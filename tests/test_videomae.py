"""VideoMAE / VideoMAE V2: model options, checkpoint layouts proved by logits parity with HF transformers.

transformers' ``VideoMAEForVideoClassification`` is built with random weights (LayerNorm scales
around 1, non-zero q/v biases and norm biases) and its weights reach vidzoo in every layout they
are published in: the Hub file ``save_pretrained`` writes (``q_bias`` / ``v_bias``), transformers'
in-memory state dict (``query.bias`` / ``value.bias``), and the original VideoMAE / V2 ``.pth``
(fused ``qkv``, under ``model`` / ``module``; pretraining checkpoints under ``encoder.`` beside a
decoder), the last written from the same weights by this test's own key map. The original code
uses LayerNorm eps 1e-6 everywhere (vidzoo's default for the family); transformers uses 1e-12 in
the blocks and 1e-5 in ``fc_norm``, so the reference is built with the original's eps.
"""
from __future__ import annotations

import json
import re

import pytest
import torch

import vidzoo
from benchmarks._common import randomize
from vidzoo._convert import CheckpointError, CheckpointMismatchError
from vidzoo._weights import load_pretrained

transformers = pytest.importorskip("transformers")
from transformers import (VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification,  # noqa: E402
                          VideoMAEModel)
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table  # noqa: E402

TOL = 1e-4
ARCH = "videomae_joint_base_patch16x2_224"
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
            decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
            decoder_intermediate_size=64)
VZ_TINY = dict(embed_dim=64, depth=2, num_heads=4, img_size=32)


def hf_config(**kw) -> VideoMAEConfig:
    cfg = dict(image_size=32, num_frames=4, num_labels=5, layer_norm_eps=1e-6, **TINY)
    cfg.update(kw)
    return VideoMAEConfig(**cfg)


def hf_classifier(num_frames: int = 4, seed: int = 0) -> VideoMAEForVideoClassification:
    m = VideoMAEForVideoClassification(hf_config(num_frames=num_frames))
    m.config._attn_implementation = "eager"
    m.fc_norm.eps = 1e-6  # transformers hard-codes 1e-5 here; the original code has 1e-6
    return randomize(m, seed)


def clip(b: int = 2, t: int = 4, s: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, 3, s, s, generator=torch.Generator().manual_seed(seed))  # HF layout (B, T, C, H, W)


def hf_logits(hf, x):
    with torch.no_grad():
        out = hf(pixel_values=x).logits
    assert out.abs().max() > 0.1, "degenerate logits would make parity meaningless"
    return out


def vz_from(sd, num_frames: int = 4, **kw):
    return vidzoo.create_model(f"{ARCH}.k400", pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd),
                               num_classes=kw.pop("num_classes", 5), num_frames=num_frames, **VZ_TINY, **kw).eval()


def original_layout(hf_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original VideoMAE ``modeling_finetune.py`` keys of an HF state dict (the inverse of
    transformers' convert_videomae_to_pytorch.py): fused qkv weight, q_bias / v_bias, fc_norm, head."""
    out, q = {}, {}
    for k, v in hf_sd.items():
        k = k.replace("videomae.", "")
        if m := re.match(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.weight", k):
            q.setdefault(int(m.group(1)), {})[m.group(2)] = v
            continue
        k = re.sub(r"encoder\.layer\.(\d+)\.", r"blocks.\1.", k)
        k = (k.replace("attention.attention.q_bias", "attn.q_bias").replace("attention.attention.v_bias", "attn.v_bias")
             .replace("attention.attention.query.bias", "attn.q_bias")
             .replace("attention.attention.value.bias", "attn.v_bias")
             .replace("attention.output.dense", "attn.proj").replace("layernorm_before", "norm1")
             .replace("layernorm_after", "norm2").replace("intermediate.dense", "mlp.fc1")
             .replace("output.dense", "mlp.fc2").replace("embeddings.patch_embeddings.projection", "patch_embed.proj")
             .replace("classifier", "head"))
        k = re.sub(r"^layernorm\.", "norm.", k)
        out[k] = v
    for i, p in q.items():
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([p["query"], p["key"], p["value"]])
    return out


# ------------------------------------------------------------------------------ model options
def test_sincos_table_matches_transformers_at_16x224():
    table = vidzoo.layers.sincos_pos_embed_1d(8 * 14 * 14, 768)
    assert torch.equal(table, get_sinusoid_encoding_table(1568, 768))
    m = vidzoo.create_model("videomae", num_classes=0, depth=1)
    assert torch.equal(m.pos_embed, table)


def test_sincos_is_a_fixed_buffer_for_the_models_grid():
    m = vidzoo.create_model(ARCH, num_frames=8, **VZ_TINY)
    assert "pos_embed" not in m.state_dict() and "pos_embed" not in dict(m.named_parameters())
    assert m.pos_embed.shape == (1, 4 * 2 * 2, 64)
    assert torch.equal(m.pos_embed, vidzoo.layers.sincos_pos_embed_1d(16, 64))
    # any attention variant with a joint sequence takes it, e.g. divided space-time
    d = vidzoo.create_model("timesformer_divided_base_patch16_224", pos_embed="sincos", num_frames=2, **VZ_TINY)
    assert d(torch.randn(1, 3, 2, 32, 32)).shape == (1, 400)


def test_videomae_spec():
    m = vidzoo.create_model(ARCH, **VZ_TINY)
    assert isinstance(m.norm, torch.nn.Identity) and isinstance(m.fc_norm, torch.nn.LayerNorm)
    assert m.fc_norm.eps == 1e-6 and m.blocks[0].norm1.eps == 1e-6
    attn = m.blocks[0].attn
    assert attn.qkv.bias is None and attn.q_bias.shape == attn.v_bias.shape == (64,)
    assert m.cls_token is None and m.global_pool == "avg"
    assert m.pretrained_cfg["mean"] == (0.485, 0.456, 0.406) and m.pretrained_cfg["num_frames"] == 16


def test_qv_bias_equals_zero_key_bias():
    """q/v biases compute exactly what a fused qkv bias with a zero key third computes."""
    torch.manual_seed(0)
    a = vidzoo.layers.Attention(32, 4, qkv_bias="qv").eval()
    b = vidzoo.layers.Attention(32, 4, qkv_bias=True).eval()
    with torch.no_grad():
        a.q_bias.normal_(), a.v_bias.normal_()
        b.load_state_dict({"qkv.weight": a.qkv.weight, "proj.weight": a.proj.weight, "proj.bias": a.proj.bias,
                           "qkv.bias": torch.cat([a.q_bias, torch.zeros(32), a.v_bias])})
        x = torch.randn(2, 10, 32)
        torch.testing.assert_close(a(x), b(x))
    with pytest.raises(ValueError, match="qkv_bias"):
        vidzoo.layers.Attention(32, 4, qkv_bias="qk")


def test_fc_norm_option_and_unsupported_variant():
    m = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", fc_norm=True, global_pool="avg", class_token=False,
                            num_frames=4, img_size=32, depth=1)
    assert isinstance(m.norm, torch.nn.Identity) and isinstance(m.fc_norm, torch.nn.LayerNorm)
    with pytest.raises(ValueError, match="fc_norm"):
        vidzoo.create_model("vivit_fenc_tiny_patch16x2_224", fc_norm=True, num_frames=4, img_size=32, depth=1)


# -------------------------------------------------------------------------- checkpoint layouts
def test_hub_file_layout_parity(tmp_path):
    """The file save_pretrained writes (as on the Hub: q_bias / v_bias, separate q/k/v), through
    the tag's file path with the config.json beside it (label names)."""
    hf = hf_classifier()
    hf.config.id2label = {i: f"action {i}" for i in range(5)}
    hf.save_pretrained(tmp_path / "hf")
    from safetensors.torch import load_file
    keys = load_file(tmp_path / "hf" / "model.safetensors")
    assert "videomae.encoder.layer.0.attention.attention.q_bias" in keys
    assert "videomae.encoder.layer.0.attention.attention.query.bias" not in keys
    vz = vidzoo.create_model(f"{ARCH}.k400", pretrained=True, num_classes=5, num_frames=4, **VZ_TINY,
                             pretrained_cfg_overlay=dict(file=str(tmp_path / "hf" / "model.safetensors"))).eval()
    x = clip()
    diff = (hf_logits(hf, x) - vz(x.transpose(1, 2))).abs().max().item()
    print(f"hub-file layout: max |logits diff| = {diff:.2e}")
    assert diff <= TOL
    assert vz.pretrained_cfg["label_names"] == [f"action {i}" for i in range(5)]


def test_in_memory_layout_parity():
    hf = hf_classifier()
    sd = hf.state_dict()
    assert "videomae.encoder.layer.0.attention.attention.query.bias" in sd
    x = clip()
    assert (hf_logits(hf, x) - vz_from(sd)(x.transpose(1, 2))).abs().max() <= TOL


@pytest.mark.parametrize("wrapper", ["model", "module", None])
def test_original_pth_layout_parity(tmp_path, wrapper):
    hf = hf_classifier()
    sd = original_layout(hf.state_dict())
    torch.save({wrapper: sd} if wrapper else sd, tmp_path / "ckpt.pth")
    vz = vidzoo.create_model(f"{ARCH}.v2_k710_distill", pretrained=True, num_classes=5, num_frames=4, **VZ_TINY,
                             pretrained_cfg_overlay=dict(file=str(tmp_path / "ckpt.pth"))).eval()
    x = clip()
    assert (hf_logits(hf, x) - vz(x.transpose(1, 2))).abs().max() <= TOL
    # vidzoo's own keys are the original ones
    assert set(sd) == set(vz.state_dict())


def test_transformers_default_eps_is_close_but_not_identical():
    """Records what the eps difference costs: transformers' own eps (1e-12 / 1e-5) vs the original's."""
    hf = VideoMAEForVideoClassification(hf_config(layer_norm_eps=1e-12))
    hf.config._attn_implementation = "eager"
    randomize(hf)
    x = clip()
    diff = (hf_logits(hf, x) - vz_from(hf.state_dict())(x.transpose(1, 2))).abs().max().item()
    print(f"transformers' default eps vs vidzoo's 1e-6: max |logits diff| = {diff:.2e}")
    assert diff <= 1e-3


def test_loaded_at_one_frame_count_runs_at_another():
    """A 4-frame checkpoint loaded into an 8-frame model equals transformers' 8-frame model with the
    same weights: the sin-cos table is generated for the new grid, nothing is resampled."""
    hf4 = hf_classifier(num_frames=4)
    hf8 = VideoMAEForVideoClassification(hf_config(num_frames=8))
    hf8.config._attn_implementation = "eager"
    hf8.fc_norm.eps = 1e-6
    hf8.load_state_dict(hf4.state_dict())
    hf8.eval()
    vz = vz_from(hf4.state_dict(), num_frames=8)
    assert vz.grid_size == (4, 2, 2)
    x = clip(t=8)
    assert (hf_logits(hf8, x) - vz(x.transpose(1, 2))).abs().max() <= TOL


def _pretrain_reference(hf_pre, x):
    """What VideoMAE fine-tuning starts from: encoder tokens, mean, a fresh LayerNorm (eps 1e-6)."""
    enc = VideoMAEModel(hf_config(use_mean_pooling=True))
    enc.config._attn_implementation = "eager"
    enc.load_state_dict({k[len("videomae."):]: v for k, v in hf_pre.state_dict().items()
                         if k.startswith("videomae.") and not k.startswith("videomae.layernorm.")})
    with torch.no_grad():
        h = enc.eval()(pixel_values=x).last_hidden_state.mean(1)
        return torch.nn.functional.layer_norm(h, (h.shape[-1],), eps=1e-6)


@pytest.mark.parametrize("layout", ["hf", "original"])
def test_pretrain_checkpoint_as_backbone(tmp_path, layout, caplog):
    """Pretraining checkpoints (HF VideoMAEForPreTraining, original ``encoder.`` + decoder): the
    decoder, mask token and the encoder's final norm are dropped, fc_norm and the head start fresh."""
    hf_pre = randomize(VideoMAEForPreTraining(hf_config(use_mean_pooling=False)))
    sd = hf_pre.state_dict()
    if layout == "original":
        enc = original_layout({k: v for k, v in sd.items() if k.startswith("videomae.")})
        dec = {"decoder.blocks.0.attn.qkv.weight": torch.randn(96, 32), "decoder.norm.weight": torch.ones(32),
               "decoder.head.weight": torch.randn(1536, 32)}
        sd = {"model": {**{f"encoder.{k}": v for k, v in enc.items()}, **dec,
                        "encoder_to_decoder.weight": sd["encoder_to_decoder.weight"], "mask_token": sd["mask_token"]}}
    torch.save(sd, tmp_path / "pt.pth")
    with caplog.at_level("INFO"):
        vz = vidzoo.create_model(f"{ARCH}.pt_k400", pretrained=True, num_frames=4, **VZ_TINY,
                                 pretrained_cfg_overlay=dict(file=str(tmp_path / "pt.pth"))).eval()
    assert vz.num_classes == 0
    x = clip()
    torch.testing.assert_close(vz(x.transpose(1, 2)), _pretrain_reference(hf_pre, x), atol=TOL, rtol=0)
    assert "pretraining-only tensors dropped" in caplog.text and "final norm" in caplog.text
    # with a head for the data's classes: the head is fresh, everything else loads
    vz5 = vidzoo.create_model(f"{ARCH}.pt_k400", pretrained=True, num_frames=4, num_classes=5, **VZ_TINY,
                              pretrained_cfg_overlay=dict(file=str(tmp_path / "pt.pth")))
    torch.testing.assert_close(vz5.blocks[1].attn.v_bias, vz.blocks[1].attn.v_bias)


def test_qv_checkpoint_into_fused_qkv_bias_model():
    hf = hf_classifier()
    vz = vz_from(hf.state_dict(), qkv_bias=True)
    assert vz.blocks[0].attn.q_bias is None and vz.blocks[0].attn.qkv.bias is not None
    x = clip()
    assert (hf_logits(hf, x) - vz(x.transpose(1, 2))).abs().max() <= TOL


def test_wrong_or_partial_checkpoints_are_refused():
    hf = hf_classifier()
    sd = hf.state_dict()
    model = vidzoo.create_model(ARCH, num_classes=5, num_frames=4, **VZ_TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    partial = {k: v for k, v in sd.items() if "layer.1." not in k}
    with pytest.raises(CheckpointMismatchError, match="missing key"):
        load_pretrained(model, dict(state_dict=partial, architecture=ARCH), filter_fn=None)
    no_key = {k: v for k, v in sd.items() if "layer.0.attention.attention.key.weight" not in k}
    with pytest.raises(CheckpointError, match="key weight"):
        load_pretrained(model, dict(state_dict=no_key, architecture=ARCH))
    bigger = vidzoo.create_model(ARCH, num_classes=5, num_frames=4, **{**VZ_TINY, "embed_dim": 128})
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        load_pretrained(bigger, dict(state_dict=sd, architecture=ARCH))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- registry, licences
def test_registry_tags_and_licences():
    names = vidzoo.list_models("videomae*", pretrained=True)
    for size in ("small", "base", "large", "huge"):
        assert f"videomae_joint_{size}_patch16x2_224.k400" in names
    for tag in ("ssv2", "pt_k400", "pt_ssv2", "v2_k710_distill"):
        assert f"{ARCH}.{tag}" in names
    cfg = vidzoo.get_pretrained_cfg(f"{ARCH}.k400")
    assert cfg.hf_hub_id == "MCG-NJU/videomae-base-finetuned-kinetics" and cfg.license == "cc-by-nc-4.0"
    assert cfg.source_format == "hf_videomae" and cfg.num_classes == 400
    assert vidzoo.get_pretrained_cfg(f"{ARCH}.ssv2").num_classes == 174
    v2 = vidzoo.get_pretrained_cfg("videomae_joint_small_patch16x2_224.v2_k710_distill")
    assert v2.license == "mit" and v2.num_classes == 710 and v2.hf_hub_filename.endswith(".pth")
    assert vidzoo.get_pretrained_cfg(f"{ARCH}.pt_k400").num_classes == 0
    assert vidzoo.create_model("videomae.k400", num_classes=0, depth=1).pretrained_cfg["license"] == "cc-by-nc-4.0"


# ---------------------------------------------------------------------------- layer-wise lr decay
def _scales(model, **cfg_kw):
    from vidzoo.engine import TrainConfig, build_optimizer
    opt = build_optimizer(model, TrainConfig(**cfg_kw))
    return {n: g["lr_scale"] for g in opt.param_groups for p in g["params"]
            for n, q in model.named_parameters() if q is p}, opt


def test_layer_decay_groups_follow_videomae_recipe():
    """VideoMAE's LayerDecayValueAssigner: embeddings decay ** (L + 1), block i decay ** (L - i),
    fc_norm and head 1; the timm scheduler multiplies each group's lr by its scale."""
    from vidzoo.engine import TrainConfig, build_scheduler
    m = vidzoo.create_model(ARCH, num_classes=5, num_frames=4, **{**VZ_TINY, "depth": 3})
    scales, opt = _scales(m, layer_decay=0.5, lr=1e-3, warmup_epochs=0)
    assert scales["patch_embed.proj.weight"] == 0.5 ** 4
    assert scales["blocks.0.attn.q_bias"] == 0.5 ** 3 and scales["blocks.2.mlp.fc2.weight"] == 0.5
    assert scales["fc_norm.weight"] == scales["head.weight"] == 1.0
    sched = build_scheduler(opt, TrainConfig(lr=1e-3, warmup_epochs=0, epochs=1), 10)
    sched.step_update(0)
    lrs = {g["lr_scale"]: g["lr"] for g in opt.param_groups}
    assert lrs[1.0] == pytest.approx(1e-3) and lrs[0.5 ** 4] == pytest.approx(1e-3 * 0.5 ** 4)
    # without it: one scale for all (no lr_scale groups)
    from vidzoo.engine import build_optimizer
    assert all("lr_scale" not in g for g in build_optimizer(m, TrainConfig()).param_groups)


def test_layer_decay_other_variants_and_cli():
    fenc = vidzoo.create_model("vivit_fenc_tiny_patch16x2_224", num_frames=4, img_size=32, depth=2, temporal_depth=2)
    s, _ = _scales(fenc, layer_decay=0.5)
    # spatial blocks, then the temporal encoder, then the head
    assert s["pos_embed"] < s["blocks.0.attn.qkv.weight"] < s["blocks.1.attn.qkv.weight"] == s["norm.weight"] \
        < s["temporal_pos_embed"] < s["temporal_blocks.0.attn.qkv.weight"] < s["temporal_blocks.1.mlp.fc1.weight"] \
        < s["head.weight"] == 1.0
    div = vidzoo.create_model("timesformer_divided_base_patch16_224", num_frames=2, **{**VZ_TINY, "depth": 2})
    s, _ = _scales(div, layer_decay=0.5)
    assert s["blocks.0.temporal_fc.weight"] == s["blocks.0.attn.qkv.weight"] == 0.25
    from vidzoo.cli import _train_config, build_parser, main
    args = build_parser().parse_args(["train", "--model", "videomae", "--data", "x", "--output", "o",
                                       "--layer-decay", "0.75"])
    assert _train_config(args).layer_decay == 0.75
    from vidzoo.engine import TrainConfig
    with pytest.raises(ValueError, match=r"--layer-decay must be a number in \(0, 1\], got 1.5"):
        TrainConfig(layer_decay=1.5)  # checked when the config is made (engine/validation.py)
    assert main(["train", "--model", ARCH, "--data", "x", "--output", "o", "--layer-decay", "0"]) == 2


class _ColourClips(torch.utils.data.Dataset):
    """Noise clips whose class is the brighter channel: learnable in a few steps."""

    def __init__(self, n: int = 24, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = torch.randn(n, 3, 4, 32, 32, generator=g) * 0.5
        self.x[torch.arange(n), self.y] += 1.0
        self.classes = ["a", "b", "c"]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def test_finetune_videomae_backbone_with_layer_decay(tmp_path):
    """A saved VideoMAE backbone (features, no head) fine-tunes with layer decay: a head for the
    data's classes is added, the loss goes down, the saved model reloads with its licence."""
    from vidzoo.engine import TrainConfig, train
    size = dict(num_classes=0, num_frames=4, embed_dim=32, depth=2, num_heads=2, img_size=32)
    weights = vidzoo.create_model(ARCH, **size).state_dict()
    # the backbone as the .pt_k400 tag's weights (licence cc-by-nc-4.0) would load them: its provenance says so
    backbone = vidzoo.create_model(f"{ARCH}.pt_k400", pretrained=True, pretrained_cfg_overlay=dict(state_dict=weights),
                                   **size)
    vidzoo.save_pretrained(backbone, tmp_path / "backbone")
    res = train(TrainConfig(model=f"local-dir:{tmp_path / 'backbone'}", pretrained=True, output=str(tmp_path / "run"),
                            epochs=3, batch_size=8, lr=2e-3, warmup_epochs=0.5, layer_decay=0.75, progress=False,
                            seed=3), _ColourClips(), _ColourClips(12, seed=1))
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0] - 0.1
    assert res.model.num_classes == 3
    saved = vidzoo.create_model(f"local-dir:{res.model_dir}")  # fine-tuned from the tag: its licence carried
    assert saved.pretrained_cfg["license"] == "cc-by-nc-4.0"
    assert saved.pretrained_cfg["provenance"]["kind"] == "fine_tuned"
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["config"]["layer_decay"] == 0.75


# ------------------------------------------------------------------------- licences in the CLI / card
def test_cli_marks_non_commercial_weights(capsys):
    from vidzoo.cli import main
    assert main(["list", "--pretrained", "videomae"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows[f"{ARCH}.k400"].endswith("cc-by-nc-4.0 (NON-COMMERCIAL)")
    assert rows[f"{ARCH}.v2_k710_distill"].split()[1:] == ["mit"]
    assert main(["info", "videomae.k400"]) == 0
    out = capsys.readouterr().out
    assert "cc-by-nc-4.0 (non-commercial use only)" in out and "arXiv:2203.12602" in out and "180.3" in out
    assert main(["list", "videomae"]) == 0  # without --pretrained: names only
    lines = capsys.readouterr().out.splitlines()  # names only (and the alias that matched)
    assert [line.split()[0] for line in lines] == [f"videomae_joint_{s}_patch16x2_224"
                                                   for s in ("base", "huge", "large", "small")]
    assert lines[0].split()[1:] == ["(alias", "videomae)"]


def test_model_card_names_family_and_licence():
    from vidzoo._hub import generate_model_card
    weights = vidzoo.create_model(ARCH, num_frames=4, **VZ_TINY).state_dict()
    m = vidzoo.create_model("videomae.k400", num_frames=4, pretrained=True,
                            pretrained_cfg_overlay=dict(state_dict=weights), **VZ_TINY)
    card = generate_model_card(m, "me/videomae-tiny")
    assert "license: cc-by-nc-4.0" in card and "A VideoMAE video classifier" in card
    assert "position embeddings `sincos`" in card and "pooling `avg`" in card
    random_card = generate_model_card(vidzoo.create_model("videomae.k400", num_frames=4, **VZ_TINY))
    assert "license: other" in random_card  # random weights claim no upstream licence


def test_vidzoo_convert_hf_videomae_folder(tmp_path):
    """`vidzoo convert` of a transformers VideoMAE folder: architecture and arguments from its
    config.json (eps: the family's 1e-6), class names from id2label, logits as transformers'."""
    from vidzoo.convert import convert_checkpoint
    hf = hf_classifier()
    hf.config.id2label = {i: f"action {i}" for i in range(5)}
    hf.save_pretrained(tmp_path / "hf")
    convert_checkpoint(str(tmp_path / "hf"), tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["architecture"] == ARCH and cfg["model_args"]["qkv_bias"] == "qv"
    assert cfg["model_args"]["norm_eps"] == 1e-6 and cfg["pretrained_cfg"]["label_names"][4] == "action 4"
    vz = vidzoo.create_model(f"local-dir:{tmp_path / 'out'}", pretrained=True).eval()
    x = clip()
    assert (hf_logits(hf, x) - vz(x.transpose(1, 2))).abs().max() <= TOL
