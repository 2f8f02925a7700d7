"""The ``vidzoo`` command: list and inspect models, train, evaluate, predict, run the demo.

Known user errors (a missing path, an empty dataset, classes that differ, a model that cannot take
the data...) are printed as one line ``vidzoo: error: ...`` with exit status 2; set
``VIDZOO_DEBUG=1`` to see their traceback. Anything else is a bug and raises.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from .engine.errors import UserError


# --------------------------------------------------------------------------------------- list/info
def cmd_list(args: argparse.Namespace) -> int:
    import fnmatch

    from . import list_aliases, list_models
    pattern = args.filter or ""
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = list_models(pattern, pretrained=args.pretrained)
    # an alias (vivit_tubelet, timesformer) lists the architecture it names, marked with the alias
    aliased: dict[str, list[str]] = {}
    for alias, target in list_aliases().items():
        if pattern and fnmatch.fnmatchcase(alias, pattern):
            for found in (target, f"{target}.*"):
                for name in list_models(found, pretrained=args.pretrained):
                    aliased.setdefault(name, []).append(alias)
    names = sorted(set(names) | set(aliased))
    width = max(map(len, names), default=0)
    for name in names:
        mark = f"  (alias {', '.join(aliased[name])})" if name in aliased and "." not in name else ""
        print(f"{name:<{width}}  {_license_label(name)}" if args.pretrained else name + mark)
    if not names:
        print(f"no {'pretrained ' if args.pretrained else ''}models match {args.filter!r}", file=sys.stderr)
    return 0


def _license_label(name: str) -> str:
    """A tag's licence, marked when it forbids commercial use (e.g. ``cc-by-nc-4.0``)."""
    from . import get_pretrained_cfg
    lic = get_pretrained_cfg(name).license or "unknown licence"
    return f"{lic} (NON-COMMERCIAL)" if _non_commercial(lic) else lic


def _non_commercial(license_: str | None) -> bool:
    return bool(license_) and "-nc" in license_.lower()


def _fmt_tuple(t: Sequence[Any]) -> str:
    return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in t) + ")"


def cmd_info(args: argparse.Namespace) -> int:
    from ._pretrained import describe_provenance
    from .engine.complexity import count_gmacs, count_params
    from .engine.model_io import explicit_tag, load_model, looks_like_path, model_complexity
    from .engine.options import parse_overrides
    from .engine.validation import check_model_size_flags
    from .models import (get_pretrained_cfg, list_aliases, list_models, list_pretrained, resolve_alias,
                         split_model_name_tag)
    overrides = parse_overrides(args.set)
    try:
        check_model_size_flags(args.num_frames, args.img_size, overrides)
    except ValueError as e:
        raise UserError(str(e)) from e
    if args.num_frames:
        overrides["num_frames"] = args.num_frames
    if args.img_size:
        overrides["img_size"] = args.img_size
    name = args.model
    registry = not looks_like_path(name) and not name.startswith(("local-dir:", "hf-hub:"))
    if registry:
        info = model_complexity(name, **overrides)  # UserError naming the closest models for unknown names
        arch, tag = split_model_name_tag(resolve_alias(name))
        tag_cfg = get_pretrained_cfg(resolve_alias(name))
        cfg = tag_cfg.to_dict()
        model = info["model"]
        cfg.update({k: model.pretrained_cfg[k] for k in ("input_size", "num_frames", "num_classes", "mean", "std")})
        params = info["params"]
        if explicit_tag(name) and tag_cfg.has_weights:
            weights = (f"{arch}.{tag} from {tag_cfg.hf_hub_id or tag_cfg.file} (loaded by train / eval / predict "
                       "--model with this tag)")
        elif explicit_tag(name):
            weights = f"none: tag '{tag}' has no weights (random initialisation)"
        else:
            weights = ("none: random initialisation (name a tag, e.g. " + ", ".join(list_pretrained(arch)[:2])
                       + ", or pass --pretrained, to load weights)" if list_pretrained(arch)
                       else "none: random initialisation (this architecture has no pretrained tags)")
    else:
        model = load_model(name, require_weights=False, **overrides)
        cfg = dict(model.pretrained_cfg)
        arch, tag = getattr(model, "architecture", "?"), cfg.get("tag") or ""
        params = count_params(model)
        info = {"gmacs": count_gmacs(model.to("meta"), tuple(cfg["input_size"]))}  # info needs shapes only
        weights = describe_provenance(cfg.get("provenance"))
    from .engine.model_io import describe_architecture
    print(name)
    rows = [("architecture", f"{arch} ({describe_architecture(model)})")]
    rows += _positions_and_head(model)
    rows.append(("params", f"{params / 1e6:.2f}M"))
    gmacs = info["gmacs"]
    rows.append(("GMACs", (f"{gmacs:.2f}" if gmacs >= 0.1 else f"{gmacs:.3g}")
                 + " (multiply-adds of one clip, batch 1; what the papers call GFLOPs; counted on the meta device)"))
    c, t, h, w = cfg["input_size"]
    sampling = cfg.get("sampling") or "dense"
    stride = f", stride {cfg.get('frame_sample_rate')}" if sampling == "dense" and cfg.get("frame_sample_rate") else ""
    rows.append(("input", f"(C, T, H, W) = ({c}, {t}, {h}, {w}), {sampling} sampling{stride}, "
                          f"mean {_fmt_tuple(cfg['mean'])}, std {_fmt_tuple(cfg['std'])}"))
    rows.append(("test views", f"{cfg.get('test_num_clips') or 1} clips x {cfg.get('test_num_crops') or 1} crops"))
    rows.append(("weights", weights))
    label_names = cfg.get("label_names")
    rows.append(("classes", f"{cfg.get('num_classes', model.num_classes)}"
                            + (f" ({', '.join(label_names[:8])}{', ...' if len(label_names) > 8 else ''})"
                               if label_names else "")))
    if registry:
        tags = [n for n in list_models(arch, include_tags=True) if "." in n]
        with_weights = set(list_pretrained(arch))
        rows.append(("tags", ", ".join(f"{n}{'' if n in with_weights else ' (no weights)'}" for n in tags)
                     or "none (random init only)"))
        aliases = [a for a, target in list_aliases().items() if split_model_name_tag(target)[0] == arch]
        rows.append(("aliases", ", ".join(aliases) or "none"))
    if cfg.get("paper_name"):
        rows.append(("paper", f"{cfg['paper_name']} ({cfg.get('paper_ids')})"))
    if cfg.get("license"):
        rows.append(("license", cfg["license"] + (" (non-commercial use only)" if _non_commercial(cfg["license"])
                                                  else "")))
    if cfg.get("notes"):
        rows.append(("notes", cfg["notes"]))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}} : {v}")
    return 0


