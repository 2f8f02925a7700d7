"""Distributed training: ``torchrun`` with 2 CPU processes and the gloo backend, through the CLI."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from vidzoo.data import make_motion_dataset
from vidzoo.engine.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_gloo(tmp_path):
    data = tmp_path / "motion"
    make_motion_dataset(data, num_classes=2, videos_per_class=4, num_frames=8, size=(16, 16), split="train")
    make_motion_dataset(data, num_classes=2, videos_per_class=3, num_frames=8, size=(16, 16), split="val")
    # Each rank gets its own --output so the test can see that rank 1 writes nothing.
    launcher = tmp_path / "launch.py"
    launcher.write_text(textwrap.dedent(f"""
        import os, sys
        from vidzoo.cli import main
        out = os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"])
        sys.exit(main(["train", "--model", "vivit_joint_tiny_patch16x2_224", "--data", {str(data)!r},
                       "--output", out, "--epochs", "2", "--batch-size", "2", "--lr", "1e-3", "--num-frames", "4",
                       "--img-size", "16", "--sampling", "uniform", "--hflip", "0", "--no-progress", "--device", "cpu",
                       "--set", "embed_dim=32", "depth=1", "num_heads=2", "patch_size=8"]))
    """))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(launcher)], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    assert not (tmp_path / "rank1").exists()  # only rank 0 writes
    out = tmp_path / "rank0"
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics) == 2
    for m in metrics:
        assert m["world_size"] == 2
        assert m["train_samples_per_rank"] == [4, 4] and m["train_num_samples"] == 8  # both ranks trained
        assert m["val_samples_per_rank"] == [3, 3] and m["val_num_samples"] == 6  # reduced: each clip once
    assert r.stdout.count("epoch   2") == 1  # logged once, by rank 0
    assert "x 2 process(es)" in r.stdout
    ckpt = load_checkpoint(out / "checkpoints" / "last.pth")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2  # every rank's RNG state, for exact resume
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # ranks augment differently
    assert (out / "model" / "model.safetensors").is_file()
