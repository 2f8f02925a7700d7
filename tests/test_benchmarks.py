"""Smoke tests of the benchmark scripts: each runs on a tiny configuration, in process, and writes
its CSV / Markdown with sane numbers. Speed is never asserted (DESIGN.md: scripts measure it)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from benchmarks import _common as C

TINY = ["num_frames=2", "img_size=32", "depth=1"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------ helpers
def test_time_interleaved_alternates():
    order = []
    C.time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, "cpu", warmup=1, runs=2)
    assert order == ["a", "b"] * 3


def test_peak_memory_sees_an_allocation():
    if not C.reset_peak_rss():
        pytest.skip("/proc/self/clear_refs not writable here")
    with C.PeakMemory("cpu") as mem:
        a = torch.ones(64 * 2 ** 20 // 4)  # 64 MiB, touched
        del a
    assert mem.peak - mem.start >= 60 * 2 ** 20
    assert mem.added == mem.peak - mem.start


def test_current_memory_counts_only_live_memory():
    """After tensors are freed, current_memory() drops back although glibc kept them in its heap."""
    if C.rss_bytes() is None:
        pytest.skip("no /proc/self/status here")
    big = torch.ones(32 * 2 ** 20 // 4)
    del big  # glibc raises its mmap threshold past 1 MiB: the blocks below come from the heap
    base = C.current_memory("cpu")
    blocks, keep = [], []
    for _ in range(200):
        blocks.append(torch.ones(2 ** 20 // 4))
        keep.append(torch.ones(16))  # live between the blocks: the heap top stays in use
    assert C.rss_bytes() - base >= 150 * 2 ** 20
    del blocks
    assert C.current_memory("cpu") - base < 30 * 2 ** 20


# ------------------------------------------------------------------------------------ scripts
def test_bench_models_smoke(tmp_path):
    from benchmarks import bench_models
    out = tmp_path / "bm"
    rows = bench_models.main(["--models", "timesformer_divided_tiny_patch16_224",
                              "--set", *TINY, "--warmup", "1", "--runs", "1", "--grad-ckpt", "--profile",
                              "--no-isolate", "--matmul-n", "256", "--out", str(out)])
    assert len(rows) == 1
    md = out.with_suffix(".md").read_text()
    assert "| timesformer_divided_tiny_patch16_224 |" in md and "Roofline" in md
    for r in _rows(out.with_suffix(".csv")):
        assert float(r["params_m"]) > 0 and float(r["gmacs"]) > 0
        assert float(r["train_gflops_counted"]) > 2.5 * float(r["gflops"])  # backward ~ 2x forward (no input grad)
        for k in ("infer_ms", "train_ms", "ckpt_ms", "infer_peak_gb", "train_peak_gb", "ckpt_peak_gb"):
            assert math.isfinite(float(r[k])) and float(r[k]) > 0, k
        assert 0 < float(r["infer_roofline"]) < 5 and 0 < float(r["train_roofline"]) < 5
        assert 0 < float(r["math_share"]) <= 1
        # memory between steps (runtime + weights + AdamW state) plus what a step adds = the peak
        for m in ("train", "ckpt"):
            assert float(r[f"{m}_state_gb"]) > 0 and float(r[f"{m}_step_gb"]) >= 0
            assert float(r[f"{m}_state_gb"]) + float(r[f"{m}_step_gb"]) == pytest.approx(float(r[f"{m}_peak_gb"]),
                                                                                        abs=1e-6)
        assert math.isfinite(float(r["ckpt_step_ratio"]))


def test_matmul_rate_reports_the_best_shape(monkeypatch):
    monkeypatch.setattr(C, "CPU_MATMUL_SHAPES", ((64, 64, 64), (256, 128, 256)))
    r = C.matmul_rate("cpu", runs=3)
    assert set(r["matmul_rates"]) == {"64x64x64", "256x128x256"}
    assert r["matmul_tflops"] == max(r["matmul_rates"].values()) > 0
    assert r["matmul_rates"][r["matmul_shape"]] == r["matmul_tflops"]


def test_compare_hf_smoke(tmp_path):
    pytest.importorskip("transformers")
    from benchmarks import compare_hf
    tiny = ["num_frames=4", "img_size=32", "depth=1", "embed_dim=32", "num_heads=2", "num_classes=7"]
    out = tmp_path / "hf"
    rows = compare_hf.main(["--pairs", "vivit", "timesformer_space", "--infer-set", *tiny,
                            "--train-set", *tiny, "--warmup", "0", "--runs", "1", "--mem-steps", "1", "--no-isolate", "--matmul-n", "256",
                            "--out", str(out)])
    assert [(r["pair"], r["mode"]) for r in rows] == [(p, m) for p in ("vivit", "timesformer_space")
                                                      for m in ("infer", "train")]
    for r in rows:
        assert r["parity_max_abs_diff"] < 1e-4
        assert r["speedup"] > 0 and r["vidzoo_peak_gb"] > 0 and r["hf_peak_gb"] > 0
        assert r["step_ratio"] is None or r["step_ratio"] >= 0
        assert r["vidzoo_gmacs_per_view"] == pytest.approx(r["hf_gmacs_per_view"], rel=0.02)
    assert rows[0]["hf_attn"] == "sdpa" and rows[2]["hf_attn"].startswith("eager")
    assert "HF/vidzoo time" in out.with_suffix(".md").read_text()


def test_compare_hf_bf16_agreement(tmp_path):
    pytest.importorskip("transformers")
    from benchmarks import compare_hf
    tiny = ["num_frames=4", "img_size=32", "depth=1", "embed_dim=32", "num_heads=2", "num_classes=7"]
    rows = compare_hf.main(["--pairs", "timesformer", "--infer-set", *tiny, "--dtype", "bf16", "--no-train",
                            "--no-memory", "--warmup", "0", "--runs", "1", "--matmul-n", "128", "--agree-clips", "3",
                            "--out", str(tmp_path / "hf")])
    (r,) = rows
    assert r["dtype"] == "bf16" and r["agree_clips"] == 3
    for side in ("vidzoo", "hf"):
        assert r[f"{side}_low_outputs"] == 3 and 0.0 <= r[f"{side}_low_top1_agree"] <= 1.0
        assert 0.0 < r[f"{side}_low_max_abs_diff"] < 0.5  # bf16 differs from fp32, but not wildly
        assert r[f"{side}_agree_fp32_ms"] > 0 and r[f"{side}_agree_low_ms"] > 0
    assert "top-1 = fp32" in (tmp_path / "hf").with_suffix(".md").read_text()


def test_compare_hf_parity_catches_a_wrong_weight(tmp_path):
    pytest.importorskip("transformers")
    from benchmarks import compare_hf
    hf, _ = compare_hf.build_hf("timesformer", dict(num_frames=2, img_size=32, depth=1, embed_dim=32, num_heads=2),
                                "cpu")
    vz, _ = compare_hf.build_vidzoo("timesformer", hf, "cpu")
    x = torch.randn(1, 3, 2, 32, 32)
    assert compare_hf.check_parity(vz, hf, x, 1e-4)["parity_max_abs_diff"] < 1e-4
    with torch.no_grad():
        vz.blocks[0].temporal_fc.weight.add_(0.1 * torch.randn_like(vz.blocks[0].temporal_fc.weight))
    with pytest.raises(AssertionError, match="parity failed"):
        compare_hf.check_parity(vz, hf, x, 1e-4)


def test_accuracy_smoke(tmp_path):
    from benchmarks import accuracy
    npz = tmp_path / "organ.npz"
    rng = np.random.default_rng(0)
    vols = rng.integers(0, 255, size=(4, 28, 28, 28), dtype=np.uint8)
    np.savez(npz, train_images=vols, train_labels=np.array([[0], [1], [2], [1]]), val_images=vols[:2],
             val_labels=np.array([[0], [1]]), test_images=vols[:2], test_labels=np.array([[0], [2]]))
    out = tmp_path / "acc"
    rows = accuracy.main(["--attention", "joint", "divided", "--tokenizer", "uniform", "tubelet", "--data-root",
                          str(tmp_path / "motion"), "--classes", "2", "--train-per-class", "2", "--val-per-class", "1",
                          "--video-frames", "4", "--size", "16", "--num-frames", "4", "--patch-size", "8",
                          "--embed-dim", "16", "--depth", "1", "--heads", "2", "--epochs", "1", "--organmnist", str(npz),
                          "--organ-epochs", "1", "--jobs", "1", "--out", str(out)])
    assert {(r["dataset"], r["tokenizer"], r["attention"]) for r in rows} == {
        (d, t, a) for d in ("motion", "organmnist3d") for t in ("uniform", "tubelet") for a in ("joint", "divided")}
    for r in rows:
        assert 0.0 <= r["top1"] <= 1.0 and r["steps"] >= 1
    md = out.with_suffix(".md").read_text()
    assert "| joint |" in md and "OrganMNIST3D" in md


def test_bench_models_isolated_memory_worker(tmp_path):
    """Default path: timing and memory in fresh subprocesses, memory with glibc's mmap threshold set."""
    from benchmarks import bench_models
    rows = bench_models.main(["--models", "timesformer_divided_tiny_patch16_224", "--set", *TINY, "--warmup", "1",
                              "--runs", "1", "--no-train", "--matmul-n", "256", "--out", str(tmp_path / "iso")])
    r = rows[0]
    assert "MALLOC_MMAP_THRESHOLD_=65536" in r["mem_method"]
    assert r["infer_peak_gb"] >= r["infer_state_gb"] > 0 and r["infer_ms"] > 0


