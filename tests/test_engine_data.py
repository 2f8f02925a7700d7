"""The engine on real files: folders of mp4s, list files, npz volumes, corrupt videos, multi-view
evaluation and prediction."""
import json
import warnings

import numpy as np
import pytest
import torch

from vidzoo.data import CachedVideoFolder, InputSpec, VideoFolder, make_motion_dataset
from vidzoo.engine import TrainConfig, train
from vidzoo.engine.data_sources import open_train_val
from vidzoo.engine.errors import UserError
from vidzoo.engine.inference import predict_videos, run_evaluation
from vidzoo.engine.pipelines import build_dataset, check_input_fits

TINY = dict(embed_dim=32, depth=1, num_heads=2, patch_size=8)


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    """root/{train,val}/{left,right}/NNNN.mp4, 8 frames of 16x16."""
    root = tmp_path_factory.mktemp("motion")
    make_motion_dataset(root, num_classes=2, videos_per_class=4, num_frames=8, size=(16, 16), split="train")
    make_motion_dataset(root, num_classes=2, videos_per_class=2, num_frames=8, size=(16, 16), split="val")
    return root


@pytest.fixture(scope="module")
def npz_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("npz") / "organ_tiny.npz"
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(-1, 1)
    np.savez(path, **arrays)
    return path


def test_split_folder_list_file_and_val_split(motion, tmp_path):
    s = open_train_val(motion)  # root/{train,val}: the val sub-folder is used
    assert s.classes == ["left", "right"] and len(s.train) == 8 and len(s.val) == 4 and s.in_chans == 3
    s = open_train_val(motion / "train", val_split=0.5, seed=1)
    assert len(s.train) == 4 and len(s.val) == 4
    assert sorted(s.val.targets) == [0, 0, 1, 1]  # stratified; each part holds its own samples
    assert not set(s.train.samples) & set(s.val.samples)
    lst = tmp_path / "train.csv"
    lst.write_text("path,label\n" + "".join(f"{p},{motion_cls}\n" for p, motion_cls in
                                            [(motion / "train" / c / "0000.mp4", c) for c in ("left", "right")]))
    bad = tmp_path / "val.csv"
    bad.write_text(f"{motion / 'val' / 'left' / '0000.mp4'},up\n")
    with pytest.raises(UserError, match="unknown class 'up'"):
        open_train_val(lst, val_data=bad)
    s = open_train_val(lst, val_data=motion / "val")
    assert s.classes == ["left", "right"] and len(s.train) == 2


