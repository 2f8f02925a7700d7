"""``vidzoo embed`` / ``vidzoo.engine.embed``: the model's pooled pre-logits features per video (views
averaged), per window, or its token grid; unreadable inputs marked and the rest written; the same
numbers on every run; files written together."""
from __future__ import annotations

import csv
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from vidzoo.data import FrameSampler, VideoPathDataset, eval_transforms, read_video
from vidzoo.engine import embed, write_embeddings
from vidzoo.engine.embed import embed_clips
from vidzoo.engine.errors import UserError
from vidzoo.engine.model_io import save_model_folder
from vidzoo.engine.pipelines import build_dataset, input_spec
from vidzoo.engine.timeline import window_layout

from helpers import MODEL


@pytest.fixture
def model_dir(tiny_model, tmp_path):
    return save_model_folder(tiny_model, tmp_path / "model", run_config={"data": "motion", "epochs": 1,
                                                                        "model": MODEL}, classes=["left", "right"])


def _features(model, clip):
    """What the classifier reads: pooled pre-logits features of one clip (C, T, H, W)."""
    with torch.no_grad():
        return model.forward_head(model.forward_features(clip.unsqueeze(0)), pre_logits=True)[0]


def test_embed_gives_the_pooled_features_of_each_video_and_the_same_numbers_every_time(tiny_model, motion, tmp_path):
    train = motion / "train"
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    res = embed(tiny_model, [train, bad], batch_size=4)
    assert res.embeddings.dtype == torch.float32 and res.embeddings.shape == (6, tiny_model.num_features)
    assert [r.status for r in res.rows] == ["ok"] * 6 + ["unreadable"]
    assert [r.label for r in res.rows] == ["left"] * 3 + ["right"] * 3 + [None]
    assert [r.row for r in res.rows] == [0, 1, 2, 3, 4, 5, None] and "readable video" in res.rows[-1].reason
    # each row: the model's features of the clip predict would feed it (one centre view)
    ds = build_dataset(VideoPathDataset([r.path for r in res.rows[:6]]), input_spec(tiny_model), train=False)
    for i in range(6):
        torch.testing.assert_close(res.embeddings[i], _features(tiny_model, ds[i][0]), rtol=1e-5, atol=1e-6)
    # bit-identical on a rerun; the order of the inputs only permutes rows
    again = embed(tiny_model, [train, bad], batch_size=4)
    assert torch.equal(again.embeddings, res.embeddings)
    one = embed(tiny_model, [res.rows[4].path], batch_size=4)
    torch.testing.assert_close(one.embeddings[0], res.embeddings[4], rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="bad.mp4"):
        embed(tiny_model, [train, bad], on_error="raise")
    with pytest.raises(UserError, match="no input could be read"):
        embed(tiny_model, [bad])


def test_views_are_averaged(tiny_model, motion):
    video = motion / "train" / "left" / "0001.mp4"
    res = embed(tiny_model, [video], views="2x1")
    spec = input_spec(tiny_model)
    ds = VideoPathDataset([video], FrameSampler(spec.sampling, spec.num_frames, num_clips=2),
                          eval_transforms(spec.img_size, spec.mean, spec.std, crop_pct=spec.crop_pct))
    clips = ds[0][0]  # (2, C, T, H, W): the two temporal clips
    assert clips.shape[0] == 2 and not torch.equal(clips[0], clips[1])
    want = (_features(tiny_model, clips[0]) + _features(tiny_model, clips[1])) / 2
    torch.testing.assert_close(res.embeddings[0], want, rtol=1e-5, atol=1e-6)
    assert res.metadata["views"] == "2x1"


