"""Re-encode a video dataset for fast training: the work behind ``vidzoo prepare``.

Training reads a clip of a few dozen frames from each video, and decoding is what it waits for: a
1280x720 H.264 video with 10-second GOPs costs several times more per clip than the same video at
a 256-pixel short side with 16-frame GOPs (``benchmarks/loader.py`` measures both). Preparing
re-encodes every video once with PyAV's libx264:

* the short side scaled down to ``short_side`` (never enlarged), aspect ratio kept, both sides
  rounded to even numbers (H.264 with 4:2:0 chroma needs them), so within one pixel;
* a keyframe every ``gop`` frames (no scene-cut keyframes in between), so a clip anywhere in the
  video is reached by decoding at most ``gop - 1`` frames before it;
* every frame with its timestamp (frame count and duration kept, variable frame rates too), or
  resampled to a constant ``fps`` (the frame shown at each instant, duration kept);
* shown as players show it: rotation metadata is applied to the pixels; audio is dropped.

Layouts: a folder is walked recursively (class folders, ``train/val/test`` sub-folders, any depth)
and every video keeps its relative path and name, with the suffix ``.mp4`` (H.264 in MP4 whatever
the source container; two sources that would share an output name are refused). A list file
(``.csv``/``.tsv``/``.txt`` of ``path,label`` lines, as ``--data`` takes) gets its videos written
under ``output`` by their path relative to the folder holding the list and all its videos, and a
rewritten list beside them (same name, same lines, paths pointing at the prepared videos).

Safety: each output is written to a hidden temporary file in its folder, verified (it opens, its
frame count and size are as planned), and only then renamed into place, so ``output`` never holds
a half-written file under a final name, whatever stops the run (Ctrl-C, ``kill -9``, a full disk).
A rerun skips outputs that are already there and not older than their source, so it resumes where
a stopped run left off; temporary files of dead runs are removed. Unreadable inputs are named
(and listed, commented out, in a rewritten list), never copied. ``output`` is never inside the
source folder (nor may any output land inside it or on a source), and a folder that holds files
but no ``prepare.json`` from an earlier ``prepare`` (with the same settings) is refused.

``output/prepare.csv`` reports each video: source, output, status (``prepared``, ``skipped`` when
already done, ``unreadable``, ``failed``, ``not prepared`` for frame folders), the reason, source
and output bytes, frames, size, duration and the seconds it took.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import UserError

__all__ = ["DEFAULT_SHORT_SIDE", "DEFAULT_GOP", "DEFAULT_CRF", "PrepareSettings", "PrepareResult", "PrepareReport",
           "prepare_videos", "output_size"]

PathLike = str | os.PathLike

DEFAULT_SHORT_SIDE = 256
DEFAULT_GOP = 16
DEFAULT_CRF = 23
REPORT_NAME = "prepare.csv"
MARKER_NAME = "prepare.json"
LIST_SUFFIXES = (".csv", ".tsv", ".txt")
_TMP = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)\.mp4$")
_REPORT_FIELDS = ("source", "output", "status", "reason", "source_bytes", "output_bytes", "frames", "width",
                  "height", "duration_s", "seconds")


@dataclass(frozen=True)
class PrepareSettings:
    """How videos are re-encoded (see the module docstring).

    Attributes:
        short_side: Short side of the output in pixels (videos already smaller keep their size).
        gop: Frames between keyframes.
        fps: Constant output frame rate; None keeps every frame and its timestamp.
        crf: libx264 constant rate factor (0 lossless .. 51; 18 is visually lossless, 23 its default).
    """

    short_side: int = DEFAULT_SHORT_SIDE
    gop: int = DEFAULT_GOP
    fps: float | None = None
    crf: int = DEFAULT_CRF

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first option out of range."""
        if self.short_side < 2:
            raise UserError(f"--short-side must be >= 2 pixels, got {self.short_side}")
        if self.gop < 1:
            raise UserError(f"--gop must be >= 1 frame, got {self.gop}")
        if self.fps is not None and not (0 < self.fps <= 1000 and math.isfinite(self.fps)):
            raise UserError(f"--fps must be in (0, 1000], got {self.fps}")
        if not 0 <= self.crf <= 51:
            raise UserError(f"--crf must be in 0..51 (libx264), got {self.crf}")


