"""What ``INPUT...`` of ``vidzoo predict``, ``vidzoo embed`` and an unlabelled ``vidzoo eval --data``
means: a list of videos.

Each argument is expanded in order:

* a video file (any file, in fact: one that is not a video is answered as unreadable) is itself;
* a frame folder (a folder holding jpg/png images) is one clip, as everywhere in vidzoo;
* any other folder is the list of the videos below it, at any depth: video files (``.mp4``,
  ``.avi``, ...) and frame folders, each folder's entries in natural order (``clip2`` before
  ``clip10``), sub-folders walked where they come, hidden entries skipped. A folder laid out as
  classes (``root/<class>/<video>``, or ``root/{train,val,test}/<class>/<video>``, as ``vidzoo train
  --data`` reads it) gives each video its class name as ``label``. A folder without any video is
  one input that cannot be answered (``error``);
* a path that does not exist is kept, and is answered as unreadable when it is read.

Entries named like videos that are not files (FIFOs, sockets, devices, dangling links) are not
read; they are listed in :attr:`VideoInputs.ignored` with the reason.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .._choices import SPLITS
from ..data import VIDEO_EXTENSIONS, is_frame_folder
from ..data.decode import _natural_key

__all__ = ["VideoInput", "VideoInputs", "expand_video_inputs", "is_unlabelled_folder"]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class VideoInput:
    """One video to answer.

    Attributes:
        path: The video file or frame folder (as given, or joined below the folder given).
        given: The command-line argument it came from.
        label: Its class (the class folder's name) when ``given`` is a folder laid out as classes.
        error: Why it cannot be answered before anything is read (a folder without videos).
    """

    path: str
    given: str
    label: str | None = None
    error: str | None = None


@dataclass
class VideoInputs:
    """The expansion of ``INPUT...``: the videos in order, and what was seen but not used."""

    items: list[VideoInput] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def paths(self) -> list[str]:
        return [i.path for i in self.items]

    @property
    def labelled(self) -> bool:
        """Whether every video has a class (every argument was a folder laid out as classes)."""
        return bool(self.items) and all(i.label is not None for i in self.items)

    def __len__(self) -> int:
        return len(self.items)


def _walk(folder: Path, exts: tuple[str, ...], ignored: list[tuple[str, str]], seen: set[str]) -> list[Path]:
    """The videos below ``folder`` (files with a video suffix and frame folders), depth first, each
    folder's entries in natural order. Folders already walked (a link back up) are not walked again."""
    real = os.path.realpath(folder)
    if real in seen:
        return []
    seen.add(real)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: _natural_key(p.name))
    except OSError as e:
        ignored.append((str(folder), f"cannot list it ({e.strerror or e})"))
        return []
    out: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        video_name = entry.suffix.lower() in exts
        try:
            mode = entry.stat().st_mode
        except OSError as e:  # a dangling link
            if video_name:
                ignored.append((str(entry), f"cannot stat it ({e.strerror or e})"))
            continue
        if stat.S_ISREG(mode):
            if video_name:
                out.append(entry)
        elif stat.S_ISDIR(mode):
            if is_frame_folder(entry):
                out.append(entry)
            else:
                out += _walk(entry, exts, ignored, seen)
        elif video_name:
            ignored.append((str(entry), "not a regular file (FIFO, socket or device); only files and frame "
                                        "folders are read"))
    return out


def _labels(root: Path, videos: Sequence[Path]) -> list[str | None]:
    """Each video's class when ``root`` is laid out as classes (``root/<class>/<video>``, or
    ``root/<split>/<class>/<video>`` with train/val/test splits), else None for all."""
    rel = [v.relative_to(root).parts for v in videos]
    if rel and all(len(p) == 2 for p in rel):
        return [p[0] for p in rel]
    if rel and all(len(p) == 3 and p[0] in SPLITS for p in rel):
        return [p[1] for p in rel]
    return [None] * len(videos)


def expand_video_inputs(inputs: Sequence[PathLike], extensions: Sequence[str] = VIDEO_EXTENSIONS) -> VideoInputs:
    """Expand ``INPUT...`` into videos (see the module docstring).

    Args:
        inputs: Video files, frame folders and folders of videos, in the order given.
        extensions: Suffixes of video files inside folders (case-insensitive).

    Returns:
        The videos, in the order of the arguments and, inside a folder, in natural order.
    """
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    out = VideoInputs()
    for arg in inputs:
        given = str(arg)
        p = Path(arg)
        if not p.is_dir() or is_frame_folder(p):
            out.items.append(VideoInput(given, given))
            continue
        videos = _walk(p, exts, out.ignored, set())
        if not videos:
            out.items.append(VideoInput(given, given, error=f"no videos in this folder (files {'/'.join(exts)} "
                                                            "or folders of jpg/png frames, at any depth)"))
            continue
        for v, label in zip(videos, _labels(p, videos)):
            out.items.append(VideoInput(str(v), given, label))
    return out


def is_unlabelled_folder(path: PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> bool:
    """Whether ``vidzoo eval --data PATH`` means a list of videos without labels: a folder (not a frame
    folder) that holds videos directly (video files or frame folders in it), which therefore cannot
    be laid out as ``root/<class>/<video>``. Its videos, at any depth, are predicted, not scored."""
    p = Path(path)
    if not p.is_dir() or is_frame_folder(p):
        return False
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    for entry in p.iterdir():
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_file() and entry.suffix.lower() in exts:
                return True
            if entry.is_dir() and is_frame_folder(entry):
                return True
        except OSError:
            continue
    return False
