"""Classify a long video window by window: ``vidzoo predict --timeline``.

The model's clip window slides over the whole video. Each window of ``W`` frames gives the model
its ``T`` frames evenly spaced from the window's first to its last frame (index
``start + round(i * (W - 1) / (T - 1))``); with the default window, ``(T - 1) * frame_stride + 1``
frames, that is exactly the model's dense sampling, every ``frame_stride``-th frame. Windows start
every ``stride`` frames (default: half a window); when the last one stops short of the end, one
more window ending at the last frame is added, so the whole video is covered. A video shorter than
a window gives one window over the whole video.

The video is decoded once, front to back; each frame that some window uses is resized and cropped
(the model's evaluation transform, one centre view) once and kept only while a pending window
needs it. The frame count is checked against the stream before windows are laid out (a header
may declare frames that do not exist), and times come from each frame's presentation timestamp,
so a variable-frame-rate video is timed as players show it; spans given in seconds (``--window
2s``) are converted to frames at the average frame rate.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .._hub import atomic_replace, atomic_write_text, ensure_output_dir
from .._utils import tqdm_disable
from ..data import UnreadableVideoError, VideoDecodeError, eval_transforms, video_info
from ..data.decode import iter_video_frames
from .errors import NonFiniteLogitsError, UserError
from .video_inputs import VideoInputs, expand_video_inputs

PathLike = str | os.PathLike
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|f|frames?)?\s*$", re.IGNORECASE)


def parse_span(value: str | int | None, fps: float, what: str = "--window") -> int | None:
    """``'2s'`` / ``'2.5s'`` (seconds) or ``'48'`` / ``'48f'`` (frames) -> frames (>= 1); None stays None.

    Raises:
        UserError: Not a positive number of seconds or frames.
    """
    if value is None:
        return None
    m = _SPAN.match(str(value))
    if not m:
        raise UserError(f"{what} expects seconds ('2s', '1.5s') or frames ('48', '48f'); got {value!r}")
    number, unit = float(m.group(1)), (m.group(2) or "f").lower()
    if unit.startswith("s"):
        frames = int(round(number * fps))
    else:
        if number != int(number):
            raise UserError(f"{what} in frames must be a whole number, got {value!r}")
        frames = int(number)
    if frames < 1:
        raise UserError(f"{what} {value!r} is less than one frame at {fps:g} fps")
    return frames


def window_layout(num_video_frames: int, window: int, stride: int, num_samples: int
                  ) -> list[tuple[int, int, list[int]]]:
    """Windows ``(start, end_exclusive, sampled frame indices)`` covering the video (module docstring)."""
    n, w, t = num_video_frames, min(window, num_video_frames), num_samples
    starts = list(range(0, n - w + 1, stride))
    if starts[-1] + w < n:
        starts.append(n - w)  # cover the tail
    out = []
    for s in starts:
        if t == 1:
            idx = [s + (w - 1) // 2]
        else:  # round(i * (w - 1) / (t - 1)) in integers (halves round up)
            idx = [s + (2 * i * (w - 1) + (t - 1)) // (2 * (t - 1)) for i in range(t)]
        out.append((s, s + w, idx))
    return out


@dataclass
class Timeline:
    """Window-by-window predictions over one video."""

    path: str
    fps: float
    num_frames: int
    window: int  # frames per window
    stride: int  # frames between window starts
    class_names: list[str]
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # exclusive
    probs: torch.Tensor | None = None  # (windows, classes): the rows of predict_timeline's window_fn
    # Seconds from the stream start at which each frame is shown (presentation timestamps), and
    # where the last one ends: num_frames + 1 entries. Empty: frame / fps.
    times: list[float] = field(default_factory=list)
    warning: str | None = None  # the video is shorter than one window

    def time(self, frame: int) -> float:
        """Seconds at which frame ``frame`` is shown (``num_frames``: the end of the video)."""
        return self.times[frame] if self.times else frame / self.fps

    @property
    def duration(self) -> float:
        return self.time(self.num_frames)

    def top(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.probs.topk(min(k, self.probs.shape[1]), dim=1)

    def segments(self) -> list[tuple[float, float, str, float]]:
        """Runs of windows with the same top-1 class: ``(start_s, end_s, label, mean top-1 prob)``."""
        p, idx = self.probs.max(dim=1)
        out: list[tuple[float, float, str, float]] = []
        i = 0
        while i < len(idx):
            j = i
            while j + 1 < len(idx) and idx[j + 1] == idx[i]:
                j += 1
            out.append((self.time(self.starts[i]), self.time(self.ends[j]), self.class_names[int(idx[i])],
                        float(p[i:j + 1].mean())))
            i = j + 1
        return out

    def to_dict(self, top_k: int = 5) -> dict[str, Any]:
        p, idx = self.top(top_k)
        return {"path": self.path, "fps": self.fps, "num_frames": self.num_frames, "window_frames": self.window,
                "stride_frames": self.stride, **({"warning": self.warning} if self.warning else {}),
                "windows": [{"start_frame": s, "end_frame": e, "start_time": self.time(s), "end_time": self.time(e),
                             "top": [{"index": int(j), "label": self.class_names[int(j)], "prob": float(q)}
                                     for j, q in zip(idx[w].tolist(), p[w].tolist())]}
                            for w, (s, e) in enumerate(zip(self.starts, self.ends))]}


class _ShortStream(Exception):
    """The stream ended before the frames its count promised."""

    def __init__(self, frames: int) -> None:
        super().__init__(frames)
        self.frames = frames


def _decode_frames(path: Path, wanted: Sequence[int], progress: bool, size=None,
                   times: list[float] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(index, uint8 frame (3, H, W))`` for the sorted ``wanted`` indices, decoding the
    video once from the start (frames scaled to ``size`` while decoding, see
    :func:`~vidzoo.data.read_video_clips`). ``times`` receives every decoded frame's presentation
    time and, once the last wanted frame is in, where it ends.

    Raises:
        _ShortStream: The stream ended before the last wanted index (its frame count overstated it).
    """
    from tqdm import tqdm

    wanted = list(wanted)
    w, decoded, end = 0, 0, 0.0
    bar = tqdm(total=wanted[-1] + 1, unit="frame", desc=f"decode {path.name}", disable=tqdm_disable(progress),
               leave=False)
    try:
        for i, t, dur, rgb in iter_video_frames(path, wanted, size):
            decoded += 1
            bar.update(1)
            end = t + dur
            if times is not None:
                times.append(t)
            if rgb is not None:
                frame = torch.from_numpy(rgb).permute(2, 0, 1)
                while w < len(wanted) and wanted[w] == i:
                    yield i, frame
                    w += 1
            if w == len(wanted):
                break
    finally:
        bar.close()
    if w < len(wanted):
        raise _ShortStream(decoded)
    if times is not None:
        times.append(end)


