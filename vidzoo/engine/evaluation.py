"""Evaluation and prediction: top-1/top-k, per-class accuracy, confusion matrix, multi-view testing
(clip/crop scores averaged, or, for an attentive-pool model, the clips' tokens merged before the head),
and captioned sample clips.

Batches may hold one view per sample ``(B, C, T, H, W)`` or several ``(B, V, C, T, H, W)``
(``V = clips x crops``, as :mod:`vidzoo.data` datasets stack them); the softmax scores of the views
are averaged. The reported loss is the negative log of the averaged probability of the true class
(plain cross-entropy for one view).

Evaluation never substitutes a sample: :func:`make_eval_loader` wraps the dataset in
:class:`~vidzoo.data.ExcludeUnreadable`, so an unreadable video is left out of the batch, of every
count, metric, per-class figure, confusion matrix and sample picture, and is listed in
:attr:`EvalResult.unreadable` (and in the report files) with the reason.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from einops import rearrange

from ..data import ExcludeUnreadable, UnreadableVideoError, collate_readable
from .checkpoint import atomic_write_json, atomic_write_text
from .distributed import ShardedEvalSampler, all_gather_object, get_rank, get_world_size
from .errors import NonFiniteLogitsError
from .metrics import ClassificationMeter
from .plots import denormalize, plot_confusion_matrix, save_clip_grid
from .precision import autocast_context
from .run_layout import EVAL_LOG

PathLike = str | os.PathLike


def _checked_logits(model: nn.Module, logits: torch.Tensor, batch: int, amp_dtype: torch.dtype | None,
                    name_of: Callable[[int], str] | None) -> torch.Tensor:
    """``logits`` as float32, or :class:`NonFiniteLogitsError` naming the model and the first sample
    (of ``batch``) whose logits hold a NaN or inf: no probability is ever made of a non-finite logit."""
    logits = logits.float()
    finite = torch.isfinite(logits).view(batch, -1).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        bad = logits.view(batch, -1)[i]
        kind = "NaN" if bool(bad.isnan().any()) else "inf"
        what = name_of(i) if name_of is not None else f"sample {i} of a batch"
        fp16 = " (float16 autocast overflows easily: try --amp bf16 or --amp none)" \
            if amp_dtype == torch.float16 else ""
        raise NonFiniteLogitsError(f"{model_label(model)} gave non-finite logits ({kind}) for {what}; its weights "
                                   f"hold NaN/inf or the computation overflowed{fp16}; no prediction is reported")
    return logits


def predict_probs(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None = None,
                  name_of: Callable[[int], str] | None = None) -> torch.Tensor:
    """Class probabilities ``(B, K)`` of a batch, averaging the softmax over views when
    ``x`` is ``(B, V, C, T, H, W)``.

    Args:
        name_of: Sample ``i`` of the batch -> what it is, for the error below (``"'v.mp4'"``,
            ``"'v.mp4' (frames 0-15)"``).

    Raises:
        NonFiniteLogitsError: The model gave a NaN or infinite logit; the message names the model and the
            first sample concerned (no probability is ever made of a non-finite logit).
    """
    multi = x.ndim == 6
    b = x.shape[0]
    with autocast_context(x.device, amp_dtype):
        logits = model(x.flatten(0, 1) if multi else x)
    probs = _checked_logits(model, logits, b, amp_dtype, name_of).softmax(dim=-1)
    return probs.view(b, -1, probs.shape[-1]).mean(dim=1) if multi else probs


def model_label(model: nn.Module) -> str:
    """``model ARCH (weights SOURCE)``: the architecture and where its weights were read from, where known."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = getattr(model, "architecture", None) or cfg.get("architecture") or type(model).__name__
    source = cfg.get("file") or (f"hf-hub:{cfg['hf_hub_id']}" if cfg.get("hf_hub_id") else None)
    return f"model {arch}" + (f" (weights {source})" if source else "")


