"""Decoding real video files written with PyAV, and frame folders."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from vidzoo.data import (
    FrameSampler,
    VideoDecodeError,
    default_codec,
    read_video,
    read_video_clips,
    uniform_segment_indices,
    video_info,
    write_video,
)
from vidzoo.data.decode import _read_file

H, W = 48, 64


def brightness_frames(num_frames: int, step: int) -> np.ndarray:
    """Frame i is a flat grey of brightness step * i: its index can be read back from its mean."""
    levels = (np.arange(num_frames) * step).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, H, W, 3)).copy()


# (codec, extension): mp4 with B-frames (libx264 when built), avi with integer pts, and mkv which
# stores no frame count (forces counting by decoding) and uses a millisecond time base.
FORMATS = [(default_codec(), "mp4"), ("mpeg4", "avi"), ("mpeg4", "mkv")]


@pytest.fixture(scope="module", params=FORMATS, ids=[f"{c}-{e}" for c, e in FORMATS])
def short_video(request, tmp_path_factory):
    codec, ext = request.param
    path = tmp_path_factory.mktemp("dec") / f"ramp.{ext}"
    write_video(path, brightness_frames(24, 10), fps=8, codec=codec, gop_size=4)
    return path


@pytest.fixture(scope="module", params=FORMATS, ids=[f"{c}-{e}" for c, e in FORMATS])
def long_video(request, tmp_path_factory):
    codec, ext = request.param
    path = tmp_path_factory.mktemp("dec") / f"long.{ext}"
    write_video(path, brightness_frames(120, 2), fps=8, codec=codec, gop_size=8)
    return path


def frame_means(clip: torch.Tensor) -> torch.Tensor:
    return clip.float().mean(dim=(0, 2, 3))


def test_video_info(short_video):
    info = video_info(short_video)
    assert info.num_frames == 24
    assert info.fps == pytest.approx(8.0)
    assert (info.height, info.width) == (H, W)
    assert info.duration == pytest.approx(3.0, abs=0.2)


def test_read_all_frames_content(short_video):
    clip = read_video(short_video)
    assert clip.dtype == torch.uint8 and clip.shape == (3, 24, H, W)
    expected = torch.arange(24) * 10.0
    assert torch.allclose(frame_means(clip), expected, atol=3.0)


def test_subset_equals_full_decode(short_video):
    full = read_video(short_video)
    idx = [3, 0, 7, 7, 20]  # any order, repeats allowed
    sub = read_video(short_video, idx)
    assert sub.shape == (3, 5, H, W)
    assert torch.equal(sub, full[:, idx])
    assert torch.allclose(frame_means(sub), torch.tensor(idx) * 10.0, atol=3.0)


def test_seek_matches_sequential_and_decodes_less(long_video):
    idx = [100, 103, 111]
    seq_clips, seq_decoded = _read_file(long_video, [torch.tensor(idx)], seek_threshold=10**9)
    seek_clips, seek_decoded = _read_file(long_video, [torch.tensor(idx)], seek_threshold=32)
    assert seq_decoded == 112  # sequential decoding stops right after the last wanted frame
    assert seek_decoded < 40  # seeking skipped most of the file (lands on a keyframe <= 100)
    assert torch.equal(seek_clips[0], seq_clips[0])
    assert torch.allclose(frame_means(seek_clips[0]), torch.tensor(idx) * 2.0, atol=3.0)
    # the public entry point seeks by default and agrees as well
    assert torch.equal(read_video(long_video, idx), seq_clips[0])


def test_sampler_callable_and_multi_clip(short_video):
    clip = read_video(short_video, lambda n: uniform_segment_indices(n, 4, train=False))
    assert clip.shape == (3, 4, H, W)
    expected = uniform_segment_indices(24, 4, train=False).float() * 10
    assert torch.allclose(frame_means(clip), expected, atol=3.0)

    sampler = FrameSampler("dense", num_frames=4, stride=2, num_clips=3)
    clips = read_video_clips(short_video, sampler)
    assert len(clips) == 3 and all(c.shape == (3, 4, H, W) for c in clips)
    for c, idx in zip(clips, sampler(24)):
        assert torch.allclose(frame_means(c), idx.float() * 10, atol=3.0)
    with pytest.raises(ValueError, match="read_video_clips"):
        read_video(short_video, sampler)


def test_index_out_of_range(short_video):
    with pytest.raises(IndexError, match="24"):
        read_video(short_video, [0, 24])
    with pytest.raises(IndexError):
        read_video(short_video, [-1])


def test_frame_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 13):  # natural order: frame_9 before frame_10
        Image.fromarray(np.full((16, 20, 3), 20 * i, np.uint8)).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    info = video_info(folder)
    assert (info.num_frames, info.height, info.width, info.fps) == (12, 16, 20, None)
    clip = read_video(folder, [9, 1, 10])
    assert clip.dtype == torch.uint8 and clip.shape == (3, 3, 16, 20)
    assert frame_means(clip).tolist() == [200.0, 40.0, 220.0]  # png is lossless
    assert read_video(folder).shape == (3, 12, 16, 20)


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_video(missing)
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video_info(missing)


def test_corrupt_file_raises_decode_error(tmp_path):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="garbage.mp4") as exc:
        read_video(bad, [0])
    assert exc.value.path == str(bad)
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        video_info(bad)
    # survives the trip back from a DataLoader worker
    again = pickle.loads(pickle.dumps(exc.value))
    assert isinstance(again, VideoDecodeError) and str(again) == str(exc.value)


def test_empty_folder_raises_decode_error(tmp_path):
    with pytest.raises(VideoDecodeError, match="no image frames"):
        read_video(tmp_path)


def test_write_video_layouts(tmp_path):
    frames = torch.from_numpy(brightness_frames(6, 30))  # (T, H, W, C)
    p1 = write_video(tmp_path / "a.mp4", frames)
    p2 = write_video(tmp_path / "b.mp4", frames.permute(3, 0, 1, 2))  # (C, T, H, W)
    assert torch.equal(read_video(p1), read_video(p2))
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8))