def test_user_errors_for_data(motion, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_train_val(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class folders"):
        open_train_val(tmp_path / "empty")
    (tmp_path / "empty" / "a").mkdir()
    with pytest.raises(UserError, match="no videos"):
        open_train_val(tmp_path / "empty")
    other = tmp_path / "other"
    make_motion_dataset(other, num_classes=4, videos_per_class=1, num_frames=4, size=(16, 16))
    with pytest.raises(UserError, match="classes differ .*only in --val-data: down, up"):
        open_train_val(motion / "train", val_data=other)
    with pytest.raises(UserError, match="either --val-data or --val-split"):
        open_train_val(motion, val_data=other, val_split=0.2)


def test_npz_volumes(npz_path):
    s = open_train_val(npz_path)
    assert s.in_chans == 1 and len(s.train) == 12 and len(s.val) == 6 and s.val_source == f"{npz_path} [val]"
    spec = InputSpec(1, 28, (28, 28), (0.0,), (1.0,), sampling="uniform")
    train_ds = build_dataset(s.train, spec, train=True)
    assert s.train.transform is None  # a new dataset is built; the listing is not changed
    x, y = train_ds[0]
    assert x.shape == (1, 28, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    small = InputSpec(1, 8, (16, 16), (0.5,), (0.5,), sampling="uniform")
    val_ds = build_dataset(s.val, small, train=False, views=(2, 1))
    assert val_ds[0][0].shape == (2, 1, 8, 16, 16)  # depth resampled, slices resized, 2 depth clips
    with pytest.raises(UserError, match="takes 3-channel clips but --data has 1 channels"):
        check_input_fits(train_ds, InputSpec(3, 28, (28, 28), (0.5,) * 3, (0.5,) * 3))
    with pytest.raises(UserError, match=r"takes clips .* \(1, 16, 28, 28\) but --data gives \(1, 28, 28, 28\)"):
        check_input_fits(train_ds, InputSpec(1, 16, (28, 28), (0.0,), (1.0,)))  # dataset configured for 28


def test_frame_cache_gives_the_same_clips(motion):
    spec = InputSpec(3, 4, (16, 16), (0.5,) * 3, (0.5,) * 3, sampling="dense", frame_stride=2)
    plain = build_dataset(VideoFolder(motion / "val"), spec, train=False, views=(2, 3))
    cached = build_dataset(CachedVideoFolder(motion / "val"), spec, train=False, views=(2, 3))
    for i in range(len(plain)):
        a, b = plain[i][0], cached[i][0]
        assert a.shape == (6, 3, 4, 16, 16) and torch.equal(a, b)
        assert torch.equal(b, cached[i][0])  # second read from memory


@pytest.fixture(scope="module")
def trained(motion, tmp_path_factory):
    """A tiny model trained 2 epochs on the motion folder, with a corrupt video among the training ones."""
    bad = motion / "train" / "left" / "9999.mp4"
    bad.write_bytes(b"\x00\x00\x00 this is not an mp4")
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="vivit_joint_tiny_patch16x2_224", data=str(motion), output=str(out), epochs=2,
                      batch_size=4, lr=1e-3, num_frames=4, img_size=16, model_overrides=TINY, hflip=0.0,
                      progress=False, sampling="uniform")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(cfg)
    bad.unlink()
    return res, out, [str(w.message) for w in caught]


def test_training_on_videos_skips_a_corrupt_file(trained):
    res, out, messages = trained
    assert not messages  # no Python warning (no source line on the console)
    assert res.history[-1]["train_num_samples"] == 9  # the corrupt one is replaced by a readable one
    # Counted in every epoch's summary (the sampler draws it once per epoch), and named once in the log.
    assert [r["train_unreadable"] for r in res.history] == [1, 1]
    log = (out / "train.log").read_text()
    assert "1 unreadable training sample(s) substituted" in log
    assert log.count("unreadable training video '") == 1 and "9999.mp4" in log
    assert res.classes == ["left", "right"]
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["pretrained_cfg"]["label_names"] == ["left", "right"]
    assert cfg["pretrained_cfg"]["sampling"] == "uniform"


def test_on_error_raise_stops_naming_the_file(motion, tmp_path, cli):
    bad = motion / "train" / "right" / "9998.mp4"
    bad.write_bytes(b"garbage")
    try:
        r = cli("train", "--model", "vivit_joint_tiny_patch16x2_224", "--data", motion, "--output", tmp_path / "run",
                "--epochs", "1", "--batch-size", "4", "--num-frames", "4", "--img-size", "16", "--no-progress",
                "--on-error", "raise", "--set", *[f"{k}={v}" for k, v in TINY.items()])
    finally:
        bad.unlink()
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.startswith("vidzoo: error: ") and r.err.count("\n") == 1 and "9998.mp4" in r.err, r.err


def test_multi_view_evaluation_and_prediction(trained, motion, tmp_path):
    res, out, _ = trained
    run = run_evaluation(res.model, motion / "val", views="2x3", batch_size=2, output=tmp_path / "eval",
                         progress=False)
    r = run.result
    assert r.num_samples == 4 and run.views == (2, 3) and r.confusion.sum() == 4
    for f in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv",
              "samples.png", "samples.gif"):
        assert (tmp_path / "eval" / f).is_file(), f
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 5 and "val/left/0000.mp4" in rows[1]
    video = motion / "val" / "right" / "0001.mp4"
    (pred,) = predict_videos(res.model, [video], top_k=5)
    assert [n for _, n, _ in pred.top] in (["left", "right"], ["right", "left"])
    assert sum(p for *_, p in pred.top) == pytest.approx(1.0, abs=1e-5)
    (missing,) = predict_videos(res.model, [motion / "nope.mp4"])
    assert not missing.ok and missing.top == [] and "not found" in missing.error
    # the model knows left/right only: data with other classes is refused
    other = tmp_path / "other"
    make_motion_dataset(other, num_classes=4, videos_per_class=1, num_frames=4, size=(16, 16))
    with pytest.raises(UserError, match="unknown to the model: down, up"):
        run_evaluation(res.model, other, progress=False)


def test_npz_recipe_trains_with_adam(npz_path, tmp_path):
    """The OrganMNIST3D recipe on a tiny synthetic npz: 1-channel 28^3 volumes, Adam, val split from the file."""
    cfg = TrainConfig(model="vivit_organmnist3d", data=str(npz_path), output=str(tmp_path / "organ"), epochs=1,
                      batch_size=4, lr=1e-4, opt="adam", model_overrides=dict(depth=1, embed_dim=32, num_heads=2),
                      progress=False)
    res = train(cfg)
    assert res.history[0]["val_num_samples"] == 6 and res.model.pretrained_cfg["input_size"] == (1, 28, 28, 28)
    assert "adam lr 0.0001" in (tmp_path / "organ" / "train.log").read_text()
    run = run_evaluation(res.model, npz_path, progress=False)  # the npz's test split
    assert run.split is None and run.result.num_samples == 6


def test_fine_tune_a_saved_model_folder(trained, motion, tmp_path):
    """--model DIR starts from the saved weights; a dataset with other classes gets a new head."""
    res, out, _ = trained
    other = tmp_path / "four"
    make_motion_dataset(other, num_classes=4, videos_per_class=1, num_frames=8, size=(16, 16))
    cfg = TrainConfig(model=str(out / "model"), data=str(other), output=str(tmp_path / "ft"), epochs=1, batch_size=4,
                      lr=1e-9, warmup_epochs=0, min_lr=1e-9, progress=False)
    ft = train(cfg)
    assert ft.model.num_classes == 4 and ft.model.pretrained_cfg["label_names"] == ["down", "left", "right", "up"]
    before, after = res.model.state_dict(), ft.model.state_dict()
    assert torch.allclose(before["blocks.0.attn.qkv.weight"], after["blocks.0.attn.qkv.weight"], atol=1e-6)
    assert after["head.weight"].shape == (4, 32)
