"""Clip transforms: shapes, one geometry for all frames, flips, normalisation, factories."""
from types import SimpleNamespace

import pytest
import torch

from vidzoo.data import (
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ShortSideResize,
    ThreeCrop,
    ToFloat,
    eval_transforms,
    train_transforms,
)


def ramp_clip(c=3, t=4, h=24, w=40) -> torch.Tensor:
    """Float clip whose frame k equals frame 0 plus k: any shared geometry keeps that offset."""
    base = torch.rand(c, 1, h, w)
    return base + torch.arange(t, dtype=torch.float32).view(1, t, 1, 1)


def test_short_side_resize_shapes_and_dtype():
    x = torch.randint(0, 256, (3, 4, 48, 64), dtype=torch.uint8)
    y = ShortSideResize(32)(x)
    assert y.shape == (3, 4, 32, 43) and y.dtype == torch.uint8
    assert ShortSideResize(20)(torch.rand(3, 2, 50, 30)).shape == (3, 2, 33, 20)  # portrait
    flat = torch.full((3, 2, 48, 64), 77, dtype=torch.uint8)
    assert torch.equal(ShortSideResize(16)(flat), torch.full((3, 2, 16, 21), 77, dtype=torch.uint8))


def test_random_resized_crop_same_box_for_all_frames():
    x = ramp_clip()
    for seed in range(5):
        y = RandomResizedCrop(16, scale=(0.2, 0.9), generator=torch.Generator().manual_seed(seed))(x)
        assert y.shape == (3, 4, 16, 16)
        offsets = y - y[:, :1]  # linear resize of a shared crop keeps the per-frame offset exactly
        assert torch.allclose(offsets, torch.arange(4.0).view(1, 4, 1, 1).expand_as(y), atol=1e-4)


def test_random_resized_crop_seeded_and_bounded():
    x = torch.randint(0, 256, (3, 2, 30, 50), dtype=torch.uint8)
    a = RandomResizedCrop((12, 20), generator=torch.Generator().manual_seed(3))(x)
    b = RandomResizedCrop((12, 20), generator=torch.Generator().manual_seed(3))(x)
    assert torch.equal(a, b) and a.dtype == torch.uint8
    rrc = RandomResizedCrop(8, scale=(0.1, 0.5), generator=torch.Generator().manual_seed(0))
    for _ in range(50):
        top, left, h, w = rrc.get_params(30, 50)
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 50
        assert 0.05 * 1500 <= h * w <= 0.6 * 1500


def test_center_crop_exact_region():
    x = torch.arange(10 * 12, dtype=torch.float32).view(1, 1, 10, 12).expand(2, 3, 10, 12)
    y = CenterCrop((4, 6))(x)
    assert y.shape == (2, 3, 4, 6)
    assert torch.equal(y, x[..., 3:7, 3:9])


@pytest.mark.parametrize("h,w", [(32, 64), (64, 32), (32, 32)])
def test_three_crop_along_longer_side(h, w):
    x = ramp_clip(h=h, w=w)
    views = ThreeCrop(32)(x)
    assert views.shape == (3, 3, 4, 32, 32)
    if w > h:
        expected = [x[..., :, 0:32], x[..., :, 16:48], x[..., :, 32:64]]
    elif h > w:
        expected = [x[..., 0:32, :], x[..., 16:48, :], x[..., 32:64, :]]
    else:
        expected = [x, x, x]
    for v, e in zip(views, expected):
        assert torch.equal(v, e)
    with pytest.raises(ValueError, match="ShortSideResize"):
        ThreeCrop(40)(x)


def test_horizontal_flip():
    x = torch.arange(2 * 3 * 4 * 5).view(2, 3, 4, 5)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x[..., torch.arange(4, -1, -1)])
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)
    flips = [not torch.equal(RandomHorizontalFlip(0.5, torch.Generator().manual_seed(s))(x), x) for s in range(40)]
    assert 5 < sum(flips) < 35


def test_normalize_and_to_float():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).repeat(3, 2, 2, 1)
    y = Normalize((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, ..., 0], torch.tensor(-1.0)) and torch.allclose(y[0, ..., 1], torch.tensor(1.0))
    assert torch.allclose(y[1, ..., 1], torch.tensor(3.0)) and torch.allclose(y[2, ..., 1], torch.tensor(1.0))
    # float input is taken as 0..1 already
    assert torch.allclose(Normalize([0.5], [0.5])(torch.full((1, 2, 3, 3), 0.75)), torch.tensor(0.5))
    # broadcasts over stacked views (V, C, T, H, W)
    assert Normalize((0.5,) * 3, (0.5,) * 3)(torch.zeros(4, 3, 2, 5, 5)).shape == (4, 3, 2, 5, 5)
    assert torch.equal(ToFloat()(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8)), torch.ones(1, 1, 1, 1))
    with pytest.raises(ValueError, match="1 channel statistics"):
        Normalize([0.5], [0.5])(x)


def test_factories_read_pretrained_cfg():
    cfg = {"input_size": (3, 4, 16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    x = torch.full((3, 4, 24, 32), 255, dtype=torch.uint8)
    tr = train_transforms(pretrained_cfg=cfg)
    y = tr(x)
    assert y.shape == (3, 4, 16, 16) and torch.allclose(y, torch.tensor(1.0))
    ev = eval_transforms(pretrained_cfg=cfg)
    assert ev(x).shape == (3, 4, 16, 16)
    three = eval_transforms(pretrained_cfg=SimpleNamespace(**cfg), num_crops=3)  # attribute-style cfg
    assert three(x).shape == (3, 3, 4, 16, 16)
    # explicit arguments win over the config
    assert eval_transforms(8, pretrained_cfg=cfg)(x).shape == (3, 4, 8, 8)
    assert isinstance(tr, Compose) and "RandomResizedCrop" in repr(tr)
    with pytest.raises(ValueError, match="input_size"):
        train_transforms()


def test_eval_crop_pct_resizes_then_crops():
    x = torch.rand(3, 2, 40, 60)
    ev = eval_transforms(16, crop_pct=0.5, mean=(0, 0, 0), std=(1, 1, 1))
    assert isinstance(ev.transforms[0], ShortSideResize) and ev.transforms[0].size == 32
    assert ev(x).shape == (3, 2, 16, 16)
