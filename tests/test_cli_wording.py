"""The command speaks in flags: errors name ``--weights`` / ``--model`` / ``--set key=value``, never Python
keyword arguments; ``convert`` takes vidzoo's own training checkpoints; ``list`` knows aliases; a model
without tags is not told to pass ``--pretrained``; ``.pt2`` export needs no ONNX package; fine-tuning onto
other classes replaces the classifier and says so."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import vidzoo
from helpers import TINY_SET, train_argv
from vidzoo.cli import cli_words


@pytest.mark.parametrize("python,cli", [
    ("or pass the downloaded file: pretrained_cfg_overlay=dict(file='/path/to/pytorch_model.bin').",
     "or pass the downloaded file: --weights /path/to/pytorch_model.bin."),
    ("use a size that is, or pad_mode='pad' to zero-pad", "use a size that is, or --set pad_mode=pad to zero-pad"),
    ("global_pool='token' needs class_token=True.", "--set global_pool=token needs --set class_token=True."),
    ("pass num_classes=2 to load it as it is, or (num_classes=N)", "pass --set num_classes=2 to load it as it is, or "
                                                                   "(--set num_classes=N)"),
    ("no HF transformers config.json: pass model_name=ARCH (a vidzoo architecture)",
     "no HF transformers config.json: pass --model ARCH (a vidzoo architecture)"),
    ("load it through a folder that holds its config.json, or pass its grid as pretrained_cfg_overlay=dict(extra="
     "{'source_grid': (T, H, W)}).", "load it through a folder that holds its config.json."),
    ("num_frames (7) is not a multiple of tubelet_size (2)", "num_frames (7) is not a multiple of tubelet_size (2)"),
    ("--set num_classes=3: training takes the number of classes from --data",
     "--set num_classes=3: training takes the number of classes from --data"),
])
def test_cli_words(python, cli):
    assert cli_words(python) == cli


def test_errors_reached_from_the_command_name_flags(cli, tmp_path):
    r = cli("info", "vivit_joint_tiny_patch16x2_224", "--num-frames", "7")
    assert r.code == 2 and "--set pad_mode=pad" in r.err and "pad_mode='pad'" not in r.err
    (tmp_path / "w.bin").write_bytes(b"")
    r = cli("convert", tmp_path / "w.bin", tmp_path / "out")
    assert r.code == 2 and "pass --model ARCH" in r.err and "model_name" not in r.err


def test_convert_offline_says_what_works_offline(cli, tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    r = cli("convert", "hf-hub:google/vivit-b-16x2-kinetics400", tmp_path / "out")
    assert r.code == 2 and "offline mode is on" in r.err and "pretrained_cfg_overlay" not in r.err
    assert "(`hf download google/vivit-b-16x2-kinetics400 --local-dir DIR`), then `vidzoo convert DIR" in r.err


def test_convert_turns_a_training_checkpoint_or_run_into_a_model_folder(trained_run, tmp_path, cli):
    for src, dst in ((trained_run / "checkpoints" / "best.pth", tmp_path / "a"), (trained_run, tmp_path / "b")):
        r = cli("convert", src, dst)
        assert r.code == 0, r.err
        assert "patch 8x2, width 32" in r.out
        m = vidzoo.create_model(str(dst))
        ref = vidzoo.create_model(str(src))
        assert all(torch.equal(v, ref.state_dict()[k]) for k, v in m.state_dict().items())
        cfg = json.loads((dst / "config.json").read_text())
        assert cfg["pretrained_cfg"]["label_names"] == ["left", "right"]
        assert cfg["pretrained_cfg"]["provenance"]["kind"] == "trained"


def test_list_knows_aliases(cli):
    r = cli("list", "vivit_tubelet")
    assert r.code == 0 and r.out.split() == ["vivit_joint_base_patch16x2_224", "(alias", "vivit_tubelet)"]
    r = cli("list", "timesformer", "--pretrained")
    assert "timesformer_divided_base_patch16_224.k400" in r.out


def test_a_name_without_tags_is_not_told_to_pass_pretrained(cli, tmp_path):
    r = cli("predict", "--model", "vivit_organmnist3d", tmp_path / "v.mp4")
    assert r.code == 2 and "has no pretrained tags" in r.err
    assert "--pretrained" not in r.err and "--weights" not in r.err
    r = cli("predict", "--model", "timesformer", tmp_path / "v.mp4")
    assert r.code == 2 and "--pretrained for the default tag" in r.err


def test_pt2_export_needs_no_onnx_package(trained_run, tmp_path, cli, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.split(".")[0] in (
        "onnx", "onnxscript", "onnxruntime") else real(name, *a))
    r = cli("export", "--model", trained_run, "--output", tmp_path / "m.pt2")
    assert r.code == 0, r.err
    r = cli("export", "--model", trained_run, "--output", tmp_path / "m.onnx")
    assert r.code == 2 and "pip install onnx onnxscript onnxruntime" in r.err and "a .pt2 needs only torch" in r.err


def test_fine_tuning_onto_other_classes_replaces_the_classifier(motion, trained_run, tmp_path, cli):
    data = tmp_path / "data"
    for old, new in (("left", "cats"), ("right", "dogs")):  # the same count, other classes
        (data / new).mkdir(parents=True)
        for v in (motion / "train" / old).glob("*.mp4"):
            (data / new / v.name).write_bytes(v.read_bytes())
    still = ["--epochs", "1", "--opt", "sgd", "--lr", "1e-12", "--weight-decay", "0"]  # weights all but unchanged
    r = cli(*train_argv(data, tmp_path / "ft", *TINY_SET, model=str(trained_run)), *still)
    assert r.code == 0, r.err
    assert "was trained on other classes (2: left, right) than --data (2: cats, dogs): its classifier is replaced" \
        in r.out
    before = vidzoo.create_model(str(trained_run)).get_classifier().weight
    after = torch.load(tmp_path / "ft" / "checkpoints" / "last.pth", weights_only=True)["model"]["head.weight"]
    assert not torch.allclose(before, after, atol=1e-3)  # the replacement, not the 1e-12 steps, changed it
    # the same classes keep the classifier
    r = cli(*train_argv(motion, tmp_path / "same", *TINY_SET, model=str(trained_run)), *still)
    assert r.code == 0 and "classifier" not in r.out
    same = torch.load(tmp_path / "same" / "checkpoints" / "last.pth", weights_only=True)["model"]["head.weight"]
    assert torch.allclose(before, same, atol=1e-6)


def test_a_misspelt_flag_is_named_with_the_closest_one(capsys):
    from vidzoo.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "timesformer", "--data", "d", "--output", "o", "--val-splt", "0.2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "vidzoo train: error: unrecognized arguments: --val-splt (did you mean " \
        "--val-split?) 0.2" in err