def test_loader_plans_workers_from_a_gpu_check_result(tmp_path):
    """benchmarks/loader.py reads the GPU's training speed from a gpu_check.json when there is one,
    else from the model's GMACs at the stated utilisation."""
    from benchmarks import loader
    from benchmarks.gpu_check import DATASHEET_BF16_TFLOPS
    cells = [{"recipe": r, "video": v, "pipeline": "train", "scaled": s, "clips_per_s": c}
             for r, v, s, c in [("16x4", "source", "no", 0.5), ("16x4", "source", "yes", 1.0),
                                ("16x4", "prepared", "yes", 10.0)]]
    report = {"tiny": False, "sections": [{"section": "hf_speed", "rows": [
        {"pair": "videomae", "mode": "train", "input": "8x3x16x224x224", "vidzoo_ms": 40.0,
         "vidzoo_model": "videomae_joint_base_patch16x2_224"},
        {"pair": "videomae", "mode": "infer", "input": "8x3x16x224x224", "vidzoo_ms": 10.0,
         "vidzoo_model": "videomae_joint_base_patch16x2_224"}]}]}
    (tmp_path / "gpu_check.json").write_text(json.dumps(report))
    rows, source = loader.planning_rows(cells, 0.4, tmp_path / "gpu_check.json")
    assert "gpu_check.py" in source and [r["gpu_clips_per_s"] for r in rows] == [200.0] * 3  # 8 clips / 40 ms
    assert [r["workers_needed"] for r in rows] == [400, 200, 20]
    report["tiny"] = True  # a dry run's figures are not used
    (tmp_path / "gpu_check.json").write_text(json.dumps(report))
    rows, source = loader.planning_rows(cells, 0.4, tmp_path / "gpu_check.json")
    gmacs = loader.gmacs_of("videomae_joint_base_patch16x2_224")
    want = 0.4 * DATASHEET_BF16_TFLOPS["H200"] * 1e12 / (6 * gmacs * 1e9)
    assert "GMACs" in source and rows[0]["gpu_clips_per_s"] == pytest.approx(want)
    assert rows[2]["workers_needed"] == -(-want // 10)


def test_probe_smoke(tmp_path):
    """benchmarks/probe.py on a tiny configuration: epoch times of full training and of a cached probe on
    the demo data, and the transfer arms on the demo data and on a folder standing for the real videos."""
    from benchmarks import probe
    from vidzoo.data import make_motion_dataset
    make_motion_dataset(tmp_path / "real" / "arrow", 2, 3, 16, (32, 32), seed=5)
    tiny = ["--work", str(tmp_path / "w"), "--train-per-class", "2", "--val-per-class", "1", "--little-per-class", "1",
            "--backbone-per-class", "2", "--backbone-epochs", "1", "--ft-epochs", "2", "--probe-epochs", "2",
            "--runs", "1", "--seeds", "0", "--defaults-seeds", "--grid", "lr=1e-2,1e-3", "--threads", "1"]
    rows = probe.main(["--parts", "epoch", "transfer", "--datasets", "demo", *tiny, "--out", str(tmp_path / "a")])
    epoch = [r for r in rows if r["part"] == "epoch"]
    assert [r["kind"] for r in epoch] == ["full_first", "full_later", "probe_first", "probe_cached"]
    assert all(r["median_s"] > 0 and r["best_s"] <= r["median_s"] for r in epoch)
    assert epoch[1]["epochs_timed"] == 1 and epoch[3]["epochs_timed"] == 3  # epochs 2-4 of the probe
    arms = [r["arm"] for r in rows if r["part"] == "transfer"]
    assert arms[:2] == ["probe over the diagonal-motion backbone", "probe over a random init"]
    assert arms[2].startswith("full training from scratch")
    assert (tmp_path / "w" / "backbone_diag" / "model" / "config.json").is_file()
    rows = probe.main(["--parts", "transfer", "--datasets", "arrow", "--real", str(tmp_path / "real"), *tiny,
                       "--out", str(tmp_path / "b")])
    for r in rows:
        assert 0 <= r["best_val_top1"] <= 100 and r["val_clips"] == 2 and isinstance(r["majority_only"], bool)
    md = (tmp_path / "b").with_suffix(".md").read_text()
    assert "| arrow | 0 | probe over the diagonal-motion backbone |" in md


def test_small_data_smoke(tmp_path):
    """The small-data comparison and the per-epoch cost of each augmentation, on a tiny demo set."""
    from benchmarks import small_data
    common = ["--datasets", "demo", "--demo-per-class", "2", "--demo-val-per-class", "1", "--work", str(tmp_path)]
    report = small_data.main([*common, "--seeds", "0", "--epochs", "1", "--arms", "recipe", "defaults",
                              "--arm", 'no_ema={"ema": null, "ema_warmup": false}', "--out", str(tmp_path / "acc")])
    assert [(r["arm"], r["runs"], r["train_videos"], r["val_videos"]) for r in report["summary"]] == \
        [("recipe", 1, 8, 4), ("defaults", 1, 8, 4), ("no_ema", 1, 8, 4)]
    for row in report["runs"]:
        assert row["epochs"] == 1  # every arm as long
        for which in ("last", "best", "train"):
            assert 0 <= row[f"{which}_top1"] <= 100 and 1 <= row[f"{which}_classes_predicted"] <= 4
    # the defaults arm takes the recipe's model and clip only (and no flips on the direction classes)
    assert set(report["arms"]["defaults"]) <= set(small_data.MODEL_KEYS) | {"hflip"} and report["arms"]["recipe"]["ema"]
    md = (tmp_path / "acc.md").read_text()
    # optimizer updates: 8 training videos in batches of the recipe's size (the defaults': 8 videos, one update)
    per_epoch = -(-8 // report["arms"]["recipe"]["batch_size"])
    assert [r["updates"] for r in report["runs"]] == [per_epoch, 1, per_epoch]
    assert f"| demo | recipe | 1 | 1 ({per_epoch}) | 8 / 4 |" in md and "small_data.py --datasets demo" in md
    cost = small_data.main([*common, "--cost", "--cost-epochs", "1", "--cost-runs", "1"])["cost_s_per_epoch"]
    assert set(cost) == set(small_data.COST_ARMS) | {"all of small_data_cpu"}
    assert all(len(t) == 1 and t[0] > 0 for t in cost.values())
