"""Engine building blocks: metrics, checkpoints and RNG state, option parsing, complexity, pictures."""
import copy
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vidzoo
from vidzoo.engine.checkpoint import (atomic_save, atomic_write_json, capture_rng_state, load_checkpoint,
                                      restore_rng_state)
from vidzoo.engine.complexity import count_flops, count_gmacs
from vidzoo.engine.errors import UserError
from vidzoo.engine.evaluation import EvalResult, evaluate, predict_probs, write_eval_outputs
from vidzoo.engine.inference import parse_views
from vidzoo.engine.history import epoch_line
from vidzoo.engine.metrics import ClassificationMeter, topk_correct, topk_of
from vidzoo.engine.model_io import model_complexity
from vidzoo.engine.options import parse_overrides
from vidzoo.engine.plots import plot_training_curves


def test_topk_correct_caps_k_at_num_classes():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    target = torch.tensor([1, 2, 0])
    assert topk_correct(scores, target, (1, 2, 5)) == [1, 1, 3]


def test_meter_loss_accuracy_confusion_per_class():
    m = ClassificationMeter(3)
    m.update(torch.tensor([[5.0, 0, 0], [0, 5.0, 0]]), torch.tensor([0, 0]), loss=1.0)
    m.update(torch.tensor([[0, 0, 5.0]]), torch.tensor([2]), loss=4.0)
    out = m.compute()
    assert out["num_samples"] == 3 and out["samples_per_rank"] == [3]
    assert out["loss"] == pytest.approx((1.0 * 2 + 4.0) / 3)
    assert out["top1"] == pytest.approx(200 / 3)
    assert m.confusion.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert m.per_class_accuracy() == [50.0, None, 100.0]


