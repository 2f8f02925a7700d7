"""``vidzoo demo``: the whole workflow offline, in a few minutes on two CPU cores.

1. Write a synthetic motion dataset of real mp4 files (:func:`vidzoo.data.make_motion_dataset`):
   one shape moving left / right / up / down over a noisy background; every single frame looks
   alike in all classes, so only a model that uses time can tell them apart.
2. Train a small ViViT (joint space-time attention over 4x4x4 tubelets of 8 frames of 32x32, taken
   every other frame) on it, without spatial augmentation (crops hide the moving shape).
3. Evaluate the saved model on the validation videos with 2 temporal clips per video: top-1,
   per-class accuracy, confusion matrix, captioned sample clips.
4. Classify one video with ``predict`` and print where everything went.

The demo folder holds a manifest (``.vidzoo-demo.json``) of what the demo wrote: the settings of
its videos and whether they were all written, and that ``run/`` is the demo's. A second
``vidzoo demo`` into the same folder reuses the videos when its settings are the same (else
replaces the videos the previous demo wrote, file by file) and replaces the demo's own run, saying
so. A folder whose ``data/`` or ``run/`` the demo did not write (no manifest) is refused: vidzoo
deletes or replaces only what it wrote itself.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write_json
from .errors import UserError
from .run_layout import LOCK_NAME, RunLayout
from .run_lock import RunLock

DEMO_MANIFEST = ".vidzoo-demo.json"

DEMO_MODEL = "vivit_joint_tiny_patch16x2_224"
# Width 64, one block, 4x4 patches x 4 frames -> 2 x 8 x 8 = 128 tokens; mean-pooled tokens (no
# class token) give the head the local motion features directly. 71k parameters. Measured while
# tuning (200 videos per class, 3 data/init seeds): the model leaves the chance plateau after 3-7
# epochs and reaches 97-100% val top-1 within 12 epochs; with 100 videos per class, two blocks, a
# class token or a random-resized crop it often stays near chance for 12 epochs.
DEMO_OVERRIDES: dict[str, Any] = dict(embed_dim=64, depth=1, num_heads=4, patch_size=4, tubelet_size=4,
                                      global_pool="avg", class_token=False)


@dataclass
class DemoConfig:
    """Settings of the demo (defaults tuned to learn clearly in a few CPU minutes).

    Attributes:
        output: Output folder (``data/``, ``run/`` and the manifest ``.vidzoo-demo.json``). A
            previous demo there (known by its manifest) has its videos reused when the settings
            match and its run replaced; a folder holding a ``data/`` or ``run/`` that the demo did
            not write is refused.
        epochs: Training epochs.
        num_classes: Motion directions (2..8).
        videos_per_class: Training videos per class.
        val_videos_per_class: Validation videos per class.
        frames: Frames per video written.
        size: Video frame size.
        device: ``auto`` / ``cpu`` / ``cuda``.
        seed: Seed of the data and the training.
        workers: DataLoader workers.
        threads: torch CPU threads. The demo model is tiny: one thread avoids the intra-op
            synchronisation that costs more than it saves (up to 30x slower epochs on a busy
            2-core machine); 0 keeps torch's default.
        progress: Progress bars.
        overwrite: Write the videos afresh even when a previous demo's can be reused.
    """

    output: str = "vidzoo-demo"
    epochs: int | None = None
    num_classes: int = 4
    videos_per_class: int | None = None
    val_videos_per_class: int | None = None
    frames: int = 16
    size: int = 32
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    threads: int = 1
    progress: bool = True
    overwrite: bool = False
    lr: float = 2e-3
    batch_size: int = 16
    model: str = DEMO_MODEL
    model_overrides: dict[str, Any] = field(default_factory=lambda: dict(DEMO_OVERRIDES))

    def __post_init__(self) -> None:
        # 30, not 20: when the plateau at chance lasts longer (its end moves with float noise, e.g.
        # epoch 10 vs 15 for the same seed), 20 epochs of cosine schedule left too little to learn.
        self.epochs = self.epochs if self.epochs is not None else 30
        self.videos_per_class = self.videos_per_class if self.videos_per_class is not None else 200
        self.val_videos_per_class = self.val_videos_per_class if self.val_videos_per_class is not None else 25
        if not 2 <= self.num_classes <= 8:
            raise UserError(f"--classes must be in 2..8, got {self.num_classes}")
        if self.videos_per_class < 1 or self.val_videos_per_class < 1:
            raise UserError("--videos-per-class and --val-videos-per-class must be >= 1")


@dataclass
class DemoResult:
    """What the demo measured and wrote."""

    val_top1: float
    chance: float
    wall_s: float
    data_dir: Path
    run_dir: Path
    eval_dir: Path
    prediction: Any


def _say(msg: str) -> None:
    print(msg, flush=True)


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run the demo end to end and print a summary (see the module docstring)."""
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _run_demo(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_demo(cfg: DemoConfig) -> DemoResult:
    t0 = time.time()
    out = Path(cfg.output)
    data_dir, layout = out / "data", RunLayout(out / "run")
    run_dir, eval_dir = layout.root, layout.eval_dir
    lock = RunLock(out / LOCK_NAME, f"demo folder '{out}'", command="vidzoo demo")
    note = lock.acquire()
    try:
        if note:
            _say(f"note: {note}")
        manifest = _own_demo(out, data_dir, run_dir)
        classes = _demo_videos(cfg, out, data_dir, manifest)
        if not manifest.get("run"):
            manifest["run"] = True
            atomic_write_json(manifest, out / DEMO_MANIFEST)
        return _train_and_report(cfg, t0, data_dir, layout, run_dir, eval_dir, classes)
    finally:
        lock.release()


def _own_demo(out: Path, data_dir: Path, run_dir: Path) -> dict[str, Any]:
    """The manifest of the demo in ``out`` (a new one when there is none and nothing would be replaced).

    Raises:
        UserError: ``out`` holds a ``data/`` or ``run/`` that no demo manifest accounts for.
    """
    path = out / DEMO_MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    if not (isinstance(manifest, dict) and manifest.get("vidzoo_demo") == 1):
        manifest = {"vidzoo_demo": 1, "data": None, "data_complete": False, "run": False}
    foreign = [p for p, ours in ((data_dir, manifest.get("data")), (run_dir, manifest.get("run")))
               if p.is_symlink() or (p.exists() and not ours)]  # the demo never writes through a link
    if foreign:
        raise UserError(f"'{out}' holds {' and '.join(p.name + '/' for p in foreign)}, which vidzoo demo did not "
                        f"write (not in {path.name}); the demo replaces only what it wrote itself: pass another "
                        f"--output, or move them away")
    atomic_write_json(manifest, path)  # before anything is written: what follows is the demo's
    return manifest


def _data_settings(cfg: DemoConfig) -> dict[str, Any]:
    from ..data import default_codec
    return {"classes": cfg.num_classes, "videos_per_class": cfg.videos_per_class,
            "val_videos_per_class": cfg.val_videos_per_class, "frames": cfg.frames, "size": cfg.size,
            "seed": cfg.seed, "codec": default_codec()}


def _video_files(data_dir: Path, settings: dict[str, Any]) -> list[Path]:
    """The files :func:`~vidzoo.data.make_motion_dataset` writes for the demo's ``settings``."""
    from ..data import MOTION_DIRECTIONS
    names = list(MOTION_DIRECTIONS)[:settings["classes"]]
    return [data_dir / split / name / f"{v:04d}.mp4"
            for split, n in (("train", settings["videos_per_class"]), ("val", settings["val_videos_per_class"]))
            for name in names for v in range(n)]


def _remove_videos(data_dir: Path, settings: dict[str, Any]) -> None:
    """Delete the videos a previous demo wrote (only those), then the folders they leave empty."""
    files = _video_files(data_dir, settings)
    for f in files:
        if f.is_file() or f.is_symlink():
            f.unlink()
    for folder in sorted({p for f in files for p in f.parents if data_dir in (p, *p.parents)},
                         key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass


def _demo_videos(cfg: DemoConfig, out: Path, data_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Write the demo's videos, or reuse the previous demo's when they were written with the same
    settings and are all there; returns the class names."""
    from ..data import MOTION_DIRECTIONS, make_motion_dataset
    settings = _data_settings(cfg)
    previous = manifest.get("data")
    if (previous == settings and manifest.get("data_complete") and not cfg.overwrite
            and all(f.is_file() for f in _video_files(data_dir, settings))):
        _say(f"[1/4] reusing the videos of the previous demo in {data_dir} (same settings; --overwrite writes "
             f"them afresh)")
        return sorted(list(MOTION_DIRECTIONS)[:cfg.num_classes])
    if previous:
        _say(f"      replacing the videos of the previous demo in {data_dir}")
        _remove_videos(data_dir, previous)
    manifest.update(data=settings, data_complete=False)
    atomic_write_json(manifest, out / DEMO_MANIFEST)
    _say(f"[1/4] writing {cfg.num_classes} motion classes x ({cfg.videos_per_class} train + "
         f"{cfg.val_videos_per_class} val) mp4 videos ({cfg.frames} frames, {cfg.size}x{cfg.size}) to {data_dir}")
    size = (cfg.size, cfg.size)
    classes = make_motion_dataset(data_dir, cfg.num_classes, cfg.videos_per_class, cfg.frames, size,
                                  seed=cfg.seed, split="train", progress=cfg.progress)
    make_motion_dataset(data_dir, cfg.num_classes, cfg.val_videos_per_class, cfg.frames, size, seed=cfg.seed,
                        split="val", progress=cfg.progress)
    manifest["data_complete"] = True
    atomic_write_json(manifest, out / DEMO_MANIFEST)
    return classes


def _train_and_report(cfg: DemoConfig, t0: float, data_dir: Path, layout: RunLayout, run_dir: Path, eval_dir: Path,
                      classes: list[str]) -> DemoResult:
    from .inference import predict_videos, run_evaluation
    from .model_io import load_model
    from .config import TrainConfig
    from .trainer import train

    if layout.is_run():
        _say(f"      replacing the previous demo's training run in {run_dir}")
    _say(f"[2/4] training for {cfg.epochs} epochs")  # the trainer's model line says what is trained
    tcfg = TrainConfig(model=cfg.model, data=str(data_dir), output=str(run_dir), epochs=cfg.epochs,
                       batch_size=cfg.batch_size, lr=cfg.lr, warmup_epochs=1, model_overrides=dict(cfg.model_overrides),
                       num_frames=8, img_size=cfg.size, sampling="dense", frame_stride=2, hflip=0.0,
                       crop_scale=(1.0, 1.0),
                       cache_videos=True, overwrite=True, device=cfg.device, seed=cfg.seed, workers=cfg.workers,
                       progress=cfg.progress)
    result = train(tcfg)

    _say(f"[3/4] evaluating the saved model on {data_dir / 'val'} with 2 temporal clips per video")
    model = load_model(str(run_dir))
    run = run_evaluation(model, str(data_dir / "val"), views=(2, 1), batch_size=cfg.batch_size,
                         workers=cfg.workers, device=cfg.device, output=eval_dir, progress=cfg.progress)
    r = run.result
    chance = 100.0 / len(classes)
    _say(f"      val top-1 {r.top1:.1f}% (chance {chance:.0f}%) on {r.num_samples} videos; per class: "
         + ", ".join(f"{n} {a:.0f}%" for n, a in zip(run.class_names, r.per_class_accuracy) if a is not None))

    video = sorted((data_dir / "val" / classes[0]).glob("*.mp4"))[0]
    _say(f"[4/4] vidzoo predict --model {run_dir} {video}")
    pred = predict_videos(model, [video], top_k=min(3, len(classes)), device=cfg.device)[0]
    for i, (_, name, prob) in enumerate(pred.top, 1):
        _say(f"      {i}. {name:<8} {prob:.3f}")

    wall = time.time() - t0
    model_dir = layout.model_dir if result.model_dir is not None else layout.best
    _say(f"\ndone in {wall:.0f}s. Outputs:")
    _say(f"  videos            {data_dir}/{{train,val}}/<class>/*.mp4")
    _say(f"  training          {run_dir}/  ({', '.join(p.name for p in layout.outputs()[:5])}, "
         f"{layout.checkpoints.name}/)")
    _say(f"  final model       {model_dir}")
    _say(f"  evaluation        {eval_dir}/  (metrics.json, per_class.csv, confusion_matrix.png, "
         f"predictions.csv, samples.gif, samples.png)")
    _say(f"  try: vidzoo eval --model {run_dir} --data {data_dir / 'val'} --views 2x1")
    return DemoResult(r.top1, chance, wall, data_dir, run_dir, eval_dir, pred)
