"""vidzoo's own format and the Hugging Face Hub (huggingface_hub + safetensors only).

A saved model is a folder with ``config.json`` (architecture, num_classes, model_args,
pretrained_cfg with label_names and provenance) and ``model.safetensors``; :func:`push_to_hub`
adds a generated ``README.md`` model card. This module reads and writes those files and never
builds a model: :func:`read_model_config` returns ``(pretrained_cfg, architecture, model_args)``
and ``create_model("local-dir:DIR")`` / ``create_model("hf-hub:org/repo[@revision]")`` build from it.

Every transfer goes through huggingface_hub, so its cache (``HF_HUB_CACHE`` / ``HF_HOME``),
endpoint (``HF_ENDPOINT``), token (``HF_TOKEN`` / ``hf auth login``) and offline mode
(``HF_HUB_OFFLINE=1``) apply as everywhere else.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from ._pretrained import PretrainedCfg, describe_provenance, pretrained_cfg_from_dict
from ._validation import parse_model_config
from .version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
FORMAT_VERSION = 1
_SOURCE_FIELDS = ("state_dict", "file", "hf_hub_id", "hf_hub_filename", "hf_hub_revision")


class HubDownloadError(OSError):
    """A file could not be fetched from the Hugging Face Hub nor found in the local cache.

    Attributes:
        repo_id, filename, revision: What was asked for.
        reason: ``'offline'``, ``'unreachable'``, ``'revision'``, ``'repo'`` or ``'file'``.
    """

    repo_id: str = ""
    filename: str = ""
    revision: str | None = None
    reason: str = ""


class HubUploadError(OSError):
    """:func:`push_to_hub` could not publish the model (offline, unreachable, not logged in, no access)."""


class ModelConfigError(ValueError):
    """A model folder's ``config.json`` is unreadable or not a valid vidzoo config; the message names the file."""


# -------------------------------------------------------------------------------- downloading
_reachable: dict[str, bool] = {}


def hub_reachable(endpoint: str | None = None) -> bool:
    """Whether the Hub endpoint answers at all (one HEAD request per process and endpoint, no retries).

    huggingface_hub retries a failed lookup with back-off (about 25-40 s of "Retrying in Ns"
    before giving up) when a file is not cached; asking once first lets vidzoo go straight to the
    cache and fail fast with a useful message when the network is not there.
    """
    from huggingface_hub import constants, get_session
    endpoint = endpoint or constants.ENDPOINT
    if endpoint not in _reachable:
        try:
            get_session().head(endpoint, timeout=constants.HF_HUB_ETAG_TIMEOUT)
            _reachable[endpoint] = True  # any HTTP answer, even an error status, means the host is there
        except Exception:  # noqa: BLE001 - connection refused, DNS failure, timeout, proxy: all "unreachable"
            _reachable[endpoint] = False
    return _reachable[endpoint]


