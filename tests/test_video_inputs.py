"""A folder of videos is a list of videos for ``predict``, ``embed``, ``predict --timeline`` and an
unlabelled ``eval``; a folder of images stays one clip; ``--timeline`` writes to ./vidzoo-timeline
by default."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidzoo.engine.model_io import save_model_folder
from vidzoo.engine.video_inputs import expand_video_inputs, is_unlabelled_folder

from helpers import MODEL


@pytest.fixture(scope="module")
def tree(motion, tmp_path_factory) -> Path:
    """``flat/``: clip2.mp4, clip10.mp4, frames/ (a frame folder), more/deep/clip1.mp4, notes.txt,
    a FIFO named like a video, an empty folder; ``classes/``: a copy of the motion train split."""
    root = tmp_path_factory.mktemp("inputs")
    src = sorted((motion / "train" / "left").glob("*.mp4"))
    flat = root / "flat"
    (flat / "more" / "deep").mkdir(parents=True)
    (flat / "empty").mkdir()
    shutil.copy(src[0], flat / "clip10.mp4")
    shutil.copy(src[1], flat / "clip2.mp4")
    shutil.copy(src[2], flat / "more" / "deep" / "clip1.mp4")
    (flat / "notes.txt").write_text("not a video, not named like one")
    os.mkfifo(flat / "pipe.mp4")
    frames = flat / "frames"
    frames.mkdir()
    for i in range(8):
        Image.fromarray(np.full((16, 16, 3), i * 30, np.uint8)).save(frames / f"{i:03d}.png")
    shutil.copytree(motion / "train", root / "classes")
    (root / "nothing").mkdir()
    return root


@pytest.fixture
def model_dir(tiny_model, tmp_path) -> Path:
    return save_model_folder(tiny_model, tmp_path / "model", run_config={"data": "motion", "epochs": 1,
                                                                        "model": MODEL}, classes=["left", "right"])


def test_a_folder_expands_to_its_videos_in_natural_order(tree):
    flat = tree / "flat"
    got = expand_video_inputs([flat, flat / "frames", tree / "missing.mp4"])
    rel = [os.path.relpath(p, tree) for p in got.paths]
    assert rel == ["flat/clip2.mp4", "flat/clip10.mp4", "flat/frames", "flat/more/deep/clip1.mp4",
                   "flat/frames", "missing.mp4"]
    assert [i.label for i in got.items] == [None] * 6 and not got.labelled
    assert [os.path.relpath(p, tree) for p, _ in got.ignored] == ["flat/pipe.mp4"]
    assert all(i.given == str(flat) for i in got.items[:4])
    # a folder laid out as classes gives each video its class; the order is class by class
    classes = expand_video_inputs([tree / "classes"])
    assert classes.labelled and [i.label for i in classes.items] == ["left"] * 3 + ["right"] * 3
    # a folder without any video is one input that cannot be answered
    empty = expand_video_inputs([tree / "nothing"])
    assert len(empty) == 1 and "no videos in this folder" in empty.items[0].error
    assert is_unlabelled_folder(tree / "flat") and not is_unlabelled_folder(tree / "classes")
    assert not is_unlabelled_folder(tree / "flat" / "frames")


def test_predict_answers_every_video_of_a_folder(tree, model_dir, cli):
    r = cli("predict", "--model", model_dir, tree / "flat", tree / "nothing", "--json", "--top-k", 1)
    assert r.code == 1, r.err  # the empty folder is one input that cannot be answered
    out = json.loads(r.out)
    assert [os.path.relpath(p["path"], tree) for p in out] == [
        "flat/clip2.mp4", "flat/clip10.mp4", "flat/frames", "flat/more/deep/clip1.mp4", "nothing"]
    assert [p["ok"] for p in out] == [True, True, True, True, False]
    assert "no videos in this folder" in out[-1]["error"]
    assert "ignoring" in r.err and "pipe.mp4" in r.err and "1 of 5 videos could not be read" in r.err
    assert cli("predict", "--model", model_dir, tree / "flat", "--output", "x").code == 2


def test_timeline_walks_folders_and_writes_to_vidzoo_timeline_by_default(tree, model_dir, cli, tmp_path,
                                                                         monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = cli("predict", "--model", model_dir, tree / "flat" / "more", "--timeline", "--no-progress")
    assert r.code == 0, r.err
    assert (work / "vidzoo-timeline" / "clip1_timeline.csv").is_file()
    assert (work / "vidzoo-timeline" / "clip1_timeline.png").is_file()


def test_eval_of_a_folder_without_classes_predicts_without_accuracy(tree, model_dir, cli, tmp_path):
    out = tmp_path / "report"
    r = cli("eval", "--model", model_dir, "--data", tree / "flat", "--output", out, "--no-progress")
    assert r.code == 0, r.err
    assert "no labels, so no accuracy" in r.out and "4 videos predicted" in r.out and "top-1" not in r.out
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [os.path.relpath(row["sample"], tree) for row in rows] == [
        "flat/clip2.mp4", "flat/clip10.mp4", "flat/frames", "flat/more/deep/clip1.mp4"]
    assert all(row["pred"] in ("left", "right") and row["status"] == "predicted" for row in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] is False and metrics["num_samples"] == 4 and "top1" not in metrics
    assert [os.path.relpath(e["path"], tree) for e in metrics["ignored_entries"]] == ["flat/pipe.mp4"]
    # the same videos predicted by predict get the same classes
    r = cli("predict", "--model", model_dir, tree / "flat", "--json", "--top-k", 1)
    assert [p["top"][0]["label"] for p in json.loads(r.out) if p["ok"]] == [row["pred"] for row in rows]
