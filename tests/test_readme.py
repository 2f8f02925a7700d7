"""The README's code runs. Its ``bash`` and ``python`` blocks are read from README.md and replayed in
order in one folder holding the files they name (tiny videos in ``my_videos/``, clips, a small npz):

* every command that can run offline runs through the command (in process), cheaply: a command that
  trains gets a tiny model and one epoch (the flags appended below win over the README's), a tag
  that would download weights (``timesformer.k400``) is replaced by its architecture;
* every Python block runs in one namespace (the ONNX snippet on the file the README's ``export`` wrote,
  its answer checked against ``predict``'s; the torch-free clip checked against ``load_clip``);
* the rest is listed in :data:`NOT_RUN` with the reason. A README command or block that is neither run
  nor listed fails the test, so a new one has to be classified here.

The default ``vidzoo demo`` (a few minutes) and the ViViT-B block (a 32x224x224 forward pass) run
under ``pytest -m slow``; the demo runs here with tiny sizes.
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex

import numpy as np
import pytest
import torch

from helpers import REPO, TINY_SET
from vidzoo.cli import main
from vidzoo.data import make_motion_dataset, write_video
from vidzoo.data.synthetic import _render_motion_video

TINY_TRAIN = [*TINY_SET, "--img-size", "32", "--num-frames", "4", "--epochs", "1", "--batch-size", "4",
              "--no-progress", "--threads", "1", "--overwrite"]
TINY_DEMO = ["--epochs", "1", "--videos-per-class", "4", "--val-videos-per-class", "2", "--no-progress"]
# downloaded from the Hub when run: replaced by their architecture
TAGS_WITH_WEIGHTS = re.compile(r"\b(timesformer|videomae|videomae_joint_small_patch16x2_224)\.(k400|v2_k710_distill)\b")

NOT_RUN = {  # README command or first line of a Python block -> why it is not run here
    "python3 -m venv .venv && .venv/bin/pip install -e .": "installs from PyPI",
    "python3 -m venv .venv": "creates an environment (the CPU-only install)",
    ".venv/bin/pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu":
        "installs from PyTorch's index",
    ".venv/bin/pip install -e .": "installs from PyPI",
    'python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && .venv/bin/python -m pytest -q':
        "installs from PyPI, then runs this test suite",
    "torchrun --nproc_per_node 2 -m vidzoo train ...": "elided arguments; DDP is run by tests/test_ddp.py",
    'model = vidzoo.create_model("timesformer.k400", pretrained=True)': "downloads weights from the Hub",
    'vidzoo.save_pretrained(model, "my-model")': "pushes to and loads from the Hub",
}
SLOW = {"import torch, vidzoo", ".venv/bin/vidzoo demo"}


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(bash|python)\n(.*?)```", text, re.S)


def _commands(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(re.sub(r"\s+", " ", line))
    return out


def _workspace(root) -> None:
    """The files the README's commands name."""
    make_motion_dataset(root / "my_videos", num_classes=2, videos_per_class=3, num_frames=16, size=(32, 32))
    make_motion_dataset(root / "my_videos_test", num_classes=2, videos_per_class=1, num_frames=16, size=(32, 32),
                        seed=1)
    rng = np.random.default_rng(0)
    (root / "videos").mkdir()
    for name, frames in (("new_clip.mp4", 16), ("clip1.mp4", 16), ("clip2.mp4", 16), ("videos/long.mp4", 48),
                         ("videos/match.mp4", 40)):
        write_video(root / name, _render_motion_video(rng, (1, 0), frames, 32, 48), fps=8)
    g = np.random.default_rng(0)  # an OrganMNIST3D-like npz: 28^3 volumes, 11 classes
    arrays = {f"{s}_images": g.integers(0, 255, (n, 28, 28, 28), dtype=np.uint8) for s, n in
              (("train", 22), ("val", 11), ("test", 11))}
    arrays.update({f"{s}_labels": np.arange(n)[:, None] % 11 for s, n in (("train", 22), ("val", 11), ("test", 11))})
    np.savez(root / "organmnist3d.npz", **arrays)


def _argv(cmd: str, tiny: bool = True) -> list[str] | None:
    """The ``vidzoo`` arguments a README command runs here (None: not a vidzoo command)."""
    words = shlex.split(cmd)
    if words[0] not in ("vidzoo", ".venv/bin/vidzoo"):
        return None
    argv = [TAGS_WITH_WEIGHTS.sub(r"\1", w) for w in words[1:]]
    if argv[0] == "train":  # the OrganMNIST3D model is small already (1.7M parameters, 28^3 volumes)
        argv += TINY_TRAIN if "organmnist3d.npz" not in argv else TINY_TRAIN[len(TINY_SET) + 4:]
    elif argv[0] == "demo":
        argv += ["--output", "vidzoo-demo-readme"] + (TINY_DEMO if tiny else [])
    return argv


def _run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def _replay(tmp_path, monkeypatch, slow: bool) -> dict[str, object]:
    _workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    seen: dict[str, object] = {"commands": [], "outputs": {}}
    for lang, body in _blocks((REPO / "README.md").read_text()):
        if lang == "python":
            first = re.sub(r"\s+#.*$", "", body.splitlines()[0]).strip()
            if first in NOT_RUN:
                continue
            if first in SLOW and not slow:
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"README.md ({first})", "exec"), namespace)
            seen["outputs"][first] = out.getvalue()
            seen.setdefault("after", {})[first] = dict(namespace)  # what the block defined (later ones may rebind)
            continue
        for cmd in _commands(body):
            if cmd in NOT_RUN:
                continue
            argv = _argv(cmd, tiny=not (slow and cmd in SLOW))
            assert argv is not None, f"README command neither run nor listed in NOT_RUN: {cmd!r}"
            code, out = _run_cli(argv)
            assert code == 0, f"README command failed ({code}): {cmd!r} run as vidzoo {' '.join(argv)}"
            seen["commands"].append(cmd)
            seen["outputs"][cmd] = out
    seen["namespace"] = namespace
    return seen


def test_readme_code_runs(tmp_path, monkeypatch):
    seen = _replay(tmp_path, monkeypatch, slow=False)
    outputs = seen["outputs"]
    # the ONNX snippet (on the file `vidzoo export --model runs/my_videos` wrote) answers what predict answers
    code, predict = _run_cli(["predict", "--model", "runs/my_videos", "new_clip.mp4"])
    label, prob = predict.splitlines()[1].split()[1:3]
    assert outputs["import json, numpy as np, onnxruntime as ort"].split() == [label, prob]
    # the torch-free clip is load_clip's, bit for bit
    ns = seen["namespace"]
    from vidzoo.data import load_clip
    ref = load_clip("new_clip.mp4", ns["cfg"], views="1x1").numpy()
    assert np.array_equal(ns["clip_without_torch"]("new_clip.mp4", ns["cfg"]), ref)
    assert outputs["import vidzoo"] == "['left', 'right'] 5\n"  # the run's classes; stride auto: (16 - 1) // (4 - 1)
    # every README command was either run or listed
    assert len(seen["commands"]) >= 15


@pytest.mark.slow
def test_readme_code_runs_in_full(tmp_path, monkeypatch):
    """The default ``vidzoo demo`` (minutes on a CPU) and the ViViT-B forward pass of the first Python block."""
    seen = _replay(tmp_path, monkeypatch, slow=True)
    block = seen["after"]["import torch, vidzoo"]
    assert tuple(block["logits"].shape) == (1, 10) and block["tiny"](torch.randn(2, 3, 4, 32, 32)).shape == (2, 3)
    assert "done in" in seen["outputs"][".venv/bin/vidzoo demo"]
