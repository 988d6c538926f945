"""COG -> raster PMTiles v3 (web mercator), rendered in parallel on Dask, written by one writer.

* Zoom range from the source: the deepest zoom whose pixel is not finer than the source's (at the
  raster's latitude), down to the zoom where the whole raster fits in one tile; both overridable.
* Each Dask task renders one block (a tile and its descendants two zooms down, see ``tile_render``): one
  compact window of the COG, from the overview that suits the block's zoom. Encoded tiles wait in a
  temporary file and are written in tile-ID order by one ``pmtiles.Writer``, so the archive is clustered
  and memory does not grow with the ortho. Empty tiles (nothing under the mask) are skipped; transparency
  is kept (WebP/PNG with alpha). GDAL's block cache is capped on the workers.
* Metadata: bounds, center, min/max zoom, format, name, attribution, tile size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import rasterio
from PIL import Image
from pmtiles.tile import Compression, TileType, tileid_to_zxy, zxy_to_tileid
from pmtiles.writer import Writer
from rasterio.warp import transform_bounds

from workbench import layout
from workbench.errors import WorkbenchError
from workbench.pmtiles_check import ArchiveReport, check_archive, file_reader, header_bounds, stored_reader
from workbench.policy.generations import DEFAULT_KEEP, PruneResult, check_keep, prune_generations
from workbench.tile_render import (
    Block,
    SourceRaster,
    cut_tiles,
    plan_blocks,
    render_block,
)
from workbench.transfer import upload_file

EARTH_CIRCUMFERENCE = 40075016.686
FORMATS = {"webp": TileType.WEBP, "png": TileType.PNG, "jpeg": TileType.JPEG}
GDAL_ENV = {"GDAL_CACHEMAX": 128, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "VSI_CACHE": True}


@dataclasses.dataclass(frozen=True)
class TileOptions:
    """How to tile: zooms (None: from the source), format, quality, tile size, names."""

    minzoom: int | None = None
    maxzoom: int | None = None
    tile_format: str = "webp"
    quality: int = 75  # as GDAL and rio-pmtiles
    tile_size: int = 512
    name: str = "orthophoto"
    attribution: str = ""
    description: str = ""  # what the imagery is (maps show it as a caption), e.g. "quick-look preview ..."

    def __post_init__(self) -> None:
        if self.tile_format not in FORMATS:
            raise WorkbenchError(f"tile format {self.tile_format!r}: choose one of {', '.join(FORMATS)}")
        if self.tile_size not in (256, 512):
            raise WorkbenchError(f"tile size {self.tile_size}: choose 256 or 512")
        if not 1 <= self.quality <= 100:
            raise WorkbenchError(f"quality {self.quality} must be between 1 and 100")


@dataclasses.dataclass(frozen=True)
class TileSummary:
    """What a tiling run produced."""

    path: Path
    minzoom: int
    maxzoom: int
    tiles: int
    tiles_per_zoom: dict[int, int]
    bounds: tuple[float, float, float, float]
    size: int


def source_facts(source: str) -> tuple[tuple[float, float, float, float], float]:
    """Lon/lat bounds and ground resolution (metres per pixel) of a raster."""
    with rasterio.Env(**GDAL_ENV), rasterio.open(source) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        if src.crs.is_geographic:
            resolution = src.res[0] * EARTH_CIRCUMFERENCE / 360 * math.cos(math.radians((bounds[1] + bounds[3]) / 2))
        else:
            resolution = src.res[0] * src.crs.linear_units_factor[1]
    return bounds, resolution


def zoom_range(bounds: tuple[float, float, float, float], resolution: float, tile_size: int = 512) -> tuple[int, int]:
    """(min, max) zoom: max is the deepest zoom whose pixel is not finer than ``resolution``; min is the
    zoom where the raster fits in one tile."""
    latitude = math.radians((bounds[1] + bounds[3]) / 2)
    ground_per_tile_at_zero = EARTH_CIRCUMFERENCE * math.cos(latitude)
    maxzoom = max(0, math.floor(math.log2(ground_per_tile_at_zero / (tile_size * resolution))))
    width_deg = max(bounds[2] - bounds[0], 1e-9)
    minzoom = max(0, min(maxzoom, math.floor(math.log2(360 / width_deg))))
    return minzoom, maxzoom


def _encode(tile: Image.Image, options: TileOptions) -> bytes:
    buffer = io.BytesIO()
    opaque = tile.getchannel("A").getextrema()[0] == 255
    image = tile.convert("RGB") if opaque or options.tile_format == "jpeg" else tile  # alpha only where needed
    if options.tile_format == "jpeg":
        image.save(buffer, "JPEG", quality=options.quality)
    elif options.tile_format == "webp":
        # libwebp method 0 for opaque tiles, 2 with alpha: 2-3.5x faster than the default 4, similar size
        image.save(buffer, "WEBP", quality=options.quality, method=0 if opaque else 2)
    else:
        image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def render_tiles(source: str, block: Block, options: TileOptions) -> list[tuple[int, bytes]]:
    """Render and encode one block's tiles from the raster; runs on a Dask worker. Empty tiles are left out."""
    with rasterio.Env(**GDAL_ENV), SourceRaster(source) as raster:
        image = render_block(raster, block, options.tile_size)
        if image is None:
            return []
        return [(zxy_to_tileid(*zxy), _encode(tile, options)) for zxy, tile in cut_tiles(image, block, options.tile_size)]


