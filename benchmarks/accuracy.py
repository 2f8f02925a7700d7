#!/usr/bin/env python
"""Top-1 of every attention variant x tokenizer on the same data and the same training budget.

The default task is vidzoo's synthetic motion dataset (``vidzoo.data.make_motion_dataset``: real
mp4 files, a shape moving in one of N directions over noise; a single frame carries no
information about the class, so only a model that uses time can beat chance). Videos are
written once under ``--data-root``, decoded once into memory, and every model is trained from
scratch with the same seed, schedule and number of steps, then evaluated on a held-out split.

With ``--organmnist PATH.npz`` the same grid is also trained on OrganMNIST3D (MedMNIST, 28^3
volumes, depth as time; ``vivit_joint_mini_patch8x8_28`` recipe, attention / tokenizer
overridden) and evaluated on its test split.

Rows are attention variants, plus ``videomae`` (a family spec over ``joint``, see ``SPECS``).

Examples::

    python benchmarks/accuracy.py                                   # default grid, a few minutes on 2 cores
    python benchmarks/accuracy.py --attention joint divided --tokenizer tubelet --epochs 30
    python benchmarks/accuracy.py --organmnist organmnist3d.npz --organ-epochs 20
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from benchmarks import _common as C

ATTENTIONS = ("joint", "factorised_encoder", "factorised_self_attention", "factorised_dot_product", "divided",
              "space_only", "videomae")
# Grid rows that are a family's spec rather than a bare attention variant: VideoMAE is joint
# attention with a fixed sin-cos position table, q/v biases and mean pooling + fc_norm.
SPECS = {"videomae": dict(attention="joint", pos_embed="sincos", qkv_bias="qv", fc_norm=True, global_pool="avg",
                          class_token=False, norm_eps=1e-6)}
TOKENIZERS = ("uniform", "tubelet")


# ---------------------------------------------------------------------------------------- data


def motion_tensors(args: argparse.Namespace) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    """Write (once) and decode the motion dataset: ``{split: (uint8 clips (N, 3, T, H, W), labels)}``."""
    from vidzoo.data import VideoFolder, make_motion_dataset
    root = Path(args.data_root) / (f"c{args.classes}_n{args.train_per_class}-{args.val_per_class}_f{args.video_frames}"
                                   f"_s{args.size}_seed{args.seed}")
    out = {}
    for split, n in (("train", args.train_per_class), ("val", args.val_per_class)):
        marker = root / split / ".complete"
        if not marker.exists():
            make_motion_dataset(root, num_classes=args.classes, videos_per_class=n, num_frames=args.video_frames,
                                size=(args.size, args.size), seed=args.seed, split=split)
            marker.touch()
        ds = VideoFolder(root / split, sampler=None, transform=lambda x: x)
        clips, labels = [], []
        for i in range(len(ds)):
            clips.append(ds.read_clips(i)[0])  # every frame, uint8 (C, T, H, W)
            labels.append(ds.samples[i][1])
        out[split] = (torch.stack(clips), torch.tensor(labels))
        classes = ds.classes
    return out, classes


def organ_tensors(path: str) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    from vidzoo.data import NpzVolumeDataset
    out = {}
    for split in ("train", "test"):
        ds = NpzVolumeDataset(path, split=split)
        vols = torch.stack([ds.read_clips(i)[0] for i in range(len(ds))])
        out[split if split == "train" else "val"] = (vols, torch.tensor(ds.targets))
        classes = ds.classes
    return out, classes


def temporal_sample(clips: torch.Tensor, num_frames: int, train: bool, gen: torch.Generator | None) -> torch.Tensor:
    """``num_frames`` frames at a fixed stride ``T // num_frames`` (dense sampling, constant speed
    preserved): a random start when training, the centred window at evaluation."""
    T = clips.shape[2]
    stride = max(1, T // num_frames)
    span = (num_frames - 1) * stride + 1
    if span > T:
        raise ValueError(f"cannot sample {num_frames} frames from {T}")
    slack = T - span
    if not (train and slack):
        return clips[:, :, slack // 2:slack // 2 + span:stride]
    start = torch.randint(0, slack + 1, (clips.shape[0], 1), generator=gen)  # one per clip
    idx = start + torch.arange(num_frames) * stride  # (N, num_frames)
    return clips[torch.arange(clips.shape[0])[:, None], :, idx].permute(0, 2, 1, 3, 4)


def to_input(clips: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    x = clips.float() / 255.0 if clips.dtype == torch.uint8 else clips.float()
    return (x - mean) / std


# ---------------------------------------------------------------------------------------- train


def build(arch: str, attention: str, tokenizer: str, args: argparse.Namespace, num_classes: int, model_kw: dict):
    import vidzoo
    kw = dict(model_kw, attention=attention, tokenizer=tokenizer, num_classes=num_classes)
    kw.update(SPECS.get(attention, {}))
    if tokenizer == "tubelet":
        kw.setdefault("tubelet_size", args.tubelet_size)
    else:
        kw.pop("tubelet_size", None)
    return vidzoo.create_model(arch, **kw)


def train_eval(model, data: dict[str, tuple[torch.Tensor, torch.Tensor]], num_frames: int, epochs: int,
               args: argparse.Namespace, mean: float, std: float) -> dict[str, Any]:
    from vidzoo.engine import TrainConfig, build_optimizer, build_scheduler
    gen = torch.Generator().manual_seed(args.seed)
    xtr, ytr = data["train"]
    xva, yva = data["val"]
    steps_per_epoch = math.ceil(len(xtr) / args.batch_size)
    total = epochs * steps_per_epoch
    # The engine's recipe (what `vidzoo train` uses): timm AdamW without decay on biases, norms and
    # position tables; linear warm-up, then per-update cosine decay.
    cfg = TrainConfig(lr=args.lr, epochs=epochs, batch_size=args.batch_size, weight_decay=args.weight_decay,
                      warmup_epochs=1.0, label_smoothing=args.label_smoothing, clip_grad=args.clip_grad)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    updates = 0
    t0 = time.perf_counter()
    model.train()
    last_loss = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), args.batch_size):
            idx = perm[i:i + args.batch_size]
            x = to_input(temporal_sample(xtr[idx], num_frames, True, gen), mean, std)
            loss = F.cross_entropy(model(x), ytr[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            opt.step()
            updates += 1
            sched.step_update(updates)
            last_loss = loss.item()
    train_s = time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xva), 64):
            x = to_input(temporal_sample(xva[i:i + 64], num_frames, False, None), mean, std)
            correct += (model(x).argmax(-1) == yva[i:i + 64]).sum().item()
    return {"top1": correct / len(xva), "final_train_loss": last_loss, "train_s": train_s, "steps": total}


_DATA: dict[str, Any] = {}


def _init_worker(data, threads: int) -> None:
    _DATA["data"] = data
    torch.set_num_threads(threads)


def _cell(job: dict[str, Any], data=None) -> dict[str, Any]:
    """Train and evaluate one (tokenizer, attention) cell from the same seed."""
    data = data if data is not None else _DATA["data"]
    args = argparse.Namespace(**{**vars(job["args"]), "seed": job["seed"]})
    torch.manual_seed(args.seed)
    row: dict[str, Any] = {"dataset": job["dataset"], "tokenizer": job["tokenizer"], "attention": job["attention"],
                           "seed": args.seed}
    try:
        model = build(job["arch"], job["attention"], job["tokenizer"], args, job["num_classes"], job["model_kw"])
    except (ValueError, TypeError) as e:
        row["error"] = str(e)[:160]
        return row
    row["params_k"] = sum(p.numel() for p in model.parameters()) / 1e3
    row["tokens"] = math.prod(model.grid_size)
    row.update(train_eval(model, data, job["num_frames"], job["epochs"], args, job["mean"], job["std"]))
    return row


def run_grid(dataset: str, arch: str, data, classes, num_frames: int, epochs: int, args, model_kw: dict,
             mean: float, std: float) -> list[dict[str, Any]]:
    jobs = [dict(dataset=dataset, arch=arch, tokenizer=tok, attention=attn, num_frames=num_frames, epochs=epochs,
                 args=args, model_kw=model_kw, mean=mean, std=std, num_classes=len(classes), seed=args.seed + k)
            for k in range(args.seeds) for tok in args.tokenizer for attn in args.attention]

    def report(row: dict[str, Any]) -> None:
        tag = f"[{dataset} {row['tokenizer']:7s} {row['attention']:26s} seed {row['seed']}]"
        if "error" in row:
            print(f"{tag} cannot build: {row['error']}", file=sys.stderr)
        else:
            print(f"{tag} top-1 {row['top1']:.1%} (loss {row['final_train_loss']:.3f}, {row['train_s']:.0f} s)",
                  file=sys.stderr)

    if args.jobs <= 1:
        rows = []
        for job in jobs:
            rows.append(_cell(job, data))
            report(rows[-1])
        return rows
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from benchmarks import accuracy as this  # importable by spawned workers, also when run as a script
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=this._init_worker,
                             initargs=(data, args.threads)) as ex:
        futures = [ex.submit(this._cell, job) for job in jobs]
        rows = []
        for f in futures:
            rows.append(f.result())
            report(rows[-1])
    return rows


def grid_markdown(rows: list[dict[str, Any]], tokenizers, attentions) -> str:
    """Top-1 per (attention, tokenizer): the mean over seeds, with every seed's value when several."""
    head = "| attention | " + " | ".join(f"{t} top-1" for t in tokenizers) + " | " + \
        " | ".join(f"{t} params (k) / tokens / train s" for t in tokenizers) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(tokenizers))]
    for a in attentions:
        cells = []
        for t in tokenizers:
            rs = [r for r in rows if r["tokenizer"] == t and r["attention"] == a and "top1" in r]
            if not rs:
                cells.append("n/a" if any(r["tokenizer"] == t and r["attention"] == a for r in rows) else "-")
                continue
            mean = sum(r["top1"] for r in rs) / len(rs)
            cells.append(f"{mean:.1%}" + (" (" + ", ".join(f"{r['top1']:.0%}" for r in rs) + ")" if len(rs) > 1 else ""))
        for t in tokenizers:
            rs = [r for r in rows if r["tokenizer"] == t and r["attention"] == a and "top1" in r]
            cells.append(f"{rs[0]['params_k']:.0f} / {rs[0]['tokens']} / "
                         f"{sum(r['train_s'] for r in rs) / len(rs):.0f}" if rs else "-")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attention", nargs="+", default=list(ATTENTIONS), choices=ATTENTIONS)
    p.add_argument("--tokenizer", nargs="+", default=list(TOKENIZERS), choices=TOKENIZERS)
    g = p.add_argument_group("motion dataset")
    g.add_argument("--data-root", default="/tmp/vidzoo_motion", help="where the mp4 files are written (once)")
    g.add_argument("--classes", type=int, default=4)
    g.add_argument("--train-per-class", type=int, default=100)
    g.add_argument("--val-per-class", type=int, default=25)
    g.add_argument("--video-frames", type=int, default=16, help="frames per video file")
    g.add_argument("--size", type=int, default=32, help="frame size of the videos and the model")
    g = p.add_argument_group("model (shared by every cell of the grid)")
    g.add_argument("--num-frames", type=int, default=8, help="frames the model sees (sampled from each video)")
    g.add_argument("--patch-size", type=int, default=4)
    g.add_argument("--tubelet-size", type=int, default=2)
    g.add_argument("--embed-dim", type=int, default=64)
    g.add_argument("--depth", type=int, default=1)
    g.add_argument("--heads", type=int, default=4)
    g.add_argument("--global-pool", choices=("avg", "token", "default"), default="avg",
                   help="pooling of every variant ('avg' is the one all variants support; 'default': each "
                        "variant's own)")
    g = p.add_argument_group("training (same budget for every cell)")
    g.add_argument("--epochs", type=int, default=12)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--clip-grad", type=float, default=None, help="gradient-norm clipping (default: none)")
    g.add_argument("--seed", type=int, default=0, help="first seed (data and training)")
    g.add_argument("--seeds", type=int, default=1, help="train every cell with seeds seed..seed+N-1; the table "
                                                        "shows the mean and each value")
    g.add_argument("--threads", type=int, default=1,
                   help="torch threads per cell (1: tiny models gain nothing from a second thread)")
    g.add_argument("--jobs", type=int, default=2, help="cells trained in parallel processes (results do not "
                                                       "depend on it: every cell starts from the same seed)")
    g = p.add_argument_group("OrganMNIST3D")
    g.add_argument("--organmnist", default=None, help="path to organmnist3d.npz (MedMNIST); trains the grid on it too")
    g.add_argument("--organ-epochs", type=int, default=10)
    g.add_argument("--skip-motion", action="store_true")
    p.add_argument("--out", default="benchmarks/results/accuracy")
    args = C.finish_help(p).parse_args(argv)

    C.setup_torch(args.threads, "cpu")
    state = C.machine_state()
    cmd = "python benchmarks/accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows: list[dict[str, Any]] = []
    md = [f"# Accuracy: attention variant x tokenizer, same data and budget\n", f"`{cmd}`\n",
          C.machine_markdown(state), ""]
    if not args.skip_motion:
        t0 = time.perf_counter()
        data, classes = motion_tensors(args)
        print(f"motion data: train {tuple(data['train'][0].shape)}, val {tuple(data['val'][0].shape)} "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        model_kw = dict(img_size=args.size, num_frames=args.num_frames, patch_size=args.patch_size,
                        embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads)
        if args.global_pool != "default":
            model_kw.update(global_pool=args.global_pool, class_token=args.global_pool == "token")
        mrows = run_grid("motion", "vivit_joint_tiny_patch16x2_224", data, classes, args.num_frames, args.epochs,
                         args, model_kw, 0.5, 0.5)
        rows += mrows
        n_tr, n_va = len(data["train"][1]), len(data["val"][1])
        md += [f"## Synthetic motion ({len(classes)} classes: {', '.join(classes)}; chance {1 / len(classes):.0%})\n",
               f"{n_tr} training / {n_va} validation videos of {args.video_frames} frames at {args.size}x{args.size}; "
               f"the model sees {args.num_frames} frames at stride {args.video_frames // args.num_frames} (random start in training, centred at evaluation). Model: width "
               f"{args.embed_dim}, depth {args.depth}, {args.heads} heads, patch {args.patch_size}, tubelet "
               f"{args.tubelet_size}; pooling {args.global_pool}, each variant's default position embedding. AdamW lr {args.lr}, "
               f"wd {args.weight_decay} (vidzoo.engine build_optimizer / build_scheduler: 1 warm-up epoch, cosine), batch {args.batch_size}, {args.epochs} epochs, label "
               f"smoothing {args.label_smoothing}, training seeds {args.seed}..{args.seed + args.seeds - 1} (videos: seed "
               f"{args.seed}). Train time is wall time of one cell with {args.threads} thread(s), {args.jobs} cells in "
               f"parallel.\n",
               grid_markdown(mrows, args.tokenizer, args.attention), ""]
    if args.organmnist:
        data, classes = organ_tensors(args.organmnist)
        model_kw = {}
        orows = run_grid("organmnist3d", "vivit_joint_mini_patch8x8_28", data, classes, data["train"][0].shape[2],
                         args.organ_epochs, args, model_kw, 0.0, 1.0)
        rows += orows
        md += [f"## OrganMNIST3D ({len(classes)} classes; test split)\n",
               f"vivit_joint_mini_patch8x8_28 recipe (width 128, depth 8, 8 heads, 8^3 tubelets / 8x8 patches, "
               f"zero-padded to 32), {args.organ_epochs} epochs.\n",
               grid_markdown(orows, args.tokenizer, args.attention), ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    C.write_csv(out.with_suffix(".csv"), rows)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "machine": state, "rows": rows}, indent=1))
    print("\n".join(md))
    return rows


if __name__ == "__main__":
    main()
