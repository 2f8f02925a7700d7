"""Getting a model for the engine: by registry name with overrides, from a saved folder, from a
training checkpoint or a training output folder (what ``--model`` means)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from .._convert import CheckpointError
from .._factory import create_model
from .._hub import HubDownloadError, ModelConfigError, save_pretrained
from .._local import LocalModelError, checkpoint_model_spec, looks_like_path, resolve_model_path
from .._pretrained import training_provenance
from ..models import get_pretrained_cfg, is_architecture, list_pretrained, resolve_alias, split_model_name_tag
from .._weights import CorruptCheckpointError
from .complexity import MetaInit, count_gmacs, count_params
from .config import run_config as read_run_config
from .errors import UserError
from .run_layout import RunLayout

PathLike = str | os.PathLike
_SCHEMES = ("hf-hub:", "local-dir:")


# ----------------------------------------------------------------------------- what --model names
def explicit_tag(name: str) -> str:
    """The tag written in a registry name (``timesformer.k400`` -> ``'k400'``; a path or an untagged name -> '')."""
    if looks_like_path(name) or name.startswith(_SCHEMES):
        return ""
    return split_model_name_tag(name)[1]


def wants_weights(name: str, pretrained: bool | None) -> bool:
    """The CLI rule: a tag on the command line is a request for its weights.

    ``--pretrained`` / ``--no-pretrained`` decide when given; otherwise a registry name with an
    explicit ``.tag`` loads that tag's weights and an untagged name is a random initialisation.
    (Paths and ``hf-hub:`` / ``local-dir:`` models always carry their weights.)
    """
    if pretrained is not None:
        return pretrained
    return bool(explicit_tag(name))


def _hub_route(name: str, e: HubDownloadError, weights_flag: bool) -> str:
    """The CLI's one line for weights the Hub could not give: why, and two routes that work offline."""
    if e.reason not in ("offline", "unreachable"):
        return f"cannot load the weights of '{name}': {str(e).splitlines()[0]}"
    from huggingface_hub import constants
    why = ("offline mode is on (HF_HUB_OFFLINE=1)" if e.reason == "offline"
           else f"the Hub ({constants.ENDPOINT}) could not be reached")
    f = e.filename
    if name.startswith("hf-hub:"):  # a saved vidzoo model: the whole folder is what is missing
        return (f"cannot load model '{name}': '{f}' of Hub repo '{e.repo_id}' is not in the local cache and {why}. "
                f"Download the repo where there is network (`hf download {e.repo_id} --local-dir DIR`), then use "
                "--model DIR")
    convert = f"convert it once with `vidzoo convert /path/to/{f} DIR --model {name}` and use --model DIR"
    return (f"cannot load the weights of '{name}': '{f}' of Hub repo '{e.repo_id}' is not in the local cache and "
            f"{why}. Download it where there is network (`hf download {e.repo_id} {f}`), then "
            + (f"pass --weights /path/to/{f}, or {convert}" if weights_flag else convert))


def _build(name: str, label: str, weights_flag: bool = False, **kwargs: Any) -> nn.Module:
    """``create_model`` with user-facing errors (``label`` is how the user wrote the model)."""
    try:
        return create_model(name, **kwargs)
    except LocalModelError as e:  # a path that is not a model: the message names it
        raise UserError(str(e).splitlines()[0]) from e
    except HubDownloadError as e:
        raise UserError(_hub_route(label, e, weights_flag)) from e
    except ModelConfigError as e:
        raise UserError(f"cannot load model '{label}': {str(e).splitlines()[0]}") from e
    except (ValueError, TypeError) as e:
        raise UserError(f"cannot build model '{label}': {str(e).splitlines()[0]}") from e
    except (OSError, CheckpointError) as e:  # weights not found / unreadable / not fitting
        raise UserError(f"cannot load the weights of '{label}': {str(e).splitlines()[0]}") from e


def model_from_checkpoint(ckpt: dict[str, Any], path: PathLike = "checkpoint") -> nn.Module:
    """Rebuild the model of a training checkpoint already read (architecture, arguments, weights, input cfg)."""
    cfg, arch, args, provenance, classes = _user_errors(lambda: checkpoint_model_spec(ckpt, path, is_architecture))
    model = _build(arch, str(path), pretrained=True, pretrained_cfg=cfg, **args)
    model.pretrained_cfg.update(provenance=provenance, label_names=classes or model.pretrained_cfg.get("label_names"))
    return model


def _user_errors(fn):
    """``fn()``, a path that is not a model as a :class:`UserError` (its message is the line)."""
    try:
        return fn()
    except LocalModelError as e:
        raise UserError(str(e)) from e


