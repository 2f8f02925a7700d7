"""Documentation that matches the code: the generated command reference lists every flag and is
current, model names in the docs are registered, the benchmarks README lists each script's real
flags, and no document points outside the repository."""
import argparse
import itertools
import re
from pathlib import Path

import pytest

import vidzoo
from vidzoo._cli_reference import render_reference
from vidzoo.cli import build_parser
from vidzoo.engine.run_layout import RunLayout
from vidzoo.models.tables import PAPER_FIGURES

REPO = Path(__file__).resolve().parents[1]
CLI_MD = REPO / "docs" / "cli.md"
REGENERATE = "regenerate it: python -m vidzoo._cli_reference docs/cli.md"
DOCS = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _sections(text: str) -> dict[str, str]:
    """``{command: its part of cli.md}`` split at the ``## `vidzoo COMMAND` `` headings."""
    parts = re.split(r"^## `vidzoo ([\w-]+)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_cli_reference_lists_every_subcommand_and_flag():
    sections = _sections(CLI_MD.read_text())
    missing = []
    for name, sub in _subcommands(build_parser()).items():
        if name not in sections:
            missing.append(f"vidzoo {name} (no section)")
            continue
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                if flag not in ("-h", "--help") and f"`{flag}`" not in sections[name]:
                    missing.append(f"vidzoo {name} {flag}")
            if not action.option_strings and f"`{action.dest}" not in sections[name] \
                    and f"`[{action.dest}" not in sections[name] and action.metavar \
                    and f"`{action.metavar}" not in sections[name]:
                missing.append(f"vidzoo {name} {action.dest} (positional)")
    assert not missing, f"docs/cli.md does not document: {', '.join(missing)}; {REGENERATE}"


def test_cli_reference_is_current():
    assert CLI_MD.read_text() == render_reference(), f"docs/cli.md is stale; {REGENERATE}"


def test_every_option_shows_its_default_in_help():
    """Options with a default say so in ``--help`` (options that are unset or off by default say nothing)."""
    for name, sub in _subcommands(build_parser()).items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.default in (None, False, [], argparse.SUPPRESS):
                continue
            text = formatter._expand_help(action) if action.help else ""
            assert "default" in text, f"vidzoo {name} {action.option_strings[0]}: --help does not show its default"
        assert f"--{'threads'}" in sub.format_help() or name not in ("train", "eval", "predict", "demo")


def _expand_braces(name: str) -> list[str]:
    """``vivit_{joint,fenc}_large`` -> both names."""
    parts = re.split(r"\{([^}]*)\}", name)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


MODEL_NAME = re.compile(r"`((?:vivit|timesformer|vidzoo)_[\w{},]+(?:\.[\w{},]+)?)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_model_names_in_the_docs_are_registered(doc):
    from vidzoo.recipes import list_recipes
    recipes = set(list_recipes())  # `timesformer_ft`, `vivit_ft`: recipe names, not models
    unknown = [n for m in MODEL_NAME.findall(doc.read_text()) for n in _expand_braces(m)
               if "*" not in n and not vidzoo.is_model(n) and n not in recipes]
    assert not unknown, f"{doc.name} names models that `vidzoo list` does not know: {unknown}"


def test_readme_model_table_is_the_registry():
    text = (REPO / "README.md").read_text()
    table = text[text.index("## Models"):text.index("vidzoo.list_models(\"vivit_*\")")]
    rows = re.findall(r"^\| `([\w.]+)`", table, flags=re.M)
    assert sorted(rows) == vidzoo.list_models(), "README's model table differs from vidzoo list"
    # and the alias named on each row points at that row's architecture
    for arch, alias in re.findall(r"^\| `([\w.]+)` \(alias `(\w+)`\)", table, flags=re.M):
        assert vidzoo.list_aliases()[alias] == arch


def test_readme_paper_figures_are_the_paper_table():
    """The "paper ..." notes of README's model table state PAPER_FIGURES, and every model in it has one."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("## Models"):text.index("vidzoo.list_models(\"vivit_*\")")]
    stated = {}
    for arch, note in re.findall(r"^\| `([\w.]+)`[^|]*\|[^|]*\|[^|]*\|[^|]*\|(.*)\|$", table, flags=re.M):
        m = re.search(r"paper ([\d.]+)M(?:, ([\d.]+) GMACs)?", note)
        if m:
            stated[arch] = (float(m.group(1)), float(m.group(2)) if m.group(2) else None)
    assert set(stated) == set(PAPER_FIGURES), "README states paper figures for other models than PAPER_FIGURES"
    for arch, (params, gmacs) in stated.items():
        assert params == PAPER_FIGURES[arch].params_m, arch
        assert gmacs is None or gmacs == PAPER_FIGURES[arch].gmacs, arch


def test_docs_name_the_run_folder_as_run_layout_defines_it():
    run = RunLayout("RUN")
    names = {str(p.relative_to(run.root)) + ("/" if p in (run.model_dir, run.tensorboard) else "")
             for p in run.outputs()}
    text = (REPO / "docs" / "training.md").read_text()
    table = text[text.index("## What a run writes"):]
    table = table[:table.index("\n\n", table.index("|"))]
    listed = {name for cell in re.findall(r"^\| ([^|]*) \|", table, flags=re.M)
              for name in re.findall(r"`([^`]+)`", cell)}
    assert listed == names, f"docs/training.md's run folder table lists {sorted(listed ^ names)} unlike RunLayout"
    for doc in DOCS:
        unknown = set(re.findall(r"`(checkpoints/[\w.]+)`", doc.read_text())) - names
        assert not unknown, f"{doc.name} names run files RunLayout does not define: {unknown}"


def test_benchmark_code_names_registered_models():
    pattern = re.compile(r"\b((?:vivit|timesformer|vidzoo)_(?:joint|fenc|fsa|fdp|divided|space)_\w+)")
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        names = set(pattern.findall(script.read_text()))
        unknown = sorted(n for n in names if not vidzoo.is_model(n))
        assert not unknown, f"{script.name} names unregistered models: {unknown}"


def _script_flags(script: Path) -> set[str]:
    """Option strings a benchmark script's parser defines (read from its source), bar the internal ones."""
    src = script.read_text()
    flags = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", src))
    hidden = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"[^)]*help=argparse\.SUPPRESS", src))
    return flags - hidden


