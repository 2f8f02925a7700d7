"""One vector per video (or per window of a long video) from a model: ``vidzoo embed``.

A video's embedding is the model's pooled pre-logits features,
``model.forward_head(model.forward_features(clip), pre_logits=True)`` (the class token, the mean of
the tokens or the attentive pooler's output, after ``fc_norm`` where the model has one): ``(D,)``
with ``D = model.num_features``. With several test views (``views``, clips x crops, as ``vidzoo
eval``) the views' vectors are averaged. ``pool="tokens"`` keeps the token grid instead: the last
block's tokens after the final norm, class tokens left out, ``(T', H', W', D)`` on the model's
token grid (``factorised_encoder``: ``(T', 1, 1, D)``, one token per time step of its temporal
encoder; ``space_only``: every frame's own tokens).

``window`` / ``stride`` slide the model's clip window along each video as ``vidzoo predict
--timeline`` does (:mod:`vidzoo.engine.timeline`: the same windows, frames and centre view) and
give one embedding per window, with its start and end time.

Every readable input is embedded even when others cannot be read: an unreadable one (missing, not
a video, undecodable, a folder without videos) gets a row in the index with status ``unreadable``
and its reason, and no embedding. The same inputs with the same options give bit-identical numbers.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .._choices import EMBED_POOLS, ON_ERROR
from .._hub import StagedOutputs, ensure_output_dir
from ..data import UnreadableVideoError, VideoPathDataset
from .compile import maybe_compile
from .data_sources import check_output_outside_data
from .distributed import init_distributed
from .errors import UserError, note
from .evaluation import make_eval_loader
from .inference import parse_views
from .pipelines import build_dataset, input_spec
from .precision import autocast_context, choose_amp
from .video_inputs import VideoInputs, expand_video_inputs

__all__ = ["EmbedRow", "Embeddings", "FeatureExtractor", "embed", "embed_clips", "write_embeddings", "EMBEDDINGS_FILE",
           "INDEX_FILE"]

PathLike = str | os.PathLike
EMBEDDINGS_FILE = "embeddings.safetensors"
INDEX_FILE = "index.csv"
INDEX_COLUMNS = ("row", "path", "label", "status", "start_s", "end_s", "reason")


@dataclass
class EmbedRow:
    """One line of ``index.csv``: an input (or a window of one) and where its embedding is.

    Attributes:
        path: The video file or frame folder.
        label: Its class, when it came from a folder laid out as ``root/<class>/<video>``.
        status: ``ok`` or ``unreadable``.
        row: Its row in ``embeddings`` (None when unreadable).
        start_s: Window start, seconds (windows only).
        end_s: Window end, seconds (windows only).
        reason: Why it could not be read.
    """

    path: str
    label: str | None
    status: str
    row: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    reason: str | None = None

    def csv_row(self) -> list[Any]:
        return ["" if self.row is None else self.row, self.path, self.label or "", self.status,
                "" if self.start_s is None else f"{self.start_s:.3f}", "" if self.end_s is None else f"{self.end_s:.3f}",
                self.reason or ""]


@dataclass
class Embeddings:
    """What :func:`embed` returns (and ``vidzoo embed`` writes).

    Attributes:
        embeddings: float32, ``(N, D)`` vectors or ``(N, T', H', W', D)`` token grids, one per
            readable input (or window), in the order of ``rows``.
        rows: One per input (per window with ``window``), unreadable ones included.
        metadata: How they were made (model, pool, views, window), stored in the safetensors header.
    """

    embeddings: torch.Tensor
    rows: list[EmbedRow]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def unreadable(self) -> list[EmbedRow]:
        return [r for r in self.rows if r.status != "ok"]


class FeatureExtractor(nn.Module):
    """What :func:`embed` runs on a batch of clips ``(B, C, T, H, W)`` as a module of its own (so that
    ``--compile`` compiles it): the pooled pre-logits vector ``(B, D)``, or with ``pool="tokens"`` the
    last block's normed token grid ``(B, T', H', W', D)``."""

    def __init__(self, model: nn.Module, pool: str = "vector") -> None:
        super().__init__()
        self.model, self.pool = model, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "tokens":
            grid = self.model.forward_intermediates(x, indices=1, norm=True, output_fmt="NCTHW",
                                                    intermediates_only=True)[0]
            return grid.permute(0, 2, 3, 4, 1)
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def embed_clips(model: nn.Module, x: torch.Tensor, pool: str = "vector", amp_dtype: torch.dtype | None = None,
                features: nn.Module | None = None) -> torch.Tensor:
    """Embeddings of a batch of clips ``(B, C, T, H, W)``, or of several views ``(B, V, C, T, H, W)``
    (the views' vectors averaged): float32 ``(B, D)``, or ``(B, T', H', W', D)`` with ``pool="tokens"``.
    ``features``: the :class:`FeatureExtractor` of ``model`` to run (a compiled one); default a new one.

    Raises:
        ValueError: ``pool="tokens"`` with several views (token grids of other clips and crops are not
            averaged).
    """
    multi = x.ndim == 6
    b = x.shape[0]
    if multi and pool == "tokens" and x.shape[1] > 1:
        raise ValueError("token grids of several views are not averaged: use one view (--views 1x1) with --pool tokens")
    flat = x.flatten(0, 1) if multi else x
    fn = features if features is not None else FeatureExtractor(model, pool)
    with torch.no_grad(), autocast_context(x.device, amp_dtype):
        out = fn(flat)
    out = out.float()
    if multi:
        out = out.view(b, -1, *out.shape[1:]).mean(dim=1)
    return out.contiguous()


def _check_finite(model: nn.Module, out: torch.Tensor, names: Sequence[str]) -> None:
    """No embedding is made of a NaN / inf: the error names the model and the first input concerned."""
    from .errors import NonFiniteLogitsError
    from .evaluation import model_label
    finite = torch.isfinite(out).flatten(1).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        raise NonFiniteLogitsError(f"{model_label(model)} gave non-finite features for {names[i]}; its weights hold "
                                   "NaN/inf or the computation overflowed; no embedding is written")


@torch.no_grad()
def embed(model: nn.Module, inputs: Sequence[PathLike] | VideoInputs, views: str | tuple[int, int] | None = "1x1",
          window: str | int | None = None, stride: str | int | None = None, pool: str = "vector",
          batch_size: int = 8, workers: int = 0, device: str = "auto", amp: str = "auto",
          sampling: str | None = None, frame_stride: int | None = None, on_error: str = "skip",
          progress: bool = False, compile: bool = False) -> Embeddings:
    """Embed videos (see the module docstring).

    Args:
        model: A vidzoo model (any head: its pooled pre-logits features are read).
        inputs: Video files, frame folders and folders of videos
            (:func:`~vidzoo.engine.video_inputs.expand_video_inputs`; or that expansion).
        views: ``'CLIPSxCROPS'`` test views whose vectors are averaged (None: the model's test
            views); one centre view per window with ``window``.
        window: Window length, seconds (``'2s'``) or frames (``'64'``): one embedding per window
            (video files only). None: one per video, from the model's clip sampling.
        stride: Step between windows (default half the window).
        pool: ``'vector'`` (pooled features) or ``'tokens'`` (the token grid).
        batch_size: Clips (or windows) per forward pass.
        workers: DataLoader workers (without ``window``).
        device: ``auto`` / ``cpu`` / ``cuda``.
        amp: Autocast, as everywhere (``auto``: bf16 on CUDA, fp32 on CPU).
        sampling: Override the model's temporal sampling (without ``window``).
        frame_stride: Override the model's dense sampling stride (the default window with ``window``).
        on_error: ``skip`` (an unreadable input gets a row and no embedding) or ``raise``.
        progress: tqdm bar.
        compile: ``torch.compile`` the feature extractor (:func:`~vidzoo.engine.compile.maybe_compile`);
            its notes and ``--amp auto``'s choice of autocast are said on stderr.

    Raises:
        UserError: A bad option, an unreadable input under ``on_error='raise'``, or no readable input at all.
    """
    if pool not in EMBED_POOLS:
        raise UserError(f"--pool must be one of {', '.join(EMBED_POOLS)}, got {pool!r}")
    if on_error not in ON_ERROR:
        raise UserError(f"--on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if window is None and stride is not None:
        raise UserError("--stride is the step between windows: give --window too")
    dev = init_distributed(device).device
    model = model.to(dev).eval()
    amp_dtype = choose_amp(amp, dev, say=note, model=model, batch=batch_size).dtype
    features = maybe_compile(FeatureExtractor(model, pool), compile, device=dev)
    items = inputs if isinstance(inputs, VideoInputs) else expand_video_inputs(inputs)
    meta = {"format": "vidzoo-embeddings", "pool": pool,
            "model": str(model.pretrained_cfg.get("architecture") or getattr(model, "architecture", "")),
            "num_features": str(getattr(model, "num_features", ""))}
    if window is not None:
        if views not in (None, "1x1", (1, 1)) or sampling is not None:
            raise UserError("--views and --sampling do not apply with --window (one centre view per window, "
                            "frames spread over the window)")
        rows, arrays = _embed_windows(model, features, items, window, stride, frame_stride, pool, batch_size, dev,
                                      amp_dtype, on_error, progress)
        meta.update(window=str(window), stride=str(stride) if stride is not None else "half the window")
    else:
        parsed = parse_views(views, model)
        if pool == "tokens" and parsed != (1, 1):
            raise UserError(f"--pool tokens keeps one clip's token grid: use --views 1x1 (got {parsed[0]}x{parsed[1]})")
        rows, arrays = _embed_videos(model, features, items, parsed, sampling, frame_stride, pool, batch_size,
                                     workers, dev, amp_dtype, on_error, progress)
        meta["views"] = f"{parsed[0]}x{parsed[1]}"
    if not arrays:
        first = rows[0] if rows else None
        raise UserError("no input could be read" + (f" ({len(rows)} given; e.g. '{first.path}': {first.reason})"
                                                    if first else ": none given"))
    result = torch.cat(arrays)
    meta["shape"] = "x".join(map(str, result.shape))
    return Embeddings(result, rows, meta)


def _embed_videos(model: nn.Module, features: nn.Module, items: VideoInputs, views: tuple[int, int], sampling: str | None,
                  frame_stride: int | None, pool: str, batch_size: int, workers: int, dev: torch.device,
                  amp_dtype: torch.dtype | None, on_error: str, progress: bool
                  ) -> tuple[list[EmbedRow], list[torch.Tensor]]:
    from tqdm.auto import tqdm
    spec = input_spec(model, sampling, frame_stride)
    ds = build_dataset(VideoPathDataset(items.paths), spec, train=False, views=views)
    found: dict[int, torch.Tensor] = {}
    bad: dict[int, str] = {i: it.error for i, it in enumerate(items.items) if it.error}
    if bad and on_error == "raise":
        i = min(bad)
        raise UserError(f"cannot read video '{items.items[i].path}': {bad[i]}")
    readable = [i for i in range(len(items)) if i not in bad]
    loader = make_eval_loader(_Subset(ds, readable), batch_size, workers, pin_memory=dev.type == "cuda",
                              on_error=on_error)
    batches = iter(tqdm(loader, desc="embed", leave=False, disable=None if progress else True, dynamic_ncols=True))
    while True:
        try:
            x, _, index, unreadable = next(batches)
        except StopIteration:
            break
        except UnreadableVideoError as e:  # on_error="raise": the first one stops it, named
            raise UserError(str(e).splitlines()[0]) from e
        for u in unreadable:
            bad[readable[u.index]] = u.reason
        if x is None:
            continue
        idx = [readable[j] for j in index.tolist()]
        if tuple(x.shape[-4:]) != spec.shape:
            raise UserError(f"'{items.paths[idx[0]]}' gives clips {tuple(x.shape[-4:])}, the model takes {spec.shape}")
        out = embed_clips(model, x.to(dev), pool, amp_dtype, features).cpu()
        _check_finite(model, out, [f"'{items.paths[i]}'" for i in idx])
        for j, i in enumerate(idx):
            found[i] = out[j]
    rows, arrays = [], []
    for i, it in enumerate(items.items):
        if i in found:
            rows.append(EmbedRow(it.path, it.label, "ok", row=len(arrays)))
            arrays.append(found[i].unsqueeze(0))
        else:
            rows.append(EmbedRow(it.path, it.label, "unreadable", reason=bad.get(i, "unreadable")))
    return rows, arrays


class _Subset(torch.utils.data.Dataset):
    """Items ``indices`` of a dataset that names its samples (``source``)."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def source(self, i: int) -> str:
        return self.dataset.source(self.indices[i])


