"""vidzoo's own format and the Hugging Face Hub (huggingface_hub + safetensors only).

A saved model is a folder with ``config.json`` (architecture, num_classes, model_args,
pretrained_cfg with label_names) and ``model.safetensors``; :func:`push_to_hub` adds a generated
``README.md`` model card. ``create_model("local-dir:DIR")`` and
``create_model("hf-hub:org/repo[@revision]")`` restore it, weights included.

Every transfer goes through huggingface_hub, so its cache (``HF_HUB_CACHE`` / ``HF_HOME``),
endpoint (``HF_ENDPOINT``), token (``HF_TOKEN`` / ``hf auth login``) and offline mode
(``HF_HUB_OFFLINE=1``) apply as everywhere else.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
FORMAT_VERSION = 1
_SOURCE_FIELDS = ("state_dict", "file", "hf_hub_id", "hf_hub_filename", "hf_hub_revision")


class HubDownloadError(OSError):
    """A file could not be fetched from the Hugging Face Hub nor found in the local cache."""


# -------------------------------------------------------------------------------- downloading
def download_file(repo_id: str, filename: str, revision: str | None = None, *,
                  cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                  local_files_only: bool = False) -> str:
    """``huggingface_hub.hf_hub_download`` with errors that say what to do.

    Returns:
        Local path of the file (in the huggingface_hub cache).

    Raises:
        HubDownloadError: Offline (or unreachable) and not cached, unknown / private repo, unknown
            revision or file. The message names the repo, file and revision and how to fetch it.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    rev = revision or "main"
    what = f"'{filename}' of Hugging Face Hub repo '{repo_id}' (revision '{rev}')"
    try:
        return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token,
                               local_files_only=local_files_only)
    except LocalEntryNotFoundError as e:
        why = ("offline mode is on (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE or local_files_only
               else "the Hub could not be reached")
        raise HubDownloadError(
            f"Could not get {what}: {why} and it is not in the local cache "
            f"({cache_dir or constants.HF_HUB_CACHE}). Fetch it once with network access, e.g. "
            f"`hf download {repo_id} {filename}" + (f" --revision {revision}" if revision else "") + "` "
            "(same HF_HOME / HF_HUB_CACHE), then load again; or pass "
            f"pretrained_cfg_overlay=dict(file='/path/to/{filename}').") from e
    except RevisionNotFoundError as e:
        raise HubDownloadError(f"Could not get {what}: the revision does not exist.") from e
    except RepositoryNotFoundError as e:
        raise HubDownloadError(f"Could not get {what}: the repo does not exist or is private/gated. If you have "
                               "access, log in (`hf auth login`) or set HF_TOKEN.") from e
    except EntryNotFoundError as e:
        raise HubDownloadError(f"Could not get {what}: the repo has no such file.") from e


def download_weights(repo_id: str, filename: str | None = None, revision: str | None = None, **kwargs: Any) -> str:
    """Download ``filename``, or the first of ``model.safetensors`` / ``pytorch_model.bin`` the repo has."""
    if filename:
        return download_file(repo_id, filename, revision, **kwargs)
    from ._weights import WEIGHT_FILES
    errors = []
    for name in WEIGHT_FILES:
        try:
            return download_file(repo_id, name, revision, **kwargs)
        except HubDownloadError as e:
            errors.append(e)
            if "no such file" not in str(e):
                raise
    raise errors[-1]


# -------------------------------------------------------------------------------------- saving
def _jsonable(obj: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(obj))
    except TypeError as e:
        raise ValueError(f"{where} is not JSON-serialisable ({e}); save models whose arguments are plain values "
                         "(e.g. act_layer='gelu', not a class).") from e