WindowFn = Callable[[torch.Tensor, Callable[[int], str]], torch.Tensor]
"""A batch of window clips ``(B, C, T, H, W)`` on the model's device and ``name_of(j)`` (what window
``j`` of the batch is, for errors) -> one row per window (class probabilities, embeddings...)."""


@torch.no_grad()
def predict_timeline(model: nn.Module, path: PathLike, window: str | int | None = None,
                     stride: str | int | None = None, frame_stride: int | None = None, batch_size: int = 8,
                     device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None,
                     progress: bool = True, window_fn: WindowFn | None = None) -> Timeline:
    """Slide the model's clip window over the video at ``path`` (see the module docstring).

    Args:
        model: Classifier with ``pretrained_cfg`` (input size, mean/std, frame_sample_rate).
        path: Video file.
        window: Window length: seconds (``'2s'``) or frames (``'64'``, ``'64f'``); default
            ``(T - 1) * frame_stride + 1`` frames.
        stride: Step between window starts, same units; default half the window (at least 1 frame).
        frame_stride: Frame stride of the default window (default: the model's ``frame_sample_rate``).
        batch_size: Windows per forward pass.
        device: Where the model runs (it is moved there).
        amp_dtype: Autocast dtype (None: full precision).
        progress: tqdm bar over decoded frames.
        window_fn: What each window gives (``Timeline.probs`` holds its rows); default the class
            probabilities (``vidzoo embed --window`` passes the embedding).

    Raises:
        UserError: A frame folder (no frame rate), a bad window/stride.
        VideoDecodeError: The video cannot be decoded.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"--timeline needs a video file with a frame rate; '{p}' is a frame folder")
    info = video_info(p, exact=True)  # windows are laid out over frames the stream has, not its header's
    if not info.fps:
        raise UserError(f"--timeline: '{p}' has no frame rate")
    cfg = model.pretrained_cfg
    c, t, h, w = cfg["input_size"]
    fstride = frame_stride or cfg.get("frame_sample_rate") or 1
    if fstride < 1:
        raise UserError(f"--frame-stride must be >= 1, got {fstride}")
    win = parse_span(window, info.fps, "--window") or (t - 1) * fstride + 1
    if win < t:
        raise UserError(f"--window of {win} frames is shorter than the model's {t}-frame clip")
    step = parse_span(stride, info.fps, "--stride") or max(1, win // 2)
    note = _short_video_note(p, info.num_frames, win, t, fstride, window is None)
    dev = torch.device(device)
    model = model.to(dev).eval()
    if window_fn is None:
        from .evaluation import predict_probs
        window_fn = lambda x, name_of: predict_probs(model, x, amp_dtype, name_of=name_of)  # noqa: E731
    args = (model, p, float(info.fps), win, step, batch_size, dev, window_fn, progress)
    try:
        tl = _slide(*args, info.num_frames)
    except _ShortStream as short:  # fewer frames decoded than counted: lay the windows out over those
        try:
            tl = _slide(*args, short.frames)
        except _ShortStream as again:
            raise VideoDecodeError(p, f"the stream ended after {again.frames} frames, {short.frames} "
                                      "counted a moment before") from None
        note = _short_video_note(p, short.frames, win, t, fstride, window is None)
    tl.warning = note
    return tl


def _short_video_note(p: Path, frames: int, win: int, t: int, fstride: int, default_window: bool) -> str | None:
    """What a video shorter than one window gets instead of the model's clip (one window over all of it)."""
    if frames >= win:
        return None
    what = f"the model's clip: {t} frames {fstride} apart" if default_window else "--window"
    if frames < t:
        return (f"'{p}' has {frames} frames, fewer than the {t} of the model's clip: one window over the whole video "
                "that repeats frames")
    gap = (frames - 1) / (t - 1) if t > 1 else 0.0
    return (f"'{p}' has {frames} frames, fewer than a window of {win} ({what}): one window over the whole video, its "
            f"{t} frames {gap:.3g} apart" + (f" instead of {fstride}" if default_window else ""))


