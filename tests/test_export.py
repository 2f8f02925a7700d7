"""``vidzoo export``: ONNX (run back with onnxruntime) and torch.export ``.pt2`` for every attention
variant and every tokenizer, the eager-attention fallback, the failing check, and the CLI."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import vidzoo
from vidzoo import export as vz_export
from vidzoo.cli import main
from vidzoo.engine.model_io import save_model_folder
from vidzoo.layers import attention as attn_mod
from vidzoo.models.video_transformer import list_attention
from vidzoo.tokenizers import list_tokenizers

from _outputs import full_folder, no_space, read_only_folder, simulate_read_only

TINY = dict(embed_dim=32, depth=1, num_heads=2, num_frames=4, img_size=32, patch_size=8, num_classes=3)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _tiny(attention: str, tokenizer: str, **kw) -> torch.nn.Module:
    args = dict(TINY, attention=attention, tokenizer=tokenizer, **kw)
    if tokenizer == "tubelet":
        args["tubelet_size"] = 2
    torch.manual_seed(0)
    return vidzoo.create_model("vivit_tubelet", **args).eval()


# Every attention variant once, the tokenizers taken in turn: the tokenizer is the first layer whatever
# attention follows it, so each is exported (3 times) without the 6 x 2 product (~2 s an export).
CASES = [(a, list_tokenizers()[i % len(list_tokenizers())]) for i, a in enumerate(list_attention())]


def test_variants_and_tokenizers_are_all_covered():
    assert set(list_tokenizers()) == {"tubelet", "uniform"} == {t for _, t in CASES}
    assert len(list_attention()) == 6 and {a for a, _ in CASES} == set(list_attention())


@pytest.mark.parametrize("attention,tokenizer", CASES)
def test_export_every_variant(attention, tokenizer, tmp_path):
    model = _tiny(attention, tokenizer)
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        ref = model(x).numpy()

    # One trace, both files (each checked by export_model on batches of 1 and 3).
    r, r2 = vz_export.export_model(model, [tmp_path / "m.onnx", tmp_path / "m.pt2"])
    assert r.format == "onnx" and r.opset == vz_export.DEFAULT_OPSET and r.attention == "sdpa"
    assert [c.batch_size for c in r.checks] == [1, 3] and all(c.ok for c in r.checks)
    assert r.max_abs_diff < 1e-4
    # Independent of export_model's own check: the file, as a user runs it.
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["vidzoo"])
    assert meta["input_size"] == list(model.pretrained_cfg["input_size"])
    assert meta["mean"] == list(model.pretrained_cfg["mean"]) and meta["model_args"]["attention"] == attention
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"video": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)

    assert r2.format == "pt2" and r2.opset is None and all(c.ok for c in r2.checks)
    extra = {"vidzoo.json": ""}
    ep = torch.export.load(tmp_path / "m.pt2", extra_files=extra)
    assert json.loads(extra["vidzoo.json"])["architecture"] == model.architecture
    # The CPU fused-linear fast path must not leak into the graph (it is CPU/oneDNN-only).
    assert not [n for n in ep.graph.nodes if "mkldnn" in str(n.target)]
    np.testing.assert_allclose(ep.module()(x).detach().numpy(), ref, atol=1e-5, rtol=1e-5)


def test_export_vjepa2_with_its_probe(tmp_path):
    """3-D RoPE (non-square grid) + the attentive probe reading two blocks, to ONNX and torch.export."""
    torch.manual_seed(0)
    model = vidzoo.create_model("vjepa2_joint_large_patch16x2_256.diving48", embed_dim=48, depth=3, num_heads=2,
                                attn_pool_heads=4, attn_pool_depth=2, attn_pool_layers=[0, 2], num_frames=4,
                                img_size=(32, 24), patch_size=8, num_classes=3).eval()
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        ref = model(x).numpy()
    r, r2 = vz_export.export_model(model, [tmp_path / "m.onnx", tmp_path / "m.pt2"])
    assert all(c.ok for c in r.checks + r2.checks) and r.max_abs_diff < 1e-4
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["logits"], {"video": x.numpy()})[0], ref, atol=1e-4, rtol=1e-4)
    ep = torch.export.load(tmp_path / "m.pt2")
    np.testing.assert_allclose(ep.module()(x).detach().numpy(), ref, atol=1e-5, rtol=1e-5)


def test_long_sequences_export_through_sdpa(tmp_path):
    # 4 frames x 16 tokens + a class token = 65 tokens: above the CPU short-sequence cut-off.
    model = _tiny("joint", "uniform")
    r = vz_export.export_model(model, tmp_path / "m.pt2")
    assert r.attention == "sdpa" and r.sdpa_calls == 1 and r.fallback_reason is None


def test_sdpa_that_does_not_export_falls_back_to_eager(tmp_path, monkeypatch):
    real_sdpa = attn_mod.F.scaled_dot_product_attention

    def sdpa_not_exportable(*args, **kwargs):
        if torch.compiler.is_exporting():
            raise NotImplementedError("sdpa cannot be traced here")
        return real_sdpa(*args, **kwargs)

    class FakeF:  # torch.nn.functional as vidzoo.layers.attention sees it, SDPA swapped
        def __getattr__(self, name):
            return sdpa_not_exportable if name == "scaled_dot_product_attention" else getattr(torch.nn.functional, name)

    monkeypatch.setattr(attn_mod, "F", FakeF())
    model = _tiny("joint", "uniform")
    r = vz_export.export_model(model, tmp_path / "m.onnx")
    assert r.attention == "eager" and r.sdpa_calls == 0
    assert "sdpa cannot be traced here" in r.fallback_reason
    assert all(c.ok for c in r.checks)
    assert attn_mod.use_fused_attn()  # the global switch is restored
    assert "eager matmul+softmax" in "\n".join(vz_export.summary_lines(r))


def test_export_check_failure_is_loud(tmp_path, monkeypatch):
    real = vz_export._run_file
    monkeypatch.setattr(vz_export, "_run_file", lambda path, fmt: (lambda x, run=real(path, fmt): run(x) + 1e-3))
    with pytest.raises(vz_export.ExportCheckError, match=r"max \|file - eager\| = 0\.001"):
        vz_export.export_model(_tiny("divided", "uniform"), tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists() and (tmp_path / "m.pt2.unverified" / "m.pt2").is_file()


def test_cli_export_saved_model_folder(tmp_path, capsys):
    model = _tiny("factorised_encoder", "tubelet")
    # saved as trained weights: export, like eval/predict, refuses a saved random initialisation
    save_model_folder(model, tmp_path / "model", run_config={"data": "clips/", "epochs": 1}, classes=["a", "b", "c"])
    assert main(["export", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "out" / "m.pt2")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "batch 3: max |diff|" in out and "OK" in out
    x = torch.randn(1, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        got = torch.export.load(tmp_path / "out" / "m.pt2").module()(x)
        np.testing.assert_allclose(got.numpy(), model(x).numpy(), atol=1e-5, rtol=1e-5)


def test_cli_export_errors(tmp_path, capsys):
    assert main(["export", "--model", "vivit_tubelet", "--format", "onnx", "--output", "a.onnx", "b.pt2"]) == 2
    assert "--format applies to one --output" in capsys.readouterr().err
    assert main(["export", "--model", "vivit_tubelet", "--output", str(tmp_path / "m.bin")]) == 2
    assert "expected a .onnx or .pt2" in capsys.readouterr().err
    assert main(["export", "--model", "vivit_tubelett", "--output", str(tmp_path / "m.onnx")]) == 2
    assert "vivit_tubelet" in capsys.readouterr().err


# ------------------------------------------------------------------------------ outputs
def _saved(tmp_path):
    model = _tiny("joint", "tubelet")
    return save_model_folder(model, tmp_path / "model", run_config={"data": "clips/", "epochs": 1},
                             classes=["a", "b", "c"])


def test_export_publishes_only_when_every_output_passed(tmp_path, monkeypatch):
    """The .pt2 of a two-file call fails its check: the previous good .onnx is untouched (the new, verified one is
    not published either), the failing file never gets its final name, and a file the user keeps under the name
    the failure would use is not touched; nothing else is left behind."""
    (tmp_path / "m.onnx").write_bytes(b"previous good export")
    (tmp_path / "m.pt2.unverified").write_text("the user's notes")
    real = vz_export._run_file
    monkeypatch.setattr(vz_export, "_run_file", lambda path, fmt: (
        (lambda x, run=real(path, fmt): run(x) + 1e-3) if fmt == "pt2" else real(path, fmt)))
    with pytest.raises(vz_export.ExportCheckError, match=r"nothing was written to .*m.onnx, .*m.pt2; kept for "
                                                         r"inspection in .*m.pt2.unverified-2/"):
        vz_export.export_model(_tiny("joint", "tubelet"), [tmp_path / "m.onnx", tmp_path / "m.pt2"])
    assert (tmp_path / "m.onnx").read_bytes() == b"previous good export"
    assert (tmp_path / "m.pt2.unverified").read_text() == "the user's notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.pt2.unverified", "m.pt2.unverified-2"]
    assert [p.name for p in (tmp_path / "m.pt2.unverified-2").iterdir()] == ["m.pt2"]


def test_export_replaces_a_symlink_never_its_target(tmp_path, capsys):
    d = _saved(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("not an export")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m.onnx").symlink_to(target)
    assert main(["export", "--model", str(d), "--output", str(tmp_path / "out" / "m.onnx")]) == 0
    assert target.read_text() == "not an export"
    assert not (tmp_path / "out" / "m.onnx").is_symlink() and onnx.load(str(tmp_path / "out" / "m.onnx")).graph
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.onnx"]


def test_export_opset_is_the_files_or_refused(tmp_path, capsys):
    """The opset printed is the file's; one torch cannot write is refused in one line with nothing written."""
    d = _saved(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(d), "--output", str(out), "--opset", "13"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "opset 13 cannot be written" in err and "opset 18" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert main(["export", "--model", str(d), "--output", str(out), "--opset", "17"]) == 0
    assert "opset 17" in capsys.readouterr().out
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain == ""] == [17]
    assert main(["export", "--model", str(d), "--output", str(tmp_path / "m.pt2"), "--opset", "17"]) == 2
    assert "applies to ONNX files" in capsys.readouterr().err


def test_export_output_errors_are_one_line(tmp_path, capsys, monkeypatch):
    d = _saved(tmp_path)
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "file").write_text("x")

    def error(*outputs):
        assert main(["export", "--model", str(d), "--output", *map(str, outputs)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vidzoo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "dir.onnx': it is a directory" in error(tmp_path / "dir.onnx")
    assert "a parent of it is a file" in error(tmp_path / "file" / "m.onnx")
    assert "given twice" in error(tmp_path / "a.onnx", tmp_path / "." / "a.onnx")
    with read_only_folder(tmp_path / "ro", simulate_read_only(monkeypatch)):
        assert "read-only" in error(tmp_path / "ro" / "m.onnx")
    monkeypatch.undo()
    for name in ("m.onnx", "m.pt2"):  # torch's .pt2 writer aborts the process on a full disk: vidzoo's must not
        with full_folder(tmp_path / "full", lambda: monkeypatch.setattr(vz_export, "_write", no_space)) as real:
            assert "the disk is full" in error(tmp_path / "full" / name), real
            assert list((tmp_path / "full").iterdir()) == []  # the partial file is gone
        monkeypatch.undo()
