"""Render the ``vidzoo`` command reference (docs/cli.md) from the argument parser itself, so the
documentation lists exactly the flags the command accepts, with their defaults.

Regenerate after changing the parser::

    python -m vidzoo._cli_reference docs/cli.md

``tests/test_docs.py`` fails when a flag is missing from docs/cli.md or the file is stale.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import build_parser

HEADER = """# `vidzoo` command reference

Every subcommand and every flag, with its default, generated from the command's argument parser
(`python -m vidzoo._cli_reference docs/cli.md`; `tests/test_docs.py` fails when this page is
stale). For the workflow and examples see [training.md](training.md); `vidzoo COMMAND --help`
prints the same information.
"""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _invocation(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """``--opt``, ``--optimizer`` ``{adamw,adam}``: the spellings of an option and what it takes."""
    if not action.option_strings:
        return f"`{formatter._format_args(action, action.dest)}`"
    names = ", ".join(f"`{s}`" for s in action.option_strings)
    if action.nargs == 0:
        return names
    return f"{names} `{formatter._format_args(action, action.dest.upper())}`"


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if isinstance(action, argparse._VersionAction) or action.default is argparse.SUPPRESS:
        return ""
    if isinstance(action, argparse._StoreFalseAction):  # --no-progress: the flag is off, what it turns off is on
        return "off"
    if action.nargs == 0:
        return "off" if action.default is False else ("on" if action.default is True else "")
    if action.default is False:  # an optional value (nargs="?") that is off unless given
        return "off"
    if action.default is None or action.default == []:
        return "-"
    return f"`{action.default}`"


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:
        params = dict(vars(action), prog="vidzoo")
        text = text % {k: (", ".join(map(str, v)) if k == "choices" and v else v) for k, v in params.items()}
    return text


def _actions_table(actions: list[argparse.Action], formatter: argparse.HelpFormatter) -> list[str]:
    rows = ["| argument | default | description |", "|---|---|---|"]
    for a in actions:
        if a.help == argparse.SUPPRESS or isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        rows.append(f"| {_invocation(a, formatter)} | {_cell(_default(a))} | {_cell(_help(a))} |")
    return rows if len(rows) > 2 else []


def _parser_section(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    usage = argparse.HelpFormatter(parser.prog, width=100)  # fixed width: the page must not depend on $COLUMNS
    usage.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    out = ["```text", usage.format_help().strip(), "```", ""]
    if parser.description:
        out += [" ".join(parser.description.split()), ""]
    for group in parser._action_groups:
        table = _actions_table(group._group_actions, formatter)
        if table:
            title = {"positional arguments": "arguments", "optional arguments": "options"}.get(group.title,
                                                                                              group.title)
            out += [f"**{title}**", "", *table, ""]
    for group in parser._mutually_exclusive_groups:
        names = " / ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
        out += [f"At most one of {names}.", ""]
    if parser.epilog:
        out += [" ".join(parser.epilog.split()), ""]
    return out


def render_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown reference of ``parser`` (default: :func:`vidzoo.cli.build_parser`) and its subcommands."""
    parser = parser or build_parser()
    subs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    out = [HEADER, "## `vidzoo`", ""] + _parser_section(parser)
    if subs is not None:
        helps = {a.dest: a.help for a in subs._choices_actions}
        out += ["| command | what it does |", "|---|---|"]
        out += [f"| [`{name}`](#vidzoo-{name}) | {_cell(helps.get(name) or '')} |" for name in subs.choices]
        out.append("")
        for name, sub in subs.choices.items():
            out += [f"## `vidzoo {name}`", ""]
            if helps.get(name) and not sub.description:
                out += [_cell(helps[name]).rstrip(".") + ".", ""]
            out += _parser_section(sub)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m vidzoo._cli_reference [PATH]``: write the reference to PATH (default: stdout)."""
    argv = sys.argv[1:] if argv is None else argv
    text = render_reference()
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
