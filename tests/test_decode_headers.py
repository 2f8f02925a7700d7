"""Container headers are not trusted: a frame count the stream does not reach, a resolution that
changes midway, rotation metadata and variable frame rates give what decoding (and a player)
shows, in the decoder, in prediction, evaluation, training and ``predict --timeline``."""
from __future__ import annotations

import csv
import dataclasses
import io
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import vidzoo
from vidzoo.data import FrameSampler, make_motion_dataset, read_video, read_video_clips, video_info
from vidzoo.data import decode as dec
from vidzoo.data import write_video
from vidzoo.engine import timeline as tlm
from vidzoo.engine.inference import predict_videos, run_evaluation
from vidzoo.engine import TrainConfig, train

MODEL = "vivit_joint_tiny_patch16x2_224"
TINY = dict(embed_dim=32, depth=1, num_heads=2, patch_size=8)


def ramp(num_frames: int, h: int = 32, w: int = 48, step: int = 20) -> np.ndarray:
    """Frame i is a flat grey of brightness step * i (its index reads back from its mean)."""
    levels = (np.arange(num_frames) * step).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, h, w, 3)).copy()


def means(clip: torch.Tensor) -> list[float]:
    return clip.float().mean(dim=(0, 2, 3)).tolist()


@pytest.fixture(autouse=True)
def fresh_counts():
    dec._COUNTS.clear()  # counts remembered by an earlier test must not hide a header's lie
    yield
    dec._COUNTS.clear()


# ------------------------------------------------------------------------------ frame counts
def huge_avi(path: Path, num_frames: int = 12, declared: int = 10**9) -> Path:
    """A short AVI whose headers (avih, strh, dmlh) declare ``declared`` frames."""
    write_video(path, ramp(num_frames), fps=8, codec="mpeg4")
    b = bytearray(path.read_bytes())
    i = b.find(b"avih")
    struct.pack_into("<I", b, i + 8 + 16, declared)  # dwTotalFrames
    j = b.find(b"strh")
    struct.pack_into("<I", b, j + 8 + 32, declared)  # dwLength of the video stream
    k = b.find(b"dmlh")
    if k >= 0:
        struct.pack_into("<I", b, k + 8, declared)  # OpenDML total frames
    path.write_bytes(bytes(b))
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == declared  # the lie is what FFmpeg reports
    return path


def test_sampling_uses_the_frames_the_stream_has(tmp_path):
    path = huge_avi(tmp_path / "huge.avi")
    sampler = FrameSampler("uniform", num_frames=4, num_clips=2)
    clips = read_video_clips(path, lambda n: sampler(n))
    want = sampler(12)  # sampled again over the 12 frames that exist, not over 10^9
    for clip, idx in zip(clips, want):
        assert means(clip) == pytest.approx((idx * 20.0).tolist(), abs=4)
    dense = read_video(path, lambda n: FrameSampler("dense", num_frames=4, stride=2)(n)[0])
    assert means(dense) == pytest.approx([40.0, 80.0, 120.0, 160.0], abs=4)  # centre clip of 12 frames
    with pytest.raises(IndexError, match="with 12 frames"):  # the count decoding found is remembered
        read_video(path, [3, 40])
    dec._COUNTS.clear()
    with pytest.raises(IndexError, match=r"its stream has 12 frames \(its header says 1000000000\)"):
        read_video(path, [3, 40])
    info = video_info(path, exact=True)
    assert info.num_frames == 12 and info.duration == pytest.approx(1.5, abs=0.2)
    assert video_info(path).num_frames == 12  # counted once, remembered for this file


def test_predict_on_a_lying_header_equals_the_honest_file(tmp_path):
    honest = write_video(tmp_path / "honest.avi", ramp(12), fps=8, codec="mpeg4")
    lying = huge_avi(tmp_path / "lying.avi")
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=3, num_frames=4, img_size=16, **TINY).eval()
    model.pretrained_cfg = dict(model.pretrained_cfg, sampling="dense", frame_sample_rate=2)
    a, b = predict_videos(model, [honest, lying], top_k=3)
    assert a.ok and b.ok
    assert [i for i, _, _ in a.top] == [i for i, _, _ in b.top]
    assert [p for _, _, p in a.top] == pytest.approx([p for _, _, p in b.top], abs=1e-6)


