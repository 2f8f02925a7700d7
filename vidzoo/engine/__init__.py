"""vidzoo.engine: training, evaluation and prediction (what the ``vidzoo`` command runs).

Typical use::

    from vidzoo.engine import TrainConfig, train, load_model, run_evaluation, predict_videos

    result = train(TrainConfig(model="timesformer_divided_tiny_patch16_224", data="clips/", val_split=0.2,
                               output="runs/clips", epochs=30, num_frames=8, img_size=112))
    model = load_model("runs/clips")                      # the saved model/ folder
    report = run_evaluation(model, "clips_test/", views="2x3", output="runs/clips/eval")
    print(predict_videos(model, ["new.mp4"], top_k=3)[0].top)
"""
from .data_setup import InputSpec, configure_dataset, open_eval, open_train_val
from .distributed import DistInfo, ShardedEvalSampler, init_distributed
from .errors import UserError
from .evaluate import EvalResult, evaluate, predict_probs, write_eval_outputs
from .inference import EvalRun, Prediction, parse_views, predict_videos, run_evaluation
from .metrics import ClassificationMeter, topk_correct
from .model_io import build_model, load_model, model_complexity, parse_overrides, save_model_folder
from .train import TrainConfig, Trainer, TrainResult, build_optimizer, build_scheduler, train, train_one_epoch

__all__ = [
    "TrainConfig", "TrainResult", "Trainer", "train", "train_one_epoch", "build_optimizer", "build_scheduler",
    "evaluate", "EvalResult", "predict_probs", "write_eval_outputs", "run_evaluation", "EvalRun",
    "predict_videos", "Prediction", "parse_views", "load_model", "build_model", "model_complexity",
    "parse_overrides", "save_model_folder", "InputSpec", "open_train_val", "open_eval", "configure_dataset",
    "ClassificationMeter", "topk_correct", "init_distributed", "DistInfo", "ShardedEvalSampler", "UserError",
]
