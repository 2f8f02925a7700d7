"""Temporal samplers: ranges, counts, determinism, padding, centring, multi-clip spacing."""
import pytest
import torch

from vidzoo.data import FrameSampler, dense_clip_indices, multi_clip_indices, uniform_segment_indices


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n", [1, 3, 8, 50, 301])
@pytest.mark.parametrize("train", [True, False])
def test_uniform_range_count_and_segments(n, train):
    idx = uniform_segment_indices(n, 8, train, generator=gen())
    assert idx.dtype == torch.long and idx.shape == (8,)
    assert int(idx.min()) >= 0 and int(idx.max()) < n
    assert bool((idx[1:] >= idx[:-1]).all())  # one frame per segment, in time order
    if n >= 8:  # each index lies in its own segment [i*n/8, (i+1)*n/8)
        seg = torch.arange(9) * n / 8
        assert bool(((idx >= seg[:-1].floor()) & (idx < seg[1:])).all())


def test_uniform_eval_is_segment_centre():
    assert uniform_segment_indices(80, 8, train=False).tolist() == [5, 15, 25, 35, 45, 55, 65, 75]


def test_uniform_train_is_seeded_and_random():
    a = uniform_segment_indices(300, 8, True, generator=gen(1))
    b = uniform_segment_indices(300, 8, True, generator=gen(1))
    c = uniform_segment_indices(300, 8, True, generator=gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_uniform_short_video_repeats_frames():
    idx = uniform_segment_indices(3, 8, train=False)
    assert idx.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert uniform_segment_indices(1, 4, train=True, generator=gen()).tolist() == [0, 0, 0, 0]


def test_dense_eval_is_centred_with_stride():
    idx = dense_clip_indices(100, 8, 4, train=False)
    assert idx.tolist() == list(range(35, 35 + 29, 4))  # span 29, slack 71, start 35
    assert (idx[1:] - idx[:-1]).eq(4).all()


def test_dense_train_window_inside_video_and_seeded():
    starts = set()
    for s in range(30):
        idx = dense_clip_indices(64, 8, 2, train=True, generator=gen(s))
        assert int(idx.min()) >= 0 and int(idx.max()) < 64
        assert (idx[1:] - idx[:-1]).eq(2).all()
        starts.add(int(idx[0]))
    assert len(starts) > 5  # the start really is random
    assert torch.equal(dense_clip_indices(64, 8, 2, True, gen(7)), dense_clip_indices(64, 8, 2, True, gen(7)))


def test_dense_short_video_clamp_and_loop():
    assert dense_clip_indices(5, 4, 2, train=False).tolist() == [0, 2, 4, 4]
    assert dense_clip_indices(5, 4, 2, train=False, pad="loop").tolist() == [0, 2, 4, 1]
    assert dense_clip_indices(1, 3, 8, train=True, generator=gen()).tolist() == [0, 0, 0]


def test_zero_frame_video_raises():
    with pytest.raises(ValueError, match="0 frames"):
        uniform_segment_indices(0, 8, train=False)
    with pytest.raises(ValueError, match="0 frames"):
        dense_clip_indices(0, 8, 2, train=True)
    with pytest.raises(ValueError, match="0 frames"):
        FrameSampler()(0)


def test_multi_clip_dense_spacing():
    clips = multi_clip_indices(100, 4, 2, num_clips=3)  # span 7, slack 93
    starts = [int(c[0]) for c in clips]
    assert starts == [15, 46, 77]  # centres of three equal parts of the free range
    assert all((c[1:] - c[:-1]).eq(2).all() for c in clips)
    # one clip == the eval centre clip
    assert torch.equal(multi_clip_indices(100, 4, 2, 1)[0], dense_clip_indices(100, 4, 2, train=False))


def test_multi_clip_uniform_offsets():
    clips = multi_clip_indices(80, 8, None, num_clips=2)
    assert clips[0].tolist() == [2, 12, 22, 32, 42, 52, 62, 72]  # 1/4 into each 10-frame segment
    assert clips[1].tolist() == [7, 17, 27, 37, 47, 57, 67, 77]  # 3/4 into each segment
    assert torch.equal(multi_clip_indices(80, 8, None, 1)[0], uniform_segment_indices(80, 8, False))


def test_frame_sampler():
    s = FrameSampler("dense", num_frames=4, stride=3, num_clips=5)
    train = s(50, train=True, generator=gen())
    assert len(train) == 1 and train[0].shape == (4,)
    evals = s(50, train=False)
    assert len(evals) == 5 and all(c.shape == (4,) for c in evals)
    assert [int(c[0]) for c in evals] == sorted(int(c[0]) for c in evals)
    u = FrameSampler("uniform", num_frames=6)
    assert torch.equal(u(60)[0], uniform_segment_indices(60, 6, False))
    with pytest.raises(ValueError, match="mode"):
        FrameSampler("random")
    with pytest.raises(ValueError, match="num_frames"):
        FrameSampler("dense", num_frames=0)
