"""The ``vidzoo`` command end to end on tiny data: list, info, train (+ resume), eval, predict, demo,
convert, and the one-line user errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vidzoo
from vidzoo.cli import main
from vidzoo.data import make_motion_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "embed_dim=32", "depth=1", "num_heads=2", "patch_size=8"]
MODEL = "vivit_joint_tiny_patch16x2_224"


def vidzoo_cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "vidzoo", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_motion")
    make_motion_dataset(root, num_classes=2, videos_per_class=3, num_frames=8, size=(16, 16), split="train")
    make_motion_dataset(root, num_classes=2, videos_per_class=2, num_frames=8, size=(16, 16), split="val")
    return root


def train_args(data, out, epochs=2):
    return ["train", "--model", MODEL, "--data", data, "--output", out, "--epochs", epochs, "--batch-size", 4,
            "--lr", 1e-3, "--num-frames", 4, "--img-size", 16, "--sampling", "uniform", "--hflip", 0,
            "--no-progress", *TINY]


def test_list_and_info(capsys):
    assert main(["list", "timesformer_*_base*"]) == 0
    names = capsys.readouterr().out.split()
    assert "timesformer_divided_base_patch16_224" in names and all(n.startswith("timesformer") for n in names)
    assert main(["list", "--pretrained"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == vidzoo.list_pretrained()
    assert main(["info", "vivit_organmnist3d"]) == 0
    out = capsys.readouterr().out
    assert "1.66M" in out and "GMACs" in out and "(1, 28, 28, 28)" in out and "aliases" in out


def test_train_resume_eval_predict(motion, tmp_path):
    out = tmp_path / "run"
    r = vidzoo_cli(*train_args(motion, out))
    assert r.returncode == 0, r.stderr
    assert "done: best val top-1" in r.stdout and "epoch   2" in r.stdout
    assert vidzoo.create_model(f"local-dir:{out / 'model'}").pretrained_cfg["label_names"] == ["left", "right"]

    r = vidzoo_cli(*train_args(motion, out, epochs=3), "--resume")  # continue to a 3rd epoch
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout and "epoch   3" in r.stdout and "epoch   1 " not in r.stdout
    assert "re-planned for 3 epochs" in r.stdout
    assert [m["epoch"] for m in json.loads((out / "metrics.json").read_text())] == [1, 2, 3]

    r = vidzoo_cli("eval", "--model", out, "--data", motion / "val", "--views", "2x3", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "4 videos scored, 2x3 views: top-1" in r.stdout
    assert {p.name for p in (out / "eval").iterdir()} >= {"metrics.json", "confusion_matrix.csv",
                                                           "confusion_matrix.png", "samples.gif", "per_class.csv"}

    videos = [motion / "val" / "left" / "0000.mp4", motion / "val" / "right" / "0001.mp4"]
    r = vidzoo_cli("predict", "--model", out / "model", *videos, "--top-k", 2)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == str(videos[0]) and lines[3] == str(videos[1])
    for line in lines[1:3] + lines[4:6]:
        rank, name, prob = line.split()
        assert rank in ("1.", "2.") and name in ("left", "right") and 0.0 <= float(prob) <= 1.0


def test_user_errors_are_one_line(motion, tmp_path, capsys):
    def error(*args):
        assert main([str(a) for a in args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and err.count("\n") == 1, err
        return err

    assert "does not exist" in error(*train_args(tmp_path / "missing", tmp_path / "o"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert "no videos" in error(*train_args(tmp_path / "empty", tmp_path / "o"))
    other = tmp_path / "four"
    make_motion_dataset(other, num_classes=4, videos_per_class=1, num_frames=4, size=(16, 16))
    assert "classes differ" in error(*train_args(motion / "train", tmp_path / "o"), "--val-data", other)
    assert "cannot build model" in error(*train_args(motion, tmp_path / "o"), "--img-size", 20)  # 20 % 8 != 0
    msg = error(*train_args(motion, tmp_path / "o"), "--set", "in_chans=1")
    assert "takes 1-channel clips but --data has 3 channels" in msg
    assert "Unknown model 'vivit_nope'" in error("eval", "--model", "vivit_nope", "--data", motion)
    weights = tmp_path / "w.pth"  # a model with weights (eval/predict refuse a random initialisation)
    torch.save(vidzoo.create_model(MODEL, embed_dim=32, depth=1, num_heads=2, patch_size=8).state_dict(), weights)
    # predict answers every readable video; a missing one is named and the exit status is 1 (partial results)
    assert main(["predict", "--model", MODEL, "--weights", str(weights), str(tmp_path / "nope.mp4"), *TINY]) == 1
    assert "vidzoo: cannot read video" in capsys.readouterr().err
    assert "no checkpoint" in error(*train_args(motion, tmp_path / "fresh"), "--resume")


def test_subprocess_error_has_no_traceback(tmp_path):
    r = vidzoo_cli("train", "--model", MODEL, "--data", tmp_path / "nowhere", "--output", tmp_path / "o")
    assert r.returncode == 2
    assert r.stderr.strip() == f"vidzoo: error: --data '{tmp_path / 'nowhere'}' does not exist"


def test_demo_tiny(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--epochs", "1", "--videos-per-class", "2",
                 "--val-videos-per-class", "1", "--classes", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[4/4] vidzoo predict" in out and "done in" in out and "val top-1" in out
    assert (tmp_path / "demo" / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "demo" / "run" / "eval" / "samples.gif").is_file()


def test_convert(tmp_path, capsys):
    kw = dict(embed_dim=32, depth=1, num_heads=2, patch_size=8, num_frames=4, img_size=16, num_classes=2)
    model = vidzoo.create_model(MODEL, **kw)
    torch.save(model.state_dict(), tmp_path / "ckpt.pth")
    sets = [f"{k}={v}" for k, v in kw.items()]
    assert main(["convert", str(tmp_path / "ckpt.pth"), str(tmp_path / "conv"), "--model", MODEL, "--set", *sets]) == 0
    loaded = vidzoo.create_model(f"local-dir:{tmp_path / 'conv'}")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
