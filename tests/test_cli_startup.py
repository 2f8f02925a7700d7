"""Start-up of the ``vidzoo`` command and the lazy package: ``--help`` of every subcommand answers
without importing torch, every public name still imports, and ``VIDZOO_DEBUG=1`` keeps exit 2.

Each check runs in a fresh interpreter: this test process has long imported torch."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, *, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=REPO)


def test_help_of_every_subcommand_does_not_import_torch():
    r = run_python("""
        import argparse, contextlib, io, sys
        from vidzoo.cli import build_parser, main
        parser = build_parser()
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands = list(subs.choices)
        assert {"list", "info", "train", "eval", "predict", "demo", "convert"} <= set(commands), commands
        for argv in [["--help"], ["--version"]] + [[c, "--help"] for c in commands]:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit as e:
                    assert e.code == 0, (argv, e.code)
            assert "usage: vidzoo" in out.getvalue() or argv == ["--version"], argv
            heavy = [m for m in ("torch", "timm", "torchvision", "numpy", "av") if m in sys.modules]
            assert not heavy, f"vidzoo {' '.join(argv)} imported {heavy}"
        print("checked", len(commands), "subcommands")
    """)
    assert r.returncode == 0, r.stderr
    assert "checked" in r.stdout


def test_import_vidzoo_is_lazy_and_every_public_name_resolves():
    r = run_python("""
        import sys, types
        import vidzoo, vidzoo.engine
        assert "torch" not in sys.modules, "import vidzoo imported torch"
        for mod in (vidzoo, vidzoo.engine):
            missing = [n for n in mod.__all__ if not hasattr(mod, n)]
            assert not missing, (mod.__name__, missing)
            assert set(mod.__all__) <= set(dir(mod))
        # the registry is populated whichever door is used first
        assert "vivit_joint_base_patch16x2_224" in vidzoo.list_models("vivit_*")
        assert vidzoo.is_model("timesformer") and vidzoo.layers and vidzoo.models and vidzoo.tokenizers
        from vidzoo import *  # noqa: F403
        try:
            vidzoo.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("unknown attribute did not raise")
    """)
    assert r.returncode == 0, r.stderr


def test_registry_loads_the_models_when_used_directly():
    """``from vidzoo._factory import create_model`` without touching ``vidzoo.*`` first."""
    r = run_python("""
        from vidzoo._factory import create_model
        m = create_model("vivit_tubelet", embed_dim=32, depth=1, num_heads=2, num_frames=2, img_size=32,
                         patch_size=16, num_classes=3)
        assert m.num_classes == 3
    """)
    assert r.returncode == 0, r.stderr


def test_vidzoo_debug_shows_the_traceback_and_keeps_exit_2(tmp_path):
    missing = tmp_path / "nowhere"
    argv = ["train", "--model", "vivit_joint_tiny_patch16x2_224", "--data", str(missing), "--output",
            str(tmp_path / "o")]
    code = f"import sys; from vidzoo.cli import main; sys.exit(main({argv!r}))"
    plain = run_python(code)
    debug = run_python(code, env={"VIDZOO_DEBUG": "1"})
    assert plain.returncode == 2 and debug.returncode == 2, (plain.stderr, debug.stderr)
    line = f"vidzoo: error: --data '{missing}' does not exist"
    assert plain.stderr.strip() == line
    assert "Traceback (most recent call last)" in debug.stderr and "UserError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == line


def test_startup_benchmark_times_a_command(monkeypatch):
    from benchmarks.startup import time_command
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = time_command(("--help",), runs=2, env=env)
    assert len(times) == 2 and all(t > 0 for t in times)
    try:
        time_command(("no-such-command",), runs=1, env=env)
    except RuntimeError as e:
        assert "failed (rc 2)" in str(e)
    else:
        raise AssertionError("a failing command was timed as if it worked")
