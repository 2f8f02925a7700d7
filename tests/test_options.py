"""The command's options, each defined once: ``vidzoo train`` is generated from TrainConfig's fields,
the commands that load a model share one ``--model``, and the flag names in errors are the parser's."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from vidzoo.cli import build_parser
from vidzoo.engine import options as o
from vidzoo.engine.config import TrainConfig

REQUIRED = ["train", "--model", "vivit_tubelet", "--data", "d", "--output", "o"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_train_config_field_is_a_flag_with_the_fields_default():
    train = _subparsers()["train"]
    dests = {a.dest: a for a in train._actions}
    fields = dataclasses.fields(TrainConfig)
    assert {f.name for f in fields} <= set(dests)
    kwargs = o.config_kwargs(TrainConfig, build_parser().parse_args(REQUIRED))
    defaults = TrainConfig()
    assert o.required_fields(TrainConfig) == ["model", "data", "output"]
    for f in fields:
        if f.name in ("model", "data", "output"):  # from the command line, --config or --resume (cli checks)
            assert not dests[f.name].required
        elif f.name == "pretrained":  # None on the command line: the tag decides (cli.wants_weights)
            assert kwargs[f.name] is None
        else:
            assert kwargs[f.name] == getattr(defaults, f.name), f.name


def test_flags_reach_the_config():
    argv = REQUIRED + ["--crop-scale", "0.5", "0.9", "--no-progress", "--optimizer", "sgd", "--resume",
                       "--set", "depth=2", "qkv_bias=true", "--val-split", "0.2", "--grad-checkpointing"]
    cfg = TrainConfig(**o.config_kwargs(TrainConfig, build_parser().parse_args(argv)))
    assert cfg.crop_scale == (0.5, 0.9) and cfg.progress is False and cfg.opt == "sgd" and cfg.resume is True
    assert cfg.model_overrides == {"depth": 2, "qkv_bias": True} and cfg.val_split == 0.2 and cfg.grad_checkpointing
    args = build_parser().parse_args(REQUIRED + ["--resume", "run/checkpoints/best.pth"])
    assert o.config_kwargs(TrainConfig, args)["resume"] == "run/checkpoints/best.pth"
    with pytest.raises(ValueError, match="--crop-scale must be MIN MAX"):
        TrainConfig(crop_scale=(0.9, 0.5))


def test_a_new_field_with_an_option_gets_a_flag_and_one_without_is_refused():
    @dataclasses.dataclass
    class Config:
        warmup_lr: float = o.option_field(o.Option("lr at the start of the warmup", group="optimisation"),
                                          default=0.0)
        mixup: bool = o.option_field(o.Option("mix clips"), default=False)

    p = argparse.ArgumentParser()
    groups = o.add_config_options(p, Config)
    assert "optimisation" in groups and o.config_flag(Config, "warmup_lr") == "--warmup-lr"
    assert o.config_kwargs(Config, p.parse_args(["--warmup-lr", "1e-5", "--mixup"])) == {"warmup_lr": 1e-5,
                                                                                         "mixup": True}

    @dataclasses.dataclass
    class Bare:
        size: int = 3

    with pytest.raises(TypeError, match="Bare.size has no command-line option"):
        o.add_config_options(argparse.ArgumentParser(), Bare)


def test_config_docstring_lists_every_field_with_its_flag():
    for f in dataclasses.fields(TrainConfig):
        assert f"        {f.name}: " in TrainConfig.__doc__ and f"``{o.config_flag(TrainConfig, f.name)}``" \
            in TrainConfig.__doc__


def test_model_option_is_one_definition():
    """Every command that loads a model takes the same --model, with the help naming every form load_model takes."""
    for form in ("registry name", "NAME.TAG", "training output folder", "saved model folder", "checkpoint .pth",
                 "local-dir:", "hf-hub:"):
        assert form in o.MODEL_HELP
    subs = _subparsers()
    for command in ("train", "eval", "predict", "export"):
        action = next(a for a in subs[command]._actions if "--model" in a.option_strings)
        # train's may come from --config or --resume: the command checks it after merging
        assert action.help == o.MODEL_HELP and (action.required or command == "train"), command
    assert next(a for a in subs["info"]._actions if a.dest == "model").help == o.MODEL_HELP
    for command in ("eval", "predict", "export"):
        flags = {s for a in subs[command]._actions for s in a.option_strings}
        assert {"--pretrained", "--weights", "--num-frames", "--img-size", "--set"} <= flags, command
