"""The ``quicklook`` engine: an orthomosaic in seconds from metadata alone (no photogrammetry).

Each image is projected to flat ground from its position, relative altitude, field of view, yaw and
pitch (the same camera model as the footprints), on Dask, one task per image, into the flight's UTM
zone. For every ground pixel the mosaic keeps the image whose nadir point is nearest. Areas no image
sees are transparent (alpha band). It is a PREVIEW: GPS error (metres on consumer drones), terrain
relief and lens distortion are not corrected, so seams and offsets are expected; the report gives
their size (:mod:`workbench.engines.seams`: median and 90th percentile misfit of overlapping images).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from workbench.config import Settings
from workbench.engines.cog import write_cog, write_rgba
from workbench.engines.runs import EngineError, EngineOutput
from workbench.engines.seams import RenderingFeatures, SeamRecorder, rendering_features
from workbench.errors import WorkbenchError
from workbench.imagery import footprint as fp
from workbench.imagery.metadata import ImageMetadata
from workbench.options import bounded
from workbench.storage import Storage, shared_storage

OPTIONS: dict[str, tuple[type, float, float, str]] = {  # kind, lowest, highest, unit
    "resolution": (float, 0.005, 100.0, "m per pixel"), "max_size": (int, 64, 20000, "pixels")}
MAX_PIXELS = 100_000_000  # a mosaic larger than this (700 MB in memory while it is made) is refused
DEFAULT_MAX_SIZE = 4000  # pixels along the mosaic's longer side, when no resolution is given


def _ground_sample_distance(meta: ImageMetadata) -> float:
    return meta.relative_altitude * meta.sensor_width_mm / (meta.focal_length_mm * meta.width)  # type: ignore[operator]


def project_image(settings: Settings, camera: dict[str, Any], grid: dict[str, Any]) -> tuple[int, int, np.ndarray, np.ndarray, RenderingFeatures]:
    """Project one image onto its window of the mosaic grid; return (row, col, rgb, distance to nadir,
    the rendering's features for the seam misfit).

    Runs on a Dask worker. The JPEG is decoded at the coarsest libjpeg scale still finer than the grid.
    """
    data = shared_storage(settings).get_bytes(camera["key"])
    image = Image.open(io.BytesIO(data))
    scale = 1
    while scale < 8 and camera["gsd"] * scale * 2 <= grid["resolution"]:
        scale *= 2
    image.draft("RGB", (camera["width"] // scale, camera["height"] // scale))
    pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    focal_px = camera["focal_px"] * width / camera["width"]
    row0, col0, rows, cols = camera["window"]
    res = grid["resolution"]
    xs = grid["left"] + (col0 + np.arange(cols) + 0.5) * res - camera["east"]
    ys = grid["top"] - (row0 + np.arange(rows) + 0.5) * res - camera["north"]
    dx, dy = np.meshgrid(xs, ys)
    forward, up, right = (np.asarray(camera[axis]) for axis in ("forward", "up", "right"))
    dz = -camera["altitude"]
    depth = dx * forward[0] + dy * forward[1] + dz * forward[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = width / 2 + focal_px * (dx * right[0] + dy * right[1] + dz * right[2]) / depth
        v = height / 2 - focal_px * (dx * up[0] + dy * up[1] + dz * up[2]) / depth
    seen = (depth > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    rgb = np.zeros((rows, cols, 3), dtype=np.uint8)
    rgb[seen] = pixels[v[seen].astype(int), u[seen].astype(int)]
    distance = np.where(seen, np.hypot(dx, dy), np.inf).astype(np.float32)
    return row0, col0, rgb, distance, rendering_features(camera["key"], row0, col0, rgb, seen)


class QuicklookEngine:
    """See the module docstring."""

    name = "quicklook"

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Known options: ``resolution`` (metres per pixel, 0.005-100) and ``max_size`` (pixels, longer side,
        64-20000); anything else, or a value outside those ranges, is refused."""
        checked: dict[str, Any] = {}
        for name, value in options.items():
            if name not in OPTIONS:
                raise WorkbenchError(f"unknown quicklook option {name!r}: known options are {', '.join(OPTIONS)}")
            kind, low, high, unit = OPTIONS[name]
            checked[name] = bounded(value, kind, low, high, f"quicklook option {name}", unit)
        return checked

    def versions(self) -> dict[str, str]:
        """The libraries the mosaic depends on."""
        import workbench

        return {"workbench": workbench.__version__, "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__}

    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> dict[str, Path]:
        """Project every image with a field of view onto one UTM grid; write ``ortho.tif`` (a COG)."""
        metas = [ImageMetadata.from_row(row) for row in inputs]
        polygons, crs = fp.footprints(metas)
        usable = [(row, meta, poly) for row, meta, poly in zip(inputs, metas, polygons) if poly is not None]
        if not usable or crs is None:
            missing = Counter(fp.missing_for_footprint(meta) or "horizon" for meta in metas)
            raise EngineError(f"quicklook cannot place any image: {fp.explain_missing(dict(missing), len(metas))}")
        left = min(p.bounds[0] for _, _, p in usable)
        bottom = min(p.bounds[1] for _, _, p in usable)
        right = max(p.bounds[2] for _, _, p in usable)
        top = max(p.bounds[3] for _, _, p in usable)
        extent = max(right - left, top - bottom)
        resolution = options.get("resolution") or max(
            float(np.median([_ground_sample_distance(m) for _, m, _ in usable])),
            extent / options.get("max_size", DEFAULT_MAX_SIZE))
        width, height = math.ceil((right - left) / resolution), math.ceil((top - bottom) / resolution)
        if width * height > MAX_PIXELS:
            raise EngineError(f"the mosaic would be {width} x {height} px at {resolution:g} m per pixel: "
                              f"give a coarser resolution (at most {MAX_PIXELS / 1e6:.0f} Mpx)")
        grid = {"left": left, "top": top, "resolution": resolution}
        to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        cameras = []
        for row, meta, polygon in usable:
            east, north = to_utm.transform(meta.lon, meta.lat)
            minx, miny, maxx, maxy = polygon.bounds
            col0, row0 = max(0, int((minx - left) / resolution)), max(0, int((top - maxy) / resolution))
            col1, row1 = min(width, math.ceil((maxx - left) / resolution)), min(height, math.ceil((top - miny) / resolution))
            pose = fp.camera_pose(meta)
            assert pose is not None  # a footprint was computed from it
            cameras.append({
                "key": row["key"], "east": east, "north": north, "altitude": meta.relative_altitude,
                "forward": pose.forward.tolist(), "up": pose.up.tolist(), "right": pose.right.tolist(), "width": meta.width, "height": meta.height, "gsd": _ground_sample_distance(meta),
                "focal_px": meta.focal_length_mm / meta.sensor_width_mm * meta.width,  # type: ignore[operator]
                "window": (row0, col0, row1 - row0, col1 - col0),
            })
        mosaic = np.zeros((height, width, 3), dtype=np.uint8)
        nearest = np.full((height, width), np.inf, dtype=np.float32)
        seams = SeamRecorder(workdir / "seams", resolution)
        self._mosaic(storage.settings, cameras, grid, mosaic, nearest, seams, client, progress)
        alpha = np.where(np.isfinite(nearest), 255, 0).astype(np.uint8)
        raw = write_rgba(workdir / "ortho-raw.tif", mosaic, alpha, crs.to_wkt(), from_origin(left, top, resolution, resolution))
        quality = {"seams": seams.report().summary(), "images_placed": len(usable), "images_given": len(inputs)}
        return EngineOutput({"ortho.tif": write_cog(raw, workdir / "ortho.tif")}, {"ortho.tif": quality})

    @staticmethod
    def _mosaic(settings: Settings, cameras: list[dict[str, Any]], grid: dict[str, Any], mosaic: np.ndarray,
                nearest: np.ndarray, seams: SeamRecorder, client: Any, progress: bool) -> None:
        from workbench.cluster import ensure_client, map_completed

        with ensure_client(client) as active:
            for _, (row0, col0, rgb, distance, features) in map_completed(
                    active, project_image, [settings] * len(cameras), cameras, [grid] * len(cameras),
                    desc="quicklook", unit="img", progress=progress):
                seams.add(features)
                window = (slice(row0, row0 + rgb.shape[0]), slice(col0, col0 + rgb.shape[1]))
                closer = distance < nearest[window]
                nearest[window][closer] = distance[closer]
                mosaic[window][closer] = rgb[closer]