_POSITIONS = {"joint": "learnt table over the clip", "separable": "learnt spatial table + time table",
              "space": "learnt spatial table", "sincos": "fixed 1-D sin-cos table",
              "rope3d": "3-D rotary embedding of q and k, positions from the token grid"}


def _positions_and_head(model) -> list[tuple[str, str]]:
    """``info`` rows: the position scheme and the head (pooling, attentive pooler, classes)."""
    pos = getattr(model, "pos_embed_type", None)
    rows = []
    if pos:
        layout = f", {model.rope_layout} layout" if pos == "rope3d" else ""
        rows.append(("positions", f"{pos} ({_POSITIONS.get(pos, pos)}{layout})"))
    pool = getattr(model, "global_pool", None)
    if pool:
        if pool == "attentive":
            layers = getattr(model, "attn_pool_layers", None)
            reads = (f"the normed tokens of blocks {', '.join(map(str, layers))}" if layers
                     else "the final normed tokens")
            desc = (f"attentive pooler ({model.attn_pool.depth} blocks, {model.attn_pool.num_heads} heads) over "
                    f"{reads}")
        else:
            desc = {"token": "class token", "avg": "mean of the tokens"}.get(pool, pool)
        fc_norm = getattr(model, "fc_norm", None)
        if fc_norm is not None and any(True for _ in fc_norm.parameters()):
            desc += " + fc_norm"
        n = getattr(model, "num_classes", 0)
        rows.append(("head", desc + (f" -> linear {n} classes" if n else " (features: no classifier)")))
    return rows


# ------------------------------------------------------------------------------------------- train
def _train_config(args: argparse.Namespace):
    """The :class:`TrainConfig` of ``vidzoo train``: one field per option (its parser is generated from it).

    Values come from ``--recipe``, then ``--config``, then the options given on the command line,
    each overriding the one before. With ``--resume`` the run's options are read from the run
    (``RUN/train_config.json``, or the checkpoint named by ``--resume CKPT``); the options given on
    the command line must agree with them, except those a resumed run may change.
    """
    from .engine.config import (RESUME_MAY_CHANGE, TrainConfig, load_train_config, merge_train_kwargs, recipe_kwargs,
                                resume_conflicts, resume_refusal, train_config_kwargs)
    from .engine.model_io import looks_like_path, wants_weights
    from .engine.options import config_flag, config_kwargs, required_fields
    given = _given_train_options(getattr(args, "argv", None))
    kwargs = config_kwargs(TrainConfig, args)
    fields = set(TrainConfig.__dataclass_fields__)
    layers: list[tuple[str, dict[str, Any]]] = []
    if args.resume and (args.config or args.recipe):
        raise UserError("--config / --recipe start a run; --resume continues the run in --output with its own "
                        "options (give only what may change, e.g. --epochs)")
    stored = _resumed_run_options(args, given) if args.resume else None
    if stored is None:
        if args.recipe:
            layers.append((f"recipe '{args.recipe}'", recipe_kwargs(args.recipe)))
        if args.config:
            layers.append((f"--config '{args.config}'", load_train_config(args.config)))
        layers.append(("the command line", {k: v for k, v in kwargs.items() if k in given}))
        merged = merge_train_kwargs(*(layer for _, layer in layers))
        missing = [config_flag(TrainConfig, name) for name in required_fields(TrainConfig) if merged.get(name) is None]
        if missing:
            raise UserError(f"the following arguments are required: {', '.join(missing)} (or --resume, to continue "
                            f"the run in --output with its own; or --config FILE giving them)")
        model = str(merged["model"])
        pretrained = kwargs["pretrained"] if "pretrained" in given else merged.get("pretrained")
    else:
        model = args.model if "model" in given else str(stored.get("model"))
        pretrained = args.pretrained
    if pretrained is False and (looks_like_path(model) or model.startswith(("local-dir:", "hf-hub:"))):
        raise UserError(f"--no-pretrained applies to registry names; to train the architecture of '{model}' "
                        "from scratch, name the architecture (vidzoo info shows it)")
    # A tag on the command line is a request for its weights (--no-pretrained, or "pretrained": false in a config
    # file: train it from scratch).
    kwargs["pretrained"] = wants_weights(model, pretrained)
    if stored is None:
        kwargs = {**merged, "pretrained": kwargs["pretrained"]}
    else:
        from_cli = given | ({"pretrained"} if "model" in given else set())
        conflicts = resume_conflicts(stored, kwargs, names=from_cli - set(RESUME_MAY_CHANGE))
        if conflicts:
            raise resume_refusal(conflicts, _stored_from(args))
        run = train_config_kwargs({k: v for k, v in stored.items() if k in fields}, _stored_from(args))
        kwargs = {**run, **{k: kwargs[k] for k in from_cli if k in fields},
                  "output": kwargs["output"], "resume": kwargs["resume"], "overwrite": kwargs["overwrite"]}
        layers = [(_stored_from(args), run)]
    try:
        return TrainConfig(**kwargs)
    except (TypeError, ValueError) as e:
        msg = str(e).splitlines()[0]
        flag = msg.split()[0] if msg.startswith("--") else ""
        field = next((name for name in kwargs if config_flag(TrainConfig, name) == flag), None)
        source = next((src for src, layer in reversed(layers) if field in layer), None) if field else None
        raise UserError(msg + (f" (from {source})" if source and source != "the command line" else "")) from e


def cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import list_recipes, read_recipe
    if args.name:
        try:
            recipe = read_recipe(args.name)
        except ValueError as e:
            raise UserError(str(e)) from e
        print(json.dumps(recipe, indent=2))
        return 0
    names = list_recipes()
    width = max(map(len, names), default=0)
    for name in names:
        recipe = read_recipe(name)
        print(f"{name:<{width}}  {recipe.get('summary', '')}")
        source = recipe.get("source", {})
        for key in ("paper", "config"):
            if source.get(key):
                print(f"{'':<{width}}    {key}: {source[key]}")
    print("\nvidzoo recipes NAME prints one (the JSON that vidzoo train --recipe NAME applies; flags override it)")
    return 0


def _stored_from(args: argparse.Namespace) -> str:
    """Where ``--resume`` reads the run's options."""
    from .engine.run_layout import RunLayout
    return str(RunLayout(args.output).train_config) if args.resume is True else f"checkpoint {args.resume}"


def _resumed_run_options(args: argparse.Namespace, given: set[str]) -> dict[str, Any] | None:
    """The options of the run that ``--resume`` continues: ``RUN/train_config.json`` (bare
    ``--resume``) or the config in the checkpoint ``--resume CKPT``; None when there is none and
    the command line gives ``--model`` and ``--data`` (the trainer then checks them against the
    checkpoint)."""
    from .engine.checkpoint import load_checkpoint
    from .engine.config import run_config
    try:
        if args.resume is True:
            return run_config(args.output)["config"]
        config = load_checkpoint(args.resume, mmap=True).get("config")
        if not isinstance(config, dict):
            raise UserError(f"checkpoint '{args.resume}' holds no run config")
        return config
    except UserError as e:
        if {"model", "data"} <= given:
            return None
        raise UserError(f"--resume: {_one_line(str(e))}; without the run's options, give them again (--model, "
                        f"--data, ...)") from e


def _given_train_options(argv: Sequence[str] | None) -> set[str]:
    """The ``vidzoo train`` options (config field names) given on the command line ``argv``, not
    their defaults: they override ``--config`` / ``--recipe`` and are checked against a resumed run
    (abbreviations included: the train parser is run again with no defaults)."""
    if argv is None:  # not through main(): count every option as given (each is then checked)
        from .engine.config import TrainConfig
        return set(TrainConfig.__dataclass_fields__)
    parser = build_parser()
    train = _subparsers(parser)["train"]
    for action in train._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    ns, _ = parser.parse_known_args(list(argv))
    return set(vars(ns)) - {"command", "func", "threads", "config", "recipe"}


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.trainer import train
    with torch_threads(args.threads):
        result = train(_train_config(args))
    if result.is_main:  # after train() has left torch.distributed every rank would call itself the main one
        _print_train_outputs(result)
    return 0


def _print_train_outputs(result) -> None:
    from .engine.run_layout import RunLayout
    run = RunLayout(result.output)
    best = (f"best val top-1 {result.best_top1:.2f}% at epoch {result.best_epoch}" if result.best_top1 is not None
            else f"no validation data; final model = epoch {result.best_epoch}")
    if result.best_top1 is not None and result.model_epoch not in (None, result.best_epoch):
        top1 = f", val top-1 {result.model_top1:.2f}%" if result.model_top1 is not None else ""
        best += (f", but its checkpoint is gone: the final model is the last epoch's (epoch {result.model_epoch}"
                 f"{top1})")
    print(f"done: {best}")
    written = [p for p in run.outputs() if p.exists() and (p != run.model_dir or result.model_dir is not None)]
    print(f"outputs in {run.root}/: " + ", ".join(str(p.relative_to(run.root)) + ("/" if p.is_dir() else "")
                                                  for p in written))


# -------------------------------------------------------------------------------------- eval/predict
def _load(args: argparse.Namespace):
    """The model of eval / predict: a tag loads its weights; a model without weights is refused."""
    from .engine.model_io import load_model
    from .engine.options import parse_overrides
    from .engine.validation import validate_eval_options
    overrides = parse_overrides(getattr(args, "set", None))
    try:
        validate_eval_options(batch_size=getattr(args, "batch_size", None), workers=getattr(args, "workers", None),
                              frame_stride=getattr(args, "frame_stride", None), num_frames=args.num_frames,
                              img_size=args.img_size, top_k=getattr(args, "top_k", None),
                              num_samples=getattr(args, "num_samples", None), overrides=overrides)
    except ValueError as e:
        raise UserError(str(e)) from e
    if getattr(args, "num_frames", None):
        overrides["num_frames"] = args.num_frames
    if getattr(args, "img_size", None):
        overrides["img_size"] = args.img_size
    return load_model(args.model, pretrained=args.pretrained, weights=args.weights, **overrides)


def _default_eval_output(model: str) -> Path:
    from .engine.run_layout import RunLayout
    run = RunLayout(model)
    return run.eval_dir if run.is_run() else Path("vidzoo-eval")


def cmd_eval(args: argparse.Namespace) -> int:
    from .engine.distributed import is_main_process
    from .engine.inference import run_evaluation
    from .engine.video_inputs import is_unlabelled_folder
    if is_unlabelled_folder(args.data):
        return _eval_unlabelled(args)
    with torch_threads(args.threads):
        model = _load(args)
        output = Path(args.output) if args.output else _default_eval_output(args.model)
        run = run_evaluation(model, args.data, views=args.views, batch_size=args.batch_size, workers=args.workers,
                             device=args.device, output=output, split=args.split, amp=args.amp,
                             num_visuals=args.num_samples, progress=args.progress, sampling=args.sampling,
                             frame_stride=args.frame_stride, on_error=args.on_error, view_merge=args.view_merge,
                             compile=args.compile)
    if is_main_process():
        r = run.result
        merged = " (clip tokens merged)" if args.view_merge == "tokens" else ""
        topk = f"  top-{r.k} {r.topk:.2f}%" if r.k else ""
        print(f"{r.num_samples} videos scored, {run.views[0]}x{run.views[1]} views{merged}: top-1 {r.top1:.2f}%"
              f"{topk}  loss {r.loss:.4f}")
        if r.single_prediction is not None and r.num_samples > 1:
            print(f"note: every video was predicted '{run.class_names[r.single_prediction]}': top-1 is that class's "
                  "share of the data")
        if r.unreadable:
            print(f"{len(r.unreadable)} unreadable video(s) excluded from every figure:")
            for u in r.unreadable:
                print(f"  {u['path']}: {u['reason']}")
        for name, acc in zip(run.class_names, r.per_class_accuracy):
            if acc is not None:
                print(f"  {name:<24} {acc:6.2f}%")
        print(f"report in {output}/: " + ", ".join(p.name for p in run.files.values()))
    return 0


