"""The ``vidzoo`` command: list and inspect models, train, evaluate, predict, run the demo.

Known user errors (a missing path, an empty dataset, classes that differ, a model that cannot take
the data...) are printed as one line ``vidzoo: error: ...`` with exit status 2; set
``VIDZOO_DEBUG=1`` to see their traceback. Anything else is a bug and raises.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .engine.errors import UserError


# --------------------------------------------------------------------------------------- list/info
def cmd_list(args: argparse.Namespace) -> int:
    from . import list_models
    pattern = args.filter or ""
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = list_models(pattern, pretrained=args.pretrained)
    for name in names:
        print(name)
    if not names:
        print(f"no {'pretrained ' if args.pretrained else ''}models match {args.filter!r}", file=sys.stderr)
    return 0


def _fmt_tuple(t: Sequence[Any]) -> str:
    return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in t) + ")"


def cmd_info(args: argparse.Namespace) -> int:
    from . import get_pretrained_cfg, is_model, list_aliases, list_models, list_pretrained, split_model_name_tag
    from ._registry import resolve_alias
    from .engine.model_io import count_params, load_model, model_complexity, parse_overrides
    overrides = parse_overrides(args.set)
    if args.num_frames:
        overrides["num_frames"] = args.num_frames
    if args.img_size:
        overrides["img_size"] = args.img_size
    name = args.model
    if is_model(name):
        info = model_complexity(name, **overrides)
        arch, tag = split_model_name_tag(resolve_alias(name))
        cfg = get_pretrained_cfg(resolve_alias(name)).to_dict()
        model = info["model"]
        cfg.update({k: model.pretrained_cfg[k] for k in ("input_size", "num_frames", "num_classes", "mean", "std")})
        params = info["params"]
    elif Path(name).exists() or name.startswith(("local-dir:", "hf-hub:")):
        model = load_model(name)
        cfg = dict(model.pretrained_cfg)
        arch, tag = getattr(model, "architecture", "?"), cfg.get("tag") or ""
        params = count_params(model)
        info = None
    else:
        from .engine.model_io import build_model
        build_model(name)  # raises a UserError naming the closest models
        return 2
    args_ = dict(model.model_args)
    print(name)
    rows = [("architecture", f"{arch} (attention {args_.get('attention')}, tokenizer {args_.get('tokenizer')}, "
                             f"patch {args_.get('patch_size')}"
                             + (f"x{args_['tubelet_size']}" if args_.get("tubelet_size") else "")
                             + f", width {args_.get('embed_dim')}, depth {args_.get('depth')}, "
                             f"heads {args_.get('num_heads')})")]
    rows.append(("params", f"{params / 1e6:.2f}M"))
    if info is not None:
        rows.append(("GFLOPs", f"{info['gmacs']:.2f} (multiply-adds of one clip, batch 1, as in the papers; "
                               f"counted on the meta device)"))
    c, t, h, w = cfg["input_size"]
    sampling = cfg.get("sampling") or "dense"
    stride = f", stride {cfg.get('frame_sample_rate')}" if sampling == "dense" and cfg.get("frame_sample_rate") else ""
    rows.append(("input", f"(C, T, H, W) = ({c}, {t}, {h}, {w}), {sampling} sampling{stride}, "
                          f"mean {_fmt_tuple(cfg['mean'])}, std {_fmt_tuple(cfg['std'])}"))
    rows.append(("test views", f"{cfg.get('test_num_clips') or 1} clips x {cfg.get('test_num_crops') or 1} crops"))
    label_names = cfg.get("label_names")
    rows.append(("classes", f"{cfg.get('num_classes', model.num_classes)}"
                            + (f" ({', '.join(label_names[:8])}{', ...' if len(label_names) > 8 else ''})"
                               if label_names else "")))
    if is_model(name):
        tags = [n for n in list_models(arch, include_tags=True) if "." in n]
        with_weights = set(list_pretrained(arch))
        rows.append(("tags", ", ".join(f"{n}{'' if n in with_weights else ' (no weights)'}" for n in tags)
                     or "none (random init only)"))
        aliases = [a for a, target in list_aliases().items() if split_model_name_tag(target)[0] == arch]
        rows.append(("aliases", ", ".join(aliases) or "none"))
    if cfg.get("paper_name"):
        rows.append(("paper", f"{cfg['paper_name']} ({cfg.get('paper_ids')})"))
    if cfg.get("license"):
        rows.append(("license", cfg["license"]))
    if cfg.get("notes"):
        rows.append(("notes", cfg["notes"]))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}} : {v}")
    return 0


# ------------------------------------------------------------------------------------------- train
def _train_config(args: argparse.Namespace):
    from .engine.model_io import parse_overrides
    from .engine.train import TrainConfig
    return TrainConfig(
        model=args.model, data=args.data, val_data=args.val_data, val_split=args.val_split, output=args.output,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, opt=args.opt, weight_decay=args.weight_decay,
        momentum=args.momentum, warmup_epochs=args.warmup_epochs, min_lr=args.min_lr,
        label_smoothing=args.label_smoothing, clip_grad=args.clip_grad, accum_steps=args.accum_steps, amp=args.amp,
        grad_checkpointing=args.grad_checkpointing, seed=args.seed, deterministic=args.deterministic,
        pretrained=args.pretrained, num_frames=args.num_frames, img_size=args.img_size,
        model_overrides=parse_overrides(args.set), sampling=args.sampling, frame_stride=args.frame_stride,
        hflip=args.hflip, workers=args.workers, cache_videos=args.cache_videos, on_error=args.on_error,
        device=args.device, resume=args.resume, overwrite=args.overwrite,
        val_batch_size=args.val_batch_size, progress=not args.no_progress)


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.distributed import is_main_process
    from .engine.train import train
    result = train(_train_config(args))
    if is_main_process():
        _print_train_outputs(result)
    return 0


def _print_train_outputs(result) -> None:
    out = result.output
    best = (f"best val top-1 {result.best_top1:.2f}% at epoch {result.best_epoch}" if result.best_top1 is not None
            else f"no validation data; final model = epoch {result.best_epoch}")
    print(f"done: {best}")
    print(f"outputs in {out}/: metrics.json, metrics.csv, curves.png, train.log, checkpoints/last.pth, "
          f"checkpoints/best.pth" + (", model/ (safetensors)" if result.model_dir is not None else ""))


# -------------------------------------------------------------------------------------- eval/predict
def _load(args: argparse.Namespace):
    from .engine.model_io import load_model, parse_overrides
    overrides = parse_overrides(getattr(args, "set", None))
    if getattr(args, "num_frames", None):
        overrides["num_frames"] = args.num_frames
    if getattr(args, "img_size", None):
        overrides["img_size"] = args.img_size
    return load_model(args.model, pretrained=getattr(args, "pretrained", False), **overrides)


def _on_error_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                   help="unreadable videos: skip them with a warning naming each (counted per epoch; default) "
                        "or stop at the first with an error naming it")


def _default_eval_output(model: str) -> Path:
    p = Path(model)
    if p.is_dir() and ((p / "checkpoints").is_dir() or (p / "model").is_dir()):
        return p / "eval"
    return Path("vidzoo-eval")


def cmd_eval(args: argparse.Namespace) -> int:
    from .engine.distributed import is_main_process
    from .engine.inference import run_evaluation
    model = _load(args)
    output = Path(args.output) if args.output else _default_eval_output(args.model)
    run = run_evaluation(model, args.data, views=args.views, batch_size=args.batch_size, workers=args.workers,
                         device=args.device, output=output, split=args.split, amp=args.amp,
                         num_visuals=args.num_samples, progress=not args.no_progress, sampling=args.sampling,
                         frame_stride=args.frame_stride, on_error=args.on_error)
    if is_main_process():
        r = run.result
        k5 = min(5, len(run.class_names))
        print(f"{r.num_samples} clips, {run.views[0]}x{run.views[1]} views: top-1 {r.top1:.2f}%  top-{k5} "
              f"{r.top5:.2f}%  loss {r.loss:.4f}")
        for name, acc in zip(run.class_names, r.per_class_accuracy):
            if acc is not None:
                print(f"  {name:<24} {acc:6.2f}%")
        print(f"report in {output}/: " + ", ".join(p.name for p in run.files.values()))
    return 0


def _predict_timeline(args: argparse.Namespace) -> int:
    from .engine.timeline import run_timelines, summary_lines
    if not args.output:
        raise UserError("--timeline writes <name>_timeline.csv/.png: give --output DIR")
    for flag, value in (("--views", args.views), ("--sampling", args.sampling)):
        if value:
            raise UserError(f"{flag} does not apply to --timeline (one centre view per window; "
                            f"use --window / --stride)")
    model = _load(args)
    done, failed = run_timelines(model, args.videos, args.output, window=args.window, stride=args.stride,
                                 frame_stride=args.frame_stride, top_k=args.top_k, batch_size=args.batch_size,
                                 device=args.device, amp=args.amp, progress=not args.no_progress)
    if args.json:
        print(json.dumps([dict(tl.to_dict(args.top_k), csv=str(c), png=str(p)) for tl, c, p in done]
                         + [{"path": v, "error": e} for v, e in failed], indent=2))
    else:
        for tl, c, p in done:
            print("\n".join(summary_lines(tl)))
            print(f"  wrote {c} and {p}")
    if failed:
        raise UserError(f"{len(failed)} of {len(args.videos)} videos could not be read: "
                        + "; ".join(f"{v}: {e}" for v, e in failed))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if getattr(args, "timeline", False):
        return _predict_timeline(args)
    from .engine.inference import predict_videos
    model = _load(args)
    preds = predict_videos(model, args.videos, top_k=args.top_k, views=args.views, device=args.device,
                           amp=args.amp, sampling=args.sampling, frame_stride=args.frame_stride)
    if args.json:
        print(json.dumps([p.to_dict() for p in preds], indent=2))
        return 0
    for p in preds:
        print(p.path)
        width = max(len(name) for _, name, _ in p.top)
        for rank, (_, name, prob) in enumerate(p.top, 1):
            print(f"  {rank}. {name:<{width}}  {prob:.4f}")
    return 0


# ------------------------------------------------------------------------------------ demo/convert
def cmd_demo(args: argparse.Namespace) -> int:
    from .engine.demo import DemoConfig, run_demo
    cfg = DemoConfig(output=args.output, epochs=args.epochs, num_classes=args.classes,
                     videos_per_class=args.videos_per_class, val_videos_per_class=args.val_videos_per_class,
                     device=args.device, seed=args.seed, workers=args.workers, threads=args.threads,
                     progress=not args.no_progress)
    run_demo(cfg)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ._convert import CheckpointError
    from ._hub import HubDownloadError
    from .convert import convert_checkpoint
    from .engine.model_io import parse_overrides
    if not args.src.startswith("hf-hub:") and not Path(args.src).exists():
        raise UserError(f"convert: source '{args.src}' does not exist")
    try:
        model = convert_checkpoint(args.src, args.dst, model_name=args.model, inflation=args.inflation,
                                   **parse_overrides(args.set))
    except (FileNotFoundError, ValueError, TypeError, CheckpointError, HubDownloadError) as e:
        raise UserError(f"convert: {str(e).splitlines()[0]}") from e
    print(f"converted {args.src} -> {args.dst} ({model.architecture}, {model.num_classes} classes); "
          f"load it with create_model('local-dir:{args.dst}') or --model {args.dst}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportCheckError, export_model, format_from_path, summary_lines
    if args.format and len(args.output) > 1:
        raise UserError("export: --format applies to one --output file; with several, each file's suffix "
                        "(.onnx / .pt2) names its format")
    if not args.format:
        for out in args.output:
            try:
                format_from_path(out)
            except ValueError as e:
                raise UserError(f"export: {e}") from e
    model = _load(args)
    try:
        results = export_model(model, args.output, fmt=args.format, opset=args.opset, atol=args.atol, rtol=args.rtol)
    except (ExportCheckError, ImportError) as e:
        raise UserError(f"export: {e}") from e
    for r in results:
        print("\n".join(summary_lines(r)))
    return 0


# -------------------------------------------------------------------------------------------- parser
def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--pretrained", action="store_true", help="load the tag's pretrained weights (registry names)")
    g.add_argument("--num-frames", type=int, help="frames per clip (overrides the model and the sampler)")
    g.add_argument("--img-size", type=int, help="frame size (overrides the model and the transforms)")
    g.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", default=[],
                   help="model overrides, e.g. --set depth=4 embed_dim=192 drop_path_rate=0.1")


def _sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--sampling", choices=("dense", "uniform"),
                   help="temporal sampling (default: the model's): dense = frames --frame-stride apart, "
                        "uniform = one frame per equal segment of the video")
    g.add_argument("--frame-stride", type=int, help="dense sampling stride (default: the model's frame_sample_rate)")


def _runtime_options(p: argparse.ArgumentParser, batch: int = 8) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--batch-size", type=int, default=batch, help=f"clips per batch per process (default {batch})")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    g.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "none"),
                   help="autocast: auto = bf16 (fp16 on older GPUs) on CUDA, fp32 on CPU")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__
    parser = argparse.ArgumentParser(
        prog="vidzoo", description="Video transformers (ViViT, TimeSformer): list, inspect, train, evaluate, predict.",
        epilog="Multi-GPU / multi-node: torchrun --nproc_per_node N -m vidzoo train ... "
               "Set VIDZOO_DEBUG=1 for tracebacks of user errors.")
    parser.add_argument("--version", action="version", version=f"vidzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("filter", nargs="?", help="substring or wildcard pattern, e.g. 'vivit' or 'timesformer_*_base*'")
    p.add_argument("--pretrained", action="store_true", help="only tags with weights (arch.tag names)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="architecture, parameters, GFLOPs, input and tags of a model")
    p.add_argument("model", help="registry name or alias (or a saved model folder / checkpoint)")
    p.add_argument("--num-frames", type=int)
    p.add_argument("--img-size", type=int)
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", default=[])
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train or fine-tune a model on a folder, list file or npz",
                       description="Train a model. --data: a folder root/<class>/<video> (or root/{train,val}/...),"
                                   " a .csv/.tsv/.txt list of 'path,label', or an .npz of volumes "
                                   "({train,val,test}_images/_labels, e.g. OrganMNIST3D).")
    p.add_argument("--model", required=True,
                   help="registry name or alias (vidzoo list), or a saved model folder / local-dir:DIR / "
                        "hf-hub:org/repo to fine-tune")
    p.add_argument("--data", required=True, help="training data: folder, list file or npz")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--val-data", help="validation data (an npz means its val split)")
    v.add_argument("--val-split", type=float, help="hold out this fraction of --data for validation (stratified)")
    p.add_argument("--output", required=True, help="output folder (checkpoints, metrics, plots, final model)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue the run in --output (or from CKPT) exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --output that holds a run")
    _model_options(p)
    _sampling_options(p)
    _on_error_option(p)
    p.add_argument("--cache-videos", action="store_true",
                   help="decode each video once and keep its frames in memory (small datasets of short clips)")
    p.add_argument("--hflip", type=float, default=0.5,
                   help="horizontal flip probability (default 0.5; 0 for direction-sensitive classes)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    o.add_argument("--opt", "--optimizer", dest="opt", default="adamw", choices=("adamw", "adam", "sgd", "momentum"))
    o.add_argument("--weight-decay", type=float, help="default 0.05 for adamw, 0 otherwise")
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--warmup-epochs", type=float, default=1.0)
    o.add_argument("--min-lr", type=float, default=1e-6)
    o.add_argument("--label-smoothing", type=float, default=0.1)
    o.add_argument("--clip-grad", type=float, help="clip the gradient norm (default: no clipping)")
    o.add_argument("--accum-steps", type=int, default=1, help="batches per optimizer step")
    o.add_argument("--grad-checkpointing", action="store_true", help="trade compute for memory")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms")
    _runtime_options(p)
    p.add_argument("--val-batch-size", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a model: top-1/top-5, per-class, confusion matrix, sample clips")
    p.add_argument("--model", required=True,
                   help="training output folder, saved model folder, checkpoint .pth, or registry name")
    p.add_argument("--data", required=True, help="folder, list file or npz (its test split)")
    p.add_argument("--views", help="temporal clips x spatial crops, e.g. 1x1, 4x3 (default: the model's)")
    p.add_argument("--split", choices=("train", "val", "test"), help="npz split or split sub-folder")
    _on_error_option(p)
    p.add_argument("--output", help="report folder (default: MODEL/eval for a training folder, else ./vidzoo-eval)")
    p.add_argument("--num-samples", type=int, default=8, help="clips in the captioned sample picture")
    _model_options(p)
    _sampling_options(p)
    _runtime_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k labels of video files")
    p.add_argument("--model", required=True,
                   help="training output folder, saved model folder, checkpoint .pth, or registry name")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or frame folders")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--views", help="temporal clips x spatial crops (default: the model's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "none"),
                   help="autocast: auto = bf16/fp16 on CUDA, fp32 on CPU; bf16 also runs on CPU (fast with "
                        "AMX / AVX512-BF16)")
    _model_options(p)
    _sampling_options(p)
    t = p.add_argument_group("timeline (long videos)")
    t.add_argument("--timeline", action="store_true",
                   help="slide the clip window over each whole video; writes <name>_timeline.csv/.png to --output")
    t.add_argument("--window", metavar="SPAN", help="window length, seconds ('2s') or frames ('64'); default the "
                                                    "model's clip span, (T-1) x frame stride + 1 frames")
    t.add_argument("--stride", metavar="SPAN", help="step between window starts, seconds or frames "
                                                    "(default half the window)")
    t.add_argument("--output", help="folder for the timeline files")
    t.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="offline end to end: synthetic motion videos -> train -> eval -> predict")
    p.add_argument("--output", default="vidzoo-demo", help="output folder (default ./vidzoo-demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the tuned demo value)")
    p.add_argument("--classes", type=int, default=4, help="motion directions, 2..8 (default 4)")
    p.add_argument("--videos-per-class", type=int, default=None, help="training videos per class")
    p.add_argument("--val-videos-per-class", type=int, default=None, help="validation videos per class")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: fastest for the tiny demo model; 0 = torch's default)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("convert", help="convert an upstream checkpoint (HF transformers, official TimeSformer, "
                                       "timm ViT) to a vidzoo model folder")
    p.add_argument("src", help="checkpoint file, HF transformers folder, or hf-hub:org/repo[@revision]")
    p.add_argument("dst", help="output vidzoo model folder (config.json + model.safetensors)")
    p.add_argument("--model", help="vidzoo architecture (arch or arch.tag); needed when SRC has no HF config.json")
    p.add_argument("--inflation", default="central_frame", choices=("central_frame", "average"),
                   help="2-D -> tubelet kernel inflation for image checkpoints")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", default=[],
                   help="model arguments on top of those read from the checkpoint's config")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="export a model to ONNX or a torch.export program (.pt2), checked against eager",
                       description="Export a model (any --model that predict accepts) with a dynamic batch "
                                   "dimension; the written file is run back (onnxruntime / torch.export.load) on "
                                   "random clips and compared with the eager model.")
    p.add_argument("--model", required=True,
                   help="training output folder, saved model folder, checkpoint .pth, or registry name")
    p.add_argument("--format", choices=("onnx", "pt2"), help="default: from --output's suffix (.onnx / .pt2)")
    p.add_argument("--output", required=True, nargs="+", metavar="FILE",
                   help="file(s) to write, e.g. model.onnx and/or model.pt2 (several files: one trace)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 20, torch's dynamo exporter default)")
    p.add_argument("--atol", type=float, default=1e-4, help="check tolerance: |file - eager| <= atol + rtol |eager|")
    p.add_argument("--rtol", type=float, default=1e-4)
    _model_options(p)
    p.set_defaults(func=cmd_export)
    return parser


def _one_line(msg: str) -> str:
    return " ".join(part.strip() for part in str(msg).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vidzoo`` console script and ``python -m vidzoo``.

    Returns:
        Exit status: 0 on success, 2 on a user error (one line on stderr), 130 on Ctrl-C.
    """
    from .data import VideoDecodeError
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, VideoDecodeError) as e:  # a bad video under --on-error raise is the user's to fix
        if os.environ.get("VIDZOO_DEBUG"):
            raise
        from .engine.distributed import get_rank
        if get_rank() == 0:
            print(f"vidzoo: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