def _embed_windows(model: nn.Module, features: nn.Module, items: VideoInputs, window: str | int, stride: str | int | None,
                   frame_stride: int | None, pool: str, batch_size: int, dev: torch.device,
                   amp_dtype: torch.dtype | None, on_error: str, progress: bool
                   ) -> tuple[list[EmbedRow], list[torch.Tensor]]:
    from .errors import NonFiniteLogitsError
    from .timeline import predict_timeline

    def window_fn(x: torch.Tensor, name_of) -> torch.Tensor:
        out = embed_clips(model, x, pool, amp_dtype, features)
        _check_finite(model, out, [name_of(j) for j in range(len(out))])
        return out

    rows: list[EmbedRow] = []
    arrays: list[torch.Tensor] = []
    for it in items.items:
        try:
            if it.error:
                raise UserError(it.error)
            if not Path(it.path).exists():
                raise UserError("does not exist")
            if Path(it.path).is_dir():
                raise UserError("a frame folder has no frame rate; --window slides over video files")
            tl = predict_timeline(model, it.path, window, stride, frame_stride, batch_size, dev, amp_dtype,
                                  progress, window_fn=window_fn)
        except NonFiniteLogitsError:
            raise
        except (UserError, UnreadableVideoError) as e:
            why = e.reason if isinstance(e, UnreadableVideoError) else str(e)
            if on_error == "raise":
                raise UserError(f"cannot read video '{it.path}': {why}") from e
            rows.append(EmbedRow(it.path, it.label, "unreadable", reason=str(why).splitlines()[0]))
            continue
        for w, (s, e) in enumerate(zip(tl.starts, tl.ends)):
            rows.append(EmbedRow(it.path, it.label, "ok", row=len(arrays) + w, start_s=tl.time(s), end_s=tl.time(e)))
        arrays.append(tl.probs)
    return rows, arrays


