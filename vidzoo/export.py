"""Export a vidzoo model to ONNX or to a ``torch.export`` program (``.pt2``), checked against eager.

Both formats come from one ``torch.export.export`` trace of the model in eval mode, fp32, on the
CPU, with a dynamic batch dimension (every other dimension is fixed at the model's input size:
a position table is built for one clip shape). ONNX goes through torch's dynamo exporter
(``torch.onnx.export(exported_program, dynamo=True)``, opset ``DEFAULT_OPSET`` unless asked);
``.pt2`` is the :class:`torch.export.ExportedProgram` written by ``torch.export.save``.

Every file is written under a temporary name beside its final one, read back and run (onnxruntime
for ONNX, ``torch.export.load`` for ``.pt2``) on random clips of batch sizes other than the traced
one, and compared with the eager model; only when every file of the call passed are they renamed
to their final names (a symlink there is replaced, never written through). A difference above the
tolerance leaves every final name as it was, keeps the failing file in a new folder
``FILE.unverified/`` and raises :class:`ExportCheckError`. The opset written is the one asked for
(torch's exporter writes 18 and above, and converts down where it can; a request it cannot honour
is refused before anything is written). Attention goes through SDPA where vidzoo uses it; if that does not
trace or convert, the export is retried with the eager (matmul + softmax) attention path.

The files carry the model's input description (mean, std, input size, label names): ONNX in the
``metadata_props`` entry ``vidzoo``, ``.pt2`` in the extra file ``vidzoo.json``, both JSON.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ._choices import EXPORT_FORMATS
from ._hub import StagedOutputs
from .layers.attention import set_fused_attn, use_fused_attn

FORMATS = EXPORT_FORMATS
DEFAULT_OPSET = 20  # torch 2.14's dynamo exporter default; onnxruntime >= 1.17 runs it
INPUT_NAME, OUTPUT_NAME = "video", "logits"
METADATA_KEY = "vidzoo"  # ONNX metadata_props key; the .pt2 extra file is METADATA_KEY + ".json"
_TRACE_BATCH = 2  # a batch of 1 would be specialised to a constant by torch.export

PathLike = str | os.PathLike


class ExportCheckError(RuntimeError):
    """The exported file, run back, disagrees with the eager model beyond the tolerance."""


@dataclass
class ExportCheck:
    """One comparison of the exported file with the eager model."""

    batch_size: int
    max_abs_diff: float
    max_allowed: float  # largest atol + rtol * |eager| over the logits (the tolerance at the worst element)
    ok: bool


@dataclass
class ExportResult:
    """What was written and how it was checked."""

    path: Path
    format: str
    input_shape: tuple[Any, ...]  # ('batch', C, T, H, W)
    attention: str  # 'sdpa' (SDPA where vidzoo uses it) or 'eager' (matmul + softmax everywhere)
    sdpa_calls: int  # SDPA nodes in the traced graph
    opset: int | None
    atol: float
    rtol: float
    checks: list[ExportCheck] = field(default_factory=list)
    fallback_reason: str | None = None
    seconds: float = 0.0  # trace + conversion + writing (shared by the files of one call)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)


def format_from_path(path: PathLike) -> str:
    """``'model.onnx'`` -> ``'onnx'``, ``'model.pt2'`` -> ``'pt2'``; ValueError otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the export format from '{path}': expected a .onnx or .pt2 file name "
                         f"(or give the format)")
    return suffix


