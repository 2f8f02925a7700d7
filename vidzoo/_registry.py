"""Model registry with timm semantics: entry points by name, ``arch.tag`` pretrained tags, aliases.

A leaf, as timm's: it imports no model family. Importing :mod:`vidzoo.models` fills it (the package
imports every family module, whose ``@register_model`` entry points register themselves), and
:mod:`vidzoo.models` re-exports the functions that read it, so code that reads the registry
imports them from there (or from ``vidzoo``) and sees every family.
"""
from __future__ import annotations

import fnmatch
import re
import sys
from typing import Callable, Iterable

from ._pretrained import DefaultCfg, PretrainedCfg
from ._utils import closest_names, unknown_name_error

_model_entrypoints: dict[str, Callable] = {}
_model_to_module: dict[str, str] = {}
_model_default_cfgs: dict[str, DefaultCfg] = {}
_model_aliases: dict[str, str] = {}


def register_model(fn: Callable) -> Callable:
    """Register a model entry point under its function name.

    Its module must define ``default_cfgs`` (from :func:`generate_default_cfgs`) before the entry
    points; the entry for this name gives the architecture's tags.
    """
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(f"Model {name!r} is registered twice.")
    mod = sys.modules[fn.__module__]
    _model_entrypoints[name] = fn
    _model_to_module[name] = fn.__module__.split(".")[-1]
    default_cfgs = getattr(mod, "default_cfgs", {})
    if name not in default_cfgs:
        raise ValueError(f"Model {name!r} has no entry in {fn.__module__}.default_cfgs.")
    _model_default_cfgs[name] = default_cfgs[name]
    return fn


def register_model_alias(alias: str, target: str) -> None:
    """Make ``alias`` resolve to the registered ``target`` (``arch`` or ``arch.tag``)."""
    if split_model_name_tag(target)[0] not in _model_entrypoints:
        raise ValueError(f"Alias {alias!r} points to unregistered model {target!r}.")
    if alias in _model_entrypoints:
        raise ValueError(f"Alias {alias!r} shadows a registered model.")
    _model_aliases[alias] = target


def split_model_name_tag(name: str) -> tuple[str, str]:
    """``'arch.tag'`` -> ``('arch', 'tag')``; ``'arch'`` -> ``('arch', '')``."""
    arch, _, tag = name.partition(".")
    return arch, tag


def resolve_alias(name: str) -> str:
    """Resolve an alias (keeping an explicit tag): ``vivit_tubelet.k400`` -> ``vivit_joint_....k400``."""
    arch, tag = split_model_name_tag(name)
    if arch in _model_aliases:
        t_arch, t_tag = split_model_name_tag(_model_aliases[arch])
        return f"{t_arch}.{tag or t_tag}" if (tag or t_tag) else t_arch
    return name


def list_aliases() -> dict[str, str]:
    """``{alias: target}`` for every alias."""
    return dict(_model_aliases)


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _as_list(x: str | Iterable[str]) -> list[str]:
    return [x] if isinstance(x, str) else list(x)


def list_models(filter: str | Iterable[str] = "", module: str = "", pretrained: bool = False,
                exclude_filters: str | Iterable[str] = (), include_tags: bool | None = None) -> list[str]:
    """Registered model names, like ``timm.list_models``.

    Args:
        filter: fnmatch pattern(s), e.g. ``'vivit_*'``; empty keeps all.
        module: Only models of this family module (``'vivit'``, ``'timesformer'``).
        pretrained: Only architectures/tags with weights.
        exclude_filters: fnmatch pattern(s) to drop.
        include_tags: Return ``arch.tag`` names (default: same as ``pretrained``).
    """
    include_tags = pretrained if include_tags is None else include_tags
    names: list[str] = []
    for arch in _model_entrypoints:
        if module and _model_to_module[arch] != module:
            continue
        if include_tags:
            dc = _model_default_cfgs[arch]
            for tag in dc.tags:
                if pretrained and not dc.cfgs[tag].has_weights:
                    continue
                names.append(f"{arch}.{tag}" if tag else arch)
        elif not pretrained or any(c.has_weights for c in _model_default_cfgs[arch].cfgs.values()):
            names.append(arch)
    if filter:
        pats = _as_list(filter)
        names = [n for n in names if any(fnmatch.fnmatch(n, p) or fnmatch.fnmatch(split_model_name_tag(n)[0], p)
                                         for p in pats)]
    for pat in _as_list(exclude_filters):
        names = [n for n in names if not fnmatch.fnmatch(n, pat)]
    return sorted(set(names), key=_natural_key)


def list_pretrained(filter: str | Iterable[str] = "", exclude_filters: str | Iterable[str] = ()) -> list[str]:
    """``arch.tag`` names that have weights."""
    return list_models(filter, pretrained=True, exclude_filters=exclude_filters, include_tags=True)


def is_model(name: str) -> bool:
    """Whether ``name`` (an arch, an ``arch.tag`` with a known tag, or an alias) is registered."""
    arch, tag = split_model_name_tag(resolve_alias(name))
    if arch not in _model_entrypoints:
        return False
    return not tag or tag in _model_default_cfgs[arch].cfgs


def is_architecture(name: str) -> bool:
    """Whether ``name`` is a registered architecture exactly (no alias, no tag)."""
    return name in _model_entrypoints


def closest_architectures_hint(name: str) -> str:
    """``' Closest: a, b.'`` for an error message (empty when nothing is close)."""
    close = closest_names(str(name), _model_entrypoints)
    return f". Closest registered architectures: {', '.join(close)}" if close else ""


def model_entrypoint(name: str) -> Callable:
    """Entry point of ``name`` (ValueError listing the closest registered names if unknown)."""
    arch = split_model_name_tag(resolve_alias(name))[0]
    if arch not in _model_entrypoints:
        raise unknown_name_error("model", name, list(_model_entrypoints) + list(_model_aliases))
    return _model_entrypoints[arch]


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of ``arch.tag`` (the arch's default tag when none is given)."""
    arch, tag = split_model_name_tag(resolve_alias(name))
    model_entrypoint(arch)  # raises for unknown archs
    dc = _model_default_cfgs[arch]
    if not tag:
        return dc.default
    if tag not in dc.cfgs:
        known = ", ".join(f"{arch}.{t}" for t in dc.tags if t) or "none"
        raise ValueError(f"Unknown pretrained tag {tag!r} for {arch!r}. Known tags: {known}.")
    return dc.cfgs[tag]
