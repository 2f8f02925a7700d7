"""The ``vidzoo`` command on tiny data, in this process: list, info, train (+ resume), eval, predict,
demo, convert and the one-line user errors; once end to end through the installed console script."""
import json
import shutil

import torch

import vidzoo
from helpers import MODEL, TINY, TINY_SET, run_console, train_argv
from vidzoo.data import make_motion_dataset


def test_list_and_info(cli):
    r = cli("list", "timesformer_*_base*")
    names = r.out.split()
    assert "timesformer_divided_base_patch16_224" in names and all(n.startswith("timesformer") for n in names)
    r = cli("list", "--pretrained")
    assert [line.split()[0] for line in r.out.splitlines()] == vidzoo.list_pretrained()
    r = cli("info", "vivit_organmnist3d")
    assert r.code == 0 and "1.66M" in r.out and "GMACs" in r.out and "(1, 28, 28, 28)" in r.out
    assert "aliases" in r.out


def test_train_resume_eval_predict(trained_run, motion, tmp_path, cli):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)  # 2 epochs of `vidzoo train` (conftest)
    assert vidzoo.create_model(f"local-dir:{out / 'model'}").pretrained_cfg["label_names"] == ["left", "right"]

    r = cli(*train_argv(motion, out, *TINY_SET, epochs=3), "--resume")  # continue to a 3rd epoch
    assert r.code == 0, r.err
    assert "resumed from" in r.out and "epoch   3" in r.out and "epoch   1 " not in r.out
    assert "re-planned for 3 epochs" in r.out and "done: best val top-1" in r.out
    assert f"outputs in {out}/: train_config.json, train.log, metrics.json, metrics.csv, curves.png, " \
           "checkpoints/last.pth, checkpoints/best.pth, model/" in r.out
    assert [m["epoch"] for m in json.loads((out / "metrics.json").read_text())] == [1, 2, 3]

    r = cli("eval", "--model", out, "--data", motion / "val", "--views", "2x3", "--no-progress")
    assert r.code == 0, r.err
    assert "4 videos scored, 2x3 views: top-1" in r.out
    assert {p.name for p in (out / "eval").iterdir()} >= {"metrics.json", "confusion_matrix.csv",
                                                           "confusion_matrix.png", "samples.gif", "per_class.csv"}

    videos = [motion / "val" / "left" / "0000.mp4", motion / "val" / "right" / "0001.mp4"]
    r = cli("predict", "--model", out / "model", *videos, "--top-k", 2)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == str(videos[0]) and lines[3] == str(videos[1])
    for line in lines[1:3] + lines[4:6]:
        rank, name, prob = line.split()
        assert rank in ("1.", "2.") and name in ("left", "right") and 0.0 <= float(prob) <= 1.0


def test_console_script_end_to_end(trained_run, motion):
    """The installed command in its own process: a trained run predicts, exit 0, JSON on stdout and
    nothing on stderr (the one-line errors are checked in process: main() is what the script runs)."""
    video = motion / "val" / "left" / "0000.mp4"
    r = run_console("predict", "--model", trained_run, video, "--top-k", 2, "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    pred = json.loads(r.stdout)
    assert [p["path"] for p in pred] == [str(video)] and {t["label"] for t in pred[0]["top"]} == {"left", "right"}


def test_user_errors_are_one_line(motion, tmp_path, cli):
    def error(*args):
        r = cli(*args)
        assert r.code == 2 and r.err.startswith("vidzoo: error: ") and r.err.count("\n") == 1, r.err
        return r.err

    assert "does not exist" in error(*train_argv(tmp_path / "missing", tmp_path / "o", *TINY_SET))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert "no videos" in error(*train_argv(tmp_path / "empty", tmp_path / "o", *TINY_SET))
    other = tmp_path / "four"
    make_motion_dataset(other, num_classes=4, videos_per_class=1, num_frames=4, size=(16, 16))
    assert "classes differ" in error(*train_argv(motion / "train", tmp_path / "o", *TINY_SET), "--val-data", other)
    assert "cannot build model" in error(*train_argv(motion, tmp_path / "o", *TINY_SET), "--img-size", 20)  # 20 % 8
    msg = error(*train_argv(motion, tmp_path / "o", *TINY_SET), "--set", "in_chans=1")
    assert "takes 1-channel clips but --data has 3 channels" in msg
    assert "Unknown model 'vivit_nope'" in error("eval", "--model", "vivit_nope", "--data", motion)
    weights = tmp_path / "w.pth"  # a model with weights (eval/predict refuse a random initialisation)
    torch.save(vidzoo.create_model(MODEL, **TINY).state_dict(), weights)
    # predict answers every readable video; a missing one is named and the exit status is 1 (partial results)
    r = cli("predict", "--model", MODEL, "--weights", weights, tmp_path / "nope.mp4", *TINY_SET)
    assert r.code == 1 and "vidzoo: cannot read video" in r.err
    assert "no checkpoint" in error(*train_argv(motion, tmp_path / "fresh", *TINY_SET), "--resume")


def test_demo_tiny(tmp_path, cli):
    r = cli("demo", "--output", tmp_path / "demo", "--epochs", "1", "--videos-per-class", "2",
            "--val-videos-per-class", "1", "--classes", "2", "--no-progress")
    assert r.code == 0, r.err
    assert "[4/4] vidzoo predict" in r.out and "done in" in r.out and "val top-1" in r.out
    assert "(train_config.json, train.log, metrics.json, metrics.csv, curves.png, checkpoints/)" in r.out
    assert (tmp_path / "demo" / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "demo" / "run" / "eval" / "samples.gif").is_file()


def test_convert(tmp_path, cli):
    kw = dict(TINY, num_frames=4, img_size=16, num_classes=2)
    model = vidzoo.create_model(MODEL, **kw)
    torch.save(model.state_dict(), tmp_path / "ckpt.pth")
    sets = [f"{k}={v}" for k, v in kw.items()]
    assert cli("convert", tmp_path / "ckpt.pth", tmp_path / "conv", "--model", MODEL, "--set", *sets).code == 0
    loaded = vidzoo.create_model(f"local-dir:{tmp_path / 'conv'}")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    r = cli("convert", tmp_path / "missing.pth", tmp_path / "x")
    assert r.code == 2 and "does not exist" in r.err
