"""Writing videos, and a synthetic dataset that only a temporal model can solve.

:func:`make_motion_dataset` writes real mp4 files (``root/<class>/NNNN.mp4``) showing one shape
that moves in a class-specific direction over a noisy background. Position wraps around the
frame edges (a torus) and starts uniformly at random, so the position of the shape in any single
frame is uniform whatever the class; colour, size, shape kind, speed and background are drawn
independently of the class. Every single frame therefore has the same appearance distribution in
every class: only the change between frames tells classes apart, which makes the dataset a quick
check that a video model uses time (a frame-averaging model stays at chance).
"""
from __future__ import annotations

import math
import os
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .._utils import tqdm_disable
from .decode import require_av

try:  # PyAV writes the videos; importing this module must not need it (see decode.require_av)
    import av
except ImportError:
    av = None

__all__ = ["default_codec", "write_video", "make_motion_dataset", "MOTION_DIRECTIONS"]

PathLike = Union[str, os.PathLike]

# Class name -> unit direction (dx, dy) in image coordinates (y points down). Opposite directions
# come in pairs so that num_classes=2 gives the left/right task.
MOTION_DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up_left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down_right": (math.sqrt(0.5), math.sqrt(0.5)),
    "up_right": (math.sqrt(0.5), -math.sqrt(0.5)),
    "down_left": (-math.sqrt(0.5), math.sqrt(0.5)),
}


def default_codec() -> str:
    """``"libx264"`` when this PyAV build can encode it, else ``"mpeg4"`` (always built in)."""
    require_av()
    if "libx264" in av.codecs_available:
        try:
            av.codec.Codec("libx264", "w")
            return "libx264"
        except Exception:  # listed but no encoder
            pass
    return "mpeg4"


