#!/usr/bin/env python
"""What counting a dataset's frames costs when it is opened (the check for videos shorter than a clip).

``train``, ``eval`` and ``predict`` count every video's frames to find those shorter than a clip's span,
with :func:`vidzoo.data.frame_count` (container headers, no decoding, remembered per file). This script
writes a folder of small videos (or reads ``--data``) and times, per video, interleaved run by run:

* ``frame_count``: the first count in a process (the caches emptied before each run);
* ``frame_count, cached``: the same files again in the same process;
* ``video_info``: the header plus the first frame decoded (size and rotation);
* ``video_info(exact=True)``: every packet read to check the header's count;
* ``decode all``: every frame decoded (what counting without headers would cost).

Examples::

    python benchmarks/frame_count.py --out benchmarks/results/frame_count
    python benchmarks/frame_count.py --data /path/to/my_videos --runs 3
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402


def _videos(args: argparse.Namespace, work: Path) -> list[Path]:
    from vidzoo.data import VIDEO_EXTENSIONS, make_motion_dataset
    root = Path(args.data) if args.data else work / "videos"
    if not args.data and not root.exists():
        make_motion_dataset(root, num_classes=3, videos_per_class=args.videos // 3, num_frames=args.frames,
                            size=(args.size, args.size))
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)


def _methods(paths: list[Path]) -> dict[str, Callable[[], Any]]:
    from vidzoo.data import decode as dec

    def cold() -> None:
        dec._HEADER_COUNTS.clear()
        dec._COUNTS.clear()
        for p in paths:
            dec.frame_count(p)

    def cached() -> None:
        for p in paths:
            dec.frame_count(p)

    return {
        "frame_count": cold,
        "frame_count, cached": cached,
        "video_info": lambda: [dec.video_info(p) for p in paths],
        "video_info(exact=True)": lambda: [dec.video_info(p, exact=True) for p in paths],
        "decode all": lambda: [dec._scan_stream(p, decode=True) for p in paths],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a folder of videos to count (default: write --videos small videos)")
    p.add_argument("--videos", type=int, default=300, help="videos to write (three classes)")
    p.add_argument("--frames", type=int, default=48, help="frames per written video")
    p.add_argument("--size", type=int, default=64, help="side of the written videos in pixels")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each method, interleaved")
    p.add_argument("--work", help="folder for the written videos (default: a temporary one)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    args = C.finish_help(p).parse_args(argv)
    info = C.machine_state()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        paths = _videos(args, work)
        if not paths:
            raise SystemExit(f"no videos under {args.data}")
        methods = _methods(paths)
        _methods(paths)["frame_count"]()  # the files in the page cache, as after writing or a first run
        times: dict[str, list[float]] = {k: [] for k in methods}
        for _ in range(args.runs):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    rows = [{"method": name, "videos": len(paths), "ms_per_video_best": 1e3 * min(ts) / len(paths),
             "ms_per_video_median": 1e3 * C.median(ts) / len(paths), "s_total_median": C.median(ts)}
            for name, ts in times.items()]
    what = args.data or f"{len(paths)} written videos ({args.frames} frames, {args.size}x{args.size}, H.264 mp4)"
    md = [f"# Frame counting at open time: {what}", "", C.markdown_table(rows, [
        ("method", "method", "s"), ("videos", "videos", "d"), ("ms_per_video_best", "ms / video (best)", ".3f"),
        ("ms_per_video_median", "ms / video (median)", ".3f"), ("s_total_median", "s for all (median)", ".3f")]),
        "", C.machine_markdown(info)]
    result = {"command": " ".join(sys.argv), "data": what, "rows": rows, "runs": times, "machine": info}
    print("\n".join(md))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.md").write_text("\n".join(md) + "\n")
        Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