def predict_probs_merged_tokens(model: nn.Module, x: torch.Tensor, num_clips: int,
                                amp_dtype: torch.dtype | None = None,
                                name_of: Callable[[int], str] | None = None) -> torch.Tensor:
    """Class probabilities ``(B, K)`` of a multi-view batch ``(B, V, C, T, H, W)`` (``V = num_clips x crops``,
    clip-major), scored as V-JEPA 2's evaluation does: every view is encoded on its own
    (``forward_features``), the tokens of a crop's ``num_clips`` temporal clips are concatenated along the
    token axis and read by the head once (``forward_head``; an attentive pooler sees the whole video), and
    the softmax is averaged over the crops."""
    b, v = x.shape[:2]
    if v % num_clips:
        raise ValueError(f"{v} views per sample are not {num_clips} clips x crops")
    with autocast_context(x.device, amp_dtype):
        tokens = model.forward_features(x.flatten(0, 1))
        tokens = rearrange(tokens, "(b c s) n d -> (b s) (c n) d", b=b, c=num_clips)
        logits = model.forward_head(tokens)
    probs = _checked_logits(model, logits, b, amp_dtype, name_of).softmax(dim=-1)
    return probs.view(b, v // num_clips, -1).mean(dim=1)


@dataclass
class EvalResult:
    """Metrics of one evaluation pass (already summed over ranks).

    Attributes:
        loss: Mean negative log-likelihood of the (view-averaged) probabilities.
        top1: Top-1 accuracy, percent.
        topk: Top-k accuracy, percent, for ``k`` (None with 2 classes; see :func:`~vidzoo.engine.metrics.topk_of`).
        num_samples: Samples scored, over all ranks (unreadable ones are not counted).
        confusion: ``(K, K)`` counts, rows true class, columns predicted class.
        per_class_accuracy: Top-1 per true class (None for a class without samples).
        predictions: Per sample ``{'index', 'label', 'pred', 'prob', 'topk'}``, sorted by index
            (only when asked for).
        visuals: ``(clip, label, pred, prob)`` of a few samples spread over the data (rank 0's).
        visual_indices: The dataset index of each of ``visuals``.
        samples_per_rank: Samples scored by each rank.
        unreadable: ``{'index', 'path', 'reason'}`` of every sample that could not be read (over
            all ranks, by index); excluded from everything above.
        k: The ``k`` of ``topk`` (5 with more than 5 classes, fewer below; None with 2 classes).
        single_prediction: The class every sample was predicted as, when all were one (a model that
            learnt nothing scores its share of the data), else None.
    """

    loss: float
    top1: float
    topk: float | None
    num_samples: int
    confusion: torch.Tensor
    per_class_accuracy: list[float | None]
    predictions: list[dict[str, Any]] | None = None
    visuals: list[tuple[torch.Tensor, int, int, float]] = field(default_factory=list)
    visual_indices: list[int] = field(default_factory=list)
    samples_per_rank: list[int] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    k: int | None = None
    single_prediction: int | None = None

    @property
    def top5(self) -> float | None:
        """Top-5 accuracy (more than 5 classes; None with fewer, where ``topk`` is top-``k``)."""
        return self.topk if self.k == 5 else None

    def summary(self) -> dict[str, Any]:
        """``{'loss', 'top1', 'top{k}', 'num_samples', 'unreadable', 'samples_per_rank'}``
        (``top{k}`` only with more than 2 classes; ``unreadable``: how many samples were excluded)."""
        topk = {f"top{self.k}": self.topk} if self.k else {}
        return {"loss": self.loss, "top1": self.top1, **topk, "num_samples": self.num_samples,
                "unreadable": len(self.unreadable), "samples_per_rank": self.samples_per_rank}


def _visual_indices(n: int, k: int, rank: int, world: int) -> set[int]:
    """Up to ``k`` dataset indices spread over ``[0, n)`` that belong to this rank's shard."""
    mine = list(range(rank, n, world))
    if not mine or k <= 0:
        return set()
    pick = np.linspace(0, len(mine) - 1, min(k, len(mine))).round().astype(int)
    return {mine[i] for i in pick}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str, num_classes: int,
             amp_dtype: torch.dtype | None = None, collect_predictions: bool = False, num_visuals: int = 0,
             top_k: int = 5, progress: bool = True, desc: str = "eval", view_merge: str = "probs",
             num_clips: int = 1) -> EvalResult:
    """Evaluate ``model`` on ``loader`` (``(x, y)``, ``(x, y, index)`` or, from
    :func:`make_eval_loader`, ``(x, y, index, unreadable)`` batches).

    Under ``torch.distributed`` each rank evaluates its shard (use :class:`ShardedEvalSampler`
    so no sample is counted twice) and the metrics are summed over ranks; pass the model without
    its DDP wrapper (no collective runs per batch, so uneven shards are fine).

    Args:
        model: The classifier (put in eval mode here).
        loader: Batches of clips, one or several views per sample.
        device: Compute device.
        num_classes: ``K``.
        amp_dtype: Autocast dtype (``torch.bfloat16`` / ``torch.float16``) or None.
        collect_predictions: Keep every sample's prediction (gathered onto every rank); needs
            batches with indices (:func:`make_eval_loader`).
        num_visuals: Keep this many clips (first view) for a picture.
        top_k: Classes kept per prediction.
        progress: tqdm bar.
        desc: Bar label.
        view_merge: ``'probs'`` (softmax averaged over views) or ``'tokens'``
            (:func:`predict_probs_merged_tokens`, with ``num_clips`` temporal clips per sample).
        num_clips: Temporal clips among a sample's views (``'tokens'`` only).
    """
    device = torch.device(device)
    model.eval()
    meter = ClassificationMeter(num_classes, device)
    preds: list[dict[str, Any]] = []
    visuals: list[tuple[torch.Tensor, int, int, float]] = []
    visual_indices: list[int] = []
    unreadable: list[dict[str, Any]] = []
    n_total = len(loader.dataset)  # type: ignore[arg-type]
    want = _visual_indices(n_total, num_visuals, get_rank(), get_world_size())
    base = getattr(loader.dataset, "dataset", loader.dataset)  # inside ExcludeUnreadable: names the videos
    source = getattr(base, "source", None)
    for batch in tqdm(loader, desc=desc, disable=None if progress else True, leave=False, dynamic_ncols=True):
        if len(batch) > 3:
            unreadable += [u.to_dict() for u in batch[3]]
            if batch[0] is None:  # nothing readable in this batch
                continue
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        index = batch[2].tolist() if len(batch) > 2 else [None] * len(y)
        name_of = lambda j: (f"'{source(index[j])}'" if callable(source) and index[j] is not None  # noqa: E731
                             else f"sample {j} of a batch")
        if view_merge == "tokens" and x.ndim == 6:
            probs = predict_probs_merged_tokens(model, x, num_clips, amp_dtype, name_of=name_of)
        else:
            probs = predict_probs(model, x, amp_dtype, name_of=name_of)
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), y)
        meter.update(probs, y, loss)
        if collect_predictions or want:
            top_p, top_i = probs.topk(min(top_k, num_classes), dim=1)
            for j, idx in enumerate(index):
                if collect_predictions:
                    preds.append({"index": idx, "label": int(y[j]), "pred": int(top_i[j, 0]),
                                  "prob": float(top_p[j, 0]),
                                  "topk": list(zip(top_i[j].tolist(), [round(p, 6) for p in top_p[j].tolist()]))})
                if idx in want:
                    clip = x[j, 0] if x.ndim == 6 else x[j]
                    visuals.append((clip.float().cpu(), int(y[j]), int(top_i[j, 0]), float(top_p[j, 0])))
                    visual_indices.append(idx)
    m = meter.compute()
    unreadable = sorted((u for part in all_gather_object(unreadable) for u in part), key=lambda u: u["index"])
    predictions = None
    if collect_predictions:
        predictions = sorted((p for part in all_gather_object(preds) for p in part),
                             key=lambda p: (p["index"] is None, p["index"]))
    k = meter.k
    return EvalResult(loss=m["loss"], top1=m["top1"], topk=m.get(f"top{k}"), num_samples=m["num_samples"],
                      confusion=meter.confusion.cpu(), per_class_accuracy=meter.per_class_accuracy(),
                      predictions=predictions, visuals=visuals, visual_indices=visual_indices,
                      samples_per_rank=m["samples_per_rank"],
                      unreadable=unreadable, k=k,
                      single_prediction=meter.single_prediction() if m["num_samples"] else None)


