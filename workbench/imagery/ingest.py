"""Ingest a project's raw images on Dask: metadata by ranged GETs, pixel checks, thumbnails, QA, manifest.

Keys are processed in batches, one Dask task per batch; each task opens its own S3 client. Images
already in the manifest with the same ETag (read by this version of the reader) are not read again,
so a re-run after new uploads costs only the new images. Flight-level work is recomputed from the
manifest on every run, without reading images: heights for cameras that write none
(:mod:`workbench.imagery.ground`), headings from the flight track where no yaw was written, QA flags
(blur is judged against the flight), footprints and coverage.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from workbench import layout
from workbench.config import Settings
from workbench.errors import UnsafeKeyError, WorkbenchError
from workbench.imagery import footprint as fp
from workbench.imagery.ground import HeightOptions, resolve_heights
from workbench.imagery.manifest import (
    COVERAGE_SCHEMA,
    IMAGE_SCHEMA,
    read_table,
    to_table,
    write_table,
)
from workbench.imagery.metadata import ImageMetadata, read_metadata
from workbench.imagery.pixels import PixelStats, analyse
from workbench.imagery.qa import ADVISORY, Thresholds, blur_flags, flight_flags, image_flags
from workbench.storage import Storage, shared_storage

MANIFEST_NAME = "manifest.parquet"
COVERAGE_NAME = "coverage.parquet"
_PIXEL_FIELDS = ("sharpness", "textured_cells", "brightness", "dark_fraction", "bright_fraction")
READER_VERSION = 2  # rows read by an older reader (other tags, another sharpness scale) are read again


@dataclasses.dataclass
class IngestResult:
    """What an ingest run did."""

    manifest_key: str
    coverage_key: str
    rows: list[dict[str, Any]]
    read: int
    reused: int
    bytes_read: int
    seconds: float
    changed: bool = True  # whether the manifest was (re)written

    @property
    def flagged(self) -> list[dict[str, Any]]:
        """Rows of images with at least one QA flag."""
        return [r for r in self.rows if r["flags"]]

    @property
    def missing_footprints(self) -> dict[str, int]:
        """Images without a footprint, counted by cause (see :data:`footprint.MISSING`)."""
        return footprint_gaps(self.rows)

    def summary(self) -> str:
        """What was read, how many are usable, the flags, and why footprints are missing (with the fix)."""
        counts: dict[str, int] = defaultdict(int)
        for row in self.rows:
            for flag in row["flags"]:
                counts[flag] += 1
        flags = ", ".join(f"{n} {flag}" for flag, n in sorted(counts.items())) or "none"
        per_image = self.bytes_read / self.read / 1024 if self.read else 0.0
        usable = sum(bool(r["usable"]) for r in self.rows)
        lines = [f"{len(self.rows)} images ({self.read} read, {self.reused} unchanged), {usable} usable; "
                 f"flags: {flags}; {per_image:.0f} KiB read per image; {self.seconds:.1f} s"]
        if self.missing_footprints:
            lines.append(fp.explain_missing(self.missing_footprints, len(self.rows)))
        return "\n".join(lines)


def footprint_gaps(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Manifest rows without a footprint, counted by cause."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.get("footprint_missing"):
            counts[row["footprint_missing"]] += 1
    return dict(counts)


def manifest_key(org: str, project: str) -> str:
    """Where a project's image manifest lives."""
    return layout.parquet_key("images", org, project, MANIFEST_NAME)


def coverage_key(org: str, project: str) -> str:
    """Where a project's per-flight coverage lives."""
    return layout.parquet_key("coverage", org, project, COVERAGE_NAME)


