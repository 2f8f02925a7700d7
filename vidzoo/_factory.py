"""``create_model``: the one way to get a vidzoo model by name, and the one place models are built."""
from __future__ import annotations

from typing import Any

from torch import nn

from ._hub import ModelConfigError, read_model_config
from .models import (closest_architectures_hint, is_architecture, model_entrypoint, resolve_alias,
                     split_model_name_tag)


def create_model(model_name: str, pretrained: bool | None = None, pretrained_cfg: Any = None,
                 pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Create a registered video model by name.

    Args:
        model_name: ``arch``, ``arch.tag`` (a pretrained tag) or an alias such as
            ``vivit_tubelet``; ``hf-hub:org/repo`` or ``local-dir:PATH`` load a saved vidzoo model.
        pretrained: Load the tag's weights (converted from their upstream format). Default: False
            for registered names, as in timm (a tag alone only selects the cfg; the ``vidzoo`` CLI
            reads a tag as a request for its weights); True for ``hf-hub:`` / ``local-dir:`` names
            (a saved model is restored with its weights; ``pretrained=False`` gives its
            architecture only).
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
