"""``vidzoo train --freeze-backbone``: the backbone never changes (bit for bit) and stays in eval mode,
only the head has gradients and optimizer state, the saved probe is a complete classifier with its
provenance; ``--cache-features`` encodes each clip once and trains the same head as without it;
``--probe-grid`` heads are independent and equal to single-head runs; the refusals are one line."""
from __future__ import annotations

import json
import shutil
import textwrap
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import vidzoo
from vidzoo.data.datasets import _VideoSourceDataset
from vidzoo.engine import TrainConfig, train
from vidzoo.engine.checkpoint import load_checkpoint
from vidzoo.engine.errors import UserError
from vidzoo.engine.model_io import save_model_folder
from vidzoo.tokenizers import VideoTokenizer

from helpers import MODEL, TINY, subprocess_env, train_argv

GRID = "lr=1e-2,1e-3;wd=0.05,0"
HEAD_KEYS = ("head.", "fc_norm.", "attn_pool.")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    """A tiny model saved as trained weights, with dropout and stochastic depth (which a probe must not
    run): the backbone the probes read."""
    torch.manual_seed(1)
    m = vidzoo.create_model(MODEL, num_classes=3, num_frames=4, img_size=16, drop_path_rate=0.5,
                            proj_drop_rate=0.5, attn_drop_rate=0.5, **TINY)
    m.pretrained_cfg = dict(m.pretrained_cfg, sampling="uniform")
    out = tmp_path_factory.mktemp("backbone") / "model"
    save_model_folder(m, out, run_config={"data": "other-task", "epochs": 5, "model": MODEL}, classes=["a", "b", "c"])
    return str(out)


def probe_cfg(motion, out, backbone, **kw) -> TrainConfig:
    base = dict(model=backbone, data=str(motion), output=str(out), epochs=3, batch_size=4, lr=1e-2, num_frames=4,
                img_size=16, sampling="uniform", hflip=0.0, progress=False, freeze_backbone=True, augment="none",
                warmup_epochs=0.0)
    base.update(kw)
    return TrainConfig(**base)


class Counter:
    """Clips through the backbone (the tokenizer's forward) and clips decoded, over a block."""

    def __init__(self, monkeypatch):
        self.encoded = self.decoded = 0
        self.training_flags: set[bool] = set()

        def hook(module, args, output):
            if isinstance(module, VideoTokenizer):
                self.encoded += args[0].shape[0]
            if type(module).__name__ == "Block":
                self.training_flags.add(module.training)

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        read = _VideoSourceDataset.read_clips

        def counted(ds, index):
            self.decoded += 1
            return read(ds, index)

        monkeypatch.setattr(_VideoSourceDataset, "read_clips", counted)

    def close(self):
        self.handle.remove()


def _backbone_state(sd):
    return {k: v for k, v in sd.items() if not k.startswith(HEAD_KEYS)}


def test_backbone_is_bit_identical_and_in_eval_mode(motion, backbone, tmp_path, monkeypatch):
    count = Counter(monkeypatch)
    try:
        res = train(probe_cfg(motion, tmp_path / "run", backbone, epochs=2))
    finally:
        count.close()
    assert count.training_flags == {False}  # no dropout / drop-path in the backbone, ever
    # without the cache every clip is decoded and encoded every epoch (plus the setup's shape check of the first
    # training and validation clip, which are decoded only)
    assert count.encoded == 2 * (6 + 4) and count.decoded == count.encoded + 2
    start = load_file(f"{backbone}/model.safetensors")
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert _backbone_state(start).keys() == _backbone_state(saved).keys() and len(_backbone_state(start)) > 10
    for k, v in _backbone_state(start).items():
        assert torch.equal(saved[k], v), k
    assert not torch.equal(saved["head.weight"][:2], start["head.weight"][:2])  # a new 2-class head was trained
    assert all(p.grad is None for n, p in res.model.named_parameters() if not n.startswith(HEAD_KEYS))
    assert all(not p.requires_grad for n, p in res.model.named_parameters() if not n.startswith(HEAD_KEYS))
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pth")
    assert len(ckpt["optimizer"]["state"]) == 2  # head.weight and head.bias: no state for the backbone
    prov = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["pretrained_cfg"]["provenance"]
    assert prov["kind"] == "probe" and prov["probe_head"] == "linear" and "other-task" in prov["backbone"]


