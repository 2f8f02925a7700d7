"""Video decoding with PyAV, and reading folders of extracted frames.

Every reader returns a ``uint8`` tensor shaped ``(C, T, H, W)`` (RGB, ``C == 3``) holding exactly the
requested frames in the requested order (duplicates allowed: samplers pad short videos by repetition).

Decoding reads only what is needed: frames are decoded in order and decoding stops after the last
requested index. When the first requested index lies far into the file, the demuxer seeks to the
keyframe before it and decoding resumes from there; frame indices after a seek are recovered from
presentation timestamps (``pts * time_base * average_rate``), and a seek that cannot be verified
falls back to decoding from the start, so seeking never changes which frames come back.
"""
from __future__ import annotations

import errno
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
from einops import rearrange
from PIL import Image

try:  # PyAV decodes video files; frame folders and npz volumes never need it
    import av
except ImportError:  # e.g. a GPU image without PyAV: fail when a video file is opened, not at import
    av = None

__all__ = [
    "UnreadableVideoError",
    "VideoDecodeError",
    "VideoNotFoundError",
    "VideoInfo",
    "IMAGE_EXTENSIONS",
    "video_info",
    "read_video",
    "read_video_clips",
    "list_frame_files",
    "is_frame_folder",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")

PathLike = Union[str, os.PathLike]
IndexLike = Union[Sequence[int], np.ndarray, torch.Tensor]
# A sampler maps the number of frames in a video to the indices to read (one clip or a list of clips).
SamplerFn = Callable[[int], Union[IndexLike, Sequence[IndexLike]]]


class UnreadableVideoError(Exception):
    """A video (file or frame folder) that cannot be read: missing, not a regular file or folder,
    or not decodable. The one error the engine's unreadable-video policies catch
    (:mod:`vidzoo.data.unreadable`); anything else a reader raises is a bug and propagates.

    Args:
        path: the offending file or folder.
        reason: what went wrong, in a few words.
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video '{self.path}': {reason}")

    def __reduce__(self):  # keep picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


class VideoDecodeError(UnreadableVideoError, RuntimeError):
    """A video file (or frame folder) exists but cannot be decoded."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        RuntimeError.__init__(self, f"cannot decode video '{self.path}': {reason}")


class VideoNotFoundError(UnreadableVideoError, FileNotFoundError):
    """No file or folder at the video's path (a ``FileNotFoundError`` as well)."""

    def __init__(self, path: PathLike, reason: str = "video file or frame folder not found") -> None:
        self.path = str(path)
        self.reason = reason
        FileNotFoundError.__init__(self, errno.ENOENT, reason, self.path)


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts about a video.

    Attributes:
        num_frames: number of frames (from the container, or counted by decoding when it has none).
        fps: average frame rate; ``None`` for frame folders.
        height: frame height in pixels.
        width: frame width in pixels.
        duration: seconds; ``None`` when unknown (frame folders).
    """

    num_frames: int
    fps: float | None
    height: int
    width: int
    duration: float | None


# --------------------------------------------------------------------------------------------------
# helpers


def _check_exists(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(p)
    if not (p.is_file() or p.is_dir()):
        # FFmpeg would block forever on a FIFO with no writer (or read a device without end).
        raise VideoDecodeError(p, "not a regular file or frame folder (a FIFO, socket or device)")
    return p


def _natural_key(name: str) -> list:
    # "frame_10.jpg" sorts after "frame_9.jpg": compare digit runs as numbers.
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def list_frame_files(folder: PathLike) -> list[Path]:
    """Image files of a frame folder, sorted naturally by name (``img_2`` before ``img_10``).

    Args:
        folder: directory holding one image per frame.

    Returns:
        The sorted list of image paths (possibly empty).
    """
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def is_frame_folder(path: PathLike) -> bool:
    """True when ``path`` is a directory containing at least one image file."""
    p = Path(path)
    if not p.is_dir():
        return False
    return any(c.is_file() and c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir())


def _as_index_tensor(indices: IndexLike) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
    if idx.ndim != 1 or idx.numel() == 0:
        raise ValueError(f"frame indices must be a non-empty 1-D sequence, got shape {tuple(idx.shape)}")
    if idx.is_floating_point():
        raise TypeError(f"frame indices must be integers, got dtype {idx.dtype}")
    idx = idx.long()
    if int(idx.min()) < 0:
        raise IndexError(f"frame indices must be >= 0, got {int(idx.min())}")
    return idx


def _as_clip_list(result) -> list[torch.Tensor]:
    """Normalise a sampler result (one index sequence or a list of them) to a list of index tensors."""
    # A list of sequences is several clips; a list of scalars (ints, 0-d tensors) is one clip.
    if isinstance(result, (list, tuple)) and len(result) > 0 and np.ndim(result[0]) > 0:
        return [_as_index_tensor(r) for r in result]
    return [_as_index_tensor(result)]


def _frames_to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    # (T, H, W, C) uint8 -> (C, T, H, W); one contiguous copy.
    return rearrange(torch.from_numpy(np.stack(frames)), "t h w c -> c t h w").contiguous()


# --------------------------------------------------------------------------------------------------
# frame folders


def _folder_info(folder: Path) -> VideoInfo:
    files = list_frame_files(folder)
    if not files:
        raise VideoDecodeError(folder, f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder")
    try:
        with Image.open(files[0]) as im:
            width, height = im.size
    except Exception as e:  # PIL raises a zoo of types for bad images
        raise VideoDecodeError(files[0], f"unreadable image: {e}") from e
    return VideoInfo(num_frames=len(files), fps=None, height=height, width=width, duration=None)


def _read_folder(folder: Path, clips: list[torch.Tensor] | SamplerFn | None) -> list[torch.Tensor]:
    files = list_frame_files(folder)
    if not files:
        raise VideoDecodeError(folder, f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder")
    if clips is None:
        clips = [torch.arange(len(files))]
    elif callable(clips):
        clips = _as_clip_list(clips(len(files)))
    wanted = torch.unique(torch.cat(clips)).tolist()
    if wanted[-1] >= len(files):
        raise IndexError(f"frame index {wanted[-1]} out of range for '{folder}' with {len(files)} frames")
    images: dict[int, np.ndarray] = {}
    for i in wanted:  # only the requested images are opened
        try:
            with Image.open(files[i]) as im:
                images[i] = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise VideoDecodeError(files[i], f"unreadable image: {e}") from e
    shapes = {a.shape for a in images.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(folder, f"frames differ in size: {sorted(shapes)}")
    return [_frames_to_tensor([images[i] for i in clip.tolist()]) for clip in clips]


# --------------------------------------------------------------------------------------------------
# video files


def require_av() -> None:
    """Raise a clear ImportError when PyAV, needed to decode video files, is not installed."""
    if av is None:
        raise ImportError("decoding video files needs PyAV, which is not installed (pip install av)")


def _open(path: Path):
    require_av()
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"not a readable video container ({e.__class__.__name__}: {e})") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream in container")
    return container


def _stream_fps(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def _count_by_decoding(path: Path) -> int:
    # Containers such as mkv/webm store no frame count; decoding is the only exact count.
    container = _open(path)
    try:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream))
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed while counting frames ({e})") from e
    finally:
        container.close()


def _file_info(path: Path) -> VideoInfo:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        num_frames = int(stream.frames or 0)
        fps = _stream_fps(stream)
        height, width = stream.codec_context.height, stream.codec_context.width
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = None
    finally:
        container.close()
    if num_frames <= 0:
        num_frames = _count_by_decoding(path)
    if duration is None and fps:
        duration = num_frames / float(fps)
    return VideoInfo(num_frames=num_frames, fps=float(fps) if fps else None, height=height,
                     width=width, duration=duration)


def _decode_wanted(container, stream, wanted: list[int], seek_threshold: int, path: Path
                   ) -> tuple[dict[int, np.ndarray], int, bool]:
    """Decode the frames at sorted unique indices ``wanted``.

    Returns:
        (frames by index, number of frames decoded, whether the stream ended before the last wanted index).
    """
    fps = _stream_fps(stream)
    start_pts = stream.start_time or 0
    time_base = stream.time_base
    seeked = False
    if wanted[0] >= seek_threshold and fps and time_base:
        # Seek to the keyframe at or before the first wanted frame (backward=True), decode forward.
        target = start_pts + int(math.floor(wanted[0] / fps / time_base))
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            seeked = True
        except av.FFmpegError:
            seeked = False

    def frame_index(frame, counter: int) -> int | None:
        if not seeked:
            return counter  # decoding from the start: the running count is the exact frame index
        if frame.pts is None:
            return None
        return int(round(float((frame.pts - start_pts) * time_base * fps)))

    out: dict[int, np.ndarray] = {}
    w, counter, decoded, prev = 0, 0, 0, None
    try:
        for frame in container.decode(stream):
            idx = frame_index(frame, counter)
            decoded += 1
            counter += 1
            if seeked and decoded == 1 and (idx is None or idx > wanted[0]):
                # The seek landed after the first wanted frame (or pts is unusable): start over.
                container.seek(0, stream=stream, backward=True, any_frame=False)
                return _decode_wanted(container, stream, wanted, seek_threshold=1 << 62, path=path)
            if idx is None:  # a later frame without pts: it follows the previous one
                idx = prev[0] + 1
            # Frames missing from the timeline (variable frame rate): reuse the previous decoded frame.
            while w < len(wanted) and wanted[w] < idx:
                src = prev[1] if prev is not None else frame
                out[wanted[w]] = src.to_ndarray(format="rgb24")
                w += 1
            if w < len(wanted) and wanted[w] == idx:
                out[idx] = frame.to_ndarray(format="rgb24")
                w += 1
            if w == len(wanted):
                break  # stop as soon as the last wanted frame is in hand
            prev = (idx, frame)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed after {decoded} frames ({e})") from e
    ended_early = w < len(wanted)
    if ended_early and prev is not None:
        last = prev[1].to_ndarray(format="rgb24")
        for i in wanted[w:]:
            out[i] = last
    return out, decoded, ended_early


def _read_file(path: Path, clips: list[torch.Tensor] | SamplerFn | None, seek_threshold: int
               ) -> tuple[list[torch.Tensor], int]:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        meta_frames = int(stream.frames or 0)
        if callable(clips):
            n = meta_frames if meta_frames > 0 else _count_by_decoding(path)
            clips = _as_clip_list(clips(n))
        if clips is None:
            # Whole video: decode everything in order.
            try:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            except av.FFmpegError as e:
                raise VideoDecodeError(path, f"decoding failed ({e})") from e
            if not frames:
                raise VideoDecodeError(path, "video stream has no decodable frames")
            return [_frames_to_tensor(frames)], len(frames)
        wanted = torch.unique(torch.cat(clips)).tolist()
        if meta_frames > 0 and wanted[-1] >= meta_frames:
            raise IndexError(f"frame index {wanted[-1]} out of range for '{path}' with {meta_frames} frames")
        frames, decoded, ended_early = _decode_wanted(container, stream, wanted, seek_threshold, path)
        if decoded == 0:
            raise VideoDecodeError(path, "video stream has no decodable frames")
        if ended_early and meta_frames == 0:
            raise IndexError(f"frame index {wanted[-1]} out of range for '{path}' "
                             f"(stream ended after frame {max(frames) if frames else -1})")
        # ended_early with a container count means the count overstated the stream by a few frames;
        # the tail was padded with the last decoded frame, as samplers pad short videos.
        return [_frames_to_tensor([frames[i] for i in clip.tolist()]) for clip in clips], decoded
    finally:
        container.close()


# --------------------------------------------------------------------------------------------------
# public API


def video_info(path: PathLike) -> VideoInfo:
    """Frame count, frame rate, size and duration of a video file or frame folder.

    Args:
        path: a video file, or a folder of extracted frames.

    Returns:
        A :class:`VideoInfo`. ``num_frames`` comes from the container; containers that store none
        (mkv, webm) are counted by decoding.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file is not a readable video (or the folder holds no images).
    """
    p = _check_exists(path)
    return _folder_info(p) if p.is_dir() else _file_info(p)


def read_video_clips(path: PathLike, clips: Sequence[IndexLike] | SamplerFn | None = None, *,
                     seek_threshold: int = 32) -> list[torch.Tensor]:
    """Read several clips of one video, decoding each needed frame once.

    Args:
        path: video file or frame folder.
        clips: a list of frame index sequences, or a callable ``f(num_frames)`` returning one index
            sequence or a list of them (e.g. a :class:`~vidzoo.data.FrameSampler`); ``None`` reads
            every frame as one clip.
        seek_threshold: seek (to the keyframe before the first needed frame) only when the first
            needed index is at least this far into the video; nearer frames are reached faster by
            decoding from the start.

    Returns:
        One ``uint8`` tensor ``(3, T_i, H, W)`` per clip.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file or a frame cannot be decoded.
        IndexError: an index is past the end of the video.
    """
    p = _check_exists(path)
    if clips is not None and not callable(clips):
        clips = [_as_index_tensor(c) for c in clips]
        if not clips:
            raise ValueError("clips must hold at least one index sequence")
    if p.is_dir():
        return _read_folder(p, clips)
    return _read_file(p, clips, seek_threshold)[0]


def read_video(path: PathLike, indices: IndexLike | SamplerFn | None = None, *,
               seek_threshold: int = 32) -> torch.Tensor:
    """Read frames of a video file or frame folder.

    Args:
        path: video file (anything FFmpeg reads: mp4, avi, mkv, webm, mov, ...) or a folder of
            frame images (jpg/png, sorted naturally by name).
        indices: frame indices to read (any order, repeats allowed); a callable ``f(num_frames)``
            returning them (a sampler); or ``None`` for every frame.
        seek_threshold: see :func:`read_video_clips`.

    Returns:
        ``uint8`` tensor ``(3, T, H, W)`` with ``T == len(indices)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file or a frame cannot be decoded.
        IndexError: an index is past the end of the video.
        ValueError: the sampler returned several clips (use :func:`read_video_clips`).
    """
    if indices is not None and not callable(indices):
        indices = [_as_index_tensor(indices)]
    clips = read_video_clips(path, indices, seek_threshold=seek_threshold)
    if len(clips) != 1:
        raise ValueError(f"the sampler returned {len(clips)} clips; use read_video_clips() for multi-clip reads")
    return clips[0]