def build_model(name: str, num_classes: int | None = None, pretrained: bool | None = None,
                weights: PathLike | None = None, _weights_flag: bool = False, **overrides: Any) -> nn.Module:
    """The model ``--model NAME`` names, with user-facing errors.

    Args:
        name: A path (checked first: a run folder -> :meth:`RunLayout.model_candidates`; a saved
            model folder; a training checkpoint ``.pth``), ``hf-hub:`` /
            ``local-dir:``, or a registered name / alias / ``arch.tag``.
        num_classes: Classifier outputs (the loaded head is dropped when it differs).
        pretrained: For registry names: load the tag's weights (None: ``create_model``'s
            default, no weights). For saved models: False builds the architecture only.
        weights: A local file holding the tag's upstream weights (instead of the Hub download).
        _weights_flag: The command has ``--weights`` (named in the offline error).
        **overrides: Model overrides (``num_frames``, ``img_size``, ``depth``, ...).

    Raises:
        UserError: The model cannot be built or its weights cannot be loaded, as one line.
    """
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    if looks_like_path(name):
        if weights is not None:
            raise UserError(f"--weights loads a tag's weights into a registry name; '{name}' is a path")
        if not Path(name).expanduser().exists():
            raise UserError(f"--model '{name}' does not exist (and is not a registered model name)")
        path = _user_errors(lambda: resolve_model_path(name))
        if path.is_file() and pretrained is False:
            raise UserError(f"--no-pretrained: '{name}' is a trained checkpoint; name its architecture "
                            "instead to start from scratch")
        return _build(str(path), name, **({} if pretrained is None else {"pretrained": pretrained}), **overrides)
    if name.startswith(_SCHEMES):
        if weights is not None:
            raise UserError(f"--weights loads a tag's weights into a registry name; '{name}' is a saved model")
        return _build(name, name, **({} if pretrained is None else {"pretrained": pretrained}), **overrides)
    kwargs: dict[str, Any] = {}
    if weights is not None:
        if not Path(weights).expanduser().is_file():
            raise UserError(f"--weights '{weights}' does not exist")
        pretrained = True
        kwargs["pretrained_cfg_overlay"] = {"file": str(Path(weights).expanduser())}
    if pretrained is not None:
        kwargs["pretrained"] = pretrained
    return _build(name, name, _weights_flag, **kwargs, **overrides)


def _no_weights_error(name: str) -> UserError:
    arch, tag = split_model_name_tag(resolve_alias(name))
    tags = [t for t in list_pretrained(f"{arch}") if t.startswith(f"{arch}.")] if is_architecture(arch) else []
    if not tags:  # --pretrained and --weights load a tag's weights: nothing to load for this architecture
        return UserError(f"--model '{name}' has no weights: it would predict from a random initialisation, and "
                         f"{arch} has no pretrained tags; give a trained model (a run folder of vidzoo train, a "
                         "model folder or a checkpoint), or train one first")
    return UserError(f"--model '{name}' has no weights: it would predict from a random initialisation. Name a tag "
                     f"with weights (tags with weights: {', '.join(tags)}), pass --pretrained for the default tag, "
                     "--weights FILE, or a trained model (run folder, model folder, checkpoint)")


def load_model(name_or_path: str, pretrained: bool | None = None, weights: PathLike | None = None,
               require_weights: bool = True, **overrides: Any) -> nn.Module:
    """The model of ``vidzoo eval/predict/info --model``.

    Args:
        name_or_path: A path (run folder, model folder, training checkpoint), ``hf-hub:`` /
            ``local-dir:``, or a registry name. A registry name with an explicit ``.tag`` loads
            that tag's weights (see :func:`wants_weights`).
        pretrained: ``--pretrained`` / ``--no-pretrained`` (None: the tag decides).
        weights: Local file with the tag's upstream weights.
        require_weights: Refuse a model without trained weights (eval and predict): a registry
            name without a tag or ``--pretrained``, or a saved random initialisation.
        **overrides: Model overrides.

    Returns:
        The model in eval mode.
    """
    if not looks_like_path(name_or_path) and not name_or_path.startswith(_SCHEMES):
        try:
            get_pretrained_cfg(name_or_path)  # unknown names and tags first: the closest names
        except ValueError as e:
            raise UserError(f"cannot build model '{name_or_path}': {str(e).splitlines()[0]}") from e
        pretrained = wants_weights(name_or_path, pretrained) or weights is not None
        if require_weights and not pretrained:
            raise _no_weights_error(name_or_path)
        model = build_model(name_or_path, pretrained=pretrained, weights=weights, _weights_flag=True, **overrides)
    else:
        try:
            model = build_model(name_or_path, pretrained=pretrained, weights=weights, _weights_flag=True,
                                **overrides)
        except UserError as e:
            model = _fallback_checkpoint(name_or_path, e, overrides)
    provenance = model.pretrained_cfg.get("provenance") or {}
    if require_weights and provenance.get("kind") == "random_init":
        raise UserError(f"--model '{name_or_path}' holds a random initialisation (its config.json says so), "
                        "not trained weights")
    if require_weights and provenance.get("head") == "fresh":  # asked for (num_classes=N), still random
        raise UserError(f"--model '{name_or_path}': its classifier is a fresh one of {model.num_classes} classes "
                        "(the weights' classifier has another class count), so its head would be random; pass "
                        "--set num_classes=N with the checkpoint's class count")
    return model.eval()


