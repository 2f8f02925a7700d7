"""The schema of a training run: :class:`TrainConfig` (stored in ``train_config.json`` and in every
checkpoint)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .validation import AMP_MODES, OPTIMIZERS, validate_train_config

__all__ = ["TrainConfig", "OPTIMIZERS", "AMP_MODES", "config_dict"]


@dataclass
class TrainConfig:
    """Everything a training run needs; stored in ``config.json`` and in every checkpoint.

    Attributes:
        model: Registry name or alias (``vidzoo list``), or a saved model (folder,
            ``local-dir:DIR``, ``hf-hub:org/repo``) to fine-tune.
        data: Training data (folder, list file or npz; see :mod:`vidzoo.engine.data_sources`).
        val_data: Validation data (an npz means its ``val`` split).
        val_split: Fraction of ``data`` held out for validation (stratified, from ``seed``).
        output: Output folder.
        epochs: Epochs to train in total.
        batch_size: Clips per batch per process.
        lr: Peak learning rate (reached after warmup).
        opt: ``adamw``, ``adam`` (the Keras OrganMNIST3D recipe), ``sgd`` or ``momentum``.
        weight_decay: Decoupled (AdamW) or L2 weight decay; None: 0.05 for AdamW, else 0.
            Biases, norms, position embeddings and class tokens are never decayed.
        momentum: SGD momentum.
        layer_decay: Layer-wise learning-rate decay (BEiT / VideoMAE fine-tuning; 0.75 for
            VideoMAE ViT-B): the head keeps ``lr``, block ``i`` of ``L`` gets
            ``lr * layer_decay ** (L - i)``, the embeddings ``lr * layer_decay ** (L + 1)``
            (groups from ``model.group_matcher``). None: one learning rate for all.
        warmup_epochs: Linear warmup length (may be fractional).
        min_lr: Learning rate at the end of the cosine schedule.
        label_smoothing: Cross-entropy label smoothing.
        clip_grad: Clip the gradient norm to this value (None: no clipping).
        accum_steps: Batches per optimizer update (gradient accumulation).
        amp: ``auto`` (bf16 on CUDA when supported, fp16 on older GPUs, fp32 on CPU), ``bf16``,
            ``fp16`` (CUDA, with loss scaling) or ``none``.
        grad_checkpointing: Recompute block activations in backward to save memory.
        seed: Random seed.
        deterministic: ``torch.use_deterministic_algorithms(True)`` (slower on GPU).
        pretrained: Start from the model's pretrained weights (head replaced for the data's classes).
        num_frames: Frames per clip (overrides the model and the sampler).
        img_size: Frame size (overrides the model and the transforms).
        model_overrides: More model arguments (``--set key=value``).
        sampling: ``dense`` or ``uniform`` (default: the model's ``pretrained_cfg``).
        frame_stride: Dense sampling stride (default: the model's ``frame_sample_rate``).
        hflip: Horizontal-flip probability (0 for direction-sensitive classes).
        crop_scale: Area range of the training random-resized crop.
        workers: DataLoader worker processes per rank.
        cache_videos: Decode each video once and keep its frames in memory (small datasets of
            short clips; with workers, each persistent worker holds its own cache and resume is
            exact only with ``workers=0``).
        on_error: Unreadable videos: ``skip`` (training: substitute another sample; validation:
            exclude the video; both counted per epoch and named once in ``train.log``) or
            ``raise`` (stop at the first, naming it).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: True: continue from ``output/checkpoints/last.pth``; a path: from that checkpoint.
        overwrite: Start afresh in an output folder that already holds a run.
        val_batch_size: Evaluation batch size (default ``batch_size``).
        progress: tqdm progress bars (shown on rank 0 when writing to a terminal).
    """

    model: str = "vivit_joint_tiny_patch16x2_224"
    data: str | None = None
    val_data: str | None = None
    val_split: float | None = None
    output: str = "output/train"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    opt: str = "adamw"
    weight_decay: float | None = None
    momentum: float = 0.9
    layer_decay: float | None = None
    warmup_epochs: float = 1.0
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    clip_grad: float | None = None
    accum_steps: int = 1
    amp: str = "auto"
    grad_checkpointing: bool = False
    seed: int = 0
    deterministic: bool = False
    pretrained: bool = False
    num_frames: int | None = None
    img_size: int | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    sampling: str | None = None
    frame_stride: int | None = None
    hflip: float = 0.5
    crop_scale: tuple[float, float] = (0.25, 1.0)
    workers: int = 0
    cache_videos: bool = False
    on_error: str = "skip"
    device: str = "auto"
    resume: bool | str = False
    overwrite: bool = False
    val_batch_size: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        validate_train_config(self)  # ValueError naming the flag (vidzoo/engine/validation.py)

    def validate(self) -> None:
        """Check the options again (a config changed after it was made) with the rules of
        :func:`~vidzoo.engine.validation.validate_train_config`, as a :class:`UserError`."""
        try:
            validate_train_config(self)
        except ValueError as e:
            raise UserError(str(e)) from e

    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.05 if self.opt == "adamw" else 0.0


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as JSON-ready data."""
    d = dataclasses.asdict(cfg)
    d["crop_scale"] = list(d["crop_scale"])
    return d
