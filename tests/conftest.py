"""Shared fixtures: one real SeaweedFS server for the whole session, a fresh bucket per test."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from workbench.config import Secret, Settings
from workbench.local import LocalS3
from workbench.storage import Storage

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3]:
    """The embedded S3 (SeaweedFS on 127.0.0.1) shared by the whole suite."""
    server = LocalS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(s3_server: LocalS3) -> Settings:
    """Settings for a new, empty bucket on the shared server."""
    assert s3_server.settings is not None
    fresh = s3_server.settings.with_(bucket=f"t-{secrets.token_hex(6)}")
    Storage(fresh).ensure_bucket()
    return fresh


@pytest.fixture
def config_file(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file for the test's bucket, named by WORKBENCH_CONFIG; no other AWS_/WORKBENCH_ variable set."""
    path = tmp_path / "workbench.yaml"
    path.write_text(yaml.safe_dump(settings.to_yaml_dict(include_secrets=True)))
    for name in [n for n in os.environ if n.startswith(("AWS_", "WORKBENCH_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKBENCH_CONFIG", str(path))
    return path


@pytest.fixture
def storage(settings: Settings) -> Storage:
    """A :class:`Storage` on a new, empty bucket."""
    return Storage(settings)


@pytest.fixture(scope="session")
def dask_client():
    """One local Dask cluster (a worker process, four threads) for the whole suite."""
    from workbench.cluster import ensure_client

    with ensure_client(n_workers=1) as client:
        yield client


@pytest.fixture(scope="session")
def brighton_images() -> list[Path]:
    """The 18 real DJI images (skipped when ../shared is absent)."""
    folder = SHARED / "datasets" / "brighton_beach" / "images"
    if not folder.is_dir():
        pytest.skip(f"real drone images not available: {folder} is absent")
    return sorted(folder.glob("*.JPG"))


@pytest.fixture(scope="session")
def seneca_images() -> list[Path]:
    """The 14 real senseFly fixed-wing images (skipped when ../shared is absent)."""
    folder = SHARED / "datasets" / "seneca" / "images"
    if not folder.is_dir():
        pytest.skip(f"real drone images not available: {folder} is absent")
    return sorted(folder.glob("*.jpg"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on 127.0.0.1, only for AWS APIs SeaweedFS lacks (transitions, acceleration)."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("moto server did not start")
    yield endpoint
    process.terminate()
    process.wait(10)


@pytest.fixture
def aws_settings(moto_endpoint: str) -> Settings:
    """Settings of profile ``aws`` pointed at the moto server, with a fresh bucket."""
    fresh = Settings(profile="aws", endpoint=moto_endpoint, bucket=f"t-{secrets.token_hex(6)}", access_key="testing",
                     secret_key=Secret("testing"), path_style=True)
    Storage(fresh).ensure_bucket()
    return fresh