def download_file(repo_id: str, filename: str, revision: str | None = None, *,
                  cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                  local_files_only: bool = False) -> str:
    """``huggingface_hub.hf_hub_download`` that fails fast offline, with errors that say what to do.

    Returns:
        Local path of the file (in the huggingface_hub cache).

    Raises:
        HubDownloadError: Offline (or unreachable) and not cached, unknown / private repo, unknown
            revision or file. The message names the repo, file and revision and how to get it.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    rev = revision or "main"
    what = f"'{filename}' of Hugging Face Hub repo '{repo_id}' (revision '{rev}')"
    offline = bool(constants.HF_HUB_OFFLINE or local_files_only)
    unreachable = not offline and not hub_reachable()

    def err(msg: str, reason: str) -> HubDownloadError:
        e = HubDownloadError(msg)  # OSError's constructor reads extra positional args as errno/filename
        e.repo_id, e.filename, e.revision, e.reason = repo_id, filename, revision, reason
        return e

    try:
        return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token,
                               local_files_only=offline or unreachable)
    except LocalEntryNotFoundError as e:
        why = ("offline mode is on (HF_HUB_OFFLINE=1)" if offline
               else f"the Hub ({constants.ENDPOINT}) could not be reached")
        raise err(
            f"Could not get {what}: {why} and it is not in the local cache "
            f"({cache_dir or constants.HF_HUB_CACHE}). Fetch it once with network access, e.g. "
            f"`hf download {repo_id} {filename}" + (f" --revision {revision}" if revision else "") + "` "
            "(same HF_HOME / HF_HUB_CACHE), then load again; or pass the downloaded file: "
            f"pretrained_cfg_overlay=dict(file='/path/to/{filename}').", "offline" if offline else "unreachable") from e
    except RevisionNotFoundError as e:
        raise err(f"Could not get {what}: the revision does not exist.", "revision") from e
    except RepositoryNotFoundError as e:
        raise err(f"Could not get {what}: the repo does not exist or is private/gated. If you have "
                  "access, log in (`hf auth login`) or set HF_TOKEN.", "repo") from e
    except EntryNotFoundError as e:
        raise err(f"Could not get {what}: the repo has no such file.", "file") from e


def download_weights(repo_id: str, filename: str | None = None, revision: str | None = None, **kwargs: Any) -> str:
    """Download ``filename``, or the first of ``model.safetensors`` / ``pytorch_model.bin`` the repo has."""
    if filename:
        return download_file(repo_id, filename, revision, **kwargs)
    errors = []
    for name in WEIGHT_FILES:
        try:
            return download_file(repo_id, name, revision, **kwargs)
        except HubDownloadError as e:
            errors.append(e)
            if e.reason != "file":
                raise
    raise errors[-1]


# ------------------------------------------------------------------------------- atomic writes
def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (``mkstemp`` makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class OutputError(OSError):
    """An output cannot be written where it was asked for (a directory or a file in the way, a
    read-only folder, a full disk); the message is one line naming the path and the reason."""


_OUTPUT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EFBIG: "the file is too large for its file system",
                  errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied (read-only folder?)",
                  errno.EPERM: "permission denied (read-only folder?)", errno.EISDIR: "it is a directory",
                  errno.ENOTDIR: "a parent of it is a file, not a folder", errno.EEXIST: "a file is in the way"}


def output_error(e: OSError, path: str | os.PathLike, what: str = "output") -> OSError:
    """``e`` as an :class:`OutputError` naming ``path`` when it is about the place written to
    (full disk, read-only folder, a file or directory in the way); other errors unchanged."""
    if isinstance(e, OutputError) or e.errno not in _OUTPUT_ERRNOS:
        return e
    return OutputError(f"cannot write {what} '{path}': {_OUTPUT_ERRNOS[e.errno]}")


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse, before any work, an output file path that is an existing directory or lies under a file."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise output_error(IsADirectoryError(errno.EISDIR, "is a directory"), path, what)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise output_error(NotADirectoryError(errno.ENOTDIR, "not a directory"), path, what)
            break
    return path


def ensure_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents) and make sure files can be created in it, before
    any work is done.

    Raises:
        OutputError: A file is in the way, the folder is read-only, the disk is full.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise FileExistsError(errno.EEXIST, "not a directory", str(path))
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".vidzoo-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise output_error(e, path, what) from e
    return path


def atomic_replace(write_fn: Callable[[str], Any], path: str | os.PathLike) -> Path:
    """Write through ``write_fn(tmp_path)`` into a temporary file beside ``path``, then rename it
    over ``path``: readers see the old file or the new one, never half of one, and a symlink at
    ``path`` is replaced, never written through. The file gets the permissions a plain
    ``open(path, 'w')`` would give it.

    Raises:
        OutputError: ``path`` is a directory, its folder is read-only, the disk is full (nothing
            is left behind).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write_fn(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise output_error(e, path) from e
        raise
    return path


class StagedOutputs:
    """New files for ``paths``, written and checked in temporary folders beside them, then renamed
    into place all together: a file that failed its check never gets its final name, no output of
    the call is renamed before every one passed, a symlink at a final path is replaced (never
    written through), and nothing vidzoo did not write in this call is touched.

    Use as a context manager: :meth:`staged` gives where to write output ``i`` (files its writer
    adds beside it, such as ONNX external data, travel with it); :meth:`publish` renames all;
    leaving the block without publishing removes what was staged.

    Raises:
        OutputError: A path is a directory or lies under a file, two paths are the same file, a
            folder is read-only (found when the staging folders are made, before any work).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], what: str = "output") -> None:
        self.paths = [check_output_path(p, what) for p in paths]
        seen: dict[Path, Path] = {}
        for p in self.paths:
            key = p.parent.resolve() / p.name
            if key in seen:
                raise OutputError(f"cannot write {what} '{p}': it is given twice (also as '{seen[key]}')")
            seen[key] = p
        self.what = what
        self._dirs: list[Path | None] = []
        try:
            for p in self.paths:
                p.parent.mkdir(parents=True, exist_ok=True)
                self._dirs.append(Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)))
        except OSError as e:
            self.discard()
            raise output_error(e, p, what) from e

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.discard()

    def staged(self, i: int) -> Path:
        """Where output ``i`` is written and checked before :meth:`publish`."""
        return self._dirs[i] / self.paths[i].name

    def write(self, i: int, write_fn: Callable[[Path], Any]) -> Path:
        """``write_fn(staged path)``, a failure (full disk...) reported as an :class:`OutputError`."""
        try:
            write_fn(self.staged(i))
        except OSError as e:
            raise output_error(e, self.paths[i], self.what) from e
        return self.staged(i)

    def keep_unverified(self, i: int) -> Path:
        """Move output ``i``'s staging folder to a new visible folder ``NAME.unverified`` (or
        ``NAME.unverified-2``, ...: never a name that exists) for inspection; returns it."""
        p, src = self.paths[i], self._dirs[i]
        for k in range(1, 1000):
            dst = p.with_name(f"{p.name}.unverified" + (f"-{k}" if k > 1 else ""))
            try:
                dst.mkdir()  # claimed: made in this call, so renaming onto it touches nothing else
            except FileExistsError:
                continue
            os.replace(src, dst)
            self._dirs[i] = None
            return dst
        raise OutputError(f"cannot keep '{p}' for inspection: too many {p.name}.unverified folders")

    def publish(self) -> list[Path]:
        """Rename every staged file to its final name (a symlink there is replaced)."""
        mode = _file_mode()
        try:
            for p, d in zip(self.paths, self._dirs):
                for f in sorted(d.iterdir(), key=lambda f: f.name == p.name):  # the main file last
                    os.chmod(f, mode)
                    os.replace(f, p.parent / f.name)
        except OSError as e:
            raise output_error(e, p, self.what) from e
        self.discard()
        return self.paths

    def discard(self) -> None:
        """Remove what is still staged."""
        for i, d in enumerate(self._dirs):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
                self._dirs[i] = None


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_replace(write, path)


# -------------------------------------------------------------------------------------- saving
def _jsonable(obj: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as e:  # ValueError: NaN / inf, which JSON cannot hold
        raise ValueError(f"{where} is not JSON-serialisable ({e}); save models whose arguments are plain values "
                         "(e.g. act_layer='gelu', not a class).") from e


def honest_cfg(pcfg: dict[str, Any]) -> dict[str, Any]:
    """A model's ``pretrained_cfg`` without claims its weights do not support.

    The cfg of a registry name describes the tag's weights (tag, origin URL, dataset, licence,
    notes). When the model's ``provenance`` says its weights are a random initialisation or were
    trained by vidzoo, those claims are removed; a fine-tuned model keeps the licence of the
    weights it started from (recorded in ``provenance``).
    """
    pcfg = dict(pcfg)
    kind = (pcfg.get("provenance") or {}).get("kind")
    if kind in ("random_init", "trained", "fine_tuned", "probe"):
        pcfg.update(tag="", origin_url=None, notes=None)
        pcfg["extra"] = {k: v for k, v in (pcfg.get("extra") or {}).items() if k not in ("dataset", "source_grid")}
        if kind in ("fine_tuned", "probe"):  # the weights it started from carry their licence
            pcfg["license"] = pcfg["provenance"].get("license")
        else:
            pcfg["license"] = None
    return pcfg


def model_config(model: nn.Module) -> dict[str, Any]:
    """The ``config.json`` of a vidzoo model: how to rebuild it, what its input/labels are and
    where its weights came from (``pretrained_cfg.provenance``)."""
    for attr in ("architecture", "model_args", "pretrained_cfg"):
        if not hasattr(model, attr):
            raise ValueError(f"Expected a model made by vidzoo.create_model (it has no '{attr}').")
    pcfg = honest_cfg({k: v for k, v in dict(model.pretrained_cfg).items() if k not in _SOURCE_FIELDS})
    return {
        "format": "vidzoo",
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture,
        "num_classes": int(getattr(model, "num_classes", 0)),
        "num_features": int(getattr(model, "num_features", 0)),
        "model_args": _jsonable(dict(model.model_args), "model.model_args"),
        "pretrained_cfg": _jsonable(pcfg, "model.pretrained_cfg"),
    }


def check_model_folder_destination(path: str | os.PathLike) -> Path:
    """A folder a model may be saved into without replacing anything vidzoo did not write: a new or
    empty folder, or a vidzoo model folder (its ``config.json`` says ``"format": "vidzoo"``; only
    ``config.json`` and ``model.safetensors`` are replaced, nothing else in it is touched). The
    folder is created and checked writable.

    Raises:
        OutputError: A file is in the way, the folder holds something else (an HF transformers
            folder, any other files), it is read-only, or the disk is full.
    """
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        config = path / CONFIG_NAME
        try:
            with open(config, encoding="utf-8") as f:
                ours = json.load(f).get("format") == "vidzoo"
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            held = sorted(p.name for p in path.iterdir())
            raise OutputError(f"cannot write model folder '{path}': it holds files vidzoo did not write "
                              f"({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}) and is not a vidzoo model "
                              "folder; give a new or empty folder")
    return ensure_output_dir(path, "model folder")


def _save_safetensors(tensors: dict[str, Any], path: str, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, its I/O errors (a full disk...) raised as the OSError they are
    (safetensors reports them as ``SafetensorError: ... (os error 28)``)."""
    try:
        save_file(tensors, path, metadata=metadata)
    except SafetensorError as e:
        code = re.search(r"\(os error (\d+)\)", str(e))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from e


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike) -> Path:
    """Save ``model`` as a vidzoo folder: ``config.json`` + ``model.safetensors``.

    Both files are written to a temporary file and renamed into place (weights first), so a
    crash leaves the previous files or the new ones, never a truncated one.

    Returns:
        The folder.
    """
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = model_config(model)
    config["vidzoo_version"] = __version__
    text = json.dumps(config, indent=2, allow_nan=False) + "\n"  # everything that can fail before a byte is written
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_replace(lambda tmp: _save_safetensors(tensors, tmp, {"format": "pt", "architecture": model.architecture}),
                   out / WEIGHTS_NAME)
    atomic_write_text(text, out / CONFIG_NAME)
    return out


