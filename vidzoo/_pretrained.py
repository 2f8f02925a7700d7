"""Pretrained configurations: where a tag's weights live and how to feed the model."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # ViViT / augreg ViT: inputs scaled to [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)
KINETICS_MEAN = (0.45, 0.45, 0.45)  # official TimeSformer / SlowFast
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass
class PretrainedCfg:
    """One ``arch.tag``: the source of its weights and the data the model expects.

    Weight source, first present wins: ``state_dict`` > ``file`` > ``hf_hub_id``.
    """

    tag: str = ""
    architecture: str = ""
    # weights
    state_dict: dict[str, Any] | None = None
    file: str | None = None
    hf_hub_id: str | None = None
    hf_hub_filename: str | None = None
    hf_hub_revision: str | None = None
    source_format: str | None = None  # 'vidzoo', 'hf_vivit', 'hf_timesformer', 'timesformer', 'timm_vit'
    inflation: str = "central_frame"  # tubelet init from 2-D kernels
    # input
    num_frames: int = 8
    input_size: tuple[int, int, int, int] = (3, 8, 224, 224)  # (C, T, H, W)
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    frame_sample_rate: int | None = None  # stride between sampled frames (dense sampling)
    sampling: str = "dense"  # 'dense' clips at frame_sample_rate, or 'uniform' segments
    test_num_clips: int = 1
    test_num_crops: int = 1
    # classifier
    num_classes: int = 400
    label_names: list[str] | None = None
    classifier: str = "head"
    # provenance
    license: str | None = None
    paper_ids: str | None = None
    paper_name: str | None = None
    origin_url: str | None = None
    notes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # What the weights of a built model are: set by the builder (random init or loaded from a
    # tag / file / saved model) and by training; see :func:`describe_provenance`.
    provenance: dict[str, Any] | None = None

    @property
    def has_weights(self) -> bool:
        """Whether this cfg names a weight source."""
        return bool(self.state_dict is not None or self.file or self.hf_hub_id)

    def replace(self, **kwargs: Any) -> "PretrainedCfg":
        """A copy with fields replaced (unknown field names raise)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(kwargs) - names
        if unknown:
            raise ValueError(f"Unknown pretrained_cfg fields {sorted(unknown)}; known: {sorted(names)}.")
        return dataclasses.replace(self, **kwargs)

    def to_dict(self, remove_source: bool = False) -> dict[str, Any]:
        """Plain dict (``state_dict`` always left out: it is not data about the model)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "state_dict"}
        if remove_source:
            for k in ("file", "hf_hub_id", "hf_hub_filename", "hf_hub_revision"):
                d.pop(k)
        return d


@dataclass
class DefaultCfg:
    """The tags of one architecture; the first tag is the default."""

    tags: list[str] = field(default_factory=list)
    cfgs: dict[str, PretrainedCfg] = field(default_factory=dict)

    @property
    def default(self) -> PretrainedCfg:
        return self.cfgs[self.tags[0]]


def generate_default_cfgs(cfgs: dict[str, PretrainedCfg]) -> dict[str, DefaultCfg]:
    """Group ``{'arch.tag': cfg}`` into ``{'arch': DefaultCfg}`` keeping the order of tags.

    A key without a tag gives the architecture an untagged default (random init).
    """
    out: dict[str, DefaultCfg] = {}
    for key, cfg in cfgs.items():
        arch, _, tag = key.partition(".")
        dc = out.setdefault(arch, DefaultCfg())
        if tag in dc.cfgs:
            raise ValueError(f"Duplicate pretrained cfg {key!r}.")
        cfg = cfg.replace(tag=tag, architecture=arch)
        # Tags with weights come before the untagged random-init default.
        if cfg.has_weights and "" in dc.cfgs:
            first_untagged = dc.tags.index("")
            dc.tags.insert(first_untagged, tag)
        else:
            dc.tags.append(tag)
        dc.cfgs[tag] = cfg
    return out


def pretrained_cfg_from_dict(d: Mapping[str, Any]) -> PretrainedCfg:
    """A :class:`PretrainedCfg` from a dict (e.g. read from JSON): unknown keys ignored, lists of
    ``mean`` / ``std`` / ``input_size`` made tuples again."""
    d = {k: v for k, v in d.items() if k in PretrainedCfg.__dataclass_fields__}
    for k in ("mean", "std", "input_size"):
        if isinstance(d.get(k), list):
            d[k] = tuple(d[k])
    return PretrainedCfg(**d)


def describe_provenance(prov: Mapping[str, Any] | None) -> str:
    """One line saying where a model's weights came from (for ``vidzoo info`` and model cards)."""
    if not prov:
        return "unknown (saved before vidzoo recorded provenance)"
    kind = prov.get("kind")
    lic = f"; licence {prov['license']}" if prov.get("license") else ""
    if kind == "random_init":
        return "random initialisation (no trained weights)"
    if kind == "pretrained":
        src = prov.get("source") or "?"
        origin = f" ({prov['origin_url']})" if prov.get("origin_url") else ""
        data = f", trained on {prov['dataset']}" if prov.get("dataset") else ""
        head = "; classifier head freshly initialised (other class count)" if prov.get("head") == "fresh" else ""
        return f"pretrained weights of {src}{origin}{data}{lic}{head}"
    if kind in ("trained", "fine_tuned"):
        run = (f"on {prov.get('data') or '?'} ({prov.get('num_classes', '?')} classes, "
               f"{prov.get('epochs', '?')} epochs)")
        if kind == "trained":
            return f"trained from scratch by vidzoo {run}"
        return f"fine-tuned by vidzoo from {prov.get('started_from') or '?'} {run}{lic}"
    if kind == "probe":
        head = {"attentive": "an attentive pooler + linear classifier", "linear": "a linear classifier"}.get(
            prov.get("probe_head"), "a head")
        return (f"probe trained on {prov.get('data') or '?'} ({prov.get('num_classes', '?')} classes, "
                f"{prov.get('epochs', '?')} epochs) over {prov.get('backbone') or '?'}: the backbone frozen, {head} "
                f"trained by vidzoo{lic}")
    if kind == "converted":
        return f"converted by vidzoo from {prov.get('source') or '?'}{lic}"
    return str(dict(prov))


