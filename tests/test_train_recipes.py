"""Config files, named recipes and the training flags of clip augmentation, mixing, repeated
sampling, class balance, weight averaging and TensorBoard, through ``vidzoo train``."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers import TINY_SET, train_argv
from vidzoo.cli import _train_config, build_parser
from vidzoo.engine.config import (TrainConfig, augments_pixels, config_dict, load_train_config, merge_train_kwargs,
                                  pixel_augmentations, recipe_kwargs)
from vidzoo.engine.errors import UserError
from vidzoo.recipes import list_recipes, read_recipe

BASE = ["train", "--model", "vivit_tubelet", "--data", "d", "--output", "o"]


def config_of(*argv) -> TrainConfig:
    """The TrainConfig ``vidzoo train ARGV`` makes (as main() does: only the flags given override)."""
    argv = [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    args.argv = argv
    return _train_config(args)


# ------------------------------------------------------------------------------------ flags
@pytest.mark.parametrize("extra, expected", [
    (["--mixup", "-1"], "--mixup must be a number >= 0, got -1.0"),
    (["--cutmix", "nan"], "--cutmix must be a number >= 0"),
    (["--mixup-prob", "1.5"], "--mixup-prob must be a number in [0, 1]"),
    (["--mixup", "0.8", "--batch-size", "3"], "need an even number of clips per batch; got --batch-size 3"),
    (["--reprob", "2"], "--reprob must be a number in [0, 1], got 2.0"),
    (["--randaug", "rand-m9-x2"], "--randaug: unknown RandAugment section 'x2'"),
    (["--randaug", "augmix-m5"], "--randaug: a RandAugment config string starts with 'rand'"),
    (["--ema", "1.0"], "--ema must be a number in (0, 1), got 1.0"),
    (["--ema-warmup"], "--ema-warmup ramps up the decay of --ema, which is off"),
    (["--num-sample", "0"], "--num-sample must be an integer >= 1, got 0"),
    (["--class-weights", "balanced", "--balanced-sampler"], "use one"),
    (["--class-weights", "balanced", "--cutmix", "1"], "use --balanced-sampler"),
    (["--lr-base-batch", "0"], "--lr-base-batch must be an integer >= 1, got 0"),
    (["--sched", "multistep"], "--sched multistep needs --decay-milestones"),
    (["--decay-milestones", "5"], "--decay-milestones applies to --sched multistep, not 'cosine'"),
    (["--sched", "multistep", "--decay-milestones", "5", "3"], "--decay-milestones must be increasing"),
    (["--crop-scale", "0.5", "0.2"], "--crop-scale must be MIN MAX with 0 < MIN <= MAX <= 1"),
])
def test_each_flag_is_checked_where_it_enters(cli, tmp_path, extra, expected):
    r = cli(*BASE[:4], tmp_path / "nowhere", "--output", tmp_path / "o", *extra)
    assert r.code == 2 and r.err.startswith("vidzoo: error: ") and r.err.count("\n") == 1, r.err
    assert expected in r.err
    assert not (tmp_path / "o").exists()  # refused before anything was read or written


def test_flags_reach_the_config_and_the_predicate():
    cfg = config_of(*BASE, "--mixup", "0.8", "--cutmix", "1", "--mixup-prob", "0.5", "--mixup-switch-prob", "0.3",
                    "--mixup-mode", "pair", "--randaug", "rand-m7-n4-mstd0.5-inc1", "--reprob", "0.25", "--remode",
                    "const", "--num-sample", "2", "--ema", "0.99", "--ema-warmup", "--balanced-sampler",
                    "--lr-base-batch", "256", "--sched", "multistep", "--decay-milestones", "3", "6",
                    "--decay-rate", "0.5", "--tensorboard")
    assert (cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob, cfg.mixup_mode) == (0.8, 1.0, 0.5, 0.3, "pair")
    assert (cfg.randaug, cfg.reprob, cfg.remode, cfg.num_sample) == ("rand-m7-n4-mstd0.5-inc1", 0.25, "const", 2)
    assert (cfg.ema, cfg.ema_warmup, cfg.balanced_sampler, cfg.tensorboard) == (0.99, True, True, True)
    assert (cfg.lr_base_batch, cfg.sched, cfg.decay_milestones, cfg.decay_rate) == (256, "multistep", (3.0, 6.0), 0.5)
    assert cfg.peak_lr() == pytest.approx(5e-4 * 8 / 256) and cfg.peak_lr(world_size=4) == pytest.approx(5e-4 * 32 / 256)
    # every pixel augmentation makes the training clips change from epoch to epoch, and is named; none of them
    # (--augment none: each video's evaluation view): they do not
    assert not augments_pixels(TrainConfig(augment="none")) and pixel_augmentations(TrainConfig(augment="none")) == []
    still = dict(hflip=0.0, crop_scale=(1.0, 1.0))  # --augment random still draws the clip's position
    assert pixel_augmentations(TrainConfig(**still)) == ["--augment random: a random clip position"]
    for extra, named in ((dict(hflip=0.5), "--hflip 0.5"), (dict(crop_scale=(0.5, 1.0)), "--crop-scale 0.5 1"),
                         (dict(randaug="rand-m9-n2"), "--randaug rand-m9-n2"), (dict(reprob=0.1), "--reprob 0.1"),
                         (dict(mixup=0.2), "--mixup 0.2"), (dict(cutmix=1.0), "--cutmix 1"),
                         (dict(num_sample=2), "--num-sample 2")):
        what = pixel_augmentations(TrainConfig(**{**still, **extra}))
        assert len(what) == 2 and what[1].startswith(named + ":") and augments_pixels(TrainConfig(**{**still, **extra}))
        if "hflip" not in extra and "crop_scale" not in extra:  # --augment none refuses a clip augmentation beside it
            with pytest.raises(ValueError, match="--augment none"):
                TrainConfig(**{**still, **extra}, augment="none")


# ------------------------------------------------------------------------------ config files
def test_config_file_then_the_flags_given_override_it(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"model": "vivit_tubelet", "data": "d", "output": "o", "batch_size": 6, "lr": 1e-3,
                                "crop_scale": [0.5, 1.0], "model_overrides": {"depth": 2, "drop_path_rate": 0.1}}))
    cfg = config_of("train", "--config", path)
    assert (cfg.batch_size, cfg.lr, cfg.crop_scale, cfg.epochs) == (6, 1e-3, (0.5, 1.0), TrainConfig().epochs)
    # a flag given wins; a flag's argparse default (--batch-size 8) does not replace the file's value
    cfg = config_of("train", "--config", path, "--lr", "2e-3", "--set", "depth=3", "--epochs", "4")
    assert (cfg.batch_size, cfg.lr, cfg.epochs) == (6, 2e-3, 4)
    assert cfg.model_overrides == {"depth": 3, "drop_path_rate": 0.1}  # --set merges argument by argument


def test_yaml_config_and_the_layout_of_train_config_json(tmp_path):
    yaml_path = tmp_path / "cfg.yaml"
    yaml_path.write_text("model: vivit_tubelet\ndata: d\noutput: o\nmixup: 0.8\ncutmix: 1.0\ndecay_milestones: [3]\n"
                         "sched: multistep\n")
    cfg = config_of("train", "--config", yaml_path)
    assert (cfg.mixup, cfg.cutmix, cfg.decay_milestones) == (0.8, 1.0, (3.0,))
    # a run's train_config.json: its "config" is read, the record around it is not a config key
    run = tmp_path / "train_config.json"
    run.write_text(json.dumps({"config": config_dict(cfg), "classes": ["a"], "versions": {"torch": "x"}}))
    assert TrainConfig(**load_train_config(run)) == cfg


@pytest.mark.parametrize("content, expected", [
    ('{"mixup_alpha": 0.8, "batch-size": 4}', "unknown keys 'mixup_alpha' (closest: mixup_prob, mixup, mixup_mode), "
                                              "'batch-size' (closest: batch_size"),
    ('[1, 2]', "expected a mapping of TrainConfig fields"),
    ('{"config": {"epochs": 2}, "epochs": 3, "classes": ["a"]}', "'epochs' is outside \"config\"; put settings inside it"),
    ('{"epochs": 2,}', "is not valid JSON"),
    ('{"epochs": "ten", "model": "m", "data": "d", "output": "o"}', "--epochs must be an integer >= 1, got 'ten' "
                                                                   "(from --config"),
])
def test_config_file_errors_name_the_key(cli, tmp_path, content, expected):
    path = tmp_path / "c.json"
    path.write_text(content)
    r = cli("train", "--config", path)
    assert r.code == 2 and r.err.count("\n") == 1 and expected in r.err, r.err


def test_required_options_may_come_from_the_file_but_must_come(cli, tmp_path):
    r = cli("train", "--data", tmp_path)
    assert r.code == 2 and "the following arguments are required: --model, --output (or --resume" in r.err
    r = cli("train", "--config", tmp_path / "c.toml")
    assert r.code == 2 and "expected a .json / .yaml / .yml file" in r.err


# ----------------------------------------------------------------------------------- recipes
def test_recipes_list_with_sources_and_print_the_json_they_apply(cli):
    names = list_recipes()
    assert {"videomae_ft", "videomae_ft_ssv2", "timesformer_ft", "vivit_ft", "small_data_cpu"} <= set(names)
    r = cli("recipes")
    assert r.code == 0
    for name in names:
        assert name in r.out and read_recipe(name)["source"]["config"] in r.out
    r = cli("recipes", "videomae_ft")
    printed = json.loads(r.out)
    assert printed == read_recipe("videomae_ft")
    # every recipe is a valid config, and what --recipe applies is the printed JSON's config
    for name in names:
        cfg = config_of(*BASE, "--recipe", name)
        for key, value in read_recipe(name)["config"].items():
            if key in ("model", "data", "output"):  # given on the command line (BASE): the flag wins
                continue
            got = getattr(cfg, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, (name, key)
    r = cli("recipes", "videomae")
    assert r.code == 2 and "no recipe 'videomae'; closest: videomae_ft" in r.err


def test_videomae_recipe_is_the_papers():
    cfg = config_of(*BASE, "--recipe", "videomae_ft", "--batch-size", "6")
    assert (cfg.opt, cfg.lr, cfg.lr_base_batch, cfg.weight_decay, cfg.warmup_epochs, cfg.layer_decay) == \
        ("adamw", 5e-4, 256, 0.05, 5, 0.75)
    assert cfg.model_overrides == {"drop_path_rate": 0.1} and cfg.epochs == 75 and cfg.label_smoothing == 0.1
    assert (cfg.mixup, cfg.cutmix, cfg.randaug, cfg.reprob, cfg.num_sample) == \
        (0.8, 1.0, "rand-m7-n4-mstd0.5-inc1", 0.25, 2)
    assert cfg.peak_lr(world_size=64) == pytest.approx(5e-4 * 6 * 64 / 256)  # the upstream 64 GPUs x 6 videos
    ssv2 = config_of(*BASE, "--recipe", "videomae_ft_ssv2")
    assert (ssv2.epochs, ssv2.sampling, ssv2.hflip) == (30, "uniform", 0.0)
    ts = config_of(*BASE, "--recipe", "timesformer_ft")
    assert (ts.opt, ts.lr, ts.epochs, ts.sched, ts.decay_milestones) == ("sgd", 0.005, 15, "multistep", (11.0, 14.0))
    vv = config_of(*BASE, "--recipe", "vivit_ft")
    assert (vv.opt, vv.lr, vv.clip_grad, vv.epochs) == ("momentum", 0.1, 1.0, 30)


def test_precedence_recipe_then_file_then_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 9, "reprob": 0.5, "model_overrides": {"depth": 2}}))
    cfg = config_of(*BASE, "--recipe", "videomae_ft", "--config", path, "--reprob", "0.1")
    assert cfg.epochs == 9 and cfg.reprob == 0.1 and cfg.mixup == 0.8  # file over recipe, flag over file
    assert cfg.model_overrides == {"drop_path_rate": 0.1, "depth": 2}
    assert merge_train_kwargs({"a": 1, "model_overrides": {"x": 1}}, {"model_overrides": {"y": 2}}) == \
        {"a": 1, "model_overrides": {"x": 1, "y": 2}}
    with pytest.raises(UserError, match="no recipe 'nope'"):
        recipe_kwargs("nope")


# --------------------------------------------------------------- a saved config repeats a run
def test_saved_config_repeats_the_run(motion, tmp_path, cli):
    """Augmentation, mixing, repeated samples and the weight average on: the run's train_config.json,
    fed back with another --output, gives the same metrics and weights (CPU, workers 0)."""
    first = tmp_path / "first"
    r = cli(*train_argv(motion, first, *TINY_SET, epochs=2), "--randaug", "rand-m7-n2-mstd0.5-inc1", "--reprob",
            "0.5", "--mixup", "0.8", "--cutmix", "1.0", "--num-sample", "2", "--ema", "0.9", "--crop-scale", "0.5",
            "1", "--hflip", "0.5")
    assert r.code == 0, r.err
    saved = json.loads((first / "train_config.json").read_text())
    cfg = saved["config"]
    for key in ("weight_decay", "sampling", "img_size", "num_frames", "val_batch_size"):  # resolved at run time
        assert cfg[key] is not None, key
    assert cfg["weight_decay"] == 0.05 and cfg["val_batch_size"] == 4 and cfg["num_frames"] == 4
    assert set(saved["versions"]) == {"vidzoo", "torch", "timm"} and saved["versions"]["torch"] == torch.__version__
    assert cfg["data"] == str(motion.resolve())  # absolute: the file repeats the run from any folder
    again = tmp_path / "again"
    r = cli("train", "--config", first / "train_config.json", "--output", again, "--threads", 1)
    assert r.code == 0, r.err
    strip = lambda p: [{k: v for k, v in e.items() if k != "time_s"}  # noqa: E731
                       for e in json.loads((p / "metrics.json").read_text())]
    assert strip(first) == strip(again)
    # with mixing the incomplete last batch is dropped: 4 of the 6 videos, 2 samples each; no top-1 of mixed clips
    assert strip(first)[0]["train_num_samples"] == 8 and strip(first)[0]["train_top1"] is None
    a, b = load_file(first / "model" / "model.safetensors"), load_file(again / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the epochs may change too
    assert config_of("train", "--config", first / "train_config.json", "--epochs", "5", "--output", "x").epochs == 5


# ------------------------------------------------------------------------------- tensorboard
def test_tensorboard_scalars_read_back(motion, tmp_path, cli):
    from tensorboard.backend.event_processing import event_accumulator  # the dev extra installs tensorboard
    out = tmp_path / "tb"
    r = cli(*train_argv(motion, out, *TINY_SET, epochs=2, batch_size=2), "--tensorboard")
    assert r.code == 0, r.err
    acc = event_accumulator.EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    metrics = json.loads((out / "metrics.json").read_text())
    updates = [e.step for e in acc.Scalars("train/loss")]
    assert updates == list(range(1, 7))  # 6 videos / batch 2 = 3 updates per epoch
    assert [e.step for e in acc.Scalars("train/top1")] == updates and len(acc.Scalars("train/lr")) == 6
    val = acc.Scalars("epoch/val_top1")
    assert [(e.step, e.value) for e in val] == [(m["epoch"], pytest.approx(m["val_top1"])) for m in metrics]
    assert [e.value for e in acc.Scalars("epoch/train_loss")] == pytest.approx([m["train_loss"] for m in metrics])
    assert (out / "metrics.csv").is_file()  # the CSV stays


def test_tensorboard_missing_is_one_line_before_training(motion, tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as without the package
    r = cli(*train_argv(motion, tmp_path / "o", *TINY_SET), "--tensorboard")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "--tensorboard needs the tensorboard package: pip install 'vidzoo[tensorboard]'" in r.err
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_resume_from_the_folder_with_the_new_options(motion, tmp_path, cli):
    """A run with a recipe's options continues from its folder: the resolved train_config.json agrees
    with itself; --config / --recipe with --resume are refused; --tensorboard may change."""
    out = tmp_path / "run"
    r = cli(*train_argv(motion, out, *TINY_SET, epochs=1), "--ema", "0.9", "--num-sample", "2", "--reprob", "0.5")
    assert r.code == 0, r.err
    r = cli("train", "--output", out, "--resume", "--epochs", 2, "--tensorboard", "--no-progress", "--threads", 1)
    assert r.code == 0, r.err
    assert [m["epoch"] for m in json.loads((out / "metrics.json").read_text())] == [1, 2]
    r = cli("train", "--output", out, "--resume", "--epochs", 3, "--recipe", "small_data_cpu")
    assert r.code == 2 and "--config / --recipe start a run; --resume continues" in r.err
    r = cli("train", "--output", out, "--resume", "--epochs", 3, "--ema", "0.5")
    assert r.code == 2 and "--ema 0.5 (the run: 0.9)" in r.err


def test_overwrite_removes_the_runs_event_files(motion, tmp_path, cli):
    out = tmp_path / "tb"
    assert cli(*train_argv(motion, out, *TINY_SET), "--tensorboard").code == 0
    first = sorted((out / "tensorboard").iterdir())
    (out / "tensorboard" / "notes.txt").write_text("mine")  # not the run's: it stays
    assert cli(*train_argv(motion, out, *TINY_SET), "--tensorboard", "--overwrite").code == 0
    now = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert "notes.txt" in now and not set(p.name for p in first) & set(now)
    assert len([n for n in now if n.startswith("events.out.tfevents.")]) == 1
