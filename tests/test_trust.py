"""Trustworthy loading and arguments.

Tags on the command line mean weights; a model without weights is refused by eval/predict;
every hostile flag or model argument is one line, exit 2; a config.json is data, never a
pointer; saves are atomic; provenance says what a model is; the Hub offline fails fast through
the real huggingface_hub path (an unreachable HF_ENDPOINT / HF_HUB_OFFLINE=1, fresh cache).
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

import vidzoo
from helpers import REPO, TINY_SET, run_python
from vidzoo._hub import ModelConfigError
from vidzoo.cli import main

TINY_ARGS = dict(embed_dim=32, depth=1, num_heads=2, patch_size=8, num_frames=4, img_size=16)
TINY = TINY_SET
TAGGED = "timesformer_divided_base_patch16_224.k400"  # upstream: facebook/timesformer-base-finetuned-k400
UPSTREAM = "facebook/timesformer-base-finetuned-k400"


def train_args(model, data, out, *extra):
    return ["train", "--model", model, "--data", data, "--output", out, "--epochs", 1, "--batch-size", 2,
            "--num-frames", 4, "--img-size", 16, "--sampling", "uniform", "--hflip", 0, "--no-progress", *extra]


def one_line(code: int, err: str) -> str:
    assert code == 2, (code, err[-3000:])
    assert err.startswith("vidzoo: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "Retrying in" not in err
    return err


@pytest.fixture(scope="module")
def scratch_run(motion, tmp_path_factory):
    """A tagged architecture trained from scratch (--no-pretrained), in a folder whose name has a dot."""
    out = tmp_path_factory.mktemp("runs") / "scratch.v1"
    assert main([str(a) for a in train_args(TAGGED, motion, out, "--no-pretrained", *TINY)]) == 0
    return out


# ------------------------------------------------------------------------- without a Hub
# huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and its cache paths when it is imported, so each
# Hub state is a fresh interpreter; it runs every case of that state (the command through
# vidzoo.cli.main, push_to_hub through the API) and reports each one's exit status and stderr.
SCENARIOS = """
import contextlib, io, json, sys
import vidzoo
from vidzoo.cli import main
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        if argv == "push_to_hub":
            m = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, embed_dim=32, depth=1,
                                    num_heads=2, patch_size=8, num_frames=4, img_size=16)
            try:
                vidzoo.push_to_hub(m, "me/model", token="hf_x")
                code = 0
            except vidzoo.HubUploadError as e:
                code = 1
                print(e, file=sys.stderr)
        else:
            code = main(argv)
    results[name] = {"code": code, "err": err.getvalue()}
