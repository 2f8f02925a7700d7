"""``vidzoo info`` on every kind of model it accepts (params and GMACs alike), and ``--threads``."""
import re

import pytest
import torch

import vidzoo.cli as cli
import vidzoo.engine.trainer
from vidzoo.cli import main
from vidzoo.data import make_motion_dataset
from vidzoo.engine.errors import UserError

MODEL = "vivit_joint_tiny_patch16x2_224"
SIZE = ["--num-frames", "4", "--img-size", "16"]
SETS = ["embed_dim=32", "depth=1", "num_heads=2", "patch_size=8"]


def _field(out: str, key: str) -> str:
    m = re.search(rf"^\s+{key}\s+: (\S+)", out, re.M)
    assert m, out
    return m.group(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("info_run")
    make_motion_dataset(root / "data", num_classes=2, videos_per_class=2, num_frames=8, size=(16, 16))
    assert main(["train", "--model", MODEL, "--data", str(root / "data"), "--output", str(root / "run"),
                 "--epochs", "1", "--batch-size", "4", "--sampling", "uniform", "--no-progress", "--threads", "1",
                 *SIZE, "--set", *SETS]) == 0
    return root / "run"


def test_info_reports_params_and_gmacs_for_every_kind_of_model(run, capsys):
    assert main(["info", MODEL, *SIZE, "--set", *SETS, "num_classes=2"]) == 0
    out = capsys.readouterr().out
    expected = (_field(out, "params"), _field(out, "GMACs"))
    assert float(expected[1]) > 0 and "GFLOPs (" not in out
    for model in (run, run / "model", run / "checkpoints" / "best.pth", f"local-dir:{run / 'model'}"):
        assert main(["info", str(model)]) == 0
        out = capsys.readouterr().out
        assert (_field(out, "params"), _field(out, "GMACs")) == expected, (model, out)
        assert "classes      : 2 (left, right)" in out


def test_info_applies_size_overrides_to_a_saved_model(run, capsys):
    """--num-frames on a saved model is applied (time embeddings resampled as the weights load), not
    silently dropped: the input row and the GMACs are those of the model it builds."""
    assert main(["info", str(run)]) == 0
    plain = capsys.readouterr().out
    assert main(["info", str(run), "--num-frames", "8"]) == 0
    longer = capsys.readouterr().out
    assert "(C, T, H, W) = (3, 8," in longer and "(C, T, H, W) = (3, 8," not in plain
    gmacs = [float(_field(out, "GMACs")) for out in (plain, longer)]
    assert gmacs[1] > gmacs[0]


@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_threads_applies_to_the_command_and_is_restored(command, monkeypatch, tmp_path):
    seen = []

    def record(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise UserError("stop here")

    monkeypatch.setattr(vidzoo.engine.trainer, "train", record)
    monkeypatch.setattr(cli, "_load", record)
    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    argv = {"train": ["train", "--model", MODEL, "--data", str(tmp_path), "--output", str(tmp_path / "o")],
            "eval": ["eval", "--model", MODEL, "--data", str(tmp_path)],
            "predict": ["predict", "--model", MODEL, str(tmp_path / "v.mp4")]}[command]
    assert main(argv + ["--threads", str(want)]) == 2
    assert main(argv) == 2  # default 0: torch's own count, untouched
    assert seen == [want, before] and torch.get_num_threads() == before


def test_threads_must_not_be_negative(capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", MODEL, "x.mp4", "--threads", "-1"])
    assert e.value.code == 2 and "expected an integer >= 0, got -1" in capsys.readouterr().err
