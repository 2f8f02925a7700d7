"""Class imbalance: loss weights per class and a sampler that draws every class equally often.

Both read the training labels once (``dataset.targets``; no video is decoded for them). Use one
of the two, not both: each alone makes every class weigh as much in an epoch's loss.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from .errors import UserError

__all__ = ["dataset_labels", "class_counts", "balanced_class_weights", "BalancedDistributedSampler"]


def dataset_labels(dataset: Dataset, flag: str) -> list[int]:
    """The label of every sample of ``dataset``, from its ``targets`` (no sample is read).

    Raises:
        UserError: The dataset has no ``targets`` (naming ``flag``, the option that needs them).
    """
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise UserError(f"{flag} needs the training labels without reading every clip: give the dataset a "
                        f"'targets' list (vidzoo.data datasets have one), {type(dataset).__name__} has none")
    labels = [int(t) for t in targets]
    if len(labels) != len(dataset):  # type: ignore[arg-type]
        raise UserError(f"{flag}: the dataset has {len(dataset)} samples but {len(labels)} targets")  # type: ignore
    return labels


def class_counts(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """Training samples per class, ``(K,)`` int64."""
    return torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=num_classes)[:num_classes]


def balanced_class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """scikit-learn's ``"balanced"`` weights ``N / (K x n_k)`` (float32, ``(K,)``): each class
    contributes as much to a weighted mean loss in total. A class without training samples gets
    weight 0 (nothing to weigh; it would otherwise take all the label smoothing mass)."""
    counts = class_counts(labels, num_classes).double()
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    weights[present] = counts.sum() / (int(present.sum()) * counts[present])
    return weights.float()


class BalancedDistributedSampler(Sampler[int]):
    """Draws sample indices with replacement, each class equally often in expectation; the epoch
    keeps the dataset's length. Under DDP each of ``num_replicas`` ranks takes its share of one
    draw made from ``(seed, epoch)``, so the ranks see disjoint positions of the same sequence and
    a resumed run draws what the uninterrupted one would.

    Args:
        labels: Label of every sample.
        num_replicas: Processes.
        rank: This process.
        seed: Seed of the draw (combined with the epoch, :meth:`set_epoch`).
    """

    def __init__(self, labels: Sequence[int], num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if not labels:
            raise ValueError("BalancedDistributedSampler needs at least one sample")
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        counts = torch.bincount(self.labels).double()
        self.weights = (1.0 / counts)[self.labels]  # every present class gets total weight 1
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.num_samples = math.ceil(len(self.labels) / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s sequence next."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        draw = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g)
        return iter(draw[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
