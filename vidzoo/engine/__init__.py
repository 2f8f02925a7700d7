"""vidzoo.engine: training, evaluation and prediction (what the ``vidzoo`` command runs).

Typical use::

    from vidzoo.engine import TrainConfig, train, load_model, run_evaluation, predict_videos

    result = train(TrainConfig(model="timesformer_divided_tiny_patch16_224", data="clips/", val_split=0.2,
                               output="runs/clips", epochs=30, num_frames=8, img_size=112))
    model = load_model("runs/clips")                      # the saved model/ folder
    report = run_evaluation(model, "clips_test/", views="2x3", output="runs/clips/eval")
    print(predict_videos(model, ["new.mp4"], top_k=3)[0].top)

The names are imported on first use (PEP 562), so ``vidzoo.engine.errors`` (what the CLI needs to
start) does not import torch.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_LAZY = {
    "InputSpec": "data_setup", "configure_dataset": "data_setup", "open_eval": "data_setup",
    "open_train_val": "data_setup",
    "DistInfo": "distributed", "ShardedEvalSampler": "distributed", "init_distributed": "distributed",
    "UserError": "errors",
    "EvalResult": "evaluate", "evaluate": "evaluate", "predict_probs": "evaluate", "write_eval_outputs": "evaluate",
    "EvalRun": "inference", "Prediction": "inference", "parse_views": "inference", "predict_videos": "inference",
    "run_evaluation": "inference",
    "ClassificationMeter": "metrics", "topk_correct": "metrics",
    "build_model": "model_io", "load_model": "model_io", "model_complexity": "model_io",
    "parse_overrides": "model_io", "save_model_folder": "model_io",
    "TrainConfig": "train", "Trainer": "train", "TrainResult": "train", "build_optimizer": "train",
    "build_scheduler": "train", "train": "train", "train_one_epoch": "train",
}

__all__ = [
    "TrainConfig", "TrainResult", "Trainer", "train", "train_one_epoch", "build_optimizer", "build_scheduler",
    "evaluate", "EvalResult", "predict_probs", "write_eval_outputs", "run_evaluation", "EvalRun",
    "predict_videos", "Prediction", "parse_views", "load_model", "build_model", "model_complexity",
    "parse_overrides", "save_model_folder", "InputSpec", "open_train_val", "open_eval", "configure_dataset",
    "ClassificationMeter", "topk_correct", "init_distributed", "DistInfo", "ShardedEvalSampler", "UserError",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _EngineModule(types.ModuleType):
    """``train`` and ``evaluate`` name both a submodule and the function it defines. Importing a
    submodule sets the package attribute to the module; with eager imports the function then
    replaced it, so ``from vidzoo.engine import train`` is the function. Keep that true whichever
    of the two is imported first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("train", "evaluate") and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _EngineModule


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from .data_setup import InputSpec, configure_dataset, open_eval, open_train_val
    from .distributed import DistInfo, ShardedEvalSampler, init_distributed
    from .errors import UserError
    from .evaluate import EvalResult, evaluate, predict_probs, write_eval_outputs
    from .inference import EvalRun, Prediction, parse_views, predict_videos, run_evaluation
    from .metrics import ClassificationMeter, topk_correct
    from .model_io import build_model, load_model, model_complexity, parse_overrides, save_model_folder
    from .train import TrainConfig, Trainer, TrainResult, build_optimizer, build_scheduler, train, train_one_epoch
