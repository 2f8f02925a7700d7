"""Evaluate a model on a dataset path, and classify video files: the work behind ``vidzoo eval``
and ``vidzoo predict``.

Neither substitutes an unreadable video: evaluation excludes it from every figure and lists it in
its report; prediction answers every readable video and marks the others with the reason.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .._choices import ON_ERROR, VIEW_MERGES
from .._hub import ensure_output_dir
from ..data import UnreadableVideoError, VideoPathDataset, frame_count, load_clip
from ..data import parse_views as _parse_views
from ..data.unreadable import reason_of
from .data_sources import check_output_outside_data, open_eval
from .compile import maybe_compile
from .distributed import DistInfo, init_distributed
from .clip_span import SpanCheck, check_span, video_span_warning
from .errors import UserError, note, warn
from .evaluation import (EvalResult, evaluate, make_eval_loader, predict_probs, sample_names_of, visual_frame_indices,
                         write_eval_outputs)
from .pipelines import align_classes, build_dataset, check_input_fits, input_spec
from .precision import choose_amp
from .video_inputs import VideoInputs, expand_video_inputs

PathLike = str | os.PathLike


def parse_views(views: str | Sequence[int] | None, model: nn.Module | None = None) -> tuple[int, int]:
    """``'4x3'`` -> ``(4, 3)`` (temporal clips x spatial crops); None: the model's
    ``test_num_clips`` x ``test_num_crops`` (:func:`vidzoo.data.parse_views`).

    Raises:
        UserError: Not ``CLIPSxCROPS`` with clips >= 1 and crops 1 or 3.
    """
    try:
        return _parse_views(views, model.pretrained_cfg if model is not None else None)
    except ValueError as e:
        raise UserError(str(e)) from e


def class_names_of(model: nn.Module, data_classes: Sequence[str] | None = None) -> list[str]:
    """The model's label names, else the data's class names padded with indices to ``num_classes``."""
    names = model.pretrained_cfg.get("label_names")
    if names and len(names) == model.num_classes:
        return list(names)
    base = list(data_classes or [])[:model.num_classes]
    return base + [str(i) for i in range(len(base), model.num_classes)]


@dataclass
class EvalRun:
    """An evaluation and where its files went."""

    result: EvalResult
    class_names: list[str]
    views: tuple[int, int]
    files: dict[str, Path]
    data: str
    split: str | None
    span: SpanCheck | None = None


def run_evaluation(model: nn.Module, data: PathLike, views: str | tuple[int, int] | None = None,
                   batch_size: int = 8, workers: int = 0, device: str = "auto", output: PathLike | None = None,
                   split: str | None = None, amp: str = "auto", num_visuals: int = 8, progress: bool = True,
                   sampling: str | None = None, frame_stride: int | None = None,
                   on_error: str = "skip", view_merge: str = "probs", compile: bool = False) -> EvalRun:
    """Evaluate ``model`` on the data at ``data`` with multi-view testing and write the report.

    Args:
        model: A classifier whose ``pretrained_cfg`` describes its input (and label names).
        data: Folder, list file or npz (its ``test`` split unless ``split``).
        views: ``'CLIPSxCROPS'`` or a pair; None uses the model's test views.
        batch_size: Samples per batch (each with ``clips x crops`` views).
        workers: DataLoader workers.
        device: ``auto`` / ``cpu`` / ``cuda``.
        output: Folder for ``metrics.json``, CSVs, confusion matrix and sample pictures (rank 0);
            None writes nothing.
        split: Data split (npz split or split sub-folder).
        amp: See :class:`~vidzoo.engine.config.TrainConfig`.
        num_visuals: Clips in the captioned sample picture.
        progress: tqdm bar.
        sampling: Override the model's temporal sampling.
        frame_stride: Override the model's dense sampling stride.
        on_error: Unreadable videos: ``skip`` (excluded from every count and figure, listed in
            ``result.unreadable``, ``metrics.json``, ``predictions.csv`` and ``eval.log``) or
            ``raise`` (stop at the first, naming it). Never substituted.
        view_merge: ``probs`` (softmax averaged over every view) or ``tokens`` (attentive-pool models:
            each crop's clips encoded separately, their tokens concatenated, the head run once, the
            softmax averaged over crops; how V-JEPA 2's probes are scored).
        compile: ``torch.compile`` the model's forward (:func:`~vidzoo.engine.compile.maybe_compile`).

    Raises:
        UserError: Missing/empty data, classes the model does not know, clips of the wrong shape, no
            readable video at all, ``output`` inside the data folder.
        vidzoo.OutputError: ``output`` is a file, read-only, or the disk is full.
    """
    dinfo: DistInfo = init_distributed(device)
    if output is not None:
        check_output_outside_data(output, data, why="its report pictures would be read as data (a folder of .png "
                                                    "pictures is one more video)")
        if dinfo.is_main:
            ensure_output_dir(output, "report folder")  # before the evaluation, not after it
    model = model.to(dinfo.device).eval()
    label_names = model.pretrained_cfg.get("label_names")
    views = parse_views(views, model)
    if on_error not in ON_ERROR:
        raise UserError(f"--on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    check_view_merge(view_merge, model)
    listing, data_classes = open_eval(data, split, classes=label_names)
    spec = input_spec(model, sampling, frame_stride)
    span = check_span(listing, spec)
    span_msg = span.message() if span is not None else None
    if span_msg and dinfo.is_main:
        warn(span_msg)
    ds = build_dataset(listing, spec, train=False, views=views)
    check_input_fits(ds, spec, "the model")
    ds = align_classes(ds, data_classes, label_names, model.num_classes)
    names = class_names_of(model, data_classes)
    loader = make_eval_loader(ds, batch_size, workers, pin_memory=dinfo.device.type == "cuda", on_error=on_error)
    say = note if dinfo.is_main else _quiet
    precision = choose_amp(amp, dinfo.device, say=say, model=model, batch=batch_size * views[0] * views[1])
    run_model = maybe_compile(model, compile, device=dinfo.device, log=say)
    result = evaluate(run_model, loader, dinfo.device, model.num_classes, precision.dtype,
                      collect_predictions=True, num_visuals=num_visuals, progress=progress and dinfo.is_main,
                      desc=f"eval {views[0]}x{views[1]} views", view_merge=view_merge, num_clips=views[0])
    if result.num_samples == 0:
        u = result.unreadable[0]
        raise UserError(f"--data '{data}': none of its {len(result.unreadable)} videos can be read "
                        f"(e.g. '{u['path']}': {u['reason']})")
    files: dict[str, Path] = {}
    if output is not None and dinfo.is_main:
        extra = {"data": str(data), "split": split, "views": f"{views[0]}x{views[1]}", "view_merge": view_merge,
                 "model": model.pretrained_cfg.get("architecture") or getattr(model, "architecture", ""),
                 "world_size": dinfo.world_size, "precision": precision.record(),
                 **(span.to_dict() if span is not None else {})}
        if compile:
            extra["compile"] = run_model.record()
        notes = [f"warning: {span_msg}"] + [f"short video '{s}': {f} frames, a clip spans {span.span}"
                                            for s, f in span.short] if span_msg else []
        files = write_eval_outputs(result, output, names, spec.mean, spec.std, sample_names_of(ds), extra,
                                   ignored=getattr(listing, "ignored", ()), notes=notes,
                                   frame_indices=visual_frame_indices(ds, result))
    return EvalRun(result, names, views, files, str(data), split, span)


def _quiet(msg: str) -> None:
    """Where the notes of ranks other than 0 go."""


@dataclass
class UnlabelledRun:
    """``vidzoo eval`` of a folder without labels: every readable video predicted, no figure scored.

    Attributes:
        predictions: One per video below the folder, in natural order (unreadable ones with ``error``).
        views: ``(clips, crops)``.
        files: What was written (``predictions.csv``, ``metrics.json``, ``eval.log``).
        data: The folder.
        ignored: ``(path, reason)`` of entries seen but not read.
    """

    predictions: list["Prediction"]
    views: tuple[int, int]
    files: dict[str, Path]
    data: str
    ignored: list[tuple[str, str]]


@torch.no_grad()
def run_unlabelled(model: nn.Module, data: PathLike, views: str | tuple[int, int] | None = None, batch_size: int = 8,
                   workers: int = 0, device: str = "auto", output: PathLike | None = None, amp: str = "auto",
                   progress: bool = True, sampling: str | None = None, frame_stride: int | None = None,
                   on_error: str = "skip", view_merge: str = "probs", top_k: int = 5,
                   compile: bool = False) -> UnlabelledRun:
    """Predict every video below a folder that holds videos directly (no class folders, so no labels:
    :func:`~vidzoo.engine.video_inputs.is_unlabelled_folder`), with :func:`run_evaluation`'s views,
    loader and sharding, and write ``predictions.csv`` (index, sample, pred, prob, top-k, status),
    ``metrics.json`` (counts; ``"labels": false``, no accuracy) and ``eval.log`` to ``output``.
    ``--amp auto``'s choice of autocast and ``compile``'s notes are said on stderr.

    Raises:
        UserError: A bad option, no readable video at all, ``output`` inside the folder.
    """
    dinfo: DistInfo = init_distributed(device)
    if output is not None:
        check_output_outside_data(output, data, why="its report would be read as more videos of the folder")
        if dinfo.is_main:
            ensure_output_dir(output, "report folder")
    model = model.to(dinfo.device).eval()
    views = parse_views(views, model)
    if on_error not in ON_ERROR:
        raise UserError(f"--on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    check_view_merge(view_merge, model)
    inputs = expand_video_inputs([data])
    spec = input_spec(model, sampling, frame_stride)
    ds = build_dataset(VideoPathDataset(inputs.paths), spec, train=False, views=views)
    names = class_names_of(model)
    say = note if dinfo.is_main else _quiet
    amp_dtype = choose_amp(amp, dinfo.device, say=say, model=model, batch=batch_size * views[0] * views[1]).dtype
    run_model = maybe_compile(model, compile, device=dinfo.device, log=say)
    loader = make_eval_loader(ds, batch_size, workers, pin_memory=dinfo.device.type == "cuda", on_error=on_error)
    found: dict[int, Prediction] = {}
    from tqdm.auto import tqdm
    from .distributed import all_gather_object
    from .evaluation import predict_probs_merged_tokens
    for x, _, index, bad in tqdm(loader, desc=f"predict {views[0]}x{views[1]} views", leave=False,
                                 disable=None if progress and dinfo.is_main else True, dynamic_ncols=True):
        for u in bad:
            found[u.index] = Prediction(u.source, [], error=u.reason)
        if x is None:
            continue
        x = x.to(dinfo.device)
        idx = index.tolist()
        name_of = lambda j: f"'{inputs.paths[idx[j]]}'"  # noqa: E731
        if tuple(x.shape[-4:]) != spec.shape:
            raise UserError(f"'{inputs.paths[idx[0]]}' gives clips {tuple(x.shape[-4:])}, the model takes {spec.shape}")
        probs = (predict_probs_merged_tokens(model, x, views[0], amp_dtype, name_of=name_of)
                 if view_merge == "tokens" and x.ndim == 6 else predict_probs(run_model, x, amp_dtype, name_of=name_of))
        p, top = probs.topk(min(top_k, probs.shape[1]), dim=1)
        for j, i in enumerate(idx):
            found[i] = Prediction(inputs.paths[i], [(int(c), names[c], float(q))
                                                    for c, q in zip(top[j].tolist(), p[j].tolist())])
    merged: dict[int, Prediction] = {}
    for part in all_gather_object(found):
        merged.update(part)
    preds = [merged[i] for i in range(len(inputs.items))]
    if not any(pr.ok for pr in preds):
        bad = preds[0]
        raise UserError(f"--data '{data}': none of its {len(preds)} videos can be read (e.g. '{bad.path}': {bad.error})")
    files: dict[str, Path] = {}
    if output is not None and dinfo.is_main:
        files = write_unlabelled_outputs(preds, output, inputs.ignored, {
            "data": str(data), "views": f"{views[0]}x{views[1]}", "view_merge": view_merge,
            "model": model.pretrained_cfg.get("architecture") or getattr(model, "architecture", ""),
            "world_size": dinfo.world_size})
    return UnlabelledRun(preds, views, files, str(data), list(inputs.ignored))


def write_unlabelled_outputs(preds: Sequence["Prediction"], out_dir: PathLike, ignored: Sequence[tuple[str, str]],
                             extra: dict[str, Any]) -> dict[str, Path]:
    """``predictions.csv``, ``metrics.json`` and ``eval.log`` of :func:`run_unlabelled`."""
    import csv
    import io

    from .checkpoint import atomic_write_json, atomic_write_text
    from .run_layout import EVAL_LOG
    out = Path(out_dir)
    k = max((len(p.top) for p in preds), default=0)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "sample", "pred", "prob", *[f"top{r}" for r in range(2, k + 1)], "status"])
    for i, p in enumerate(preds):
        if p.ok:
            w.writerow([i, p.path, p.top[0][1], f"{p.top[0][2]:.4f}",
                        *[f"{n}:{q:.4f}" for _, n, q in p.top[1:]], *[""] * (k - len(p.top)), "predicted"])
        else:
            w.writerow([i, p.path, "", "", *[""] * (k - 1), "unreadable"])
    bad = [{"path": p.path, "reason": p.error} for p in preds if not p.ok]
    scored = sum(p.ok for p in preds)
    files = {"predictions": atomic_write_text(buf.getvalue(), out / "predictions.csv")}
    files["metrics"] = atomic_write_json({
        "labels": False, "num_samples": scored, "unreadable": len(bad), "unreadable_videos": bad,
        "ignored_entries": [{"path": q, "reason": r} for q, r in ignored],
        "note": "the folder holds videos directly (no class folders): predictions only, no accuracy",
        **extra}, out / "metrics.json")
    log = [f"{scored} video(s) predicted (no labels: no accuracy), {len(bad)} unreadable"]
    log += [f"unreadable video '{u['path']}': {u['reason']}" for u in bad]
    log += [f"ignored '{q}': {r}" for q, r in ignored]
    files["log"] = atomic_write_text("\n".join(log) + "\n", out / EVAL_LOG)
    return files


def check_view_merge(view_merge: str, model: nn.Module) -> None:
    """``--view-merge``: one of :data:`VIEW_MERGES`; ``tokens`` needs a head that reads a token set
    (``global_pool='attentive'``)."""
    if view_merge not in VIEW_MERGES:
        raise UserError(f"--view-merge must be one of {', '.join(VIEW_MERGES)}, got {view_merge!r}")
    pool = getattr(model, "global_pool", None)
    if view_merge == "tokens" and pool != "attentive":
        raise UserError(f"--view-merge tokens concatenates the clips' tokens for an attentive-pool head "
                        f"(global_pool='attentive'); this model pools with {pool!r}: use --view-merge probs")


@dataclass
class Prediction:
    """Top-k classes of one video: ``top = [(index, name, probability), ...]``; for a video that
    could not be read, ``top`` is empty and ``error`` says why; ``warning`` says when its clip had to
    repeat frames (the video is shorter than a clip)."""

    path: str
    top: list[tuple[int, str, float]]
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the video was read and classified."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """``{'path', 'ok', 'top': [{'index', 'label', 'prob'}]}`` plus ``'error'`` for an unreadable video."""
        d: dict[str, Any] = {"path": self.path, "ok": self.ok,
                             "top": [{"index": i, "label": n, "prob": p} for i, n, p in self.top]}
        if self.error is not None:
            d["error"] = self.error
        if self.warning is not None:
            d["warning"] = self.warning
        return d


@torch.no_grad()
def predict_videos(model: nn.Module, paths: Sequence[PathLike] | VideoInputs, top_k: int = 5,
                   views: str | tuple[int, int] | None = None, device: str = "auto", amp: str = "auto",
                   sampling: str | None = None, frame_stride: int | None = None,
                   on_error: str = "skip", compile: bool = False) -> list[Prediction]:
    """Classify videos with multi-view averaging.

    ``paths`` are video files, frame folders and folders of videos (each expanded to the videos
    below it, :func:`~vidzoo.engine.video_inputs.expand_video_inputs`; or that expansion). Every readable video is
    answered even when others are not: a missing, non-regular or undecodable path (or a folder
    without videos) gives a :class:`Prediction` with ``error`` set (and no classes), in input
    order. ``on_error="raise"`` stops at the first instead (a :class:`UserError` naming it).
    ``--amp auto``'s choice of autocast and ``compile``'s notes are said on stderr.

    Raises:
        UserError: A bad option, or (``on_error="raise"``) an unreadable video.
    """
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    dev = init_distributed(device).device
    model = model.to(dev).eval()
    views = parse_views(views, model)
    spec = input_spec(model, sampling, frame_stride)
    inputs = paths if isinstance(paths, VideoInputs) else expand_video_inputs(paths)
    names = class_names_of(model)
    amp_dtype = choose_amp(amp, dev, say=note, model=model, batch=views[0] * views[1]).dtype
    run_model = maybe_compile(model, compile, device=dev)
    out: list[Prediction] = []
    for item in inputs.items:
        path = item.path
        try:  # the clip anyone can rebuild with vidzoo.data.load_clip (and feed an exported model)
            if item.error:
                raise UnreadableVideoError(path, item.error)
            x = load_clip(path, model.pretrained_cfg, views, spec.sampling, spec.frame_stride)
        except UnreadableVideoError as e:
            why = reason_of(e)
            if on_error == "raise":
                raise UserError(f"cannot read video '{path}': {why}") from e
            out.append(Prediction(str(path), [], error=why))
            continue
        except ValueError as e:  # a transform refusing the clip
            raise UserError(f"'{path}': {str(e).splitlines()[0]}") from e
        if tuple(x.shape[-4:]) != spec.shape:
            raise UserError(f"'{path}' gives clips {tuple(x.shape[-4:])}, the model takes {spec.shape}")
        probs = predict_probs(run_model, x.unsqueeze(0).to(dev), amp_dtype, name_of=lambda _: f"'{path}'")[0]
        p, idx = probs.topk(min(top_k, probs.numel()))
        # after the read: a header that overstated the stream is corrected by then
        short = video_span_warning(str(path), frame_count(path), spec.sampling, spec.num_frames, spec.frame_stride)
        out.append(Prediction(str(path), [(int(j), names[j], float(q)) for j, q in zip(idx.tolist(), p.tolist())],
                              warning=short))
    return out