print("RESULT " + json.dumps(results))
"""


def _scenarios(cases: dict, env: dict[str, str]) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_ENDPOINT="http://127.0.0.1:9",
                HF_HUB_DISABLE_TELEMETRY="1", **env)
    cases = {k: [str(a) for a in v] if isinstance(v, list) else v for k, v in cases.items()}
    r = run_python(SCENARIOS, json.dumps(cases), env=full)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    assert "Retrying in" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    return json.loads(lines[0][len("RESULT "):])


@pytest.fixture(scope="module")
def hub_config_dir(tmp_path_factory):
    """A saved model whose config.json names an hf-hub: model as its architecture."""
    d = vidzoo.save_pretrained(vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, **TINY_ARGS),
                               tmp_path_factory.mktemp("pointer") / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["architecture"] = "hf-hub:org/repo"
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module")
def unreachable(motion, hub_config_dir, tmp_path_factory):
    """Each case with HF_ENDPOINT unreachable and a fresh Hub cache."""
    tmp = tmp_path_factory.mktemp("unreachable")
    video = motion / "val" / "left" / "0000.mp4"
    small = [*TINY, "--num-frames", 4, "--img-size", 16]  # what fails is the download, not the size
    cases = {"predict": ["predict", "--model", TAGGED, video, *small],
             "eval": ["eval", "--model", "timesformer.k400", "--data", motion, *small],
             "train": train_args(TAGGED, motion, tmp / "o", *TINY),
             "hf_hub_model": ["predict", "--model", "hf-hub:me/never-pushed", video],
             "config_pointer": ["predict", "--model", hub_config_dir, "x.mp4"],
             "push": "push_to_hub"}
    return _scenarios(cases, {"HF_HUB_CACHE": str(tmp / "cache"), "HF_HOME": str(tmp / "home")})


@pytest.fixture(scope="module")
def offline(motion, tmp_path_factory):
    """Each case with HF_HUB_OFFLINE=1 and a Hub cache that holds only hf-hub:org/giant, a tiny saved model whose
    config.json names a giant one."""
    tmp = tmp_path_factory.mktemp("offline")
    d = _tiny_folder_naming_a_giant(tmp)
    repo = tmp / "cache" / "models--org--giant"
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    for f in d.iterdir():
        (repo / "snapshots" / ("0" * 40) / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    cases = {"predict": ["predict", "--model", TAGGED, motion / "val" / "left" / "0000.mp4", *TINY, "--num-frames", 4,
                         "--img-size", 16],
             "giant": ["predict", "--model", "hf-hub:org/giant", tmp / "v.mp4"],
             "push": "push_to_hub"}
    return _scenarios(cases, {"HF_HUB_CACHE": str(tmp / "cache"), "HF_HOME": str(tmp / "home"),
                              "HF_HUB_OFFLINE": "1"})


# ---------------------------------------------------------------------------- tags mean weights
def test_tag_on_cli_loads_weights_and_fails_fast_offline(unreachable, offline):
    """Without --pretrained a tag is a request for its weights: offline that is one line naming the upstream
    repo and a route that works, after no retry storm (huggingface_hub alone retries for ~25 s)."""
    for command in ("predict", "eval", "train"):
        err = one_line(unreachable[command]["code"], unreachable[command]["err"])
        assert UPSTREAM in err and "could not be reached" in err and f"hf download {UPSTREAM} pytorch_model.bin" in err
        assert "vidzoo convert /path/to/pytorch_model.bin DIR --model" in err
        assert ("--weights" in err) == (command != "train")  # train has no --weights flag
    err = one_line(offline["predict"]["code"], offline["predict"]["err"])
    assert "HF_HUB_OFFLINE=1" in err and UPSTREAM in err
    err = one_line(unreachable["hf_hub_model"]["code"], unreachable["hf_hub_model"]["err"])
    assert "hf download me/never-pushed --local-dir DIR" in err and "--model DIR" in err


def test_eval_predict_refuse_models_without_weights(motion, capsys):
    video = motion / "val" / "left" / "0000.mp4"
    for args in (["predict", "--model", "timesformer", str(video)],
                 ["predict", "--model", TAGGED, "--no-pretrained", str(video)],
                 ["eval", "--model", "vivit_joint_tiny_patch16x2_224", "--data", str(motion)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "has no weights" in err and "random initialisation" in err, err
    assert "timesformer_divided_base_patch16_224.k400" in err or "no pretrained tags" in err


def test_api_keeps_timm_semantics():
    m = vidzoo.create_model(f"{TAGGED}", **TINY_ARGS)  # pretrained=False by default: no download, random
    assert m.pretrained_cfg["provenance"] == {"kind": "random_init", "architecture": TAGGED.split(".")[0]}


def test_weights_flag_loads_a_local_upstream_file(motion, tmp_path, cli):
    """--weights FILE: the tag's upstream file converted exactly as the Hub download would be (HF parity)."""
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.TimesformerConfig(image_size=16, num_frames=4, patch_size=8, hidden_size=32,
                                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                                            num_labels=3, id2label={0: "a", 1: "b", 2: "c"})
    hf = transformers.TimesformerForVideoClassification(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    video = motion / "val" / "left" / "0000.mp4"
    args = ["predict", "--model", TAGGED, "--weights", tmp_path / "hf" / "model.safetensors", video, "--json",
            "--num-frames", 4, "--img-size", 16, "--set", "embed_dim=32", "depth=1", "num_heads=2", "patch_size=8"]
    # The tag has 400 classes, the file 3: the head would be random, so predict refuses.
    r = cli(*args)
    err = one_line(r.code, r.err)
    assert "head would be random" in err and "num_classes" in err
    r = cli(*args, "num_classes=3")
    assert r.code == 0, r.err
    top = json.loads(r.out)[0]["top"]
    assert sorted(t["label"] for t in top) == ["a", "b", "c"]
    # The same file through the tag's converter, in Python, has the HF model's logits.
    m = vidzoo.create_model(TAGGED, pretrained=True, num_classes=3, pretrained_cfg_overlay=dict(
        file=str(tmp_path / "hf" / "model.safetensors")), **TINY_ARGS).eval()
    x = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        assert torch.allclose(m(x), hf(pixel_values=x.transpose(1, 2)).logits, atol=1e-5)


# ------------------------------------------------------------------------- hostile arguments
HOSTILE_TRAIN = [("--clip-grad", "-1", "--clip-grad"), ("--clip-grad", "0", "--clip-grad"),
                 ("--min-lr", "-5", "--min-lr"), ("--momentum", "-3", "--momentum"), ("--momentum", "1", "--momentum"),
                 ("--frame-stride", "0", "--frame-stride"), ("--val-batch-size", "0", "--val-batch-size"),
                 ("--lr", "0", "--lr"), ("--lr", "nan", "--lr"), ("--lr", "inf", "--lr"),
                 ("--warmup-epochs", "-1", "--warmup-epochs"), ("--label-smoothing", "1", "--label-smoothing"),
                 ("--weight-decay", "-0.1", "--weight-decay"), ("--epochs", "0", "--epochs"),
                 ("--batch-size", "0", "--batch-size"), ("--accum-steps", "0", "--accum-steps"),
                 ("--workers", "-1", "--workers"), ("--hflip", "2", "--hflip"), ("--num-frames", "0", "--num-frames"),
                 ("--img-size", "-3", "--img-size"), ("--val-split", "1.5", "--val-split")]
HOSTILE_SET = [("depth=-1", "depth"), ("depth=1e7", "depth"), ("depth=10000000", "depth"), ("depth=one", "depth"),
               ("num_classes=-5", "num_classes"), ("embed_dim=0", "embed_dim"), ("num_heads=0", "num_heads"),
               ("num_heads=5", "num_heads"), ("drop_path_rate=2", "drop_path_rate"), ("img_size=(0, 0)", "img_size"),
               ("patch_size=0", "patch_size"), ("mlp_ratio=-1", "mlp_ratio"), ("norm_eps=0", "norm_eps"),
               ("act_layer=relu", "act_layer"), ("attention=nope", "attention variant 'nope'"),
               ("in_chans=0", "in_chans"), ("tubelet_size=0", "tubelet_size"), ("qkv_bias=maybe", "qkv_bias"),
               ("embed_dim=8192", "embed_dim"), ("num_frames=4096", "tokens"), ("nonsense=1", "nonsense")]


def test_hostile_values_are_one_line_errors(motion, trained_run, tmp_path, capsys):
    """Every flag with a domain and every model argument: one line naming it, exit 2, no traceback."""
    def error(*args):
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and err.count("\n") == 1, err
        return err

    for flag, value, name in HOSTILE_TRAIN:
        msg = error(*train_args("vivit_joint_tiny_patch16x2_224", motion, tmp_path / "o", *TINY), flag, value)
        assert name in msg, (flag, value, msg)
    assert not (tmp_path / "o").exists()  # refused before anything was written
    for item, name in HOSTILE_SET:
        assert name in error("info", "vivit_joint_tiny_patch16x2_224", "--set", item), item
        if not item.startswith(("num_frames", "img_size")):  # train_args gives --num-frames / --img-size
            assert name in error(*train_args("vivit_joint_tiny_patch16x2_224", motion, tmp_path / "o"), "--set",
                                 item)
    video = motion / "val" / "left" / "0000.mp4"
    for args, name in [(["--top-k", "0"], "--top-k"), (["--frame-stride", "0"], "--frame-stride"),
                       (["--num-frames", "-1"], "--num-frames")]:
        assert name in error("predict", "--model", TAGGED, video, *args)
    for args, name in [(["--batch-size", "0"], "--batch-size"), (["--workers", "-2"], "--workers"),
                       (["--num-samples", "-1"], "--num-samples")]:
        assert name in error("eval", "--model", TAGGED, "--data", motion, *args)

    # Outputs that were written through, into the data or over other outputs, and inputs that were trusted: each
    # is one line before anything is written (the tests further down check each in depth).
    import numpy as np
    d, mismatched = _trained_folder_with_bias(tmp_path, 0.0), _trained_folder_with_another_head(tmp_path)
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "afile").write_text("x")
    npz = tmp_path / "labels.npz"
    np.savez(npz, train_images=np.zeros((2, 4, 16, 16), np.uint8), train_labels=np.array([0, -1]))
    for args, name in [(["export", "--model", d, "--output", tmp_path / "dir.onnx"], "it is a directory"),
                       (["export", "--model", d, "--output", tmp_path / "afile" / "m.onnx"], "parent of it is a"),
                       (["predict", "--model", d, video, "--timeline", "--output", tmp_path / "afile"], "a file is in"),
                       (["predict", "--model", d, video, "--timeline", "--output", video.parent / "tl"], "directly in"),
                       (["eval", "--model", d, "--data", motion, "--output", motion / "val" / "left" / "r"], "inside"),
                       (["convert", d, tmp_path / "afile"], "a file is in the way"),
                       (["predict", "--model", mismatched, video], "but its config.json has 5 classes"),
                       (["eval", "--model", mismatched, "--data", motion], "but its config.json has 5 classes"),
                       (train_args("vivit_organmnist3d", npz, tmp_path / "o", *TINY), "train_labels[1] is -1")]:
        assert name in error(*args), (args, name)
    assert not (video.parent / "tl").exists() and not (motion / "val" / "left" / "r").exists()

    # Runs and folders vidzoo did not write, or that must stay the same run (tests/test_runs.py in depth).
    run, model_only, demo = tmp_path / "run", tmp_path / "model_only", tmp_path / "demo"
    shutil.copytree(trained_run, run)
    shutil.copytree(trained_run / "model", model_only / "model")
    (demo / "data").mkdir(parents=True)
    for args, name in [(["train", "--output", run, "--resume", "--seed", 3], "--seed 3 (the run: 0)"),
                       (["train", "--output", run, "--resume", "--opt", "sgd"], "--opt sgd (the run: adamw)"),
                       (["train", "--output", run, "--resume", "--epochs", 1], "cannot shorten it"),
                       (train_args("vivit_joint_tiny_patch16x2_224", motion, model_only, *TINY), "holds a trained model"),
                       (["demo", "--output", demo, "--overwrite"], "which vidzoo demo did not write")]:
        assert name in error(*args), (args, name)
    assert (demo / "data").is_dir() and (model_only / "model" / "model.safetensors").is_file()


