"""``vidzoo prepare``: layouts kept, each output verified before it is renamed into place, unreadable
inputs named with exit 1, reruns skip finished files, interrupted runs leave nothing half-written
under a final name, and outputs never go into the sources."""
from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidzoo.cli import main
from vidzoo.data import VideoFolder, VideoListDataset, read_video, video_info, write_video
from vidzoo.engine import prepare as prep
from vidzoo.engine.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def ramp(n: int, h: int, w: int, step: int = 20) -> np.ndarray:
    levels = (np.arange(n) * step).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, h, w, 3)).copy()


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def src(tmp_path) -> Path:
    """train/{a,b} and val/a, an mp4, an avi and an mkv, 64x96 (short side 64), 12 frames at 8 fps."""
    root = tmp_path / "src"
    write_video(root / "train" / "a" / "v1.mp4", ramp(12, 64, 96), fps=8)
    write_video(root / "train" / "a" / "v2.avi", ramp(12, 64, 96, 10), fps=8, codec="mpeg4")
    write_video(root / "train" / "b" / "v3.mkv", ramp(12, 96, 64, 15), fps=8, codec="mpeg4")  # portrait
    write_video(root / "val" / "a" / "v4.mp4", ramp(12, 64, 96, 5), fps=8)
    return root


def test_output_size_keeps_aspect_and_even_sides():
    assert prep.output_size(720, 1280, 256) == (256, 456)  # 455.1 -> even 456
    assert prep.output_size(1280, 720, 256) == (456, 256)
    assert prep.output_size(64, 90, 33) == (34, 46)  # odd sizes rounded to even
    assert prep.output_size(120, 160, 256) == (120, 160)  # never enlarged


def test_layout_kept_and_every_output_verified(src, tmp_path):
    before = tree_digest(src)
    report = prep.prepare_videos(src, tmp_path / "out", short_side=32, workers=1, progress=False)
    out = tmp_path / "out"
    assert tree_digest(src) == before  # nothing written into the sources
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4")) == [
        "train/a/v1.mp4", "train/a/v2.mp4", "train/b/v3.mp4", "val/a/v4.mp4"]
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file left
    assert [r.status for r in report.results] == ["prepared"] * 4
    for r in report.results:
        s, o = video_info(r.source), video_info(r.output)
        assert o.num_frames == s.num_frames == r.frames == 12
        assert o.duration == pytest.approx(s.duration, abs=1e-6) and o.fps == pytest.approx(8)
        assert (o.height, o.width) == ((32, 48) if s.height < s.width else (48, 32))
        step = {"v1": 20, "v2": 10, "v3": 15, "v4": 5}[Path(r.source).stem]
        got = read_video(r.output).float().mean(dim=(0, 2, 3))
        assert got.tolist() == pytest.approx([step * i for i in range(12)], abs=4)  # the same frames, in order
        with av.open(r.output) as c:  # 12 frames, --gop 16: one keyframe; no audio stream
            assert [p.is_keyframe for p in c.demux(video=0) if p.size].count(True) == 1
            assert [st.type for st in c.streams] == ["video"]
    rows = list(csv.DictReader(open(out / "prepare.csv")))
    assert [r["status"] for r in rows] == ["prepared"] * 4
    assert all(int(r["source_bytes"]) > 0 and int(r["output_bytes"]) > 0 and r["frames"] == "12" for r in rows)
    # VideoFolder reads the prepared split like the source.
    assert VideoFolder(out / "train").classes == VideoFolder(src / "train").classes == ["a", "b"]


