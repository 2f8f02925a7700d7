"""Clip-level augmentation: CutMix pastes one box on every frame with label mass = pasted area,
RandAugment draws once per clip and applies that draw (timm's ops, timm's magnitudes) to every
frame, random erasing erases the same box in every frame. timm's image versions are the
reference where they are right, and the tests show where they are wrong on clips."""
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import Mixup
from timm.data.random_erasing import RandomErasing
from timm.data import auto_augment as timm_aa

from vidzoo.data import (
    RAND_AUGMENT_SETS,
    VideoMixup,
    VideoRandAugment,
    VideoRandomErasing,
    parse_rand_augment,
)
from vidzoo.data.augment import _OPS, level_to_arg

MODES = ("batch", "pair", "elem")


# --------------------------------------------------------------------------------------------------
# VideoMixup


def coded_batch(b=6, c=2, t=4, h=12, w=20) -> torch.Tensor:
    """Clip i holds 100 * i + frame index everywhere: every pixel tells its source clip and frame."""
    clip = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1) * 100
    frame = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1)
    return (clip + frame).expand(b, c, t, h, w).clone()


def source_map(out: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) index of the clip each pixel came from; asserts frames were not moved."""
    t = torch.arange(out.shape[2], dtype=out.dtype).view(1, 1, -1, 1, 1)
    src = (out - t) / 100
    assert torch.equal(src, src.round()), "a pixel was blended or moved along T"
    return src.long()


def check_cutmix(out: torch.Tensor, soft: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per clip: one rectangle from the mirrored clip, identical on every frame and channel, and the
    soft target's own-class mass equal to the unpasted fraction. Returns the pasted fractions."""
    b, _, _, h, w = out.shape
    src = source_map(out)
    fractions = []
    for i in range(b):
        j = b - 1 - i
        own = src[i] == i
        assert ((src[i] == i) | (src[i] == j)).all()
        pasted = ~own[0, 0]
        assert torch.equal(~own, pasted.expand_as(own)), f"clip {i}: the box differs between frames/channels"
        rows, cols = pasted.any(1).nonzero(), pasted.any(0).nonzero()
        if len(rows):  # a filled rectangle
            assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
            assert int(pasted.sum()) == len(rows) * len(cols)
        frac = float(pasted.sum()) / (h * w)
        assert soft[i, labels[i]].item() == pytest.approx(1 - frac, abs=1e-6)
        assert soft[i, labels[j]].item() == pytest.approx(frac, abs=1e-6)
        fractions.append(frac)
    return fractions


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("minmax", [None, (0.3, 0.8)])
def test_cutmix_same_box_on_every_frame_and_label_mass_is_pasted_area(mode, minmax):
    labels = torch.arange(6)  # distinct classes: the target shows the mass of each source
    mix = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=minmax, mode=mode,
                     label_smoothing=0.0, num_classes=6)
    fractions = []
    for seed in range(12):
        np.random.seed(seed)
        out, soft = mix(coded_batch(), labels)
        assert soft.shape == (6, 6) and torch.allclose(soft.sum(1), torch.ones(6))
        fractions += check_cutmix(out, soft, labels)
    # real, varied boxes (a lambda near 1 may give an empty box: then nothing is pasted and the target is pure)
    assert max(fractions) < 1 and len(set(fractions)) > 3 and sum(f > 0 for f in fractions) > len(fractions) / 2


def test_cutmix_label_mass_follows_the_clipped_box():
    # A box centred near a corner is clipped; the label mass must follow the clipped area, not lam.
    mix = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=6)
    clipped = 0
    for seed in range(40):
        np.random.seed(seed)
        lam_drawn, _ = mix._params_per_batch()  # timm's draw, replayed below from the same seed
        np.random.seed(seed)
        out, soft = mix(coded_batch(h=16, w=16), torch.arange(6))
        frac = check_cutmix(out, soft, torch.arange(6))[0]
        clipped += abs((1 - frac) - lam_drawn) > 0.05
    assert clipped >= 5  # the correction was exercised, and check_cutmix held each time


def test_timm_mixup_cuts_time_and_height_on_clips():
    """The bug the class fixes: timm pastes x[:, :, y0:y1, x0:x1], which on clips slices T and H."""
    np.random.seed(3)
    mix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=6)
    out, soft = mix(coded_batch(t=8, h=8, w=8), torch.arange(6))
    with pytest.raises(AssertionError):
        check_cutmix(out, soft, torch.arange(6))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("alphas", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)], ids=["mixup", "cutmix", "both"])