def _to_thwc(frames: np.ndarray | torch.Tensor, layout: str) -> np.ndarray:
    arr = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim == 3:  # (T, H, W) grayscale
        arr = arr[..., None]
        layout = "thwc"
    if arr.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, C) or (C, T, H, W), got shape {arr.shape}")
    if layout == "auto":
        if arr.shape[-1] in (1, 3):
            layout = "thwc"
        elif arr.shape[0] in (1, 3):
            layout = "cthw"
        else:
            raise ValueError(f"cannot tell channels in frames of shape {arr.shape}; pass layout=")
    if layout == "cthw":
        arr = arr.transpose(1, 2, 3, 0)
    elif layout != "thwc":
        raise ValueError(f"layout must be 'auto', 'thwc' or 'cthw', got {layout!r}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] != 3:
        raise ValueError(f"frames must have 1 or 3 channels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0  # float frames in 0..1
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def write_video(path: PathLike, frames: np.ndarray | torch.Tensor, fps: int = 8, codec: str | None = None, *,
                gop_size: int | None = None, quality: int = 18, layout: str = "auto",
                options: dict[str, str] | None = None) -> Path:
    """Encode frames into a video file with PyAV (container chosen by the file extension).

    Args:
        path: output file (``.mp4``, ``.avi``, ``.mkv``, ...); parent folders are created.
        frames: ``uint8`` (or float 0..1) frames ``(T, H, W, C)``, ``(C, T, H, W)`` or ``(T, H, W)``,
            with 1 or 3 channels and even ``H``, ``W`` (yuv420p subsamples chroma by 2).
        fps: frame rate.
        codec: encoder name; :func:`default_codec` when None.
        gop_size: keyframe interval (small values make seeking matter in tests).
        quality: libx264 CRF / mpeg4 qscale-like knob; lower is closer to lossless.
        layout: ``"auto"``, ``"thwc"`` or ``"cthw"``.
        options: extra encoder options passed to FFmpeg.

    Returns:
        The written path.
    """
    require_av()
    arr = _to_thwc(frames, layout)
    t, h, w, _ = arr.shape
    if t == 0:
        raise ValueError("cannot write a video with 0 frames")
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {h}x{w}")
    codec = codec or default_codec()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop_size is not None:
            stream.codec_context.gop_size = int(gop_size)
        opts = dict(options or {})
        if codec == "libx264":
            opts.setdefault("crf", str(quality))
            opts.setdefault("preset", "veryfast")  # ~2x faster than the default; keeps B-frames
            if gop_size is not None:  # no extra scene-cut keyframes: the GOP is what the caller asked
                opts.setdefault("x264-params", f"keyint={gop_size}:min-keyint={gop_size}:scenecut=0")
        else:
            # Rate control by bitrate: ~0.5 to 4 bits per pixel depending on quality.
            bpp = max(0.5, 4.0 - quality / 8)
            stream.codec_context.bit_rate = int(bpp * w * h * fps)
        stream.options = opts
        for frame in arr:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush delayed frames
            container.mux(packet)
    return path


def _render_motion_video(rng: np.random.Generator, direction: tuple[float, float], num_frames: int,
                         height: int, width: int) -> np.ndarray:
    """One video (T, H, W, 3) uint8; every random draw is independent of ``direction``."""
    small = min(height, width)
    gray = rng.uniform(70, 185)
    noise = rng.normal(0.0, 12.0, size=(num_frames, height, width, 3))
    background = gray + noise
    while True:  # a colour that stands out from the background
        colour = rng.uniform(0, 255, size=3)
        if abs(colour.mean() - gray) > 50:
            break
    radius = rng.uniform(0.09, 0.16) * small
    is_disc = rng.random() < 0.5
    speed = rng.uniform(0.03, 0.055) * small  # pixels per frame
    x0, y0 = rng.uniform(0, width), rng.uniform(0, height)

    t = np.arange(num_frames)
    cx = (x0 + direction[0] * speed * t) % width
    cy = (y0 + direction[1] * speed * t) % height
    # Toroidal offsets of pixel centres from the shape centre: the shape wraps around the edges.
    dx = (np.arange(width)[None, :] + 0.5 - cx[:, None] + width / 2) % width - width / 2  # (T, W)
    dy = (np.arange(height)[None, :] + 0.5 - cy[:, None] + height / 2) % height - height / 2  # (T, H)
    if is_disc:
        mask = dy[:, :, None] ** 2 + dx[:, None, :] ** 2 <= radius ** 2
    else:
        mask = (np.abs(dy)[:, :, None] <= radius) & (np.abs(dx)[:, None, :] <= radius)
    frames = np.where(mask[..., None], colour, background)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def make_motion_dataset(root: PathLike, num_classes: int = 4, videos_per_class: int = 10,
                        num_frames: int = 16, size: tuple[int, int] = (64, 64), fps: int = 8,
                        seed: int = 0, split: str | None = None, codec: str | None = None,
                        progress: bool = False) -> list[str]:
    """Write a motion-direction classification dataset of real mp4 files.

    Layout: ``root/<class>/NNNN.mp4`` (or ``root/<split>/<class>/NNNN.mp4`` when ``split`` is
    given), readable by :class:`~vidzoo.data.VideoFolder`. Class ``k`` moves a random shape in
    direction ``MOTION_DIRECTIONS[k]`` (left, right, up, down, then diagonals).

    Args:
        root: output folder.
        num_classes: 2..8 motion directions.
        videos_per_class: videos written per class.
        num_frames: frames per video.
        size: ``(H, W)``, both even.
        fps: frame rate written into the files.
        seed: random seed; the same ``(seed, split)`` writes the same videos.
        split: optional sub-folder name (e.g. ``"train"``, ``"val"``); each split draws
            different videos from the same seed.
        codec: encoder; :func:`default_codec` when None.
        progress: show a tqdm progress bar.

    Returns:
        Class names, sorted as :class:`~vidzoo.data.VideoFolder` indexes them.
    """
    if not 2 <= num_classes <= len(MOTION_DIRECTIONS):
        raise ValueError(f"num_classes must be in 2..{len(MOTION_DIRECTIONS)}, got {num_classes}")
    if videos_per_class < 1 or num_frames < 2:
        raise ValueError(f"need videos_per_class >= 1 and num_frames >= 2, got {videos_per_class}, {num_frames}")
    height, width = size
    if height % 2 or width % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    out_dir = Path(root) / split if split else Path(root)
    names = list(MOTION_DIRECTIONS)[:num_classes]
    codec = codec or default_codec()
    # One random stream per file, keyed by (seed, split, class, index): a file's content does not
    # depend on how many classes/videos are written. crc32, not hash(): stable across processes.
    split_key = zlib.crc32((split or "").encode())
    jobs = [(c, v) for v in range(videos_per_class) for c in range(num_classes)]
    for c, v in tqdm(jobs, desc=f"writing {out_dir}", disable=tqdm_disable(progress)):
        rng = np.random.default_rng([seed, split_key, c, v])
        name = names[c]
        frames = _render_motion_video(rng, MOTION_DIRECTIONS[name], num_frames, height, width)
        write_video(out_dir / name / f"{v:04d}.mp4", frames, fps=fps, codec=codec)
    return sorted(names)
