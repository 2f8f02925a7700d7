"""Run folders that vidzoo owns: nothing trained is replaced without being asked, one run writes a
folder at a time, a resumed run is the same run, the saved model is the checkpoint the message
names, unreadable videos are counted once, a full disk is one line; the demo reruns into its own
folder and never deletes what it did not write."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from _outputs import full_folder
from helpers import MODEL, TINY, TINY_SET, console_script, subprocess_env, train_argv
from vidzoo.cli import main
from vidzoo.data import UnreadableVideoError
from vidzoo.engine import TrainConfig, train
from vidzoo.engine.checkpoint import load_checkpoint
from vidzoo.engine.errors import UserError
from vidzoo.engine.run_layout import RunLayout

from safetensors.torch import load_file


def one_line_error(cli, *argv) -> str:
    r = cli(*argv)
    assert r.code == 2 and r.err.startswith("vidzoo: error: ") and r.err.count("\n") == 1, (r.code, r.err)
    return r.err


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model" / "model.safetensors")


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def run(trained_run, tmp_path) -> Path:
    """A copy of the session's trained run (2 epochs of the tiny model on ``motion``)."""
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


# ---------------------------------------------------------------------------- what a run owns
@pytest.mark.parametrize("keep", ["model", "model+best", "model, no marker"])
def test_a_folder_holding_a_trained_model_is_not_replaced(run, motion, cli, keep):
    """Without checkpoints/last.pth (or without the marker of a newer vidzoo) the folder still holds
    a trained model: train refuses to replace it, and --overwrite does."""
    (run / "checkpoints" / "last.pth").unlink()
    if "best" not in keep:
        (run / "checkpoints" / "best.pth").unlink()
    if "no marker" in keep:
        (run / ".vidzoo-run.json").unlink(missing_ok=True)
    before = weights(run)
    err = one_line_error(cli, *train_argv(motion, run, *TINY_SET))
    assert "holds a trained model (" in err and "model/" in err and "--overwrite" in err
    assert same_weights(weights(run), before)


def test_overwrite_replaces_only_the_runs_own_files(run, motion, cli):
    (run / "notes.txt").write_text("mine")
    (run / "model" / "mine.txt").write_text("mine too")
    (run / "checkpoints" / "keep.pth").write_bytes(b"mine")
    r = cli(*train_argv(motion, run, *TINY_SET, "--overwrite", epochs=1))
    assert r.code == 0, r.err
    assert "removed the earlier run's files: train_config.json, train.log, metrics.json, metrics.csv, curves.png, " \
           "checkpoints/, model/" in r.out
    assert [m["epoch"] for m in json.loads((run / "metrics.json").read_text())] == [1]
    for p in ("notes.txt", "model/mine.txt", "checkpoints/keep.pth"):
        assert (run / p).is_file(), p