def test_timeline_is_bounded_by_the_decoded_frames(tmp_path, monkeypatch):
    path = huge_avi(tmp_path / "huge.avi")
    real = tlm.window_layout

    def guarded(n, *args):
        assert n <= 12, f"windows laid out over {n} frames"
        return real(n, *args)
    monkeypatch.setattr(tlm, "window_layout", guarded)
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=16, **TINY).eval()
    tl = tlm.predict_timeline(model, path, window="4", stride="4", progress=False)
    assert tl.num_frames == 12 and tl.starts == [0, 4, 8] and tl.ends[-1] == 12
    assert tl.duration == pytest.approx(1.5, abs=0.01)


# ------------------------------------------------------------------------ resolution changes
def _h264(h: int, w: int, n: int, level: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"bf": "0"}  # decode order = presentation order, so packets can be renumbered
        for _ in range(n):
            for pk in s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), level, np.uint8), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return buf.getvalue()


def size_change_mkv(path: Path) -> Path:
    """5 frames of 32x48 (grey 50), then 5 of 64x96 (grey 200), in one H.264 stream in mkv."""
    raw = tmp = path.with_suffix(".h264")
    raw.write_bytes(_h264(32, 48, 5, 50) + _h264(64, 96, 5, 200))
    with av.open(str(raw), format="h264") as src, av.open(str(path), "w") as dst:
        ist = src.streams.video[0]
        ost = dst.add_stream_from_template(ist)
        for i, pk in enumerate(p for p in src.demux(ist) if p.size):
            pk.stream, pk.pts, pk.dts, pk.time_base = ost, i, i, Fraction(1, 8)
            dst.mux(pk)
    tmp.unlink()
    with av.open(str(path)) as c:
        assert [(f.height, f.width) for f in c.decode(video=0)][4:6] == [(32, 48), (64, 96)]
    return path


def test_frames_are_scaled_to_the_first_frames_size(tmp_path):
    path = size_change_mkv(tmp_path / "change.mkv")
    clip = read_video(path)
    assert clip.shape == (3, 10, 32, 48)
    assert means(clip) == pytest.approx([50.0] * 5 + [200.0] * 5, abs=3)
    # With a sampler, a seek into the second half and a decode size, still one size.
    late = read_video(path, [6, 9], seek_threshold=1, size=(16, 24))
    assert late.shape == (3, 2, 16, 24) and means(late) == pytest.approx([200.0, 200.0], abs=3)
    assert (video_info(path).height, video_info(path).width) == (32, 48)


def _size_change_folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_motion_dataset(root, num_classes=2, videos_per_class=2, num_frames=10, size=(32, 48))
    size_change_mkv(root / "left" / "change.mkv")
    return root


def test_eval_and_training_read_a_size_change(tmp_path):
    root = _size_change_folder(tmp_path)
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=16, **TINY).eval()
    model.pretrained_cfg = dict(model.pretrained_cfg, label_names=["left", "right"], sampling="uniform")
    run = run_evaluation(model, root, batch_size=2, progress=False, on_error="skip")
    assert run.result.num_samples == 5 and run.result.unreadable == []
    cfg = TrainConfig(model=MODEL, data=str(root), val_split=0.4, output=str(tmp_path / "run"), epochs=1,
                      batch_size=2, num_frames=4, img_size=16, model_overrides=TINY, hflip=0.0, progress=False,
                      sampling="uniform", on_error="skip")
    result = train(cfg)
    assert result.best_epoch == 1