def _eval_unlabelled(args: argparse.Namespace) -> int:
    """``vidzoo eval --data FOLDER`` of a folder holding videos directly: predictions, no accuracy."""
    from .engine.distributed import is_main_process
    from .engine.inference import run_unlabelled
    if args.split:
        raise UserError(f"--split: '{args.data}' holds videos directly (no train/val/test or class folders)")
    with torch_threads(args.threads):
        model = _load(args)
        output = Path(args.output) if args.output else _default_eval_output(args.model)
        run = run_unlabelled(model, args.data, views=args.views, batch_size=args.batch_size, workers=args.workers,
                             device=args.device, output=output, amp=args.amp, progress=args.progress,
                             sampling=args.sampling, frame_stride=args.frame_stride, on_error=args.on_error,
                             view_merge=args.view_merge, compile=args.compile)
    if is_main_process():
        ok = [p for p in run.predictions if p.ok]
        print(f"'{args.data}' holds videos directly, not in class folders: no labels, so no accuracy. "
              f"{len(ok)} videos predicted, {run.views[0]}x{run.views[1]} views")
        for p in run.predictions:
            if not p.ok:
                print(f"  unreadable, excluded: {p.path}: {p.error}")
        for path, why in run.ignored:
            print(f"  ignored '{path}': {why}")
        print(f"report in {output}/: " + ", ".join(p.name for p in run.files.values()))
    return 0


def _predict_timeline(args: argparse.Namespace) -> int:
    from .engine.options import DEFAULT_TIMELINE_OUTPUT
    from .engine.timeline import check_timeline_output, parse_span, run_timelines, summary_lines
    for flag, value in (("--window", args.window), ("--stride", args.stride)):
        parse_span(value, fps=1000.0, what=flag)  # a malformed span is the user's error before any video is read
    output = args.output or DEFAULT_TIMELINE_OUTPUT
    for flag, value in (("--views", args.views), ("--sampling", args.sampling)):
        if value:
            raise UserError(f"{flag} does not apply to --timeline (one centre view per window; "
                            f"use --window / --stride)")
    inputs = _video_inputs(args.videos)
    check_timeline_output(inputs.paths, output)  # before the model loads
    with torch_threads(args.threads):
        model = _load(args)
        done, failed = run_timelines(model, inputs, output, window=args.window, stride=args.stride,
                                     frame_stride=args.frame_stride, top_k=args.top_k, batch_size=args.batch_size,
                                     device=args.device, amp=args.amp, progress=args.progress, compile=args.compile)
    for tl, _, _ in done:
        if tl.warning:
            print(f"vidzoo: warning: {tl.warning}", file=sys.stderr)
    if args.json:
        print(json.dumps([dict(tl.to_dict(args.top_k), csv=str(c), png=str(p)) for tl, c, p in done]
                         + [{"path": v, "error": e} for v, e in failed], indent=2, allow_nan=False))
    else:
        for tl, c, p in done:
            print("\n".join(summary_lines(tl)))
            print(f"  wrote {c} and {p}")
    for v, e in failed:
        print(f"vidzoo: cannot read video '{v}': {e}", file=sys.stderr)
    if failed:  # partial results, as plain predict: the readable videos were answered above
        print(f"vidzoo: {len(failed)} of {len(inputs)} videos could not be read", file=sys.stderr)
        return 1
    return 0


def _video_inputs(videos: Sequence[str]):
    """``VIDEO...`` of predict / embed expanded into videos (folders into the videos below them); the
    entries seen but not read are named on stderr."""
    from .engine.video_inputs import expand_video_inputs
    inputs = expand_video_inputs(videos)
    for path, why in inputs.ignored:
        print(f"vidzoo: ignoring '{path}': {why}", file=sys.stderr)
    return inputs


