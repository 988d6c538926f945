"""File transfers: parallel folder uploads, resumable multipart uploads, streamed downloads.

* Files up to 16 MiB go as one PUT (each multipart part is a billed request; boto3's default
  8 MiB threshold would turn one 10 MB drone image into several).
* Larger files go multipart with a part size that depends only on the file size. An interrupted
  upload is found again with ListMultipartUploads, its parts listed with ListParts (paginated past
  1000 parts), and only the parts whose size and MD5 do not match the local file are sent again.
* Every PUT carries ``Content-MD5``, so the server rejects corrupted bodies; the final ETag is
  compared with the one computed locally. A file already stored with the same size and ETag is
  skipped. Transient errors are retried by botocore's standard mode (exponential backoff, jitter).
* Incomplete uploads of the same key that a completed upload supersedes (crashed runs, an older
  version of the file) are aborted and counted, so nobody pays for their parts.
* Two runs uploading the same file at once do not fail each other: a run whose upload was completed or
  aborted by the other checks the stored object, and starts over once if it is not the file.
* Ctrl+C stops queuing files and parts at once; requests already on the wire end within seconds; the
  upload resumes from its stored parts next time.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from workbench.checksums import (
    SINGLE_PUT_LIMIT,
    MiB,
    content_md5,
    file_part_md5s,
    multipart_etag,
    part_ranges,
    part_size_for,
)
from workbench.errors import IntegrityError, NotFoundError, WorkbenchError
from workbench.layout import check_component, check_key
from workbench.progress import bar as progress_bar
from workbench.storage import ObjectInfo, Storage

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".tif", ".tiff", ".png", ".dng", ".webp"})
CONTENT_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".png": "image/png", ".dng": "image/x-adobe-dng", ".webp": "image/webp",
}

Progress = Callable[[int], Any]


class Stopped(KeyboardInterrupt):
    """The upload was asked to stop (Ctrl+C): no new file or part is started."""


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """The outcome of one file upload."""

    key: str
    size: int
    etag: str
    status: str  # "uploaded", "resumed", "skipped" or "stored-by-another" (a concurrent run stored the same file)
    parts_sent: int = 0
    parts_reused: int = 0
    aborted_uploads: int = 0  # incomplete uploads of the same key this one superseded


@dataclasses.dataclass
class UploadReport:
    """The outcome of a folder upload."""

    results: list[UploadResult] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def bytes_sent(self) -> int:
        """Bytes of the files that were uploaded or resumed (not skipped)."""
        return sum(r.size for r in self.results if r.status != "skipped")

    def summary(self) -> str:
        """One line for people."""
        rate = self.bytes_sent / MiB / self.seconds if self.seconds else 0.0
        parts = [f"{self.count('uploaded')} uploaded", f"{self.count('resumed')} resumed", f"{self.count('skipped')} skipped (already stored)"]
        if self.count("stored-by-another"):
            parts.append(f"{self.count('stored-by-another')} stored meanwhile by another upload")
        aborted = sum(r.aborted_uploads for r in self.results)
        if aborted:
            parts.append(f"{aborted} stale incomplete upload(s) aborted")
        if self.failed:
            parts.append(f"{len(self.failed)} FAILED")
        return f"{', '.join(parts)}; {self.bytes_sent / MiB:.1f} MiB in {self.seconds:.1f} s ({rate:.1f} MiB/s)"


def content_type_for(path: str | os.PathLike[str]) -> str:
    """The MIME type the workbench stores a file with."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def _etag_matches(stored: str, expected: str) -> bool:
    return stored.strip('"').lower() == expected.lower()


def upload_file(
    storage: Storage,
    path: str | os.PathLike[str],
    key: str,
    *,
    existing: ObjectInfo | None | bool = True,
    content_type: str | None = None,
    cache_control: str | None = None,
    single_put_limit: int = SINGLE_PUT_LIMIT,
    part_size: int | None = None,
    part_workers: int = 4,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> UploadResult:
    """Upload one file to ``key``: skip if already stored, one PUT if small, resumable multipart if large.

    ``existing`` is what the caller already knows of ``key`` (an :class:`ObjectInfo`, or ``None``
    when it is known to be absent); ``True`` means "ask the store" (one HEAD). Once ``stop`` is set, no
    further part is sent (:class:`Stopped`).
    """
    check_key(key)
    size = os.path.getsize(path)
    headers = {"ContentType": content_type or content_type_for(path)}
    if cache_control:
        headers["CacheControl"] = cache_control
    if existing is True:
        try:
            existing = storage.head(key)
        except NotFoundError:
            existing = None
    if size <= single_put_limit:
        data = Path(path).read_bytes()
        raw_digest = hashlib.md5(data).digest()
        digest = raw_digest.hex()
        if isinstance(existing, ObjectInfo) and existing.size == size and _etag_matches(existing.etag, digest):
            _report(progress, size)
            return UploadResult(key, size, digest, "skipped")
        with storage.errors(f"upload {key}"):
            response = storage.client.put_object(
                Bucket=storage.bucket, Key=key, Body=data, ContentMD5=content_md5(raw_digest), **headers
            )
        _check_etag(key, response["ETag"], digest)
        _report(progress, size)
        return UploadResult(key, size, digest, "uploaded", parts_sent=1)
    return _upload_multipart(storage, Path(path), key, size, existing, headers,
                             part_size or part_size_for(size), part_workers, progress, stop or threading.Event())


def _report(progress: Progress | None, nbytes: int) -> None:
    if progress is not None:
        progress(nbytes)


def _check_etag(key: str, returned: str, expected: str) -> None:
    returned = returned.strip('"').lower()
    plain_md5 = len(returned) == 32 and "-" not in expected
    if (plain_md5 or "-" in returned) and returned != expected.lower():
        raise IntegrityError(f"upload {key}: stored ETag {returned} differs from the local checksum {expected}")


def list_parts(storage: Storage, key: str, upload_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
    """All parts of a multipart upload, following ``NextPartNumberMarker`` past S3's 1000-part pages."""
    parts: list[dict[str, Any]] = []
    marker = 0
    with storage.errors(f"list parts of {key}"):
        while True:
            page = storage.client.list_parts(
                Bucket=storage.bucket, Key=key, UploadId=upload_id, MaxParts=page_size, PartNumberMarker=marker
            )
            parts.extend(page.get("Parts", []))
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])