def test_removing_a_run_never_goes_through_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("config.json", "model.safetensors", "last.pth"):
        (elsewhere / name).write_text("not the run's")
    run = RunLayout(tmp_path / "run")
    run.root.mkdir()
    (run.root / "model").symlink_to(elsewhere)
    (run.root / "checkpoints").symlink_to(elsewhere)
    (run.root / "train.log").write_text("log")
    removed = run.remove_outputs(("config.json", "model.safetensors"))
    assert sorted(p.name for p in removed) == ["checkpoints", "model", "train.log"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["config.json", "last.pth", "model.safetensors"]


def test_files_no_run_wrote_are_not_replaced(motion, tmp_path, cli):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.log").write_text("my own log\n")
    err = one_line_error(cli, *train_argv(motion, out, *TINY_SET))
    assert "train.log, not written by a vidzoo run" in err
    assert (out / "train.log").read_text() == "my own log\n"


def test_a_run_that_saved_nothing_is_started_afresh(motion, tmp_path, cli):
    """A folder with the marker and no checkpoint (a run stopped in its first epoch) is vidzoo's
    own: the next run replaces its files without --overwrite."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".vidzoo-run.json").write_text('{"vidzoo_run": 1}\n')
    (out / "train.log").write_text("a first epoch that never ended\n")
    r = cli(*train_argv(motion, out, *TINY_SET))
    assert r.code == 0, r.err
    assert "removed the earlier run's files (it saved no checkpoint): train.log" in r.out
    assert "never ended" not in (out / "train.log").read_text()


def test_a_failed_start_leaves_no_folder(tmp_path, cli):
    out = tmp_path / "new"
    one_line_error(cli, *train_argv(tmp_path / "missing", out, *TINY_SET))
    assert not out.exists()


# ------------------------------------------------------------------------------------ the lock
LOCK = ".vidzoo.lock"  # the lock file's name is part of what users see (messages name it)


def test_a_locked_folder_is_refused(motion, tmp_path, cli):
    from vidzoo.engine.run_lock import RunLock
    out = tmp_path / "run"
    holder = RunLock(out / LOCK, "x", command="vidzoo train --output elsewhere")
    holder.acquire()  # another run, alive (its lock is held)
    try:
        err = one_line_error(cli, *train_argv(motion, out, *TINY_SET))
        assert f"run folder '{out}' is in use by another run (process {os.getpid()} on host" in err
        assert "vidzoo train --output elsewhere" in err
    finally:
        holder.release()
    assert not (out / LOCK).exists()


def test_a_stale_lock_is_reported_and_taken_over(motion, tmp_path, cli):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0}))
    r = cli(*train_argv(motion, out, *TINY_SET))
    assert r.code == 0, r.err
    assert f"taking over the lock of process {dead.pid} on host {socket.gethostname()}" in r.out
    assert "no longer running" in (out / "train.log").read_text()
    assert not (out / LOCK).exists()  # removed on exit


def test_a_lock_of_another_host_is_not_taken_over(motion, tmp_path, cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": "another-host.example", "started": 0}))
    err = one_line_error(cli, *train_argv(motion, out, *TINY_SET))
    assert "locked by process 1 on host another-host.example" in err and f"delete {out / LOCK}" in err
    assert (out / LOCK).is_file()


def test_the_lock_is_released_on_errors(run, motion, cli):
    one_line_error(cli, *train_argv(motion, run, *TINY_SET))  # a run is there: refused
    assert not (run / LOCK).exists()
    one_line_error(cli, *train_argv(motion, run, *TINY_SET, "--resume", "--seed", 5))
    assert not (run / LOCK).exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_concurrent_run_and_ctrl_c_for_real(motion, tmp_path, cli):
    """A real `vidzoo train` process: a second run into its folder refuses; Ctrl-C (SIGINT mid-epoch)
    ends it with the command that continues it, which then works (options from the folder)."""
    out = tmp_path / "run"
    argv = train_argv(motion, out, *TINY_SET, epochs=200, batch_size=2)
    child = subprocess.Popen([console_script(), *argv], env=subprocess_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "train.log").exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert (out / "train.log").exists(), child.communicate()[1] if child.poll() is not None else "no start"
        second = argv[:]
        second[second.index("--epochs") + 1] = "1"
        err = one_line_error(cli, *second)  # the same run again, while the first one writes
        assert f"is in use by another run (process {child.pid} on host" in err
        last = RunLayout(out).last
        while not last.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # into the next epoch
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("vidzoo: interrupted: training stopped in epoch "), stderr
    saved = load_checkpoint(RunLayout(out).last)["epoch"]
    assert f"checkpoints/last.pth holds epoch {saved}, saved when it ended" in stderr
    assert stderr.rstrip().endswith(f"Continue with: vidzoo train --output {out} --resume")
    assert not (out / LOCK).exists()
    r = cli("train", "--output", out, "--resume", "--epochs", saved + 1, "--threads", 1)
    assert r.code == 0, r.err
    assert f"resumed from {RunLayout(out).last} after epoch {saved}/{saved + 1}" in r.out
    assert [m["epoch"] for m in json.loads((out / "metrics.json").read_text())] == list(range(1, saved + 2))


# -------------------------------------------------------------------------------------- resume
def test_resume_refuses_options_that_change_the_run(run, motion, cli):
    err = one_line_error(cli, *train_argv(motion, run, *TINY_SET, "--resume", "--seed", 7, "--opt", "sgd",
                                          "--weight-decay", 0, "--layer-decay", 0.75, epochs=3))
    for part in ("--seed 7 (the run: 0)", "--opt sgd (the run: adamw)", "--weight-decay 0 (the run: 0.05)",
                 "--layer-decay 0.75 (the run: unset)"):
        assert part in err, err
    assert "--epochs" not in err.split("only")[0]  # epochs may change
    err = one_line_error(cli, "train", "--output", run, "--resume", "--val-split", "0.5")
    assert "--val-split 0.5 (the run: unset)" in err
    # the Python API checks the same against the checkpoint
    cfg = TrainConfig(model=MODEL, data=str(motion), output=str(run), epochs=3, batch_size=4, lr=1e-3, num_frames=4,
                      img_size=16, model_overrides=TINY, sampling="uniform", hflip=0.0, progress=False, seed=7,
                      resume=True)
    with pytest.raises(UserError, match=r"--seed 7 \(the run: 0\)"):
        train(cfg)


def test_resume_from_the_folder_alone(run, motion, cli):
    r = cli("train", "--output", run, "--resume", "--epochs", 3, "--workers", 0, "--device", "cpu", "--no-progress",
            "--threads", 1, "--lr", "1e-3", "--data", f"{motion}/.")  # --lr and --data as the run had them: agree
    assert r.code == 0, r.err
    assert "resumed from" in r.out and "epoch   3" in r.out
    assert [m["epoch"] for m in json.loads((run / "metrics.json").read_text())] == [1, 2, 3]
    (run / "train_config.json").unlink()
    err = one_line_error(cli, "train", "--output", run, "--resume", "--epochs", 4)
    assert "has no train_config.json" in err and "--model, --data" in err


def test_model_and_data_are_required_without_resume(tmp_path, cli):
    err = one_line_error(cli, "train", "--output", tmp_path / "o", "--model", MODEL)
    assert "the following arguments are required: --data (or --resume" in err
    assert "--model, --data" in one_line_error(cli, "train", "--output", tmp_path / "o", "--epochs", 2)


def test_resume_mismatches_name_keys_and_groups(run, motion, cli):
    last = RunLayout(run).last
    ckpt = load_checkpoint(last)
    ckpt["model"].pop("head.bias")
    ckpt["model"]["head.weight"] = torch.zeros(3, 32)
    torch.save(ckpt, last)
    err = one_line_error(cli, *train_argv(motion, run, *TINY_SET, "--resume", epochs=3))
    assert "1 missing key(s): head.bias" in err and "head.weight checkpoint (3, 32) vs model (2, 32)" in err
    ckpt = load_checkpoint(last)
    ckpt["model"]["head.bias"] = torch.zeros(2)
    ckpt["model"]["head.weight"] = torch.zeros(2, 32)
    ckpt["optimizer"]["param_groups"] = ckpt["optimizer"]["param_groups"][:1]
    torch.save(ckpt, last)
    err = one_line_error(cli, *train_argv(motion, run, *TINY_SET, "--resume", epochs=3))
    assert "optimizer state" in err and "1 parameter group(s) saved, 2 now" in err


def test_resume_and_overwrite_of_the_same_run_are_refused_together(run, cli):
    before = sorted(p.name for p in run.iterdir())
    err = one_line_error(cli, "train", "--output", run, "--resume", "--epochs", 3, "--overwrite")
    assert "--resume continues the run in" in err and "give one of them" in err
    assert sorted(p.name for p in run.iterdir()) == before  # nothing removed


def test_resume_cannot_shorten_a_run(run, motion, cli):
    err = one_line_error(cli, "train", "--output", run, "--resume", "--epochs", 1)
    assert "trained 2 epochs already; --epochs 1 cannot shorten it" in err


# ------------------------------------------------------------------------------------- the best
def _claim_best(run: Path, epoch: int, top1: float) -> dict[str, torch.Tensor]:
    """Make last.pth record ``epoch`` as the best (with ``top1``) and remove best.pth, as a
    deletion or a full disk during the copy leaves it; returns last.pth's weights."""
    last = RunLayout(run).last
    ckpt = load_checkpoint(last)
    ckpt["best_epoch"], ckpt["best_top1"], ckpt["best_loss"] = epoch, top1, 0.0
    torch.save(ckpt, last)
    RunLayout(run).best.unlink()
    return ckpt["model"]


def test_a_lost_best_checkpoint_is_said_and_the_last_epoch_saved(run, motion, cli):
    _claim_best(run, 1, 99.0)  # epoch 1 was the best; its checkpoint is gone
    r = cli(*train_argv(motion, run, *TINY_SET, "--resume", epochs=3))
    assert r.code == 0, r.err
    ckpt = load_checkpoint(RunLayout(run).last)
    assert ckpt["epoch"] == 3
    top1 = ckpt["history"][-1]["val_top1"]
    assert "checkpoints/best.pth is missing, not the best epoch 1 (val top-1 " in r.out
    assert f"final model (epoch 3, val top-1 {top1:.2f}%)" in r.out
    assert "best val top-1 99.00% at epoch 1, but its checkpoint is gone: the final model is the last epoch's " \
           f"(epoch 3, val top-1 {top1:.2f}%)" in r.out
    assert same_weights(weights(run), ckpt["model"])


def test_a_best_copy_that_failed_is_restored_from_last(run, motion, cli):
    epoch2 = _claim_best(run, 2, 100.0)  # the best is last.pth's own epoch: the copy to best.pth failed
    r = cli(*train_argv(motion, run, *TINY_SET, "--resume", epochs=3))
    assert r.code == 0, r.err
    assert "checkpoints/best.pth is missing, not the best epoch 2: restored from" in r.out
    best = load_checkpoint(RunLayout(run).best)
    assert best["epoch"] == 2
    assert f"final model (epoch 2, val top-1 {best['history'][-1]['val_top1']:.2f}%)" in r.out
    assert same_weights(weights(run), epoch2)


# ----------------------------------------------------------------------------------- unreadable
class SomeUnreadable(Dataset):
    """Noise clips of 2 classes; the indices in ``bad`` cannot be read."""

    classes = ["a", "b"]

    def __init__(self, n: int, bad: set[int]) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def source(self, i: int) -> str:
        return f"clip{i:02d}.mp4"

    def __getitem__(self, i: int):
        if i in self.bad:
            raise UnreadableVideoError(self.source(i), "not a video")
        return torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(i)), i % 2