def test_hostile_value_messages(motion, tmp_path, cli):
    r = cli(*train_args("vivit_joint_tiny_patch16x2_224", motion, tmp_path / "o"), "--clip-grad", "-1")
    assert one_line(r.code, r.err).strip() == "vidzoo: error: --clip-grad must be a number > 0, got -1.0"
    r = cli("info", "vivit_joint_tiny_patch16x2_224", "--set", "depth=one")
    err = one_line(r.code, r.err)
    assert "depth must be an integer" in err and "'one'" in err


@pytest.mark.parametrize("kwargs,name", [(dict(num_classes=-5), "num_classes"), (dict(depth=-1), "depth"),
                                         (dict(embed_dim=0), "embed_dim"), (dict(num_heads=0), "num_heads"),
                                         (dict(depth=1e7), "depth"), (dict(num_heads=7), "num_heads"),
                                         (dict(embed_dim=8192, num_heads=32), "embed_dim"),
                                         (dict(embed_dim=4096, depth=64, num_heads=32), "parameters"),
                                         (dict(pretrained_cfg_overlay=dict(crop_pct=1e-6)), "crop_pct")])
def test_api_model_arguments_raise_value_error(kwargs, name):
    with torch.device("meta"), pytest.raises(ValueError, match=name):  # meta: a missed bound allocates nothing
        vidzoo.create_model("vivit_joint_tiny_patch16x2_224", **kwargs)


