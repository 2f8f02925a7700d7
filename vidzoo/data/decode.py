"""Video decoding with PyAV, and reading folders of extracted frames.

Every reader returns a ``uint8`` tensor shaped ``(C, T, H, W)`` (RGB, ``C == 3``) holding exactly the
requested frames in the requested order (duplicates allowed: samplers pad short videos by repetition).

Decoding reads only what is needed: frames are decoded in order and decoding stops after the last
requested index. When the first requested index lies far into the file, the demuxer seeks to the
keyframe before it and decoding resumes from there; frame indices after a seek are recovered from
presentation timestamps (``pts * time_base * average_rate``), and a seek that cannot be verified
falls back to decoding from the start, so seeking never changes which frames come back.

Frames come out as players show them, all of one size:

* **Rotation.** A display matrix (the rotation metadata of phone videos) is applied, so a portrait
  recording stored sideways comes out upright; :func:`video_info` reports the displayed size.
* **One size.** Every frame has the displayed size of the video's first frame: a stream whose
  resolution changes midway has its later frames scaled to it (frame folders likewise).
* **Scaled while decoding.** ``size`` asks for smaller frames, either ``(H, W)`` or a function of
  the displayed size (a transform's ``decode_size``, so the decoder makes what the transform would
  have made its input into). PyAV's swscale scales each needed frame while converting it to RGB
  (:data:`DECODE_INTERPOLATION`), so no full-resolution RGB frame is made and resized afterwards.
  The decoder only ever scales down: a larger size decodes at the displayed size.

Container headers are not trusted. A frame count the stream does not reach is replaced by the
count decoding finds (remembered per file in this process): a sampler is asked again with it, so
clips are drawn from frames that exist, and a header declaring 10^9 frames costs only the frames
there are. ``video_info(path, exact=True)`` checks the header count against the stream.
:func:`frame_count` is the cheap count for checking a whole dataset: the header's (or the count
decoding found), without decoding a frame.
"""
from __future__ import annotations

import errno
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

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
    "DECODE_INTERPOLATION",
    "video_info",
    "frame_count",
    "read_video",
    "read_video_clips",
    "iter_video_frames",
    "list_frame_files",
    "is_frame_folder",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")

PathLike = Union[str, os.PathLike]
IndexLike = Union[Sequence[int], np.ndarray, torch.Tensor]
# A sampler maps the number of frames in a video to the indices to read (one clip or a list of clips).
SamplerFn = Callable[[int], Union[IndexLike, Sequence[IndexLike]]]
# The size frames are decoded to: (H, W), or a function of the displayed (H, W) (None: keep it).
SizeLike = Union[tuple[int, int], Callable[[int, int], Optional[tuple[int, int]]], None]

# swscale's filter for decode-time scaling. Its bilinear filter widens with the reduction factor (an
# antialiased triangle filter), as torch's bilinear interpolation with antialias=True in the transforms.
DECODE_INTERPOLATION = "BILINEAR"


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
        num_frames: number of frames (from the container, or counted by decoding when it has none,
            when it overstated the stream in an earlier read, or with ``exact=True``).
        fps: average frame rate; ``None`` for frame folders.
        height: displayed frame height in pixels (of the first frame, rotation applied).
        width: displayed frame width in pixels.
        duration: seconds; ``None`` when unknown (frame folders).
        rotation: counter-clockwise degrees (0, 90, 180 or 270) the stored frames are turned to be
            shown, from the video's display matrix; 0 without one.
    """

    num_frames: int
    fps: float | None
    height: int
    width: int
    duration: float | None
    rotation: int = 0


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


def _target_size(shown: tuple[int, int], size: SizeLike) -> tuple[int, int]:
    """The size frames of displayed size ``shown`` are decoded to: ``size`` (or ``size(*shown)``)
    when it scales down, else ``shown`` (the decoder never enlarges)."""
    if size is None:
        return shown
    want = size(*shown) if callable(size) else size
    if want is None:
        return shown
    h, w = int(want[0]), int(want[1])
    if h < 1 or w < 1:
        raise ValueError(f"decode size must be at least 1x1, got {want!r} for frames of {shown}")
    return (h, w) if h <= shown[0] and w <= shown[1] else shown


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


def _read_folder(folder: Path, clips: list[torch.Tensor] | SamplerFn | None, size: SizeLike = None
                 ) -> list[torch.Tensor]:
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

    def load(file: Path) -> Image.Image:
        try:
            with Image.open(file) as im:
                return im.convert("RGB")
        except Exception as e:
            raise VideoDecodeError(file, f"unreadable image: {e}") from e

    # Every frame gets the size of the folder's first frame (or the decode size made from it).
    first = load(files[0]) if wanted[0] != 0 else None
    out_hw: tuple[int, int] | None = None
    images: dict[int, np.ndarray] = {}
    for i in wanted:  # only the requested images are opened (and the first, for its size)
        im = load(files[i])
        if out_hw is None:
            ref = first or im
            out_hw = _target_size((ref.height, ref.width), size)
        if (im.height, im.width) != out_hw:
            im = im.resize((out_hw[1], out_hw[0]), Image.Resampling.BILINEAR)
        images[i] = np.asarray(im)
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


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that show ``frame`` as players do, from its display matrix.

    ``frame.rotation`` is FFmpeg's ``av_display_rotation_get`` (counter-clockwise degrees); the
    ffmpeg tool and players turn the picture by it (a phone's ``rotate=90`` tag is -90 here: a
    quarter turn clockwise)."""
    try:
        angle = frame.rotation
    except (AttributeError, ValueError):  # no display matrix / an older PyAV
        return 0
    return int(round(float(angle) / 90.0)) % 4 if angle else 0


