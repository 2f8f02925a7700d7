"""Classification metrics accumulated over batches and summed across ranks."""
from __future__ import annotations

import math
from typing import Any

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


class ClassificationMeter:
    """Running loss, top-1/top-5 and confusion matrix of one pass over a dataset.

    Call :meth:`update` per batch, then :meth:`compute` (which sums over ranks once, so every rank
    gets the global figures).

    Args:
        num_classes: Number of classes ``K``.
        device: Where the running sums live (the compute device; NCCL reduces CUDA tensors).
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.device = torch.device(device)
        # loss_sum, count, correct@1, correct@5
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
        c1, c5 = topk_correct(scores, target)
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
        """``loss``, ``top1``, ``top5`` (percent) and ``num_samples`` summed over all ranks, and
        ``samples_per_rank`` (what each rank counted)."""
        self._reduce()
        per_rank = all_gather_object(self.local_count)
        loss_sum, n, c1, c5 = self._sums.tolist()
        if n == 0:
            return {"loss": math.nan, "top1": math.nan, "top5": math.nan, "num_samples": 0,
                    "samples_per_rank": per_rank}
        return {"loss": loss_sum / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "num_samples": int(n),
                "samples_per_rank": per_rank}

    def per_class_accuracy(self) -> list[float | None]:
        """Top-1 accuracy (percent) of each true class; ``None`` for a class with no samples."""
        self._reduce()
        cm = self.confusion.cpu()
        totals = cm.sum(dim=1)
        return [100.0 * float(cm[k, k]) / float(totals[k]) if totals[k] > 0 else None
                for k in range(self.num_classes)]
