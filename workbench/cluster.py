"""Dask clients: a local cluster sized to the machine, or an existing scheduler (Gateway, Coiled, ...).

EC2 clusters in the bucket's own region are built by :mod:`workbench.ec2`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from workbench.errors import WorkbenchError

LOOPBACK = "127.0.0.1"


def local_client(n_workers: int | None = None, threads_per_worker: int = 4, memory_limit: str = "auto",
                 processes: bool = True) -> Any:
    """A ``distributed.Client`` on a new LocalCluster bound to 127.0.0.1.

    Defaults: one worker process per CPU (at most 8), four threads each (ingest is mostly waiting on
    S3), no dashboard port exposed beyond loopback. ``processes=False`` runs the workers as threads of
    this process (no start-up cost; for work that releases the GIL).
    """
    from distributed import Client, LocalCluster

    workers = n_workers or min(os.cpu_count() or 1, 8)
    # thread workers talk in-process (inproc://); worker processes ignore a terminal's Ctrl+C (see worker_setup)
    network = {"host": LOOPBACK, "preload": ["workbench.worker_setup"]} if processes else {}
    # worker processes log only what is fatal: their warnings and errors (tasks cancelled, a heartbeat to a
    # scheduler that Ctrl+C has just stopped) mean nothing to a user; a task's own failure reaches the caller
    with warnings.catch_warnings():
        # thread workers' inproc:// addresses are named after the IP that would reach 8.8.8.8: offline, distributed
        # warns that there is none, though nothing leaves the process
        warnings.filterwarnings("ignore", message="Couldn't detect a suitable IP address", category=RuntimeWarning)
        with _starting() as held:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=processes,
                                   dashboard_address=f"{LOOPBACK}:0", memory_limit=memory_limit,
                                   silence_logs=logging.CRITICAL, **network)
            client = Client(cluster)
    if held.is_set():  # Ctrl+C came while the workers started: now that they have, close them and stop
        quiet_shutdown()
        client.close()
        cluster.close()
        raise KeyboardInterrupt
    return client


@contextlib.contextmanager
def _starting() -> Iterator[threading.Event]:
    """While a cluster starts, hold a first Ctrl+C (the event is set) rather than raise it; a second one raises.

    Interrupted while its workers start, a LocalCluster cannot close (distributed asserts on a worker still in
    ``Status.init``) and the closing removes what a starting worker process is still reading: distributed's exit
    handler and the worker printed tracebacks under the user's one-line "interrupted". Held, the Ctrl+C waits
    the second or two the start takes. A cluster interrupted anyway (the second Ctrl+C; or outside the main
    thread, where no handler can be set) is closed here as far as it can be, quietly, and not again at exit.
    """
    from distributed.deploy.spec import SpecCluster

    def clusters() -> set[Any]:  # distributed's own registry of live clusters (what its exit handler closes)
        return set(getattr(SpecCluster, "_instances", ()))

    held = threading.Event()

    def hold(*_: Any) -> None:
        quiet_shutdown()  # whatever distributed says from now on (a worker that a terminal's Ctrl+C killed as it
        if held.is_set():  # started, say) is about a cluster the user is stopping
            raise KeyboardInterrupt
        held.set()

    holding = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, hold) if holding else None
    before = clusters()
    try:
        yield held
    except Exception:
        if not held.is_set():
            raise
        _close_quietly(clusters() - before)  # failed to start after a Ctrl+C: its workers got it too
        raise KeyboardInterrupt from None
    except KeyboardInterrupt:
        _close_quietly(clusters() - before)
        raise
    finally:
        if holding:
            signal.signal(signal.SIGINT, previous)


def _close_quietly(clusters: set[Any]) -> None:
    """Close clusters a Ctrl+C left half-started, as far as they can be, and not again at exit."""
    quiet_shutdown()
    for cluster in clusters:
        with contextlib.suppress(Exception):
            cluster.close(timeout=5)
        cluster.shutdown_on_close = False


def connect(address: str) -> Any:
    """A client for an existing scheduler (``tcp://host:8786``, ``tls://...``)."""
    from distributed import Client

    if not address.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://")):
        raise WorkbenchError(f"scheduler address {address!r} must start with tcp://, tls:// or ws(s)://")
    try:
        return Client(address, timeout="15s")
    except OSError as exc:
        raise WorkbenchError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def get_client(kind: str = "local", **options: Any) -> Any:
    """A Dask client: ``"local"`` or a scheduler address (EC2 clusters: :func:`workbench.ec2.ec2_client`)."""
    if kind == "local":
        return local_client(**options)
    return connect(kind)


@contextlib.contextmanager
def ensure_client(client: Any = None, n_workers: int | None = None, threads_per_worker: int = 4,
                  processes: bool = True) -> Iterator[Any]:
    """Yield ``client``; without one, a local cluster (see :func:`local_client`) closed when the block ends."""
    if client is not None:
        yield client
        return
    local = local_client(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes)
    try:
        yield local
    except KeyboardInterrupt:
        quiet_shutdown()  # the cluster is torn down mid-task: its warnings say nothing to the user
        raise
    finally:
        cluster = local.cluster
        local.close()
        cluster.close()


def quiet_shutdown() -> None:
    """No warnings from Dask's shutdown (closed comms, lost workers, cancelled tasks) after Ctrl+C."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def map_completed(client: Any, function: Callable[..., Any], *arguments: Sequence[Any], weights: Sequence[int] | None = None,
                  desc: str = "tasks", unit: str = "task", progress: bool = True) -> Iterator[tuple[int, Any]]:
    """Run ``function`` over ``arguments`` (one task per position) and yield ``(position, result)`` as tasks finish.

    A tqdm bar counts ``weights`` (one per task by default); each result is released from the cluster once
    yielded, so finished results do not pile up in worker memory.
    """
    from distributed import as_completed

    from workbench.progress import bar as progress_bar

    futures = client.map(function, *arguments, pure=False)
    position = {future.key: i for i, future in enumerate(futures)}
    counts = weights if weights is not None else [1] * len(futures)
    with progress_bar(total=sum(counts), desc=desc, unit=unit, disable=not progress) as bar:
        for future in as_completed(futures):
            i = position[future.key]
            yield i, future.result()
            future.release()
            bar.update(counts[i])
    trim_memory(client)


def _trim_this_process() -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc
        return False


def trim_memory(client: Any = None) -> None:
    """Give memory that worker threads freed back to the operating system, here and on ``client``'s workers.

    glibc keeps what threads free in per-thread arenas: after an ingest or a mosaic on threads of a kernel,
    measured 315 MiB held for nothing, which matters with four notebooks open on a 2 GB Binder.
    """
    _trim_this_process()
    if client is not None:
        with contextlib.suppress(Exception):  # a remote or closing cluster: trimming is only a courtesy
            client.run(_trim_this_process)
