"""Where a training run folder keeps its model: the one home of these names, torch-free (the command's
``--help`` reads the run layout). :class:`vidzoo.engine.run_layout.RunLayout` names the rest of the
folder; :mod:`vidzoo._local` loads a run folder given as a model."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RUN_MODEL_DIR", "RUN_CHECKPOINTS", "BEST_CHECKPOINT", "LAST_CHECKPOINT", "run_model_candidates"]

RUN_MODEL_DIR = "model"
RUN_CHECKPOINTS = "checkpoints"
BEST_CHECKPOINT = "best.pth"
LAST_CHECKPOINT = "last.pth"


def run_model_candidates(root: str | os.PathLike) -> list[Path]:
    """What a training run folder loads as a model, in order: the saved model, then the best and last
    checkpoints."""
    root = Path(root)
    return [root / RUN_MODEL_DIR, root / RUN_CHECKPOINTS / BEST_CHECKPOINT, root / RUN_CHECKPOINTS / LAST_CHECKPOINT]