class _Spool:
    """Encoded tiles parked in a temporary file as they arrive, handed back in tile-ID order."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="workbench-tiles-")
        self.index: list[tuple[int, int, int]] = []  # tile id, offset, length

    def add(self, tile_id: int, data: bytes) -> None:
        self.index.append((tile_id, self.file.tell(), len(data)))
        self.file.write(data)

    def in_order(self) -> Iterator[tuple[int, bytes]]:
        for tile_id, offset, length in sorted(self.index):
            self.file.seek(offset)
            yield tile_id, self.file.read(length)


def write_pmtiles(source: str, destination: str | Path, options: TileOptions | None = None, client: Any = None,
                  progress: bool = True) -> TileSummary:
    """Tile ``source`` (a COG path or URL) into the PMTiles file ``destination``.

    Without ``client`` the blocks are rendered by threads of this process (GDAL's reads, Pillow's resampling
    and libwebp release the GIL, and no worker processes have to start): measured faster than worker
    processes on 2 CPUs. Encoded tiles wait in a temporary file, not in memory, until they are written.
    """
    from workbench.cluster import ensure_client, map_completed

    options = options or TileOptions()
    bounds, resolution = source_facts(source)
    auto_min, auto_max = zoom_range(bounds, resolution, options.tile_size)
    minzoom = auto_min if options.minzoom is None else options.minzoom
    maxzoom = auto_max if options.maxzoom is None else options.maxzoom
    if not 0 <= minzoom <= maxzoom <= 24:
        raise WorkbenchError(f"zoom range {minzoom}..{maxzoom} is not valid (0 <= min <= max <= 24)")
    blocks = plan_blocks(bounds, minzoom, maxzoom, options.tile_size)
    threads = (os.cpu_count() or 1) + 1
    spool = _Spool()
    with spool.file, ensure_client(client, n_workers=1, threads_per_worker=threads, processes=False) as active:
        for _, tiles in map_completed(active, render_tiles, [source] * len(blocks), blocks, [options] * len(blocks),
                                      weights=[len(b.tiles) for b in blocks], desc="tiles", unit="tile", progress=progress):
            for tile_id, data in tiles:
                spool.add(tile_id, data)
        if not spool.index:
            raise WorkbenchError(f"{source} produced no tiles: is it empty or entirely masked?")
        return _write_archive(Path(destination), spool.in_order(), bounds, minzoom, maxzoom, options)


def _write_archive(path: Path, tiles: Iterable[tuple[int, bytes]], bounds: tuple[float, float, float, float],
                   minzoom: int, maxzoom: int, options: TileOptions) -> TileSummary:
    per_zoom: dict[int, int] = defaultdict(int)
    count = 0
    with open(path, "wb") as handle:
        writer = Writer(handle)
        for tile_id, data in tiles:
            writer.write_tile(tile_id, data)
            per_zoom[tileid_to_zxy(tile_id)[0]] += 1
            count += 1
        west, south, east, north = bounds
        center_zoom = max(minzoom, min(maxzoom, (minzoom + maxzoom) // 2 + 1))
        header = {
            "tile_type": FORMATS[options.tile_format], "tile_compression": Compression.NONE,
            "min_lon_e7": int(west * 1e7), "min_lat_e7": int(south * 1e7), "max_lon_e7": int(east * 1e7),
            "max_lat_e7": int(north * 1e7), "center_zoom": center_zoom,
            "center_lon_e7": int((west + east) / 2 * 1e7), "center_lat_e7": int((south + north) / 2 * 1e7),
        }
        metadata = {"name": options.name, "type": "overlay", "format": options.tile_format,
                    "tileSize": options.tile_size, "attribution": options.attribution, "description": options.description,
                    "bounds": list(bounds),
                    "minzoom": minzoom, "maxzoom": maxzoom, "writer": "workbench"}
        writer.finalize(header, metadata)
    return TileSummary(path=path, minzoom=minzoom, maxzoom=maxzoom, tiles=count, tiles_per_zoom=dict(per_zoom),
                       bounds=bounds, size=path.stat().st_size)


def stored_summary(storage: Any, key: str) -> TileSummary:
    """The :class:`TileSummary` of an archive already in the bucket, from its header and directories (a few
    ranged reads; ``path`` is the key)."""
    report = check_archive(stored_reader(storage, key), check_tiles=False)
    if not report.header:
        raise WorkbenchError(f"{key}: {'; '.join(report.problems)}")
    header = report.header
    bounds = tuple(report.metadata.get("bounds") or header_bounds(header))  # the metadata keeps them unrounded
    return TileSummary(path=Path(key), minzoom=header["min_zoom"], maxzoom=header["max_zoom"], tiles=len(report.tile_ids),
                       tiles_per_zoom=report.tiles_per_zoom, bounds=bounds, size=storage.head(key).size)  # type: ignore[arg-type]


PMTILES_CONTENT_TYPE = "application/vnd.pmtiles"
PMTILES_CACHE_CONTROL = "public, max-age=300"  # a same-day rebuild replaces the day's generation


def publish(storage: Any, archive: Path, layer: str, org: str, *parts: str, day: dt.date | None = None,
            keep: int = DEFAULT_KEEP) -> tuple[str, PruneResult, ArchiveReport]:
    """Check ``archive``, upload it as the day's generation of ``pmtiles/{layer}/{org}/[parts/]``, prune to ``keep``.

    Raster and vector (coverage) archives publish the same way; an archive that fails the check is refused.
    """
    report = check_archive(file_reader(archive))
    if not report.ok:
        raise WorkbenchError(f"{archive.name} is not a valid PMTiles archive: {'; '.join(report.problems)}")
    key = layout.pmtiles_key(layer, org, day or dt.date.today(), *parts)
    upload_file(storage, archive, key, existing=None, content_type=PMTILES_CONTENT_TYPE,
                cache_control=PMTILES_CACHE_CONTROL)
    return key, prune_generations(storage, layout.pmtiles_prefix(layer, org, *parts), keep=keep), report


def tile_run(storage: Any, org: str, project: str, run: str | None = None, options: TileOptions | None = None,
             client: Any = None, progress: bool = True, keep: int = DEFAULT_KEEP) -> tuple[str, TileSummary, PruneResult]:
    """Tile the orthophoto of ``run`` (default: the project's latest) straight from the bucket and publish it.

    Workers read the COG through a presigned URL, so only the windows (and overviews) they need travel.
    """
    from workbench.engines.runs import RUN_RECORD, caption, latest, read_record
    from workbench.presign import Presigner

    check_keep(keep)  # before anything is written
    record = latest(storage, org, project) if run is None else read_record(
        storage, layout.product_key(org, project, layout.check_id(run, "run"), RUN_RECORD))
    if not record or record.get("status") != "completed":
        raise WorkbenchError(f"no completed processing run for {org}/{project}" + (f" with id {run}" if run else ""))
    ortho = next((p["key"] for p in record["products"] if p["name"] == "ortho.tif"), None)
    if ortho is None:
        raise WorkbenchError(f"run {record['run']} has no ortho.tif")
    source = Presigner(storage).get(ortho, ttl=6 * 3600)
    options = options or TileOptions(name=f"{org}/{project} orthophoto", attribution=f"{org}, run {record['run']}")
    if not options.description:
        options = dataclasses.replace(options, description=caption(record))
    with tempfile.TemporaryDirectory(prefix="workbench-tiles-") as scratch:
        summary = write_pmtiles(source, Path(scratch) / "ortho.pmtiles", options, client=client, progress=progress)
        key, pruned, _ = publish(storage, summary.path, "ortho", org, project, keep=keep)
    return key, dataclasses.replace(summary, path=Path(key)), pruned