def test_train_config_rejects_bad_values_in_the_api():
    from vidzoo.engine import TrainConfig
    for kw in (dict(clip_grad=-1.0), dict(clip_grad=0.0), dict(momentum=-3), dict(min_lr=-5), dict(frame_stride=0),
               dict(val_batch_size=0), dict(crop_scale=(0.5, 0.1))):
        with pytest.raises(ValueError, match=next(iter(kw)).replace("_", "[-_]")):
            TrainConfig(**kw)


# ----------------------------------------------------------------- config.json is data, not a pointer
def _saved(tmp_path) -> Path:
    model = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, **TINY_ARGS)
    return vidzoo.save_pretrained(model, tmp_path / "m")


@pytest.mark.parametrize("edit,field", [
    (lambda c, d: c.update(architecture="hf-hub:org/repo"), "architecture"),
    (lambda c, d: c.update(architecture=f"local-dir:{d}"), "architecture"),
    (lambda c, d: c.update(architecture="vivit_joint_tiny_patch16x2_224.k400"), "architecture"),
    (lambda c, d: c.update(architecture="vivit_tubelet"), "architecture"),
    (lambda c, d: c.update(architecture=["x"]), "architecture"),
    (lambda c, d: c.pop("architecture"), "architecture"),
    (lambda c, d: c["model_args"].update(depth=-1), "model_args.depth"),
    (lambda c, d: c["model_args"].update(num_classes=-5), "model_args.num_classes"),
    (lambda c, d: c["model_args"].update(embed_dim="wide"), "model_args.embed_dim"),
    (lambda c, d: c["model_args"].update(depth=10 ** 7), "model_args.depth"),
    (lambda c, d: c.update(model_args=[1, 2]), "model_args"),
    (lambda c, d: c.update(num_classes=-1), "num_classes"),
    (lambda c, d: c.update(num_classes=5), "num_classes"),
    (lambda c, d: c["pretrained_cfg"].update(label_names=[1, 2]), "pretrained_cfg.label_names"),
    (lambda c, d: c["pretrained_cfg"].update(label_names=["a"]), "pretrained_cfg.label_names"),
    (lambda c, d: c["pretrained_cfg"].update(file="/etc/passwd"), "pretrained_cfg.file"),
    (lambda c, d: c["pretrained_cfg"].update(hf_hub_id="org/other"), "pretrained_cfg.hf_hub_id"),
    (lambda c, d: c["pretrained_cfg"].update(mean="grey"), "pretrained_cfg.mean"),
    (lambda c, d: c["pretrained_cfg"].update(surprise=1), "pretrained_cfg.surprise"),
    # sizes are bounded before anything is allocated
    (lambda c, d: c["model_args"].update(embed_dim=8192), "model_args.embed_dim"),
    (lambda c, d: c["pretrained_cfg"].update(crop_pct=1e-6), "pretrained_cfg.crop_pct"),
    (lambda c, d: c["pretrained_cfg"].update(input_size=[3, 10 ** 9, 16, 16]), "pretrained_cfg.input_size"),
    (lambda c, d: c["pretrained_cfg"].update(test_num_clips=10 ** 6), "pretrained_cfg.test_num_clips"),
    (lambda c, d: c["pretrained_cfg"].update(test_num_crops=7), "pretrained_cfg.test_num_crops"),
    # one class count: config, pretrained cfg and (below, test_safety) weights agree
    (lambda c, d: c["pretrained_cfg"].update(num_classes=5), "pretrained_cfg.num_classes"),
])
def test_hostile_config_json(tmp_path, edit, field):
    d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg, d)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelConfigError) as e:
        vidzoo.create_model(f"local-dir:{d}")
    msg = str(e.value)
    assert str(d / "config.json") in msg and field in msg and "\n" not in msg, msg


def test_size_bounds_admit_vit_g_at_384px_64_frames():
    """The bounds are generous: a ViT-g (V-JEPA 2 giant) clip model at 384 px, 64 frames builds (on the meta
    device: no memory), and the pre-allocation estimate is within a few percent of its real size."""
    from vidzoo._validation import check_crop_pct, estimate_params
    with torch.device("meta"):
        m = vidzoo.create_model("vivit_joint_base_patch16x2_224", embed_dim=1408, depth=40, num_heads=22,
                                mlp_ratio=48 / 11, num_frames=64, img_size=384, num_classes=400)
    real = sum(p.numel() for p in m.parameters())
    assert 0.95e9 < real < 1.1e9 and abs(estimate_params(m.model_args) / real - 1) < 0.05
    check_crop_pct(0.875, 384)