def _shown_size(frame, turns: int) -> tuple[int, int]:
    return (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)


class _FrameConverter:
    """Decoded frames -> RGB ``(H, W, 3)`` arrays as players show them (rotated), all of one size:
    the displayed size of the video's first frame, or the decode size made from it."""

    def __init__(self, path: Path, size: SizeLike = None) -> None:
        self.path = path
        self.size = size
        self.out: tuple[int, int] | None = None
        self.turns = 0

    def set_first(self, frame) -> None:
        """Fix the output size (and the reported rotation) from the video's first frame."""
        self.turns = _quarter_turns(frame)
        self.out = _target_size(_shown_size(frame, self.turns), self.size)

    def __call__(self, frame) -> np.ndarray:
        if self.out is None:
            self.set_first(frame)
        turns = _quarter_turns(frame)
        h, w = self.out
        ch, cw = (w, h) if turns % 2 else (h, w)  # the size before the picture is turned
        try:
            if (frame.height, frame.width) == (ch, cw):
                arr = frame.to_ndarray(format="rgb24")
            else:  # scaled by swscale while converting to RGB
                arr = frame.to_ndarray(width=cw, height=ch, format="rgb24", interpolation=DECODE_INTERPOLATION)
        except (av.FFmpegError, ValueError) as e:
            raise VideoDecodeError(self.path, f"cannot convert a {frame.width}x{frame.height} "
                                              f"{frame.format.name} frame to RGB ({e})") from e
        return np.ascontiguousarray(np.rot90(arr, turns)) if turns else arr


# Frame counts decoding found (the header's was missing or overstated), per file in this process, so
# a file pays the extra decode once. Keyed by identity and version: an edited file is counted again.
_COUNTS: dict[tuple[int, int, int, int], int] = {}
_COUNTS_MAX = 65536