def test_gop_timestamps_rotation_and_fps(tmp_path):
    root = tmp_path / "src"
    write_video(root / "long.mp4", ramp(40, 32, 48, 6), fps=10)
    # variable frame rate: 5 frames at 10 fps, then 5 from 3.0 s
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 3.0, 3.1, 3.2, 3.3, 3.4]
    with av.open(str(root / "vfr.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.set_display_rotation(-90)  # a phone's portrait clip: shown a quarter turn clockwise
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((32, 48, 3), 20 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = round(t * 1000), Fraction(1, 1000)
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    prep.prepare_videos(root, tmp_path / "out", short_side=32, gop=8, workers=1, progress=False)
    with av.open(str(tmp_path / "out" / "long.mp4")) as c:
        keys = [f.key_frame for f in c.decode(video=0)]
    assert [i for i, k in enumerate(keys) if k] == [0, 8, 16, 24, 32]
    out = tmp_path / "out" / "vfr.mp4"
    info = video_info(out)
    assert (info.height, info.width, info.rotation) == (48, 32, 0)  # turned in the pixels, no metadata left
    with av.open(str(out)) as c:
        assert [round(f.time, 3) for f in c.decode(video=0)] == times
    # --fps resamples to a constant rate, keeping the duration: the frame shown at each instant.
    prep.prepare_videos(root, tmp_path / "out4", short_side=32, fps=5, workers=1, progress=False)
    clip = read_video(tmp_path / "out4" / "long.mp4")
    assert clip.shape[1] == 20 and video_info(tmp_path / "out4" / "long.mp4").fps == pytest.approx(5)
    assert clip.float().mean(dim=(0, 2, 3)).tolist() == pytest.approx([6 * 2 * k for k in range(20)], abs=4)


def test_unreadable_inputs_are_named_and_exit_1(src, tmp_path, capsys):
    (src / "train" / "a" / "broken.mp4").write_text("not a video")
    (src / "train" / "b" / "frames").mkdir()  # a frame folder: a sample, but not a video file
    from PIL import Image
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "train" / "b" / "frames" / "0001.png")
    rc = main(["prepare", "--data", str(src), "--output", str(tmp_path / "out"), "--short-side", "32",
               "--workers", "2"])
    captured = capsys.readouterr()
    assert rc == 1
    err = captured.err.splitlines()
    assert any("cannot read video" in line and "broken.mp4" in line for line in err)
    assert any("not prepared" in line and "frames" in line for line in err)
    assert "4 prepared" in captured.out and "2 without a prepared copy" in captured.out
    assert len(list((tmp_path / "out").rglob("*.mp4"))) == 4  # everything else done
    assert not (tmp_path / "out" / "train" / "a" / "broken.mp4").exists()
    rows = {Path(r["source"]).name: r for r in csv.DictReader(open(tmp_path / "out" / "prepare.csv"))}
    assert rows["broken.mp4"]["status"] == "unreadable" and rows["broken.mp4"]["output"] == ""
    assert rows["frames"]["status"] == "not prepared"


def test_failed_verification_is_not_renamed_and_a_rerun_completes(src, tmp_path, monkeypatch):
    real = prep._verify
    checked = []

    def fail_v2(tmp, frames, height, width):
        checked.append(Path(tmp))
        assert Path(tmp).is_file() and Path(tmp).name.startswith(".")  # verified before any rename
        if "v2" in Path(tmp).name:
            raise prep._VerifyError("simulated: 11 frames decode, 12 were encoded")
        return real(tmp, frames, height, width)
    monkeypatch.setattr(prep, "_verify", fail_v2)
    report = prep.prepare_videos(src, tmp_path / "out", short_side=32, workers=1, progress=False)
    out = tmp_path / "out"
    assert len(checked) == 4
    bad = [r for r in report.results if r.status == "failed"]
    assert len(bad) == 1 and "simulated" in bad[0].reason and Path(bad[0].source).name == "v2.avi"
    assert not (out / "train" / "a" / "v2.mp4").exists()
    assert not [p for p in out.rglob(".*") if p.is_file()]  # its temporary file is gone too
    monkeypatch.setattr(prep, "_verify", real)
    checked.clear()
    rerun = prep.prepare_videos(src, out, short_side=32, workers=1, progress=False)
    assert sorted(r.status for r in rerun.results) == ["prepared", "skipped", "skipped", "skipped"]
    assert (out / "train" / "a" / "v2.mp4").is_file()


def test_ctrl_c_leaves_no_partial_output(src, tmp_path, monkeypatch, capsys):
    real = prep._encode
    calls = []

    def interrupted(source, tmp, settings, threads):
        calls.append(source)
        if len(calls) == 2:
            real(source, tmp, settings, threads)  # the temporary file is written ...
            raise KeyboardInterrupt  # ... and Ctrl-C arrives before it is verified and renamed
        return real(source, tmp, settings, threads)
    monkeypatch.setattr(prep, "_encode", interrupted)
    assert main(["prepare", "--data", str(src), "--output", str(tmp_path / "out"), "--short-side", "32",
                 "--workers", "1"]) == 130
    out = tmp_path / "out"
    assert [p.name for p in out.rglob("*.mp4")] == ["v1.mp4"]
    assert not [p for p in out.rglob(".*") if p.is_file()]
    assert [r["status"] for r in csv.DictReader(open(out / "prepare.csv"))] == ["prepared"]


KILLED_RUN = """
import os, signal, sys
import av
from vidzoo.engine.prepare import prepare_videos

real_open = av.open

class Killing:  # the container being written; the process is killed mid-file
    def __init__(self, c, path):
        self.c, self.path, self.n = c, path, 0
    def __enter__(self):
        self.c.__enter__()
        return self
    def __exit__(self, *a):
        return self.c.__exit__(*a)
    def __getattr__(self, k):
        return getattr(self.c, k)
    def mux(self, packet):
        self.c.mux(packet)
        self.n += 1
        if self.n == 3 and "v2" in self.path:
            os.kill(os.getpid(), signal.SIGKILL)

def killing_open(path, mode="r", **kw):
    c = real_open(path, mode, **kw)
    return Killing(c, str(path)) if mode == "w" else c

av.open = killing_open
prepare_videos(sys.argv[1], sys.argv[2], short_side=32, gop=2, workers=1, progress=False)
"""


def test_kill_9_mid_file_then_rerun(src, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(src), str(out)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    partial = [p for p in out.rglob(".*.mp4")]
    assert len(partial) == 1 and partial[0].name.startswith(".v2.mp4.partial-") and partial[0].stat().st_size > 0
    assert sorted(p.name for p in out.rglob("*.mp4") if not p.name.startswith(".")) == ["v1.mp4"]
    report = prep.prepare_videos(src, out, short_side=32, gop=2, workers=1, progress=False)
    assert sorted(r.status for r in report.results) == ["prepared"] * 3 + ["skipped"]
    assert not partial[0].exists()  # the dead run's temporary file is removed
    assert len([p for p in out.rglob("*.mp4")]) == 4


def test_list_file_is_rewritten(src, tmp_path):
    lst = src / "lists" / "train.csv"
    lst.parent.mkdir()
    lst.write_text("path,label\n# a comment\n../train/a/v1.mp4,cat\n../train/b/v3.mkv,dog\n"
                   "../train/a/missing.mp4,cat\n")
    report = prep.prepare_videos(lst, tmp_path / "out", short_side=32, workers=1, progress=False)
    out = tmp_path / "out"
    assert report.lists == [out / "lists" / "train.csv"]
    assert (out / "lists" / "train.csv").read_text().splitlines() == [
        "path,label", "# a comment", "../train/a/v1.mp4,cat", "../train/b/v3.mp4,dog",
        "# not prepared (unreadable: No such file or directory): ../train/a/missing.mp4,cat"]
    ds = VideoListDataset(out / "lists" / "train.csv")
    assert ds.classes == ["cat", "dog"] and [Path(p).name for p, _ in ds.samples] == ["v1.mp4", "v3.mp4"]
    assert video_info(ds.samples[1][0]).height == 48  # the prepared (portrait) copy
    assert [r.status for r in report.results] == ["prepared", "prepared", "unreadable"]


def test_refusals(src, tmp_path):
    for out, why in [(src, "--data itself"), (src / "train" / "prepared", "inside --data")]:
        with pytest.raises(UserError, match=why):
            prep.prepare_videos(src, out, workers=1, progress=False)
    assert not (src / "train" / "prepared").exists()
    assert main(["prepare", "--data", str(src), "--output", str(src)]) == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="did not write"):
        prep.prepare_videos(src, foreign, workers=1, progress=False)
    prep.prepare_videos(src / "val", tmp_path / "out", short_side=32, workers=1, progress=False)
    with pytest.raises(UserError, match=r"other settings \(short_side 32 -> 64\)"):
        prep.prepare_videos(src / "val", tmp_path / "out", short_side=64, workers=1, progress=False)
    lst = src / "list.txt"
    lst.write_text("train/a/v1.mp4 0\n")
    with pytest.raises(UserError, match="folder of the listed videos"):
        prep.prepare_videos(lst, src, workers=1, progress=False)
    write_video(src / "train" / "a" / "v1.mkv", ramp(2, 16, 16), fps=8, codec="mpeg4")
    with pytest.raises(UserError, match="would both be prepared as"):
        prep.prepare_videos(src, tmp_path / "out2", workers=1, progress=False)
    for bad in (["--short-side", "0"], ["--gop", "0"], ["--crf", "60"], ["--fps", "0"], ["--workers", "0"]):
        assert main(["prepare", "--data", str(src / "val"), "--output", str(tmp_path / "o3")] + bad) == 2
