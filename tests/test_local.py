"""The embedded S3: loopback only, persistent data, clean shutdown."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from workbench.errors import LocalS3Error
from workbench.local import LOOPBACK, LocalS3, local_s3
from workbench.storage import Storage


def test_every_listening_port_is_on_loopback(s3_server: LocalS3) -> None:
    addresses = s3_server.listening_addresses()
    assert (LOOPBACK, s3_server.ports["s3"]) in addresses
    assert len(addresses) >= 5
    assert {ip for ip, _ in addresses} == {LOOPBACK}


def test_stop_leaves_no_process_and_no_temporary_folder() -> None:
    server = LocalS3()
    server.start()
    assert server.process is not None
    parent = psutil.Process(server.process.pid)
    family = [parent, *parent.children(recursive=True)]
    data_dir = server.data_dir
    server.stop()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)
    assert not data_dir.exists()


def test_persistent_folder_keeps_objects_and_credentials(tmp_path: Path) -> None:
    with local_s3(data_dir=tmp_path / "s3") as first:
        Storage(first).put_bytes("projects/o/p/kept.txt", b"still here")
    assert (tmp_path / "s3" / "credentials.json").stat().st_mode & 0o077 == 0
    with local_s3(data_dir=tmp_path / "s3") as second:
        assert second.access_key == first.access_key and second.secret_key == first.secret_key
        assert Storage(second).get_bytes("projects/o/p/kept.txt") == b"still here"


def test_a_busy_port_is_a_clear_error(s3_server: LocalS3, tmp_path: Path) -> None:
    server = LocalS3(data_dir=tmp_path / "busy", s3_port=s3_server.ports["s3"])
    with pytest.raises(LocalS3Error):
        server.start(timeout=20)
    assert server.process is None
