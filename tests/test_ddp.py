"""Distributed training: ``torchrun`` with 2 CPU processes and the gloo backend, through the CLI."""
import json
import subprocess
import sys
import textwrap

import torch

from helpers import TINY_SET, subprocess_env, train_argv
from vidzoo.engine.checkpoint import load_checkpoint


def test_torchrun_two_processes_gloo(motion, tmp_path):
    # Each rank gets its own --output so the test can see that rank 1 writes nothing.
    argv = train_argv(motion, "OUT", "--device", "cpu", *TINY_SET, epochs=2, batch_size=2)
    launcher = tmp_path / "launch.py"
    launcher.write_text(textwrap.dedent(f"""
        import os, sys
        from vidzoo.cli import main
        argv = {argv!r}
        argv[argv.index("OUT")] = os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"])
        sys.exit(main(argv))
    """))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(launcher)], capture_output=True, text=True, env=subprocess_env(), timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    assert not (tmp_path / "rank1").exists()  # only rank 0 writes (and takes the run folder's lock)
    out = tmp_path / "rank0"
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics) == 2
    for m in metrics:  # motion: 3 training and 2 validation videos per class
        assert m["world_size"] == 2
        assert m["train_samples_per_rank"] == [3, 3] and m["train_num_samples"] == 6  # both ranks trained
        assert m["val_samples_per_rank"] == [2, 2] and m["val_num_samples"] == 4  # reduced: each clip once
    assert r.stdout.count("epoch   2") == 1  # logged once, by rank 0
    assert "x 2 process(es)" in r.stdout
    ckpt = load_checkpoint(out / "checkpoints" / "last.pth")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2  # every rank's RNG state, for exact resume
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # ranks augment differently
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / ".vidzoo-run.json").is_file() and not (out / ".vidzoo.lock").exists()  # lock removed on exit
