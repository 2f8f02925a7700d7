"""What to do with a video that cannot be read: substitute it (training) or exclude it (evaluation).

A dataset raises :class:`~vidzoo.data.UnreadableVideoError` for a sample it cannot read (and
nothing else does: any other error is a bug and propagates). The policy is the wrapper's, chosen by
the dataset's use:

* :class:`SubstituteUnreadable` (training): an unreadable sample is replaced by the next readable
  one, so an epoch goes on; every item says which sources it skipped, so the count and the names
  are right with DataLoader workers and under DDP (the loop gathers them).
* :class:`ExcludeUnreadable` (evaluation): an unreadable sample is never replaced. The item is a
  :class:`Unreadable` record, and :func:`collate_readable` takes it out of the batch, so it is
  excluded from every count and metric and can be listed in the report.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate

from .._choices import ON_ERROR
from .decode import UnreadableVideoError

__all__ = ["UNREADABLE_ERRORS", "Unreadable", "SubstituteUnreadable", "ExcludeUnreadable", "collate_readable",
           "reason_of"]

# For ``except`` clauses: what reading an unreadable sample raises.
UNREADABLE_ERRORS: tuple[type[BaseException], ...] = (UnreadableVideoError,)


def reason_of(err: BaseException) -> str:
    """One line saying why a sample could not be read (without FFmpeg's error number and a second
    copy of the path, which the caller names anyway)."""
    if isinstance(err, UnreadableVideoError):
        reason = err.reason.splitlines()[0] if err.reason else "unreadable"
        reason = re.sub(r"\[Errno -?\d+\] ", "", reason)
        return re.sub(r": '[^']*'(?=\)|$)", "", reason)
    return (str(err).splitlines() or [type(err).__name__])[0]


def _source(dataset: Dataset, index: int) -> str:
    fn = getattr(dataset, "source", None)
    return fn(index) if callable(fn) else f"sample {index}"


@dataclass(frozen=True)
class Unreadable:
    """A sample that could not be read: its dataset index, source and the reason."""

    index: int
    source: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.source, "reason": self.reason}


class SubstituteUnreadable(Dataset):
    """Training view of ``dataset``: ``(clip, label, skipped)``, an unreadable sample replaced by the
    next readable one.

    ``skipped`` is ``source<TAB>reason`` when the sample drawn (``index``) is unreadable, else
    empty, so it batches with the default collate. A source found unreadable is not decoded again
    (in this process); it is reported when it is drawn itself, never when it is passed over while
    looking for a substitute, so an epoch (which draws every index once) reports each unreadable
    file once, however many substitutions passed it.

    Raises:
        RuntimeError: No sample of the dataset is readable.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        n = len(self)
        skipped = ""
        for step in range(n):
            i = (index + step) % n
            if i not in self._bad:
                try:
                    x, y = self.dataset[i][:2]
                    return x, y, skipped
                except UnreadableVideoError as e:
                    self._bad[i] = reason_of(e)
            if step == 0:
                skipped = f"{_source(self.dataset, i)}\t{self._bad[i]}"
        raise RuntimeError(f"no readable sample in {type(self.dataset).__name__} ({n} unreadable, e.g. "
                           f"{_source(self.dataset, index)}: {self._bad[index % n]})")


class ExcludeUnreadable(Dataset):
    """Evaluation view of ``dataset``: ``(clip, label, index)``, or an :class:`Unreadable` record.

    Args:
        dataset: A dataset of ``(clip, label)`` that raises on an unreadable sample.
        on_error: ``"skip"``: return the record (use :func:`collate_readable`); ``"raise"``: let
            the error propagate (stops the run naming the file).
    """

    def __init__(self, dataset: Dataset, on_error: str = "skip") -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        self.dataset = dataset
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int] | Unreadable:
        try:
            x, y = self.dataset[index][:2]
        except UnreadableVideoError as e:
            if self.on_error == "raise":
                raise
            return Unreadable(index, _source(self.dataset, index), reason_of(e))
        return x, y, index


def collate_readable(batch: list[Any]) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, list[Unreadable]]:
    """Collate the readable items of ``batch``: ``(clips, labels, indices, unreadable)``.

    ``clips`` is None (and ``labels`` / ``indices`` empty) when no item of the batch was readable.
    """
    bad = [b for b in batch if isinstance(b, Unreadable)]
    good = [b for b in batch if not isinstance(b, Unreadable)]
    if not good:
        empty = torch.zeros(0, dtype=torch.long)
        return None, empty, empty, bad
    x, y, idx = default_collate(good)
    return x, y, idx, bad