def pending_uploads(storage: Storage, key: str) -> list[dict[str, Any]]:
    """Incomplete multipart uploads of exactly ``key``, newest first."""
    uploads: list[dict[str, Any]] = []
    paginator = storage.client.get_paginator("list_multipart_uploads")
    with storage.errors(f"list multipart uploads of {key}"):
        for page in paginator.paginate(Bucket=storage.bucket, Prefix=key):
            uploads.extend(u for u in page.get("Uploads", []) if u["Key"] == key)
    return sorted(uploads, key=lambda u: u.get("Initiated") or 0, reverse=True)


def _upload_multipart(
    storage: Storage, path: Path, key: str, size: int, existing: ObjectInfo | None | bool,
    headers: dict[str, str], part_size: int, part_workers: int, progress: Progress | None, stop: threading.Event,
) -> UploadResult:
    ranges = part_ranges(size, part_size)
    with open(path, "rb") as handle:
        md5s = file_part_md5s(handle, ranges, stop)
    expected = multipart_etag(md5s)
    if isinstance(existing, ObjectInfo) and existing.size == size and _etag_matches(existing.etag, expected):
        _report(progress, size)
        return UploadResult(key, size, expected, "skipped")
    for attempt in (1, 2):
        try:
            return _send_multipart(storage, path, key, size, headers, ranges, md5s, expected, part_workers, progress, stop)
        except NotFoundError:  # the upload was completed or aborted under us (another run of the same folder)
            try:
                stored = storage.head(key)
            except NotFoundError:
                stored = None
            if stored is not None and stored.size == size and _etag_matches(stored.etag, expected):
                _report(progress, size)
                return UploadResult(key, size, expected, "stored-by-another")
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _send_multipart(
    storage: Storage, path: Path, key: str, size: int, headers: dict[str, str], ranges: list[tuple[int, int]],
    md5s: list[bytes], expected: str, part_workers: int, progress: Progress | None, stop: threading.Event,
) -> UploadResult:
    reusable: dict[int, str] = {}
    upload_id = None
    pending = pending_uploads(storage, key)
    for upload in pending:
        stored = {int(p["PartNumber"]): p for p in list_parts(storage, key, upload["UploadId"])}
        matching = {
            number: stored[number]["ETag"]
            for number, ((_, length), digest) in enumerate(zip(ranges, md5s), start=1)
            if number in stored and int(stored[number]["Size"]) == length and _etag_matches(stored[number]["ETag"], digest.hex())
        }
        if matching:
            upload_id, reusable = upload["UploadId"], matching
            break
    if upload_id is None:
        with storage.errors(f"start multipart upload of {key}"):
            upload_id = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key, **headers)["UploadId"]
    _report(progress, sum(ranges[n - 1][1] for n in reusable))

    def send(number: int) -> str:
        if stop.is_set():
            raise Stopped()
        offset, length = ranges[number - 1]
        with open(path, "rb") as part_handle:
            part_handle.seek(offset)
            body = part_handle.read(length)
        digest = hashlib.md5(body).digest()
        if digest != md5s[number - 1]:
            raise IntegrityError(f"upload {key}: {path} changed while it was being uploaded")
        with storage.errors(f"upload part {number} of {key}"):
            response = storage.client.upload_part(
                Bucket=storage.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                Body=body, ContentMD5=content_md5(digest),
            )
        _check_etag(f"{key} part {number}", response["ETag"], md5s[number - 1].hex())
        _report(progress, length)
        return response["ETag"]

    missing = [n for n in range(1, len(ranges) + 1) if n not in reusable]
    etags = dict(reusable)
    pool = cf.ThreadPoolExecutor(max_workers=max(1, part_workers))
    try:
        for number, etag in zip(missing, pool.map(send, missing)):
            etags[number] = etag
    except BaseException:
        stop.set()  # a failed or interrupted part: queue nothing more
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    with storage.errors(f"complete multipart upload of {key}"):
        response = storage.client.complete_multipart_upload(
            Bucket=storage.bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
        )
    _check_etag(key, response["ETag"], expected)
    aborted = _abort_superseded(storage, key, [u["UploadId"] for u in pending if u["UploadId"] != upload_id])
    status = "resumed" if reusable else "uploaded"
    return UploadResult(key, size, expected, status, parts_sent=len(missing), parts_reused=len(reusable),
                        aborted_uploads=aborted)


