"""--compile: torch.compile through vidzoo.engine.compile.maybe_compile, and its one-line eager fallback
where it cannot compile (failures injected: a backend that fails, a backward that fails, no C++
compiler)."""
from __future__ import annotations

import json

import pytest
import torch
import torch._dynamo
from functorch.compile import make_boxed_func
from safetensors.torch import load_file
from torch._dynamo.backends.common import aot_autograd

import vidzoo
from helpers import MODEL, TINY, TINY_SET, train_argv
from vidzoo.engine.compile import CompiledModel, maybe_compile


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test compiles from scratch (dynamo caches per code object, across models)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def no_cxx():
    """A machine without a C++ compiler, as inductor sees it."""
    from torch._inductor import config
    with config.patch({"cpp.cxx": ("/nonexistent/g++",)}):
        yield


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return vidzoo.create_model(MODEL, num_classes=3, num_frames=4, img_size=16, **TINY)


def _failing_backend(gm, example_inputs):
    raise RuntimeError("lowering failed on purpose")


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line]


def test_compiled_model_matches_eager_and_keeps_the_model_interface(capsys):
    """dynamo's trace (backend 'eager': no C++ build) gives eager's logits and gradients; attributes and the
    parameters are the model's."""
    model, x = _model(), torch.randn(2, 3, 4, 16, 16)
    cm = maybe_compile(model, backend="eager")
    assert isinstance(cm, CompiledModel) and cm.num_classes == 3 and cm.pretrained_cfg is model.pretrained_cfg
    assert [p for p in cm.parameters()] == [p for p in model.parameters()]
    out = cm(x)
    assert cm.compiled and cm.first_call_s > 0 and cm.record()["compiled"] is True
    ref = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref.square().sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    assert _lines(capsys.readouterr().err) == [f"vidzoo: --compile: compiled the model in {cm.first_call_s:.1f} s "
                                               f"(first call)"]
    assert maybe_compile(model, False) is model


def test_a_failing_graph_falls_back_to_eager_with_one_line(capsys):
    model, x = _model(), torch.randn(2, 3, 4, 16, 16)
    cm = maybe_compile(model, backend=_failing_backend)
    out = cm(x)  # the first call compiles, fails, and runs eager
    assert torch.equal(out, model(x))
    assert not cm.compiled and "lowering failed on purpose" in cm.fallback_reason
    assert cm.record() == {"compiled": False, "fallback": cm.fallback_reason}
    cm(x)
    assert _lines(capsys.readouterr().err) == [
        "vidzoo: --compile: torch.compile failed (RuntimeError: lowering failed on purpose); running eager"]


def test_a_failing_backward_compile_falls_back_in_the_forward(capsys):
    """AOTAutograd compiles the backward at the first backward, where nothing could fall back; vidzoo has it
    compiled in the forward call, so the step runs eager and its gradients are eager's."""
    model, x = _model(), torch.randn(2, 3, 4, 16, 16)

    def failing_bw(gm, example_inputs):
        raise RuntimeError("backward lowering failed")
    cm = maybe_compile(model, backend=aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm),
                                                   bw_compiler=failing_bw))
    cm(x).sum().backward()
    assert not cm.compiled and "backward lowering failed" in cm.fallback_reason
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert len(_lines(capsys.readouterr().err)) == 1


def test_the_models_own_errors_are_not_taken_for_compile_failures():
    cm = maybe_compile(_model(), backend="eager")
    with pytest.raises(ValueError, match="frames 5 != 4"):
        cm(torch.randn(1, 3, 5, 16, 16))
    assert cm.compiled and cm.fallback_reason is None


def test_no_cxx_compiler_says_why_before_compiling(no_cxx, capsys):
    model = _model()
    cm = maybe_compile(model)  # inductor on the CPU
    assert not cm.compiled and cm.fallback_reason.startswith("no working C++ compiler")
    x = torch.randn(1, 3, 4, 16, 16)
    assert torch.equal(cm(x), model(x))
    assert _lines(capsys.readouterr().err) == [
        "vidzoo: --compile: cannot compile here (no working C++ compiler for inductor's CPU kernels: install g++ "
        "or set CXX); running eager"]


def test_train_eval_predict_compile_fall_back_and_finish(no_cxx, motion, tmp_path, cli):
    """The commands take --compile; where it cannot compile the run says so once and completes."""
    out = tmp_path / "run"
    r = cli(*train_argv(motion, out, *TINY_SET, "--compile", "--amp", "none"))
    assert r.code == 0, r.err
    log = (out / "train.log").read_text()
    assert log.count("--compile: cannot compile here (no working C++ compiler") == 1
    assert ", --compile;" in log and json.loads((out / "train_config.json").read_text())["config"]["compile"] is True

    r = cli("eval", "--model", out, "--data", motion / "val", "--output", tmp_path / "ev", "--compile", "--amp", "none",
            "--no-progress")
    assert r.code == 0, r.err
    assert r.err.count("--compile: cannot compile here") == 1
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["compile"]["compiled"] is False and "C++ compiler" in metrics["compile"]["fallback"]

    video = motion / "val" / "left" / "0000.mp4"
    plain = cli("predict", "--model", out, video, "--json", "--amp", "none")
    r = cli("predict", "--model", out, video, "--json", "--amp", "none", "--compile")
    assert r.code == 0 and json.loads(r.out) == json.loads(plain.out)
    errs = _lines(r.err)
    assert len(errs) == 1 and errs[0].startswith("vidzoo: --compile: cannot compile here"), errs

    assert cli("embed", "--model", out, video, "--output", tmp_path / "emb", "--amp", "none").code == 0
    r = cli("embed", "--model", out, video, "--output", tmp_path / "emb_c", "--amp", "none", "--compile")
    assert r.code == 0 and _lines(r.err) == errs
    assert torch.equal(load_file(tmp_path / "emb_c" / "embeddings.safetensors")["embeddings"],
                       load_file(tmp_path / "emb" / "embeddings.safetensors")["embeddings"])


@pytest.mark.slow
def test_inductor_compiled_logits_and_gradients_equal_eager(capsys):
    """The real thing on this CPU: inductor builds C++ kernels (about 20 s for the forward and backward of a
    tiny model on 2 cores with a cold cache, hence slow)."""
    model, x = _model(), torch.randn(2, 3, 4, 16, 16)
    cm = maybe_compile(model)
    out = cm(x)
    assert cm.compiled, cm.fallback_reason
    ref = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref.square().sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = cm.eval()(x).float(), model(x).float()
    assert cm.compiled and (got - want).norm() / want.norm() < 3e-2