def _fallback_checkpoint(name: str, error: UserError, overrides: dict[str, Any]) -> nn.Module:
    """A run folder whose saved model is unreadable: its best (else last) checkpoint, said on stderr."""
    run = RunLayout(Path(name).expanduser())
    if not (run.model_dir.is_dir() and not (run.root / "config.json").exists()):
        raise error
    cause = error.__cause__
    if not isinstance(cause, (ModelConfigError, CorruptCheckpointError, FileNotFoundError)):
        raise error
    for ckpt in (run.best, run.last):
        if ckpt.is_file():
            print(f"vidzoo: note: {run.model_dir} is unreadable ({str(error).splitlines()[0]}); using {ckpt}",
                  file=sys.stderr)
            return _build(str(ckpt), str(ckpt), **overrides)
    raise error


def save_model_folder(model: nn.Module, path: PathLike, run_config: dict[str, Any] | None = None,
                      classes: Sequence[str] | None = None) -> Path:
    """Save a trained model in vidzoo's safetensors folder format (``config.json`` + ``model.safetensors``)
    through :func:`vidzoo.save_pretrained`, recording how it was trained; returns the folder.

    Args:
        model: The model (its ``pretrained_cfg['provenance']`` says what it started as).
        path: The folder.
        run_config: The training run's config; default: ``train_config.json`` of the run folder
            that holds ``path`` (written by :func:`vidzoo.engine.trainer.train`). Without either, the
            model is saved as it is.
        classes: The classes trained on (default: the run's).
    """
    path = Path(path)
    if run_config is None:
        try:
            saved = read_run_config(path.parent)
        except UserError:  # not in a run folder: saved as it is
            saved = None
        if saved is not None:
            run_config, classes = saved["config"], classes if classes is not None else saved.get("classes")
    if run_config is not None:
        classes = list(classes if classes is not None else model.pretrained_cfg.get("label_names") or [])
        prov = training_provenance(model.pretrained_cfg.get("provenance"), run_config, classes)
        model.pretrained_cfg = dict(model.pretrained_cfg, provenance=prov)
    return Path(save_pretrained(model, path))


def describe_architecture(model: nn.Module) -> str:
    """What the model is, from its arguments rather than its registry name (which a ``--set patch_size=8``
    does not change): ``"attention divided, tokenizer uniform, patch 8, width 32, depth 1, heads 2"``."""
    a = dict(getattr(model, "model_args", None) or {})
    return (f"attention {a.get('attention')}, tokenizer {a.get('tokenizer')}, patch {a.get('patch_size')}"
            + (f"x{a['tubelet_size']}" if a.get("tubelet_size") else "")
            + f", width {a.get('embed_dim')}, depth {a.get('depth')}, heads {a.get('num_heads')}")


# ---------------------------------------------------------------------------------- complexity
def model_complexity(name: str, **overrides: Any) -> dict[str, Any]:
    """Parameters and multiply-adds of one forward pass of a batch of 1 at the model's input size
    (:func:`~vidzoo.engine.complexity.count_gmacs`).

    The model is built on the meta device, so even ViViT-L takes well under a second and no memory.

    Returns:
        ``{'params': int, 'gmacs': float, 'input_size': (C, T, H, W), 'model': the (meta) model}``.
    """
    try:
        with MetaInit():
            model = build_model(name, **overrides)
    except UserError:
        raise
    except Exception:  # a constructor that reads values back: build it for real on CPU
        model = build_model(name, **overrides)
    input_size = tuple(model.pretrained_cfg["input_size"])
    return {"params": count_params(model), "gmacs": count_gmacs(model, input_size), "input_size": input_size,
            "model": model}
