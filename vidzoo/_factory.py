"""``create_model``: the one way to get a vidzoo model by name."""
from __future__ import annotations

from typing import Any

from torch import nn

from ._registry import model_entrypoint, resolve_alias, split_model_name_tag


def create_model(model_name: str, pretrained: bool | None = None, pretrained_cfg: Any = None,
                 pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Create a registered video model by name.

    Args:
        model_name: ``arch``, ``arch.tag`` (a pretrained tag) or an alias such as
            ``vivit_tubelet``; ``hf-hub:org/repo`` or ``local-dir:PATH`` load a saved vidzoo model.
        pretrained: Load the tag's weights (converted from their upstream format). Default: False
            for registered names, True for ``hf-hub:`` / ``local-dir:`` names (a saved model is
            restored with its weights; ``pretrained=False`` gives its architecture only).
        pretrained_cfg: Tag, :class:`PretrainedCfg` or dict replacing the name's tag.
        pretrained_cfg_overlay: Fields replaced in the cfg, e.g. ``dict(file="model.safetensors")``.
        **kwargs: Model overrides: ``tokenizer``, ``attention``, ``embed_dim``, ``depth``,
            ``num_heads``, ``num_frames``, ``img_size``, ``patch_size``, ``tubelet_size``,
            ``in_chans``, ``num_classes``, ``drop_path_rate``, ...

    Returns:
        The model, in train mode, with ``pretrained_cfg`` describing its input.
    """
    scheme, sep, rest = model_name.partition(":")
    if sep and scheme in ("hf-hub", "local-dir"):
        from ._hub import load_model_from_hub_or_dir
        return load_model_from_hub_or_dir(scheme, rest, pretrained=pretrained is not False, **kwargs)
    arch, tag = split_model_name_tag(resolve_alias(model_name))
    fn = model_entrypoint(arch)  # ValueError with the closest names for unknown models
    if tag and pretrained_cfg is None:
        pretrained_cfg = tag
    return fn(pretrained=bool(pretrained), pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=pretrained_cfg_overlay,
              **kwargs)