def test_benchmarks_readme_lists_each_scripts_real_flags():
    text = (REPO / "benchmarks" / "README.md").read_text()
    bullets = re.findall(r"^- ((?:`\w+\.py`(?: and )?)+)(.*?)(?=^- |^\n)", text, flags=re.M | re.S)
    documented: dict[str, set[str]] = {}
    for scripts, body in bullets:
        for script in re.findall(r"`(\w+\.py)`", scripts):
            documented.setdefault(script, set()).update(re.findall(r"`(--[\w-]+)", body))
    assert set(documented) >= {"bench_models.py", "compare_hf.py", "accuracy.py", "startup.py"}, documented
    for script, flags in documented.items():
        real = _script_flags(REPO / "benchmarks" / script)
        assert flags <= real, f"benchmarks/README.md lists flags {sorted(flags - real)} that {script} does not accept"
        assert real <= flags, f"benchmarks/README.md does not list {script}'s flags {sorted(real - flags)}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")
PATH_IN_CODE = re.compile(r"`((?:\.\./|/)?[\w./-]+\.md)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_point_only_inside_the_repository(doc):
    targets = [t for t in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+://|mailto:", t)]
    targets += PATH_IN_CODE.findall(doc.read_text())
    for target in targets:
        candidates = [(doc.parent / target).resolve(), (REPO / target).resolve()]
        inside = [c for c in candidates if c.is_relative_to(REPO) and c.exists()]
        assert inside, f"{doc.relative_to(REPO)} points at '{target}', which is not a file in the repository"
