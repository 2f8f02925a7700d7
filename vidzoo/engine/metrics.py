"""Classification metrics accumulated over batches and summed across ranks.

Top-k is reported only where it says something: for ``k = min(5, K - 1)`` with ``K`` classes, so
top-5 with 6 or more classes, top-3 with 4 classes, none with 2 (a top-2 of 2 classes is always
100%). Its key names its ``k``: ``top5``, ``top3``.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch

from .distributed import all_gather_object, all_reduce_sum


def topk_correct(scores: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the ``k`` highest scores, for each ``k``.

    ``k`` is capped at the number of classes (so top-5 of a 4-class task is 100%).

    Args:
        scores: ``(B, K)`` logits or probabilities.
        target: ``(B,)`` class indices.
        ks: The ``k`` values.
    """
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices  # (B, maxk)
    hit = top.eq(target.view(-1, 1))
    return [int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks]


def topk_of(num_classes: int, k: int = 5) -> int | None:
    """The ``k`` of the top-k accuracy worth reporting with ``num_classes`` classes (``min(k, K - 1)``),
    or None when it would be top-1 or always 100%."""
    k = min(k, num_classes - 1)
    return k if k >= 2 else None


_TOPK_KEY = re.compile(r"^(?:(?P<split>[a-z]+)_)?top(?P<k>\d+)$")


def topk_key(record: Mapping[str, Any], split: str | None = None) -> tuple[int, str] | None:
    """``(k, key)`` of the top-k (k > 1) accuracy in a metrics record (``train_top3``, ``val_top5``,
    ``top2``), for any ``k``: records written before top-k was named by its k hold ``top5`` whatever the
    number of classes. None when the record has none."""
    for key in record:
        m = _TOPK_KEY.match(key)
        if m and m.group("split") == split and int(m.group("k")) > 1:
            return int(m.group("k")), key
    return None


class ClassificationMeter:
    """Running loss, top-1/top-k (:func:`topk_of`) and confusion matrix of one pass over a dataset.

    Call :meth:`update` per batch, then :meth:`compute` (which sums over ranks once, so every rank
    gets the global figures).

    Args:
        num_classes: Number of classes ``K``.
        device: Where the running sums live (the compute device; NCCL reduces CUDA tensors).
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.k = topk_of(num_classes)
        self.device = torch.device(device)
        # loss_sum, count, correct@1, correct@k
        self._sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=self.device)
        self.local_count = 0
        self._reduced = False

    def update(self, scores: torch.Tensor, target: torch.Tensor, loss: float | torch.Tensor) -> None:
        """Add a batch.

        Args:
            scores: ``(B, K)`` logits or probabilities.
            target: ``(B,)`` class indices.
            loss: Mean loss over the batch.
        """
        if self._reduced:
            raise RuntimeError("ClassificationMeter.update() after compute(); make a new meter per pass")
        scores, target = scores.detach(), target.detach()
        b = target.shape[0]
        c1, c5 = topk_correct(scores, target, (1, self.k or 1))
        self._sums += torch.tensor([float(loss) * b, b, c1, c5], dtype=torch.float64, device=self.device)
        pred = scores.argmax(dim=1)
        idx = target.to(self.device) * self.num_classes + pred.to(self.device)
        self.confusion += torch.bincount(idx, minlength=self.num_classes ** 2).view(self.num_classes, -1)
        self.local_count += b

    def _reduce(self) -> None:
        if not self._reduced:
            all_reduce_sum(self._sums)
            all_reduce_sum(self.confusion)
            self._reduced = True

    def compute(self) -> dict[str, Any]:
        """``loss``, ``top1``, ``top{k}`` (percent; only with more than 2 classes, see :func:`topk_of`)
        and ``num_samples`` summed over all ranks, and ``samples_per_rank`` (what each rank counted)."""
        self._reduce()
        per_rank = all_gather_object(self.local_count)
        loss_sum, n, c1, ck = self._sums.tolist()
        topk = {f"top{self.k}": 100.0 * ck / n if n else math.nan} if self.k else {}
        if n == 0:
            return {"loss": math.nan, "top1": math.nan, **topk, "num_samples": 0, "samples_per_rank": per_rank}
        return {"loss": loss_sum / n, "top1": 100.0 * c1 / n, **topk, "num_samples": int(n),
                "samples_per_rank": per_rank}

    def single_prediction(self) -> int | None:
        """The class every sample was predicted as, when all predictions were one class (and there
        were samples), else None."""
        self._reduce()
        predicted = self.confusion.sum(dim=0).nonzero().flatten().tolist()
        return predicted[0] if len(predicted) == 1 else None

    def per_class_accuracy(self) -> list[float | None]:
        """Top-1 accuracy (percent) of each true class; ``None`` for a class with no samples."""
        self._reduce()
        cm = self.confusion.cpu()
        totals = cm.sum(dim=1)
        return [100.0 * float(cm[k, k]) / float(totals[k]) if totals[k] > 0 else None
                for k in range(self.num_classes)]
