"""--amp: what each mode means on a device; ``auto`` on a CPU decided from the CPU's flags, a cached speed
probe and a probe of a small model itself (inputs injected: a cpuinfo file, a cache entry, the model
probe's size limit and threshold), said in one line and recorded in the run."""
from __future__ import annotations

import json

import pytest
import torch

import vidzoo
from helpers import MODEL, TINY, TINY_SET, train_argv
from vidzoo.engine import precision as P
from vidzoo.engine.errors import UserError

CPU = torch.device("cpu")
FAST, SLOW = P.Bf16Probe(fp32_ms=6.0, bf16_ms=2.0, threads=1), P.Bf16Probe(fp32_ms=6.0, bf16_ms=5.5, threads=1)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """``machine(flags)``: a CPU with these cpuinfo flags (None: no /proc/cpuinfo) and an empty vidzoo
    cache; returns the cache file."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VIDZOO_CACHE", str(cache))

    def make(flags: str | None):
        info = tmp_path / "cpuinfo"
        if flags is not None:
            info.write_text(f"processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n\n"
                            f"processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n")
        monkeypatch.setattr(P, "CPUINFO", info)
        return cache / P.PROBE_CACHE
    return make


def seed_probe(path, probe: P.Bf16Probe) -> None:
    """A cache holding ``probe`` for this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"fp32_ms": probe.fp32_ms, "bf16_ms": probe.bf16_ms, "threads": probe.threads}
    path.write_text(json.dumps({"version": 1, "probes": {P.probe_cache_key(): entry}}))


def test_cpu_bf16_decision_from_flags_and_probe():
    yes, why = P.decide_cpu_bf16({"fpu", "avx512f", "amx_bf16", "avx512_bf16"}, FAST)
    assert yes and "amx_bf16, avx512_bf16" in why and "3.00x" in why
    assert P.decide_cpu_bf16({"fp", "asimd", "bf16"}, FAST)[0]  # Arm's BF16 extension
    no, why = P.decide_cpu_bf16({"avx512_bf16"}, SLOW)
    assert not no and "1.09x" in why and f"{P.MIN_PROBE_SPEEDUP}x" in why
    edge = P.Bf16Probe(fp32_ms=P.MIN_PROBE_SPEEDUP, bf16_ms=1.0, threads=1)
    assert P.decide_cpu_bf16({"amx_bf16"}, edge)[0]
    no, why = P.decide_cpu_bf16({"avx2", "fma", "avx512f"}, FAST)  # no native bf16: the probe does not matter
    assert not no and "emulated" in why
    assert not P.decide_cpu_bf16(None, FAST)[0] and "unknown" in P.decide_cpu_bf16(None, FAST)[1]
    assert not P.decide_cpu_bf16({"amx_bf16"}, None)[0]


def test_a_small_models_own_probe_has_the_last_word():
    step = P.Bf16Probe(fp32_ms=22.0, bf16_ms=35.0, threads=1, what="training step, batch 16")
    no, why = P.decide_cpu_bf16({"amx_bf16"}, FAST, step)
    assert not no and why.endswith("but 0.63x on the model's training step, batch 16 (bf16 needs 1.1x)")
    yes, why = P.decide_cpu_bf16({"amx_bf16"}, FAST, P.Bf16Probe(6.0, 4.0, 1, "forward, batch 3"))
    assert yes and why.endswith("and 1.50x on the model's forward, batch 3")
    assert not P.decide_cpu_bf16({"amx_bf16"}, SLOW, P.Bf16Probe(6.0, 1.0, 1, "forward, batch 1"))[0]


def test_the_model_probe_leaves_the_model_as_it_was(monkeypatch):
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=16, **TINY).eval()
    model.head.weight.grad = torch.ones_like(model.head.weight)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    probe = P.probe_model(model, batch=4, train=True)
    assert probe.what == "training step, batch 4" and probe.fp32_ms > 0 and probe.bf16_ms > 0
    assert not model.training and torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "head.weight")
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert model.grid_size == (2, 2, 2)
    per_clip = 8 * sum(p.numel() for p in model.parameters())  # multiply-adds of a clip ~ tokens x parameters
    monkeypatch.setattr(P, "MODEL_PROBE_MACS", 2.5 * per_clip)  # the batch shrinks to stay under the limit
    assert P.probe_model(model, batch=4).what == "forward, batch 2"
    monkeypatch.setattr(P, "MODEL_PROBE_MACS", 0.5 * per_clip)  # one clip is too much: not probed
    assert P.probe_model(model, batch=4) is None
    assert P.probe_model(torch.nn.Linear(3, 3)) is None  # not a video model


def test_cpu_flags_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse2 avx512_bf16 amx_tile\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16\nCPU part\t: 0xd40\n")
    assert P.cpu_flags(x86) >= {"avx512_bf16", "amx_tile"} and P.cpu_model_name(x86) == "Some Xeon"
    assert "bf16" in P.cpu_flags(arm)
    assert P.cpu_flags(tmp_path / "missing") is None


