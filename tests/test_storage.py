"""Storage against the real SeaweedFS: objects, listing, errors that name no secret."""

from __future__ import annotations

import pytest

from workbench.config import Secret, Settings
from workbench.errors import (
    CredentialsError,
    EndpointError,
    NotFoundError,
    UnsafeKeyError,
)
from workbench.storage import Storage


def test_put_get_head_range_copy_delete(storage: Storage) -> None:
    info = storage.put_bytes("projects/o/p/file.bin", b"0123456789", content_type="application/octet-stream")
    assert info.etag == "781e5e245d69b566979b86e28d23f2c7"
    assert storage.get_bytes("projects/o/p/file.bin") == b"0123456789"
    assert storage.get_bytes("projects/o/p/file.bin", byte_range=(2, 4)) == b"234"
    head = storage.head("projects/o/p/file.bin")
    assert head.size == 10 and head.etag == info.etag
    storage.copy("projects/o/p/file.bin", "projects/o/p/copy.bin")
    assert storage.get_bytes("projects/o/p/copy.bin") == b"0123456789"
    assert storage.delete(["projects/o/p/file.bin", "projects/o/p/copy.bin"]) == 2
    assert not storage.exists("projects/o/p/file.bin")
    with pytest.raises(NotFoundError):
        storage.get_bytes("projects/o/p/file.bin")


def test_list_follows_pagination_and_prefixes(storage: Storage) -> None:
    keys = [f"projects/o/p/raw/{i:03d}.jpg" for i in range(7)]
    for key in keys:
        storage.put_bytes(key, key.encode())
    storage.put_bytes("log/o/p/2026-01-01/x.log", b"x")
    listed = list(storage.list("projects/", page_size=2))
    assert [i.key for i in listed] == keys
    assert all(i.size == len(i.key) for i in listed)
    assert list(storage.list_prefixes("")) == ["log/", "projects/"]


def test_unsafe_keys_are_refused_before_any_request(settings: Settings) -> None:
    unreachable = Storage(settings.with_(endpoint="http://127.0.0.1:9"))
    for key in ("../etc/passwd", "/abs", "a/../b", "a/\x07/b"):
        with pytest.raises(UnsafeKeyError):
            unreachable.put_bytes(key, b"x")


def test_wrong_credentials_give_a_clear_error_without_the_secret(settings: Settings) -> None:
    wrong = Storage(settings.with_(secret_key=Secret("WRONG-secret-123")))
    with pytest.raises(CredentialsError) as caught:
        list(wrong.list(""))
    message = str(caught.value)
    assert "refused the credentials" in message and settings.access_key in message
    assert "WRONG-secret-123" not in message and settings.secret_key.reveal() not in message
    assert "\n" not in message


def test_unreachable_endpoint_and_missing_bucket(settings: Settings) -> None:
    with pytest.raises(EndpointError, match="cannot reach"):
        Storage(settings.with_(endpoint="http://127.0.0.1:9")).head("a")
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        list(Storage(settings.with_(bucket="no-such-bucket-here")).list(""))


def test_fsspec_filesystem_reads_the_same_objects(storage: Storage) -> None:
    storage.put_bytes("parquet/images/o/p/a.txt", b"hello fsspec")
    fs = storage.filesystem()
    assert fs.cat(storage.url("parquet/images/o/p/a.txt")) == b"hello fsspec"
    assert "key" in storage.fsspec_options() and "secret" in storage.fsspec_options()
    assert storage.settings.secret_key.reveal() not in repr(storage)
