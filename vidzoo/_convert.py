"""Convert checkpoints of other formats to vidzoo state dicts.

One entry point, :func:`convert_state_dict`, maps a checkpoint onto a built model:

1. unwrap: ``model_state`` / ``state_dict`` / ``model`` / ``module`` containers, ``module.`` and
   ``model.`` key prefixes (official TimeSformer ``.pyth`` files, DDP checkpoints);
2. detect the format from the keys (:func:`detect_format`): HF transformers ViViT
   (``vivit.*``, old ``encoder.layer.N.attention.attention.query`` and new
   ``layers.N.attention.q_proj`` names), HF transformers TimeSformer (``timesformer.*``),
   vidzoo / official TimeSformer names (``blocks.N.attn.qkv``, ``time_embed``, ...) and
   timm 2-D ViT state dicts; HF transformers VideoMAE (``videomae.*``: Hub files with
   ``q_bias`` / ``v_bias``, in-memory state dicts with ``query.bias`` / ``value.bias``) and the
   original VideoMAE / VideoMAE V2 ``.pth`` (``attn.q_bias``; pretraining checkpoints with the
   encoder under ``encoder.`` and an MAE decoder, which is dropped); HF transformers V-JEPA 2
   (``vjepa2.encoder.layer.N.attention.{query,key,value,proj}``, ``pooler.*``, ``classifier``, or a
   bare ``VJEPA2Model``'s ``encoder.*`` / ``predictor.*``) and the original V-JEPA 2 pretraining
   ``.pt`` (``{"encoder": {"module.backbone.blocks.N.attn.qkv...."}, "predictor": ...}``, read as
   upstream's torch.hub loader reads it: the ``encoder`` entry, ``module.`` / ``backbone.`` prefixes
   stripped, the predictor and an unused ``pos_embed`` dropped);
3. rename to vidzoo keys (HF ViViT's and VideoMAE's separate query/key/value are concatenated
   into ``qkv``);
4. adapt to the model: inflate 2-D patch kernels for tubelet tokenizers, resample position and
   time embeddings to the model's token grid (or tile a 2-D table over time for the joint
   layout), initialise the temporal parts an image checkpoint does not have, and drop a head
   whose number of classes differs.

The result is checked and loaded by :mod:`vidzoo._weights`; nothing here touches the model's
parameters.
"""
from __future__ import annotations

import logging
import math
import re
from typing import Any, Mapping

import torch
from einops import rearrange
from torch import nn

from .layers import resample_pos_embed_3d, resample_time_embed
from .tokenizers import inflate_patch_kernel

_logger = logging.getLogger(__name__)

FORMATS = ("vidzoo", "hf_vivit", "hf_timesformer", "timesformer", "timm_vit", "hf_videomae", "videomae", "hf_vjepa2",
           "vjepa2")
# Container keys of training checkpoints, tried in this order ('encoder': the V-JEPA 2 pretraining
# .pt, whose predictor and target encoder are not read, as upstream's torch.hub loader does).
_WRAPPER_KEYS = ("model_state", "state_dict", "model", "module", "model_ema", "state_dict_ema", "encoder")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read, recognised or converted."""


class CheckpointMismatchError(CheckpointError):
    """A (converted) checkpoint does not fit the model: missing / unexpected keys, shape mismatches."""

    def __init__(self, message: str, missing: list[str] | None = None, unexpected: list[str] | None = None,
                 mismatched: list[tuple[str, tuple, tuple]] | None = None) -> None:
        super().__init__(message)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        self.mismatched = list(mismatched or [])


# --------------------------------------------------------------------------------- unwrapping
def _is_tensor_dict(d: Any) -> bool:
    return isinstance(d, Mapping) and len(d) > 0 and all(isinstance(v, torch.Tensor) for v in d.values())


def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the tensors of a checkpoint: the state dict inside a training-checkpoint container,
    with a ``module.`` / ``model.`` prefix shared by every key removed."""
    sd: Any = checkpoint
    for _ in range(3):  # nested containers, e.g. {'model': {'state_dict': ...}}
        if _is_tensor_dict(sd):
            break
        inner = next((sd[k] for k in _WRAPPER_KEYS if isinstance(sd, Mapping) and isinstance(sd.get(k), Mapping)),
                     None)
        if inner is None:
            break
        sd = inner
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"Expected a state dict (a mapping of names to tensors); got {type(sd).__name__}.")
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(list(map(str, sd))[:10])
        raise CheckpointError(f"No tensors found in the checkpoint (top-level keys: {keys}).")
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


