"""The training engine's regularisers: the weight average (EMA) validated, saved and resumed; mixup
with label smoothing in its targets; class weights and the balanced sampler; repeated samples from
one decode; clip augmentation in the pipeline; the multistep schedule and the lr scaling rule."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

import vidzoo.data.datasets as datasets_module
from test_engine_train import TINY, ColourClips, Interrupt, config, stop_after
from vidzoo.data import (Compose, InputSpec, Normalize, NpzVolumeDataset, VideoFolder, VideoRandAugment,
                         VideoRandomErasing)
from vidzoo.engine import build_scheduler, train
from vidzoo.engine.balance import BalancedDistributedSampler, balanced_class_weights
from vidzoo.engine.checkpoint import load_checkpoint
from vidzoo.engine.errors import UserError
from vidzoo.engine.evaluation import evaluate
from vidzoo.engine.model_io import load_model
from vidzoo.engine.pipelines import build_dataset


class LabelledClips(ColourClips):
    """ColourClips with the ``targets`` list vidzoo datasets have (class weights and the balanced
    sampler read labels from it, not by reading clips)."""

    @property
    def targets(self) -> list[int]:
        return self.y.tolist()


# ------------------------------------------------------------------------------------------ EMA
def test_ema_weights_are_validated_and_saved(tmp_path):
    val = ColourClips(12, seed=1)
    res = train(config(tmp_path, ema=0.5), ColourClips(), val)
    out = tmp_path / "run"
    best = load_checkpoint(out / "checkpoints" / "best.pth")
    assert best["model_ema"] is not None
    assert any(not torch.equal(v, best["model_ema"][k]) for k, v in best["model"].items())  # an average, not a copy
    # the saved model (and the returned one) holds the best epoch's averaged weights
    saved = load_model(str(out / "model"))
    for k, v in saved.state_dict().items():
        assert torch.equal(v, best["model_ema"][k]), k
        assert torch.equal(res.model.state_dict()[k], v), k
    # validation ran on the average: evaluating those weights again gives the recorded figures
    record = next(r for r in res.history if r["epoch"] == best["epoch"])
    loader = DataLoader(val, batch_size=8)
    again = evaluate(saved, loader, "cpu", 3, progress=False)
    assert again.top1 == pytest.approx(record["val_top1"]) and again.loss == pytest.approx(record["val_loss"])
    # --model RUN/checkpoints/best.pth is that model too
    from_ckpt = load_model(str(out / "checkpoints" / "best.pth"))
    assert all(torch.equal(v, best["model_ema"][k]) for k, v in from_ckpt.state_dict().items())


def test_ema_resume_is_exact(tmp_path):
    """With --ema, 2 epochs in one go == 1 epoch, a crash, then --resume (both weight sets, bitwise)."""
    kw = dict(epochs=2, ema=0.7, ema_warmup=True)
    train(config(tmp_path, "full", **kw), ColourClips(), ColourClips(12, seed=1))
    with pytest.raises(Interrupt):
        train(config(tmp_path, "cut", **kw), ColourClips(), ColourClips(12, seed=1), callbacks=[stop_after(1)])
    train(config(tmp_path, "cut", resume=True, **kw), ColourClips(), ColourClips(12, seed=1))
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pth")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pth")
    for key in ("model", "model_ema"):
        for k, v in full[key].items():
            assert torch.equal(v, cut[key][k]), (key, k)
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(full["history"]) == strip(cut["history"])


# ---------------------------------------------------------------------------------------- mixup
def test_mixup_moves_label_smoothing_into_the_targets(tmp_path):
    """Mixing switched off by probability 0: the soft-target loss on smoothed one-hot targets is the
    smoothed cross-entropy of a run without mixup (same batches, same weights)."""
    common = dict(epochs=2, batch_size=4, label_smoothing=0.2)
    plain = train(config(tmp_path, "plain", **common), ColourClips(8))
    mixed = train(config(tmp_path, "mixed", mixup=0.8, mixup_prob=0.0, **common), ColourClips(8))
    assert [r["train_loss"] for r in mixed.history] == pytest.approx([r["train_loss"] for r in plain.history],
                                                                      rel=1e-5)
    assert mixed.history[0]["train_top1"] is None and plain.history[0]["train_top1"] is not None


def test_mixup_drops_the_incomplete_batch_and_mixes(tmp_path):
    res = train(config(tmp_path, epochs=1, batch_size=4, mixup=1.0, cutmix=1.0), ColourClips(10))
    assert res.history[0]["train_num_samples"] == 8  # 10 clips, batches of 4: the last 2 are dropped
    assert res.history[0]["train_top1"] is None and res.history[0]["train_top5"] is None
    csv_row = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, row = csv_row[0].split(","), csv_row[1].split(",")
    assert row[header.index("train_top1")] == ""  # not applicable, not a number
    with pytest.raises(UserError, match="make no full batch of --batch-size 4"):
        train(config(tmp_path, "small", epochs=1, batch_size=4, mixup=1.0), ColourClips(3))


# ------------------------------------------------------------------------------ class imbalance
def test_balanced_class_weights():
    w = balanced_class_weights([0, 0, 0, 1, 2, 2], 4)
    assert w.tolist() == pytest.approx([6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2), 0.0])  # class 3 has no sample
    assert float((w[torch.tensor([0, 0, 0, 1, 2, 2])]).sum()) == pytest.approx(6.0)


def test_class_weights_weigh_the_loss(tmp_path):
    """One update at a negligible rate: the epoch's loss is the (weighted) cross-entropy of the
    weights the run ends with."""
    data = LabelledClips(9, k=3)
    data.y[:] = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2])
    kw = dict(epochs=1, batch_size=9, lr=1e-9, warmup_epochs=0, label_smoothing=0.0, model_overrides=TINY)
    plain = train(config(tmp_path, "plain", **kw), data)
    weighted = train(config(tmp_path, "w", class_weights="balanced", **kw), data)
    with torch.no_grad():
        logits = plain.model.eval()(data.x)
    ce = torch.nn.functional.cross_entropy
    w = balanced_class_weights(data.y.tolist(), 3)
    assert plain.history[0]["train_loss"] == pytest.approx(float(ce(logits, data.y)), rel=1e-4)
    assert weighted.history[0]["train_loss"] == pytest.approx(float(ce(logits, data.y, weight=w)), rel=1e-4)
    assert "class weights class_0 0.5, class_1 1.5, class_2 3" in (tmp_path / "w" / "train.log").read_text()
    with pytest.raises(UserError, match="needs the training labels"):
        train(config(tmp_path, "no_targets", class_weights="balanced", **kw), ColourClips(9))


def test_balanced_sampler_draws_classes_equally():
    labels = [0] * 90 + [1] * 10
    sampler = BalancedDistributedSampler(labels, seed=3)
    counts = Counter()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == 100
        counts.update(labels[i] for i in drawn)
    assert abs(counts[0] - counts[1]) < 0.1 * 2000  # 1000 each in expectation (uniform order: 1800 vs 200)
    sampler.set_epoch(4)
    assert list(sampler) == list(sampler)  # a function of (seed, epoch): resume draws the same
    ranks = [BalancedDistributedSampler(labels, 2, r, seed=3) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(4)
    assert len(list(ranks[0])) == len(list(ranks[1])) == 50
    single = BalancedDistributedSampler(labels, seed=3)
    single.set_epoch(4)
    assert sorted(list(ranks[0]) + list(ranks[1])) == sorted(single)  # the ranks share one draw


def test_balanced_sampler_in_training(tmp_path):
    data = LabelledClips(12, k=2)
    data.y[:] = torch.tensor([0] * 10 + [1] * 2)
    res = train(config(tmp_path, epochs=1, batch_size=4, balanced_sampler=True), data)
    assert res.history[0]["train_num_samples"] == 12  # the epoch keeps the dataset's length


# ---------------------------------------------------------------------------- repeated samples
def test_repeated_samples_come_from_one_decode(motion, monkeypatch):
    calls = []
    real = datasets_module.read_video_clips

    def counting(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets_module, "read_video_clips", counting)
    spec = InputSpec(3, 4, (12, 12), (0.5,) * 3, (0.25,) * 3, sampling="uniform")
    ds = build_dataset(VideoFolder(motion / "train"), spec, train=True, hflip=0.5, crop_scale=(0.2, 0.6),
                       randaug="rand-m9-n2-mstd0.5", reprob=0.5, repeats=3)
    torch.manual_seed(0)
    x, y = ds[1]
    assert len(calls) == 1 and x.shape == (3, 3, 4, 12, 12) and y == 0
    assert not torch.equal(x[0], x[1]) and not torch.equal(x[1], x[2])  # three augmentations of it
    with pytest.raises(ValueError, match="repeats > 1 is repeated augmentation of training clips"):
        VideoFolder(motion / "train").with_pipeline(None, None, train=False, repeats=2)


def test_num_sample_in_training_counts_the_samples_and_decodes_once(motion, tmp_path, monkeypatch):
    calls = []
    real = datasets_module.read_video_clips
    monkeypatch.setattr(datasets_module, "read_video_clips",
                        lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    res = train(config(tmp_path, data=str(motion / "train"), epochs=1, batch_size=4, num_sample=3, img_size=16,
                       sampling="uniform"))
    videos = 6
    assert res.history[0]["train_num_samples"] == 3 * videos
    assert len(calls) == videos + 1  # one decode per video, plus the first video read once to check its shape


# ------------------------------------------------------------------------------------- pipeline
def test_clip_augmentation_in_the_training_pipeline(motion, tmp_path):
    spec = InputSpec(3, 4, (16, 16), (0.5,) * 3, (0.25,) * 3, sampling="uniform")
    ds = build_dataset(VideoFolder(motion / "train"), spec, train=True, randaug="rand-m9-n2", reprob=0.25,
                       remode="const")
    steps = ds.transform.transforms
    kinds = [type(t) for t in steps]
    # RandAugment on the uint8 crop before Normalize, erasing on the normalised clip after it
    assert kinds.index(VideoRandAugment) < kinds.index(Normalize) < kinds.index(VideoRandomErasing)
    assert steps[kinds.index(VideoRandomErasing)].mode == "const" and isinstance(ds.transform, Compose)
    val = build_dataset(VideoFolder(motion / "val"), spec, train=False)
    assert VideoRandAugment not in [type(t) for t in val.transform.transforms]
    with pytest.raises(UserError, match="--randaug / --num-sample augment the video clips vidzoo decodes; the "
                                        "training data is a ColourClips"):
        build_dataset(ColourClips(4), spec, train=True, randaug="rand-m9-n2", repeats=2)


def test_npz_volumes_refuse_clip_augmentation(tmp_path):
    import numpy as np
    path = tmp_path / "v.npz"
    arrays = {"train_images": np.zeros((4, 8, 16, 16), np.uint8), "train_labels": np.arange(4) % 2}
    np.savez(path, **arrays)
    spec = InputSpec(1, 8, (16, 16), (0.5,), (0.25,), sampling="uniform")
    with pytest.raises(UserError, match="--reprob augment the video clips vidzoo decodes; the training data is "
                                        "npz volumes"):
        build_dataset(NpzVolumeDataset(path), spec, train=True, reprob=0.5)


# ------------------------------------------------------------------------------------- schedule
def test_multistep_schedule_and_scaled_lr(tmp_path):
    cfg = config(tmp_path, lr=0.1, epochs=4, warmup_epochs=0, sched="multistep", decay_milestones=(2, 3),
                 decay_rate=0.5, lr_base_batch=4, batch_size=8)
    assert cfg.peak_lr() == pytest.approx(0.2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.peak_lr())
    sched = build_scheduler(opt, cfg, updates_per_epoch=3, lr=cfg.peak_lr())
    lrs = [opt.param_groups[0]["lr"]]  # lrs[i]: the rate of update i + 1
    for step in range(1, 12):
        sched.step_update(step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.2] * 6 + [0.1] * 3 + [0.05] * 3)  # x0.5 from epoch 2 (0-based), again at 3
    res = train(config(tmp_path, lr=1e-3, lr_base_batch=16, batch_size=8, epochs=1, warmup_epochs=0),
                ColourClips(8))
    assert res.history[0]["lr"] == pytest.approx(5e-4)  # a constant schedule of one update: the peak, scaled
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["resolved"]["peak_lr"] == pytest.approx(5e-4) and saved["config"]["lr"] == 1e-3