def test_lambda_and_targets_equal_timm(mode, alphas):
    # Same numpy seed -> same lambdas and boxes as timm: targets equal; pixels equal for mixup.
    x = torch.rand(4, 3, 2, 10, 14)
    labels = torch.tensor([3, 0, 4, 1])
    kw = dict(mixup_alpha=alphas[0], cutmix_alpha=alphas[1], prob=0.9, switch_prob=0.5, mode=mode,
              label_smoothing=0.1, num_classes=5)
    for seed in range(6):
        np.random.seed(seed)
        ours_x, ours_t = VideoMixup(**kw)(x.clone(), labels)
        np.random.seed(seed)
        timm_x, timm_t = Mixup(**kw)(x.clone(), labels)
        assert torch.equal(ours_t, timm_t)
        if alphas[1] == 0:
            assert torch.equal(ours_x, timm_x)


def test_mixup_blends_whole_clips():
    np.random.seed(0)
    x = coded_batch(b=4)
    out, soft = VideoMixup(mixup_alpha=1.0, label_smoothing=0.0, num_classes=4)(x.clone(), torch.arange(4))
    lam = soft[0, 0].item()
    assert 0 < lam < 1
    assert torch.allclose(out, lam * x + (1 - lam) * x.flip(0))


def test_mixup_refuses_bad_input():
    mix = VideoMixup(num_classes=4)
    y = torch.arange(4)
    with pytest.raises(ValueError, match=r"float batch of clips \(B, C, T, H, W\), got shape \(4, 3, 8, 8\)"):
        mix(torch.rand(4, 3, 8, 8), y)
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        mix(torch.zeros(4, 3, 2, 8, 8, dtype=torch.uint8), y)
    with pytest.raises(ValueError, match="even batch size.*got 3"):
        VideoMixup(num_classes=4, mode="elem")(torch.rand(3, 3, 2, 8, 8), torch.arange(3))
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 4\), got min 0 max 4"):
        mix(torch.rand(4, 3, 2, 8, 8), torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match=r"integer class indices of shape \(4,\)"):
        mix(torch.rand(4, 3, 2, 8, 8), torch.rand(4, 4))
    with pytest.raises(ValueError, match="mode must be one of"):
        VideoMixup(mode="clip")
    with pytest.raises(ValueError, match="all are off"):
        VideoMixup(mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="cutmix_minmax"):
        VideoMixup(cutmix_minmax=(0.8, 0.3))
    with pytest.raises(ValueError, match="no box size"):
        VideoMixup(cutmix_minmax=(0.3, 0.35), num_classes=4)(torch.rand(4, 3, 2, 8, 8), y)


# --------------------------------------------------------------------------------------------------
# VideoRandAugment: parsing and magnitudes against timm


CONFIGS = ["rand", "rand-m9-n2-mstd0.5-inc1", "rand-m7-n4-mstd0.5-inc1", "rand-m9-mstd0.5",
           "rand-n3-p0.8-m5", "rand-mstd101-m6", "rand-m9-mmax15-inc0", "rand-tweights-m5",
           "rand-t3a-inc1", "rand-t3aw-n3"]


@pytest.mark.parametrize("config", CONFIGS)
def test_parse_matches_timm(config):
    ref = timm_aa.rand_augment_transform(config, {})
    cfg = parse_rand_augment(config)
    names, weights = cfg.ops()
    assert names == [op.name for op in ref.ops]
    assert cfg.num_layers == ref.num_layers
    assert all(cfg.prob == op.prob and cfg.magnitude == op.magnitude for op in ref.ops)
    assert all(cfg.magnitude_std == op.magnitude_std and cfg.magnitude_max == op.magnitude_max for op in ref.ops)
    if ref.choice_weights is None:
        assert weights is None
    else:
        assert weights == pytest.approx(list(ref.choice_weights))


@pytest.mark.parametrize("config,match", [
    ("rand-m9-x3", "unknown RandAugment section 'x3'"),
    ("rand-m9-foo", "unknown RandAugment section 'foo'"),
    ("augmix-m5", "starts with 'rand'"),
    ("rand-tfoo", "unknown RandAugment op set 'tfoo'"),
    ("rand-m9.5", "m takes an integer, got '9.5'"),
    ("rand-p2", r"p must be in \[0, 1\]"),
    ("rand-tweights-n16", "exceeds the 15 ops"),
])
def test_parse_refuses_bad_strings(config, match):
    with pytest.raises(ValueError, match=match):
        parse_rand_augment(config)