def model_config(model: nn.Module) -> dict[str, Any]:
    """The ``config.json`` of a vidzoo model: how to rebuild it and what its input/labels are."""
    for attr in ("architecture", "model_args", "pretrained_cfg"):
        if not hasattr(model, attr):
            raise ValueError(f"Expected a model made by vidzoo.create_model (it has no '{attr}').")
    pcfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k not in _SOURCE_FIELDS}
    return {
        "format": "vidzoo",
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture,
        "num_classes": int(getattr(model, "num_classes", 0)),
        "num_features": int(getattr(model, "num_features", 0)),
        "model_args": _jsonable(dict(model.model_args), "model.model_args"),
        "pretrained_cfg": _jsonable(pcfg, "model.pretrained_cfg"),
    }


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike) -> Path:
    """Save ``model`` as a vidzoo folder: ``config.json`` + ``model.safetensors``.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file
    from .version import __version__
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = model_config(model)
    config["vidzoo_version"] = __version__
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt", "architecture": model.architecture})
    with open(out / CONFIG_NAME, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return out


def _params_m(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def generate_model_card(model: nn.Module, repo_id: str | None = None) -> str:
    """A README.md for the Hub: architecture, tokenizer, attention, input, label set, license, how to load."""
    cfg = model_config(model)
    args, pcfg = cfg["model_args"], cfg["pretrained_cfg"]
    arch, tag = cfg["architecture"], pcfg.get("tag") or ""
    family = ("ViViT" if arch.startswith("vivit") else "TimeSformer" if arch.startswith("timesformer")
              else "VideoMAE" if arch.startswith("videomae") else "video transformer")
    license_ = pcfg.get("license") or "other"
    C, T, H, W = pcfg.get("input_size") or (args.get("in_chans", 3), model.num_frames, *model.img_size)
    tok = args.get("tokenizer", "uniform")
    patch = args.get("patch_size", 16)
    tok_desc = (f"`{tok}`: {args.get('tubelet_size', 2)}x{patch}x{patch} tubelets (time x height x width)"
                if tok == "tubelet" else f"`{tok}`: every frame cut into {patch}x{patch} patches")
    T_, H_, W_ = model.grid_size
    dataset = (pcfg.get("extra") or {}).get("dataset")  # set by the tags, e.g. 'Kinetics-400'
    labels = pcfg.get("label_names")
    n = cfg["num_classes"]
    label_desc = f"{dataset}, {n} classes" if dataset and not dataset.startswith("ImageNet") else f"{n} classes"
    label_desc += ("; class names in `config.json` (`pretrained_cfg.label_names`), e.g. "
                   + ", ".join(f"`{x}`" for x in labels[:3]) + ", ...") if labels else "; no class names saved"
    if pcfg.get("sampling") == "uniform":
        sampling = f"{T} frames sampled uniformly over the video (one per segment)"
    else:
        rate = pcfg.get("frame_sample_rate")
        sampling = f"{T} frames, one every {rate} frames of the video" if rate else f"{T} consecutive frames"
    load_name = f"hf-hub:{repo_id}" if repo_id else "local-dir:/path/to/this/folder"
    paper = pcfg.get("paper_name")
    paper_line = f"- **Paper:** {paper} ({pcfg.get('paper_ids')})\n" if paper else ""
    front = ["---", "library_name: vidzoo", f"license: {license_}", "pipeline_tag: video-classification", "tags:",
             "- vidzoo", "- video-classification", f"- {family.lower().replace(' ', '-')}", "---", ""]
    body = f"""# {repo_id.split('/')[-1] if repo_id else arch}

A {family} video classifier saved with vidzoo (`{arch}`{f', tag `{tag}`' if tag else ''}).