def check_embed_output(output: PathLike, inputs: Sequence[PathLike]) -> Path:
    """The embeddings folder, created and writable, and not inside a folder given as input (the next
    run over that folder would read it as a class folder without videos).

    Raises:
        UserError: ``output`` lies in an input folder.
        vidzoo.OutputError: A file in the way, a read-only folder, a full disk.
    """
    for given in inputs:
        check_output_outside_data(output, given, flag="input folder",
                                  why="it would be read as a folder of that data (a class without videos)")
    return ensure_output_dir(output, "embeddings folder")


def write_embeddings(result: Embeddings, output: PathLike) -> dict[str, Path]:
    """``OUTPUT/embeddings.safetensors`` (tensor ``embeddings``, float32, with the metadata) and
    ``OUTPUT/index.csv`` (``row, path, label, status, start_s, end_s, reason``: one line per input or
    window), staged and renamed into place together: both new files, or neither.

    Returns:
        ``{'embeddings': path, 'index': path}``.
    """
    from safetensors.torch import save_file
    out = ensure_output_dir(output, "embeddings folder")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(INDEX_COLUMNS)
    w.writerows(r.csv_row() for r in result.rows)
    tensors = {"embeddings": result.embeddings.detach().to("cpu", torch.float32).contiguous()}
    paths = [out / EMBEDDINGS_FILE, out / INDEX_FILE]
    with StagedOutputs(paths, "embeddings") as staged:
        staged.write(0, lambda p: save_file(tensors, str(p), metadata=dict(result.metadata)))
        staged.write(1, lambda p: p.write_text(buf.getvalue(), encoding="utf-8"))
        staged.publish()
    return {"embeddings": paths[0], "index": paths[1]}
