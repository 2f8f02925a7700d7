"""Decoding only what the model sees: frames scaled to the transform's input size while they are
converted to RGB, the same clips (within interpolation rounding) as resizing full frames after."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidzoo.data import (FrameSampler, RandomResizedCrop, Resize, ShortSideResize, VideoFolder, eval_transforms,
                         read_video, read_video_clips, train_transforms, write_video)
from vidzoo.data import decode as dec
from vidzoo.data.synthetic import _render_motion_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 96x160 motion clip of 12 frames (noisy background, a moving shape)."""
    frames = _render_motion_video(np.random.default_rng(0), (1, 0), 12, 96, 160)
    return write_video(tmp_path_factory.mktemp("scale") / "a" / "v.mp4", frames, fps=8, quality=10)


def test_size_scales_down_only(video):
    assert read_video(video, [0, 5], size=(24, 40)).shape == (3, 2, 24, 40)
    assert read_video(video, [0, 5], size=lambda h, w: (h // 4, w // 4)).shape == (3, 2, 24, 40)
    assert read_video(video, [0], size=(200, 300)).shape == (3, 1, 96, 160)  # never enlarged
    assert read_video(video, [0], size=lambda h, w: None).shape == (3, 1, 96, 160)


def test_decode_sizes_of_the_transforms():
    assert ShortSideResize(32).decode_size(96, 160) == (32, 53) == ShortSideResize(32).output_size(96, 160)
    assert Resize((20, 30)).decode_size(96, 160) == (20, 30)
    assert eval_transforms(32, crop_pct=0.8).decode_size(96, 160) == (40, 67)  # short side 32 / 0.8
    rrc = RandomResizedCrop(224, scale=(0.25, 1.0))
    assert rrc.decode_size(720, 1280) == (388, 690)
    assert rrc.decode_size(240, 320) is None  # crops of a small frame are enlarged anyway: full size
    assert train_transforms(224).decode_size(720, 1280) == (388, 690)


@pytest.mark.parametrize("scale,frame", [((0.25, 1.0), (720, 1280)), ((0.08, 1.0), (1080, 1920)),
                                         ((1.0, 1.0), (720, 1280)), ((0.5, 1.0), (1280, 720))])
def test_random_crops_of_the_decode_size_are_never_enlarged(scale, frame):
    # (1, 1) on 16:9: no crop of the full area fits the ratio range, every box is the fallback one.
    rrc = RandomResizedCrop(224, scale=scale, generator=torch.Generator().manual_seed(0))
    h, w = rrc.decode_size(*frame)
    assert h < frame[0] and w < frame[1]
    boxes = [rrc.get_params(h, w) for _ in range(3000)]
    assert min(min(b[2], b[3]) for b in boxes) >= 224


def _eval_clips(root, scale: bool) -> torch.Tensor:
    ds = VideoFolder(root, sampler=FrameSampler("dense", num_frames=4, stride=2, num_clips=2),
                     transform=eval_transforms(32, crop_pct=0.875, num_crops=3))
    ds.scale_at_decode = scale
    return ds[0][0]


def test_datasets_decode_at_the_transforms_size(video, monkeypatch):
    root = video.parent.parent
    asked = []
    real = dec._read_file

    def spy(path, clips, seek_threshold, size=None):
        out = real(path, clips, seek_threshold, size)
        asked.append(tuple(out[0][0].shape[-2:]))
        return out
    monkeypatch.setattr(dec, "_read_file", spy)
    scaled = _eval_clips(root, True)
    assert asked == [(32, 53)]  # 2 clips x 3 crops from one decode at the short side the crops need
    full = _eval_clips(root, False)
    assert asked[-1] == (96, 160)
    assert scaled.shape == full.shape == (6, 3, 4, 32, 32)
    # The same views within interpolation rounding (swscale vs torch, both antialiased bilinear).
    diff = (scaled - full).abs() * 0.225 * 255  # back to 0..255 units
    assert float(diff.mean()) < 2.0


def test_multi_clip_reads_decode_each_frame_once_at_the_decode_size(video):
    clips = read_video_clips(video, FrameSampler("dense", num_frames=4, stride=1, num_clips=3), size=(24, 40))
    assert [tuple(c.shape) for c in clips] == [(3, 4, 24, 40)] * 3
    ref = read_video_clips(video, FrameSampler("dense", num_frames=4, stride=1, num_clips=3))
    for a, b in zip(clips, ref):
        small = torch.nn.functional.interpolate(b.float(), size=(24, 40), mode="bilinear", antialias=True)
        assert float((a.float() - small).abs().mean()) < 3.0