def _slide(model: nn.Module, p: Path, fps: float, win: int, step: int, batch_size: int, dev: torch.device,
           window_fn: WindowFn, progress: bool, num_frames: int) -> Timeline:
    """The windows of :func:`predict_timeline` over a video of ``num_frames`` frames."""
    from .inference import class_names_of
    cfg = model.pretrained_cfg
    c, t, h, w = cfg["input_size"]
    layout = window_layout(num_frames, win, step, t)
    transform = eval_transforms((h, w), cfg["mean"], cfg["std"], crop_pct=cfg.get("crop_pct") or 1.0)
    tl = Timeline(str(p), fps, num_frames, min(win, num_frames), step, class_names_of(model))

    wanted = sorted({i for _, _, idx in layout for i in idx})
    cache: dict[int, torch.Tensor] = {}  # transformed frames (C, 1, h, w) still needed by a window
    batch: list[torch.Tensor] = []
    probs: list[torch.Tensor] = []
    nxt = 0  # next window to assemble

    def flush() -> None:
        if batch:
            first = len(tl.starts) - len(batch)  # the batch's windows are the last ones listed
            probs.append(window_fn(torch.stack(batch).to(dev), lambda j: (
                f"'{p}' (frames {tl.starts[first + j]}-{tl.ends[first + j] - 1})")).cpu())
            batch.clear()

    for i, frame in _decode_frames(p, wanted, progress, size=transform.decode_size, times=tl.times):
        if i not in cache:
            cache[i] = transform(frame.unsqueeze(1))  # one frame through the clip transform
        while nxt < len(layout) and layout[nxt][2][-1] <= i:
            s, e, idx = layout[nxt]
            clip = torch.cat([cache[j] for j in idx], dim=1)
            if tuple(clip.shape) != (c, t, h, w):
                raise UserError(f"'{p}' gives clips {tuple(clip.shape)}, the model takes {(c, t, h, w)}")
            batch.append(clip)
            tl.starts.append(s)
            tl.ends.append(e)
            nxt += 1
            if len(batch) == batch_size:
                flush()
            first_needed = layout[nxt][2][0] if nxt < len(layout) else math.inf
            for j in [j for j in cache if j < first_needed]:
                del cache[j]
    flush()
    tl.probs = torch.cat(probs)
    return tl


def _mmss(seconds: float) -> str:
    seconds = max(0.0, seconds)
    m, s = divmod(seconds, 60)
    return f"{int(m) // 60}:{int(m) % 60:02d}:{s:04.1f}" if m >= 60 else f"{int(m):02d}:{s:04.1f}"


