"""Small helpers shared across vidzoo (no torch.nn modules here)."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable


def closest_names(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Return up to ``n`` registered names closest to ``name`` (for error messages)."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not close:
        # Fall back to names sharing the first word (e.g. the family) so the hint is never empty.
        head = name.split("_")[0]
        close = [c for c in choices if c.startswith(head)][:n]
    return close


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> ValueError:
    """Build the error raised for an unknown registry name, listing the closest matches."""
    choices = sorted(choices)
    close = closest_names(name, choices)
    hint = f" Closest matches: {', '.join(close)}." if close else ""
    return ValueError(f"Unknown {kind} '{name}'.{hint} Registered: {len(choices)} {kind}s"
                      f" ({', '.join(choices[:12])}{', ...' if len(choices) > 12 else ''}).")


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a progress switch: bars only on a terminal when on (None lets tqdm
    check that its stream is one; a pipe or a log file gets no ``\\r`` bars), never when off."""
    return True if progress is False else None


def to_2tuple(x: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Return ``(x, x)`` for an int, or the pair itself (validated)."""
    if isinstance(x, int):
        return (x, x)
    t = tuple(int(v) for v in x)
    if len(t) != 2:
        raise ValueError(f"Expected an int or a pair (H, W), got {x!r}.")
    return t  # type: ignore[return-value]


def user_cache_dir() -> Path:
    """vidzoo's cache folder for small per-machine facts: ``$VIDZOO_CACHE``, else
    ``$XDG_CACHE_HOME/vidzoo``, else ``~/.cache/vidzoo`` (not created here)."""
    if os.environ.get("VIDZOO_CACHE"):
        return Path(os.environ["VIDZOO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vidzoo"