def _api_cfg(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(model=MODEL, output=str(tmp_path / "run"), epochs=2, batch_size=4, num_frames=4,
                                 img_size=16, model_overrides=TINY, progress=False), **kw})


def test_unreadable_training_videos_are_counted_once_each(tmp_path):
    res = train(_api_cfg(tmp_path), SomeUnreadable(16, {4, 5, 6}))
    assert [r["train_unreadable"] for r in res.history] == [3, 3]
    assert (tmp_path / "run" / "train.log").read_text().count("unreadable training video") == 3


def test_mostly_unreadable_training_data_stops_the_run(tmp_path, cli):
    with pytest.raises(UserError, match=r"9 of the 16 training videos \(56%\) cannot be read, more than 50%"):
        train(_api_cfg(tmp_path), SomeUnreadable(16, set(range(9))))
    assert not RunLayout(tmp_path / "run").last.exists()  # stopped before saving the epoch


# ----------------------------------------------------------------------------------- full disk
def test_a_checkpoint_on_a_full_disk_is_one_line(motion, tmp_path, cli, monkeypatch):
    def no_space(obj, f, *args, **kwargs):  # torch.save to a file object on a full disk, as torch raises it
        try:
            raise OSError(28, os.strerror(28))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    out = tmp_path / "full" / "run"
    with full_folder(tmp_path / "full", lambda: monkeypatch.setattr(torch, "save", no_space)) as real:
        err = one_line_error(cli, *train_argv(motion, out, *TINY_SET))
        assert f"cannot write output '{out / 'checkpoints' / 'last.pth'}': the disk is full" in err, real
        assert not list((out / "checkpoints").glob(".last.pth.*"))  # nothing half-written left behind
        assert not (out / LOCK).exists()