def _abort_superseded(storage: Storage, key: str, upload_ids: list[str]) -> int:
    """Abort incomplete uploads of ``key`` that the stored object supersedes; those already gone are not counted."""
    aborted = 0
    for upload_id in upload_ids:
        try:
            with storage.errors(f"abort a stale multipart upload of {key}"):
                storage.client.abort_multipart_upload(Bucket=storage.bucket, Key=key, UploadId=upload_id)
            aborted += 1
        except NotFoundError:
            continue
    return aborted


def find_images(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Image files directly in ``folder`` (sorted), and the other files that were ignored."""
    root = Path(folder)
    if not root.is_dir():
        raise WorkbenchError(f"{root} is not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]


def upload_files(
    storage: Storage,
    files: Iterable[tuple[Path, str]],
    *,
    workers: int = 8,
    progress: bool = True,
    **file_options: Any,
) -> UploadReport:
    """Upload ``(path, key)`` pairs in parallel with one byte-progress bar; failures are collected, not raised.

    All keys are validated first, and the destination is listed once (one request per 1000 keys)
    instead of one HEAD per file.
    """
    pairs = list(files)
    for _, key in pairs:
        check_key(key)
    keys = [key for _, key in pairs]
    if len(set(keys)) != len(keys):
        raise WorkbenchError("two files would be uploaded to the same key: file names must be unique")
    known = {info.key: info for info in _list_common_prefix(storage, keys)}
    total = sum(os.path.getsize(p) for p, _ in pairs)
    report = UploadReport()
    lock = threading.Lock()
    stop = threading.Event()
    started = time.perf_counter()
    with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload", disable=not progress) as bar:
        def advance(nbytes: int) -> None:
            with lock:
                bar.update(nbytes)

        def one(pair: tuple[Path, str]) -> UploadResult:
            if stop.is_set():
                raise Stopped()
            path, key = pair
            return upload_file(storage, path, key, existing=known.get(key), progress=advance, stop=stop, **file_options)

        pool = cf.ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = {pool.submit(one, pair): pair for pair in pairs}
            for future in cf.as_completed(futures):
                path, _ = futures[future]
                try:
                    report.results.append(future.result())
                except (WorkbenchError, OSError) as exc:
                    report.failed.append((str(path), str(exc)))
        except BaseException:  # Ctrl+C: start nothing more; requests on the wire end by themselves
            stop.set()
            raise
        finally:
            pool.shutdown(wait=not stop.is_set(), cancel_futures=True)
    report.seconds = time.perf_counter() - started
    report.results.sort(key=lambda r: r.key)
    return report


def _list_common_prefix(storage: Storage, keys: list[str]) -> Iterable[ObjectInfo]:
    if not keys:
        return []
    prefix = os.path.commonprefix(keys)
    prefix = prefix[: prefix.rfind("/") + 1]
    return storage.list(prefix)


def upload_folder(
    storage: Storage,
    folder: str | os.PathLike[str],
    key_for: Callable[[Path], str],
    **options: Any,
) -> UploadReport:
    """Upload the images in ``folder`` to the keys ``key_for(path)`` gives (see :func:`upload_files`)."""
    images, ignored = find_images(folder)
    if not images:
        raise WorkbenchError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    for path in images:
        check_component(path.name, what=f"file name {path.name!r}")
    report = upload_files(storage, [(p, key_for(p)) for p in images], **options)
    report.ignored = [str(p) for p in ignored]
    return report


def download_file(
    storage: Storage, key: str, destination: str | os.PathLike[str], *, progress: bool = True, chunk_size: int = MiB
) -> Path:
    """Stream ``key`` to ``destination`` (through ``*.part``, renamed when complete and verified)."""
    check_key(key)
    target = Path(destination)
    if target.is_dir():
        target = target / key.rsplit("/", 1)[-1]
    partial = target.with_name(target.name + ".part")
    with storage.errors(f"download {key}"):
        response = storage.client.get_object(Bucket=storage.bucket, Key=key)
    size = int(response["ContentLength"])
    etag = response["ETag"].strip('"')
    digest = hashlib.md5()
    received = 0
    try:
        with open(partial, "wb") as out, progress_bar(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                               desc=target.name, disable=not progress) as bar:
            with storage.errors(f"download {key}"):
                for chunk in response["Body"].iter_chunks(chunk_size):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if received != size:
            raise IntegrityError(f"download {key}: received {received} of {size} bytes")
        if len(etag) == 32 and "-" not in etag and digest.hexdigest() != etag:
            raise IntegrityError(f"download {key}: MD5 {digest.hexdigest()} differs from the stored ETag {etag}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target