def _params_m(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def generate_model_card(model: nn.Module, repo_id: str | None = None) -> str:
    """A README.md for the Hub: architecture, tokenizer, attention, input, label set, license, how to load."""
    cfg = model_config(model)
    args, pcfg = cfg["model_args"], cfg["pretrained_cfg"]
    arch, tag = cfg["architecture"], pcfg.get("tag") or ""
    family = ("ViViT" if arch.startswith("vivit") else "TimeSformer" if arch.startswith("timesformer")
              else "VideoMAE" if arch.startswith("videomae") else "V-JEPA 2" if arch.startswith("vjepa2")
              else "video transformer")
    license_ = pcfg.get("license") or "other"
    C, T, H, W = pcfg.get("input_size") or (args.get("in_chans", 3), model.num_frames, *model.img_size)
    tok = args.get("tokenizer", "uniform")
    patch = args.get("patch_size", 16)
    tok_desc = (f"`{tok}`: {args.get('tubelet_size', 2)}x{patch}x{patch} tubelets (time x height x width)"
                if tok == "tubelet" else f"`{tok}`: every frame cut into {patch}x{patch} patches")
    T_, H_, W_ = model.grid_size
    dataset = (pcfg.get("extra") or {}).get("dataset")  # set by the tags, e.g. 'Kinetics-400'
    prov = pcfg.get("provenance") or {}
    if prov.get("kind") in ("trained", "fine_tuned", "probe") and prov.get("data"):
        dataset = f"trained on {prov['data']}"
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
- **Weights:** {describe_provenance(pcfg.get("provenance"))}
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
    atomic_write_text(card, out / MODEL_CARD_NAME)
    return sorted(p.name for p in out.iterdir())


def push_to_hub(model: nn.Module, repo_id: str, *, commit_message: str = "Add vidzoo model",
                private: bool | None = None, token: str | bool | None = None, revision: str | None = None,
                create_pr: bool = False, model_card: str | None = None) -> Any:
    """Publish ``model`` to the Hub repo ``repo_id`` (created if needed) with ``huggingface_hub.HfApi``.

    Uploads ``config.json``, ``model.safetensors`` and a generated ``README.md`` model card (or
    ``model_card``) in one commit.

    Returns:
        The ``huggingface_hub.CommitInfo`` of the commit (its ``pr_url`` with ``create_pr=True``).

    Raises:
        HubUploadError: Offline, Hub unreachable, not logged in, no write access (one line, naming the repo).
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError
    where = f"Hugging Face Hub repo '{repo_id}'"
    if constants.HF_HUB_OFFLINE:
        raise HubUploadError(f"push_to_hub: cannot upload to {where}: offline mode is on (HF_HUB_OFFLINE=1). "
                             "Unset it, or save the folder with vidzoo.save_pretrained and upload it later.")
    if not hub_reachable():
        raise HubUploadError(f"push_to_hub: cannot upload to {where}: the Hub ({constants.ENDPOINT}) could not be "
                             "reached. Save the folder with vidzoo.save_pretrained and upload it later.")
    with tempfile.TemporaryDirectory(prefix="vidzoo-push-") as tmp:
        try:
            api = HfApi(token=token)
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
            if revision is not None and not create_pr:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            prepare_hub_folder(model, tmp, repo_id=repo_id, model_card=model_card)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                     revision=revision, create_pr=create_pr)
        except HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            why = {401: "not authenticated (log in with `hf auth login` or set HF_TOKEN)",
                   403: "this token may not write to it (check the organisation / token permissions)"}.get(
                status, f"HTTP {status}: {str(e).splitlines()[0]}" if status else str(e).splitlines()[0])
            raise HubUploadError(f"push_to_hub: cannot upload to {where}: {why}") from e
        except OSError as e:  # connection dropped, offline mode turned on, ... (not our own errors)
            if isinstance(e, (HubUploadError, HubDownloadError)):
                raise
            raise HubUploadError(f"push_to_hub: cannot upload to {where}: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else 'connection failed'}") from e


# ------------------------------------------------------------------------------------- loading
def read_model_config(scheme: str, rest: str, is_registered: Callable[[str], bool],
                      closest: Callable[[str], str] = lambda name: "") -> tuple[PretrainedCfg, str, dict[str, Any]]:
    """Read and validate the ``config.json`` of a saved vidzoo model; build nothing.

    Args:
        scheme: ``'hf-hub'`` (``rest`` = ``org/repo`` or ``org/repo@revision``) or ``'local-dir'``
            (``rest`` = folder).
        is_registered: Whether a name is a registered architecture (the caller's registry: this
            module reads files and knows no model).
        closest: Hint naming the closest registered architectures, for the error.

    Returns:
        ``(pretrained_cfg, architecture, model_args)``: the cfg points at the folder's / repo's
        ``model.safetensors`` (format ``vidzoo``); ``architecture`` is a registered name;
        ``model_args`` passed :func:`vidzoo._validation.validate_model_args`.

    Raises:
        FileNotFoundError: ``local-dir:`` folder without ``config.json``.
        HubDownloadError: ``hf-hub:`` config not downloadable.
        ModelConfigError: The config is not valid JSON or not a valid vidzoo config (names the
            file and the field).
    """
    revision = None
    if scheme == "hf-hub":
        repo_id, _, revision = rest.partition("@")
        revision = revision or None
        config_path = download_file(repo_id, CONFIG_NAME, revision)
        where = f"{CONFIG_NAME} of hf-hub:{rest}"
    elif scheme == "local-dir":
        folder = Path(rest).expanduser()
        config_path = str(folder / CONFIG_NAME)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"'{rest}' is not a vidzoo model folder: no {CONFIG_NAME} in it.")
        where = f"'{config_path}'"
    else:
        raise ValueError(f"Unknown model source scheme '{scheme}'; expected 'hf-hub' or 'local-dir'.")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelConfigError(f"{where} cannot be read as JSON ({type(e).__name__}: {str(e).splitlines()[0]}); "
                               "the file is truncated or corrupt. Save the model again.") from e
    try:
        saved, arch, model_args = parse_model_config(config, is_registered, closest)
    except ValueError as e:
        raise ModelConfigError(f"{where}: {e}") from None
    cfg = pretrained_cfg_from_dict(saved)
    if scheme == "hf-hub":
        cfg = cfg.replace(hf_hub_id=repo_id, hf_hub_filename=WEIGHTS_NAME, hf_hub_revision=revision,
                          source_format="vidzoo")
    else:
        cfg = cfg.replace(file=str(Path(rest).expanduser() / WEIGHTS_NAME), source_format="vidzoo")
    return cfg, arch, model_args