def test_every_op_of_every_timm_set_is_implemented():
    for inc in (False, True):
        for name in ("",) + RAND_AUGMENT_SETS:
            assert set(timm_aa.rand_augment_choices(name, increasing=inc)) <= set(_OPS), (name, inc)


@pytest.mark.parametrize("name", sorted(_OPS))
def test_level_to_arg_matches_timm(name):
    signs = set()
    for m in (0.0, 0.5, 3.0, 7.3, 9.0, 10.0):
        for seed in range(6):
            random.seed(seed)
            ref = timm_aa.LEVEL_TO_ARG[name]
            ref = () if ref is None else ref(m, {})
            plus, minus = level_to_arg(name, m, 1.0), level_to_arg(name, m, -1.0)
            assert ref in (plus, minus), (m, ref, plus, minus)
            signs.add(ref == plus if plus != minus else None)
    assert signs in ({None}, {True, False}, {True, False, None})  # signed ops do take both signs


# --------------------------------------------------------------------------------------------------
# VideoRandAugment: pixels, one draw per clip


def smooth_clip(t=3, h=32, w=40, seed=0) -> torch.Tensor:
    """uint8 clip with smooth content (bilinear borders stay comparable) plus a noisy band."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(t, 3, 5, 6, generator=g)
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    x = (x * 255).round().to(torch.uint8)
    x[:, :, :6] = torch.randint(0, 256, (t, 3, 6, w), generator=g, dtype=torch.uint8)
    return x.transpose(0, 1).contiguous()  # (C, T, H, W)


# op -> an argument that changes the frame, and the largest mean |ours - timm PIL| allowed
# (0: bit-exact; 1: at most one level apart, PIL's integer rounding; geometry: edge handling).
OP_CASES = {
    "AutoContrast": ((), 1), "Equalize": ((), 0), "Invert": ((), 0),
    "Posterize": ((2,), 0), "PosterizeIncreasing": ((3,), 0), "Solarize": ((100,), 0),
    "SolarizeIncreasing": ((150,), 0), "SolarizeAdd": ((80,), 0),
    "Color": ((0.4,), 1), "ColorIncreasing": ((1.6,), 1), "Contrast": ((0.3,), 1),
    "ContrastIncreasing": ((1.7,), 1), "Brightness": ((1.5,), 1), "BrightnessIncreasing": ((0.6,), 1),
    "Sharpness": ((1.9,), 1), "SharpnessIncreasing": ((0.2,), 1), "Desaturate": ((0.8,), 1),
    "Rotate": ((-17.0,), 2.5), "ShearX": ((0.25,), 2.5), "ShearY": ((-0.2,), 2.5),
    "TranslateXRel": ((0.3,), 2.5), "TranslateYRel": ((-0.2,), 2.5), "GaussianBlur": ((1.2,), 2.5),
    "PosterizeOriginal": ((5,), 0),
}


def test_op_cases_cover_every_op():
    assert set(OP_CASES) == set(_OPS)


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_matches_timm_pil_op_on_every_frame(name):
    args, tol = OP_CASES[name]
    x = smooth_clip()
    ours = VideoRandAugment("rand").apply(x, [(name, args)])
    assert ours.shape == x.shape and ours.dtype == torch.uint8
    assert not torch.equal(ours, x)
    for t in range(x.shape[1]):
        pil = Image.fromarray(x[:, t].permute(1, 2, 0).numpy())
        ref = timm_aa.NAME_TO_OP[name](pil, *args, fillcolor=(128, 128, 128), resample=Image.BILINEAR)
        ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1).float()
        diff = (ref - ours[:, t].float()).abs()
        assert diff.mean() <= tol, (name, t, diff.mean().item())
        if tol == 1:
            assert diff.max() <= 1


@pytest.mark.parametrize("name,args", [("Solarize", (0,)), ("Solarize", (256,)), ("SolarizeAdd", (0,)),
                                       ("SolarizeAdd", (128,)), ("Posterize", (8,)), ("Posterize", (1,)),
                                       ("Color", (1.0,)), ("Rotate", (0.0,)), ("ShearX", (0.0,))])
def test_ops_at_the_ends_of_their_range_match_timm(name, args):
    # the ends of the magnitude scale: identity (Solarize 256, Posterize 8, factor 1, angle 0) or
    # the strongest setting (Solarize 0 inverts everything, SolarizeAdd 128 saturates at 255)
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(3, 2, 16, 16).contiguous()
    ours = VideoRandAugment("rand").apply(x, [(name, args)])
    pil = Image.fromarray(x[:, 0].permute(1, 2, 0).numpy())
    ref = timm_aa.NAME_TO_OP[name](pil, *args, fillcolor=(128, 128, 128), resample=Image.BILINEAR)
    ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1)
    assert torch.equal(ours[:, 0], ref) and torch.equal(ours[:, 1], ref)


def test_convolution_ops_equal_torchvision_per_frame():
    # Sharpness and GaussianBlur fold frames into channels for speed; the result must stay
    # torchvision's, bit for bit.
    import torchvision.transforms.v2.functional as TF
    from vidzoo.data.augment import _gaussian_blur, _sharpness
    for seed in range(4):
        y = torch.randint(0, 256, (5, 3, 19, 27), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
        for f in (0.1, 0.7, 1.63, 1.9):
            assert torch.equal(_sharpness(y, f), TF.adjust_sharpness(y, f))
        for r in (0.3, 1.2, 2.0):
            assert torch.equal(_gaussian_blur(y, r), TF.gaussian_blur(y, [2 * math.ceil(3 * r) + 1] * 2, [r, r]))


def test_posterize_to_zero_bits_is_black():
    # PosterizeIncreasing at magnitude 10 keeps 0 bits; PIL 13 refuses that (timm's op raises there).
    assert level_to_arg("PosterizeIncreasing", 10.0) == (0,)
    x = torch.randint(0, 256, (3, 2, 8, 8), dtype=torch.uint8)
    assert not VideoRandAugment("rand").apply(x, [("PosterizeIncreasing", (0,))]).any()
    # mmax > 10 extrapolates timm's formulas: PosterizeIncreasing at m=15 asks for -2 bits
    assert level_to_arg("PosterizeIncreasing", 15.0) == (-2,)
    assert not VideoRandAugment("rand-mmax15").apply(x, [("PosterizeIncreasing", (-2,))]).any()
    aug = VideoRandAugment("rand-m15-mmax15-inc1")
    for name in aug.op_names:  # every op of the set runs at m=15, both signs
        for sign in (1.0, -1.0):
            assert aug.apply(x, [(name, level_to_arg(name, 15.0, sign))]).shape == x.shape


@pytest.mark.parametrize("name", sorted(_OPS))
def test_every_op_treats_each_frame_as_alone(name):
    # Frame t of the clip's output equals the op on frame t alone: nothing mixes frames.
    x = smooth_clip(t=4, seed=1)
    ops = [(name, level_to_arg(name, 7.0, -1.0))]
    aug = VideoRandAugment("rand")
    out = aug.apply(x, ops)
    for t in range(4):
        assert torch.equal(out[:, t], aug.apply(x[:, t:t + 1], ops)[:, 0])


def test_one_draw_per_clip():
    # Identical frames stay identical: the same ops and magnitudes went to every frame.
    frame = smooth_clip(t=1, seed=2)
    x = frame.expand(-1, 8, -1, -1).contiguous()
    aug = VideoRandAugment("rand-m9-n4-mstd0.5-inc1", generator=torch.Generator().manual_seed(0))
    changed = 0
    for _ in range(20):
        out = aug(x)
        assert torch.equal(out, out[:, :1].expand_as(out))
        changed += not torch.equal(out, x)
    assert changed >= 15


def test_timm_rand_augment_per_frame_draws_new_ops():
    """Why the class exists: timm's RandAugment frame by frame gives identical frames different ops."""
    random.seed(0)
    np.random.seed(0)
    ra = timm_aa.rand_augment_transform("rand-m9-n4-mstd0.5-inc1", {})
    pil = Image.fromarray(smooth_clip(t=1, seed=2)[:, 0].permute(1, 2, 0).numpy())
    frames = [np.array(ra(pil)) for _ in range(8)]
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])


