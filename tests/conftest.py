"""Fixtures made once per session: a tiny motion-video dataset, a tiny model and a trained tiny
run. They are shared: a test that changes one copies it first (``shutil.copytree``)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import vidzoo
from helpers import MODEL, TINY, TINY_SET, train_argv
from vidzoo.cli import main
from vidzoo.data import make_motion_dataset


@pytest.fixture(scope="session", autouse=True)
def _vidzoo_cache(tmp_path_factory):
    """vidzoo's per-machine cache in a session folder, not the user's, holding a CPU bf16 probe that found
    bf16 no faster than fp32: ``--amp auto`` runs fp32 on every CPU, as the tests' figures expect whether
    or not the machine has AMX. Tests of the choice itself inject their own flags and probe
    (tests/test_precision.py)."""
    from vidzoo.engine.precision import PROBE_CACHE, probe_cache_key
    cache = tmp_path_factory.mktemp("vidzoo_cache")
    even = {"fp32_ms": 1.0, "bf16_ms": 1.0, "threads": 1}
    (cache / PROBE_CACHE).write_text(json.dumps({"version": 1, "probes": {probe_cache_key(): even}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDZOO_CACHE", str(cache))
        yield


@pytest.fixture(scope="session")
def motion(tmp_path_factory) -> Path:
    """root/{train,val}/{left,right}/NNNN.mp4: 3 training and 2 validation videos per class, 8 frames
    of 16x16 (shared: copy before changing)."""
    root = tmp_path_factory.mktemp("motion")
    make_motion_dataset(root, num_classes=2, videos_per_class=3, num_frames=8, size=(16, 16), split="train")
    make_motion_dataset(root, num_classes=2, videos_per_class=2, num_frames=8, size=(16, 16), split="val")
    return root


@pytest.fixture(scope="session")
def trained_run(motion, tmp_path_factory) -> Path:
    """A run folder of ``vidzoo train`` (2 epochs of the tiny model on ``motion``; shared: copy before
    changing)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(train_argv(motion, out, *TINY_SET, epochs=2)) == 0
    return out


@pytest.fixture(scope="session")
def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=16, **TINY)
    m.pretrained_cfg = dict(m.pretrained_cfg, label_names=["left", "right"], sampling="uniform")
    return m.eval()


@pytest.fixture
def tiny_model(_tiny_model) -> torch.nn.Module:
    """A tiny random model for ``motion`` clips (2 classes left/right, 4 frames of 16x16, uniform
    sampling), in eval mode; each test gets its own copy."""
    return copy.deepcopy(_tiny_model)


@pytest.fixture
def cli(capsys):
    """``cli(*argv)``: the command in this process; returns ``code``, ``out`` and ``err``."""
    def run(*argv) -> SimpleNamespace:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return SimpleNamespace(code=code, out=captured.out, err=captured.err)
    return run