@dataclass
class PrepareResult:
    """What happened to one source video (a row of ``prepare.csv``)."""

    source: str
    output: str
    status: str = ""
    reason: str = ""
    source_bytes: int | None = None
    output_bytes: int | None = None
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        """The output is in place (prepared now or earlier)."""
        return self.status in ("prepared", "skipped")


@dataclass
class PrepareReport:
    """The outcome of :func:`prepare_videos`."""

    output: Path
    results: list[PrepareResult] = field(default_factory=list)
    lists: list[Path] = field(default_factory=list)  # rewritten list files
    report: Path | None = None

    @property
    def failed(self) -> list[PrepareResult]:
        """Sources without an output (unreadable, failed verification, frame folders)."""
        return [r for r in self.results if not r.ok]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def output_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(H, W)`` of a prepared ``height x width`` video: the short side scaled down to
    ``short_side`` (never up), the aspect ratio kept, both sides rounded to even numbers."""
    scale = min(1.0, short_side / min(height, width))
    return tuple(max(2, 2 * math.floor(side * scale / 2 + 0.5)) for side in (height, width))  # halves round up


# --------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class _Job:
    source: Path
    output: Path


@dataclass
class _ListRewrite:
    source: Path  # the list file
    output: Path  # the rewritten list
    lines: list[str]  # the original lines, newline-stripped
    paths: dict[int, tuple[str, str, Path]]  # line number -> (separator, label, source video)


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """Video files and frame folders (images, no videos) under ``root`` (hidden entries skipped),
    in a stable order."""
    from ..data.datasets import VIDEO_EXTENSIONS
    from ..data.decode import is_frame_folder
    videos, folders = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        found = [here / f for f in sorted(filenames)
                 if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_EXTENSIONS]
        if not found and here != root and is_frame_folder(here):
            folders.append(here)
            dirnames[:] = []
        videos += found
    return videos, folders


def _parse_list(list_file: Path) -> _ListRewrite:
    from ..data.datasets import VideoListDataset
    try:
        rows = VideoListDataset._parse(list_file)  # the reading --data uses: separators, header, comments
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"--data: {str(e).splitlines()[0]}") from e
    if not rows:
        raise UserError(f"--data '{list_file}' lists no videos (expected lines 'path,label')")
    lines = list_file.read_text(encoding="utf-8").splitlines()
    paths = {}
    for rel, label, ln in rows:
        line = lines[ln - 1].strip()
        sep = "\t" if "\t" in line else ("," if "," in line else " ")
        p = Path(rel).expanduser()
        paths[ln] = (sep, label, Path(os.path.abspath(p if p.is_absolute() else list_file.parent / p)))
    return _ListRewrite(list_file, list_file, lines, paths)


def _plan(data: Path, output: Path) -> tuple[list[_Job], list[Path], list[_ListRewrite], Path]:
    """Jobs, frame folders (not prepared), list rewrites, and the source tree (for the refusals)."""
    if not data.exists():
        raise UserError(f"--data '{data}' does not exist")
    if data.is_dir():
        root = data.absolute()
        videos, folders = _walk(root)
        if not videos and not folders:
            raise UserError(f"--data '{data}' holds no video files (looked for {_exts()} at any depth)")
        rewrites: list[_ListRewrite] = []
    elif data.suffix.lower() in LIST_SUFFIXES:
        rewrite = _parse_list(data.absolute())
        sources = [src for _, _, src in rewrite.paths.values()]
        root = Path(os.path.commonpath([str(rewrite.source.parent)] + [str(s.parent) for s in sources]))
        rewrite.output = output / rewrite.source.relative_to(root)
        videos = list(dict.fromkeys(s for s in sources if not s.is_dir()))
        folders = list(dict.fromkeys(s for s in sources if s.is_dir()))
        rewrites = [rewrite]
    else:
        raise UserError(f"--data '{data}' is neither a folder nor a list file ({'/'.join(LIST_SUFFIXES)})")
    jobs = [_Job(v, output / v.relative_to(root).with_suffix(".mp4")) for v in videos]
    return jobs, folders, rewrites, root


def _exts() -> str:
    from ..data.datasets import VIDEO_EXTENSIONS
    return "/".join(VIDEO_EXTENSIONS)


def _check_paths(data: Path, output: Path, root: Path, jobs: list[_Job], is_list: bool) -> None:
    """Refuse any layout in which an output could land on or inside the sources."""
    out = output.resolve()
    src = data.resolve()
    if out == src or (not is_list and _is_inside(out, src)):
        raise UserError(f"--output '{output}' is {'--data itself' if out == src else 'inside --data'} "
                        f"'{data}': prepared videos never go into the source folder; choose another folder")
    if is_list and out == root.resolve():
        raise UserError(f"--output '{output}' is the folder of the listed videos: prepared .mp4 files would "
                        "replace sources; choose another folder")
    tree = root.resolve()
    sources = {j.source.resolve() for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        dst = j.output.resolve() if j.output.exists() else j.output.absolute()
        if dst in sources or (not is_list and _is_inside(dst, tree)):
            raise UserError(f"--output '{output}': the prepared copy of '{j.source}' would be written at "
                            f"'{j.output}', inside the sources; choose another folder")
        if is_list and _is_inside(j.source.resolve(), out):
            raise UserError(f"--output '{output}' holds the listed video '{j.source}'; choose another folder")
        if dst in seen:
            raise UserError(f"'{seen[dst]}' and '{j.source}' would both be prepared as '{j.output}' "
                            "(outputs are .mp4); rename one of them")
        seen[dst] = j.source


def _claim_output(output: Path, settings: PrepareSettings) -> None:
    """Create ``output`` with its ``prepare.json``, or accept one an earlier run with the same settings made."""
    from .._hub import atomic_write_text, ensure_output_dir
    marker = output / MARKER_NAME
    wanted = {"settings": asdict(settings), "written_by": "vidzoo prepare"}
    if output.exists() and not output.is_dir():
        raise UserError(f"--output '{output}' is a file; give a folder")
    if marker.is_file():
        try:
            before = json.loads(marker.read_text())["settings"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"--output '{output}': its {MARKER_NAME} is not one vidzoo prepare wrote") from None
        if before != wanted["settings"]:
            diff = ", ".join(f"{k} {before.get(k)} -> {v}" for k, v in wanted["settings"].items() if before.get(k) != v)
            raise UserError(f"--output '{output}' was prepared with other settings ({diff}); use the same "
                            "settings to resume, or another --output")
        return
    if output.is_dir() and any(output.iterdir()):
        raise UserError(f"--output '{output}' holds files that vidzoo prepare did not write (no {MARKER_NAME}); "
                        "give a new or empty folder")
    ensure_output_dir(output, "--output folder")  # a read-only folder or a full disk: one line, before any work
    atomic_write_text(json.dumps(wanted, indent=2) + "\n", marker)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(output: Path) -> int:
    """Delete temporary files left by runs that died (their pid is gone); returns how many."""
    removed = 0
    for dirpath, _, filenames in os.walk(output):
        for f in filenames:
            m = _TMP.match(f)
            if m and not _pid_alive(int(m.group("pid"))):
                (Path(dirpath) / f).unlink(missing_ok=True)
                removed += 1
    return removed


def _temporary(final: Path) -> Path:
    return final.parent / f".{final.name}.partial-{os.getpid()}.mp4"


# -------------------------------------------------------------------------------------- encoding
class _VerifyError(Exception):
    """The written file is not what was planned."""


def _source_size(path: Path) -> tuple[int, int]:
    from ..data.decode import video_info
    info = video_info(path)
    return info.height, info.width


def _encode(source: Path, tmp: Path, settings: PrepareSettings, threads: int) -> dict[str, Any]:
    """Re-encode ``source`` into ``tmp``; returns the frames written, their size and duration.

    Raises:
        VideoDecodeError: The source cannot be read (its errors only; writing errors propagate).
    """
    import av
    from av.video.frame import PictureType

    from ..data.decode import DECODE_INTERPOLATION, VideoDecodeError, _open, _quarter_turns, _shown_size, _stream_fps
    inp = _open(source)
    try:
        ist = inp.streams.video[0]
        ist.thread_type = "AUTO"
        tb_in = ist.time_base or Fraction(1, 90000)
        rate = _stream_fps(ist) or Fraction(25)
        step_s = float(1 / rate)  # a frame's nominal duration, where the source gives none
        frames = inp.decode(ist)
        count = 0

        def next_frame():
            nonlocal count
            try:
                frame = next(frames, None)
            except av.FFmpegError as e:
                raise VideoDecodeError(source, f"decoding failed after {count} frames ({e})") from e
            count += frame is not None
            return frame

        first = next_frame()
        if first is None:
            raise VideoDecodeError(source, "video stream has no decodable frames")
        turns = _quarter_turns(first)
        out_h, out_w = output_size(*_shown_size(first, turns), settings.short_side)
        coded = (out_w, out_h) if turns % 2 else (out_h, out_w)  # before the picture is turned

        def to_yuv(frame) -> av.VideoFrame:
            if not turns:  # scaled and converted by swscale in one step, no RGB in between
                return frame.reformat(width=out_w, height=out_h, format="yuv420p", interpolation=DECODE_INTERPOLATION)
            import numpy as np
            rgb = frame.to_ndarray(width=coded[1], height=coded[0], format="rgb24", interpolation=DECODE_INTERPOLATION)
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(rgb, turns)), format="rgb24"
                                              ).reformat(format="yuv420p")

        def seconds(frame) -> tuple[float | None, float]:
            """Start (None without a timestamp) and duration of a source frame."""
            start = float((frame.pts - first.pts) * tb_in) if frame.pts is not None and first.pts is not None else None
            return start, float(frame.duration * tb_in) if frame.duration else step_s

        with av.open(str(tmp), "w", format="mp4") as out:
            out_rate = Fraction(settings.fps).limit_denominator(1001) if settings.fps else rate
            ost = out.add_stream("libx264", rate=out_rate)
            ost.codec_context.time_base = 1 / out_rate if settings.fps else tb_in
            ost.width, ost.height, ost.pix_fmt = out_w, out_h, "yuv420p"
            sar = ist.codec_context.sample_aspect_ratio
            if sar and not turns:  # non-square pixels stay as they were (both sides scaled alike)
                ost.codec_context.sample_aspect_ratio = sar
            ost.options = {"crf": str(settings.crf), "threads": str(threads),
                           "x264-params": f"keyint={settings.gop}:min-keyint={settings.gop}:scenecut=0"}
            tb_out = ost.codec_context.time_base
            written, end_s = 0, 0.0

            def put(frame: av.VideoFrame, pts: int) -> None:
                nonlocal written
                frame.pts, frame.time_base = pts, tb_out
                frame.pict_type = PictureType.NONE  # libx264 keeps a source frame's type: keyframes by --gop only
                for packet in ost.encode(frame):
                    out.mux(packet)
                written += 1

            frame, last_pts, shown = first, None, None  # shown: (start s, yuv) of the frame on screen (--fps)
            while frame is not None:
                start, duration = seconds(frame)
                if settings.fps:
                    start = start if start is not None else (count - 1) * step_s
                    while shown is not None and written / float(out_rate) < start - 1e-9:
                        put(shown[1], written)  # every output instant before this frame shows the previous one
                    shown = (start, to_yuv(frame))
                    end_s = max(end_s, start + duration)
                else:
                    pts = frame.pts - first.pts if start is not None else None
                    if pts is None or (last_pts is not None and pts <= last_pts):  # no usable timestamp
                        pts = (last_pts if last_pts is not None else -1) + max(1, round(step_s / tb_in))
                    last_pts = pts
                    end_s = float(pts * tb_in) + duration
                    put(to_yuv(frame), pts)
                frame = next_frame()
            if settings.fps:
                while written < max(1, round(end_s * float(out_rate))):  # the duration is kept
                    put(shown[1], written)
            for packet in ost.encode():
                out.mux(packet)
    finally:
        inp.close()
    return {"frames": written, "height": out_h, "width": out_w, "duration_s": round(end_s, 6)}


def _verify(tmp: Path, frames: int, height: int, width: int) -> None:
    """The written file opens, and holds ``frames`` decodable frames of ``height x width``."""
    import av

    from ..data.decode import _scan_stream
    try:
        with av.open(str(tmp)) as c:
            st = c.streams.video[0]
            got = (st.codec_context.height, st.codec_context.width)
            header = int(st.frames or 0)
        decoded = _scan_stream(tmp, decode=True)[0]
    except Exception as e:  # noqa: BLE001 - any failure to read it back is a failed check
        raise _VerifyError(f"the written file does not read back ({e})") from e
    if got != (height, width):
        raise _VerifyError(f"written {got[1]}x{got[0]}, planned {width}x{height}")
    if decoded != frames or (header and header != frames):
        raise _VerifyError(f"{decoded} frames decode from the written file (header: {header}), {frames} were encoded")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prepare_one(job: _Job, settings: PrepareSettings, threads: int) -> PrepareResult:
    """Prepare one video: skip it when done, else encode to a temporary file, verify, rename."""
    import av

    from ..data.decode import UnreadableVideoError
    from ..data.unreadable import reason_of
    t0 = time.perf_counter()
    res = PrepareResult(str(job.source), str(job.output))
    try:
        res.source_bytes = job.source.stat().st_size
    except OSError as e:
        res.status, res.reason = "unreadable", e.strerror or str(e)
        return res
    if job.output.is_file() and not job.output.is_symlink() \
            and job.output.stat().st_mtime >= job.source.stat().st_mtime:
        try:  # already prepared: an output only ever appears complete (renamed after its check)
            from ..data.decode import video_info
            done = video_info(job.output)
            planned = output_size(*_source_size(job.source), settings.short_side)
            if (done.height, done.width) == planned:
                res.status, res.output_bytes, res.frames = "skipped", job.output.stat().st_size, done.num_frames
                res.height, res.width, res.duration_s = done.height, done.width, done.duration
                res.seconds = round(time.perf_counter() - t0, 3)
                return res
        except (UnreadableVideoError, OSError):
            pass  # unreadable output or source: encode again (and meet the source's error there)
    tmp = _temporary(job.output)
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        facts = _encode(job.source, tmp, settings, threads)
        _verify(tmp, facts["frames"], facts["height"], facts["width"])
        _fsync(tmp)
        os.replace(tmp, job.output)
    except UnreadableVideoError as e:  # before OSError: a source gone missing is unreadable, not a write error
        res.status, res.reason = "unreadable", reason_of(e)
    except _VerifyError as e:
        res.status, res.reason = "failed", f"verification: {e}"
    except (OSError, ValueError, av.FFmpegError) as e:  # writing: a full disk, an encoder refusing the input
        res.status, res.reason = "failed", f"writing: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    else:
        res.status, res.output_bytes = "prepared", job.output.stat().st_size
        res.frames, res.height, res.width, res.duration_s = (facts["frames"], facts["height"], facts["width"],
                                                            facts["duration_s"])
    finally:
        tmp.unlink(missing_ok=True)
    if not res.ok:
        res.output = ""  # nothing was written for it
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


def _worker_init() -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool


def _run_one(args: tuple[_Job, PrepareSettings, int]) -> PrepareResult:
    return _prepare_one(*args)


# ------------------------------------------------------------------------------------- the run
def _rewrite_list(rw: _ListRewrite, results: dict[Path, PrepareResult]) -> Path:
    from .._hub import atomic_write_text
    out_lines = []
    for ln, line in enumerate(rw.lines, start=1):
        if ln not in rw.paths:
            out_lines.append(line)
            continue
        sep, label, src = rw.paths[ln]
        r = results.get(src)
        if r is None or not r.ok:
            why = r.reason if r is not None else "not prepared"
            out_lines.append(f"# not prepared ({r.status if r else 'missing'}: {why}): {line}")
            continue
        rel = Path(os.path.relpath(r.output, rw.output.parent)).as_posix()
        out_lines.append(f"{rel}{sep}{label}")
    return atomic_write_text("\n".join(out_lines) + "\n", rw.output)


def _write_report(results: Sequence[PrepareResult], path: Path) -> Path:
    from .._hub import atomic_write_text
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=_REPORT_FIELDS)
    wr.writeheader()
    for r in results:
        wr.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return atomic_write_text(buf.getvalue(), path)


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def prepare_videos(data: PathLike, output: PathLike, short_side: int = DEFAULT_SHORT_SIDE, gop: int = DEFAULT_GOP,
                   fps: float | None = None, crf: int = DEFAULT_CRF, workers: int | None = None,
                   progress: bool | None = None, on_result: Callable[[PrepareResult], None] | None = None
                   ) -> PrepareReport:
    """Re-encode the videos of ``data`` into ``output`` (see the module docstring).

    Args:
        data: Folder of videos (any layout) or list file of ``path,label`` lines.
        output: Folder for the prepared copy (new, empty, or an earlier ``prepare`` output with the
            same settings, which is then completed).
        short_side: See :class:`PrepareSettings`.
        gop: See :class:`PrepareSettings`.
        fps: See :class:`PrepareSettings`.
        crf: See :class:`PrepareSettings`.
        workers: Videos encoded at once, each in its own process (default: one per CPU core).
        progress: tqdm bar with ETA (default: only when stderr is a terminal).
        on_result: Called with each video's :class:`PrepareResult` as it completes.

    Returns:
        A :class:`PrepareReport`; ``report.failed`` lists the sources without an output.

    Raises:
        UserError: Missing or empty ``data``, an ``output`` on or inside the sources, an ``output``
            holding other files or another run's settings, an option out of range.
    """
    import sys

    from tqdm import tqdm
    settings = PrepareSettings(short_side, gop, fps, crf)
    settings.validate()
    workers = _default_workers() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    data, out = Path(data), Path(output)
    jobs, folders, rewrites, root = _plan(data, out)
    _check_paths(data, out, root, jobs, is_list=bool(rewrites))
    _claim_output(out, settings)
    _remove_stale_temporaries(out)
    report = PrepareReport(out)
    for f in folders:
        report.results.append(PrepareResult(str(f), "", "not prepared",
                                            "a folder of frame images; vidzoo prepare re-encodes video files"))
    progress = sys.stderr.isatty() if progress is None else progress
    threads = max(1, _default_workers() // workers)
    done: dict[Path, PrepareResult] = {}
    bar = tqdm(total=len(jobs), unit="video", desc="prepare", disable=not progress, dynamic_ncols=True)

    def record(r: PrepareResult) -> None:
        done[Path(r.source)] = r
        bar.update(1)
        if on_result is not None:
            on_result(r)

    try:
        if workers == 1 or len(jobs) <= 1:
            for j in jobs:
                record(_prepare_one(j, settings, threads))
        else:
            import multiprocessing as mp
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(workers, initializer=_worker_init) as pool:
                for r in pool.imap_unordered(_run_one, [(j, settings, threads) for j in jobs]):
                    record(r)
    finally:
        bar.close()
        _remove_stale_temporaries(out)  # those of workers stopped mid-file (Ctrl-C terminates the pool)
        # Whatever stopped the run, the report says what is in place (a rerun completes the rest).
        report.results += [done[j.source] for j in jobs if j.source in done]
        if done or folders:
            report.report = _write_report(report.results, out / REPORT_NAME)
    report.lists = [_rewrite_list(rw, done) for rw in rewrites]
    return report
