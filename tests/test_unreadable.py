"""Honest numbers with unreadable videos: evaluation, validation and prediction never count or
substitute a video they could not read; data-side faults get a clear message."""
import faulthandler
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch

from helpers import MODEL, TINY
from vidzoo.cli import main
from vidzoo.data import VideoDecodeError, VideoFolder, make_motion_dataset
from vidzoo.engine import TrainConfig, build_scheduler, train
from vidzoo.engine.data_sources import open_train_val
from vidzoo.engine.errors import UserError
from vidzoo.engine.inference import predict_videos, run_evaluation
from vidzoo.engine.model_io import save_model_folder


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """root/{left,right}/000N.mp4: 3 readable videos per class, 8 frames of 16x16."""
    root = tmp_path_factory.mktemp("clean")
    make_motion_dataset(root, num_classes=2, videos_per_class=3, num_frames=8, size=(16, 16))
    return root


def with_bad_files(clean: Path, dst: Path) -> Path:
    """A copy of ``clean`` plus a text file named .mp4 and a truncated mp4 in 'left'."""
    shutil.copytree(clean, dst)
    (dst / "left" / "0005_text.mp4").write_text("this is not a video\n")
    good = (clean / "right" / "0000.mp4").read_bytes()
    (dst / "left" / "0006_truncated.mp4").write_bytes(good[: len(good) // 2])
    return dst


@pytest.fixture
def model(tiny_model):
    return tiny_model


def _cfg(data, out, **kw):
    base = dict(model=MODEL, data=str(data), output=str(out), epochs=1, batch_size=4, lr=1e-3, num_frames=4,
                img_size=16, model_overrides=TINY, hflip=0.0, progress=False, sampling="uniform")
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------- evaluation
def test_eval_excludes_unreadable_videos_from_every_figure(clean, model, tmp_path):
    dirty = with_bad_files(clean, tmp_path / "dirty")
    ref = run_evaluation(model, clean, batch_size=4, output=tmp_path / "ref", progress=False)
    run = run_evaluation(model, dirty, batch_size=4, output=tmp_path / "eval", progress=False)
    r = run.result
    # Exactly the clean data's numbers: nothing counted twice, nothing substituted.
    assert r.num_samples == 6 == ref.result.num_samples
    assert torch.equal(r.confusion, ref.result.confusion) and r.top1 == ref.result.top1
    assert r.per_class_accuracy == ref.result.per_class_accuracy
    assert [Path(u["path"]).name for u in r.unreadable] == ["0005_text.mp4", "0006_truncated.mp4"]
    assert all(u["reason"] for u in r.unreadable)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 6 and metrics["unreadable"] == 2
    assert [Path(u["path"]).name for u in metrics["unreadable_videos"]] == ["0005_text.mp4", "0006_truncated.mp4"]
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0].endswith(",status") and len(rows) == 1 + 8
    bad_rows = [row for row in rows if "0005_text.mp4" in row or "0006_truncated" in row]
    assert len(bad_rows) == 2 and all(row.endswith(",,,,,unreadable") for row in bad_rows)
    assert sum(row.endswith(",scored") for row in rows) == 6
    log = (tmp_path / "eval" / "eval.log").read_text()
    assert "6 video(s) scored, 2 unreadable" in log and "0005_text.mp4" in log and "0006_truncated.mp4" in log



def test_eval_report_names_ignored_entries(clean, model, tmp_path):
    shutil.copytree(clean, tmp_path / "data")
    (tmp_path / "data" / "left" / "sub").mkdir()
    shutil.copy(clean / "left" / "0000.mp4", tmp_path / "data" / "left" / "sub" / "deep.mp4")
    run_evaluation(model, tmp_path / "data", batch_size=4, output=tmp_path / "eval", progress=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [Path(e["path"]).name for e in metrics["ignored_entries"]] == ["sub"] and metrics["num_samples"] == 6
    assert "ignored '" in (tmp_path / "eval" / "eval.log").read_text()


def test_eval_on_error_raise_stops_at_the_first(clean, model, tmp_path):
    dirty = with_bad_files(clean, tmp_path / "dirty")
    with pytest.raises(VideoDecodeError, match="0005_text.mp4"):
        run_evaluation(model, dirty, batch_size=4, progress=False, on_error="raise")


def test_eval_cli_names_unreadable_videos(clean, model, tmp_path, capsys):
    dirty = with_bad_files(clean, tmp_path / "dirty")
    # saved as trained weights (eval/predict refuse a folder whose provenance says random initialisation)
    save_model_folder(model, tmp_path / "model", run_config={"data": str(clean), "epochs": 1, "model": MODEL},
                      classes=["left", "right"])
    assert main(["eval", "--model", str(tmp_path / "model"), "--data", str(dirty), "--output", str(tmp_path / "e"),
                 "--no-progress", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 videos scored") and "2 unreadable video(s) excluded" in out and "0005_text.mp4" in out


def test_eval_with_no_readable_video_is_an_error(model, tmp_path):
    for c in ("left", "right"):
        (tmp_path / "d" / c).mkdir(parents=True)
        (tmp_path / "d" / c / "x.mp4").write_text("text")
    with pytest.raises(UserError, match="none of its 2 videos can be read"):
        run_evaluation(model, tmp_path / "d", progress=False)


# ------------------------------------------------------------------------------------- training
def test_validation_excludes_and_counts_unreadable_videos(clean, tmp_path):
    shutil.copytree(clean, tmp_path / "data" / "train")
    with_bad_files(clean, tmp_path / "data" / "val")
    (tmp_path / "data" / "train" / "left" / "sub").mkdir()
    shutil.copy(clean / "left" / "0000.mp4", tmp_path / "data" / "train" / "left" / "sub" / "deep.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named in the log, not through Python warnings
        res = train(_cfg(tmp_path / "data", tmp_path / "run", epochs=2))
    assert [r["val_num_samples"] for r in res.history] == [6, 6]  # 8 files, 2 unreadable
    assert [r["val_unreadable"] for r in res.history] == [2, 2]
    assert [r["train_unreadable"] for r in res.history] == [0, 0]
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("unreadable validation video '") == 2  # each named once, not once per epoch
    assert "0005_text.mp4" in log and "0006_truncated.mp4" in log and "2 unreadable validation video(s)" in log
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics[0]["val_unreadable"] == 2
    assert f"ignoring '{tmp_path / 'data' / 'train' / 'left' / 'sub'}': a nested folder" in log


def test_validation_data_with_no_readable_video_is_an_error(clean, tmp_path):
    (tmp_path / "val").mkdir()
    for c in ("left", "right"):
        (tmp_path / "val" / c).mkdir()
        (tmp_path / "val" / c / "x.mp4").write_text("text")
    with pytest.raises(UserError, match="--val-data: none of its 2 videos can be read"):
        train(_cfg(clean, tmp_path / "run", val_data=str(tmp_path / "val")))


def test_a_class_with_no_readable_video_stops_training(clean, tmp_path):
    shutil.copytree(clean, tmp_path / "data")
    for f in (tmp_path / "data" / "right").iterdir():
        f.write_text("not a video")
    with pytest.raises(UserError, match="class 'right': none of its 3 training videos can be read"):
        train(_cfg(tmp_path / "data", tmp_path / "run"))


def test_output_inside_data_is_refused(clean, tmp_path):
    shutil.copytree(clean, tmp_path / "data")
    with pytest.raises(UserError, match="is inside --data"):
        train(_cfg(tmp_path / "data", tmp_path / "data" / "run"))


def test_leftover_temp_files_are_cleaned_on_start(clean, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / "checkpoints" / ".last.pth.k2j4h1.tmp", run / "checkpoints" / ".best.pth.x.tmp",
             run / ".metrics.json.abc.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    keep = run / "checkpoints" / "notes.tmp"
    keep.write_text("not ours")
    train(_cfg(clean, run))
    assert not any(p.exists() for p in stale) and keep.exists()
    assert "removed 3 temporary file(s)" in (run / "train.log").read_text()


# ------------------------------------------------------------------------------------- data faults
def test_empty_class_folder_is_an_error(clean, tmp_path):
    shutil.copytree(clean, tmp_path / "data")
    (tmp_path / "data" / "up").mkdir()
    with pytest.raises(UserError, match="class folder.* without videos .*: up"):
        open_train_val(tmp_path / "data")


def test_nested_videos_and_fifos_are_named(clean, tmp_path, caplog):
    shutil.copytree(clean, tmp_path / "data")
    nested = tmp_path / "data" / "left" / "more"
    nested.mkdir()
    shutil.copy(clean / "left" / "0000.mp4", nested / "deep.mp4")
    os.mkfifo(tmp_path / "data" / "right" / "pipe.mp4")
    with caplog.at_level(logging.WARNING, logger="vidzoo.data"):
        ds = VideoFolder(tmp_path / "data")
    assert len(ds) == 6
    reasons = dict(ds.ignored)
    assert "1 video(s)" in reasons[str(nested)] and "FIFO" in reasons[str(tmp_path / "data" / "right" / "pipe.mp4")]
    text = caplog.text
    assert "more" in text and "pipe.mp4" in text


def test_val_split_opens_the_data_once(clean, monkeypatch):
    calls = []
    orig = VideoFolder.__init__

    def counting(self, *a, **k):
        calls.append(a[0] if a else k.get("root"))
        orig(self, *a, **k)

    monkeypatch.setattr(VideoFolder, "__init__", counting)
    s = open_train_val(clean, val_split=0.5)
    assert len(calls) == 1 and len(s.train) + len(s.val) == 6


# ------------------------------------------------------------------------------------- prediction
def test_predict_answers_readable_videos_and_marks_the_others(clean, model, tmp_path, cli):
    # saved as trained weights (eval/predict refuse a folder whose provenance says random initialisation)
    save_model_folder(model, tmp_path / "model", run_config={"data": str(clean), "epochs": 1, "model": MODEL},
                      classes=["left", "right"])
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # FFmpeg would wait forever for a writer: vidzoo must not open it
    good = clean / "left" / "0000.mp4"
    argv = ["predict", "--model", tmp_path / "model", text, good, fifo, tmp_path / "missing.mp4", "--top-k", 2]
    # a hang fails the run (with the stack) instead of blocking it
    faulthandler.dump_traceback_later(120, exit=True, file=sys.__stderr__)
    try:
        r = cli(*argv, "--json")
        assert r.code == 1, r.err
        out = json.loads(r.out)
        assert [Path(p["path"]).name for p in out] == ["text.mp4", "0000.mp4", "pipe.mp4", "missing.mp4"]
        assert [p["ok"] for p in out] == [False, True, False, False]
        assert len(out[1]["top"]) == 2 and "error" not in out[1]
        assert all(p["error"] and p["top"] == [] for p in out if not p["ok"])
        assert "3 of 4 videos could not be read" in r.err and "Traceback" not in r.err
        r = cli(*argv)
        assert r.code == 1 and r.out.splitlines()[0] == str(good) and len(r.out.splitlines()) == 3
        assert all(f"cannot read video '{p}'" in r.err for p in (text, fifo, tmp_path / "missing.mp4"))
    finally:
        faulthandler.cancel_dump_traceback_later()
    preds = predict_videos(model, [good, text])
    assert preds[0].ok and not preds[1].ok


# ------------------------------------------------------------------------------------- console noise
def test_short_run_schedule_has_no_noop_cosine(caplog):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    with caplog.at_level(logging.WARNING):
        sched = build_scheduler(opt, TrainConfig(lr=1e-3, epochs=1, warmup_epochs=1), updates_per_epoch=3)
    assert "no effect" not in caplog.text
    lrs = []
    for step in range(1, 4):
        sched.step_update(step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == sorted(lrs) and lrs[-1] == pytest.approx(1e-3)  # warmup to the peak, nothing after


def test_only_the_main_rank_prints_the_summary(monkeypatch, capsys, tmp_path):
    import vidzoo.engine.trainer as trainer
    result = trainer.TrainResult(None, [], 1, None, tmp_path, None, ["a", "b"], is_main=False)
    monkeypatch.setattr(trainer, "train", lambda cfg: result)
    assert main(["train", "--model", MODEL, "--data", str(tmp_path), "--output", str(tmp_path / "o")]) == 0
    assert "done:" not in capsys.readouterr().out