def _tiny_folder_naming_a_giant(tmp_path) -> Path:
    """A saved tiny model whose config.json says embed_dim 2048 (within the bounds: ~600M parameters)."""
    d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_args"].update(embed_dim=2048, num_heads=16)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_config_json_naming_a_giant_is_refused_before_allocation(tmp_path, capsys, monkeypatch):
    """config.json and model.safetensors disagree by orders of magnitude: refused from the file headers, before the
    model is built (no VideoTransformer is constructed), one line through the CLI."""
    from vidzoo.models.video_transformer import VideoTransformer
    d = _tiny_folder_naming_a_giant(tmp_path)
    built = []
    real = VideoTransformer.__init__
    monkeypatch.setattr(VideoTransformer, "__init__", lambda self, *a, **k: built.append(k) or real(self, *a, **k))
    with pytest.raises(vidzoo.CheckpointMismatchError, match=r"~\d+\.\dM parameters but the weights .* hold 0\.\d+M"):
        vidzoo.create_model(f"local-dir:{d}")
    assert built == []
    assert main(["predict", "--model", str(d), str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing was built" in err and built == []


def test_hub_config_naming_a_giant_is_refused_before_allocation(offline):
    """The same through hf-hub: (a seeded cache, HF_HUB_OFFLINE=1): the weights' header is read before the build."""
    err = one_line(offline["giant"]["code"], offline["giant"]["err"])
    assert "parameters but the weights hf-hub:org/giant" in err and "nothing was built" in err


def _trained_folder_with_another_head(tmp_path) -> Path:
    """A trained 2-class model folder whose config.json was edited to say 5 classes everywhere (its weights keep
    the 2-class classifier)."""
    from vidzoo.engine.model_io import save_model_folder
    model = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, **TINY_ARGS)
    d = save_model_folder(model, tmp_path / "m", run_config={"data": "clips/", "epochs": 1}, classes=["l", "r"])
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_classes"] = cfg["model_args"]["num_classes"] = cfg["pretrained_cfg"]["num_classes"] = 5
    cfg["pretrained_cfg"]["label_names"] = list("abcde")
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_config_and_weights_disagreeing_on_classes_is_refused_everywhere(motion, tmp_path, capsys):
    """A head that would be random (config.json: 5 classes, weights: 2) is refused by create_model and by every
    command (exit 2, one line naming both counts), instead of predictions that change on every run; asking for
    another class count (fine-tuning) still starts a fresh head, which predict then refuses as --weights does."""
    d = _trained_folder_with_another_head(tmp_path)
    with pytest.raises(vidzoo.CheckpointMismatchError, match=r"a classifier of 2 classes, but its config.json has 5"):
        vidzoo.create_model(f"local-dir:{d}")
    video = motion / "val" / "left" / "0000.mp4"
    for args in (["predict", "--model", d, video], ["predict", "--model", d, video, "--timeline", "--output",
                                                     tmp_path / "tl"],
                 ["eval", "--model", d, "--data", motion, "--output", tmp_path / "ev"],
                 ["export", "--model", d, "--output", tmp_path / "m.onnx"]):
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "2 classes" in err and "5 classes" in err and "random" in err, err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "ev" / "metrics.json").exists()
    m = vidzoo.create_model(f"local-dir:{d}", num_classes=7)  # asked for: a new head to fine-tune
    assert m.num_classes == 7 and m.pretrained_cfg["provenance"]["head"] == "fresh"
    assert main(["predict", "--model", str(d), str(video), "--set", "num_classes=7"]) == 2
    assert "head would be random" in capsys.readouterr().err


