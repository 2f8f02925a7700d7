"""benchmarks/gpu_check.py: the CPU dry run of the prepared GPU check (so the script never rots before a
GPU is lent), its section guard, and that its comparisons can fail."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vidzoo
from benchmarks import gpu_check as G

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_dry_run_without_pyav(tmp_path):
    """The documented dry run, as a command, on a Python where PyAV cannot be imported (the GPU image has
    none): every section present and passed, every attention x tokenizer checked in fp32 and bf16."""
    pytest.importorskip("transformers")
    blocker = tmp_path / "noav" / "av"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyAV blocked: the GPU image has none')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), str(REPO), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny", "--out", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    report = json.loads((out / "gpu_check.json").read_text())
    sections = {s["section"]: s for s in report["sections"]}
    failed = {k: s.get("error") or s.get("failed_checks") for k, s in sections.items() if s["status"] != "passed"}
    assert r.returncode == 0 and not failed, (failed, r.stdout[-3000:], r.stderr[-3000:])
    assert list(sections) == list(G.SECTIONS) and report["status"] == "passed"
    assert sections["env"]["info"]["av"].startswith("not installed")
    assert wall < 900

    corr = sections["correctness"]["checks"]
    combos = {(c["attention"], c["tokenizer"], c["dtype"]) for c in corr}
    assert combos == {(a, t, d) for a in vidzoo.list_attention() for t in vidzoo.list_tokenizers() for d in ("fp32", "bf16")}
    for c in corr:
        assert c["status"] == "passed" and c["out_rel"] <= c["tol"] and c["grad_rel"] <= c["tol"]
        if c["dtype"] == "bf16":  # autocast really ran: bf16 logits, and an error of bf16's size, not 0
            assert c["out_dtype"] == "bfloat16" and 1e-5 < c["out_rel"]

    kernels = sections["sdpa_kernels"]
    assert any("flash" in r.get("bf16_backends", []) for r in kernels["rows"])  # CPU flash SDPA seen by the profiler
    assert any(isinstance(r.get("FLASH_ATTENTION"), float) for r in kernels["forced"])

    ckpt = sections["grad_checkpointing"]["checks"]
    assert len(ckpt) == 2 * len(vidzoo.list_attention())
    assert all(c["block_calls_ckpt"] == 2 * c["block_calls_plain"] > 0 for c in ckpt)

    hf = sections["hf_speed"]
    assert {(x["pair"], x["mode"]) for x in hf["rows"]} >= {(p, m) for p in ("timesformer", "vivit") for m in ("infer", "train")}
    assert all(x["parity_max_abs_diff"] < 1e-4 and x["dtype"] == "bf16" and x["vidzoo_ms"] > 0 for x in hf["rows"])

    tr = sections["torchrun"]
    assert tr["runs"]["cli"]["returncode"] == 0 and tr["runs"]["process_group"]["result"]["backend"] == "gloo"
    assert {c["check"] for c in tr["checks"]} >= {f"DDP over gloo: {a}" for a in vidzoo.list_attention()}

    comp = sections["compile"]
    assert comp["infer"]["rel_err_vs_eager"] <= G.TOL_BF16 and comp["infer"]["compile_s"] > 0

    md = (out / "gpu_check.md").read_text()
    for heading in ("## Correctness against CPU fp32", "## SDPA kernels", "## Gradient checkpointing",
                    "## vidzoo vs HF transformers", "## torchrun", "## torch.compile"):
        assert heading in md
    assert "overall: **passed**" in md
    log = (out / "gpu_check.log").read_text()
    assert "[gpu_check] passed" in log and "== gpu_check summary ==" in log
    assert "== gpu_check summary ==" in r.stdout[-3000:]  # last: the part of the output a device call returns


def test_failing_or_overrunning_section_is_recorded_and_the_rest_run(tmp_path, monkeypatch):
    def boom(ctx, deadline):
        raise RuntimeError("kaputt")

    def slow(ctx, deadline):
        G.partial(ctx, "checks").append(G.check("measured before the stop", True))
        time.sleep(30)

    def bad_check(ctx, deadline):
        return {"checks": [G.check("a wrong number", False, value=1.0)]}

    def fine(ctx, deadline):
        return {"checks": [G.check("ok", True)]}
    monkeypatch.setattr(G, "SECTION_FNS", {"env": boom, "correctness": slow, "sdpa_kernels": bad_check,
                                           "grad_checkpointing": fine})
    monkeypatch.setattr(G, "LIMITS_TINY", dict(G.LIMITS_TINY, correctness=1))
    monkeypatch.setattr(G.signal, "setitimer", _fast_itimer(G.signal.setitimer))
    rc = G.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--budget", "10",
                 "--sections", "env", "correctness", "sdpa_kernels", "grad_checkpointing"])
    assert rc == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    s = {x["section"]: x for x in report["sections"]}
    assert s["env"]["status"] == "failed" and "kaputt" in s["env"]["error"]
    assert s["correctness"]["status"] == "failed" and "limit" in s["correctness"]["error"]
    assert s["correctness"]["wall_s"] < 10
    assert [c["check"] for c in s["correctness"]["checks"]] == ["measured before the stop"]  # kept
    assert s["sdpa_kernels"]["failed_checks"] == ["a wrong number"]
    assert s["grad_checkpointing"]["status"] == "passed"
    assert report["status"] == "failed"


def _fast_itimer(real):
    """The hard stop fires at the limit + 5 s; in this test at the limit itself."""
    def setitimer(which, seconds, *a):
        return real(which, max(seconds - 5, 0) if seconds > 5 else seconds, *a)
    return setitimer


def test_correctness_fails_when_the_device_copy_differs(tmp_path, monkeypatch):
    """The comparison is sensitive: a 10% change of one weight on the 'device' side fails the check."""
    monkeypatch.setattr(vidzoo, "list_attention", lambda: ["divided"])
    monkeypatch.setattr(vidzoo, "list_tokenizers", lambda: ["uniform"])

    class Perturb:
        @staticmethod
        def deepcopy(m):
            m = copy.deepcopy(m)
            with torch.no_grad():
                m.blocks[0].temporal_attn.qkv.weight.mul_(1.1)  # the temporal branch (zero-initialised upstream)
            return m
    monkeypatch.setattr(G, "copy", Perturb)
    res = G.section_correctness({"device": "cpu", "tiny": True, "log": lambda *a: None}, time.perf_counter() + 60)
    st = {c["dtype"]: c for c in res["checks"]}
    assert st["fp32"]["status"] == "failed" and st["fp32"]["grad_rel"] > G.TOL_FP32


def test_error_measures():
    ref = torch.randn(100, dtype=torch.float64)
    assert G.rel_err(ref.clone(), ref) == 0
    assert G.rel_err(ref * 1.1, ref) == pytest.approx(0.1)
    assert G.rel_err(torch.full_like(ref, float("nan")), ref) == float("inf")
    g = {"a": torch.ones(10), "b": torch.full((10,), 1e-6)}
    e = G.grad_errors({"a": torch.ones(10), "b": torch.zeros(10)}, g)
    assert e["grad_rel"] < 1e-5 and e["grad_worst_rel"] < 1e-4  # a negligible tensor's error is floored
    e = G.grad_errors({"a": torch.ones(10) * 2, "b": g["b"]}, g)
    assert e["grad_worst"] == "a" and e["grad_worst_rel"] == pytest.approx(1.0)
    assert G.grad_errors({"a": g["a"]}, g)["grad_rel"] == float("inf")  # a missing gradient fails


def test_sdpa_backend_names():
    assert G.sdpa_backends_seen(["aten::_scaled_dot_product_flash_attention", "aten::scaled_dot_product_attention"]) \
        == ["flash"]
    assert G.sdpa_backends_seen(["aten::_scaled_dot_product_efficient_attention", "aten::_efficient_attention_backward"]) \
        == ["efficient"]
    assert G.sdpa_backends_seen(["aten::_scaled_dot_product_cudnn_attention"]) == ["cudnn"]
    assert G.sdpa_backends_seen(["aten::_scaled_dot_product_attention_math", "aten::bmm"]) == ["math"]
    assert G.sdpa_backends_seen(["aten::bmm", "aten::_softmax"]) == []
