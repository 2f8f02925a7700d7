"""Sampling that tells the truth: videos shorter than a clip's span are counted cheaply when the data
is opened and named (train, eval, predict, timeline), ``--frame-stride auto`` fits the median video,
and samples.png labels each frame with its index in the video."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

import vidzoo
from helpers import MODEL, TINY, TINY_SET, train_argv
from vidzoo.data import VideoFolder, frame_count, write_video
from vidzoo.data import decode as dec
from vidzoo.engine.clip_span import SpanCheck, check_span, clip_span, largest_fitting_stride, video_span_warning
from vidzoo.engine.evaluation import visual_frame_indices
from vidzoo.engine.model_io import save_model_folder
from vidzoo.engine.pipelines import build_dataset, input_spec

DENSE = ["--sampling", "dense", "--frame-stride", "4"]  # 4 frames 4 apart span 13 frames > the fixtures' 8


def test_frame_count_reads_headers_once_and_counts_packets_without_one(tmp_path, monkeypatch):
    mp4 = write_video(tmp_path / "a.mp4", np.zeros((11, 16, 16, 3), np.uint8), fps=8)
    mkv = write_video(tmp_path / "b.mkv", np.zeros((7, 16, 16, 3), np.uint8), fps=8)
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].frames == 0  # mkv stores no count: counted from packets, not decoded
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").touch()  # counted by name: nothing is decoded
    assert frame_count(mp4) == 11 and frame_count(mkv) == 7 and frame_count(folder) == 5
    opened = []
    monkeypatch.setattr(dec, "_open", lambda p: opened.append(p) or pytest.fail("a counted file was opened again"))
    assert frame_count(mp4) == 11 and frame_count(mkv) == 7 and not opened
    with pytest.raises(vidzoo.data.VideoNotFoundError):
        frame_count(tmp_path / "missing.mp4")


def test_frame_count_of_an_unreadable_file_is_an_unreadable_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(vidzoo.data.UnreadableVideoError):
        frame_count(tmp_path / "bad.mp4")


def test_span_words_and_the_stride_that_fits():
    assert clip_span("dense", 8, 32) == 225 and clip_span("uniform", 8, 32) == 8
    assert largest_fitting_stride(48, 8) == 6 and largest_fitting_stride(43, 8) == 6 and largest_fitting_stride(
        42, 8) == 5 and largest_fitting_stride(3, 8) == 1 and largest_fitting_stride(10, 1) == 10
    msg = video_span_warning("v.mp4", 32, "dense", 8, 32)
    assert "'v.mp4' has 32 frames" in msg and "8 frames 32 apart span 225 frames" in msg
    assert "--frame-stride 4 (fits this video)" in msg and "--sampling uniform" in msg
    assert video_span_warning("v.mp4", 225, "dense", 8, 32) is None
    assert video_span_warning("v.mp4", 7, "uniform", 8, 32).endswith("repeats frames")


def test_span_message_counts_what_it_could_not_read_and_speaks_of_one_video():
    check = SpanCheck("dense", 8, 32, 225, counts=[48, 300], short=[("a.mp4", 48)], uncounted=1)
    assert check.message("validation") == (
        "1 of 2 validation videos (1 more could not be read) is shorter than a clip (8 frames 32 apart span 225 "
        "frames; shortest 48, median 48 frames): its clip repeats frames; use --frame-stride 6 (fits the median "
        "video) or --sampling uniform (8 frames spread over the whole video)")
    assert "--frame-stride auto" in check.message(auto=True) and check.to_dict()["videos_not_counted"] == 1


def test_check_span_counts_short_videos(motion, tiny_model):
    spec = input_spec(tiny_model, "dense", 4)
    listing = VideoFolder(motion / "train")
    check = check_span(listing, spec)
    assert (check.span, len(check.counts), len(check.short), check.median) == (13, 6, 6, 8)
    msg = check.message("training", auto=True)
    assert msg.startswith("6 of 6 training videos are shorter than a clip (4 frames 4 apart span 13 frames")
    assert "--frame-stride 2 (fits the median video)" in msg and "--frame-stride auto" in msg
    assert check_span(listing, input_spec(tiny_model, "dense", 2)).short == []  # span 7 <= 8
    assert check.to_dict()["short_videos"] == 6


def test_train_warns_once_logs_each_video_and_records_the_counts(motion, tmp_path, cli):
    out = tmp_path / "run"
    r = cli(*train_argv(motion, out, *TINY_SET), *DENSE)
    assert r.code == 0, r.err
    warnings = [line for line in r.out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2  # training videos (with the fix), then validation videos
    assert "6 of 6 training videos" in warnings[0] and "--frame-stride 2" in warnings[0]
    assert "4 of 4 validation videos" in warnings[1] and "--frame-stride" not in warnings[1]
    log = (out / "train.log").read_text()
    assert log.count("short training video") == 6 and log.count("short validation video") == 4
    record = json.loads((out / "metrics.json").read_text())[0]
    assert (record["train_short_videos"], record["val_short_videos"]) == (6, 4)
    assert "train_short_videos" in (out / "metrics.csv").read_text().splitlines()[0]
    # the model line: the name as given once, then what the model is (patch 8, width 32, 16 px), which the
    # registry name's patch16x2_224 no longer says
    line = next(s for s in r.out.splitlines() if s.startswith("model "))
    assert line.startswith(f"model {MODEL}: attention joint, tokenizer tubelet, patch 8x2, width 32, depth 1, heads 2")
    assert "(3, 4, 16, 16), dense sampling, 4 frames 4 apart" in line and line.count("patch16x2") == 1


def test_frame_stride_auto_fits_the_median_video_and_is_recorded(motion, tmp_path, cli):
    out = tmp_path / "run"
    r = cli(*train_argv(motion, out, *TINY_SET), "--sampling", "dense", "--frame-stride", "auto")
    assert r.code == 0, r.err
    assert "--frame-stride auto: 2 (4 frames 2 apart span 7 frames; the median training video has 8)" in r.out
    assert "warning:" not in r.out
    saved = json.loads((out / "train_config.json").read_text())
    # the config repeats the run (the stride chosen); that auto chose it is recorded beside it
    assert saved["config"]["frame_stride"] == 2 and saved["resolved"]["frame_stride_auto"] is True
    assert json.loads((out / "model" / "config.json").read_text())["pretrained_cfg"]["frame_sample_rate"] == 2
    # uniform sampling has no stride to choose
    r = cli(*train_argv(motion, tmp_path / "run2", *TINY_SET), "--frame-stride", "auto")
    assert r.code == 2 and "--frame-stride auto picks the stride of dense sampling" in r.err
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        cli(*train_argv(motion, tmp_path / "run3", *TINY_SET), "--frame-stride", "two")
    assert e.value.code == 2


def test_eval_warns_records_and_labels_samples_with_source_frames(motion, trained_run, tmp_path, cli,
                                                                    monkeypatch):
    labels = []
    monkeypatch.setattr(Axes, "set_xlabel", lambda self, text, **kw: labels.append(text))
    out = tmp_path / "eval"
    r = cli("eval", "--model", trained_run, "--data", motion / "val", "--output", out, *DENSE, "--no-progress",
            "--num-samples", "1", "--views", "1x1")
    assert r.code == 0, r.err
    assert "vidzoo: warning: 4 of 4 videos are shorter than a clip (4 frames 4 apart span 13 frames" in r.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["short_videos"], metrics["clip_span"], metrics["frame_stride"]) == (4, 13, 4)
    assert (out / "eval.log").read_text().count("short video '") == 4
    # 8-frame video, 4 frames 4 apart from the centre window (no slack): 0, 4, then the last frame twice
    assert [s for s in labels if s.startswith(("frame", "t="))] == ["frame 0", "frame 4", "frame 7", "frame 7"]


def test_visual_frame_indices_follow_the_stream_not_a_lying_header(tmp_path, tiny_model):
    from test_decode_headers import huge_avi  # a 12-frame AVI whose header declares 10**9 frames
    (tmp_path / "a").mkdir()
    huge_avi(tmp_path / "a" / "v.avi")
    ds = build_dataset(VideoFolder(tmp_path), input_spec(tiny_model, "dense", 2), train=False)
    assert ds.clip_frame_indices(0) == [[2, 4, 6, 8]]  # centred in 12 frames, not in 10**9

    class R:
        visual_indices = [0]
    assert visual_frame_indices(ds, R()) == [[2, 4, 6, 8]]


def test_predict_warns_per_video(motion, trained_run, tmp_path, cli):
    video = sorted((motion / "val" / "left").glob("*.mp4"))[0]
    r = cli("predict", "--model", trained_run, video, *DENSE, "--json")
    assert r.code == 0, r.err
    assert f"vidzoo: warning: '{video}' has 8 frames, fewer than a clip spans" in r.err
    assert "--frame-stride 2 (fits this video)" in json.loads(r.out)[0]["warning"]
    r = cli("predict", "--model", trained_run, video, "--sampling", "dense", "--frame-stride", "2", "--json")
    assert "warning" not in r.err and "warning" not in json.loads(r.out)[0]


def test_timeline_warns_for_a_video_shorter_than_a_window_and_draws_no_bars_into_a_pipe(motion, tmp_path, cli):
    torch.manual_seed(0)
    model = vidzoo.create_model(MODEL, num_classes=2, num_frames=4, img_size=16, **TINY)
    model.pretrained_cfg = dict(model.pretrained_cfg, frame_sample_rate=4)
    save_model_folder(model, tmp_path / "model", run_config={"data": "d", "epochs": 1}, classes=["l", "r"])
    video = sorted((motion / "val" / "left").glob("*.mp4"))[0]
    r = cli("predict", "--model", tmp_path / "model", video, "--timeline", "--output", tmp_path / "tl")  # progress on
    assert r.code == 0, r.err
    assert "has 8 frames, fewer than a window of 13 (the model's clip: 4 frames 4 apart)" in r.err
    assert "its 4 frames 2.33 apart instead of 4" in r.err
    assert "\r" not in r.err and "decode" not in r.err  # stderr is no terminal here: no tqdm bar