def write_timeline_csv(tl: Timeline, path: PathLike, top_k: int = 5) -> Path:
    """One row per window: index, start/end frame (end exclusive), start/end time (s), top-k labels and
    scores (written atomically, never through a symlink)."""
    p, idx = tl.top(top_k)
    k = p.shape[1]
    with io.StringIO(newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["window", "start_frame", "end_frame", "start_time", "end_time"]
                    + [x for r in range(1, k + 1) for x in (f"label_{r}", f"score_{r}")])
        for w, (s, e) in enumerate(zip(tl.starts, tl.ends)):
            wr.writerow([w, s, e, f"{tl.time(s):.3f}", f"{tl.time(e):.3f}"]
                        + [x for j, q in zip(idx[w].tolist(), p[w].tolist()) for x in (tl.class_names[j], f"{q:.6f}")])
        text = f.getvalue()
    return atomic_write_text(text, path)


def plot_timeline(tl: Timeline, path: PathLike, num_classes: int = 5) -> Path:
    """Scores of the ``num_classes`` classes with the highest peak score over time (window centres),
    with a band of each window's top-1 class on top; minute:second axis, wide enough for long videos."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    probs = tl.probs.float()
    k = min(num_classes, probs.shape[1])
    classes = probs.max(dim=0).values.topk(k).indices.tolist()
    centres = [(tl.time(s) + tl.time(e)) / 2 for s, e in zip(tl.starts, tl.ends)]
    colours = plt.get_cmap("tab10")
    fig, (band, ax) = plt.subplots(2, 1, figsize=(14, 4.8), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 6], "hspace": 0.05})
    top1 = probs.argmax(dim=1).tolist()
    # Band: each window's top-1 class from its start to the next window's start.
    nexts = tl.starts[1:] + [tl.ends[-1]]
    band.bar([tl.time(s) for s in tl.starts], 1.0, width=[tl.time(n) - tl.time(s) for s, n in zip(tl.starts, nexts)],
             align="edge", lw=0, color=[colours(classes.index(c) % 10) if c in classes else (0.6, 0.6, 0.6)
                                        for c in top1])
    band.set_ylim(0, 1)
    band.set_yticks([])
    band.set_ylabel("top-1", rotation=0, ha="right", va="center")
    for n, c in enumerate(classes):
        ax.plot(centres, probs[:, c].numpy(), color=colours(n % 10), lw=1.4, label=tl.class_names[c],
                marker="o" if len(centres) < 40 else None, ms=3)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, tl.duration)
    ax.set_ylabel("probability")
    ax.set_xlabel("time (min:s)")
    tick = next((t for t in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if tl.duration / t <= 15),
                7200)  # whole seconds / minutes on the axis
    ax.xaxis.set_major_locator(MultipleLocator(tick))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v // 60)}:{int(v % 60):02d}"))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False)
    band.set_title(f"{Path(tl.path).name}: {len(tl.starts)} windows of {tl.window} frames "
                   f"({tl.window / tl.fps:.2f} s), stride {tl.stride} frames ({tl.stride / tl.fps:.2f} s)", fontsize=10)
    try:  # written atomically (never through a symlink); the format is named: the temporary name has no .png
        return atomic_replace(lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"), path)
    finally:
        plt.close(fig)


def summary_lines(tl: Timeline, max_segments: int = 12) -> list[str]:
    """Short console summary: windows, and the runs of one top-1 class."""
    segs = tl.segments()
    lines = [f"{tl.path}: {_mmss(tl.duration)} ({tl.num_frames} frames at {tl.fps:g} fps), {len(tl.starts)} windows "
             f"of {tl.window} frames ({tl.window / tl.fps:.2f} s), stride {tl.stride} frames "
             f"({tl.stride / tl.fps:.2f} s); top-1 over time:"]
    width = max(len(label) for _, _, label, _ in segs[:max_segments])
    for s, e, label, p in segs[:max_segments]:
        lines.append(f"  {_mmss(s)} - {_mmss(e)}  {label:<{width}}  (mean p {p:.2f})")
    if len(segs) > max_segments:
        lines.append(f"  ... {len(segs) - max_segments} more segments in the CSV")
    return lines


def output_names(videos: Sequence[PathLike]) -> list[str]:
    """A distinct file-name stem per video: its name without the extension when that is unique,
    else with as many parent folders as tell it apart (``x/a/v.mp4``, ``y/a/v.mp4`` -> ``x_a_v``,
    ``y_a_v``), then its extension (``v.mp4``, ``v.webm`` -> ``v_mp4``, ``v_webm``), then a number
    (a video given twice)."""
    paths = [Path(os.path.abspath(v)) for v in videos]
    folders = [p.parent.parts[1:] for p in paths]  # without the root
    depth = [0] * len(paths)
    ext = [False] * len(paths)

    def name(i: int) -> str:
        p = paths[i]
        stem = p.stem + (f"_{p.suffix[1:]}" if ext[i] else "")
        return "_".join([*folders[i][len(folders[i]) - depth[i]:], stem])

    while True:
        groups: dict[str, list[int]] = {}
        for i in range(len(paths)):
            groups.setdefault(name(i), []).append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            return [name(i) for i in range(len(paths))]
        for g in clashes:
            if len({paths[i].suffix for i in g}) > 1 and not ext[g[0]]:
                for i in g:
                    ext[i] = True
            elif len({paths[i].parent for i in g}) > 1 and any(depth[i] < len(folders[i]) for i in g):
                for i in g:
                    depth[i] = min(depth[i] + 1, len(folders[i]))
            else:  # the same file more than once (or names that only underscores tell apart): number them
                for k, i in enumerate(g[1:], 2):
                    paths[i] = paths[i].with_name(f"{paths[i].stem}-{k}{paths[i].suffix}")


def check_timeline_output(videos: Sequence[PathLike], output: PathLike) -> Path:
    """The timeline folder, created and writable, and neither the folder of a video it reads nor a
    folder directly in it: in a dataset, a folder of .png pictures beside the videos of a class is
    read as one more video of that class (a frame folder). Deeper folders are not read as videos.

    Raises:
        UserError: ``output`` is, or is directly inside, the folder of one of ``videos``.
        vidzoo.OutputError: A file is in the way, the folder is read-only or the disk is full.
    """
    out = Path(output).resolve()
    for v in videos:
        folder = Path(v).resolve().parent
        if out == folder or out.parent == folder:
            where = "the folder" if out == folder else "a folder directly in the folder"
            raise UserError(f"--output '{output}' is {where} of '{v}': a folder of timeline pictures beside videos "
                            "is read as one more video when that folder is a class of a dataset; write it elsewhere (--output DIR)")
    return ensure_output_dir(output, "timeline folder")


def run_timelines(model: nn.Module, videos: Sequence[PathLike] | VideoInputs, output: PathLike,
                  window: str | None = None,
                  stride: str | None = None, frame_stride: int | None = None, top_k: int = 5,
                  batch_size: int = 8, device: str = "auto", amp: str = "auto", progress: bool = True,
                  compile: bool = False) -> tuple[list[tuple[Timeline, Path, Path]], list[tuple[str, str]]]:
    """Timelines of several videos into ``output``: ``<name>_timeline.csv`` and ``.png`` each, with
    ``<name>`` distinct per video (:func:`output_names`); each file written atomically. Folders of
    videos in ``videos`` stand for the videos below them
    (:func:`~vidzoo.engine.video_inputs.expand_video_inputs`). ``compile``: ``torch.compile`` the
    model's forward; its notes and ``--amp auto``'s choice of autocast are said on stderr.

    Returns:
        ``([(timeline, csv, png), ...], [(path, error), ...])``: every readable video is answered;
        unreadable ones are listed with their error.
    """
    from .compile import maybe_compile
    from .distributed import init_distributed
    from .errors import note
    from .precision import choose_amp
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    dev = init_distributed(device).device
    inputs = videos if isinstance(videos, VideoInputs) else expand_video_inputs(videos)
    out = check_timeline_output(inputs.paths, output)
    model = model.to(dev)
    amp_dtype = choose_amp(amp, dev, say=note, model=model, batch=batch_size).dtype
    run_model = maybe_compile(model, compile, device=dev)
    done, failed = [], []
    for item, name in zip(inputs.items, output_names(inputs.paths)):
        v = item.path
        try:
            if item.error:
                raise UserError(f"'{v}': {item.error}")
            if not Path(v).exists():
                raise UserError(f"'{v}' does not exist")
            tl = predict_timeline(run_model, v, window, stride, frame_stride, batch_size, dev, amp_dtype, progress)
        except NonFiniteLogitsError:
            raise  # the model, not this video: every other video would fail the same way
        except (UserError, UnreadableVideoError) as e:
            failed.append((str(v), str(e).splitlines()[0]))
            continue
        csv_path = write_timeline_csv(tl, out / f"{name}_timeline.csv", top_k)
        png_path = plot_timeline(tl, out / f"{name}_timeline.png")
        done.append((tl, csv_path, png_path))
    return done, failed