def make_eval_loader(dataset: Dataset, batch_size: int, workers: int = 0, pin_memory: bool = False,
                     persistent_workers: bool = False, on_error: str = "skip") -> DataLoader:
    """A sharded (under DDP), ordered loader for evaluation, batches ``(x, y, index, unreadable)``.

    ``dataset`` must raise on an unreadable sample (datasets built with ``on_error="raise"``): with
    ``on_error="skip"`` the sample is excluded from the batch and reported, never substituted;
    with ``"raise"`` the error stops the evaluation.
    """
    ds = ExcludeUnreadable(dataset, on_error=on_error)
    return DataLoader(ds, batch_size=batch_size, sampler=ShardedEvalSampler(ds), num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=persistent_workers and workers > 0,
                      collate_fn=collate_readable)


# -------------------------------------------------------------------------------------- outputs
def caption(label: int, pred: int, prob: float, class_names: Sequence[str]) -> str:
    """``"true: left / pred: right (0.62)"``."""
    name = lambda i: class_names[i] if 0 <= i < len(class_names) else str(i)  # noqa: E731
    return f"true: {name(label)} / pred: {name(pred)} ({prob:.2f})"


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_eval_outputs(result: EvalResult, out_dir: PathLike, class_names: Sequence[str],
                       mean: Sequence[float], std: Sequence[float], sample_names: Sequence[str] | None = None,
                       extra: dict[str, Any] | None = None, ignored: Sequence[tuple[str, str]] = (),
                       notes: Sequence[str] = (), frame_indices: Sequence[Sequence[int] | None] | None = None
                       ) -> dict[str, Path]:
    """Write an evaluation's files into ``out_dir``.

    Files: ``metrics.json`` (top-1/top-k/loss and ``num_samples`` over scored videos only, per-class
    accuracy, ``unreadable`` count and ``unreadable_videos`` with their reasons, ``extra``),
    ``per_class.csv``, ``confusion_matrix.csv`` and ``.png``, ``predictions.csv`` (when collected:
    one scored row per readable video, and a row with status ``unreadable`` and no prediction per
    excluded one), ``eval.log`` (the counts and every excluded file by name), and ``samples.png``
    (frame strips) + ``samples.gif`` (animated grid) captioned true vs. predicted.

    Args:
        result: The evaluation.
        out_dir: Output folder (created).
        class_names: Names in label order.
        mean: Normalisation mean of the clips (to show them).
        std: Normalisation std.
        sample_names: Per dataset index, a name (the video path) for ``predictions.csv``.
        extra: More fields for ``metrics.json`` (model, data, views...).
        ignored: ``(path, reason)`` of entries of the data folder that were not used (nested
            video folders, FIFOs named like videos), for ``metrics.json`` and ``eval.log``.
        notes: More lines for ``eval.log`` (e.g. the videos shorter than a clip).
        frame_indices: Per sample picture (``result.visuals``), the source frame index of each of
            its frames, shown under the frames of ``samples.png`` (None: their position in the clip).

    Returns:
        ``{name: path}`` of the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names)
    cm = result.confusion
    per_class = {n: a for n, a in zip(names, result.per_class_accuracy)}
    paths: dict[str, Path] = {}
    bad = [{"path": u["path"], "reason": u["reason"]} for u in result.unreadable]
    skipped = [{"path": p, "reason": r} for p, r in ignored]
    paths["metrics"] = atomic_write_json({**result.summary(), "unreadable_videos": bad, "ignored_entries": skipped,
                                          "per_class_accuracy": per_class, **(extra or {})}, out / "metrics.json")
    log = [f"{result.num_samples} video(s) scored, {len(bad)} unreadable and excluded from every figure"]
    log += [f"excluded unreadable video '{u['path']}': {u['reason']}" for u in bad]
    log += [f"ignored '{u['path']}': {u['reason']}" for u in skipped]
    log += list(notes)
    paths["log"] = atomic_write_text("\n".join(log) + "\n", out / EVAL_LOG)
    support = cm.sum(dim=1).tolist()
    rows = [["class", "samples", "correct", "accuracy"]]
    rows += [[n, support[k], int(cm[k, k]), "" if a is None else f"{a:.2f}"]
             for k, (n, a) in enumerate(zip(names, result.per_class_accuracy))]
    paths["per_class"] = atomic_write_text(_csv_text(rows), out / "per_class.csv")
    rows = [["true\\pred"] + names] + [[names[k]] + cm[k].tolist() for k in range(len(names))]
    paths["confusion_csv"] = atomic_write_text(_csv_text(rows), out / "confusion_matrix.csv")
    paths["confusion_png"] = plot_confusion_matrix(cm, names, out / "confusion_matrix.png")
    if result.predictions is not None:
        rows = [["index", "sample", "true", "pred", "prob", "correct", "status"]]
        scored = []
        for p in result.predictions:
            i = p["index"]
            sample = sample_names[i] if sample_names is not None and i is not None else ""
            scored.append((i, [i, sample, names[p["label"]], names[p["pred"]], f"{p['prob']:.4f}",
                               int(p["label"] == p["pred"]), "scored"]))
        scored += [(u["index"], [u["index"], u["path"], "", "", "", "", "unreadable"]) for u in result.unreadable]
        rows += [r for _, r in sorted(scored, key=lambda t: (t[0] is None, t[0] if t[0] is not None else 0))]
        paths["predictions"] = atomic_write_text(_csv_text(rows), out / "predictions.csv")
    if result.visuals:
        clips = [denormalize(v[0], mean, std) for v in result.visuals]
        caps = [caption(v[1], v[2], v[3], names) for v in result.visuals]
        ok = [v[1] == v[2] for v in result.visuals]
        png, gif = save_clip_grid(clips, caps, out / "samples.png", out / "samples.gif", correct=ok,
                                  frame_indices=frame_indices)
        paths["samples_png"], paths["samples_gif"] = png, gif
    return paths


def visual_frame_indices(dataset: Dataset, result: EvalResult) -> list[list[int] | None]:
    """The source frame indices of each clip of ``result.visuals`` (its first view), as the dataset's
    deterministic evaluation sampler chose them from the video's real frame count; None where the
    dataset cannot say (not a :mod:`vidzoo.data` dataset, no sampler)."""
    indices = getattr(dataset, "clip_frame_indices", None)
    out: list[list[int] | None] = []
    for i in result.visual_indices:
        try:
            out.append(indices(i)[0] if callable(indices) and i is not None else None)
        except UnreadableVideoError:
            out.append(None)
    return out


def sample_names_of(dataset: Dataset) -> list[str] | None:
    """Per index, the source of each sample (video path) when the dataset knows it
    (``dataset.source(i)``, as :class:`~vidzoo.data.ClipDataset` does)."""
    source = getattr(dataset, "source", None)
    return [source(i) for i in range(len(dataset))] if callable(source) else None  # type: ignore[arg-type]