# ---------------------------------------------------------------------------------- detection
def _has_video_markers(sd: Mapping[str, torch.Tensor]) -> bool:
    w = sd.get("patch_embed.proj.weight")
    return ("time_embed" in sd or any(k.startswith("temporal_") or ".temporal_" in k for k in sd)
            or (w is not None and w.ndim == 5))


def detect_format(state_dict: Mapping[str, torch.Tensor], hint: str | None = None) -> str:
    """Recognise the layout of an (unwrapped) state dict from its keys.

    Returns one of ``'hf_vivit'``, ``'hf_timesformer'``, ``'vidzoo'`` (vidzoo / official
    TimeSformer names of a video model) or ``'timm_vit'`` (a 2-D ViT). ``hint`` (a tag's
    ``source_format``) only decides between the last two when the keys cannot: a vidzoo model
    without temporal parameters (space-only attention) has the same keys as a timm ViT.
    """
    keys = list(state_dict)
    if (any(k.startswith(("vjepa2.", "pooler.cross_attention_layer.")) for k in keys)
            or "encoder.embeddings.patch_embeddings.proj.weight" in state_dict):
        return "hf_vjepa2"  # VJEPA2ForVideoClassification, or a bare VJEPA2Model (encoder.* + predictor.*)
    if any(k.startswith("backbone.") for k in keys):
        return "vjepa2"  # the original V-JEPA 2 encoder (module.backbone.*; 'module.' is already unwrapped)
    if (any(k.startswith("videomae.") for k in keys) or ("embeddings.patch_embeddings.projection.weight" in state_dict
                                                       and "embeddings.position_embeddings" not in state_dict)):
        return "hf_videomae"  # VideoMAE* of transformers (no stored position table: it is sin-cos)
    if any(k.endswith(".attn.q_bias") or k.startswith(("encoder.blocks.", "encoder.patch_embed.")) for k in keys):
        return "videomae"  # original VideoMAE / VideoMAE V2 code (fine-tuned, or the pretraining encoder)
    if any(k.startswith("vivit.") for k in keys):
        return "hf_vivit"
    if any(k.startswith("timesformer.") for k in keys):
        return "hf_timesformer"
    if "embeddings.position_embeddings" in state_dict:  # a bare VivitModel / TimesformerModel
        hf_ts = "embeddings.time_embeddings" in state_dict or any(".qkv." in k for k in keys)
        return "hf_timesformer" if hf_ts else "hf_vivit"
    if "pos_embed" in state_dict or "patch_embed.proj.weight" in state_dict or any(k.startswith("blocks.")
                                                                                     for k in keys):
        if _has_video_markers(state_dict):
            return "vidzoo"
        if hint in ("vidzoo", "timesformer"):
            return "vidzoo"
        return "timm_vit"
    sample = ", ".join(keys[:8])
    raise CheckpointError(f"Unrecognised checkpoint format (first keys: {sample}). Supported: HF transformers ViViT, "
                          "TimeSformer, VideoMAE and V-JEPA 2, official TimeSformer, VideoMAE (V1/V2) and V-JEPA 2, "
                          "timm ViT and vidzoo state dicts.")


# ------------------------------------------------------------------------------ key renaming
_HF_TIMESFORMER_LAYER = (  # prefixes of the key after 'encoder.layer.N.', longest first
    ("temporal_attention.attention.qkv.", "temporal_attn.qkv."),
    ("temporal_attention.output.dense.", "temporal_attn.proj."),
    ("attention.attention.qkv.", "attn.qkv."),
    ("attention.output.dense.", "attn.proj."),
    ("temporal_layernorm.", "temporal_norm1."),
    ("temporal_dense.", "temporal_fc."),
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)
_HF_VIVIT_LAYER = (  # both the names on the Hub (transformers 4) and those of transformers 5 modules
    ("attention.output.dense.", "attn.proj."),
    ("attention.o_proj.", "attn.proj."),
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
)
_HF_VIVIT_QKV = re.compile(r"attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
_HF_EMBED = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.time_embeddings": "time_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_LAYER = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)$")


