#!/usr/bin/env python
"""CPU cost per clip of the clip-level augmentations in ``vidzoo.data``.

For each clip size (``--sizes``, ``TxS`` = T frames of S x S), this times:

- the existing training pipeline ``train_transforms`` (random resized crop from a decoded
  ``T x S*256/224 x S*340/224`` clip, flip, normalise), for scale;
- ``VideoRandAugment(--randaug)`` on the uint8 crop, over ``--clips`` seeded draws per timed
  call (the cost depends on which ops are drawn), and each op of the config's set alone at the
  config's magnitude;
- timm's ``RandAugment`` applied frame by frame through PIL (uint8 tensor -> PIL -> tensor), as a
  reference for the cost of the image tool (it draws new ops for every frame, see
  ``vidzoo.data.augment``);
- ``VideoRandomErasing`` (``pixel`` mode) at ``--reprob`` and at probability 1, on the
  normalised float clip;
- ``VideoMixup`` on a float batch of ``--batch-size`` clips in ``batch`` mode, mixup only,
  cutmix only and VideoMAE's mix (mixup 0.8, cutmix 1.0, switch 0.5), and in ``elem`` mode,
  reported per clip (batch time / batch size).

All rows of one size run interleaved (A B C ... A B C ...) so load drift on a shared machine hits
them alike. Each row reports the best and the median per-clip time over ``--runs`` timed
calls, after ``--warmup`` untimed ones. ``--threads`` defaults to 1, the thread count of a
DataLoader worker, where these transforms run.

Examples::

    python benchmarks/augment.py                              # 16x224 and 8x112, 5 runs
    python benchmarks/augment.py --sizes 16x224 --runs 9 --out benchmarks/results/augment_cpu
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks import _common as C


def parse_size(text: str) -> tuple[int, int]:
    try:
        t, s = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is TxS (frames x side), e.g. 16x224, got {text!r}") from None
    if t < 1 or s < 8:
        raise argparse.ArgumentTypeError(f"a size needs T >= 1 and S >= 8, got {text!r}")
    return t, s


def cases(t: int, s: int, args: argparse.Namespace) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (callable, clips it processes) for one clip size."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    from vidzoo.data import VideoMixup, VideoRandAugment, VideoRandomErasing, train_transforms
    from vidzoo.data.augment import level_to_arg

    g = torch.Generator().manual_seed(args.seed)
    short = round(s * 256 / 224)
    decoded = torch.randint(0, 256, (3, t, short, round(short * 340 / 256)), generator=g, dtype=torch.uint8)
    pipeline = train_transforms(s, generator=torch.Generator().manual_seed(args.seed))
    crop = torch.randint(0, 256, (3, t, s, s), generator=g, dtype=torch.uint8)
    norm = torch.randn(3, t, s, s, generator=g)
    batch = torch.randn(args.batch_size, 3, t, s, s, generator=g)
    labels = torch.arange(args.batch_size) % 400
    n = args.clips

    def seeded(fn: Callable[[], Any], gen: torch.Generator | None = None) -> Callable[[], None]:
        def call() -> None:  # every timed call replays the same draws
            if gen is not None:
                gen.manual_seed(args.seed)
            np.random.seed(args.seed)
            random.seed(args.seed)
            for _ in range(n):
                fn()
        return call

    out: dict[str, tuple[Callable[[], Any], int]] = {}
    out["train_transforms (crop+flip+normalise)"] = (lambda: pipeline(decoded), 1)
    g_ra = torch.Generator()
    ra = VideoRandAugment(args.randaug, generator=g_ra)
    out[f"VideoRandAugment {args.randaug}"] = (seeded(lambda: ra(crop), g_ra), n)

    timm_ra = rand_augment_transform(args.randaug, {})

    def timm_per_frame() -> torch.Tensor:
        frames = [np.asarray(timm_ra(Image.fromarray(f.numpy()))) for f in crop.permute(1, 2, 3, 0)]
        return torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)
    out[f"timm RandAugment per frame, PIL (reference) {args.randaug}"] = (seeded(timm_per_frame), n)

    g_er = torch.Generator()
    erase = VideoRandomErasing(args.reprob, mode="pixel", generator=g_er)
    out[f"VideoRandomErasing p={args.reprob} pixel"] = (seeded(lambda: erase(norm), g_er), n)
    erase1 = VideoRandomErasing(1.0, mode="pixel", generator=torch.Generator().manual_seed(args.seed))
    out["VideoRandomErasing p=1 pixel"] = (lambda: erase1(norm), 1)

    b = args.batch_size
    mixes = {"mixup 0.8, batch mode": VideoMixup(0.8, 0.0, num_classes=400),
             "cutmix 1.0, batch mode": VideoMixup(0.0, 1.0, num_classes=400),
             "mixup 0.8 + cutmix 1.0, batch mode": VideoMixup(0.8, 1.0, num_classes=400),
             "mixup 0.8 + cutmix 1.0, elem mode": VideoMixup(0.8, 1.0, mode="elem", num_classes=400)}
    for name, mix in mixes.items():
        out[f"VideoMixup {name} (B={b})"] = (seeded(lambda mix=mix: mix(batch, labels)), n * b)

    cfg = ra.config
    for op in ra.op_names:
        args_op = level_to_arg(op, float(cfg.magnitude), 1.0)
        shown = " ".join(f"{a:.3g}" for a in args_op)
        out[f"  op {op} {shown}".rstrip()] = (lambda op=op, a=args_op: ra.apply(crop, [(op, a)]), 1)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[(16, 224), (8, 112)],
                   help="clip sizes TxS: T frames of S x S pixels (default: 16x224 8x112)")
    p.add_argument("--randaug", default="rand-m7-n4-mstd0.5-inc1", help="RandAugment config string")
    p.add_argument("--reprob", type=float, default=0.25, help="random erasing probability")
    p.add_argument("--batch-size", type=int, default=8, help="clips per mixup batch (even)")
    p.add_argument("--clips", type=int, default=16, help="seeded draws per timed call of the random rows")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: a DataLoader worker's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/augment_cpu", help="writes PREFIX.csv, .md and .json")
    args = C.finish_help(p).parse_args(argv)
    if args.batch_size < 2 or args.batch_size % 2:
        p.error(f"--batch-size must be even and >= 2, got {args.batch_size}")
    from vidzoo.data import parse_rand_augment
    try:
        magnitude = parse_rand_augment(args.randaug).magnitude
    except ValueError as e:
        p.error(str(e))

    C.setup_torch(args.threads, "cpu")
    state = C.machine_state()
    cmd = "python benchmarks/augment.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows: list[dict[str, Any]] = []
    for t, s in args.sizes:
        fns = cases(t, s, args)
        times = C.time_interleaved({k: f for k, (f, _) in fns.items()}, "cpu", args.warmup, args.runs)
        for name, (_, clips) in fns.items():
            per_clip = [x / clips * 1e3 for x in times[name]]
            rows.append({"size": f"{t}x{s}", "augmentation": name.strip(), "per_op": name.startswith("  "),
                         "best_ms": min(per_clip), "median_ms": C.median(per_clip), "clips_per_call": clips,
                         "runs_ms": per_clip})
            print(f"{t}x{s:<4} {name:<62} best {min(per_clip):8.2f} ms  median {C.median(per_clip):8.2f} ms",
                  flush=True)
    md = ["# Clip-level augmentation: CPU cost per clip\n", f"`{cmd}`\n", C.machine_markdown(state), ""]
    for t, s in args.sizes:
        size_rows = [r for r in rows if r["size"] == f"{t}x{s}"]
        md += [f"## {t} frames of {s}x{s}\n",
               C.markdown_table([r for r in size_rows if not r["per_op"]],
                                [("augmentation", "augmentation", "s"), ("best_ms", "best ms / clip", ".2f"),
                                 ("median_ms", "median ms / clip", ".2f")]), "",
               f"Each op of `{args.randaug}` alone, at m={magnitude} with no noise, on every frame:\n",
               C.markdown_table([r for r in size_rows if r["per_op"]],
                                [("augmentation", "op", "s"), ("best_ms", "best ms / clip", ".2f"),
                                 ("median_ms", "median ms / clip", ".2f")]), ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    C.write_csv(out.with_suffix(".csv"), rows)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "machine": state, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
