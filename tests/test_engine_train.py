"""Training engine on in-memory tensors: the loss goes down, resume is exact, accumulation is
equivalent to a larger batch, the final model is a loadable vidzoo folder."""
import json

import pytest
import torch
from torch.utils.data import Dataset

import vidzoo
from vidzoo.engine.checkpoint import load_checkpoint
from vidzoo.engine.errors import UserError
from vidzoo.engine import TrainConfig, build_scheduler, train

TINY = dict(embed_dim=32, depth=1, num_heads=2, patch_size=8)


class ColourClips(Dataset):
    """Noise clips whose class is the brighter channel: learnable in a few steps."""

    def __init__(self, n: int = 24, k: int = 3, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % k
        self.x = torch.randn(n, 3, 4, 32, 32, generator=g) * 0.5
        self.x[torch.arange(n), self.y] += 1.0
        self.classes = [f"class_{i}" for i in range(k)]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def config(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(model="vivit_joint_tiny_patch16x2_224", output=str(tmp_path / name), epochs=3, batch_size=8,
                lr=2e-3, warmup_epochs=0.5, num_frames=4, img_size=32, model_overrides=dict(TINY, drop_path_rate=0.1),
                progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_training_reduces_loss_and_writes_outputs(tmp_path):
    res = train(config(tmp_path), ColourClips(), ColourClips(12, seed=1))
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0] - 0.1
    assert res.history[-1]["val_top1"] > 60
    out = tmp_path / "run"
    for f in ("metrics.json", "metrics.csv", "curves.png", "train.log", "train_config.json",
              "checkpoints/last.pth", "checkpoints/best.pth", "model/config.json", "model/model.safetensors"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    # 3 classes: top-2 is the top-k worth reporting (a top-5 of 3 classes is always 100%)
    assert {"lr", "train_loss", "train_top1", "train_top2", "val_loss", "val_top1", "val_top2"} <= set(metrics[0])
    assert not any("top5" in k for k in metrics[0])
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss,train_top1")
    # the final model folder is vidzoo's format, with the class names
    loaded = vidzoo.create_model(f"local-dir:{out / 'model'}").eval()
    assert loaded.pretrained_cfg["label_names"] == ["class_0", "class_1", "class_2"]
    best = load_checkpoint(out / "checkpoints" / "best.pth")
    assert best["epoch"] == res.best_epoch
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, best["model"][k]), k


class Interrupt(Exception):
    pass


def stop_after(epoch: int):
    def cb(e, record):
        if e == epoch:
            raise Interrupt
    return cb


def test_resume_after_interruption_is_exact(tmp_path):
    """2 epochs in one go == 1 epoch, a crash, then --resume for the rest (bitwise on CPU)."""
    train(config(tmp_path, "full", epochs=2), ColourClips(), ColourClips(12, seed=1))
    with pytest.raises(Interrupt):
        train(config(tmp_path, "cut", epochs=2), ColourClips(), ColourClips(12, seed=1), callbacks=[stop_after(1)])
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pth")["epoch"] == 1
    with pytest.raises(UserError, match="--resume"):  # the half-done run is not silently overwritten
        train(config(tmp_path, "cut", epochs=2), ColourClips(), ColourClips(12, seed=1))
    res = train(config(tmp_path, "cut", epochs=2, resume=True), ColourClips(), ColourClips(12, seed=1))
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pth")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pth")
    for k, v in full["model"].items():
        assert torch.equal(v, cut["model"][k]), k
    assert full["optimizer"]["state"].keys() == cut["optimizer"]["state"].keys()
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(full["history"]) == strip(cut["history"]) == strip(res.history)
    assert "resumed from" in (tmp_path / "cut" / "train.log").read_text()


def test_gradient_accumulation_matches_larger_batch(tmp_path):
    common = dict(epochs=1, model_overrides=TINY, label_smoothing=0.0, clip_grad=1.0)
    a = train(config(tmp_path, "a", batch_size=8, **common), ColourClips(16))
    b = train(config(tmp_path, "b", batch_size=4, accum_steps=2, **common), ColourClips(16))
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-5), k


def test_bf16_autocast_and_grad_checkpointing_on_cpu(tmp_path):
    res = train(config(tmp_path, epochs=1, amp="bf16", grad_checkpointing=True), ColourClips(8))
    assert res.model.grad_checkpointing and res.history[0]["train_num_samples"] == 8


def test_warmup_then_cosine_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = build_scheduler(opt, TrainConfig(lr=1e-3, epochs=10, warmup_epochs=1, min_lr=1e-6), updates_per_epoch=10)
    lrs = []
    for step in range(1, 101):
        sched.step_update(step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:9] == sorted(lrs[:9]) and max(lrs) == pytest.approx(1e-3)  # linear warmup to the peak
    assert lrs[9:] == sorted(lrs[9:], reverse=True) and lrs[-1] == pytest.approx(1e-6)


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="--opt"):  # refused when the config is made
        config(tmp_path, opt="lion")
    with pytest.raises(UserError, match="cannot build model"):
        train(config(tmp_path, img_size=30), ColourClips(8))  # 30 is not a multiple of patch 8
