"""``vidzoo info`` on every kind of model it accepts (params and GMACs alike), and ``--threads``."""
import re

import pytest
import torch

import vidzoo.cli as cli
import vidzoo.engine.trainer
from helpers import CLIP, MODEL, TINY_SET
from vidzoo.cli import main
from vidzoo.engine.errors import UserError


def _field(out: str, key: str) -> str:
    m = re.search(rf"^\s+{key}\s+: (\S+)", out, re.M)
    assert m, out
    return m.group(1)


def test_info_reports_params_and_gmacs_for_every_kind_of_model(trained_run, capsys):
    assert main(["info", MODEL, *CLIP, *TINY_SET, "num_classes=2"]) == 0
    out = capsys.readouterr().out
    expected = (_field(out, "params"), _field(out, "GMACs"))
    assert float(expected[1]) > 0 and "GFLOPs (" not in out
    run = trained_run
    for model in (run, run / "model", run / "checkpoints" / "best.pth", f"local-dir:{run / 'model'}"):
        assert main(["info", str(model)]) == 0
        out = capsys.readouterr().out
        assert (_field(out, "params"), _field(out, "GMACs")) == expected, (model, out)
        assert "classes      : 2 (left, right)" in out


def test_info_applies_size_overrides_to_a_saved_model(trained_run, capsys):
    """--num-frames on a saved model is applied (time embeddings resampled as the weights load), not
    silently dropped: the input row and the GMACs are those of the model it builds."""
    assert main(["info", str(trained_run)]) == 0
    plain = capsys.readouterr().out
    assert main(["info", str(trained_run), "--num-frames", "8"]) == 0
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
