"""Checksums that match what S3 stores: Content-MD5 headers and (multipart) ETags."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from typing import BinaryIO

MiB = 1024 * 1024
SINGLE_PUT_LIMIT = 16 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
READ_CHUNK = 4 * MiB


def md5_base64(data: bytes) -> str:
    """The ``Content-MD5`` header value for ``data``."""
    return content_md5(hashlib.md5(data).digest())


def content_md5(digest: bytes) -> str:
    """The ``Content-MD5`` header value for a raw MD5 digest."""
    return base64.b64encode(digest).decode("ascii")


def part_size_for(size: int, minimum: int = SINGLE_PUT_LIMIT) -> int:
    """Part size for a multipart upload of ``size`` bytes: at least ``minimum``, at most 10,000 parts.

    The size depends only on the file size, so a resumed upload finds the same part boundaries.
    """
    if minimum < MIN_PART_SIZE:
        raise ValueError(f"parts must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MiB) * MiB)


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each part, numbered from 1 in list order."""
    return [(offset, min(part_size, size - offset)) for offset in range(0, size, part_size)] or [(0, 0)]


def file_part_md5s(handle: BinaryIO, ranges: list[tuple[int, int]], stop: threading.Event | None = None) -> list[bytes]:
    """Raw MD5 digests of each ``(offset, length)`` range of an open file; KeyboardInterrupt once ``stop`` is set."""
    digests = []
    for offset, length in ranges:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        handle.seek(offset)
        digest = hashlib.md5()
        remaining = length
        while remaining:
            chunk = handle.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise OSError("file shrank while it was being read")
            digest.update(chunk)
            remaining -= len(chunk)
        digests.append(digest.digest())
    return digests


def multipart_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the concatenated part MD5s, ``-`` part count."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def local_etag(path: str | os.PathLike[str], single_put_limit: int = SINGLE_PUT_LIMIT, part_size: int | None = None) -> str:
    """The ETag a file will have once uploaded by :mod:`workbench.transfer` (plain MD5 or multipart)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if size <= single_put_limit:
            return file_part_md5s(handle, [(0, size)])[0].hex()
        ranges = part_ranges(size, part_size or part_size_for(size))
        return multipart_etag(file_part_md5s(handle, ranges))
