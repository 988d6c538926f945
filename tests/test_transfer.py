"""Transfers: parallel uploads, skip-if-stored, multipart, resume after a kill, retries, integrity."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench import layout
from workbench.checksums import MiB, local_etag
from workbench.errors import (
    IntegrityError,
    NotFoundError,
    UnsafeKeyError,
    WorkbenchError,
)
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, write_survey
from workbench.transfer import (
    download_file,
    list_parts,
    pending_uploads,
    upload_file,
    upload_folder,
)

FLIGHT = layout.new_id()
SMALL_SURVEY = Survey(lines=2, shots_per_line=3, camera=Camera(width=480, height=320))


def key_for(path: Path) -> str:
    return layout.raw_key("org", "proj", FLIGHT, path.name)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return write_survey(tmp_path / "images", SMALL_SURVEY)


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_folder_upload_then_skip_then_reupload_changed(storage: Storage, images: list[Path]) -> None:
    (images[0].parent / "notes.txt").write_text("not an image")
    first = upload_folder(storage, images[0].parent, key_for, progress=False)
    assert first.count("uploaded") == len(images) and not first.failed
    assert first.ignored and first.ignored[0].endswith("notes.txt")
    for path in images:
        assert storage.head(key_for(path)).etag == hashlib.md5(path.read_bytes()).hexdigest()
    again = upload_folder(storage, images[0].parent, key_for, progress=False)
    assert again.count("skipped") == len(images) and again.bytes_sent == 0
    images[1].write_bytes(images[1].read_bytes() + b"\0")
    third = upload_folder(storage, images[0].parent, key_for, progress=False)
    assert third.count("uploaded") == 1 and third.count("skipped") == len(images) - 1
    assert storage.get_bytes(key_for(images[1])) == images[1].read_bytes()


def test_unsafe_file_name_fails_before_any_request(settings, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "ok.jpg").write_bytes(b"x")
    (folder / "bad;name.jpg").write_bytes(b"x")
    unreachable = Storage(settings.with_(endpoint="http://127.0.0.1:9"))
    with pytest.raises(UnsafeKeyError, match="bad;name.jpg"):
        upload_folder(unreachable, folder, key_for, progress=False)


def test_empty_folder_is_an_error(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no images"):
        upload_folder(storage, tmp_path, key_for, progress=False)


def test_large_file_goes_multipart_and_downloads_identically(storage: Storage, tmp_path: Path) -> None:
    source = random_file(tmp_path / "big.tif", 12 * MiB + 123)
    result = upload_file(storage, source, "projects/o/p/raw/big.tif", single_put_limit=5 * MiB, part_size=5 * MiB)
    assert result.status == "uploaded" and result.parts_sent == 3
    assert result.etag.endswith("-3") and storage.head("projects/o/p/raw/big.tif").etag == result.etag
    assert result.etag == local_etag(source, single_put_limit=5 * MiB, part_size=5 * MiB)
    target = download_file(storage, "projects/o/p/raw/big.tif", tmp_path / "back.tif", progress=False)
    assert target.read_bytes() == source.read_bytes()
    again = upload_file(storage, source, "projects/o/p/raw/big.tif", single_put_limit=5 * MiB, part_size=5 * MiB)
    assert again.status == "skipped"


def test_ten_megabyte_image_is_one_put(storage: Storage, tmp_path: Path) -> None:
    result = upload_file(storage, random_file(tmp_path / "a.jpg", 10 * 1000 * 1000), "projects/o/p/raw/a.jpg")
    assert result.parts_sent == 1 and "-" not in storage.head("projects/o/p/raw/a.jpg").etag


def test_list_parts_follows_pagination(storage: Storage) -> None:
    key = "projects/o/p/raw/parts.bin"
    upload_id = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)["UploadId"]
    for number in range(1, 6):
        storage.client.upload_part(Bucket=storage.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=b"p" * 100)
    assert [p["PartNumber"] for p in list_parts(storage, key, upload_id, page_size=2)] == [1, 2, 3, 4, 5]
    storage.client.abort_multipart_upload(Bucket=storage.bucket, Key=key, UploadId=upload_id)


CHILD = textwrap.dedent(
    """
    import sys, time, yaml
    from workbench.config import load_settings
    from workbench.storage import Storage
    from workbench.transfer import upload_file
    storage = Storage(load_settings(config_file=sys.argv[1], env={}))
    upload_file(storage, sys.argv[2], sys.argv[3], single_put_limit=5 * 2**20, part_size=5 * 2**20,
                part_workers=1, progress=lambda n: time.sleep(0.4))
    """
)


@pytest.mark.slow
def test_killed_multipart_upload_resumes_from_its_parts(storage: Storage, tmp_path: Path) -> None:
    import yaml

    source = random_file(tmp_path / "ortho.tif", 30 * MiB + 7)
    key = "projects/o/p/raw/ortho.tif"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(storage.settings.to_yaml_dict(include_secrets=True)))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(config), str(source), key])
    try:
        deadline = time.monotonic() + 60
        done_parts: list = []
        while time.monotonic() < deadline and len(done_parts) < 2:
            assert child.poll() is None, "the upload finished before it could be killed"
            uploads = pending_uploads(storage, key)
            done_parts = list_parts(storage, key, uploads[0]["UploadId"]) if uploads else []
            time.sleep(0.05)
        assert len(done_parts) >= 2
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not storage.exists(key)
    assert len(pending_uploads(storage, key)) == 1

    result = upload_file(storage, source, key, single_put_limit=5 * MiB, part_size=5 * MiB)
    assert result.status == "resumed"
    assert result.parts_reused >= 2 and result.parts_reused + result.parts_sent == 7
    assert storage.get_bytes(key) == source.read_bytes()
    assert pending_uploads(storage, key) == []


def test_transient_errors_are_retried(storage: Storage, tmp_path: Path) -> None:
    from botocore.awsrequest import AWSResponse

    calls = {"n": 0}

    class Raw:
        def stream(self, **_):
            yield b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    def flaky(request, **_):
        if request.method == "PUT" and calls["n"] < 2:
            calls["n"] += 1
            return AWSResponse(request.url, 503, {}, Raw())
        return None

    storage.client.meta.events.register("before-send.s3.PutObject", flaky)
    result = upload_file(storage, random_file(tmp_path / "x.jpg", 1000), "projects/o/p/raw/x.jpg")
    assert calls["n"] == 2 and result.status == "uploaded"
    assert storage.head("projects/o/p/raw/x.jpg").size == 1000


def test_corrupted_body_is_refused_and_the_stored_version_survives(storage: Storage, tmp_path: Path) -> None:
    key = "projects/o/p/raw/y.jpg"
    original = random_file(tmp_path / "y.jpg", 2000)
    upload_file(storage, original, key)
    stored = storage.get_bytes(key)

    def corrupt(request, **_):
        if request.method == "PUT":
            body = request.body.read() if hasattr(request.body, "read") else request.body
            request.body = b"\xff" * len(body)

    storage.client.meta.events.register("before-send.s3.PutObject", corrupt)
    random_file(original, 2000)  # a new version, whose bytes get corrupted on the wire
    with pytest.raises(IntegrityError, match="corrupted"):
        upload_file(storage, original, key)
    storage.client.meta.events.unregister("before-send.s3.PutObject", corrupt)
    assert storage.get_bytes(key) == stored


def test_download_of_missing_key_leaves_no_file(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        download_file(storage, "projects/o/p/raw/none.jpg", tmp_path / "none.jpg", progress=False)
    assert list(tmp_path.iterdir()) == []