def test_auto_probes_once_then_reads_the_cache(machine, capsys):
    cache = machine("fpu avx2 avx512f avx512_bf16 amx_bf16")
    first = P.choose_amp("auto", CPU)
    assert first.reason.endswith("; block probe measured now") and first.probe is not None
    entry = json.loads(cache.read_text())["probes"][P.probe_cache_key()]
    assert entry["fp32_ms"] == first.probe.fp32_ms and entry["threads"] == 1
    assert P.probe_cache_key().startswith("Test CPU 9000 | torch ")
    seed_probe(cache, SLOW)  # what the cache says is what decides: no new probe
    said = []
    again = P.choose_amp("auto", CPU, say=said.append)
    assert again.dtype is None and again.probe == SLOW and again.reason.endswith("; block probe cached")
    assert said == []  # full precision needs no note (train logs it, eval records it)
    seed_probe(cache, FAST)
    chosen = P.choose_amp("auto", CPU, say=said.append)
    assert chosen.dtype is torch.bfloat16 and said == [chosen.line()]
    assert said[0].startswith("precision: bf16 autocast (--amp auto: the CPU has amx_bf16, avx512_bf16 and bf16 ran 3.00x")
    assert chosen.record() == {"amp": "auto", "dtype": "bf16", "reason": chosen.reason,
                               "probe": {"fp32_ms": 6.0, "bf16_ms": 2.0, "threads": 1, "what": "probe block",
                                         "speedup": 3.0}}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"version": 1, "probes": {"KEY": {"fp32_ms": -1}}}'])
def test_a_corrupt_cache_is_ignored_and_rewritten(machine, content):
    cache = machine("avx512_bf16")
    cache.parent.mkdir(parents=True)
    cache.write_text(content.replace("KEY", P.probe_cache_key()))
    choice = P.choose_amp("auto", CPU)
    assert choice.reason.endswith("; block probe measured now")
    probes = json.loads(cache.read_text())["probes"]
    assert list(probes) == [P.probe_cache_key()] and probes[P.probe_cache_key()]["fp32_ms"] > 0
    assert [p.name for p in cache.parent.iterdir()] == [P.PROBE_CACHE]  # no temporary file left


def test_an_unwritable_cache_still_decides(machine, tmp_path, monkeypatch):
    machine("amx_bf16")
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("VIDZOO_CACHE", str(tmp_path / "a_file"))
    assert "block probe measured now, not cached (" in P.choose_amp("auto", CPU).reason


def test_without_native_bf16_auto_keeps_fp32_and_does_not_probe(machine):
    for flags in ("fpu sse2 avx2 fma f16c", None):
        cache = machine(flags)
        choice = P.choose_amp("auto", CPU)
        assert choice.dtype is None and choice.probe is None and not cache.exists()
        assert choice.line().startswith("precision: fp32 (--amp auto: ")


def test_explicit_modes_mean_what_they_say(machine):
    machine("fpu avx2")
    said = []
    assert P.choose_amp("none", CPU, say=said.append).dtype is None
    assert P.choose_amp("bf16", CPU, say=said.append).dtype is torch.bfloat16  # forced, even emulated
    assert said == []  # only auto's choice is explained
    with pytest.raises(UserError, match="--amp fp16 needs a CUDA device"):
        P.choose_amp("fp16", CPU)
    with pytest.raises(UserError, match="--amp must be one of auto, bf16, fp16, none, got 'fp8'"):
        P.choose_amp("fp8", CPU)


def test_the_probe_is_quick_and_leaves_rng_and_threads_alone():
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    probe = P.run_bf16_probe()
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert probe.threads == 1 and probe.fp32_ms > 0 and probe.bf16_ms > 0


def test_train_and_eval_say_and_record_the_choice(machine, motion, tmp_path, cli, monkeypatch):
    """The run records what auto chose and why: bf16 on a CPU with native bf16 whose probe says faster
    (the model taken as too large for its own probe), fp32 where the model's own probe says slower, and
    fp32 on a CPU without native bf16."""
    seed_probe(machine("avx512f avx512_bf16"), FAST)
    monkeypatch.setattr(P, "MODEL_PROBE_MACS", 0)
    out = tmp_path / "bf16"
    r = cli(*train_argv(motion, out, *TINY_SET))
    assert r.code == 0, r.err
    rec = json.loads((out / "train_config.json").read_text())["precision"]
    assert rec["amp"] == "auto" and rec["dtype"] == "bf16" and "avx512_bf16" in rec["reason"]
    log = (out / "train.log").read_text()
    assert "precision: bf16 autocast (--amp auto: the CPU has avx512_bf16" in log
    assert "training on cpu x 1 process(es), bf16;" in log

    r = cli("eval", "--model", out, "--data", motion / "val", "--output", tmp_path / "ev", "--no-progress")
    assert r.code == 0, r.err
    assert [line for line in r.err.splitlines() if "precision" in line] == [f"vidzoo: {P.choose_amp('auto', CPU).line()}"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["precision"]["dtype"] == "bf16"

    monkeypatch.setattr(P, "MODEL_PROBE_MACS", 1e9)
    monkeypatch.setattr(P, "MIN_MODEL_SPEEDUP", 1e9)  # whatever the model's probe measures is too little
    out = tmp_path / "small"
    assert cli(*train_argv(motion, out, *TINY_SET, batch_size=2)).code == 0
    rec = json.loads((out / "train_config.json").read_text())["precision"]
    assert rec["dtype"] == "fp32" and "on the model's training step, batch 2" in rec["reason"]
    assert rec["model_probe"]["what"] == "training step, batch 2" and rec["probe"]["speedup"] == 3.0

    machine("fpu avx2 fma")
    out = tmp_path / "fp32"
    assert cli(*train_argv(motion, out, *TINY_SET)).code == 0
    rec = json.loads((out / "train_config.json").read_text())["precision"]
    assert rec["dtype"] == "fp32" and "no AMX, AVX512-BF16 or Arm BF16" in rec["reason"]
    assert "training on cpu x 1 process(es), fp32;" in (out / "train.log").read_text()