def test_frame_t_equals_single_frame_under_the_same_draw():
    x = smooth_clip(t=5, seed=3)
    aug = VideoRandAugment("rand-m9-n4-p1.0-mstd0.5-inc1", generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        ops = aug.sample()
        assert len(ops) == 4
        out = aug.apply(x, ops)
        for t in range(5):
            assert torch.equal(out[:, t], aug.apply(x[:, t:t + 1], ops)[:, 0])


def test_draws_differ_between_calls_and_repeat_with_a_seed():
    x = smooth_clip(t=2, seed=4)
    a = VideoRandAugment("rand-m7-n4-mstd0.5-inc1", generator=torch.Generator().manual_seed(5))
    b = VideoRandAugment("rand-m7-n4-mstd0.5-inc1", generator=torch.Generator().manual_seed(5))
    outs_a = [a(x) for _ in range(4)]
    outs_b = [b(x) for _ in range(4)]
    assert all(torch.equal(p, q) for p, q in zip(outs_a, outs_b))
    assert any(not torch.equal(outs_a[0], o) for o in outs_a[1:])


def test_sampling_follows_timm_semantics():
    # n ops drawn per clip, each kept with probability p, magnitude ~ N(m, mstd) clipped to [0, 10].
    aug = VideoRandAugment("rand-m9-n3-p0.6-mstd2", generator=torch.Generator().manual_seed(0))
    draws = [aug.sample() for _ in range(3000)]
    assert np.mean([len(d) for d in draws]) == pytest.approx(3 * 0.6, abs=0.06)
    rotations = [abs(args[0]) / 3.0 for d in draws for name, args in d if name == "Rotate"]  # 30 deg = m 10
    assert len(rotations) > 200
    # E[min(X, 10)] for X ~ N(9, 2): 9 - (2 * phi(0.5) - (1 - Phi(0.5))) = 8.604
    assert np.mean(rotations) == pytest.approx(8.604, abs=0.15)
    assert max(rotations) <= 10.0 + 1e-9 and min(rotations) >= 0
    signs = [np.sign(args[0]) for d in draws for name, args in d if name == "ShearX"]
    assert np.mean(signs) == pytest.approx(0.0, abs=0.15)
    weighted = VideoRandAugment("rand-t3aw-n3-p1", generator=torch.Generator().manual_seed(0))
    for _ in range(200):
        names = [n for n, _ in weighted.sample()]
        assert len(names) == len(set(names)) == 3  # weighted sets draw without replacement


def test_rand_augment_refuses_bad_input():
    aug = VideoRandAugment("rand-m9-n2")
    with pytest.raises(ValueError, match=r"uint8 clip \(C, T, H, W\).*got dtype torch.float32"):
        aug(torch.rand(3, 2, 8, 8))
    with pytest.raises(ValueError, match=r"uint8 clip \(C, T, H, W\), got \(2, 3, 2, 8, 8\)"):
        aug(torch.zeros(2, 3, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        aug(torch.zeros(4, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="interpolation must be one of"):
        VideoRandAugment("rand", interpolation="bicubic")
    with pytest.raises(ValueError, match="fill"):
        VideoRandAugment("rand", fill=(300, 0, 0))


def test_rand_augment_fill_and_grayscale():
    x = torch.full((1, 2, 16, 16), 200, dtype=torch.uint8)
    out = VideoRandAugment("rand", fill=7).apply(x, [("TranslateXRel", (0.5,))])
    assert (out[..., 8:] == 7).all() and (out[..., :8] == 200).all()


# --------------------------------------------------------------------------------------------------
# VideoRandomErasing


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_erasing_same_box_on_every_frame(mode):
    x = torch.randn(3, 6, 20, 24) + 10  # erased values are N(0, 1) or 0: far from 10
    erase = VideoRandomErasing(1.0, mode=mode, generator=torch.Generator().manual_seed(0))
    for _ in range(10):
        out = erase(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        changed = (out - x).abs() > 3
        box = changed[0, 0]
        assert box.any() and torch.equal(changed, box.expand_as(changed))
        rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
        assert int(box.sum()) == len(rows) * len(cols)  # a filled rectangle
        area = box.float().mean().item()
        assert 0.02 * 0.8 <= area <= (1 / 3) * 1.2
        inside = out[:, :, box]  # (C, T, pixels)
        if mode == "const":
            assert (inside == 0).all()
        elif mode == "rand":  # one value per channel and frame, drawn afresh per frame
            assert torch.equal(inside, inside[..., :1].expand_as(inside))
            assert not torch.equal(inside[:, 0], inside[:, 1])
        else:  # fresh noise per pixel and frame
            assert not torch.equal(inside[:, 0], inside[:, 1])
    assert not torch.equal(x, erase(x)) and torch.equal(x, x)  # input untouched


def test_erasing_probability_zero_is_identity_and_one_always_erases():
    x = torch.randn(3, 4, 16, 16)
    never = VideoRandomErasing(0.0, mode="pixel", generator=torch.Generator().manual_seed(0))
    assert all(never(x) is x for _ in range(50))
    always = VideoRandomErasing(1.0, generator=torch.Generator().manual_seed(0))
    assert all(not torch.equal(always(x), x) for _ in range(50))
    sometimes = VideoRandomErasing(0.25, generator=torch.Generator().manual_seed(0))
    rate = np.mean([not torch.equal(sometimes(x), x) for _ in range(800)])
    assert rate == pytest.approx(0.25, abs=0.05)


def test_erasing_batch_draws_per_clip_and_keeps_dtype():
    x = torch.full((4, 3, 5, 16, 16), 10.0, dtype=torch.bfloat16)
    out = VideoRandomErasing(1.0, mode="pixel", generator=torch.Generator().manual_seed(2))(x)
    assert out.shape == x.shape and out.dtype == torch.bfloat16
    boxes = []
    for clip in out:
        changed = clip != 10
        assert torch.equal(changed, changed[0, 0].expand_as(changed))
        boxes.append(changed[0, 0])
    assert any(not torch.equal(boxes[0], b) for b in boxes[1:])


def test_erasing_box_sampling_is_timms():
    erase = VideoRandomErasing(1.0, min_area=0.1, max_area=0.3, min_aspect=0.5, min_count=2, max_count=3,
                               generator=torch.Generator().manual_seed(0))
    counts = set()
    for _ in range(300):
        boxes = erase.get_params(40, 60)
        counts.add(len(boxes))
        for top, left, h, w in boxes:
            assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 60 and h < 40 and w < 60
            area = h * w / (40 * 60) * len(boxes)  # timm divides the area among the boxes
            assert 0.1 * 0.75 <= area <= 0.3 * 1.25
            assert 0.5 * 0.7 <= h / w <= 2.0 * 1.4
    assert counts == {2, 3}


def test_timm_random_erasing_on_a_clip_erases_per_channel():
    """Why the class exists: timm takes (C, T, H, W) as a batch of C images, one box per channel."""
    random.seed(0)
    x = torch.full((3, 4, 32, 32), 10.0)
    out = RandomErasing(1.0, device="cpu")(x.clone())
    changed = out != 10
    assert not torch.equal(changed, changed[:1].expand_as(changed))
    with pytest.raises(ValueError):
        RandomErasing(1.0, device="cpu")(torch.zeros(2, 3, 4, 8, 8))


def test_erasing_refuses_bad_input():
    erase = VideoRandomErasing(0.5)
    with pytest.raises(ValueError, match="normalised float clip.*torch.uint8"):
        erase(torch.zeros(3, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, T, H, W\) or a batch \(B, C, T, H, W\), got \(3, 8, 8\)"):
        erase(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="mode must be one of"):
        VideoRandomErasing(0.5, mode="noise")
    with pytest.raises(ValueError, match="probability"):
        VideoRandomErasing(1.5)


# --------------------------------------------------------------------------------------------------
# benchmarks/augment.py


def test_augment_benchmark_runs_and_writes_its_table(tmp_path):
    from benchmarks import augment
    rows = augment.main(["--sizes", "2x16", "--runs", "1", "--warmup", "0", "--clips", "2", "--batch-size", "2",
                         "--out", str(tmp_path / "aug")])
    names = [r["augmentation"] for r in rows]
    assert "VideoRandAugment rand-m7-n4-mstd0.5-inc1" in names and "VideoRandomErasing p=0.25 pixel" in names
    assert sum(n.startswith("VideoMixup") for n in names) == 4
    assert sum(r["per_op"] for r in rows) == 15  # every op of the inc1 set
    assert all(r["best_ms"] > 0 and r["best_ms"] <= r["median_ms"] for r in rows)
    md = (tmp_path / "aug.md").read_text()
    assert "## 2 frames of 16x16" in md and "| VideoRandAugment rand-m7-n4-mstd0.5-inc1 |" in md
    assert (tmp_path / "aug.csv").exists() and (tmp_path / "aug.json").exists()
    with pytest.raises(SystemExit):
        augment.main(["--randaug", "rand-q3", "--out", str(tmp_path / "bad")])