def test_convert_refuses_a_head_that_would_be_random(tmp_path, capsys):
    """convert with a tag of 400 classes and a file holding 3: refused (a random head is not the converted
    model); asking for a class count converts with a fresh head, recorded as such."""
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.TimesformerConfig(image_size=16, num_frames=4, patch_size=8, hidden_size=32,
                                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                                            num_labels=3)
    transformers.TimesformerForVideoClassification(hf_cfg).save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "config.json").unlink()  # a checkpoint file alone: the tag's cfg says what it holds
    capsys.readouterr()  # transformers' own progress output
    weights = tmp_path / "hf" / "model.safetensors"
    tiny = ["--set", "embed_dim=32", "depth=1", "num_heads=2", "patch_size=8", "num_frames=4", "img_size=16"]
    assert main(["convert", str(weights), str(tmp_path / "out"), "--model", TAGGED, *tiny]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 classes" in err and "400 classes" in err, err
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert main(["convert", str(weights), str(tmp_path / "out"), "--model", TAGGED, *tiny, "num_classes=5"]) == 0
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["num_classes"] == 5 and cfg["pretrained_cfg"]["provenance"]["head"] == "fresh"


def test_config_json_not_json_names_the_file(tmp_path, capsys):
    d = _saved(tmp_path)
    (d / "config.json").write_text('{"architecture": "vivit_joint_tin')  # a save cut short
    with pytest.raises(ModelConfigError, match="cannot be read as JSON"):
        vidzoo.create_model(f"local-dir:{d}")
    (d / "config.json").write_text("[1, 2]")
    assert main(["info", str(d)]) == 2
    err = capsys.readouterr().err
    assert str(d / "config.json") in err and "expected a JSON object" in err and err.count("\n") == 1


def test_config_pointing_at_the_hub_makes_no_request(unreachable):
    """The redirection is refused before any network I/O (the endpoint is unreachable: a request would be slow and
    end in a HubDownloadError, not the config error)."""
    err = one_line(unreachable["config_pointer"]["code"], unreachable["config_pointer"]["err"])
    assert "architecture" in err and "config.json" in err and "hf-hub:org/repo" in err


# --------------------------------------------------------------------------- atomic writes
def test_save_pretrained_is_atomic_and_keeps_permissions(tmp_path, monkeypatch):
    import vidzoo._hub
    d = _saved(tmp_path)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    umask = os.umask(0)
    os.umask(umask)
    for p in d.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(vidzoo._hub, "save_file", crash)  # safetensors' writer, as bound in _hub
    model = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, **TINY_ARGS)
    with pytest.raises(KeyboardInterrupt):
        vidzoo.save_pretrained(model, d)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # old files intact, no temp file left


# ----------------------------------------------------------------------------- provenance
def test_trained_from_scratch_provenance(scratch_run, capsys):
    cfg = json.loads((scratch_run / "model" / "config.json").read_text())["pretrained_cfg"]
    assert cfg["tag"] == "" and cfg["origin_url"] is None and cfg["license"] is None
    assert "dataset" not in cfg["extra"]
    prov = cfg["provenance"]
    assert prov["kind"] == "trained" and prov["num_classes"] == 2 and prov["epochs"] == 1 and prov["data"]
    assert "huggingface.co" not in json.dumps(cfg) and "Kinetics" not in json.dumps(cfg)
    assert main(["info", str(scratch_run)]) == 0
    out = capsys.readouterr().out
    assert "trained from scratch by vidzoo on" in out and "2 classes, 1 epochs" in out
    from vidzoo._hub import generate_model_card
    card = generate_model_card(vidzoo.create_model(f"local-dir:{scratch_run / 'model'}"))
    assert "license: other" in card and "Kinetics" not in card and "trained from scratch" in card


