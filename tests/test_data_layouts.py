"""How a newcomer's data is used, said as it is: ``--val-split`` per class, a ``train/`` + ``test/`` folder,
top-k only where it means something, a validation that predicts one class."""
from __future__ import annotations

import json
import shutil

import pytest

from helpers import TINY_SET, train_argv
from vidzoo.data import make_motion_dataset
from vidzoo.engine.data_sources import describe_val_split
from vidzoo.engine.errors import UserError


def test_val_split_says_what_it_held_out_per_class(motion, tmp_path, cli):
    # 3 videos per class at 0.2: round(0.6) = 1 of 3 held out per class, 33% where 20% was asked
    r = cli(*train_argv(motion / "train", tmp_path / "run", *TINY_SET), "--val-split", "0.2")
    assert r.code == 0, r.err
    assert "--val-split 0.2 of " in r.out and "2 of 6 videos held out (33%; per class left 1/3, right 1/3)" in r.out


def test_val_split_refuses_a_class_left_without_training_videos(motion, tmp_path, cli):
    data = tmp_path / "data"
    shutil.copytree(motion / "train", data)
    for extra in sorted((data / "right").glob("*.mp4"))[1:]:
        extra.unlink()  # 'right' keeps one video: 0.6 of it rounds to all of it
    r = cli(*train_argv(data, tmp_path / "run", *TINY_SET), "--val-split", "0.6")
    assert r.code == 2
    assert r.err.strip() == ("vidzoo: error: --val-split 0.6 leaves no training video for class 'right' (1 video): "
                             "every one would be held out; lower --val-split, add videos, or pass --val-data")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_describe_val_split_counts():
    assert describe_val_split([0, 0, 1, 1, 1, 1], [1, 5], ["a", "b"], 0.3, "d", 7) == (
        "--val-split 0.3 of d: 2 of 6 videos held out (33%; per class a 1/2, b 1/4), stratified, seed 7")
    with pytest.raises(UserError, match="class 'a' .1 video."):
        describe_val_split([0, 1, 1], [0, 2], ["a", "b"], 0.5, "d", 0)


def test_train_test_layout_announces_that_test_is_not_validation(tmp_path, cli):
    root = tmp_path / "data"
    make_motion_dataset(root, num_classes=2, videos_per_class=2, num_frames=8, size=(16, 16), split="train")
    make_motion_dataset(root, num_classes=2, videos_per_class=1, num_frames=8, size=(16, 16), split="test")
    out = tmp_path / "run"
    r = cli(*train_argv(root, out, *TINY_SET))
    assert r.code == 0, r.err
    note = next(line for line in r.out.splitlines() if line.startswith("note:"))
    assert f"'{root / 'test'}' is not used in training or validation" in note
    assert f"`vidzoo eval --model {out} --data {root}` evaluates on it" in note and "--val-split 0.2" in note
    assert "no validation" in r.out and note in (out / "train.log").read_text()
    r = cli("eval", "--model", out, "--data", root, "--no-progress")  # what the note says: test/ is evaluated
    assert r.code == 0 and r.out.startswith("2 videos scored")
    # with --val-split the note stays, without the advice to validate
    r = cli(*train_argv(root, tmp_path / "run2", *TINY_SET), "--val-split", "0.5")
    assert "is not used in training or validation" in r.out and "add a val/ folder" not in r.out


def test_eval_of_two_classes_reports_no_topk(motion, trained_run, tmp_path, cli):
    r = cli("eval", "--model", trained_run, "--data", motion / "val", "--output", tmp_path / "ev", "--no-progress")
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    assert "top-1" in first and "top-2" not in first and "top-5" not in first
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "top1" in metrics and not [k for k in metrics if k.startswith("top") and k != "top1"]
    history = json.loads((trained_run / "metrics.json").read_text())
    assert not [k for k in history[0] if "top" in k and not k.endswith("top1")]