def test_the_probe_is_a_complete_classifier(motion, backbone, tmp_path, cli):
    out = tmp_path / "run"
    r = cli(*train_argv(motion, out, "--freeze-backbone", "--head", "attentive", "--augment", "none",
                        "--cache-features", model=backbone, epochs=2))
    assert r.code == 0, r.err
    assert "probe: backbone frozen" in r.out and "attentive head" in r.out
    best = json.loads((out / "metrics.json").read_text())
    best = max(best, key=lambda m: (m["val_top1"], -m["val_loss"]))
    r = cli("info", out)
    assert "probe trained on" in r.out and "over a model trained from scratch by vidzoo on other-task" in r.out
    assert "attentive pooler" in r.out
    # eval scores the saved model exactly as the run's validation did (the head copy is the model's head)
    r = cli("eval", "--model", out, "--data", motion, "--split", "val", "--no-progress")
    assert r.code == 0, r.err
    assert f"top-1 {best['val_top1']:.2f}%" in r.out and f"loss {best['val_loss']:.4f}" in r.out
    assert cli("predict", "--model", out, motion / "val" / "left" / "0000.mp4").code == 0
    assert cli("embed", "--model", out, motion / "val", "--output", tmp_path / "emb").code == 0
    r = cli("export", "--model", out, "--output", tmp_path / "probe.pt2")
    assert r.code == 0, r.err


def test_linear_head_over_an_attentive_model(motion, tmp_path):
    torch.manual_seed(0)
    m = vidzoo.create_model(MODEL, num_classes=3, num_frames=4, img_size=16, global_pool="attentive", **TINY)
    m.pretrained_cfg = dict(m.pretrained_cfg, sampling="uniform")
    save_model_folder(m, tmp_path / "vjepa", run_config={"data": "x", "epochs": 1, "model": MODEL}, classes=list("abc"))
    res = train(probe_cfg(motion, tmp_path / "run", str(tmp_path / "vjepa"), epochs=1, head="linear"))
    assert res.model.global_pool == "avg" and res.model.attn_pool is None
    res = train(probe_cfg(motion, tmp_path / "run2", str(tmp_path / "vjepa"), epochs=1))  # its own kind
    assert res.model.global_pool == "attentive" and res.model.model_args["global_pool"] == "attentive"


def test_cache_encodes_each_clip_once_and_trains_the_same_head(motion, backbone, tmp_path, monkeypatch):
    count = Counter(monkeypatch)
    try:
        cached = train(probe_cfg(motion, tmp_path / "cached", backbone, cache_features=True))
    finally:
        count.close()
    assert count.encoded == 6 + 4 and count.decoded == 6 + 4 + 2  # each clip once (+ the setup's shape checks)
    assert [r["encoded_clips"] for r in cached.history] == [10, 0, 0]  # cache hits on every later epoch
    assert "cache_s" in cached.history[0] and all("time_s" in r and "cache_s" not in r for r in cached.history[1:])
    plain = train(probe_cfg(motion, tmp_path / "plain", backbone))
    assert [r["encoded_clips"] for r in plain.history] == [10, 10, 10]
    for (k, a), b in zip(cached.model.state_dict().items(), plain.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=k)
    for a, b in zip(cached.history, plain.history):
        assert a["val_top1"] == b["val_top1"] and a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_balanced_sampler_and_repeated_samples_reach_the_probe(motion, backbone, tmp_path):
    # the cache is drawn in the run's sampler order (here the class-balanced draw), as decoding would be
    cached = train(probe_cfg(motion, tmp_path / "cached", backbone, epochs=2, cache_features=True,
                             balanced_sampler=True))
    plain = train(probe_cfg(motion, tmp_path / "plain", backbone, epochs=2, balanced_sampler=True))
    for (k, a), b in zip(cached.model.state_dict().items(), plain.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=k)
    # --num-sample 2: two augmented clips of each training video go through the backbone every epoch
    res = train(probe_cfg(motion, tmp_path / "repeats", backbone, epochs=1, augment="random", num_sample=2))
    assert res.history[0]["encoded_clips"] == 2 * 6 + 4 and res.history[0]["train_num_samples"] == 12


