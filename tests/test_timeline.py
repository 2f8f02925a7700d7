"""``vidzoo predict --timeline``: window layout, probabilities equal to running the model on each
window directly, a direction change found by a direction-detecting model, files, CLI errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

import vidzoo
from vidzoo.cli import main
from vidzoo.data import eval_transforms, read_video, write_video
from vidzoo.data.synthetic import _render_motion_video
from vidzoo.engine import timeline as tlm
from vidzoo.engine.errors import UserError
from vidzoo.engine.model_io import save_model_folder

from _outputs import full_folder, no_space, read_only_folder, simulate_read_only

TINY = dict(embed_dim=32, depth=1, num_heads=2, num_frames=4, img_size=32, patch_size=8, num_classes=3)
FPS = 8


def _video(path, n_right: int, n_left: int, size: int = 32, seed: int = 0):
    """A shape moving right for ``n_right`` frames, then another moving left."""
    rng = np.random.default_rng(seed)
    frames = np.concatenate([_render_motion_video(rng, (1, 0), n_right, size, size),
                             _render_motion_video(rng, (-1, 0), n_left, size, size)])
    return write_video(path, frames, fps=FPS, quality=0)


class DirectionNet(nn.Module):
    """Not learnt: logits (right, left) from how well each sampled frame, rolled sideways by a few
    pixels, matches the next one (the synthetic shapes wrap around the frame edges)."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.pretrained_cfg = {"input_size": (3, 4, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                               "frame_sample_rate": 2, "crop_pct": 1.0, "label_names": ["right", "left"]}

    def forward(self, x):
        a, b = x[:, :, :-1], x[:, :, 1:]
        err = torch.stack([((torch.roll(a, s, dims=-1) - b) ** 2).mean(dim=(1, 2, 3, 4)) for s in range(-5, 6)], 1)
        right, left = err[:, 6:].min(dim=1).values, err[:, :5].min(dim=1).values
        return torch.stack([left - right, right - left], dim=1) * 50  # lower error -> higher logit


def test_parse_span_and_layout():
    assert tlm.parse_span("2s", 8) == 16 and tlm.parse_span("1.5s", 30) == 45
    assert tlm.parse_span("48", 8) == 48 and tlm.parse_span("48f", 8) == 48 and tlm.parse_span(None, 8) is None
    for bad in ("2x", "-1", "1.5f", "0", "0.01s"):
        with pytest.raises(UserError):
            tlm.parse_span(bad, 8)
    # 7-frame windows of 4 samples (every 2nd frame), stride 3, 41 frames: a last window ends at the end.
    lay = tlm.window_layout(41, 7, 3, 4)
    assert [s for s, _, _ in lay] == list(range(0, 34, 3)) + [34]
    assert all(e == s + 7 for s, e, _ in lay) and lay[-1][1] == 41
    assert lay[0][2] == [0, 2, 4, 6] and lay[-1][2] == [34, 36, 38, 40]
    assert tlm.window_layout(10, 16, 8, 4) == [(0, 10, [0, 3, 6, 9])]  # shorter than a window
    assert tlm.window_layout(20, 10, 5, 4)[0][2] == [0, 3, 6, 9]  # evenly spread, ends included


