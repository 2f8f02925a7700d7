"""``create_model``: the one way to get a vidzoo model by name or path, and the one place models are built."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ._hub import ModelConfigError, read_model_config
from ._local import checkpoint_model_spec, looks_like_path, read_training_checkpoint, resolve_model_path
from .models import (closest_architectures_hint, is_architecture, model_entrypoint, resolve_alias,
                     split_model_name_tag)


def create_model(model_name: str, pretrained: bool | None = None, pretrained_cfg: Any = None,
                 pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Create a registered video model by name, or load a saved one by path.

    Args:
        model_name: ``arch``, ``arch.tag`` (a pretrained tag) or an alias such as
            ``vivit_tubelet``; ``hf-hub:org/repo`` or ``local-dir:PATH`` load a saved vidzoo model.
            A path (anything existing, with a path separator, or starting with ``.`` / ``~``; see
            :mod:`vidzoo._local`) is what ``vidzoo predict --model PATH`` accepts: a saved model
            folder (``local-dir:`` is its explicit form), a training run folder of ``vidzoo train``
            (its ``model/``, else ``checkpoints/best.pth``, else ``last.pth``) or a training
            checkpoint ``.pth``.
        pretrained: Load the tag's weights (converted from their upstream format). Default: False
            for registered names, as in timm (a tag alone only selects the cfg; the ``vidzoo`` CLI
            reads a tag as a request for its weights); True for saved models (``hf-hub:``,
            ``local-dir:``, paths: a saved model is restored with its weights; ``pretrained=False``
            gives its architecture only).
        pretrained_cfg: Tag, :class:`PretrainedCfg` or dict replacing the name's tag.
        pretrained_cfg_overlay: Fields replaced in the cfg, e.g. ``dict(file="model.safetensors")``.
        **kwargs: Model overrides: ``tokenizer``, ``attention``, ``embed_dim``, ``depth``,
            ``num_heads``, ``num_frames``, ``img_size``, ``patch_size``, ``tubelet_size``,
            ``in_chans``, ``num_classes``, ``drop_path_rate``, ... (checked: a ValueError names
            the argument that is out of its domain).

    Returns:
        The model, in train mode, with ``pretrained_cfg`` describing its input and, in
        ``pretrained_cfg['provenance']``, where its weights came from.
    """
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a string, got {type(model_name).__name__}")
    scheme, sep, rest = model_name.partition(":")
    if not (sep and scheme in ("hf-hub", "local-dir")) and looks_like_path(model_name):
        path = resolve_model_path(model_name)  # LocalModelError (a ValueError) for a path that is no model
        if path.is_dir():  # a model folder (a run folder's model/ included)
            scheme, sep, rest = "local-dir", ":", str(path)
        else:
            return _from_training_checkpoint(path, pretrained, pretrained_cfg_overlay, **kwargs)
    if sep and scheme in ("hf-hub", "local-dir"):
        # A saved model: its config.json is data (validated by _hub), the build happens here.
        cfg, arch, model_args = read_model_config(scheme, rest, is_architecture, closest_architectures_hint)
        if pretrained_cfg_overlay:
            cfg = cfg.replace(**pretrained_cfg_overlay)
        try:
            return model_entrypoint(arch)(pretrained=pretrained is not False, pretrained_cfg=cfg,
                                          **{**model_args, **kwargs})
        except (ValueError, TypeError) as e:
            if kwargs:  # the caller's overrides may be what does not fit
                raise type(e)(f"{model_name} with {', '.join(sorted(kwargs))} overridden: "
                              f"{str(e).splitlines()[0]}") from e
            raise ModelConfigError(f"{model_name}: its config.json does not build: {str(e).splitlines()[0]}") from e
    arch, tag = split_model_name_tag(resolve_alias(model_name))
    fn = model_entrypoint(arch)  # ValueError with the closest names for unknown models
    if tag and pretrained_cfg is None:
        pretrained_cfg = tag
    return fn(pretrained=bool(pretrained), pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=pretrained_cfg_overlay,
              **kwargs)


def _from_training_checkpoint(path: Path, pretrained: bool | None, overlay: dict[str, Any] | None,
                              **kwargs: Any) -> nn.Module:
    """The model of a ``vidzoo train`` checkpoint: its architecture and arguments (``kwargs`` on top) with its
    weights loaded through the converter (another ``num_classes`` drops the head, another ``num_frames`` /
    ``img_size`` resamples the embeddings); its class names, and a provenance saying how it was trained."""
    ckpt = read_training_checkpoint(path)
    cfg, arch, model_args, provenance, classes = checkpoint_model_spec(ckpt, path, is_architecture)
    if overlay:
        cfg = cfg.replace(**overlay)
    model = model_entrypoint(arch)(pretrained=pretrained is not False, pretrained_cfg=cfg, **{**model_args, **kwargs})
    model.pretrained_cfg["provenance"] = provenance
    if classes and kwargs.get("num_classes", len(classes)) == len(classes):
        model.pretrained_cfg["label_names"] = list(classes)
    return model
