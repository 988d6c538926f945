"""Leases on an embedded S3, and the watchdog that stops it once nobody uses it.

Run as a script, ``python watchdog.py DATA_DIR SERVER_PID [--remove]`` (standard library and psutil only,
so it costs a few MiB, not the workbench's imports): started by :class:`workbench.local.LocalS3` in a
session of its own, so it outlives whoever started the server. Every half second it looks at the leases
in ``DATA_DIR/leases`` (one file per process using the server, named by its pid, holding its start
time); when none has been held by a running process for :data:`GRACE` seconds (the last user ended,
however: SIGKILL included), it stops the server's process group and, with ``--remove``, deletes the
(temporary) data folder. It also ends when the server ended by itself or was stopped.

Joining a running server, leaving it and stopping it happen under the folder's lock (:func:`locked`), so
the watchdog never stops a server that a starting notebook has just found running and is about to use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

STATE_FILE = "server.json"
LEASES = "leases"
LOCK_FILE = ".lock"
GRACE = 3.0
INTERVAL = 0.5


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the lock of the server's folder (an ``flock`` on ``DATA_DIR/.lock``); a folder already gone needs none."""
    import fcntl

    if not data_dir.is_dir():
        yield
        return
    with open(data_dir / LOCK_FILE, "a") as handle:  # closing the file releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group of ``pid``, SIGKILL it after ``timeout`` seconds if still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """Whether a process group leader (or any of its group) still runs; a zombie leader counts as ended."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    import psutil

    try:  # a zombie leader (not yet reaped by its parent) still "exists"
        return psutil.Process(pgid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _identity(pid: int) -> str | None:
    """A process's pid with its start time, so a reused pid is not mistaken for a live lease holder."""
    import psutil

    try:
        return f"{pid}@{psutil.Process(pid).create_time():.2f}"
    except psutil.NoSuchProcess:
        return None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (a temporary file renamed), whatever was there."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def add_lease(data_dir: Path, pid: int | None = None) -> None:
    """Register ``pid`` (default: this process) as a user of the server of ``data_dir``."""
    pid = pid or os.getpid()
    folder = data_dir / LEASES
    folder.mkdir(exist_ok=True, mode=0o700)
    write_private(folder / str(pid), _identity(pid) or "")  # atomically: a reader never sees an empty lease


def release_lease(data_dir: Path, pid: int | None = None) -> None:
    """``pid`` (default: this process) no longer uses the server of ``data_dir``."""
    (data_dir / LEASES / str(pid or os.getpid())).unlink(missing_ok=True)


def live_leases(data_dir: Path) -> list[int]:
    """The pids holding a lease on the server of ``data_dir`` that are still running (stale leases removed)."""
    folder = data_dir / LEASES
    alive = []
    for lease in folder.iterdir() if folder.is_dir() else []:
        if not lease.name.isdigit():  # a lease being written (write_private's temporary file)
            continue
        if _identity(int(lease.name)) == lease.read_text().strip():
            alive.append(int(lease.name))
        else:
            lease.unlink(missing_ok=True)
    return sorted(alive)


def watch(data_dir: Path, server_pid: int, remove: bool, grace: float = GRACE) -> None:
    """Wait until the server has no live lease holder for ``grace`` seconds, then stop it (see the module docstring)."""
    unused_since: float | None = None
    while group_alive(server_pid):
        if live_leases(data_dir):
            unused_since = None
        elif unused_since is None:
            unused_since = time.monotonic()
        elif time.monotonic() - unused_since >= grace:
            with locked(data_dir):  # a process that found the server running holds its lease before it lets go
                if not live_leases(data_dir):
                    stop_group(server_pid, timeout=10.0)
                    break
            unused_since = None
        time.sleep(INTERVAL)
    with locked(data_dir):  # a server started since then wrote its own state: only this server's is removed
        state = data_dir / STATE_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state.read_text()).get("pid") == server_pid:
                state.unlink()
    if remove:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    """Entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("server_pid", type=int)
    parser.add_argument("--remove", action="store_true", help="delete the data folder afterwards")
    args = parser.parse_args()
    watch(args.data_dir, args.server_pid, args.remove)


if __name__ == "__main__":
    main()