def export_metadata(model: nn.Module) -> dict[str, Any]:
    """What a user of the exported file needs to feed it: input size, mean/std, labels, sampling."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    keys = ("input_size", "mean", "std", "interpolation", "crop_pct", "sampling", "frame_sample_rate",
            "test_num_clips", "test_num_crops", "num_classes", "label_names", "tag", "license")
    meta: dict[str, Any] = {k: cfg.get(k) for k in keys}
    meta["architecture"] = cfg.get("architecture") or getattr(model, "architecture", None)
    meta["model_args"] = dict(getattr(model, "model_args", None) or {})
    meta["input_name"], meta["output_name"] = INPUT_NAME, OUTPUT_NAME
    meta["input_layout"] = "(batch, C, T, H, W), float32, (x / 255 - mean) / std per channel"
    return json.loads(json.dumps(meta, default=str, allow_nan=False))  # plain JSON types only


@contextlib.contextmanager
def _attention_path(fused: bool) -> Iterator[None]:
    prev = use_fused_attn()
    set_fused_attn(fused)
    try:
        yield
    finally:
        set_fused_attn(prev)


def _count_sdpa(ep: torch.export.ExportedProgram) -> int:
    return sum(1 for n in ep.graph.nodes if n.op == "call_function" and "scaled_dot_product" in str(n.target))


def _trace(model: nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=False)


@contextlib.contextmanager
def _quiet_opset_conversion() -> Iterator[None]:
    """Silence the exporter's warnings about converting to another opset (a conversion that fails
    is reported by :func:`export_model` as one line naming both opsets)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _convert(ep: torch.export.ExportedProgram, fmt: str, opset: int, meta: dict[str, Any]) -> Any:
    """What is written for ``fmt``, in memory: the ONNX program of ``ep``, or ``ep`` for pt2."""
    if fmt == "pt2":
        return ep
    with _quiet_opset_conversion() if opset != DEFAULT_OPSET else contextlib.nullcontext():
        program = torch.onnx.export(ep, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    opset_version=opset, verbose=False)
    _name_batch_dim(program.model)
    program.model.metadata_props[METADATA_KEY] = json.dumps(meta)
    return program


def _write(program: Any, path: Path, fmt: str, meta: dict[str, Any]) -> None:
    if fmt == "pt2":
        # torch's zip writer aborts the process (std::terminate) when a write fails, e.g. on a full
        # disk: the archive is built in memory and written by Python, which raises OSError instead.
        buf = io.BytesIO()
        torch.export.save(program, buf, extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})
        with open(path, "wb") as f:
            f.write(buf.getbuffer())
    else:
        program.save(path)


def _onnx_opset(program: Any) -> int | None:
    return program.model.opset_imports.get("")


def _name_batch_dim(model: Any) -> None:
    """Call the exporter's symbol for the batch size (``s77``...) ``batch`` in every value's shape."""
    import onnx_ir as ir
    sym = model.graph.inputs[0].shape[0]
    if not isinstance(sym, ir.SymbolicDim) or sym.value is None:
        return
    old = sym.value
    values = list(model.graph.inputs) + list(model.graph.outputs) + [v for n in model.graph for v in n.outputs]
    for v in values:
        if v.shape is not None and any(isinstance(d, ir.SymbolicDim) and d.value == old for d in v.shape):
            v.shape = ir.Shape(["batch" if isinstance(d, ir.SymbolicDim) and d.value == old else d for d in v.shape])


def _run_file(path: Path, fmt: str) -> Any:
    """A callable ``x -> logits`` (torch tensors) running the file as a user would (raises if the
    runtime cannot load it)."""
    if fmt == "pt2":
        module = torch.export.load(path).module()
        return lambda x: module(x)
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