def read_images(settings: Settings, org: str, project: str, items: Sequence[tuple[str, int, str]], pixels: bool) -> list[dict[str, Any]]:
    """Read one batch of ``(key, size, etag)``: metadata, and with ``pixels`` the pixel checks and thumbnail.

    Runs on a Dask worker. Failures become a row's ``error``, never an exception.
    """
    storage = shared_storage(settings)
    rows = []
    for key, size, etag in items:
        parsed = layout.parse_key(key)
        head = bytearray()

        def reader(start: int, end: int, key: str = key, head: bytearray = head) -> bytes:
            chunk = storage.get_bytes(key, (start, end - 1))
            if start == len(head):  # keep the contiguous prefix for the pixel pass
                head.extend(chunk)
            return chunk

        try:
            meta = read_metadata(parsed.name or key, size, reader, etag=etag)
        except WorkbenchError as exc:
            meta = ImageMetadata(name=parsed.name or key, size=size, etag=etag, error=f"read failed: {exc}")
        row = meta.to_row()
        row.update(key=key, flight=parsed.flight, reader_version=READER_VERSION)
        if pixels and size > 0 and meta.error in (None, "no EXIF metadata", "no EXIF metadata (PNG image)"):
            _add_pixels(storage, org, project, parsed.flight or "", row, bytes(head), size, key)
        rows.append(row)
    return rows


def _add_pixels(storage: Storage, org: str, project: str, flight: str, row: dict[str, Any], head: bytes, size: int, key: str) -> None:
    try:
        data = head + storage.get_bytes(key, (len(head), size - 1)) if len(head) < size else head
        row["bytes_read"] = row["bytes_read"] + len(data) - len(head)
        stats = analyse(data)
    except (WorkbenchError, ValueError) as exc:
        row["error"] = str(exc)
        return
    for name in _PIXEL_FIELDS:
        row[name] = getattr(stats, name)
    thumb = layout.thumbnail_key(org, project, flight, row["name"])
    storage.put_bytes(thumb, stats.thumbnail_webp, content_type="image/webp")
    row["thumbnail_key"] = thumb


def _pixel_stats(row: dict[str, Any]) -> PixelStats | None:
    if row.get("brightness") is None:
        return None
    return PixelStats(row.get("sharpness"), row.get("textured_cells") or 0, row["brightness"],
                      row.get("dark_fraction") or 0.0, row.get("bright_fraction") or 0.0, b"")