def test_grid_heads_are_independent_and_equal_single_runs(motion, backbone, tmp_path):
    grid = train(probe_cfg(motion, tmp_path / "grid", backbone, cache_features=True, probe_grid=GRID))
    heads = load_checkpoint(tmp_path / "grid" / "checkpoints" / "last.pth")["probe"]["heads"]
    pairs = [(1e-2, 0.05), (1e-2, 0.0), (1e-3, 0.05), (1e-3, 0.0)]
    assert [(h["lr"], h["weight_decay"]) for h in grid.history[0]["heads"]] == pairs
    for k in (1, 2):  # another lr and another weight decay than the first head
        lr, wd = pairs[k]
        single = train(probe_cfg(motion, tmp_path / f"single{k}", backbone, cache_features=True, lr=lr,
                                 weight_decay=wd))
        last = load_checkpoint(tmp_path / f"single{k}" / "checkpoints" / "last.pth")["model"]
        for name in ("head.weight", "head.bias"):
            assert torch.equal(heads[f"heads.{k}.{name}"], last[name]), (k, name)
        for g, s in zip(grid.history, single.history):
            assert g["heads"][k]["val_top1"] == s["val_top1"] and g["heads"][k]["val_loss"] == s["val_loss"]
            assert g["heads"][k]["train_loss"] == s["train_loss"]
    # the saved model is the best (epoch, head): highest val top-1, then lowest val loss
    scored = [(h["val_top1"], -h["val_loss"], r["epoch"], k) for r in grid.history for k, h in enumerate(r["heads"])]
    top1, _, epoch, k = max(scored, key=lambda t: (t[0], t[1], -t[2], -t[3]))
    assert grid.best_epoch == epoch and grid.history[epoch - 1]["head"] == k and grid.best_top1 == top1
    best = load_checkpoint(tmp_path / "grid" / "checkpoints" / "best.pth")
    assert torch.equal(best["probe"]["heads"][f"heads.{k}.head.weight"], grid.model.head.weight.detach().cpu())
    log = (tmp_path / "grid" / "train.log").read_text()
    assert "best val top-1" in log and log.count("\n* ") == 1  # the table, the saved head marked once
    assert "adamw, each head its own lr and wd (--probe-grid)" in log


def test_a_diverging_grid_head_is_left_out(motion, backbone, tmp_path):
    res = train(probe_cfg(motion, tmp_path / "run", backbone, epochs=2, probe_grid="lr=1e-2,1e38", opt="sgd",
                          label_smoothing=0.0))
    heads = res.history[-1]["heads"]
    assert heads[1]["diverged"] and heads[1]["val_top1"] is None and not heads[0]["diverged"]
    assert all(r["head"] == 0 for r in res.history)
    assert "diverged" in (tmp_path / "run" / "train.log").read_text()


def test_probe_resume_is_exact(motion, backbone, tmp_path):
    class Stop(Exception):
        pass

    def stop(epoch, record):
        if epoch == 1:
            raise Stop

    full = train(probe_cfg(motion, tmp_path / "full", backbone, epochs=2, cache_features=True, probe_grid=GRID))
    with pytest.raises(Stop):
        train(probe_cfg(motion, tmp_path / "cut", backbone, epochs=2, cache_features=True, probe_grid=GRID),
              callbacks=[stop])
    cut = train(probe_cfg(motion, tmp_path / "cut", backbone, epochs=2, cache_features=True, probe_grid=GRID,
                          resume=True))
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pth")["probe"]["heads"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pth")["probe"]["heads"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("time_s", "cache_s", "encoded_clips")} for r in h]  # noqa: E731
    assert strip(full.history) == strip(cut.history)
    with pytest.raises(UserError, match="differs|these options give"):
        train(probe_cfg(motion, tmp_path / "cut", backbone, epochs=3, cache_features=True, resume=True))


