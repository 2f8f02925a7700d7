#!/usr/bin/env python
"""Does scaling frames while decoding change what a model sees, learns or predicts?

Datasets hand the decoder their transform's ``decode_size``, so frames come out of swscale at the
size the transform needs instead of being converted at full size and resized by torch. This script
measures the difference on real (PyAV-written) videos, larger than the model's input:

1. **Pixels.** Evaluation views and training crops (the same random draws) of every validation
   video, decoded both ways: mean and 99th-percentile absolute difference in 0..255 units.
2. **Training.** The demo's model trained on the same motion-direction videos with and without
   decode-time scaling, for each of ``--seeds`` (initialisation and data order; this tiny model
   leaves its chance plateau at an epoch that moves with float noise, so one seed says little):
   validation top-1 of each run.
3. **Evaluation.** Each trained model evaluated both ways: top-1, top-1 agreement and the largest
   logit difference between the two.

Examples::

    python benchmarks/decode_scaling.py --out benchmarks/results/decode_scaling
    python benchmarks/decode_scaling.py --train-per-class 20 --epochs 2   # quick look
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402


def _set_scaling(on: bool) -> None:
    from vidzoo.data.datasets import _VideoSourceDataset
    _VideoSourceDataset.scale_at_decode = on  # every video dataset built from here on


def _eval_dataset(model, root: Path, scaled: bool):
    from vidzoo.data import VideoFolder
    from vidzoo.engine.pipelines import build_dataset, input_spec
    ds = build_dataset(VideoFolder(root), input_spec(model), train=False)
    ds.scale_at_decode = scaled
    return ds


@torch.no_grad()
def _logits(model, ds) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    out = torch.cat([model(torch.stack(xs[i:i + 16])) for i in range(0, len(xs), 16)])
    return out, torch.tensor(ys)


def pixel_rows(model, val: Path, hflip: float, crop_scale: tuple[float, float]) -> list[dict[str, Any]]:
    from vidzoo.data import VideoFolder
    from vidzoo.engine.pipelines import build_dataset, input_spec
    spec = input_spec(model)
    rows = []
    for mode in ("eval", "train"):
        diffs = []
        sets = []
        for scaled in (False, True):
            ds = build_dataset(VideoFolder(val), spec, train=mode == "train", hflip=hflip,
                               crop_scale=crop_scale)
            ds.scale_at_decode = scaled
            sets.append(ds)
        for i in range(len(sets[0])):
            pair = []
            for ds in sets:
                torch.manual_seed(i)  # the same clip and crop box (relative to the frame) both ways
                pair.append(ds[i][0])
            std = torch.tensor(spec.std).view(-1, 1, 1, 1)
            diffs.append(((pair[1] - pair[0]).abs() * std * 255).flatten())
        d = torch.cat(diffs)
        decoded = sets[1].read_clips(0)[0].shape[-2:], sets[0].read_clips(0)[0].shape[-2:]
        rows.append({"pipeline": mode, "decoded_scaled": "x".join(map(str, decoded[0])),
                     "decoded_full": "x".join(map(str, decoded[1])), "mean_abs_diff_255": float(d.mean()),
                     "p99_abs_diff_255": float(d.quantile(0.99)) if d.numel() < 2**24 else float("nan")})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--classes", type=int, default=4, help="motion directions")
    p.add_argument("--train-per-class", type=int, default=200, help="training videos per class")
    p.add_argument("--val-per-class", type=int, default=40, help="validation videos per class")
    p.add_argument("--size", type=int, nargs=2, default=[144, 256], metavar=("H", "W"), help="video frame size")
    p.add_argument("--epochs", type=int, default=20, help="training epochs of each run")
    p.add_argument("--seed", type=int, default=0, help="seed of the data")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (one run each way per seed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--work", help="folder for the videos and runs (default: a temporary folder)")
    p.add_argument("--out", help="output prefix: writes PREFIX.md and PREFIX.json")
    args = C.finish_help(p).parse_args(argv)
    from vidzoo.data import make_motion_dataset
    from vidzoo.engine.demo import DEMO_MODEL, DEMO_OVERRIDES
    from vidzoo.engine.model_io import load_model
    from vidzoo.engine import TrainConfig, train
    torch.set_num_threads(args.threads)
    machine = C.machine_state()
    crop_scale, hflip, img = (1.0, 1.0), 0.0, 32  # the demo's recipe (its direction classes forbid flips)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        data = work / "data"
        if not (data / "val").exists():
            for split, n in (("train", args.train_per_class), ("val", args.val_per_class)):
                make_motion_dataset(data, args.classes, n, 16, tuple(args.size), seed=args.seed, split=split)
        train_rows, evals = [], []
        for seed in args.seeds:
            for scaled in (False, True):
                _set_scaling(scaled)
                t0 = time.perf_counter()
                run = work / f"run_seed{seed}_scaled_{scaled}"
                cfg = TrainConfig(model=DEMO_MODEL, data=str(data / "train"), val_data=str(data / "val"),
                                  output=str(run), epochs=args.epochs, batch_size=16, lr=2e-3, warmup_epochs=1,
                                  model_overrides=dict(DEMO_OVERRIDES), num_frames=8, img_size=img, sampling="dense",
                                  frame_stride=2, hflip=hflip, crop_scale=crop_scale, seed=seed, cache_videos=True,
                                  overwrite=True, progress=False, device="cpu")
                r = train(cfg)
                train_rows.append({"seed": seed, "decode_scaling": "on" if scaled else "off", "best_top1": r.best_top1,
                                   "best_epoch": r.best_epoch, "wall_s": time.perf_counter() - t0})
                print(f"seed {seed}, decode-time scaling {'on' if scaled else 'off'}: best val top-1 "
                      f"{r.best_top1:.1f}% (epoch {r.best_epoch})", flush=True)
                _set_scaling(True)
                model = load_model(str(run)).eval()
                (off, y), (on, _) = (_logits(model, _eval_dataset(model, data / "val", s)) for s in (False, True))
                evals.append({"seed": seed, "trained_scaled": "yes" if scaled else "no",
                              "top1_eval_full": float((off.argmax(1) == y).float().mean() * 100),
                              "top1_eval_scaled": float((on.argmax(1) == y).float().mean() * 100),
                              "top1_agreement": float((off.argmax(1) == on.argmax(1)).float().mean() * 100),
                              "max_abs_logit_diff": float((off - on).abs().max()),
                              "mean_abs_logit_diff": float((off - on).abs().mean()), "videos": len(y)})
        pixels = pixel_rows(model, data / "val", hflip, crop_scale)
    md = ["## Pixels: the same views decoded both ways (0..255 units)", "",
          C.markdown_table(pixels, [("pipeline", "pipeline", ""), ("decoded_full", "decoded (full)", ""),
                                    ("decoded_scaled", "decoded (scaled)", ""),
                                    ("mean_abs_diff_255", "mean |diff|", ".2f"), ("p99_abs_diff_255", "p99 |diff|", ".1f")]),
          "", "## Training with and without decode-time scaling (same data and recipe, per seed)", "",
          C.markdown_table(train_rows, [("seed", "seed", ""), ("decode_scaling", "decode-time scaling", ""), ("best_top1", "best val top-1 %", ".1f"),
                                        ("best_epoch", "epoch", ""), ("wall_s", "wall s", ".0f")]),
          "", "## Each trained model evaluated both ways", "",
          C.markdown_table(evals, [("seed", "seed", ""), ("trained_scaled", "trained scaled", ""), ("top1_eval_full", "top-1 % (full decode)", ".1f"),
                                   ("top1_eval_scaled", "top-1 % (scaled decode)", ".1f"),
                                   ("top1_agreement", "same top-1 %", ".1f"), ("max_abs_logit_diff", "max |logit diff|", ".3f"),
                                   ("mean_abs_logit_diff", "mean |logit diff|", ".4f"), ("videos", "videos", "")]),
          "", "## Machine", "", C.machine_markdown(machine), ""]
    text = "\n".join(md)
    print(text)
    result = {"args": vars(args), "machine": machine, "pixels": pixels, "train": train_rows, "eval": evals}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(f"# benchmarks/decode_scaling.py {' '.join(argv or sys.argv[1:])}\n\n{text}")
        out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