def assess(rows: list[dict[str, Any]], thresholds: Thresholds, heights: HeightOptions | None = None,
           dem_opener: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """Add heights, headings, QA flags, reasons, usability and lon/lat footprints to rows; return per-flight
    coverage rows. ``dem_opener`` turns an ``s3://`` DEM into something GDAL opens."""
    heights = heights or HeightOptions()
    by_flight: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_flight[row["flight"]].append(i)
    coverage_rows = []
    for flight, indices in sorted(by_flight.items()):
        metas = [ImageMetadata.from_row(rows[i]) for i in indices]
        no_height = resolve_heights(metas, heights, dem_opener)
        for meta, bearing in zip(metas, fp.track_headings(metas)):
            meta.track_yaw = bearing
        across = flight_flags(metas, thresholds)
        blurry = blur_flags([rows[i].get("sharpness") for i in indices], thresholds)
        polygons, crs = fp.footprints(metas)
        for i, meta, flags, blur, height_reason, polygon in zip(indices, metas, across, blurry, no_height, polygons):
            found = image_flags(meta, _pixel_stats(rows[i]), thresholds) + flags + blur
            if height_reason and meta.lat is not None and not any(f == "unreadable" for f, _ in found):
                found.append(("no_height", height_reason))
            pose = fp.camera_pose(meta)
            rows[i].update(relative_altitude=meta.relative_altitude, height_source=meta.height_source,
                           track_yaw=meta.track_yaw, yaw_source=pose.yaw_source if pose else None,
                           footprint_missing=None if polygon is not None else fp.missing_for_footprint(meta))
            rows[i]["flags"] = [flag for flag, _ in found]
            rows[i]["reasons"] = [reason for _, reason in found]
            rows[i]["usable"] = all(flag in ADVISORY for flag, _ in found)
            rows[i]["geometry"] = fp.to_lonlat(polygon, crs).wkb if polygon is not None and crs else None
        usable = [p for i, p in zip(indices, polygons) if p is not None and rows[i]["usable"]]
        union = fp.coverage(usable)
        times = [m.captured_at for m in metas if m.captured_at]
        coverage_rows.append({
            "flight": flight, "images": len(indices), "usable_images": sum(rows[i]["usable"] for i in indices),
            "first_capture": min(times) if times else None, "last_capture": max(times) if times else None,
            "area_m2": union.area if union is not None else None, "utm_epsg": crs.to_epsg() if crs else None,
            "geometry": fp.to_lonlat(union, crs).wkb if union is not None and crs else None,
        })
    return coverage_rows


def ingest(
    storage: Storage,
    org: str,
    project: str,
    *,
    client: Any = None,
    workers: int | None = None,
    batch_size: int = 10,
    pixels: bool = True,
    thresholds: Thresholds | None = None,
    heights: HeightOptions | None = None,
    progress: bool = True,
) -> IngestResult:
    """Ingest every raw image of a project (see the module docstring); write the manifest and coverage.

    Without ``client``, a local cluster of ``workers`` processes is started for the images to read
    (none when nothing changed) and closed afterwards. ``heights`` gives heights above ground to
    cameras that write none (a flight height, a ground elevation or a DEM).
    """
    started = time.perf_counter()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
        raise WorkbenchError(f"batch size must be a whole number of images from 1 to 10000, got {batch_size!r}")
    thresholds = thresholds or Thresholds()
    prefix = layout.flights_prefix(org, project)
    listed = []
    for info in storage.list(prefix):
        try:
            layout.parse_key(info.key)
        except UnsafeKeyError:
            continue
        listed.append((info.key, info.size, info.etag))
    if not listed:
        raise WorkbenchError(f"no raw images under {storage.url(prefix)}")
    known = {}
    previous = read_table(storage, manifest_key(org, project))
    if previous is not None:
        known = {row["key"]: row for row in previous.to_pylist()}

    def unchanged(key: str, size: int, etag: str) -> bool:
        return (key in known and known[key]["etag"] == etag and known[key]["size"] == size
                and known[key].get("reader_version") == READER_VERSION
                and (known[key].get("brightness") is not None or not pixels or known[key].get("error") is not None))

    reused = [known[item[0]] for item in listed if unchanged(*item)]
    todo = [item for item in listed if not unchanged(*item)]
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    fresh = _run_batches(storage.settings, org, project, batches, pixels, client, workers, progress)
    rows = sorted(reused + fresh, key=lambda r: r["key"])
    coverage_rows = assess(rows, thresholds, heights, _dem_opener(storage))
    manifest = to_table(rows, IMAGE_SCHEMA, ["Polygon"])
    changed = previous is None or fresh or not manifest.equals(previous.select(manifest.column_names).cast(manifest.schema))
    if changed:  # nothing new and the same verdicts: the stored manifest (and what depends on it) stays as it is
        write_table(storage, manifest_key(org, project), manifest)
        write_table(storage, coverage_key(org, project), to_table(coverage_rows, COVERAGE_SCHEMA, ["Polygon", "MultiPolygon"]))
    return IngestResult(
        manifest_key=manifest_key(org, project), coverage_key=coverage_key(org, project), rows=rows,
        read=len(fresh), reused=len(reused), bytes_read=sum(r.get("bytes_read") or 0 for r in fresh),
        seconds=time.perf_counter() - started, changed=bool(changed),
    )


def _dem_opener(storage: Storage) -> Callable[[str], str]:
    """DEM locations for GDAL: ``s3://`` keys of this bucket become presigned URLs; others pass through."""
    def opener(location: str) -> str:
        if not location.startswith("s3://"):
            return location
        bucket, _, key = location[len("s3://"):].partition("/")
        if bucket != storage.settings.bucket:
            raise WorkbenchError(f"the DEM {location} is not in the workbench's bucket {storage.settings.bucket!r}")
        from workbench.presign import Presigner

        return Presigner(storage).get(layout.check_key(key), ttl=900)

    return opener


def _run_batches(settings: Settings, org: str, project: str, batches: list[list[tuple[str, int, str]]], pixels: bool,
                 client: Any, workers: int | None, progress: bool) -> list[dict[str, Any]]:
    if not batches:
        return []
    from workbench.cluster import ensure_client, map_completed

    with ensure_client(client, workers) as active:
        count = len(batches)
        return [row for _, batch_rows in map_completed(
            active, read_images, [settings] * count, [org] * count, [project] * count, batches, [pixels] * count,
            weights=[len(b) for b in batches], desc="ingest", unit="img", progress=progress) for row in batch_rows]

