"""The per-epoch records of a run: ``metrics.json``, ``metrics.csv``, ``curves.png`` and the
one-line epoch summary."""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from .checkpoint import atomic_write_json, atomic_write_text
from .metrics import topk_key
from .plots import plot_training_curves
from .run_layout import RunLayout

__all__ = ["write_metrics", "epoch_line"]


def _csv_text(history: Sequence[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in history:
        keys += [k for k, v in r.items() if k not in keys and not isinstance(v, (list, dict))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    return buf.getvalue()


def write_metrics(history: Sequence[dict[str, Any]], layout: RunLayout) -> None:
    """``metrics.json``, ``metrics.csv`` and ``curves.png`` of the epochs so far."""
    atomic_write_json(list(history), layout.metrics_json)
    atomic_write_text(_csv_text(history), layout.metrics_csv)
    plot_training_curves(history, layout.curves)


def _topk_words(r: dict[str, Any], split: str) -> str:
    found = topk_key(r, split)
    return f" top{found[0]} {r[found[1]]:5.1f}%" if found and r[found[1]] is not None else ""


def epoch_line(r: dict[str, Any], best: bool) -> str:
    """``epoch   3  lr ...  train loss ... | val loss ...  (1.2s)  *best``; top-k named by its k (none with
    2 classes); a validation whose predictions were all one class says so (its top-1 is that class's
    share of the validation videos, not something learnt)."""
    line = f"epoch {r['epoch']:>3}  lr {r['lr']:.2e}  train loss {r['train_loss']:.4f}"
    if r.get("train_top1") is not None:  # None with mixup / cutmix: a mixed clip has no single label
        line += f" top1 {r['train_top1']:5.1f}%" + _topk_words(r, "train")
    if "val_loss" in r:
        line += f" | val loss {r['val_loss']:.4f} top1 {r['val_top1']:5.1f}%" + _topk_words(r, "val")
    if r.get("val_single_prediction") is not None:
        line += f"  [every val video predicted '{r['val_single_prediction']}': val top-1 = that class's share]"
    if r.get("train_unreadable"):
        line += f"  [{r['train_unreadable']} unreadable training sample(s) substituted]"
    if r.get("val_unreadable"):
        line += f"  [{r['val_unreadable']} unreadable validation video(s) excluded]"
    return line + f"  ({r['time_s']:.1f}s){'  *best' if best else ''}"