def test_timeline_windows_equal_the_model_on_each_window(tmp_path, monkeypatch):
    path = _video(tmp_path / "v.mp4", 20, 21)  # 41 frames
    torch.manual_seed(0)
    model = vidzoo.create_model("vivit_tubelet", **TINY).eval()
    assert model.pretrained_cfg["frame_sample_rate"] == 2
    decoded = []
    real = tlm._decode_frames

    def spy(p, wanted, progress, **kw):
        for i, f in real(p, wanted, progress, **kw):
            decoded.append(i)
            yield i, f
    monkeypatch.setattr(tlm, "_decode_frames", spy)
    tl = tlm.predict_timeline(model, path, batch_size=3, progress=False)  # batches across windows
    lay = tlm.window_layout(41, 7, 3, 4)
    assert tl.window == 7 and tl.stride == 3 and tl.starts == [s for s, _, _ in lay]
    assert decoded == sorted({i for _, _, idx in lay for i in idx})  # each needed frame once, in order
    transform = eval_transforms((32, 32), model.pretrained_cfg["mean"], model.pretrained_cfg["std"])
    with torch.no_grad():
        want = torch.cat([model(transform(read_video(path, idx)).unsqueeze(0)).softmax(-1) for _, _, idx in lay])
    torch.testing.assert_close(tl.probs, want, atol=1e-5, rtol=1e-5)

    csv_path = tlm.write_timeline_csv(tl, tmp_path / "v_timeline.csv", top_k=2)
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == len(lay)
    for row, (s, e, _), p in zip(rows, lay, want):
        assert (int(row["start_frame"]), int(row["end_frame"])) == (s, e)
        assert float(row["start_time"]) == pytest.approx(s / FPS) and float(row["end_time"]) == pytest.approx(e / FPS)
        top = p.topk(2)
        assert [row["label_1"], row["label_2"]] == [str(i) for i in top.indices.tolist()]
        assert [float(row["score_1"]), float(row["score_2"])] == pytest.approx(top.values.tolist(), abs=2e-6)


def test_timeline_finds_the_direction_change(tmp_path):
    path = _video(tmp_path / "turn.mp4", 40, 40)
    tl = tlm.predict_timeline(DirectionNet(), path, window="7", stride="0.5s", progress=False)
    assert tl.stride == 4
    labels = [tl.class_names[i] for i in tl.probs.argmax(1).tolist()]
    for s, e, label in zip(tl.starts, tl.ends, labels):
        if e <= 40:
            assert label == "right", (s, e)
        elif s >= 40:
            assert label == "left", (s, e)
    segs = tl.segments()
    assert [x[2] for x in segs] == ["right", "left"]
    assert 36 / FPS <= segs[1][0] <= 40 / FPS  # the change is found where it happens
    png = tlm.plot_timeline(tl, tmp_path / "turn.png")
    assert png.stat().st_size > 10_000
    lines = tlm.summary_lines(tl)
    assert "right" in lines[1] and "left" in lines[2]


