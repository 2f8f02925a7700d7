"""Pictures of a run: training curves, confusion matrix, and captioned sample clips.

Matplotlib is used through its object-oriented API with the Agg canvas (no pyplot, no global
backend switch), so plotting works headless and in any thread.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from .._hub import atomic_replace

PathLike = str | os.PathLike


def _save(fig: Figure, path: PathLike) -> Path:
    """Written atomically, never through a symlink (the format is named: the temporary name has no suffix)."""
    FigureCanvasAgg(fig)
    return atomic_replace(lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight",
                                                  format=Path(path).suffix[1:] or "png"), path)


def plot_training_curves(history: Sequence[dict], path: PathLike) -> Path:
    """Loss, top-1/top-k and learning rate per epoch, train and validation.

    Args:
        history: Per-epoch records with ``epoch``, ``train_loss``, ``train_top1``, ``lr``, optionally
            ``train_top{k}`` (named by its k: ``train_top3``; older runs wrote ``train_top5`` whatever the
            classes) and ``val_loss``, ``val_top1``, ``val_top{k}``.
        path: Output PNG.
    """
    from .metrics import topk_key
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(13, 3.8))
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    for split, style in (("train", "-"), ("val", "--")):
        if any(r.get(f"{split}_loss") is not None for r in history):
            ax_loss.plot(epochs, [r.get(f"{split}_loss") for r in history], style, marker="o", ms=3, label=split)
            found = next((f for f in (topk_key(r, split) for r in history) if f is not None), None)
            for k, colour in [("top1", "C0")] + ([(f"top{found[0]}", "C1")] if found else []):
                ax_acc.plot(epochs, [r.get(f"{split}_{k}") for r in history], style, color=colour, marker="o",
                            ms=3, label=f"{split} {k}")
    ax_lr.plot(epochs, [r.get("lr") for r in history], marker="o", ms=3, color="C2")
    for ax, title, ylabel in ((ax_loss, "loss", "cross-entropy"), (ax_acc, "accuracy", "%"),
                              (ax_lr, "learning rate (end of epoch)", "lr")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax_loss.legend()
    ax_acc.legend(fontsize=8)
    ax_acc.set_ylim(0, 100)
    return _save(fig, path)


def plot_confusion_matrix(confusion: torch.Tensor | np.ndarray, class_names: Sequence[str], path: PathLike,
                          normalize: bool = True) -> Path:
    """Confusion matrix heat map (rows: true class, columns: predicted class).

    Args:
        confusion: ``(K, K)`` counts.
        class_names: ``K`` names.
        path: Output PNG.
        normalize: Colour by the fraction of each true class (counts are still printed).
    """
    cm = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    k = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    side = min(2.0 + 0.45 * k, 24.0)
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
    ticks = np.arange(k)
    ax.set_xticks(ticks, labels=list(class_names), rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
    ax.set_title(f"confusion matrix ({int(cm.sum())} samples)")
    return _save(fig, path)


def denormalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``Normalize``: ``(C, T, H, W)`` normalised floats -> floats in ``[0, 1]``."""
    m = torch.as_tensor(mean, dtype=clip.dtype).view(-1, 1, 1, 1)
    s = torch.as_tensor(std, dtype=clip.dtype).view(-1, 1, 1, 1)
    return (clip.float().cpu() * s + m).clamp(0, 1)