def test_windows_give_one_vector_per_window_with_its_times(tiny_model, motion):
    video = motion / "train" / "right" / "0000.mp4"  # 8 frames at 8 fps
    res = embed(tiny_model, [video], window="4", stride="2")
    assert [(r.start_s, r.end_s) for r in res.rows] == [(0.0, 0.5), (0.25, 0.75), (0.5, 1.0)]
    frames = read_video(video)  # (3, T, H, W) uint8
    spec = input_spec(tiny_model)
    tf = eval_transforms(spec.img_size, spec.mean, spec.std, crop_pct=spec.crop_pct)
    for w, (start, end, idx) in enumerate(window_layout(8, 4, 2, spec.num_frames)):
        clip = tf(frames[:, idx])
        torch.testing.assert_close(res.embeddings[w], _features(tiny_model, clip), rtol=1e-4, atol=1e-5)


def test_tokens_keep_the_grid(tiny_model, motion):
    video = motion / "train" / "left" / "0000.mp4"
    res = embed(tiny_model, [video], pool="tokens")
    t, h, w = tiny_model.grid_size
    assert res.embeddings.shape == (1, t, h, w, tiny_model.embed_dim)
    clip = build_dataset(VideoPathDataset([video]), input_spec(tiny_model), train=False)[0][0]
    with torch.no_grad():
        tokens = tiny_model.forward_features(clip.unsqueeze(0))[0, tiny_model.num_prefix_tokens:]
    torch.testing.assert_close(res.embeddings[0].reshape(-1, tiny_model.embed_dim), tokens)
    with pytest.raises(UserError, match="--views 1x1"):
        embed(tiny_model, [video], pool="tokens", views="2x1")
    assert embed_clips(tiny_model, clip[None, None].expand(1, 1, *clip.shape), "tokens").shape[0] == 1


def test_cli_writes_what_python_returns_and_exits_1_on_partial_results(tiny_model, model_dir, motion, tmp_path, cli):
    data = tmp_path / "data"
    shutil.copytree(motion / "train", data)
    (data / "left" / "broken.mp4").write_bytes((data / "left" / "0000.mp4").read_bytes()[:300])
    out = tmp_path / "emb"
    r = cli("embed", "--model", model_dir, data, "--output", out, "--batch-size", 3)
    assert r.code == 1, r.err
    assert "cannot read video" in r.err and "broken.mp4" in r.err and "1 of 7 inputs" in r.err
    assert "6 of 7 videos" in r.out
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "unreadable", "ok", "ok", "ok"]
    assert [row["label"] for row in rows] == ["left"] * 4 + ["right"] * 3
    assert [row["row"] for row in rows] == ["0", "1", "2", "", "3", "4", "5"]
    stored = load_file(out / "embeddings.safetensors")
    assert list(stored) == ["embeddings"] and stored["embeddings"].dtype == torch.float32
    with safe_open(out / "embeddings.safetensors", "pt") as f:
        assert f.metadata()["pool"] == "vector" and f.metadata()["shape"] == f"6x{tiny_model.num_features}"
    py = embed(tiny_model, [data], batch_size=3)
    assert torch.equal(stored["embeddings"], py.embeddings)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # nothing staged left behind
    # a rerun writes the same numbers and the same index
    index = (out / "index.csv").read_text()
    assert cli("embed", "--model", model_dir, data, "--output", out, "--batch-size", 3).code == 1
    assert torch.equal(load_file(out / "embeddings.safetensors")["embeddings"], stored["embeddings"])
    assert (out / "index.csv").read_text() == index
    # an output inside an input folder would be read as a class of that data
    r = cli("embed", "--model", model_dir, data, "--output", data / "emb")
    assert r.code == 2 and "inside input folder" in r.err
    r = cli("embed", "--model", model_dir, data, "--output", out, "--pool", "tokens", "--views", "2x1")
    assert r.code == 2 and "--views 1x1" in r.err


def test_write_embeddings_replaces_a_symlink_never_its_target(tiny_model, motion, tmp_path):
    res = embed(tiny_model, [motion / "val"])
    out = tmp_path / "emb"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (out / "index.csv").symlink_to(target)
    write_embeddings(res, out)
    assert target.read_text() == "keep me" and not (out / "index.csv").is_symlink()
