"""Constants and helpers shared by the tests (the fixtures are in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "vivit_joint_tiny_patch16x2_224"
TINY = dict(embed_dim=32, depth=1, num_heads=2, patch_size=8)  # model arguments of every tiny model
TINY_SET = ["--set", *(f"{k}={v}" for k, v in TINY.items())]  # the same on the command line
CLIP = ["--num-frames", "4", "--img-size", "16"]  # the motion fixtures' clips: 4 frames of 16x16


def train_argv(data, out, *extra, model: str = MODEL, epochs: int = 1, batch_size: int = 4) -> list[str]:
    """``vidzoo train`` of a tiny model on the motion fixtures, as strings."""
    return [str(a) for a in ("train", "--model", model, "--data", data, "--output", out, "--epochs", epochs,
                             "--batch-size", batch_size, "--lr", 1e-3, *CLIP, "--sampling", "uniform", "--hflip", 0,
                             "--no-progress", "--threads", 1, *extra)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout first on the path, one thread."""
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OMP_NUM_THREADS="1", **extra)


def console_script() -> str:
    """The installed ``vidzoo`` command (``pip install -e .`` puts it beside the interpreter)."""
    path = Path(sys.executable).parent / "vidzoo"
    assert path.is_file(), f"no console script at {path}: install the package (pip install -e .)"
    return str(path)


def run_console(*args, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``vidzoo`` command in a child process (for the few tests about the process itself)."""
    return subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True,
                          env=env or subprocess_env(), timeout=timeout, cwd=REPO)


def run_python(code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -c code args...`` in a fresh interpreter (for what this process, which imported torch
    long ago, cannot show)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env or subprocess_env(), timeout=timeout, cwd=REPO)