@torch.no_grad()
def export_model(model: nn.Module, output: PathLike | Sequence[PathLike], fmt: str | None = None,
                 opset: int | None = None, atol: float = 1e-4, rtol: float = 1e-4,
                 check_batch_sizes: Sequence[int] = (1, 3), seed: int = 0) -> ExportResult | list[ExportResult]:
    """Export ``model`` to ``output`` and check the written file against the eager model.

    Args:
        model: A vidzoo classifier; its ``pretrained_cfg['input_size']`` gives the clip shape.
            It is exported in eval mode, fp32, on the CPU (moved there; left in eval mode).
        output: File to write (its folder is created), or several files (one trace, e.g.
            ``['m.onnx', 'm.pt2']``; their formats come from their suffixes). Each is renamed
            into place only after every file of the call passed its check.
        fmt: ``'onnx'`` or ``'pt2'``; None: from ``output``'s suffix.
        opset: ONNX opset (default ``DEFAULT_OPSET``); the file's opset is exactly this one.
        atol: Absolute tolerance of the check.
        rtol: Relative tolerance of the check (``|file - eager| <= atol + rtol * |eager|``).
        check_batch_sizes: Batch sizes of the random clips the file is checked on (the trace used
            a batch of 2, so 1 and 3 also check the dynamic batch dimension).
        seed: Seed of the random clips.

    Returns:
        An :class:`ExportResult` with the measured differences (a list of them for several files).

    Raises:
        ValueError: Unknown format, a model without an input size, an opset torch cannot write
            (or ``opset`` without an ONNX output).
        ImportError: ONNX export without onnx / onnxscript / onnxruntime installed.
        vidzoo.OutputError: An output is a directory, given twice, in a read-only folder, or the
            disk filled up (nothing is left under any final name).
        ExportCheckError: A file disagrees with the eager model or cannot be run back (it is kept
            in ``FILE.unverified/``; no final name changed).
        RuntimeError: Neither the SDPA nor the eager attention path exports (both errors are named).
    """
    t0 = time.perf_counter()
    several = not isinstance(output, (str, os.PathLike))
    paths = [Path(o) for o in (output if several else [output])]
    if fmt is not None and len(paths) > 1:
        raise ValueError("give one output file with an explicit format, or let each file's suffix name its format")
    fmts = [format_from_path(p) if fmt is None else fmt for p in paths]
    if any(f not in FORMATS for f in fmts):
        raise ValueError(f"export format must be one of {FORMATS}, got {fmt!r}")
    input_size = tuple((getattr(model, "pretrained_cfg", None) or {}).get("input_size") or ())
    if len(input_size) != 4:
        raise ValueError(f"the model has no (C, T, H, W) input_size in its pretrained_cfg (got {input_size!r})")
    if "onnx" in fmts:
        missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(f"ONNX export needs {', '.join(missing)}: pip install {' '.join(missing)} (vidzoo's "
                              "'export' extra: pip install -e '.[export]' in a checkout); a .pt2 needs only torch")
    elif opset is not None:
        raise ValueError(f"an opset ({opset}) applies to ONNX files; {', '.join(map(str, paths))} "
                         f"{'is' if len(paths) == 1 else 'are'} .pt2")
    opset = opset or DEFAULT_OPSET
    with StagedOutputs(paths, "export") as staged:  # output paths checked (and folders made) before any work
        model = model.to("cpu", torch.float32).eval()
        meta = export_metadata(model)
        gen = torch.Generator().manual_seed(seed)
        x_trace = torch.randn(_TRACE_BATCH, *input_size, generator=gen)

        # SDPA first (the path users run); the eager path if SDPA does not trace or convert.
        attempts = [True, False] if use_fused_attn() else [False]
        errors: list[str] = []
        for fused in attempts:
            try:
                with _attention_path(fused):
                    ep = _trace(model, x_trace)
                    programs = [_convert(ep, f, opset, meta) for f in fmts]
                break
            except Exception as e:  # torch raises many types here; the eager retry or the final error names it
                errors.append(f"{'SDPA' if fused else 'eager'} attention: {type(e).__name__}: "
                              f"{str(e).splitlines()[0]}")
        else:
            raise RuntimeError(f"export to {', '.join(fmts)} failed; " + "; ".join(errors))
        for program, f in zip(programs, fmts):
            if f == "onnx" and _onnx_opset(program) != opset:  # torch falls back to 18 when it cannot convert
                raise ValueError(f"ONNX opset {opset} cannot be written for this model (torch's exporter made "
                                 f"opset {_onnx_opset(program)} and could not convert it down); use --opset 18 "
                                 f"or higher (default {DEFAULT_OPSET})")
        for i, (program, f) in enumerate(zip(programs, fmts)):
            staged.write(i, lambda tmp, program=program, f=f: _write(program, tmp, f, meta))
        seconds = time.perf_counter() - t0

        results = []
        checks = [(b, torch.randn(b, *input_size, generator=gen)) for b in check_batch_sizes]
        refs = [model(x).float() for _, x in checks]
        for i, (path, f) in enumerate(zip(paths, fmts)):
            r = ExportResult(path=path, format=f, input_shape=("batch", *input_size),
                             attention="sdpa" if fused else "eager", sdpa_calls=_count_sdpa(ep),
                             opset=opset if f == "onnx" else None, atol=atol, rtol=rtol,
                             fallback_reason=errors[0] if errors else None, metadata=meta)
            try:
                run = _run_file(staged.staged(i), f)
            except Exception as e:  # noqa: BLE001 - onnxruntime / torch.export.load refusing the file
                bad = staged.keep_unverified(i)
                raise ExportCheckError(f"the exported {f} file cannot be run back ({type(e).__name__}: "
                                       f"{str(e).splitlines()[0] if str(e) else ''}); nothing was written to "
                                       f"{', '.join(map(str, paths))}; kept for inspection in {bad}/") from e
            for (b, x), ref in zip(checks, refs):
                got = run(x).float()
                r.checks.append(_compare(got, ref, b, atol, rtol))
                if not r.checks[-1].ok:
                    bad = staged.keep_unverified(i)
                    raise ExportCheckError(
                        f"the exported {f} file disagrees with the eager model on a batch of {b}: "
                        + (f"output shape {tuple(got.shape)} != {tuple(ref.shape)}" if got.shape != ref.shape else
                           f"max |file - eager| = {r.checks[-1].max_abs_diff:.3g} > atol {atol:g} + rtol {rtol:g} "
                           f"x |eager|") + f"; nothing was written to {', '.join(map(str, paths))}; kept for "
                                           f"inspection in {bad}/")
            r.seconds = seconds
            results.append(r)
        del run  # onnxruntime holds the staged file open until its session goes
        staged.publish()
    return results if several else results[0]


