"""Verify PMTiles v3 archives: what a browser client relies on, checked from the bytes.

Header fields, the root directory inside the first 16 KiB, gzip internal compression (the JS client
reads nothing else), clustered tile-ID order, tile counts, zoom range, bounds and center, and each tile's
format magic bytes. Reads through ``get_bytes(offset, length)``, so a local file, bytes, or ranged S3
reads all work.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import mmap
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmtiles.tile import (
    Compression,
    TileType,
    deserialize_directory,
    deserialize_header,
    tileid_to_zxy,
)

GetBytes = Callable[[int, int], bytes]
ROOT_LIMIT = 16384
MAGIC = {
    TileType.WEBP: lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    TileType.PNG: lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    TileType.JPEG: lambda b: b[:2] == b"\xff\xd8",
    TileType.MVT: lambda b: len(b) > 0,
}


@dataclasses.dataclass
class ArchiveReport:
    """What the archive holds, and every problem found (empty when valid)."""

    header: dict[str, Any]
    metadata: dict[str, Any]
    tiles_per_zoom: dict[int, int]
    tile_ids: list[int]
    problems: list[str]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def tiles(self) -> set[tuple[int, int, int]]:
        """Every (z, x, y) in the archive."""
        return {tileid_to_zxy(t) for t in self.tile_ids}


def file_reader(path: str | Path) -> GetBytes:
    """``get_bytes`` over a local file, memory-mapped: a large archive is not read into memory."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return lambda offset, length: b""
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return lambda offset, length: data[offset : offset + length]


def _entries(get_bytes: GetBytes, offset: int, length: int, leaf_base: int, depth: int = 0) -> list[tuple[int, int, int, int]]:
    if depth > 3:
        raise ValueError("more than 3 levels of leaf directories")
    out = []
    for entry in deserialize_directory(get_bytes(offset, length)):
        if entry.run_length == 0:
            out += _entries(get_bytes, leaf_base + entry.offset, entry.length, leaf_base, depth + 1)
        else:
            out.append((entry.tile_id, entry.offset, entry.length, entry.run_length))
    return out


def header_bounds(header: dict[str, Any]) -> tuple[float, float, float, float]:
    """West, south, east, north (degrees) of a PMTiles header (which stores them in 1e-7 degrees)."""
    west, south, east, north = (header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7"))
    return west, south, east, north


def stored_reader(storage: Any, key: str) -> GetBytes:
    """``get_bytes`` over an object in the bucket: one ranged GET a call (``storage``: a Storage)."""
    return lambda offset, length: storage.get_bytes(key, (offset, offset + length - 1))


def check_archive(get_bytes: GetBytes, check_tiles: bool = True) -> ArchiveReport:
    """Check an archive (see the module docstring)."""
    problems: list[str] = []
    head = get_bytes(0, ROOT_LIMIT)
    try:
        header: dict[str, Any] = dict(deserialize_header(head[:127]))
    except Exception as exc:  # the pmtiles package raises its own bare exceptions for bad magic/version
        return ArchiveReport({}, {}, {}, [], [f"not a PMTiles v3 archive: {type(exc).__name__}"])
    if header["root_offset"] + header["root_length"] > ROOT_LIMIT:
        problems.append(f"root directory ends at byte {header['root_offset'] + header['root_length']}, past the first 16 KiB")
    if header["internal_compression"] != Compression.GZIP:
        problems.append(f"internal compression {header['internal_compression']} (browsers need gzip)")
    try:
        metadata = json.loads(gzip.decompress(get_bytes(header["metadata_offset"], header["metadata_length"])))
    except (OSError, ValueError) as exc:
        metadata = {}
        problems.append(f"metadata is not gzip JSON: {exc}")
    try:
        entries = _entries(get_bytes, header["root_offset"], header["root_length"], header["leaf_directory_offset"])
    except (OSError, ValueError) as exc:
        return ArchiveReport(header, metadata, {}, [], [*problems, f"directories unreadable: {exc}"])
    tile_ids = [tile for tile_id, _, _, run in entries for tile in range(tile_id, tile_id + run)]
    if any(b <= a for a, b in zip(tile_ids, tile_ids[1:])):
        problems.append("tile IDs are not strictly increasing")
    if header["clustered"]:
        expected = 0
        for tile_id, offset, length, _ in entries:
            if offset > expected:
                problems.append(f"clustered archive has a gap before tile {tile_id}")
                break
            expected = max(expected, offset + length)
    else:
        problems.append("archive is not clustered")
    if header["addressed_tiles_count"] not in (0, len(tile_ids)):
        problems.append(f"header says {header['addressed_tiles_count']} tiles, directories hold {len(tile_ids)}")
    per_zoom: dict[int, int] = defaultdict(int)
    for tile in tile_ids:
        per_zoom[tileid_to_zxy(tile)[0]] += 1
    if tile_ids and (min(per_zoom) < header["min_zoom"] or max(per_zoom) > header["max_zoom"]):
        problems.append(f"tiles at zooms {min(per_zoom)}..{max(per_zoom)} fall outside the header's "
                        f"{header['min_zoom']}..{header['max_zoom']}")
    west, south, east, north = header_bounds(header)
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        problems.append(f"bounds {west}, {south}, {east}, {north} are not a valid box")
    center = (header["center_lon_e7"] / 1e7, header["center_lat_e7"] / 1e7)
    if not (west <= center[0] <= east and south <= center[1] <= north):
        problems.append(f"center {center} is outside the bounds")
    magic = MAGIC.get(header["tile_type"])
    if check_tiles and magic is not None:
        for tile_id, offset, length, _ in entries:
            if not magic(get_bytes(header["tile_data_offset"] + offset, min(length, 16))):
                problems.append(f"tile {tileid_to_zxy(tile_id)} is not {header['tile_type'].name}")
                break
    return ArchiveReport(header, metadata, dict(per_zoom), tile_ids, problems)