def training_provenance(start: Mapping[str, Any] | None, config: Mapping[str, Any], classes: Sequence[str]
                        ) -> dict[str, Any]:
    """The provenance of a model trained by vidzoo: from scratch, fine-tuned from what it started as, or
    a probe (``freeze_backbone``: a head trained over a frozen backbone, which is named with its licence).

    Args:
        start: The provenance of the model as built before training (``pretrained_cfg['provenance']``).
        config: The run's config (``TrainConfig`` as a dict: ``data``, ``val_data``, ``epochs``, ``model``;
            a probe's ``freeze_backbone`` and ``head``, the head kind it trained).
        classes: The class names trained on.
    """
    start = dict(start or {})
    run = {"data": str(config.get("data")) if config.get("data") is not None else None,
           "val_data": config.get("val_data"), "num_classes": len(classes), "epochs": config.get("epochs"),
           "model": config.get("model")}
    kind = start.get("kind")
    if kind in ("trained", "fine_tuned", "probe"):
        started_from = f"a model {describe_provenance(start)}"
    elif kind in (None, "random_init"):
        started_from = f"a random initialisation of {start.get('architecture') or config.get('model') or '?'}"
    else:
        started_from = start.get("as_tag") or start.get("source") or "?"
    if config.get("freeze_backbone"):
        return {"kind": "probe", "backbone": started_from, "license": start.get("license"),
                "started_dataset": start.get("dataset"), "frozen": "every parameter but the head's (eval mode)",
                "probe_head": config.get("head"), **run}
    if kind in (None, "random_init"):
        return {"kind": "trained", **run}
    return {"kind": "fine_tuned", "started_from": started_from, "license": start.get("license"),
            "started_dataset": start.get("dataset"), **run}