def _file_key(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _known_count(path: Path) -> int | None:
    return _COUNTS.get(_file_key(path))


def _remember_count(path: Path, n: int) -> None:
    if len(_COUNTS) >= _COUNTS_MAX:
        _COUNTS.pop(next(iter(_COUNTS)))
    _COUNTS[_file_key(path)] = n


def _scan_stream(path: Path, decode: bool) -> tuple[int, float | None]:
    """Frames (decoded, or non-empty packets without decoding) and where the stream ends (seconds
    after its start, from timestamps; None when it has none). Memory does not grow with the stream."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        start = stream.start_time
        count, end = 0, None
        items = container.decode(stream) if decode else (p for p in container.demux(stream) if p.size)
        for item in items:
            count += 1
            if item.pts is not None and tb is not None:
                start = item.pts if start is None else start
                stop = item.pts + (item.duration or 0)
                end = stop if end is None else max(end, stop)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed while counting frames ({e})") from e
    finally:
        container.close()
    seconds = float((end - start) * tb) if end is not None and start is not None else None
    return count, seconds


# Frame counts read from container headers (or counted by packets when a header has none), per file in
# this process: opening the same data twice (training, then evaluation) opens each file once.
_HEADER_COUNTS: dict[tuple[int, int, int, int], int] = {}


def _header_count(path: Path) -> int:
    key = _file_key(path)
    n = _HEADER_COUNTS.get(key)
    if n is not None:
        return n
    container = _open(path)
    try:
        stream = container.streams.video[0]
        n = int(stream.frames or 0)
        if n <= 0:  # mkv / webm store no count: count the packets (demuxed, not decoded)
            n = sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"reading the stream failed while counting frames ({e})") from e
    finally:
        container.close()
    if n <= 0:
        raise VideoDecodeError(path, "video stream has no frames")
    if len(_HEADER_COUNTS) >= _COUNTS_MAX:
        _HEADER_COUNTS.pop(next(iter(_HEADER_COUNTS)))
    _HEADER_COUNTS[key] = n
    return n


def _count_by_decoding(path: Path) -> int:
    # Containers such as mkv/webm store no frame count; decoding is the only exact count.
    n = _scan_stream(path, decode=True)[0]
    _remember_count(path, n)
    return n


def _file_info(path: Path, exact: bool = False) -> VideoInfo:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        meta = int(stream.frames or 0)
        fps = _stream_fps(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = None
        conv = _FrameConverter(path)
        try:  # the size and rotation of what decoding yields, not of the header
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as e:
            raise VideoDecodeError(path, f"decoding the first frame failed ({e})") from e
        if first is None:
            raise VideoDecodeError(path, "video stream has no decodable frames")
        conv.set_first(first)
    finally:
        container.close()
    num_frames = _known_count(path) or meta
    if exact:
        packets, seconds = _scan_stream(path, decode=False)
        if packets != meta:  # the header is missing or disagrees with the stream: decode to count
            num_frames, seconds = _scan_stream(path, decode=True)
            _remember_count(path, num_frames)
        else:
            num_frames = meta
        duration = seconds if seconds is not None else duration
    elif num_frames <= 0:
        num_frames = _count_by_decoding(path)
    if duration is None and fps:
        duration = num_frames / float(fps)
    height, width = conv.out
    return VideoInfo(num_frames=num_frames, fps=float(fps) if fps else None, height=height, width=width,
                     duration=duration, rotation=90 * conv.turns)


def _first_frame(path: Path):
    """The first decoded frame of the video (for its size and rotation), from a fresh demuxer."""
    container = _open(path)
    try:
        frame = next(iter(container.decode(container.streams.video[0])), None)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding the first frame failed ({e})") from e
    finally:
        container.close()
    if frame is None:
        raise VideoDecodeError(path, "video stream has no decodable frames")
    return frame


def _decode_wanted(container, stream, wanted: list[int], seek_threshold: int, path: Path,
                   conv: _FrameConverter) -> tuple[dict[int, np.ndarray], int, int | None]:
    """Decode the frames at sorted unique indices ``wanted``.

    Returns:
        (frames by index, number of frames decoded, the stream's frame count when it ended before
        the last wanted index, else None).
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

    def restart() -> tuple[dict[int, np.ndarray], int, int | None]:
        container.seek(0, stream=stream, backward=True, any_frame=False)
        return _decode_wanted(container, stream, wanted, seek_threshold=1 << 62, path=path, conv=conv)

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
            if seeked and decoded == 1:
                if idx is None or idx > wanted[0]:
                    # The seek landed after the first wanted frame (or pts is unusable): start over.
                    return restart()
                if conv.out is None:
                    ctx = stream.codec_context
                    # The size the demuxer probed from the first frames; another size here means the
                    # stream changes size (or the probe was wrong): take the first frame's own.
                    same = (frame.height, frame.width) == (ctx.height, ctx.width)
                    conv.set_first(frame if same else _first_frame(path))
            elif decoded == 1 and conv.out is None:
                conv.set_first(frame)
            if idx is None:  # a later frame without pts: it follows the previous one
                idx = prev[0] + 1
            # Frames missing from the timeline (variable frame rate): reuse the previous decoded frame.
            while w < len(wanted) and wanted[w] < idx:
                src = prev[1] if prev is not None else frame
                out[wanted[w]] = conv(src)
                w += 1
            if w < len(wanted) and wanted[w] == idx:
                out[idx] = conv(frame)
                w += 1
            if w == len(wanted):
                break  # stop as soon as the last wanted frame is in hand
            prev = (idx, frame)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed after {decoded} frames ({e})") from e
    if seeked and decoded == 0:
        return restart()  # nothing after the seek point: the seek missed, decode from the start
    if w < len(wanted):  # the stream ended first: it has fewer frames than asked for
        return out, decoded, (prev[0] + 1 if seeked and prev is not None else decoded)
    return out, decoded, None


def _read_file(path: Path, clips: list[torch.Tensor] | SamplerFn | None, seek_threshold: int,
               size: SizeLike = None) -> tuple[list[torch.Tensor], int]:
    sampler = clips if callable(clips) else None
    conv = _FrameConverter(path, size)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        meta = int(stream.frames or 0)
        known = _known_count(path)
        if clips is None:
            # Whole video: decode everything in order (memory follows the frames that exist).
            try:
                frames = [conv(f) for f in container.decode(stream)]
            except av.FFmpegError as e:
                raise VideoDecodeError(path, f"decoding failed ({e})") from e
            if not frames:
                raise VideoDecodeError(path, "video stream has no decodable frames")
            if len(frames) != (known or meta):
                _remember_count(path, len(frames))
            return [_frames_to_tensor(frames)], len(frames)
        n = known or meta
        if sampler is not None:
            clips = _as_clip_list(sampler(n if n > 0 else _count_by_decoding(path)))
        wanted = torch.unique(torch.cat(clips)).tolist()
        if n > 0 and wanted[-1] >= n:
            raise IndexError(f"frame index {wanted[-1]} out of range for '{path}' with {n} frames")
        frames, decoded, stream_frames = _decode_wanted(container, stream, wanted, seek_threshold, path, conv)
        if decoded == 0:
            raise VideoDecodeError(path, "video stream has no decodable frames")
        if stream_frames is not None:
            _remember_count(path, stream_frames)
            said = f" (its header says {meta})" if meta else ""
            if sampler is None:
                raise IndexError(f"frame index {wanted[-1]} out of range for '{path}': its stream has "
                                 f"{stream_frames} frames{said}")
            # The header overstated the frame count: sample again from the frames the stream has.
            clips = _as_clip_list(sampler(stream_frames))
            wanted = torch.unique(torch.cat(clips)).tolist()
            container.close()
            container = _open(path)
            stream = container.streams.video[0]
            frames, more, again = _decode_wanted(container, stream, wanted, seek_threshold, path, conv)
            decoded += more
            if again is not None:
                raise VideoDecodeError(path, f"the stream ended after {again} frames, before frame {wanted[-1]} "
                                             f"of {stream_frames} counted a moment before{said}")
        return [_frames_to_tensor([frames[i] for i in clip.tolist()]) for clip in clips], decoded
    finally:
        container.close()


def iter_video_frames(path: PathLike, wanted: Sequence[int] | None = None, size: SizeLike = None
                      ) -> Iterator[tuple[int, float, float, np.ndarray | None]]:
    """Decode a video file front to back, once.

    Args:
        path: video file.
        wanted: indices whose RGB frames are made (None: every frame); the others are only decoded.
        size: see :func:`read_video_clips`.

    Yields:
        ``(index, seconds, duration, rgb)`` for every frame in presentation order: its time from
        the start of the stream (presentation timestamp, so variable frame rates are timed right),
        its duration in seconds (the container's, else one frame at the average rate), and the
        ``uint8`` ``(H, W, 3)`` frame for wanted indices (None otherwise).

    Raises:
        VideoDecodeError: the file cannot be decoded, or has no frames.
    """
    p = _check_exists(path)
    conv = _FrameConverter(p, size)
    want = None if wanted is None else set(int(i) for i in wanted)
    container = _open(p)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # a whole stream: frame threads pay off
        tb = stream.time_base
        fps = _stream_fps(stream)
        step = float(1 / fps) if fps else 0.0
        start = stream.start_time
        t, i = None, -1
        for i, frame in enumerate(container.decode(stream)):
            if frame.pts is not None and tb is not None:
                start = frame.pts if start is None else start
                t = float((frame.pts - start) * tb)
            else:  # no timestamp: one nominal frame after the previous
                t = 0.0 if t is None else t + step
            dur = float(frame.duration * tb) if frame.duration and tb is not None else step
            if i == 0:
                conv.set_first(frame)
            yield i, t, dur, conv(frame) if want is None or i in want else None
    except av.FFmpegError as e:
        raise VideoDecodeError(p, f"decoding failed after {i + 1} frames ({e})") from e
    finally:
        container.close()
    if i < 0:
        raise VideoDecodeError(p, "video stream has no decodable frames")


# --------------------------------------------------------------------------------------------------
# public API


def video_info(path: PathLike, exact: bool = False) -> VideoInfo:
    """Frame count, frame rate, size and duration of a video file or frame folder.

    The size is what decoding the first frame yields, turned as players show it (see
    :attr:`VideoInfo.rotation`), not what the header says.

    Args:
        path: a video file, or a folder of extracted frames.
        exact: check the header's frame count against the stream: its packets are counted (no
            decoding), and when the two differ the frames are counted by decoding. The duration
            then comes from the stream's timestamps. Costs one read of the file.

    Returns:
        A :class:`VideoInfo`. ``num_frames`` comes from the container unless ``exact``; containers
        that store none (mkv, webm), and files whose header overstated the stream in an earlier
        read in this process, are counted by decoding.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file is not a readable video (or the folder holds no images).
    """
    p = _check_exists(path)
    return _folder_info(p) if p.is_dir() else _file_info(p, exact)


def frame_count(path: PathLike, exact: bool = False) -> int:
    """Number of frames of a video file or frame folder, cheaply (for checking a whole dataset).

    Without ``exact`` nothing is decoded: the count decoding found for this file earlier in this
    process (when its header overstated the stream), else the container header's count, else (mkv,
    webm) the stream's packets counted without decoding them; remembered per file (identity and
    version), so a file is opened once per process (``benchmarks/frame_count.py`` measures the
    cost). A header that overstates the stream is found out only by decoding: reading a clip does
    that, and later counts of the file in this process are then the real one.

    Args:
        path: a video file, or a folder of extracted frames (its image count).
        exact: check the count against the stream (:func:`video_info` with ``exact=True``: one read
            of the file, decoding it when the header disagrees with its packets).

    Raises:
        FileNotFoundError: ``path`` does not exist (a :class:`VideoNotFoundError`).
        VideoDecodeError: not a readable video, no frames (or a folder without images).
    """
    p = _check_exists(path)
    if p.is_dir():
        n = len(list_frame_files(p))
        if n == 0:
            raise VideoDecodeError(p, f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder")
        return n
    if exact:
        return _file_info(p, exact=True).num_frames
    return _known_count(p) or _header_count(p)


def read_video_clips(path: PathLike, clips: Sequence[IndexLike] | SamplerFn | None = None, *,
                     seek_threshold: int = 32, size: SizeLike = None) -> list[torch.Tensor]:
    """Read several clips of one video, decoding each needed frame once.

    Args:
        path: video file or frame folder.
        clips: a list of frame index sequences, or a callable ``f(num_frames)`` returning one index
            sequence or a list of them (e.g. a :class:`~vidzoo.data.FrameSampler`); ``None`` reads
            every frame as one clip. A callable is asked again with the stream's real frame count
            when the container header overstated it.
        seek_threshold: seek (to the keyframe before the first needed frame) only when the first
            needed index is at least this far into the video; nearer frames are reached faster by
            decoding from the start.
        size: frame size to decode to: ``(H, W)``, or a function ``f(H, W)`` of the displayed size
            of the video's first frame returning ``(H, W)`` or None (e.g. a transform's
            ``decode_size``). Frames are scaled while they are converted to RGB, only ever down; None
            (default) keeps the displayed size.

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
        return _read_folder(p, clips, size)
    return _read_file(p, clips, seek_threshold, size)[0]


def read_video(path: PathLike, indices: IndexLike | SamplerFn | None = None, *,
               seek_threshold: int = 32, size: SizeLike = None) -> torch.Tensor:
    """Read frames of a video file or frame folder.

    Args:
        path: video file (anything FFmpeg reads: mp4, avi, mkv, webm, mov, ...) or a folder of
            frame images (jpg/png, sorted naturally by name).
        indices: frame indices to read (any order, repeats allowed); a callable ``f(num_frames)``
            returning them (a sampler); or ``None`` for every frame.
        seek_threshold: see :func:`read_video_clips`.
        size: see :func:`read_video_clips`.

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
    clips = read_video_clips(path, indices, seek_threshold=seek_threshold, size=size)
    if len(clips) != 1:
        raise ValueError(f"the sampler returned {len(clips)} clips; use read_video_clips() for multi-clip reads")
    return clips[0]
