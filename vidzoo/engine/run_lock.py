"""An exclusive lock on an output folder, so that two runs never write into the same one.

The lock is a file (``RUN/.vidzoo.lock``) holding the holder's pid, host and start time as JSON.
Where the OS has ``flock`` (Linux, macOS) the holder also keeps an advisory lock on that file for as
long as it runs: the OS drops it when the process dies, however it dies, so a lock file left behind
by a killed run is recognised for certain (and taken over, saying so). Without ``flock`` a lock
file is stale when it names this host and a pid that no longer runs. A lock file naming another
host is never taken over: that run may be alive on a shared file system (the message says which
file to delete if it is not).

The file is removed when the holder releases the lock (on exit, on an error and on Ctrl-C: the
Trainer releases it in a ``finally``).
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .._hub import output_error
from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: pid liveness only
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLock", "RunLockedError"]


class RunLockedError(UserError):
    """The folder is locked by another run (alive, or on another host)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def _describe(info: dict[str, Any]) -> str:
    started = info.get("started")
    when = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" \
        if isinstance(started, (int, float)) else ""
    command = f": {info['command']}" if info.get("command") else ""
    return f"process {info.get('pid', '?')} on host {info.get('host', '?')}{when}{command}"


class RunLock:
    """``RUN/.vidzoo.lock``, taken with :meth:`acquire` and removed with :meth:`release`.

    Args:
        path: The lock file.
        what: What is locked, for messages (``"run folder 'runs/x'"``).
        command: What the holder is doing (shown to a second run that is refused).
    """

    def __init__(self, path: str | os.PathLike, what: str, command: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": self.command}

    def _refuse(self, info: dict[str, Any], other_host: bool = False) -> RunLockedError:
        if other_host:
            return RunLockedError(f"{self.what} is locked by {_describe(info)} ({self.path}); if no run is going "
                                  f"on there, delete {self.path}")
        return RunLockedError(f"{self.what} is in use by another run ({_describe(info)}); wait for it to end, "
                              f"or use another output folder")

    @staticmethod
    def _read_fd(fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        try:  # empty or garbled (its writer stopped mid-write): no holder is named
            info = json.loads(data.decode("utf-8")) if data.strip() else {}
        except (UnicodeDecodeError, ValueError):
            info = {}
        return info if isinstance(info, dict) else {}

    def acquire(self) -> str | None:
        """Take the lock.

        Returns:
            A note when a stale lock (its run no longer running) was taken over, else None.

        Raises:
            RunLockedError: Another run holds it (or a lock of another host is in the way).
            OutputError: The folder cannot be created or written.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise output_error(e, self.path.parent, "output folder") from e
        note = None
        for _ in range(10):  # the file may change between our open and our lock: try again
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (0 if fcntl is not None else os.O_EXCL)
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileExistsError:  # without flock: the file is the lock
                note = self._stale_without_flock()
                continue
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise UserError(f"{self.path} is a symbolic link; remove it (vidzoo never writes through one)") \
                        from e
                raise output_error(e, self.path, "lock file") from e
            try:
                taken = self._lock_fd(fd)
            except BaseException:
                os.close(fd)
                raise
            if taken is not False:
                return taken or note or None
            os.close(fd)
        raise RunLockedError(f"{self.what}: cannot take {self.path} (it keeps changing: another run is starting)")

    def _stale_without_flock(self) -> str:
        """The lock file of a run on this host whose pid is gone is removed (a note says so); any
        other is a refusal."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return ""
        try:
            old = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            old = {}
        old = old if isinstance(old, dict) else {}
        if old.get("host") != socket.gethostname():
            raise self._refuse(old, other_host=True)
        pid = old.get("pid")
        if isinstance(pid, int) and _pid_alive(pid):
            raise self._refuse(old)
        self.path.unlink(missing_ok=True)
        return f"taking over the lock of {_describe(old)}, which is no longer running (it left {self.path} behind)"

    def _lock_fd(self, fd: int) -> str | None | bool:
        """Lock the open lock file ``fd`` and write this process into it; returns a note when a stale
        lock was taken over, None, or False when the file was removed meanwhile (open it again)."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise self._refuse(self._read_fd(fd)) from None
            try:  # the file we locked must still be the one at the path
                if os.stat(self.path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                    return False
            except FileNotFoundError:
                return False
        old = self._read_fd(fd)  # with flock held: whoever wrote it has ended (or it is new and empty)
        note = None
        if old and fcntl is not None:
            if old.get("host") != socket.gethostname():  # flock may not reach across hosts on a shared disk
                raise self._refuse(old, other_host=True)
            note = (f"taking over the lock of {_describe(old)}, which is no longer running "
                    f"(it left {self.path} behind)")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(self._info()) + "\n").encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        return note

    def release(self) -> None:
        """Remove the lock file and drop the lock (removal first: a run waiting on the old file
        then sees that it is gone)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