# ----------------------------------------------------------------------------------- rotation
def rotated_mp4(path: Path, angle: int) -> tuple[Path, np.ndarray]:
    """A 32x48 clip with a white block in the top-left corner, stored with a display matrix of
    ``angle`` degrees (counter-clockwise, FFmpeg's convention; a phone's 'rotate=90' is -90)."""
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    frames[:, :8, :16] = 255
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.set_display_rotation(angle)
        for f in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path, frames


def test_phone_rotation_is_applied_as_players_do(tmp_path):
    # A phone held upright records sideways and tags 'rotate=90' (display matrix -90): players turn
    # the picture a quarter clockwise, so the stored top-left corner is shown top-right.
    path, frames = rotated_mp4(tmp_path / "portrait.mp4", -90)
    clip = read_video(path)
    assert clip.shape == (3, 4, 48, 32)
    first = clip[:, 0].float().mean(0)
    assert first[:16, 24:].mean() > 200 and first[:16, :8].mean() < 40 and first[40:, :].mean() < 40
    info = video_info(path)
    assert (info.height, info.width, info.rotation) == (48, 32, 270)
    # Scaled while decoding, the size asked for is the displayed one.
    small = read_video(path, [0, 1], size=(24, 16))
    assert small.shape == (3, 2, 24, 16)


@pytest.mark.parametrize("angle", [90, 180])
def test_other_rotations(tmp_path, angle):
    path, frames = rotated_mp4(tmp_path / f"r{angle}.mp4", angle)
    got = read_video(path)[:, 0].permute(1, 2, 0).float().numpy()
    want = np.rot90(frames[0], angle // 90).astype(np.float32)  # counter-clockwise quarter turns
    assert got.shape == want.shape and np.abs(got - want).mean() < 6


# ---------------------------------------------------------------------- variable frame rate
def vfr_mp4(path: Path) -> tuple[Path, list[float]]:
    """20 frames at 10 fps, a pause, 20 more from 10.0 s: frame 20 is shown at 10.0 s."""
    times = [i * 0.1 for i in range(20)] + [10.0 + i * 0.1 for i in range(20)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 6, np.uint8), format="rgb24")
            f.pts, f.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path, times


def test_timeline_times_come_from_timestamps(tmp_path):
    path, times = vfr_mp4(tmp_path / "vfr.mp4")
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=32, **TINY).eval()
    tl = tlm.predict_timeline(model, path, window="4", stride="4", progress=False)
    assert tl.starts == list(range(0, 40, 4))
    w = tl.starts.index(20)
    d = tl.to_dict(1)["windows"]
    assert d[w]["start_time"] == pytest.approx(10.0, abs=1e-3) and d[w - 1]["end_time"] == pytest.approx(10.0, abs=1e-3)
    assert [x["start_time"] for x in d] == pytest.approx([times[s] for s in tl.starts], abs=1e-3)
    assert tl.duration == pytest.approx(12.0, abs=0.11)
    rows = list(csv.DictReader(open(tlm.write_timeline_csv(tl, tmp_path / "vfr.csv", top_k=1))))
    assert float(rows[w]["start_time"]) == pytest.approx(10.0, abs=1e-3)
    segs = tl.segments()
    assert segs[0][0] == 0.0 and segs[-1][1] == pytest.approx(tl.duration)


def test_timeline_lays_windows_out_again_when_the_stream_is_shorter_than_counted(tmp_path, monkeypatch):
    # A count that survived the header check (here: forced) but that decoding does not reach.
    path = write_video(tmp_path / "v.mp4", ramp(12, 32, 32), fps=8)
    real = tlm.video_info
    monkeypatch.setattr(tlm, "video_info", lambda p, exact=False: dataclasses.replace(real(p, exact), num_frames=20))
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=16, **TINY).eval()
    tl = tlm.predict_timeline(model, path, window="4", stride="4", progress=False)
    assert tl.num_frames == 12 and tl.starts == [0, 4, 8] and len(tl.times) == 13
    assert tl.duration == pytest.approx(1.5, abs=1e-3)