def _rename_layer_key(rest: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for src, dst in table:
        if rest.startswith(src):
            return dst + rest[len(src):]
    return None


def _from_hf(sd: Mapping[str, torch.Tensor], prefix: str,
             table: tuple[tuple[str, str], ...]) -> dict[str, torch.Tensor]:
    """HF transformers ViViT / TimeSformer keys -> vidzoo keys (qkv of ViViT concatenated)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    dropped = []
    for key, v in sd.items():
        k = key[len(prefix) + 1:] if key.startswith(prefix + ".") else key
        if k.startswith("classifier."):
            out["head." + k[len("classifier."):]] = v
        elif k in _HF_EMBED:
            out[_HF_EMBED[k]] = v
        elif k.startswith("pooler."):  # VivitModel's pooler is not used by the classifier
            dropped.append(key)
        elif m := _LAYER.match(k):
            i, rest = int(m.group(1)), m.group(2)
            if q := _HF_VIVIT_QKV.match(rest):
                which = {"query": "q", "key": "k", "value": "v"}.get(q.group(1), q.group(2))
                qkv.setdefault((i, q.group(3)), {})[which] = v
                continue
            new = _rename_layer_key(rest, table)
            out[f"blocks.{i}.{new}" if new else key] = v  # unknown keys are reported as unexpected
        else:
            out[key] = v
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"Layer {i} of the ViViT checkpoint has {kind}s for {sorted(parts)} only; "
                                  "expected query, key and value.")
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    if dropped:
        _logger.info("Dropped %d checkpoint tensors vidzoo does not use: %s", len(dropped), ", ".join(dropped))
    return out


# ------------------------------------------------------------------------ VideoMAE (V1 and V2)
# The MAE decoder and its inputs: pretraining only, never part of a classifier.
_VIDEOMAE_PRETRAIN_ONLY = ("decoder.", "encoder_to_decoder.", "mask_token", "decoder_pos_embed")
_HF_VIDEOMAE_LAYER = (
    ("attention.output.dense.", "attn.proj."),
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)
# Hub files: query/key/value weights + q_bias/v_bias; transformers 5 in memory: query.bias/value.bias.
_HF_VIDEOMAE_ATTN = re.compile(r"attention\.attention\.(?:(query|key|value)\.(weight|bias)|(q|v)_bias)$")


def _from_hf_videomae(sd: Mapping[str, torch.Tensor], dropped: list[str]) -> dict[str, torch.Tensor]:
    """HF transformers VideoMAE keys (``VideoMAEForVideoClassification``, ``VideoMAEModel`` or the
    encoder of ``VideoMAEForPreTraining``) -> original / vidzoo keys."""
    out: dict[str, torch.Tensor] = {}
    attn: dict[int, dict[tuple[str, str], torch.Tensor]] = {}
    for key, v in sd.items():
        k = key[len("videomae."):] if key.startswith("videomae.") else key
        if k.startswith(_VIDEOMAE_PRETRAIN_ONLY):
            dropped.append(key)
        elif k.startswith("classifier."):
            out["head." + k[len("classifier."):]] = v
        elif k.startswith("embeddings.patch_embeddings.projection."):
            out["patch_embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("layernorm."):
            out["norm." + k[len("layernorm."):]] = v
        elif m := _LAYER.match(k):
            i, rest = int(m.group(1)), m.group(2)
            if a := _HF_VIDEOMAE_ATTN.match(rest):
                which = {"query": "q", "key": "k", "value": "v"}.get(a.group(1) or "", a.group(3))
                attn.setdefault(i, {})[(which, a.group(2) or "bias")] = v
                continue
            new = _rename_layer_key(rest, _HF_VIDEOMAE_LAYER)
            out[f"blocks.{i}.{new}" if new else key] = v  # unknown keys are reported as unexpected
        else:
            out[key] = v  # fc_norm.*, or reported as unexpected
    for i, parts in sorted(attn.items()):
        names = {"q": "query", "k": "key", "v": "value"}
        missing = [f"{names[w]} weight" for w in "qkv" if (w, "weight") not in parts]
        if missing:
            raise CheckpointError(f"Layer {i} of the VideoMAE checkpoint lacks the {', '.join(missing)}; expected "
                                  "query, key and value weights.")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([parts[(w, "weight")] for w in "qkv"], dim=0)
        biases = {w for w in "qkv" if (w, "bias") in parts}
        if biases == {"q", "k", "v"}:
            out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([parts[(w, "bias")] for w in "qkv"], dim=0)
        elif biases:
            for w in sorted(biases):
                out[f"blocks.{i}.attn.{w}_bias"] = parts[(w, "bias")]  # a k_bias is reported as unexpected
    return out


def _from_videomae(sd: Mapping[str, torch.Tensor], dropped: list[str]) -> dict[str, torch.Tensor]:
    """Original VideoMAE / VideoMAE V2 ``.pth`` keys: already vidzoo names; a pretraining
    checkpoint's encoder sits under ``encoder.`` beside the decoder."""
    pretrain = any(k.startswith(("encoder.blocks.", "encoder.patch_embed.")) for k in sd)
    out: dict[str, torch.Tensor] = {}
    for key, v in sd.items():
        k = key[len("encoder."):] if pretrain and key.startswith("encoder.") else key
        if (pretrain and not key.startswith("encoder.")) or k.startswith(_VIDEOMAE_PRETRAIN_ONLY):
            dropped.append(key)
        else:
            out[k] = v
    return out


def _adapt_videomae(sd: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], report: dict[str, Any],
                    notes: list[str]) -> None:
    """Fit VideoMAE weights to the model: q/v biases fused for a model with a full qkv bias;
    a pretraining encoder's final norm, fc_norm and head as VideoMAE's fine-tuning treats them."""
    fused = 0
    for qk in [k for k in sd if k.endswith(".attn.q_bias")]:
        b = qk[:-len("q_bias")]
        if b + "qkv.bias" in target and qk not in target and b + "v_bias" in sd:
            q, v = sd.pop(qk), sd.pop(b + "v_bias")
            sd[b + "qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
            fused += 1
    if fused:
        notes.append(f"q/v biases of {fused} blocks fused into qkv.bias with a zero key bias")
    if "norm.weight" in sd and "norm.weight" not in target and "fc_norm.weight" in target:
        sd.pop("norm.weight"), sd.pop("norm.bias", None)
        notes.append("final norm of the pretraining encoder dropped (the model normalises after mean pooling, "
                     "fc_norm; VideoMAE's fine-tuning drops it too)")
    fresh = [k for k in ("fc_norm.weight", "fc_norm.bias") if k in target and k not in sd]
    if "head.weight" in target and "head.weight" not in sd:
        fresh += [k for k in ("head.weight", "head.bias") if k in target]
        report["head_dropped"], report["head_classes"] = True, 0  # a pretraining encoder has no classifier
    for k in fresh:
        sd[k] = target[k]
    if fresh:
        notes.append(f"{', '.join(sorted({k.rsplit('.', 1)[0] for k in fresh}))} not in the checkpoint (a "
                     "pretrained backbone): the model's initialisation is kept")


# -------------------------------------------------------------------------------------- V-JEPA 2
_HF_VJEPA2_ENCODER_LAYER = (
    ("attention.proj.", "attn.proj."),
    ("norm1.", "norm1."),
    ("norm2.", "norm2."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
)
_HF_VJEPA2_POOLER_LAYER = (  # pooler.self_attention_layers.N.* and pooler.cross_attention_layer.*
    ("layer_norm1.", "norm1."),
    ("layer_norm2.", "norm2."),
    ("self_attn.out_proj.", "attn.proj."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
)
_HF_VJEPA2_QKV = re.compile(r"^(?:attention\.(query|key|value)|(?:self|cross)_attn\.(q|k|v)_proj)\.(weight|bias)$")
_HF_VJEPA2_EMBED = {"encoder.embeddings.patch_embeddings.proj.weight": "patch_embed.proj.weight",
                    "encoder.embeddings.patch_embeddings.proj.bias": "patch_embed.proj.bias",
                    "encoder.layernorm.weight": "norm.weight", "encoder.layernorm.bias": "norm.bias",
                    "pooler.query_tokens": "attn_pool.query_tokens"}
_VJEPA2_LAYER = re.compile(r"^(encoder\.layer|pooler\.self_attention_layers)\.(\d+)\.(.+)$")


def _from_hf_vjepa2(sd: Mapping[str, torch.Tensor], dropped: list[str]) -> dict[str, torch.Tensor]:
    """HF transformers V-JEPA 2 keys -> vidzoo keys: separate q / k / v of the encoder and the pooler's
    self-attention fused into ``qkv``, the cross-attention's k / v into ``kv``; the predictor dropped."""
    out: dict[str, torch.Tensor] = {}
    fuse: dict[str, dict[str, torch.Tensor]] = {}  # target key -> {'q'|'k'|'v': tensor}
    for key, v in sd.items():
        k = key[len("vjepa2."):] if key.startswith("vjepa2.") else key
        if k.startswith("predictor."):
            dropped.append(key)
            continue
        if k in _HF_VJEPA2_EMBED:
            out[_HF_VJEPA2_EMBED[k]] = v
            continue
        if k.startswith("classifier."):
            out["head." + k[len("classifier."):]] = v
            continue
        m = _VJEPA2_LAYER.match(k)
        if m:
            base = f"blocks.{m.group(2)}." if m.group(1) == "encoder.layer" else f"attn_pool.blocks.{m.group(2)}."
            rest, table = m.group(3), (_HF_VJEPA2_ENCODER_LAYER if m.group(1) == "encoder.layer"
                                       else _HF_VJEPA2_POOLER_LAYER)
        elif k.startswith("pooler.cross_attention_layer."):
            base, rest, table = "attn_pool.cross_attention_block.", k[len("pooler.cross_attention_layer."):], \
                _HF_VJEPA2_POOLER_LAYER
        else:
            out[key] = v  # reported as unexpected
            continue
        if q := _HF_VJEPA2_QKV.match(rest):
            which = {"query": "q", "key": "k", "value": "v"}.get(q.group(1) or "", q.group(2))
            if base.endswith("cross_attention_block."):
                target = base + ("xattn.q." if which == "q" else "xattn.kv.") + q.group(3)
                if which == "q":
                    out[target] = v
                    continue
            else:
                target = base + "attn.qkv." + q.group(3)
            fuse.setdefault(target, {})[which] = v
            continue
        new = _rename_layer_key(rest, table)
        out[base + new if new else key] = v
    for target, parts in fuse.items():
        want = "kv" if ".xattn.kv." in target else "qkv"
        if set(parts) != set(want):
            raise CheckpointError(f"V-JEPA 2 checkpoint: {target} needs the {'/'.join(want)} projections, found "
                                  f"{'/'.join(sorted(parts))} only.")
        out[target] = torch.cat([parts[w] for w in want], dim=0)
    return out


def _from_vjepa2(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original V-JEPA 2 encoder: ``backbone.`` prefixes stripped (``module.`` is already gone), as
    upstream's ``_clean_backbone_key`` does; the names are then vidzoo's. Keys of an upstream probe
    (``AttentiveClassifier``: ``pooler.*``, ``linear.*``) merged into the same dict map to ``attn_pool.*``
    and ``head.*``, whose names are otherwise upstream's."""
    out = {}
    for k, v in sd.items():
        k = k[len("backbone."):] if k.startswith("backbone.") else k
        if k.startswith("pooler."):
            k = "attn_pool." + k[len("pooler."):]
        elif k.startswith("linear."):
            k = "head." + k[len("linear."):]
        out[k] = v
    return out


def _adapt_vjepa2(sd: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], report: dict[str, Any],
                  notes: list[str]) -> None:
    """An unused position table dropped (the model rotates q / k instead); an encoder-only checkpoint
    (pretraining ``.pt``, a bare ``VJEPA2Model``) keeps the model's fresh attentive pooler and head."""
    if "pos_embed" in sd and "pos_embed" not in target:
        sd.pop("pos_embed")
        notes.append("unused pos_embed dropped (the model uses 3-D RoPE)")
    head = [k for k in target if k.startswith(("attn_pool.", "head.", "fc_norm."))]
    if head and not any(k in sd for k in head):
        for k in head:
            sd[k] = target[k]
        report["head_dropped"] = True
        notes.append("encoder-only checkpoint: the attentive pooler and the head keep the model's initialisation")


# ----------------------------------------------------------------------------- token grids
def _isqrt_exact(n: int) -> int | None:
    s = math.isqrt(n)
    return s if s * s == n else None


def _spatial_grid(n: int, model_hw: tuple[int, int], hint: tuple[int, int, int] | None) -> tuple[int, int]:
    if hint and hint[1] * hint[2] == n:
        return hint[1], hint[2]
    if model_hw[0] * model_hw[1] == n:
        return model_hw
    s = _isqrt_exact(n)
    if s is None:
        raise CheckpointError(f"Cannot infer the spatial grid of a position table with {n} entries (not a square); "
                              "pass pretrained_cfg_overlay=dict(extra={'source_grid': (T, H, W)}).")
    return s, s


def _joint_grid(n: int, model_grid: tuple[int, int, int], hint: tuple[int, int, int] | None) -> tuple[int, int, int]:
    if hint and math.prod(hint) == n:
        return tuple(hint)  # type: ignore[return-value]
    T, H, W = model_grid
    if n % (H * W) == 0:
        return n // (H * W), H, W
    if n % T == 0 and (s := _isqrt_exact(n // T)):
        return T, s, s
    raise CheckpointError(f"Cannot infer the token grid (T, H, W) of a joint position table with {n} entries for a "
                          f"model with grid {model_grid}; load it through a folder that holds the checkpoint's "
                          "config.json, or pass its grid as pretrained_cfg_overlay=dict(extra={'source_grid': "
                          "(T, H, W)}).")


# ------------------------------------------------------------------------------- adaptation
def _adapt_patch_embed(sd: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], inflation: str,
                       notes: list[str]) -> None:
    w, tw = sd.get("patch_embed.proj.weight"), target.get("patch_embed.proj.weight")
    if w is None or tw is None:
        return
    if w.shape[1] != tw.shape[1]:  # input channels (e.g. RGB weights for a one-channel model), as timm
        from timm.models._manipulate import adapt_input_conv
        if w.ndim == 5:
            w = torch.stack([adapt_input_conv(tw.shape[1], w[:, :, i]) for i in range(w.shape[2])], dim=2)
        else:
            w = adapt_input_conv(tw.shape[1], w)
        notes.append(f"patch kernel adapted from {sd['patch_embed.proj.weight'].shape[1]} to {tw.shape[1]} "
                     "input channels")
    if tw.ndim == 5 and (w.ndim == 4 or (w.ndim == 5 and w.shape[2] == 1 and tw.shape[2] != 1)):
        w = inflate_patch_kernel(w, tw.shape[2], inflation)
        notes.append(f"2-D patch kernel inflated to {tw.shape[2]} frames ({inflation})")
    elif tw.ndim == 4 and w.ndim == 5 and w.shape[2] == 1:
        w = w[:, :, 0]
    sd["patch_embed.proj.weight"] = w


def _adapt_pos_embed(sd: dict[str, torch.Tensor], model: nn.Module, target: Mapping[str, torch.Tensor],
                     fmt: str, source_grid: tuple[int, int, int] | None, notes: list[str]) -> None:
    """Bring ``pos_embed`` (and ``time_embed``) to the model's layout and grid."""
    pos = sd.get("pos_embed")
    if pos is None or "pos_embed" not in target:
        return
    T, H, W = model.grid_size
    P_model = model.num_prefix_tokens
    P_src = 1 if "cls_token" in sd else 0
    time = sd.pop("time_embed", None)
    separable_src = time is not None
    # Upstream TimeSformer (official and HF) resize its tables with nearest interpolation at run
    # time; matching it keeps a model loaded at another size equal to the upstream one.
    smode, tmode = ("nearest", "nearest") if separable_src else ("bicubic", "linear")
    n = pos.shape[1] - P_src
    # A spatial table (one frame) or a joint table over the clip? HF ViViT and vidzoo models with
    # the joint layout have the latter; everything else a spatial one.
    spatial_src = (separable_src or fmt in ("timm_vit", "hf_timesformer") or "temporal_pos_embed" in sd
                   or (fmt == "vidzoo" and model.pos_embed_type != "joint"))
    if not spatial_src and n == target["pos_embed"].shape[1] - P_model and model.pos_embed_type == "joint":
        grid_src = (T, H, W)  # same joint layout and size
    elif spatial_src:
        grid_src = (1, *_spatial_grid(n, (H, W), source_grid))
    else:
        grid_src = _joint_grid(n, (T, H, W), source_grid)
    prefix, table = pos[:, :P_src], pos[:, P_src:]
    if P_model and not P_src:
        prefix = target["pos_embed"][:, :P_model]
        notes.append("class-token position embedding initialised (the checkpoint has no class token)")
    elif P_src and not P_model:
        prefix = pos[:, :0]
        sd.pop("cls_token", None)
        notes.append("class token dropped (the model pools by average)")

    if model.pos_embed_type == "joint":
        if spatial_src:  # tiled over time; pos[n] + time[t] is exactly the joint table of a separable model
            space = resample_pos_embed_3d(table, grid_src, (1, H, W), spatial_mode=smode)
            te = resample_time_embed(time, T, mode=tmode) if separable_src else space.new_zeros(1, T, space.shape[-1])
            table = rearrange(space.unsqueeze(1) + te.unsqueeze(2), "1 t n d -> 1 (t n) d")
            notes.append("separable position + time embeddings summed into one joint table" if separable_src
                         else f"spatial position table tiled over {T} time steps (joint layout)")
        else:
            table = resample_pos_embed_3d(table, grid_src, (T, H, W), spatial_mode=smode, temporal_mode=tmode)
    else:  # 'separable' or 'space': a spatial table (+ time_embed)
        if not spatial_src:
            raise CheckpointError(f"The checkpoint has a joint space-time position table (grid {grid_src}); the model "
                                  f"uses the '{model.pos_embed_type}' layout, which cannot represent it. Create the "
                                  "model with pos_embed='joint'.")
        table = resample_pos_embed_3d(table, grid_src, (1, H, W), spatial_mode=smode)
        if "time_embed" in target:
            if separable_src:
                sd["time_embed"] = resample_time_embed(time, T, mode=tmode)
            else:
                sd["time_embed"] = torch.zeros_like(target["time_embed"])
                notes.append("time embedding initialised to zero")
        elif separable_src:
            sd["time_embed"] = time  # reported as unexpected: the model has no time embedding
    if tuple(grid_src[1:]) != (H, W) or (not spatial_src and grid_src[0] != T):
        notes.append(f"position embeddings resampled from grid {tuple(grid_src)} to {(T, H, W)} ({smode})")
    if separable_src and time.shape[1] != T:
        notes.append(f"time embedding resampled from {time.shape[1]} to {T} frames ({tmode})")
    sd["pos_embed"] = torch.cat([prefix.to(table.dtype), table], dim=1)


def _init_temporal_from_image(sd: dict[str, torch.Tensor], model: nn.Module, target: Mapping[str, torch.Tensor],
                              notes: list[str]) -> None:
    """Temporal parameters a 2-D ViT does not have.

    * ``divided`` (TimeSformer): ``temporal_attn`` and ``temporal_norm1`` copied from the spatial
      ``attn`` / ``norm1`` of the same block, as the official code does; ``temporal_fc`` keeps the
      model's init (zero except in the first block).
    * ``factorised_self_attention`` (ViViT model 3): ``temporal_attn`` copied from ``attn`` and
      ``temporal_norm1`` left at its init, as Scenic's ``init_encoderblock`` does by default (the
      paper's text describes a zero-initialised temporal MSA; Scenic's code copies).
    * ``factorised_encoder`` (ViViT model 2): the spatial encoder comes from the ViT; the temporal
      encoder (``temporal_*``) keeps its random init, as in Scenic when starting from an image model.
    """
    copy_norm = getattr(model, "attention", "") == "divided"
    copied = 0
    for i in range(len(getattr(model, "blocks", []))):
        b = f"blocks.{i}."
        if f"{b}temporal_attn.qkv.weight" in target and f"{b}temporal_attn.qkv.weight" not in sd:
            names = ("attn.", "norm1.") if copy_norm else ("attn.",)
            for k in [k for k in sd if k[len(b):].startswith(names) and k.startswith(b)]:
                sd[b + "temporal_" + k[len(b):]] = sd[k].clone()
            copied += 1
    if copied:
        what = "attention and norm" if copy_norm else "attention"
        notes.append(f"temporal {what} of {copied} blocks copied from the spatial ones")
    fresh = [k for k in target if k not in sd and "temporal_" in k]
    for k in fresh:
        sd[k] = target[k]
    if fresh:
        groups = sorted({re.sub(r"^blocks\.\d+\.", "blocks.*.", k).rsplit(".", 1)[0] for k in fresh})
        notes.append(f"{len(fresh)} temporal tensors keep the model's initialisation ({', '.join(groups)})")


def _adapt_head(sd: dict[str, torch.Tensor], model: nn.Module, target: Mapping[str, torch.Tensor],
                report: dict[str, Any]) -> None:
    w = sd.get("head.weight")
    if w is None:
        return
    tw = target.get("head.weight")
    if tw is not None and tw.shape == w.shape:
        return
    sd.pop("head.weight", None)
    sd.pop("head.bias", None)
    if tw is not None:
        sd["head.weight"], sd["head.bias"] = target["head.weight"], target["head.bias"]
    report["head_dropped"], report["head_classes"] = True, int(w.shape[0])
    _logger.info("Checkpoint head has %d classes, the model %d: the head is not loaded (a fresh one is "
                 "initialised), as timm does.", w.shape[0], getattr(model, "num_classes", 0))


def convert_state_dict(state_dict: Mapping[str, Any], model: nn.Module, *, inflation: str = "central_frame",
                       source_format: str | None = None, source_grid: tuple[int, int, int] | None = None,
                       report: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` mapped onto ``model``'s parameter names and shapes.

    Args:
        state_dict: A checkpoint in any supported format (containers and prefixes are removed).
        model: The vidzoo model the weights are for (read only: its grid, layout and initial
            values of parameters an image checkpoint lacks).
        inflation: ``'central_frame'`` or ``'average'``: how 2-D patch kernels become tubelets.
        source_format: The tag's declared format; used only where the keys are ambiguous.
        source_grid: Token grid ``(T, H, W)`` of the checkpoint where known (from its
            config.json); otherwise inferred from the table sizes.
        report: Optional dict filled with ``format``, ``head_dropped`` (with ``head_classes``, the
            classifier size of the checkpoint, 0 without one) and ``notes``.

    Raises:
        CheckpointError: The format is not recognised or a table cannot be converted.
    """
    report = {} if report is None else report
    sd = unwrap_state_dict(state_dict)
    fmt = detect_format(sd, source_format)
    target = model.state_dict()
    notes: list[str] = []
    report.update(format=fmt, head_dropped=False, notes=notes)
    if fmt == "vidzoo" and sd.keys() == target.keys() and all(sd[k].shape == target[k].shape for k in sd):
        return dict(sd)  # already exact
    dropped: list[str] = []
    if fmt == "hf_vivit":
        sd = _from_hf(sd, "vivit", _HF_VIVIT_LAYER)
    elif fmt == "hf_videomae":
        sd = _from_hf_videomae(sd, dropped)
    elif fmt == "videomae":
        sd = _from_videomae(sd, dropped)
    elif fmt == "hf_timesformer":
        sd = _from_hf(sd, "timesformer", _HF_TIMESFORMER_LAYER)
    elif fmt == "hf_vjepa2":
        sd = _from_hf_vjepa2(sd, dropped)
    elif fmt == "vjepa2":
        sd = _from_vjepa2(sd)
        skipped = [k for k in ("predictor", "target_encoder") if isinstance(state_dict.get(k), Mapping)]
        if skipped and isinstance(state_dict.get("encoder"), Mapping):
            notes.append(f"read the 'encoder' entry, as upstream's torch.hub loader does ({', '.join(skipped)} "
                         "not read)")
    else:
        sd = dict(sd)
    image = fmt == "timm_vit"
    if image:
        for k in [k for k in sd if k.startswith("pre_logits.")]:
            del sd[k]
    if dropped:
        what = "V-JEPA 2 predictor" if fmt == "hf_vjepa2" else "MAE decoder, mask token"
        notes.append(f"{len(dropped)} pretraining-only tensors dropped ({what})")
        _logger.info("Dropped pretraining-only checkpoint tensors: %s", ", ".join(dropped))
    if fmt in ("hf_videomae", "videomae"):
        _adapt_videomae(sd, target, report, notes)
    if fmt in ("hf_vjepa2", "vjepa2"):
        _adapt_vjepa2(sd, target, report, notes)
    _adapt_patch_embed(sd, target, inflation, notes)
    _adapt_pos_embed(sd, model, target, fmt, tuple(source_grid) if source_grid else None, notes)
    if image:
        _init_temporal_from_image(sd, model, target, notes)
    _adapt_head(sd, model, target, report)
    if notes:
        _logger.info("Converted %s checkpoint: %s.", fmt, "; ".join(notes))
    return sd
