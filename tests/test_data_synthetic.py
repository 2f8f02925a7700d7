"""Synthetic motion dataset: real decodable mp4 files; classes differ by motion, not appearance."""
import numpy as np
import pytest
import torch

from vidzoo.data import FrameSampler, VideoFolder, make_motion_dataset, read_video, video_info
from vidzoo.data.synthetic import MOTION_DIRECTIONS, _render_motion_video

NUM_FRAMES, SIZE = 10, (32, 32)


@pytest.fixture(scope="module")
def motion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    classes = make_motion_dataset(root, num_classes=4, videos_per_class=3, num_frames=NUM_FRAMES,
                                  size=SIZE, fps=8, seed=0)
    return root, classes


def mean_shift(video: torch.Tensor) -> tuple[float, float]:
    """Average (dx, dy) per frame, from the peak of the circular cross-correlation of frames.

    The background noise is independent across frames, so the correlation peak is the shape's
    displacement; circular correlation matches the wrap-around motion exactly.
    """
    g = video.float().mean(0)  # (T, H, W) grey
    g = g - g.mean(dim=(1, 2), keepdim=True)
    f = torch.fft.fft2(g)
    corr = torch.fft.ifft2(f[1:] * f[:-1].conj()).real  # (T-1, H, W)
    h, w = g.shape[-2:]
    peak = corr.flatten(1).argmax(1)
    dy, dx = peak // w, peak % w
    dy = torch.where(dy > h // 2, dy - h, dy).float()
    dx = torch.where(dx > w // 2, dx - w, dx).float()
    return dx.mean().item(), dy.mean().item()


def test_writes_decodable_mp4_per_class(motion_root):
    root, classes = motion_root
    assert classes == sorted(["left", "right", "up", "down"])
    for c in classes:
        files = sorted((root / c).glob("*.mp4"))
        assert len(files) == 3
        info = video_info(files[0])
        assert (info.num_frames, info.height, info.width) == (NUM_FRAMES, *SIZE)
        assert info.fps == pytest.approx(8.0)
    ds = VideoFolder(root, FrameSampler("uniform", num_frames=4))
    assert ds.classes == classes and len(ds) == 12 and ds[0][0].shape == (3, 4, *SIZE)


def test_classes_differ_by_motion_direction(motion_root):
    root, classes = motion_root
    for c in classes:
        for f in sorted((root / c).glob("*.mp4")):
            dx, dy = mean_shift(read_video(f))
            ex, ey = MOTION_DIRECTIONS[c]
            # moves the right way, by a plausible 1-3 px per frame, and not along the other axis
            assert dx * ex + dy * ey > 0.7, (c, f.name, dx, dy)
            assert abs(dx * ey - dy * ex) < 0.6, (c, f.name, dx, dy)


def test_split_and_seed_reproducible(tmp_path):
    a = make_motion_dataset(tmp_path / "a", num_classes=2, videos_per_class=1, num_frames=4, size=(16, 16),
                            seed=3, split="val")
    make_motion_dataset(tmp_path / "b", num_classes=2, videos_per_class=1, num_frames=4, size=(16, 16),
                        seed=3, split="val")
    make_motion_dataset(tmp_path / "c", num_classes=2, videos_per_class=1, num_frames=4, size=(16, 16),
                        seed=3, split="train")
    assert a == ["left", "right"]
    va, vb = (read_video(tmp_path / r / "val" / "left" / "0000.mp4") for r in "ab")
    vc = read_video(tmp_path / "c" / "train" / "left" / "0000.mp4")
    assert torch.equal(va, vb) and not torch.equal(va, vc)
    with pytest.raises(ValueError, match="num_classes"):
        make_motion_dataset(tmp_path / "d", num_classes=9)
    with pytest.raises(ValueError, match="even"):
        make_motion_dataset(tmp_path / "d", size=(15, 16))


def test_single_frames_do_not_reveal_the_class():
    """Per-frame statistics match across classes; only frame-to-frame change differs.

    A design where position depended on the class (e.g. "right" videos starting on the left so
    the shape stays in view) would shift the shape's mean position by several pixels here.
    """
    n, t = 150, 16
    ys, xs = np.mgrid[0:16, 0:16]
    stats = {}
    for c, (name, direction) in enumerate(list(MOTION_DIRECTIONS.items())[:4]):
        rng = np.random.default_rng([7, c])
        grey = np.stack([_render_motion_video(rng, direction, t, 16, 16) for _ in range(n)]).mean(-1)
        stats[name] = {}
        for k in (0, t - 1):  # first and last frame
            frame = grey[:, k]
            # the shape: pixels far from the frame's median (its colour differs from the background by > 50)
            mask = np.abs(frame - np.median(frame, axis=(1, 2), keepdims=True)) > 30
            area = mask.sum(axis=(1, 2))
            stats[name].update({
                f"mean{k}": frame.mean(axis=(1, 2)),
                f"std{k}": frame.std(axis=(1, 2)),
                f"area{k}": area,
                f"x{k}": (mask * xs).sum(axis=(1, 2)) / np.maximum(area, 1),
                f"y{k}": (mask * ys).sum(axis=(1, 2)) / np.maximum(area, 1),
            })
    for key in stats["left"]:
        means = [s[key].mean() for s in stats.values()]
        spread = np.mean([s[key].std() for s in stats.values()])
        # class means agree within ~4 standard errors of a difference of means
        assert max(means) - min(means) < 4 * spread * np.sqrt(2 / n), (key, means, spread)