def test_fine_tuned_provenance_and_model_paths_on_train(scratch_run, motion, tmp_path, capsys):
    """Converted tag weights -> fine-tune: 'fine-tuned from arch.tag' with that tag's licence; train --model takes
    model folders, run folders (with a dot in the name) and checkpoints, like eval/predict."""
    src = vidzoo.create_model(TAGGED, num_classes=2, **TINY_ARGS)
    torch.save(src.state_dict(), tmp_path / "weights.pth")
    sets = [f"{k}={v}" for k, v in dict(TINY_ARGS, num_classes=2).items()]
    assert main(["convert", str(tmp_path / "weights.pth"), str(tmp_path / "conv"), "--model", TAGGED, "--set",
                 *sets]) == 0
    capsys.readouterr()
    out = tmp_path / "ft"
    assert main([str(a) for a in train_args(tmp_path / "conv", motion, out)]) == 0
    cfg = json.loads((out / "model" / "config.json").read_text())["pretrained_cfg"]
    prov = cfg["provenance"]
    assert prov["kind"] == "fine_tuned" and prov["started_from"] == TAGGED and prov["license"] == "cc-by-nc-4.0"
    assert cfg["license"] == "cc-by-nc-4.0" and cfg["origin_url"] is None and cfg["tag"] == ""
    for model in (scratch_run, scratch_run / "checkpoints" / "best.pth"):
        assert main([str(a) for a in train_args(model, motion, tmp_path / f"from_{Path(model).name}")]) == 0
    capsys.readouterr()
    assert main([str(a) for a in train_args(tmp_path / "no" / "run.v2", motion, tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Unknown model" not in err
    assert main([str(a) for a in train_args(scratch_run, motion, tmp_path / "y", "--no-pretrained")]) == 2
    assert "--no-pretrained applies to registry names" in capsys.readouterr().err


def test_unreadable_model_folder_falls_back_to_checkpoint(scratch_run, motion, tmp_path, cli):
    run = tmp_path / "copy"
    shutil.copytree(scratch_run, run)
    (run / "model" / "config.json").write_text('{"architecture": ')
    r = cli("predict", "--model", run, motion / "val" / "left" / "0000.mp4")
    assert r.code == 0, r.err
    assert "is unreadable" in r.err and str(run / "checkpoints" / "best.pth") in r.err
    assert str(run / "model" / "config.json") in r.err


# ----------------------------------------------------------------------- unsafe / foreign files
class _Payload:
    pass


class _Exploit:
    """A pickle that would run ``call(*args)`` when loaded without ``weights_only=True``."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("call,blocked", [
    (os.system, "os.system"),
    (eval, "builtins.eval"),
    (_Payload, "_Payload"),
])
def test_malicious_pickle_is_refused_naming_the_global(tmp_path, capsys, call, blocked):
    """A real exploit pickle: refused before it runs, the message names the global torch blocked and never repeats
    torch's advice to reload with weights_only=False (the API, and a checkpoint given to --model)."""
    marker = tmp_path / "pwned"
    payload = {os.system: _Exploit(os.system, f"touch {marker}"),
               eval: _Exploit(eval, f"open({str(marker)!r}, 'w').close()"), _Payload: _Payload()}[call]
    path = tmp_path / "evil.pth"
    torch.save({"pos_embed": torch.zeros(1), "payload": payload}, path)
    assert not marker.exists()
    with pytest.raises(vidzoo.CorruptCheckpointError) as e:
        vidzoo.create_model("vivit_joint_tiny_patch16x2_224", pretrained=True, pretrained_cfg=dict(file=str(path)))
    msgs = [str(e.value)]
    assert main(["predict", "--model", str(path), str(tmp_path / "v.mp4")]) == 2
    msgs.append(capsys.readouterr().err)
    for msg in msgs:
        assert blocked in msg and "weights_only=False" not in msg and "add_safe_globals" not in msg, msg
        assert "\n" not in msg.rstrip("\n")
    assert not marker.exists()  # the payload never ran


def test_text_file_is_not_a_vidzoo_checkpoint(motion, tmp_path, capsys):
    text = tmp_path / "notes.pth"
    text.write_text("just some notes\n")
    assert main(["eval", "--model", str(text), "--data", str(motion)]) == 2
    err = capsys.readouterr().err
    assert "is not a vidzoo checkpoint" in err and "KeyError" not in err
    assert main([str(a) for a in train_args("vivit_joint_tiny_patch16x2_224", motion, tmp_path / "r", *TINY)]
                + ["--resume", str(text)]) == 2
    err = capsys.readouterr().err
    assert "is not a vidzoo checkpoint" in err and "KeyError" not in err, err


# ------------------------------------------------------------------------------- npz data
@pytest.mark.parametrize("labels,match", [([0, 1, -1, 0], "train_labels[2] is -1"),
                                          ([0, 1, 1.5, 0], "train_labels[2] is 1.5"),
                                          ([0, 1, 999_999_999, 0], "train_labels[2] is 999999999")])
def test_hostile_npz_labels_are_one_line_errors(tmp_path, capsys, labels, match):
    """Labels that are not class indices: one line, exit 2, before training (not a traceback mid-training for a
    negative one, not a truncated float, not 10^9 class names for a huge one)."""
    import numpy as np
    path = tmp_path / "organ.npz"
    vols = np.zeros((4, 4, 16, 16), np.uint8)
    np.savez(path, train_images=vols, train_labels=np.array(labels), val_images=vols, val_labels=np.array([0, 1, 0, 1]))
    assert main([str(a) for a in train_args("vivit_organmnist3d", path, tmp_path / "o", *TINY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and str(path) in err, err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------- every number finite
def _trained_folder_with_bias(tmp_path, value: float) -> Path:
    """A trained-looking 2-class model whose classifier bias is ``value`` (NaN / inf): every logit is non-finite."""
    from vidzoo.engine.model_io import save_model_folder
    model = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, **TINY_ARGS)
    with torch.no_grad():
        model.head.bias.fill_(value)
    return save_model_folder(model, tmp_path / f"bias_{value}", run_config={"data": "clips/", "epochs": 1},
                             classes=["left", "right"])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_logits_stop_with_one_line(motion, tmp_path, capsys, value):
    """NaN / inf logits: predict (plain, --json, --timeline) and eval stop with exit 2 and one line naming the model
    and the video, instead of "prob": NaN (invalid JSON) or an eval report of some top-1 with exit 0."""
    d = _trained_folder_with_bias(tmp_path, value)
    video = motion / "val" / "left" / "0000.mp4"
    for args in (["predict", "--model", d, video], ["predict", "--model", d, video, "--json"],
                 ["predict", "--model", d, video, "--timeline", "--output", tmp_path / "tl", "--window", "4f"],
                 ["eval", "--model", d, "--data", motion, "--split", "val", "--output", tmp_path / "ev"]):
        assert main([str(a) for a in args]) == 2, args
        cap = capsys.readouterr()
        assert cap.out == "" and cap.err.count("\n") == 1 and "non-finite logits" in cap.err, cap
        assert str(d / "model.safetensors") in cap.err and "/val/" in cap.err and ".mp4" in cap.err, cap.err
    assert not (tmp_path / "ev" / "metrics.json").exists() and not list((tmp_path / "tl").glob("*.csv"))


def test_json_written_by_vidzoo_is_valid_json(tmp_path):
    """Non-finite floats never reach a JSON file: null in run files, a one-line refusal in config.json."""
    from vidzoo.engine.checkpoint import atomic_write_json
    atomic_write_json({"loss": float("nan"), "lr": [float("inf"), 1.0]}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail) == {"loss": None,
                                                                                       "lr": [None, 1.0]}
    model = vidzoo.create_model("vivit_joint_tiny_patch16x2_224", num_classes=2, **TINY_ARGS)
    model.pretrained_cfg["extra"] = {"score": float("inf")}
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        vidzoo.save_pretrained(model, tmp_path / "m")


# --------------------------------------------------------------------------------- outputs
def test_eval_report_folder_errors_are_one_line_before_evaluating(motion, tmp_path, capsys, monkeypatch):
    """eval --output inside --data (its pictures would be read as data: a folder of .png frames in a class folder is
    one more video), a file, or read-only: one line, exit 2, before the evaluation; a symlink planted at a report
    file is replaced, its target untouched."""
    from _outputs import read_only_folder, simulate_read_only
    d = _trained_folder_with_bias(tmp_path, 0.0)
    (tmp_path / "file").write_text("x")

    def error(out):
        assert main(["eval", "--model", str(d), "--data", str(motion), "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and err.count("\n") == 1, err
        return err

    for inside in (motion / "val" / "left" / "report", motion / "report"):
        assert "is inside --data" in error(inside) and not inside.exists()
    assert "a file is in the way" in error(tmp_path / "file")
    with read_only_folder(tmp_path / "ro", simulate_read_only(monkeypatch)):
        assert "read-only" in error(tmp_path / "ro" / "report")
    monkeypatch.undo()
    out = tmp_path / "report"
    out.mkdir()
    for name in ("metrics.json", "confusion_matrix.png", "samples.gif"):
        (tmp_path / f"target_{name}").write_text("the user's")
        (out / name).symlink_to(tmp_path / f"target_{name}")
    assert main(["eval", "--model", str(d), "--data", str(motion), "--output", str(out), "--no-progress"]) == 0
    for name in ("metrics.json", "confusion_matrix.png", "samples.gif"):
        assert (tmp_path / f"target_{name}").read_text() == "the user's" and not (out / name).is_symlink()
    json.loads((out / "metrics.json").read_text())


def test_convert_output_errors_are_one_line_and_replace_only_vidzoo_folders(tmp_path, capsys, monkeypatch):
    """convert into a file, a folder of someone else's files (the HF source folder itself included), a read-only
    folder or a full disk: one line, exit 2, nothing of theirs replaced; an earlier vidzoo folder is updated."""
    import vidzoo._hub
    from _outputs import full_folder, read_only_folder, simulate_read_only
    from safetensors import SafetensorError
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.TimesformerConfig(image_size=16, num_frames=4, patch_size=8, hidden_size=32,
                                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                                            num_labels=3)
    hf = tmp_path / "hf"
    transformers.TimesformerForVideoClassification(hf_cfg).save_pretrained(hf)
    capsys.readouterr()
    before = {f.name: f.read_bytes() for f in hf.iterdir()}
    (tmp_path / "file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")

    def error(dst):
        assert main(["convert", str(hf), str(dst)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "a file is in the way" in error(tmp_path / "file")
    assert "holds files vidzoo did not write (notes.txt)" in error(tmp_path / "foreign")
    assert [f.name for f in (tmp_path / "foreign").iterdir()] == ["notes.txt"]
    assert "is not a vidzoo model folder" in error(hf)  # converting in place would replace the source's files
    assert {f.name: f.read_bytes() for f in hf.iterdir()} == before
    with read_only_folder(tmp_path / "ro", simulate_read_only(monkeypatch)):
        assert "read-only" in error(tmp_path / "ro" / "out")
    monkeypatch.undo()
    def no_space_safetensors(*args, **kwargs):  # how safetensors reports a full disk
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    with full_folder(tmp_path / "full", lambda: monkeypatch.setattr(vidzoo._hub, "save_file",
                                                                      no_space_safetensors)) as real:
        assert "the disk is full" in error(tmp_path / "full"), real
        assert not [f for f in (tmp_path / "full").iterdir() if f.name != "config.json"]  # no partial weights
    monkeypatch.undo()
    for _ in range(2):  # a new folder, then the same (vidzoo's own) folder again
        assert main(["convert", str(hf), str(tmp_path / "out")]) == 0
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]


# ---------------------------------------------------------------------------- push_to_hub
def test_push_to_hub_errors_are_vidzoos(unreachable, offline):
    for results, why in ((unreachable, "could not be reached"), (offline, "HF_HUB_OFFLINE=1")):
        msg = results["push"]["err"].strip()
        assert results["push"]["code"] == 1 and "me/model" in msg and why in msg and "\n" not in msg, msg


def test_size_given_twice_differently_is_refused(tmp_path, capsys):
    """--num-frames 8 with --set num_frames=4: neither silently wins (train config, eval/predict, info)."""
    from vidzoo.cli import main
    from vidzoo.engine import TrainConfig
    with pytest.raises(ValueError, match=r"--num-frames 8 and --set num_frames=4 disagree"):
        TrainConfig(data="x", num_frames=8, model_overrides={"num_frames": 4})
    TrainConfig(data="x", num_frames=8, model_overrides={"num_frames": 8})  # the same size twice is fine
    for argv in (["info", "vivit_tubelet", "--num-frames", "8", "--set", "num_frames=4"],
                 ["predict", "--model", "vivit_tubelet.in21k", str(tmp_path / "v.mp4"), "--img-size", "64",
                  "--set", "img_size=32"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and "disagree" in err and err.count("\n") == 1, err