# ------------------------------------------------------------------------------------------ demo
DEMO = ["demo", "--epochs", "1", "--videos-per-class", "2", "--val-videos-per-class", "1", "--classes", "2",
        "--no-progress"]


def test_demo_reruns_into_its_own_folder(tmp_path, cli):
    out = tmp_path / "demo"
    assert cli(*DEMO, "--output", out).code == 0
    first = {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*.mp4")}
    r = cli(*DEMO, "--output", out)  # the README one-liner, run again
    assert r.code == 0, r.err
    assert f"reusing the videos of the previous demo in {out / 'data'}" in r.out
    assert f"replacing the previous demo's training run in {out / 'run'}" in r.out
    assert {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*.mp4")} == first  # not rewritten
    (out / "data" / "train" / "left" / "mine.txt").write_text("mine")
    r = cli(*DEMO, "--videos-per-class", 3, "--output", out)  # other settings: its own videos replaced
    assert r.code == 0, r.err
    assert "replacing the videos of the previous demo" in r.out
    assert len(list((out / "data" / "train").rglob("*.mp4"))) == 3 * 2
    assert (out / "data" / "train" / "left" / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("folder", ["data", "run"])
def test_demo_never_deletes_what_it_did_not_write(tmp_path, cli, folder):
    out = tmp_path / "demo"
    (out / folder).mkdir(parents=True)
    (out / folder / "precious.mp4").write_text("not the demo's")
    for extra in (("--overwrite",), ()):
        err = one_line_error(cli, *DEMO, "--output", out, *extra)
        assert f"holds {folder}/, which vidzoo demo did not write" in err
    assert (out / folder / "precious.mp4").read_text() == "not the demo's"
