"""Named training recipes: config files shipped with vidzoo (``vidzoo recipes``, ``vidzoo train --recipe``).

A recipe is ``NAME.json`` in this folder, laid out as a run's ``train_config.json``: its ``"config"``
maps :class:`~vidzoo.engine.TrainConfig` field names to values, and beside it ``"summary"`` (one
line), ``"source"`` (where the values come from: paper, table, upstream config file) and
``"notes"`` (where vidzoo differs from the source). Torch-free: listing recipes imports nothing.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

__all__ = ["RECIPE_DIR", "list_recipes", "read_recipe"]

RECIPE_DIR = Path(__file__).resolve().parent


def list_recipes() -> list[str]:
    """The recipe names, sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.json"))


def read_recipe(name: str) -> dict[str, Any]:
    """The recipe file ``name`` as data (``summary``, ``source``, ``notes``, ``config``).

    Raises:
        ValueError: No recipe of that name (naming the closest ones).
    """
    names = list_recipes()
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.4)
        raise ValueError(f"no recipe {name!r}" + (f"; closest: {', '.join(close)}" if close else "")
                         + f" (recipes: {', '.join(names)})")
    return json.loads((RECIPE_DIR / f"{name}.json").read_text(encoding="utf-8"))