def test_cli_timeline(tmp_path, capsys):
    torch.manual_seed(0)
    # saved as trained weights: predict refuses a saved random initialisation
    save_model_folder(vidzoo.create_model("vivit_tubelet", **TINY), tmp_path / "model",
                      run_config={"data": "clips/", "epochs": 1}, classes=["a", "b", "c"])
    (tmp_path / "videos").mkdir()  # the timeline folder may not go inside the videos' folder
    v1 = _video(tmp_path / "videos" / "a.mp4", 16, 16)
    out = tmp_path / "out"
    args = ["predict", "--model", str(tmp_path / "model"), str(v1), "--timeline", "--output", str(out),
            "--window", "1s", "--stride", "4", "--top-k", "2", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "windows of 8 frames (1.00 s), stride 4 frames (0.50 s)" in text and "a_timeline.png" in text
    rows = list(csv.DictReader(open(out / "a_timeline.csv")))
    assert [int(r["start_frame"]) for r in rows] == [0, 4, 8, 12, 16, 20, 24]
    assert (out / "a_timeline.png").stat().st_size > 10_000

    # A missing video among good ones: the good one is answered, the bad one named, exit 1 (as predict).
    assert main(args[:4] + [str(tmp_path / "videos" / "missing.mp4")] + args[4:] + ["--json"]) == 1
    cap = capsys.readouterr()
    assert "missing.mp4" in cap.err and '"path"' in cap.out and "missing.mp4" in cap.out
    assert main(args + ["--views", "2x1"]) == 2
    assert "--views does not apply" in capsys.readouterr().err
    assert main(args[:-5] + ["--window", "2x"]) == 2
    assert "--window expects" in capsys.readouterr().err


# ------------------------------------------------------------------------------ outputs
def _timeline_args(tmp_path, videos, out):
    if not (tmp_path / "model").exists():
        torch.manual_seed(0)
        save_model_folder(vidzoo.create_model("vivit_tubelet", **TINY), tmp_path / "model",
                          run_config={"data": "clips/", "epochs": 1}, classes=["a", "b", "c"])
    return ["predict", "--model", str(tmp_path / "model"), *map(str, videos), "--timeline", "--output", str(out),
            "--window", "8", "--stride", "8", "--no-progress"]


def test_timeline_outputs_are_unique_and_never_follow_a_symlink(tmp_path, capsys):
    """x/a/v.mp4 and y/a/v.mp4 (and v.mp4 and v.mkv) get files of their own, never one overwriting the other's;
    a symlink planted at an output path is replaced, its target untouched."""
    v1 = _video((tmp_path / "x" / "a").mkdir(parents=True) or tmp_path / "x" / "a" / "v.mp4", 8, 8)
    v2 = _video((tmp_path / "y" / "a").mkdir(parents=True) or tmp_path / "y" / "a" / "v.mp4", 12, 12)
    out = tmp_path / "x" / "a" / "deeper" / "timelines"  # two levels below a video's folder: not read as a video
    out.mkdir(parents=True)
    target = tmp_path / "precious.csv"
    target.write_text("not a timeline")
    (out / "x_a_v_timeline.csv").symlink_to(target)
    assert main(_timeline_args(tmp_path, [v1, v2], out)) == 0
    text = capsys.readouterr().out
    rows = {f.name: len(list(csv.DictReader(open(f)))) for f in out.glob("*.csv")}
    assert rows == {"x_a_v_timeline.csv": 2, "y_a_v_timeline.csv": 3}  # 16 and 24 frames, 8-frame windows
    assert sorted(p.name for p in out.glob("*.png")) == ["x_a_v_timeline.png", "y_a_v_timeline.png"]
    for name in rows:
        assert text.count(f"{out / name} and") == 1, text
    assert target.read_text() == "not a timeline" and not (out / "x_a_v_timeline.csv").is_symlink()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left

    v3, v4 = _video(tmp_path / "v.mp4", 8, 8), _video(tmp_path / "v.mkv", 16, 16)
    out2 = tmp_path / "y" / "other" / "timelines"
    assert main(_timeline_args(tmp_path, [v3, v4], out2)) == 0
    capsys.readouterr()
    assert {f.name: len(list(csv.DictReader(open(f)))) for f in out2.glob("*.csv")} == {
        "v_mp4_timeline.csv": 2, "v_mkv_timeline.csv": 4}
    assert tlm.output_names(["v.mp4", "./v.mp4"]) == ["v", "v-2"]  # the same video twice


def test_timeline_output_folder_errors_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "videos").mkdir()
    v = _video(tmp_path / "videos" / "a.mp4", 8, 8)
    (tmp_path / "file").write_text("x")

    def error(out):
        assert main(_timeline_args(tmp_path, [v], out)) == 2
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "a file is in the way" in error(tmp_path / "file")
    assert "a parent of it is a file" in error(tmp_path / "file" / "tl")
    # a timeline folder in (or directly in) a class folder would be read as one more video of that class
    assert "is the folder of" in error(tmp_path / "videos")
    assert "is a folder directly in the folder of" in error(tmp_path / "videos" / "tl")
    assert not (tmp_path / "videos" / "tl").exists()
    with read_only_folder(tmp_path / "ro", simulate_read_only(monkeypatch)):
        assert "read-only" in error(tmp_path / "ro" / "tl")
    monkeypatch.undo()
    import matplotlib.figure
    with full_folder(tmp_path / "full", lambda: monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                                                                      no_space)) as real:
        assert "the disk is full" in error(tmp_path / "full"), real
        assert not [p for p in (tmp_path / "full").iterdir() if p.suffix != ".csv"]  # no partial picture
