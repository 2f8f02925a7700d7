"""Folders that cannot take a file, for the tests of output errors.

Where this process may mount (root, as in the project's containers), the folder is real: a 16 KiB
tmpfs (a full disk after a few KiB) or a tmpfs mounted read-only. Elsewhere a read-only folder is
a ``chmod 0o555`` one (not for root, who writes anyway), and a full disk is simulated by the
``simulate`` callable the test passes (a monkeypatched writer raising ``ENOSPC``).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator


@functools.lru_cache(maxsize=1)
def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", d], capture_output=True).returncode:
            return False
        subprocess.run(["umount", d], check=True)
    return True


def no_space(*args, **kwargs):
    """A writer on a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[None]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def full_folder(path: Path, simulate: Callable[[], None]) -> Iterator[bool]:
    """``path`` with almost no space left; yields True when the disk is real, False when simulated."""
    path.mkdir(parents=True, exist_ok=True)
    if can_mount():
        with _tmpfs(path, "size=16k"):
            yield True
    else:
        simulate()
        yield False


@contextlib.contextmanager
def read_only_folder(path: Path, simulate: Callable[[], None]) -> Iterator[bool]:
    """``path``, read-only; yields True when it really is, False when simulated (root without mount)."""
    path.mkdir(parents=True, exist_ok=True)
    if can_mount():
        with _tmpfs(path, "ro,size=16k"):
            yield True
    elif os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield True
        finally:
            path.chmod(0o755)
    else:
        simulate()
        yield False


def read_only(*args, **kwargs):
    """Creating a file in a read-only folder."""
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def simulate_read_only(monkeypatch) -> Callable[[], None]:
    """For :func:`read_only_folder`: every temporary file or folder vidzoo creates fails as on a read-only disk."""
    return lambda: (monkeypatch.setattr(tempfile, "mkstemp", read_only),
                    monkeypatch.setattr(tempfile, "mkdtemp", read_only))
