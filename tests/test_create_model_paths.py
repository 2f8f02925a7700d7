"""Python accepts what the CLI accepts: ``create_model(path)`` for a run folder, a model folder or a training
checkpoint, built by the factory (which imports nothing of the engine)."""
from __future__ import annotations

import shutil

import pytest
import torch

import vidzoo
from vidzoo.engine.model_io import load_model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_create_model_loads_a_run_folder_a_model_folder_and_a_checkpoint(trained_run):
    cli_model = load_model(str(trained_run))  # what `vidzoo predict --model RUN` runs
    for path in (trained_run, str(trained_run), trained_run / "model"):
        m = vidzoo.create_model(str(path))
        assert _same_weights(m, cli_model) and m.pretrained_cfg["label_names"] == ["left", "right"]
    explicit = vidzoo.create_model(f"local-dir:{trained_run / 'model'}")
    assert _same_weights(explicit, cli_model)

    ckpt = trained_run / "checkpoints" / "best.pth"
    m = vidzoo.create_model(str(ckpt))
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(m.state_dict()[k], v) for k, v in saved.items())
    assert m.pretrained_cfg["label_names"] == ["left", "right"]
    assert m.pretrained_cfg["provenance"]["kind"] == "trained" and m.pretrained_cfg["frame_sample_rate"]
    x = torch.randn(1, *m.pretrained_cfg["input_size"])
    assert torch.allclose(m.eval()(x), load_model(str(ckpt))(x))

    other = vidzoo.create_model(str(ckpt), num_classes=5)  # another head: dropped, no class names claimed
    assert other.num_classes == 5 and other.pretrained_cfg.get("label_names") != ["left", "right"]
    bare = vidzoo.create_model(str(trained_run), pretrained=False)  # the architecture only
    assert bare.model_args == cli_model.model_args and not _same_weights(bare, cli_model)


def test_a_run_folder_without_its_model_folder_loads_the_best_checkpoint(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "model")
    m = vidzoo.create_model(str(run))
    saved = torch.load(run / "checkpoints" / "best.pth", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(m.state_dict()[k], v) for k, v in saved.items())


def test_paths_that_are_not_models_and_unknown_names(tmp_path):
    with pytest.raises(ValueError, match=r"'runs/nope' does not exist \(and is not a registered model name\)"):
        vidzoo.create_model("runs/nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a saved vidzoo model folder .* nor a training output folder"):
        vidzoo.create_model(str(tmp_path / "empty"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a vidzoo checkpoint"):
        vidzoo.create_model(str(tmp_path / "junk.pth"))
    with pytest.raises(ValueError, match="Closest matches: .*vivit_joint_base_patch16x2_224"):
        vidzoo.create_model("vivit_joint_base_patch16x2_22")
