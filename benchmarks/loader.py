#!/usr/bin/env python
"""Data loading speed: clips/s of one DataLoader worker on a camera-like 720p video and on its
``vidzoo prepare`` copy, with and without decode-time scaling, next to the model's training
clips/s on the same machine; and how many decoding workers one GPU needs.

The script builds its own inputs, so anyone can rerun it: a 1280x720 H.264 video at 30 fps
(``--seconds`` long) with 10-second GOPs, as cameras and downloads often are, showing a panning
textured scene with moving discs and sensor noise (written with PyAV at about 7 Mbit/s), and its
prepared copy (``vidzoo.engine.prepare``: 256-pixel short side, 16-frame GOPs, CRF 23).

Each cell reads ``--clips`` clips through the dataset pipeline a worker runs (``VideoFolder`` +
the model's sampler and transforms, as ``vidzoo train`` / ``eval`` build them): the same random
clip positions in every cell (seeded), cells interleaved clip by clip (A B C A B C ...) so load
drift on a shared machine hits them alike; the median and the best seconds per clip are reported.
Pipelines: ``decode`` (the frames only, full-size RGB), ``train`` (random
clip + random-resized crop + flip + normalise) and ``eval`` (centre clip, short-side resize, centre
crop); with ``scaled`` the frames are scaled to the transform's ``decode_size`` while decoding.
Recipes: ``16x4`` (16 frames, stride 4: VideoMAE) and ``8x32`` (8 frames, stride 32: TimeSformer).

Planning: decoding workers one GPU needs = the GPU's training clips/s / a worker's clips/s. The
GPU's clips/s come from a ``gpu_check.py`` result (``--gpu-check``, else any
``benchmarks/results/gpu_check*.json``) when one exists, else from the model's GMACs at
``--utilisation`` of the datasheet bf16 rate (a training step = 3 forward passes).

Examples::

    python benchmarks/loader.py --out benchmarks/results/loader
    python benchmarks/loader.py --seconds 10 --clips 5 --no-train-step   # quick look
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

RECIPES = {"16x4": (16, 4), "8x32": (8, 32)}  # frames, stride
PLAN_MODELS = (("videomae_joint_base_patch16x2_224", "16x4"), ("timesformer_divided_base_patch16_224", "8x32"))
GPU = "H200"


# ------------------------------------------------------------------------------------ the inputs
def write_camera_video(path: Path, seconds: float, fps: int = 30, gop_s: float = 10.0, seed: int = 0) -> Path:
    """A 1280x720 H.264 video with ``gop_s``-second GOPs: a textured scene panning slowly, a few
    moving discs, and per-pixel sensor noise, at CRF 18: about 7 Mbit/s, the bit rate of phone
    footage (decoding cost grows with the bit rate; a smooth scene at CRF 23 came out at 0.6 Mbit/s)."""
    import av
    from PIL import Image
    h, w = 720, 1280
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    # A smooth texture larger than the frame (bicubic-enlarged random grid plus finer detail).
    big_h, big_w = h + 200, w + 2 * n // 3 + 200
    coarse = Image.fromarray(rng.integers(40, 215, (big_h // 40, big_w // 40, 3), dtype=np.uint8))
    fine = Image.fromarray(rng.integers(0, 80, (big_h // 2, big_w // 2, 3), dtype=np.uint8))
    scene = (np.asarray(coarse.resize((big_w, big_h), Image.BICUBIC), np.int16)
             + np.asarray(fine.resize((big_w, big_h), Image.BICUBIC), np.int16) - 40)
    yy, xx = np.mgrid[0:h, 0:w]
    discs = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-6, 6), rng.uniform(-4, 4), rng.uniform(30, 90),
              rng.integers(0, 255, 3)) for _ in range(4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        gop = int(round(gop_s * fps))
        s.options = {"crf": "18", "preset": "veryfast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        for t in range(n):
            x0 = int(t * 2 / 3) + 100  # a slow pan: 20 pixels per second
            frame = scene[100:100 + h, x0:x0 + w].copy()
            for cx, cy, vx, vy, r, col in discs:
                px, py = (cx + vx * t) % w, (cy + vy * t) % h
                frame[(xx - px) ** 2 + (yy - py) ** 2 <= r * r] = col
            frame += rng.integers(-6, 7, frame.shape, dtype=np.int16)
            img = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for p in s.encode(img):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def build_inputs(work: Path, seconds: float) -> dict[str, Path]:
    """``{'source': 720p file, 'prepared': its prepared copy}``, each alone in a class folder."""
    from vidzoo.engine.prepare import prepare_videos
    src = work / "source" / "clip" / "camera.mp4"
    if not src.exists():
        t0 = time.perf_counter()
        write_camera_video(src, seconds)
        print(f"wrote {src} ({src.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    report = prepare_videos(work / "source", work / "prepared", workers=1, progress=False)
    r = report.results[0]
    print(f"prepared: {r.status} {r.width}x{r.height} ({(r.output_bytes or 0) / 1e6:.1f} MB) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return {"source": work / "source", "prepared": work / "prepared"}


# ------------------------------------------------------------------------------------ the cells
def make_dataset(root: Path, recipe: str, pipeline: str, scaled: bool, img_size: int = 224, crop_pct: float = 0.875):
    from vidzoo.data import FrameSampler, VideoFolder, eval_transforms, train_transforms
    frames, stride = RECIPES[recipe]
    train = pipeline != "eval"
    sampler = FrameSampler("dense", num_frames=frames, stride=stride)
    if pipeline == "decode":
        transform = None
    elif train:
        transform = train_transforms(img_size, hflip=0.5)
    else:
        transform = eval_transforms(img_size, crop_pct=crop_pct)
    ds = VideoFolder(root, sampler=sampler, transform=transform, train=train)
    ds.scale_at_decode = scaled
    return ds


def loader_rows(inputs: dict[str, Path], clips: int, recipes: list[str]) -> list[dict[str, Any]]:
    cells = []
    for recipe in recipes:
        for video in ("source", "prepared"):
            cells.append((recipe, video, "decode", False))
            for pipeline in ("train", "eval") if recipe == "16x4" else ("train",):
                for scaled in (False, True):
                    cells.append((recipe, video, pipeline, scaled))
    datasets = {c: make_dataset(inputs[c[1]], c[0], c[2], c[3]) for c in cells}
    times: dict[tuple, list[float]] = {c: [] for c in cells}
    shapes: dict[tuple, tuple] = {}
    for k in range(clips + 1):  # round 0 warms the file cache and is not recorded
        for c in cells:
            torch.manual_seed(1000 + k)  # the same random clip (and crop) in every cell of round k
            t0 = time.perf_counter()
            # decode: the frames only (uint8, as the decoder returns them); else the dataset's item
            x = datasets[c].read_clips(0)[0] if c[2] == "decode" else datasets[c][0][0]
            dt = time.perf_counter() - t0
            shapes[c] = tuple(x.shape)
            if k:
                times[c].append(dt)
        print(f"  round {k}/{clips}", flush=True)
    rows = []
    for c in cells:
        recipe, video, pipeline, scaled = c
        ts = times[c]
        rows.append({"recipe": recipe, "video": video, "pipeline": pipeline, "scaled": "yes" if scaled else "no",
                     "output": "x".join(map(str, shapes[c])), "median_s": C.median(ts), "best_s": min(ts),
                     "clips_per_s": 1 / C.median(ts), "times_s": " ".join(f"{t:.3f}" for t in ts)})
    for r in rows:  # speed-ups against the unprepared, unscaled source in the same pipeline
        base = next(b for b in rows if (b["recipe"], b["pipeline"], b["video"], b["scaled"])
                    == (r["recipe"], r["pipeline"], "source", "no"))
        r["speedup"] = base["median_s"] / r["median_s"]
    return rows


# --------------------------------------------------------------------------------- model speed
def model_train_rows(model_name: str, batch: int, runs: int) -> dict[str, Any]:
    """CPU training clips/s of ``model_name`` (fp32, AdamW) at its input size."""
    import vidzoo
    model = vidzoo.create_model(model_name, num_classes=400)
    c, t, h, w = model.pretrained_cfg["input_size"]
    x, y = torch.randn(batch, c, t, h, w), torch.randint(0, 400, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = C.train_step(model, x, y, opt, "cpu", "fp32")
    ts = C.time_fn(step, "cpu", warmup=1, runs=runs)
    return {"model": model_name, "device": "cpu fp32", "batch": batch, "median_s": C.median(ts), "best_s": min(ts),
            "clips_per_s": batch / C.median(ts), "times_s": " ".join(f"{v:.2f}" for v in ts)}


def gmacs_of(model_name: str) -> float:
    from vidzoo.engine.model_io import model_complexity
    return float(model_complexity(model_name)["gmacs"])


def gpu_train_speeds(gpu_check: Path | None) -> tuple[dict[str, float], str]:
    """Training clips/s per model from a gpu_check.py result, if one exists."""
    candidates = [gpu_check] if gpu_check else sorted((Path(__file__).parent / "results").glob("gpu_check*.json"))
    for path in candidates:
        if path is None or not path.is_file():
            continue
        report = json.loads(path.read_text())
        if report.get("tiny"):
            continue  # a dry run's tiny models say nothing about the real ones
        rows = [r for sec in report.get("sections", []) if sec.get("section") == "hf_speed" for r in sec.get("rows", [])]
        out = {}
        for r in rows:  # compare_hf rows: "input" is "BxCxTxHxW", "vidzoo_ms" one bf16 training step
            if r.get("mode") == "train" and r.get("vidzoo_ms"):
                out[r["vidzoo_model"]] = int(str(r["input"]).split("x")[0]) / (r["vidzoo_ms"] / 1e3)
        if out:
            return out, f"measured by gpu_check.py ({path.name})"
    return {}, ""


def planning_rows(loader: list[dict[str, Any]], utilisation: float, gpu_check: Path | None) -> tuple[list[dict], str]:
    from benchmarks.gpu_check import DATASHEET_BF16_TFLOPS
    measured, source = gpu_train_speeds(gpu_check)
    rows = []
    for model_name, recipe in PLAN_MODELS:
        if model_name in measured:
            gpu_cps, how = measured[model_name], source
        else:
            g = gmacs_of(model_name)
            gpu_cps = utilisation * DATASHEET_BF16_TFLOPS[GPU] * 1e12 / (3 * 2 * g * 1e9)
            how = f"{g:.0f} GMACs/clip at {utilisation:.0%} of {DATASHEET_BF16_TFLOPS[GPU]:.0f} bf16 TFLOPS"
        # the source as read before decode-time scaling, as read now (scaled), and its prepared copy
        for video, scaled, what in (("source", "no", "source, full-size decode"), ("source", "yes", "source"),
                                    ("prepared", "yes", "prepared")):
            cell = next((r for r in loader if (r["recipe"], r["video"], r["pipeline"], r["scaled"])
                         == (recipe, video, "train", scaled)), None)
            if cell is None:
                continue
            rows.append({"model": model_name, "recipe": recipe, "gpu_clips_per_s": gpu_cps, "gpu_speed_from": how,
                         "data": what,
                         "worker_clips_per_s": cell["clips_per_s"],
                         "workers_needed": math.ceil(gpu_cps / cell["clips_per_s"])})
    return rows, source or f"GMACs at {utilisation:.0%} utilisation (no gpu_check.py result found)"


# --------------------------------------------------------------------------------------- output
LOADER_COLUMNS = [("recipe", "recipe", ""), ("video", "video", ""), ("pipeline", "pipeline", ""),
                  ("scaled", "scaled at decode", ""), ("output", "clip out", ""), ("median_s", "s/clip (median)", ".3f"),
                  ("best_s", "s/clip (best)", ".3f"), ("clips_per_s", "clips/s per worker", ".2f"),
                  ("speedup", "vs source, unscaled", ".1f")]
MODEL_COLUMNS = [("model", "model", ""), ("device", "device", ""), ("batch", "batch", ""),
                 ("median_s", "s/step (median)", ".1f"), ("best_s", "s/step (best)", ".1f"),
                 ("clips_per_s", "training clips/s", ".3f")]
PLAN_COLUMNS = [("model", "model", ""), ("recipe", "clip", ""), ("gpu_clips_per_s", f"{GPU} training clips/s", ".0f"),
                ("data", "data", ""), ("worker_clips_per_s", "clips/s per worker", ".2f"),
                ("workers_needed", "decoding workers needed", "")]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the generated 720p video")
    p.add_argument("--clips", type=int, default=8, help="timed clips per cell (after one untimed round)")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES), help="clip recipes")
    p.add_argument("--work", help="folder for the generated videos (kept and reused; default: a temporary folder)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: as in a DataLoader worker)")
    p.add_argument("--model", default="videomae_joint_base_patch16x2_224", help="model whose CPU training step is timed")
    p.add_argument("--train-batch", type=int, default=2, help="batch of the timed CPU training step")
    p.add_argument("--train-runs", type=int, default=2, help="timed training steps (after one warm-up)")
    p.add_argument("--no-train-step", action="store_true", help="skip the model's CPU training step")
    p.add_argument("--utilisation", type=float, default=0.4,
                   help="GPU utilisation (fraction of the datasheet bf16 rate) when no gpu_check.py result exists")
    p.add_argument("--gpu-check", help="a gpu_check.json to read the GPU's training speed from")
    p.add_argument("--out", help="output prefix: writes PREFIX.csv, .md, .json")
    args = C.finish_help(p).parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = C.machine_state()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        inputs = build_inputs(work, args.seconds)
        loader = loader_rows(inputs, args.clips, args.recipes)
    torch.set_num_threads(max(1, len(__import__("os").sched_getaffinity(0))))
    model_row = None if args.no_train_step else model_train_rows(args.model, args.train_batch, args.train_runs)
    plan, plan_source = planning_rows(loader, args.utilisation, Path(args.gpu_check) if args.gpu_check else None)
    md = ["## Loader: clips/s per worker", "", C.markdown_table(loader, LOADER_COLUMNS), ""]
    if model_row:
        md += ["## Training on the same machine", "", C.markdown_table([model_row], MODEL_COLUMNS), ""]
    md += [f"## Decoding workers per GPU ({plan_source})", "", C.markdown_table(plan, PLAN_COLUMNS), "",
           "## Machine", "", C.machine_markdown(machine), ""]
    text = "\n".join(md)
    print(text)
    result = {"args": vars(args), "machine": machine, "loader": loader, "train": model_row, "plan": plan,
              "plan_source": plan_source}
    if args.out:
        out = Path(args.out)
        C.write_csv(out.with_suffix(".csv"), loader)
        out.with_suffix(".md").write_text(f"# benchmarks/loader.py {' '.join(argv or sys.argv[1:])}\n\n{text}")
        out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