def test_refusals_are_one_line(motion, backbone, tmp_path, cli):
    base = train_argv(motion, tmp_path / "run", model=backbone)
    cases = {
        ("--freeze-backbone", "--cache-features"): "--augment none",
        ("--cache-features",): "needs --freeze-backbone",
        ("--head", "linear"): "needs --freeze-backbone",
        ("--freeze-backbone", "--layer-decay", "0.75"): "--layer-decay",
        ("--freeze-backbone", "--probe-grid", "lr=0.1;lr=2"): "--probe-grid",
        ("--freeze-backbone", "--probe-grid", "lr=-1"): "--probe-grid",
        ("--freeze-backbone", "--probe-grid", "momentum=1"): "--probe-grid",
    }
    for extra, words in cases.items():
        r = cli(*base, *extra)
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, (extra, r.err)
    only_train = tmp_path / "only_train"
    shutil.copytree(motion / "train", only_train)
    r = cli(*train_argv(only_train, tmp_path / "run2", "--freeze-backbone", "--probe-grid", GRID, model=backbone))
    assert r.code == 2 and "validation data" in r.err


def test_what_trains_a_whole_model_is_refused_with_a_probe(motion, backbone, tmp_path, cli):
    base = train_argv(motion, tmp_path / "run", "--freeze-backbone", model=backbone)
    cases = {("--ema", "0.99"): "--ema", ("--mixup", "0.8"): "--mixup", ("--compile",): "--compile",
             ("--augment", "random", "--cache-features"): "--augment random: a random clip position",
             ("--augment", "none", "--randaug", "rand-m7-n2"): "--augment none"}
    for extra, words in cases.items():
        r = cli(*base, *extra)
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, (extra, r.err)


def test_ddp_probe_trains_only_the_heads(motion, backbone, tmp_path):
    """torchrun, 2 CPU processes on one run folder: the cache is filled shard by shard and gathered, the heads
    are what DDP reduces, both ranks end with the same model, and the backbone is unchanged."""
    cfg = dict(model=backbone, data=str(motion), output=str(tmp_path / "run"), epochs=2, batch_size=2, lr=1e-2,
               num_frames=4, img_size=16, sampling="uniform", hflip=0.0, progress=False, freeze_backbone=True,
               augment="none", cache_features=True, probe_grid=GRID, device="cpu")
    launcher = tmp_path / "launch.py"
    launcher.write_text(textwrap.dedent(f"""
        import os, torch
        from vidzoo.engine import TrainConfig, train
        res = train(TrainConfig(**{cfg!r}))
        torch.save(res.model.state_dict(), os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".pt"))
    """))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(launcher)], capture_output=True, text=True, env=subprocess_env(), timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [m["encoded_clips"] for m in metrics] == [10, 0] and all(m["world_size"] == 2 for m in metrics)
    assert all(m["train_samples_per_rank"] == [3, 3] and m["val_num_samples"] == 4 for m in metrics)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(v, rank1[k]) for k, v in rank0.items())  # the heads were reduced: one model
    start = load_file(f"{backbone}/model.safetensors")
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in _backbone_state(start).items())
    assert torch.equal(saved["head.weight"], rank0["head.weight"])


def test_grid_table_names_each_heads_best_epoch_by_the_saving_rule():
    from vidzoo.engine.probe import grid_table

    def head(top1, loss):
        return {"lr": 1e-3, "weight_decay": 0.0, "val_top1": top1, "val_loss": loss, "diverged": False}
    # head 0 reaches 100% at epoch 2 and keeps it with a lower loss at epoch 3: epoch 3 is the saved one
    history = [{"epoch": 1, "head": 0, "heads": [head(50.0, 0.9), head(50.0, 0.8)]},
               {"epoch": 2, "head": 0, "heads": [head(100.0, 0.5), head(50.0, 0.7)]},
               {"epoch": 3, "head": 0, "heads": [head(100.0, 0.3), head(50.0, 0.6)]}]
    lines = grid_table(history, best_epoch=3)
    marked = next(line for line in lines if line.startswith("*"))
    assert marked.split()[3:5] == ["100.00%", "3"], marked
    other = next(line for line in lines[1:] if line.startswith("  "))
    assert other.split()[2:4] == ["50.00%", "3"], other  # same top-1 throughout: its lowest loss