def _compare(got: torch.Tensor, ref: torch.Tensor, batch: int, atol: float, rtol: float) -> ExportCheck:
    if got.shape != ref.shape:
        return ExportCheck(batch, float("inf"), 0.0, False)
    err = (got - ref).abs()
    bound = atol + rtol * ref.abs()
    return ExportCheck(batch, err.max().item(), bound.max().item(), bool((err <= bound).all()))


def summary_lines(r: ExportResult) -> list[str]:
    """Human-readable report of an export (what ``vidzoo export`` prints)."""
    size = r.path.stat().st_size / 2**20 if r.path.exists() else float("nan")
    m = r.metadata
    attn = (f"SDPA ({r.sdpa_calls} calls in the graph)" if r.attention == "sdpa" and r.sdpa_calls
            else "SDPA path (this size takes vidzoo's matmul+softmax path on CPU)" if r.attention == "sdpa"
            else "eager matmul+softmax (SDPA did not export: " + str(r.fallback_reason) + ")")
    lines = [f"wrote {r.path} ({r.format}{f', opset {r.opset}' if r.opset else ''}, {size:.1f} MiB, "
             f"exported in {r.seconds:.1f} s)",
             f"  input  '{INPUT_NAME}' {tuple(r.input_shape)} float32 (dynamic batch), output '{OUTPUT_NAME}' "
             f"(batch, {m.get('num_classes')})",
             f"  normalise: (x / 255 - mean) / std, mean {tuple(m.get('mean') or ())}, std {tuple(m.get('std') or ())}",
             f"  attention: {attn}"]
    runner = "onnxruntime (CPU)" if r.format == "onnx" else "torch.export.load(...).module()"
    for c in r.checks:
        lines.append(f"  check vs eager, {runner}, batch {c.batch_size}: max |diff| {c.max_abs_diff:.2e} "
                     f"(tolerance atol {r.atol:g} + rtol {r.rtol:g} x |eager|, at most {c.max_allowed:.2e}) "
                     f"{'OK' if c.ok else 'FAILED'}")
    return lines