def _to_uint8_frames(clip: torch.Tensor, cell: int) -> np.ndarray:
    """``(C, T, H, W)`` in [0, 1] -> ``(T, cell, cell * W / H, 3)`` uint8, upscaled by nearest neighbour."""
    c, t, h, w = clip.shape
    if c == 1:
        clip = clip.expand(3, -1, -1, -1)
    elif c != 3:
        clip = clip[:3] if c > 3 else torch.cat([clip, clip[-1:].expand(3 - c, -1, -1, -1)])
    scale = max(1, round(cell / h))
    frames = clip.permute(1, 2, 3, 0).mul(255).round().to(torch.uint8).numpy()  # (T, H, W, 3)
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def save_clip_grid(clips: Sequence[torch.Tensor], captions: Sequence[str], path_png: PathLike | None = None,
                   path_gif: PathLike | None = None, correct: Sequence[bool] | None = None, max_frames: int = 8,
                   cell: int = 96, columns: int = 4, fps: int = 4,
                   frame_indices: Sequence[Sequence[int] | None] | None = None) -> list[Path]:
    """Sample clips with captions: a PNG of frame strips and/or an animated GIF grid.

    Args:
        clips: ``(C, T, H, W)`` tensors in ``[0, 1]`` (see :func:`denormalize`).
        captions: One caption per clip, e.g. ``"true: left / pred: left (0.93)"``.
        path_png: Frame strips, one row per clip (up to ``max_frames`` frames evenly spread).
        path_gif: Animated grid playing every frame of every clip.
        correct: Per clip, whether the prediction is right (green caption) or wrong (red).
        max_frames: Frames per strip in the PNG.
        cell: Approximate pixel height of one frame in the pictures.
        columns: Clips per row in the GIF.
        fps: GIF frame rate.
        frame_indices: Per clip, the index in its source video of each of its frames: the PNG labels
            every frame with it (``frame 31``), so a clip that repeats a frame shows it. None (or None
            for a clip): frames are labelled with their position in the clip (``t=3``).

    Returns:
        The paths written.
    """
    if len(clips) != len(captions):
        raise ValueError(f"got {len(clips)} clips but {len(captions)} captions")
    written: list[Path] = []
    if not clips:
        return written
    correct = list(correct) if correct is not None else [True] * len(clips)
    colours = ["#1a7f37" if ok else "#cf222e" for ok in correct]
    if path_png is not None:
        t_max = max(c.shape[1] for c in clips)
        n_cols = min(max_frames, t_max)
        fig = Figure(figsize=(1.6 * n_cols, 1.9 * len(clips)))
        axes = np.atleast_2d(fig.subplots(len(clips), n_cols, squeeze=False))
        for i, (clip, cap) in enumerate(zip(clips, captions)):
            frames = _to_uint8_frames(clip, cell)
            idx = np.linspace(0, frames.shape[0] - 1, n_cols).round().astype(int)
            for j, t in enumerate(idx):
                ax = axes[i, j]
                ax.imshow(frames[t])
                ax.set_xticks([])
                ax.set_yticks([])
                src = frame_indices[i] if frame_indices is not None and i < len(frame_indices) else None
                ax.set_xlabel(f"frame {src[t]}" if src is not None and t < len(src) else f"t={t}", fontsize=7)
            axes[i, 0].set_title(cap, loc="left", fontsize=9, color=colours[i])
        fig.tight_layout()
        written.append(_save(fig, path_png))
    if path_gif is not None:
        written.append(_save_gif(clips, captions, colours, Path(path_gif), cell, columns, fps))
    return written


def _save_gif(clips: Sequence[torch.Tensor], captions: Sequence[str], colours: Sequence[str], path: Path,
              cell: int, columns: int, fps: int) -> Path:
    strips = [_to_uint8_frames(c, cell) for c in clips]
    ch = max(s.shape[1] for s in strips)
    cw = max(s.shape[2] for s in strips)
    font = ImageFont.load_default()
    pad, text_h = 4, 28
    cols = min(columns, len(strips))
    rows = math.ceil(len(strips) / cols)
    cell_w = max(cw, 150)
    width, height = cols * (cell_w + pad) + pad, rows * (ch + text_h + pad) + pad
    t_max = max(s.shape[0] for s in strips)
    frames = []
    for t in range(t_max):
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        for i, (strip, cap) in enumerate(zip(strips, captions)):
            r, c = divmod(i, cols)
            x0, y0 = pad + c * (cell_w + pad), pad + r * (ch + text_h + pad)
            img.paste(Image.fromarray(strip[min(t, strip.shape[0] - 1)]), (x0, y0))
            for k, line in enumerate(cap.split(" / ")[:2]):
                draw.text((x0, y0 + ch + 2 + 12 * k), line, fill=colours[i], font=font)
        frames.append(img)
    return atomic_replace(lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                     duration=int(1000 / fps), loop=0), path)