def test_rng_state_round_trip_and_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = capture_rng_state()
    a = (random.random(), float(np.random.rand()), torch.rand(3))
    atomic_save({"model": {}, "model_name": "x", "architecture": "x", "model_args": {}, "pretrained_cfg": {},
                 "classes": [], "rng": [state]}, tmp_path / "c.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]  # no temporary file left behind
    ckpt = load_checkpoint(tmp_path / "c.pth")  # weights_only=True
    restore_rng_state(ckpt["rng"][0])
    b = (random.random(), float(np.random.rand()), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="is not a vidzoo checkpoint: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save({"a": 1}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="is not a vidzoo checkpoint: it has no 'model'"):
        load_checkpoint(tmp_path / "other.pth")


def test_atomic_json_writes_nan_as_null(tmp_path):
    atomic_write_json({"x": float("nan"), "y": (1, 2)}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": None, "y": [1, 2]}


def test_parse_overrides_and_views():
    assert parse_overrides(["depth=2", "img_size=(32, 48)", "act_layer=gelu", "drop-path-rate=0.1",
                            "class_token=False"]) == {"depth": 2, "img_size": (32, 48), "act_layer": "gelu",
                                                      "drop_path_rate": 0.1, "class_token": False}
    # Python and JSON spellings alike: the command and the benchmark scripts share this parser
    assert parse_overrides(["qkv_bias=True", "fc_norm=true", "tubelet_size=null", "img_size=[32, 48]"]) == {
        "qkv_bias": True, "fc_norm": True, "tubelet_size": None, "img_size": [32, 48]}
    assert parse_overrides(["qkv_bias=qv"]) == {"qkv_bias": "qv"}
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["depth"])
    assert parse_views("4x3") == (4, 3) and parse_views("2") == (2, 1) and parse_views((1, 1)) == (1, 1)
    for bad in ("axb", "2x2", "0x1"):
        with pytest.raises(UserError):
            parse_views(bad)


def test_model_complexity_on_meta_device():
    """Counted without allocating the model (the figures against the papers: test_models)."""
    ts = model_complexity("timesformer")
    assert ts["input_size"] == (3, 8, 224, 224) and ts["gmacs"] > 100
    assert next(ts["model"].parameters()).device.type == "meta"


def test_flop_counter_counts_cpu_flash_attention():
    q = torch.randn(2, 3, 10, 8)
    flops, by_op = count_flops(lambda: F.scaled_dot_product_attention(q, q, q))
    assert flops == 2 * (2 * 2 * 3 * 10 * 10 * 8)  # QK^T and AV, 2 FLOPs per multiply-add
    q.requires_grad_(True)
    flops, _ = count_flops(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward())
    # torch's flash-backward formula: 5 matmuls (QK^T recomputed, dV, dP, dQ, dK) = 2.5x the forward
    assert flops == 3.5 * 2 * (2 * 2 * 3 * 10 * 10 * 8)


def test_joint_gmacs_match_the_analytic_count():
    """MACs of a joint model = patch embedding + per block (qkv, proj, MLP, QK^T, AV) + head, on CPU and
    on the meta device alike."""
    D, L, depth, Tq, N = 32, None, 2, 2, 4
    m = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", img_size=32, num_frames=4, embed_dim=D, depth=depth,
                            num_heads=2, num_classes=5).eval()
    L = 1 + Tq * N
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        flops, _ = count_flops(lambda: m(x))
    embed = Tq * N * D * 3 * 2 * 16 * 16
    block = L * D * 3 * D + L * D * D + 2 * L * D * 4 * D + 2 * L * L * D
    assert flops // 2 == embed + depth * block + D * 5
    assert count_gmacs(m) == count_gmacs(copy.deepcopy(m).to("meta")) == flops / 2e9


class _FixedLogits(torch.nn.Module):
    """Logits = first K values of the flattened clip (so a test controls them through the input)."""

    num_classes = 3

    def forward(self, x):
        return x.flatten(1)[:, :3]


def test_multi_view_scores_are_averaged_softmax():
    x = torch.zeros(2, 2, 1, 1, 1, 3)  # (B, V, C, T, H, W): logits are the last axis
    x[0, 0, 0, 0, 0] = torch.tensor([4.0, 0, 0])
    x[0, 1, 0, 0, 0] = torch.tensor([0, 4.0, 0])
    x[1, :, 0, 0, 0] = torch.tensor([0, 0, 2.0])
    p = predict_probs(_FixedLogits(), x)
    expect0 = (torch.tensor([4.0, 0, 0]).softmax(0) + torch.tensor([0, 4.0, 0]).softmax(0)) / 2
    assert torch.allclose(p[0], expect0) and torch.allclose(p[1], torch.tensor([0, 0, 2.0]).softmax(0))
    assert torch.allclose(p.sum(1), torch.ones(2))


def test_evaluate_and_report_files(tmp_path):
    g = torch.Generator().manual_seed(0)
    n, k = 12, 3
    labels = torch.arange(n) % k
    clips = torch.rand(n, 2, 3, 4, 8, 8, generator=g) * 0.2  # two views per sample
    for i in range(n):  # logits from the first three values: right for all but two samples
        clips[i, :, 0, 0, 0, :3] = 0
        clips[i, :, 0, 0, 0, (labels[i] + (i < 2)) % k] = 5.0
    ds = torch.utils.data.TensorDataset(clips, labels, torch.arange(n))
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    res = evaluate(_FixedLogits(), loader, "cpu", k, collect_predictions=True, num_visuals=4, progress=False)
    assert isinstance(res, EvalResult) and res.num_samples == n
    # 3 classes: top-2 (top-5 would be 100% whatever the model), from the view-averaged softmax
    probs = clips.flatten(2)[:, :, :3].softmax(-1).mean(1)
    top2 = 100 * float((probs.topk(2).indices == labels[:, None]).any(1).float().mean())
    assert res.top1 == pytest.approx(100 * 10 / 12) and (res.k, res.top5) == (2, None)
    assert res.topk == pytest.approx(top2) and top2 < 100
    assert int(res.confusion.sum()) == n and int(res.confusion.trace()) == 10
    assert [p["index"] for p in res.predictions] == list(range(n)) and len(res.visuals) == 4
    files = write_eval_outputs(res, tmp_path, ["a", "b", "c"], (0.5,) * 3, (0.5,) * 3,
                               sample_names=[f"v{i}.mp4" for i in range(n)], extra={"views": "2x1"})
    assert set(files) == {"metrics", "per_class", "confusion_csv", "confusion_png", "predictions", "samples_png",
                          "samples_gif", "log"}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["views"] == "2x1" and set(metrics["per_class_accuracy"]) == {"a", "b", "c"}
    assert metrics["top2"] == pytest.approx(top2) and "top5" not in metrics
    rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert rows[0] == "true\\pred,a,b,c" and len(rows) == 4
    assert (tmp_path / "predictions.csv").read_text().splitlines()[1].startswith("0,v0.mp4,a,b,")
    from PIL import Image
    with Image.open(tmp_path / "samples.gif") as gif:
        assert gif.n_frames == 4  # T frames of the clips


@pytest.mark.parametrize("topk", [None, "top3", "top5"])
def test_training_curves_png_names_topk_by_its_k(tmp_path, monkeypatch, topk):
    """New records name top-k by its k (none with 2 classes); records of older runs (``top5`` whatever the
    classes) still plot."""
    from matplotlib.axes import Axes
    labels = []
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **kw: labels.append(kw.get("label")) or real(self, *a, **kw))
    extra = lambda split, e: {f"{split}_{topk}": 20 * e} if topk else {}  # noqa: E731
    hist = [{"epoch": e, "lr": 1e-3 / e, "train_loss": 1 / e, "train_top1": 10 * e, **extra("train", e),
             "val_loss": 1.1 / e, "val_top1": 9 * e, **extra("val", e)} for e in (1, 2, 3)]
    path = plot_training_curves(hist, tmp_path / "curves.png")
    assert path.stat().st_size > 1000
    shown = [s for s in labels if s and "top" in s]
    assert shown == ["train top1"] + ([f"train {topk}"] if topk else []) + ["val top1"] + (
        [f"val {topk}"] if topk else [])