def cmd_predict(args: argparse.Namespace) -> int:
    if getattr(args, "timeline", False):
        return _predict_timeline(args)
    from .engine.inference import predict_videos
    for flag, value in (("--output", args.output), ("--window", args.window), ("--stride", args.stride)):
        if value:
            raise UserError(f"{flag} applies to --timeline; plain predict prints its answers")
    inputs = _video_inputs(args.videos)
    with torch_threads(args.threads):
        model = _load(args)
        preds = predict_videos(model, inputs, top_k=args.top_k, views=args.views, device=args.device,
                               amp=args.amp, sampling=args.sampling, frame_stride=args.frame_stride,
                               compile=args.compile)
    failed = [p for p in preds if not p.ok]
    for p in preds:
        if p.warning:
            print(f"vidzoo: warning: {p.warning}", file=sys.stderr)
    if args.json:
        print(json.dumps([p.to_dict() for p in preds], indent=2, allow_nan=False))
    else:
        for p in preds:
            if not p.ok:
                continue
            print(p.path)
            width = max(len(name) for _, name, _ in p.top)
            for rank, (_, name, prob) in enumerate(p.top, 1):
                print(f"  {rank}. {name:<{width}}  {prob:.4f}")
    for p in failed:
        print(f"vidzoo: cannot read video '{p.path}': {p.error}", file=sys.stderr)
    if failed:  # partial results: the readable videos were answered above
        print(f"vidzoo: {len(failed)} of {len(preds)} videos could not be read", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------- embed
def cmd_embed(args: argparse.Namespace) -> int:
    from .engine.embed import check_embed_output, embed, write_embeddings
    from .engine.timeline import parse_span
    for flag, value in (("--window", args.window), ("--stride", args.stride)):
        parse_span(value, fps=1000.0, what=flag)  # a malformed span is the user's error before any video is read
    check_embed_output(args.output, args.inputs)  # before the model loads
    inputs = _video_inputs(args.inputs)
    with torch_threads(args.threads):
        model = _load(args)
        result = embed(model, inputs, views=args.views, window=args.window, stride=args.stride, pool=args.pool,
                       batch_size=args.batch_size, workers=args.workers, device=args.device, amp=args.amp,
                       sampling=args.sampling, frame_stride=args.frame_stride, on_error=args.on_error,
                       progress=args.progress and sys.stderr.isatty(), compile=args.compile)
        files = write_embeddings(result, args.output)
    bad = result.unreadable
    shape = "x".join(map(str, result.embeddings.shape))
    what = f"{result.embeddings.shape[0]} windows of " if args.window else ""
    print(f"embedded {what}{len(inputs) - len(bad)} of {len(inputs)} videos: {files['embeddings']} "
          f"(tensor 'embeddings', float32, {shape}) and {files['index']}")
    for r in bad:
        print(f"vidzoo: cannot read video '{r.path}': {r.reason}", file=sys.stderr)
    if bad:  # partial results: every readable input was embedded and written
        print(f"vidzoo: {len(bad)} of {len(inputs)} inputs could not be read (status 'unreadable' in index.csv)",
              file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------- prepare
def cmd_prepare(args: argparse.Namespace) -> int:
    from .engine.prepare import prepare_videos

    def named(r) -> None:  # each video that has no prepared copy, as soon as it is known
        if not r.ok:
            print(f"vidzoo: {'cannot read video' if r.status == 'unreadable' else 'not prepared'} "
                  f"'{r.source}': {r.reason}", file=sys.stderr)
    report = prepare_videos(args.data, args.output, short_side=args.short_side, gop=args.gop, fps=args.fps,
                            crf=args.crf, workers=args.workers, progress=None if args.progress else False,
                            on_result=named)
    for r in report.results:
        if r.status == "not prepared":
            named(r)
    ok = [r for r in report.results if r.ok]
    src_mb = sum(r.source_bytes or 0 for r in ok) / 1e6
    out_mb = sum(r.output_bytes or 0 for r in ok) / 1e6
    print(f"{report.count('prepared')} prepared, {report.count('skipped')} already done, {len(report.failed)} without "
          f"a prepared copy, of {len(report.results)} videos; {src_mb:.1f} MB -> {out_mb:.1f} MB in "
          f"{Path(args.output)}/")
    for lst in report.lists:
        print(f"list rewritten: {lst} (train with --data {lst})")
    if report.report is not None:
        print(f"report: {report.report}")
    if report.failed:
        print(f"vidzoo: {len(report.failed)} of {len(report.results)} videos were not prepared (named above)",
              file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------ demo/convert
def cmd_demo(args: argparse.Namespace) -> int:
    from .engine.demo import DemoConfig, run_demo
    cfg = DemoConfig(output=args.output, epochs=args.epochs, num_classes=args.classes,
                     videos_per_class=args.videos_per_class, val_videos_per_class=args.val_videos_per_class,
                     device=args.device, seed=args.seed, workers=args.workers, threads=args.threads,
                     progress=args.progress, overwrite=args.overwrite)
    run_demo(cfg)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ._convert import CheckpointError
    from ._hub import HubDownloadError
    from .convert import convert_checkpoint
    from .engine.options import parse_overrides
    if not args.src.startswith("hf-hub:") and not Path(args.src).exists():
        raise UserError(f"convert: source '{args.src}' does not exist")
    try:
        model = convert_checkpoint(args.src, args.dst, model_name=args.model, inflation=args.inflation,
                                   **parse_overrides(args.set))
    except HubDownloadError as e:
        if e.reason not in ("offline", "unreachable"):
            raise UserError(f"convert: {str(e).splitlines()[0]}") from e
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if e.reason == "offline" else "the Hub cannot be reached"
        raise UserError(f"convert: cannot download '{e.filename}' of Hub repo '{e.repo_id}': it is not in the local "
                        f"cache and {why}. "
                        f"Download the repo where there is network (`hf download {e.repo_id} --local-dir DIR`), "
                        f"then `vidzoo convert DIR {args.dst}`") from e
    except (FileNotFoundError, ValueError, TypeError, CheckpointError) as e:
        raise UserError(f"convert: {str(e).splitlines()[0]}") from e
    from .engine.model_io import describe_architecture
    print(f"converted {args.src} -> {args.dst} ({model.architecture}: {describe_architecture(model)}; "
          f"{model.num_classes} classes); load it with --model {args.dst} or vidzoo.create_model('{args.dst}')")
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
    except (ExportCheckError, ImportError, ValueError) as e:
        raise UserError(f"export: {e}") from e
    for r in results:
        print("\n".join(summary_lines(r)))
    return 0


# -------------------------------------------------------------------------------------------- parser
def _add(p: argparse.ArgumentParser, groups: dict[str | None, Any], name: str, option: Any,
         group: str | None | type(...) = ...) -> None:
    """Add a shared :class:`~vidzoo.engine.options.Option` as dest ``name``, in its argument group
    (or ``group``), creating the group on first use."""
    from .engine.options import add_option
    title = option.group if group is ... else group
    if title not in groups:
        groups[title] = p.add_argument_group(title)
    add_option(groups[title], name, option)


def _model_options(p: argparse.ArgumentParser, groups: dict[str | None, Any], weights: bool = True) -> None:
    """``--model`` and the model group (``--pretrained``, ``--weights``, ``--num-frames``, ``--img-size``,
    ``--set``): one definition for every command that loads a model."""
    from .engine import options as o
    for name, option in (("model", o.MODEL), ("pretrained", o.PRETRAINED), ("weights", o.WEIGHTS),
                         ("num_frames", o.NUM_FRAMES), ("img_size", o.IMG_SIZE), ("set", o.SET)):
        if name != "weights" or weights:
            _add(p, groups, name, option)


def _sampling_options(p: argparse.ArgumentParser, groups: dict[str | None, Any]) -> None:
    from .engine import options as o
    _add(p, groups, "sampling", o.SAMPLING)
    _add(p, groups, "frame_stride", o.FRAME_STRIDE)


def _runtime_options(p: argparse.ArgumentParser, groups: dict[str | None, Any]) -> None:
    from .engine import options as o
    for name, option in (("batch_size", o.BATCH_SIZE), ("workers", o.WORKERS), ("device", o.DEVICE),
                         ("amp", o.AMP), ("compile", o.COMPILE), ("progress", o.PROGRESS)):
        _add(p, groups, name, option)
    _threads_option(groups["runtime"], why="1 is often faster for small models on few or busy cores")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _window_options(group: argparse._ArgumentGroup, window_help: str) -> None:
    """``--window`` / ``--stride`` of predict --timeline and embed (laid out by engine.timeline)."""
    group.add_argument("--window", metavar="SPAN", help=window_help)
    group.add_argument("--stride", metavar="SPAN", help="step between window starts, seconds or frames "
                                                        "(default half the window)")


def _threads_option(p: argparse.ArgumentParser | argparse._ArgumentGroup, default: int = 0, why: str = "") -> None:
    """``--threads N``: torch's CPU (intra-op) threads for the command; 0 keeps torch's default."""
    p.add_argument("--threads", type=_non_negative_int, default=default, metavar="N",
                   help="torch CPU threads (0 = torch's default, one per core)" + (f"; {why}" if why else "")
                        + f" (default {default})")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` (n > 0), restoring the previous count after.

    Small models on a few (or shared) cores are often faster with one thread: the intra-op thread
    pool's synchronisation costs more than it saves (see docs/training.md for a measurement).
    """
    if not n:
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_parser() -> argparse.ArgumentParser:
    from ._choices import EMBED_POOLS, EXPORT_FORMATS, INFLATION_MODES, SPLITS, VIEW_MERGES
    from .engine import options as o
    from .engine.config import TrainConfig
    from .version import __version__
    parser = argparse.ArgumentParser(
        prog="vidzoo", description="Video transformers (ViViT, TimeSformer, VideoMAE): list, inspect, train, "
                                   "evaluate, predict, export.",
        epilog="Multi-GPU / multi-node: torchrun --nproc_per_node N -m vidzoo train ... "
               "Set VIDZOO_DEBUG=1 for tracebacks of user errors.")
    parser.add_argument("--version", action="version", version=f"vidzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("filter", nargs="?", help="substring or wildcard pattern, e.g. 'vivit' or 'timesformer_*_base*'")
    p.add_argument("--pretrained", action="store_true",
                   help="only tags with weights (arch.tag names), each with its licence (non-commercial ones marked)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="architecture, parameters, GMACs, input and tags of a model")
    p.add_argument("model", help=o.MODEL_HELP)
    groups: dict[str | None, Any] = {None: p}
    for name, option in (("num_frames", o.NUM_FRAMES), ("img_size", o.IMG_SIZE), ("set", o.SET)):
        _add(p, groups, name, option, group=None)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train or fine-tune a model on a folder, list file or npz",
                       description="Train a model. --data: a folder root/<class>/<video> (or root/{train,val}/...),"
                                   " a .csv/.tsv/.txt list of 'path,label', or an .npz of volumes "
                                   "({train,val,test}_images/_labels, e.g. OrganMNIST3D). Every option is a field "
                                   "of vidzoo.engine.TrainConfig. --model, --data and --output are required, on "
                                   "the command line or in --config, except with --resume: `vidzoo train --output "
                                   "RUN --resume [--epochs N]` continues the run with the options in "
                                   "RUN/train_config.json. Values come from --recipe, then --config, then the "
                                   "options given (each overrides the one before).")
    p.add_argument("--config", metavar="FILE",
                   help="a JSON or YAML file of TrainConfig fields (a run's own train_config.json repeats the run)")
    p.add_argument("--recipe", metavar="NAME",
                   help="a named recipe under --config and the flags (vidzoo recipes lists them)")
    # --model, --data and --output may come from --config or --resume: checked in _train_config
    groups = o.add_config_options(p, TrainConfig, group_order=("model", "input", "augmentation", "optimisation",
                                                               "runtime"), defer_required=True)
    _threads_option(groups["runtime"], why="1 is often faster for small models on few or busy cores")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("recipes", help="list the named training recipes, or print one",
                       description="The named training recipes, each with its source (paper, upstream config "
                                   "file). With a name: the recipe as JSON, what vidzoo train --recipe NAME applies "
                                   "(flags given on the command line override it).")
    p.add_argument("name", nargs="?", help="the recipe to print")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("eval", help="evaluate a model: top-1/top-k, per-class, confusion matrix, sample clips")
    groups = {None: p}
    _model_options(p, groups)
    p.add_argument("--data", required=True, help="folder of class folders, list file or npz (its test split); a "
                                                 "folder holding videos directly has no labels: its videos (at any "
                                                 "depth) are predicted into predictions.csv, without accuracy")
    p.add_argument("--views", help="temporal clips x spatial crops, e.g. 1x1, 4x3 (default: the model's)")
    p.add_argument("--view-merge", choices=VIEW_MERGES, default=VIEW_MERGES[0],
                   help="how views combine: probs = softmax averaged over every view (default); tokens = "
                        "attentive-pool models (V-JEPA 2 probes): each crop's clips encoded apart, their tokens "
                        "concatenated and read by the head once, softmax averaged over crops (how V-JEPA 2 "
                        "reports its probes)")
    p.add_argument("--split", choices=SPLITS, help="npz split or split sub-folder")
    _add(p, groups, "on_error", o.ON_ERROR_OPTION)
    p.add_argument("--output", help="report folder (default: MODEL/eval for a training folder, else ./vidzoo-eval)")
    p.add_argument("--num-samples", type=int, default=8,
                   help="clips in the captioned sample picture and gif (samples.png, samples.gif)")
    _sampling_options(p, groups)
    _runtime_options(p, groups)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k labels of video files",
                       description="Top-k labels of video files. Every readable video is answered; unreadable ones "
                                   "are named on stderr (and marked with \"ok\": false and an \"error\" in --json "
                                   "output) and the exit status is then 1.")
    groups = {None: p}
    _model_options(p, groups)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help=o.INPUTS_HELP)
    p.add_argument("--top-k", type=int, default=5, help="labels printed per video")
    p.add_argument("--views", help="temporal clips x spatial crops (default: the model's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _sampling_options(p, groups)
    _add(p, groups, "device", o.DEVICE)
    _add(p, groups, "amp", o.AMP)
    _add(p, groups, "compile", o.COMPILE)
    _threads_option(groups["runtime"], why="1 is often faster for small models on few or busy cores")
    t = p.add_argument_group("timeline (long videos)")
    t.add_argument("--timeline", action="store_true",
                   help="slide the clip window over each whole video; writes <name>_timeline.csv/.png to --output")
    _window_options(t, "window length, seconds ('2s') or frames ('64'); default the model's clip span, "
                       "(T-1) x frame stride + 1 frames")
    t.add_argument("--output", help=f"folder for the timeline files (default ./{o.DEFAULT_TIMELINE_OUTPUT})")
    t.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    groups["timeline"] = t
    _add(p, groups, "progress", o.PROGRESS, group="timeline")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("embed", help="one feature vector per video (or per window): embeddings.safetensors + index.csv",
                       description="Embed videos with a model: its pooled pre-logits features (what its classifier "
                                   "reads), one vector per readable video, or per window with --window. Writes "
                                   "OUTPUT/embeddings.safetensors (tensor 'embeddings', float32, (N, D); with --pool "
                                   "tokens (N, T', H', W', D)) and OUTPUT/index.csv (row, path, label, status, "
                                   "start_s, end_s, reason: one line per input or window; 'row' is its row in the "
                                   "tensor). Unreadable inputs are named on stderr and marked in index.csv, the "
                                   "readable ones are all written, and the exit status is then 1.")
    groups = {None: p}
    _model_options(p, groups)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=o.INPUTS_HELP)
    p.add_argument("--output", required=True, help="folder for embeddings.safetensors and index.csv")
    p.add_argument("--views", help="temporal clips x spatial crops whose vectors are averaged, e.g. 4x3 "
                                   "(default 1x1: the centre clip)", default="1x1")
    p.add_argument("--pool", choices=EMBED_POOLS, default=EMBED_POOLS[0],
                   help="vector = the pooled features (N, D); tokens = the last block's normed token grid "
                        "(N, T', H', W', D), class tokens left out (one view)")
    w = p.add_argument_group("windows (long videos)")
    _window_options(w, "one embedding per window of this length, seconds ('2s') or frames ('64'), as predict "
                       "--timeline lays them out")
    groups["windows (long videos)"] = w
    _add(p, groups, "on_error", o.ON_ERROR_OPTION)
    _sampling_options(p, groups)
    _runtime_options(p, groups)
    p.set_defaults(func=cmd_embed)

    from .engine.prepare import DEFAULT_CRF, DEFAULT_GOP, DEFAULT_SHORT_SIDE
    p = sub.add_parser("prepare", help="re-encode a dataset's videos for fast training (short side, short GOPs)",
                       description="Re-encode every video of --data (a folder of any layout, or a list file) into "
                                   "--output with libx264: short side scaled down, a keyframe every --gop frames, "
                                   "frames and timestamps kept, audio dropped, relative paths kept (suffix .mp4). "
                                   "Each file is verified before it is renamed into place; a rerun skips what is "
                                   "done. Unreadable videos are named and the exit status is then 1.")
    p.add_argument("--data", required=True, help="folder of videos (class folders, train/val/test sub-folders) or "
                                                 "a .csv/.tsv/.txt list of 'path,label' (rewritten beside the videos)")
    p.add_argument("--output", required=True, help="folder for the prepared copy (new, empty, or an earlier "
                                                   "prepare output with the same settings, to complete it)")
    p.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE,
                   help=f"short side in pixels, never enlarged; both sides rounded to even (default {DEFAULT_SHORT_SIDE})")
    p.add_argument("--gop", type=int, default=DEFAULT_GOP, help=f"frames between keyframes (default {DEFAULT_GOP})")
    p.add_argument("--fps", type=float, help="resample to this constant frame rate (default: keep every frame)")
    p.add_argument("--crf", type=int, default=DEFAULT_CRF,
                   help=f"libx264 quality, 0 (lossless) .. 51; 18 is visually lossless (default {DEFAULT_CRF})")
    p.add_argument("--workers", type=int, help="videos encoded at once (default: one per CPU core)")
    _add(p, {None: p}, "progress", o.PROGRESS, group=None)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("demo", help="offline end to end: synthetic motion videos -> train -> eval -> predict")
    groups = {None: p}
    p.add_argument("--output", default="vidzoo-demo", help="output folder (default ./vidzoo-demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 30, the tuned demo value)")
    p.add_argument("--classes", type=int, default=4, help="motion directions, 2..8 (default 4)")
    p.add_argument("--videos-per-class", type=int, default=None, help="training videos per class (default 200)")
    p.add_argument("--val-videos-per-class", type=int, default=None,
                   help="validation videos per class (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training")
    p.add_argument("--overwrite", action="store_true",
                   help="write the videos afresh (a rerun into the same --output reuses the previous demo's videos "
                        "when the settings match, and replaces the demo's own run)")
    for name, option in (("device", o.DEVICE), ("workers", o.WORKERS), ("progress", o.PROGRESS)):
        _add(p, groups, name, option)
    _threads_option(groups["runtime"], default=1, why="1 is fastest for the tiny demo model")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("convert", help="convert an upstream checkpoint (HF transformers, official TimeSformer, "
                                       "VideoMAE, timm ViT) to a vidzoo model folder")
    p.add_argument("src", help="checkpoint file, HF transformers folder, or hf-hub:org/repo[@revision]")
    p.add_argument("dst", help="output vidzoo model folder (config.json + model.safetensors)")
    p.add_argument("--model", help="the vidzoo architecture of the checkpoint (arch or arch.tag, `vidzoo list`); "
                                   "needed when SRC has no HF config.json")
    p.add_argument("--inflation", default="central_frame", choices=INFLATION_MODES,
                   help="2-D -> tubelet kernel inflation for image checkpoints")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", default=[],
                   help="model arguments on top of those read from the checkpoint's config (as train's --set)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="export a model to ONNX or a torch.export program (.pt2), checked against eager",
                       description="Export a model (any --model that predict accepts) with a dynamic batch "
                                   "dimension; the written file is run back (onnxruntime / torch.export.load) on "
                                   "random clips and compared with the eager model.")
    groups = {None: p}
    _model_options(p, groups)
    p.add_argument("--format", choices=EXPORT_FORMATS, help="default: from --output's suffix (.onnx / .pt2)")
    p.add_argument("--output", required=True, nargs="+", metavar="FILE",
                   help="file(s) to write, e.g. model.onnx and/or model.pt2 (several files: one trace)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 20, torch's dynamo exporter default)")
    p.add_argument("--atol", type=float, default=1e-4, help="check tolerance: |file - eager| <= atol + rtol |eager|")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative part of the check tolerance")
    p.set_defaults(func=cmd_export)
    return _finish_help(parser)


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the text already states its default
    (``(default ...`` or starting with ``default``); flags and options without a default show none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if not action.option_strings or re.search(r"(^|\()default\b", help_text):
            return help_text
        if not self._has_default(action):
            return help_text
        return f"{help_text} (default: %(default)s)".strip()

    @staticmethod
    def _has_default(action: argparse.Action) -> bool:
        """Whether the option has a default worth printing (not a flag, not unset or empty)."""
        return not (action.default is None or action.default is False or action.default is argparse.SUPPRESS
                    or action.default == [] or action.nargs == 0)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``{command: parser}`` of the subcommands, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _finish_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every parser the defaults-showing formatter; an option added without a help text
    still shows its default."""
    for p in (parser, *_subparsers(parser).values()):
        p.formatter_class = HelpFormatter
        for action in p._actions:
            if action.help is None and action.option_strings and HelpFormatter._has_default(action):
                action.help = "(default: %(default)s)"
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions printed as one line with exit 2: :class:`UserError`, a video that cannot
    be read (under ``--on-error raise`` it is the user's to fix) and an output that cannot be
    written (``vidzoo._hub.OutputError``). Those modules import torch, so their error classes are
    looked up only if the module was loaded (nothing else can raise them)."""
    types: tuple[type[BaseException], ...] = (UserError,)
    decode, hub = sys.modules.get("vidzoo.data.decode"), sys.modules.get("vidzoo._hub")
    if decode is not None:
        types += (decode.UnreadableVideoError,)
    if hub is not None:  # an output in a read-only folder, on a full disk, a directory in the way
        types += (hub.OutputError,)
    return types


def _rank() -> int:
    """This process's rank in a torchrun job (0 without one), without importing torch for it."""
    if "torch.distributed" not in sys.modules:
        return 0
    from .engine.distributed import get_rank
    return get_rank()


def _one_line(msg: str) -> str:
    return " ".join(part.strip() for part in str(msg).splitlines() if part.strip())


_WEIGHTS_FILE = re.compile(r"pretrained_cfg_overlay=dict\(file='([^']*)'\)")
_GRID_OVERLAY = re.compile(r",? or pass its grid as pretrained_cfg_overlay=dict\(extra=\{.*?\}\)")
_MODEL_NAME = re.compile(r"\bmodel_name=(ARCH\b)?")


def cli_words(msg: str) -> str:
    """An error message of the Python API in the command's words: the flags that do what the keyword
    arguments it names do (``pretrained_cfg_overlay=dict(file=F)`` -> ``--weights F``, ``model_name=`` ->
    ``--model``, a model argument ``pad_mode='pad'`` -> ``--set pad_mode=pad``); an instruction with no
    flag (a position table's grid) is dropped. Library messages state values descriptively
    (``num_frames (7)``), so only instructions read as ``key=value``."""
    from ._validation import MODEL_ARG_CHECKS
    msg = _WEIGHTS_FILE.sub(r"--weights \1", msg)
    msg = _GRID_OVERLAY.sub("", msg)
    msg = _MODEL_NAME.sub("--model ARCH", msg)
    keys = "|".join(sorted(map(re.escape, MODEL_ARG_CHECKS), key=len, reverse=True))
    return re.sub(rf"(?<![-\w.])(?<!--set )({keys})=(?:'([^']*)'|\"([^\"]*)\"|([\w.]+))",
                  lambda m: f"--set {m.group(1)}={next(g for g in m.groups()[1:] if g is not None)}", msg)


def _refuse_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: Sequence[str]) -> None:
    """argparse's usage error for arguments the command does not take, naming the closest flag of the
    command for each misspelt one (``--val-splt`` -> ``--val-split``)."""
    import difflib
    sub = _subparsers(parser).get(getattr(args, "command", None)) or parser
    flags = [s for a in sub._actions for s in a.option_strings if s.startswith("--")]
    words = []
    for u in unknown:
        close = difflib.get_close_matches(u.split("=")[0], flags, n=1, cutoff=0.6) if u.startswith("--") else []
        words.append(f"{u} (did you mean {close[0]}?)" if close else u)
    sub.error("unrecognized arguments: " + " ".join(words))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vidzoo`` console script and ``python -m vidzoo``.

    Returns:
        Exit status: 0 on success, 2 on a user error (one line on stderr), 130 on Ctrl-C.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args, unknown)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what was given, not defaulted (train)
    try:
        return int(args.func(args) or 0)
    except _user_error_types() as e:  # evaluated when an exception is raised, not at start-up
        if _rank() == 0:
            if os.environ.get("VIDZOO_DEBUG"):
                traceback.print_exc()
            print(f"vidzoo: error: {_one_line(cli_words(str(e)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # train says what it saved and how to continue
        print(f"vidzoo: interrupted{': ' + _one_line(str(e)) if str(e) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
