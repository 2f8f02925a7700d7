"""Start-up of the ``vidzoo`` command and the lazy package: ``--help`` of every subcommand answers
without importing torch, every public name imports whichever door is used first (PyAV absent, as on
the GPU image), and ``VIDZOO_DEBUG=1`` keeps exit 2.

The import checks run in a fresh interpreter: this test process has long imported torch."""
import os

from helpers import MODEL, REPO, run_python, subprocess_env


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


def test_lazy_package_public_names_and_the_registry_without_pyav(tmp_path):
    """``import vidzoo`` imports no torch; every public name resolves; the registry is full when the
    factory is the first module imported; and all of it (the CLI and the trainer included) imports
    where PyAV cannot be imported."""
    blocker = tmp_path / "noav" / "av"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyAV blocked by the test')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), env["PYTHONPATH"]])
    r = run_python("""
        import sys
        import vidzoo, vidzoo.engine
        assert "torch" not in sys.modules, "import vidzoo imported torch"
        from vidzoo._factory import create_model  # the first module that builds: it fills the registry
        m = create_model("vivit_tubelet", embed_dim=32, depth=1, num_heads=2, num_frames=2, img_size=32,
                         patch_size=16, num_classes=3)
        assert m.num_classes == 3
        for mod in (vidzoo, vidzoo.engine):
            missing = [n for n in mod.__all__ if not hasattr(mod, n)]
            assert not missing, (mod.__name__, missing)
            assert set(mod.__all__) <= set(dir(mod))
        assert "vivit_joint_base_patch16x2_224" in vidzoo.list_models("vivit_*")
        assert vidzoo.is_model("timesformer") and vidzoo.layers and vidzoo.models and vidzoo.tokenizers
        from vidzoo import *  # noqa: F403
        try:
            vidzoo.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("unknown attribute did not raise")
        import vidzoo.cli, vidzoo.engine.trainer, vidzoo.data
        from vidzoo.data import decode
        assert decode.av is None
        print("ok")
    """, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_vidzoo_debug_shows_the_traceback_and_keeps_exit_2(tmp_path, cli, monkeypatch):
    missing = tmp_path / "nowhere"
    argv = ["train", "--model", MODEL, "--data", missing, "--output", tmp_path / "o"]
    line = f"vidzoo: error: --data '{missing}' does not exist"
    plain = cli(*argv)
    assert plain.code == 2 and plain.err.strip() == line
    monkeypatch.setenv("VIDZOO_DEBUG", "1")
    debug = cli(*argv)
    assert debug.code == 2
    assert "Traceback (most recent call last)" in debug.err and "UserError" in debug.err
    assert debug.err.strip().splitlines()[-1] == line


def test_startup_benchmark_times_a_command():
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
