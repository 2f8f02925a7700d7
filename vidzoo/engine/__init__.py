"""vidzoo.engine: training, evaluation and prediction (what the ``vidzoo`` command runs).

Typical use::

    from vidzoo.engine import TrainConfig, train, load_model, run_evaluation, predict_videos, embed

    result = train(TrainConfig(model="timesformer_divided_tiny_patch16_224", data="clips/", val_split=0.2,
                               output="runs/clips", epochs=30, num_frames=8, img_size=112))
    model = load_model("runs/clips")                      # the saved model/ folder
    report = run_evaluation(model, "clips_test/", views="2x3", output="runs/clips/eval")
    print(predict_videos(model, ["new.mp4"], top_k=3)[0].top)
    vectors = embed(model, ["clips/"]).embeddings           # one pooled feature vector per video

The names are imported on first use (PEP 562), so ``vidzoo.engine.errors`` (what the CLI needs to
start) does not import torch. Each job is its own module: :mod:`~vidzoo.engine.config`
(:class:`TrainConfig`), :mod:`~vidzoo.engine.trainer` (:func:`train`), :mod:`~vidzoo.engine.loop`
(one epoch), :mod:`~vidzoo.engine.optim`, :mod:`~vidzoo.engine.evaluation` (:func:`evaluate`),
:mod:`~vidzoo.engine.inference` (eval / predict runs), :mod:`~vidzoo.engine.data_sources` and
:mod:`~vidzoo.engine.pipelines` (data), :mod:`~vidzoo.engine.model_io` (``--model``),
:mod:`~vidzoo.engine.precision` (``--amp``: :func:`choose_amp`), :mod:`~vidzoo.engine.compile`
(``--compile``: :func:`maybe_compile`).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_LAZY = {
    "TrainConfig": "config",
    "maybe_compile": "compile",
    "open_eval": "data_sources", "open_train_val": "data_sources",
    "Embeddings": "embed", "embed": "embed", "write_embeddings": "embed",
    "DistInfo": "distributed", "ShardedEvalSampler": "distributed", "init_distributed": "distributed",
    "UserError": "errors",
    "EvalResult": "evaluation", "evaluate": "evaluation", "predict_probs": "evaluation",
    "write_eval_outputs": "evaluation",
    "EvalRun": "inference", "Prediction": "inference", "parse_views": "inference", "predict_videos": "inference",
    "run_evaluation": "inference",
    "train_one_epoch": "loop",
    "ClassificationMeter": "metrics", "topk_correct": "metrics",
    "build_model": "model_io", "load_model": "model_io", "model_complexity": "model_io",
    "save_model_folder": "model_io",
    "parse_overrides": "options",
    "build_optimizer": "optim", "build_scheduler": "optim",
    "build_dataset": "pipelines",
    "choose_amp": "precision",
    "Trainer": "trainer", "TrainResult": "trainer", "train": "trainer",
}
_FROM_DATA = {"InputSpec"}  # the one reading of a model's input cfg lives in vidzoo.data

__all__ = [
    "TrainConfig", "TrainResult", "Trainer", "train", "train_one_epoch", "build_optimizer", "build_scheduler",
    "evaluate", "EvalResult", "predict_probs", "write_eval_outputs", "run_evaluation", "EvalRun",
    "predict_videos", "Prediction", "parse_views", "embed", "Embeddings", "write_embeddings", "load_model", "build_model", "model_complexity",
    "parse_overrides", "save_model_folder", "InputSpec", "open_train_val", "open_eval", "build_dataset",
    "ClassificationMeter", "topk_correct", "init_distributed", "DistInfo", "ShardedEvalSampler", "UserError",
    "maybe_compile", "choose_amp",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _FROM_DATA:
        module = f".{_LAZY[name]}" if name in _LAZY else "..data"
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from ..data import InputSpec
    from .compile import maybe_compile
    from .config import TrainConfig
    from .data_sources import open_eval, open_train_val
    from .distributed import DistInfo, ShardedEvalSampler, init_distributed
    from .embed import Embeddings, embed, write_embeddings
    from .errors import UserError
    from .evaluation import EvalResult, evaluate, predict_probs, write_eval_outputs
    from .inference import EvalRun, Prediction, parse_views, predict_videos, run_evaluation
    from .loop import train_one_epoch
    from .metrics import ClassificationMeter, topk_correct
    from .model_io import build_model, load_model, model_complexity, save_model_folder
    from .optim import build_optimizer, build_scheduler
    from .options import parse_overrides
    from .pipelines import build_dataset
    from .precision import choose_amp
    from .trainer import Trainer, TrainResult, train