def test_topk_is_named_by_its_k_and_reported_only_below_the_class_count():
    assert [topk_of(k) for k in (2, 3, 4, 5, 6, 400)] == [None, 2, 3, 4, 5, 5]
    for classes, key in ((2, None), (4, "top3"), (6, "top5")):
        m = ClassificationMeter(classes)
        m.update(torch.eye(classes)[:2] * 5, torch.tensor([0, 1]), loss=0.5)
        out = m.compute()
        assert [k for k in out if k.startswith("top") and k != "top1"] == ([key] if key else [])
    line = epoch_line({"epoch": 1, "lr": 1e-3, "train_loss": 0.7, "train_top1": 50.0, "val_loss": 0.7,
                       "val_top1": 66.7, "val_single_prediction": "street", "time_s": 1.0}, True)
    assert "top5" not in line and "top2" not in line
    assert "[every val video predicted 'street': val top-1 = that class's share]" in line
    old = {"epoch": 1, "lr": 1e-3, "train_loss": 0.7, "train_top1": 50.0, "train_top5": 100.0, "val_loss": 0.7,
           "val_top1": 50.0, "val_top5": 100.0, "time_s": 1.0}  # a metrics.json written before
    assert "top5 100.0% | val loss 0.7000 top1  50.0% top5 100.0%" in epoch_line(old, False)


def test_single_prediction():
    m = ClassificationMeter(3)
    m.update(torch.tensor([[0, 5.0, 0], [0, 4.0, 1]]), torch.tensor([0, 1]), loss=0.5)
    assert m.single_prediction() == 1
    m = ClassificationMeter(3)
    m.update(torch.tensor([[0, 5.0, 0], [4.0, 0, 1]]), torch.tensor([0, 1]), loss=0.5)
    assert m.single_prediction() is None