## Model
- **Architecture:** `{arch}` ({args.get('depth')} blocks, width {args.get('embed_dim')}, {args.get('num_heads')} heads, {_params_m(model):.1f}M parameters)
- **Tokenizer:** {tok_desc}; token grid {T_}x{H_}x{W_} (T' x H' x W')
- **Attention variant:** `{args.get('attention')}`; position embeddings `{getattr(model, 'pos_embed_type', '?')}`; pooling `{getattr(model, 'global_pool', '?')}`
- **Input:** float clip `(B, C, T, H, W) = (B, {C}, {T}, {H}, {W})`, pixel values in [0, 1] normalised with mean {tuple(pcfg.get('mean', ()))} and std {tuple(pcfg.get('std', ()))}; {sampling}
- **Label set:** {label_desc}
- **License:** {license_}
{paper_line}
## How to load
```python
import torch
import vidzoo

model = vidzoo.create_model("{load_name}", pretrained=True).eval()
clip = torch.rand(1, {C}, {T}, {H}, {W})  # replace with a real clip, normalised as above
with torch.no_grad():
    probs = model(clip).softmax(-1)
```
The folder holds `config.json` (architecture, model arguments, preprocessing and label names) and
`model.safetensors`.
"""
    return "\n".join(front) + body


def prepare_hub_folder(model: nn.Module, folder: str | os.PathLike, repo_id: str | None = None,
                       model_card: str | None = None) -> list[str]:
    """Write what :func:`push_to_hub` uploads into ``folder``: config, weights and model card.

    Returns:
        The file names written.
    """
    out = save_pretrained(model, folder)
    card = model_card if model_card is not None else generate_model_card(model, repo_id)
    (out / MODEL_CARD_NAME).write_text(card, encoding="utf-8")
    return sorted(p.name for p in out.iterdir())


def push_to_hub(model: nn.Module, repo_id: str, *, commit_message: str = "Add vidzoo model",
                private: bool | None = None, token: str | bool | None = None, revision: str | None = None,
                create_pr: bool = False, model_card: str | None = None) -> Any:
    """Publish ``model`` to the Hub repo ``repo_id`` (created if needed) with ``huggingface_hub.HfApi``.

    Uploads ``config.json``, ``model.safetensors`` and a generated ``README.md`` model card (or
    ``model_card``) in one commit.

    Returns:
        The ``huggingface_hub.CommitInfo`` of the commit (its ``pr_url`` with ``create_pr=True``).
    """
    from huggingface_hub import HfApi
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    if revision is not None and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidzoo-push-") as tmp:
        prepare_hub_folder(model, tmp, repo_id=repo_id, model_card=model_card)
        return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                 revision=revision, create_pr=create_pr)


# ------------------------------------------------------------------------------------- loading
def load_model_from_hub_or_dir(scheme: str, rest: str, pretrained: bool = True, **kwargs: Any) -> nn.Module:
    """Create a model saved by :func:`save_pretrained` / :func:`push_to_hub`, weights included.

    Args:
        scheme: ``'hf-hub'`` (``rest`` = ``org/repo`` or ``org/repo@revision``) or ``'local-dir'``
            (``rest`` = folder).
        pretrained: Load the saved weights (``create_model`` passes True unless the caller said
            ``pretrained=False``, which gives the saved architecture with fresh weights).
        **kwargs: Model overrides on top of the saved ``model_args``; a changed ``num_classes``
            drops the saved head, another ``num_frames`` / ``img_size`` resamples embeddings.
    """
    from ._factory import create_model
    from ._weights import load_pretrained, pretrained_cfg_from_dict
    revision = None
    if scheme == "hf-hub":
        repo_id, _, revision = rest.partition("@")
        revision = revision or None
        config_path = download_file(repo_id, CONFIG_NAME, revision)
        source = f"hf-hub:{rest}"
    elif scheme == "local-dir":
        config_path = str(Path(rest).expanduser() / CONFIG_NAME)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"'{rest}' is not a vidzoo model folder: no {CONFIG_NAME} in it.")
        source = f"local-dir:{rest}"
    else:
        raise ValueError(f"Unknown model source scheme '{scheme}'; expected 'hf-hub' or 'local-dir'.")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    if "architecture" not in config:
        raise ValueError(f"{source}: {CONFIG_NAME} has no 'architecture'; it is not a vidzoo model "
                         "(for an HF transformers checkpoint use vidzoo.convert.convert_checkpoint).")
    saved = {k: v for k, v in (config.get("pretrained_cfg") or {}).items() if k not in _SOURCE_FIELDS}
    cfg = pretrained_cfg_from_dict(saved)
    if scheme == "hf-hub":
        cfg = cfg.replace(hf_hub_id=repo_id, hf_hub_filename=WEIGHTS_NAME, hf_hub_revision=revision,
                          source_format="vidzoo")
    else:
        cfg = cfg.replace(file=str(Path(rest).expanduser() / WEIGHTS_NAME), source_format="vidzoo")
    model_args = dict(config.get("model_args") or {})
    model_args.setdefault("num_classes", config.get("num_classes", cfg.num_classes))
    model = create_model(config["architecture"], pretrained=False, pretrained_cfg=cfg, **{**model_args, **kwargs})
    if pretrained:
        load_pretrained(model, cfg)
    return model
