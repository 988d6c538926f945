"""The ``sfm`` engine: a photogrammetric orthomosaic with no server (pycolmap on the CPU, Dask for the images).

Stages, each with a progress bar: SIFT features on reduced images (Dask tasks), GPS-guided matching,
incremental mapping with bundle adjustment and georeferencing to the GPS positions
(:mod:`workbench.engines.reconstruction`); a 2.5D surface from the sparse points
(:mod:`workbench.engines.surface`); each image orthorectified onto it with its solved camera, lens
distortion included (Dask tasks), and mosaicked keeping the most nadir view with feathered seams
(:mod:`workbench.engines.orthorectify`).

Products, in the flight's UTM zone: ``ortho.tif`` (RGBA COG), ``dsm.tif`` (the surface, float32 COG, heights
in the GPS altitude's datum, no data away from the points) and ``points.parquet`` (the sparse points: x, y, z,
colour, reprojection error, track length). The ortho's report holds the reconstruction's measures (images
registered, reprojection error, GPS residuals), the seam misfit (the quick-look's measure, so engines can be
compared on one flight) and a height check (the cameras' height above the surface against the images' own
height above ground). Images that could not be used are listed in the run record with the reason.

When to use it: no NodeODM server at hand (a laptop, Binder, a small VM) and tens to a few hundred images
with overlap. The quick-look is seconds and needs no overlap but is off by metres; ODM makes dense,
full-resolution products and needs a server.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from workbench.engines.cog import write_cog, write_rgba
from workbench.engines.colmap import load_pycolmap
from workbench.engines.orthorectify import FeatheredMosaic, RenderJob, grid_window, ground_extent, render
from workbench.engines.quicklook import DEFAULT_MAX_SIZE, MAX_PIXELS
from workbench.engines.reconstruction import Reconstruction, gsd, reconstruct
from workbench.engines.runs import EngineError, EngineOutput
from workbench.engines.seams import SeamRecorder
from workbench.engines.surface import Surface, build_surface
from workbench.errors import WorkbenchError
from workbench.options import bounded
from workbench.storage import Storage

NUMERIC_OPTIONS: dict[str, tuple[type, float, float, str]] = {  # kind, lowest, highest, unit
    "max_image_size": (int, 500, 8000, "pixels (longer side of the images the features come from)"),
    "resolution": (float, 0.005, 100.0, "m per pixel"),
    "min_images": (int, 3, 100000, "images"),
    "min_registered": (float, 0.1, 1.0, "(share of the images)"),
    "max_features": (int, 500, 32000, "features per image"),
    "neighbours": (int, 3, 200, "images (spatial matcher)"),
}
MATCHERS = ("auto", "spatial", "exhaustive")
DEFAULTS: dict[str, Any] = {"max_image_size": 2000, "min_images": 5, "min_registered": 0.5, "max_features": 6000,
                            "neighbours": 12, "matcher": "auto"}
DSM_NODATA = -9999.0


class SfmEngine:
    """See the module docstring."""

    name = "sfm"

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Known options: ``max_image_size``, ``resolution``, ``min_images``, ``min_registered``, ``max_features``,
        ``neighbours`` (numbers, bounded) and ``matcher`` (auto, spatial or exhaustive); others are refused.
        Returns them with the defaults filled in."""
        checked = dict(DEFAULTS)
        for name, value in options.items():
            if name == "matcher":
                if value not in MATCHERS:
                    raise WorkbenchError(f"sfm option matcher must be one of {', '.join(MATCHERS)}, got {value!r}")
                checked[name] = value
            elif name in NUMERIC_OPTIONS:
                kind, low, high, unit = NUMERIC_OPTIONS[name]
                checked[name] = bounded(value, kind, low, high, f"sfm option {name}", unit)
            else:
                known = ", ".join([*NUMERIC_OPTIONS, "matcher"])
                raise WorkbenchError(f"unknown sfm option {name!r}: known options are {known}")
        return checked

    def versions(self) -> dict[str, str]:
        """The libraries the products depend on."""
        import rasterio

        import workbench

        pycolmap = load_pycolmap()
        return {"workbench": workbench.__version__, "pycolmap": pycolmap.__version__, "gdal": rasterio.__gdal_version__}

    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> EngineOutput:
        """Reconstruct, build the surface, orthorectify and mosaic (module docstring)."""
        from workbench.cluster import ensure_client

        options = self.check_options(options)
        if len(inputs) < options["min_images"]:
            raise EngineError(f"{len(inputs)} image(s): the sfm engine needs at least {options['min_images']} overlapping "
                              "images (option min_images)")
        with ensure_client(client) as active:
            solved = reconstruct(storage, inputs, options, workdir, active, progress)
            stages = solved.report["stages"]
            started = time.perf_counter()
            ground = float(np.median(solved.points[:, 2]))
            grid, shape, windows = _grid(solved, ground, options)
            surface = build_surface(solved.points, solved.errors, solved.track_lengths,
                                    (grid["left"], grid["top"] - shape[0] * grid["resolution"],
                                     grid["left"] + shape[1] * grid["resolution"], grid["top"]))
            stages["surface_s"] = round(time.perf_counter() - started, 2)
            mosaic, seams = self._mosaic(storage, solved, grid, shape, windows, surface, options, workdir, active, progress)
            stages["ortho_s"] = round(time.perf_counter() - started - stages["surface_s"], 2)
        started = time.perf_counter()
        rgb, alpha = mosaic.result()
        del mosaic
        transform = _transform(solved, grid)
        crs = solved.crs.to_wkt()
        ortho = write_cog(write_rgba(workdir / "ortho-raw.tif", rgb, alpha, crs, transform), workdir / "ortho.tif")
        del rgb
        dsm = write_cog(_write_dsm(workdir / "dsm-raw.tif", solved, surface, crs), workdir / "dsm.tif")
        points = _write_points(workdir / "points.parquet", solved)
        seam_report = seams.report().summary()
        stages["products_s"] = round(time.perf_counter() - started, 2)  # COGs, points and the seam measure
        quality = {"images_placed": len(solved.images), "images_given": len(inputs), "seams": seam_report,
                   "reconstruction": solved.report, "height_check": _height_check(solved, surface, inputs),
                   "method": "sfm: pycolmap incremental mapping, GPS similarity, 2.5D surface from sparse points, "
                             "most-nadir feathered mosaic"}
        return EngineOutput({"ortho.tif": ortho, "dsm.tif": dsm, "points.parquet": points},
                            {"ortho.tif": quality, "dsm.tif": {"surface_resolution_m": round(surface.resolution, 3),
                                                               "points_used": surface.points_used,
                                                               "method": "median per cell, IDW fill, 3x3 median and mean"}},
                            skipped=solved.skipped)

    @staticmethod
    def _mosaic(storage: Storage, solved: Reconstruction, grid: dict[str, float], shape: tuple[int, int],
                windows: dict[str, tuple[int, int, int, int]], surface: Surface, options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> tuple[FeatheredMosaic, SeamRecorder]:
        from workbench.cluster import map_completed

        jobs = [RenderJob(i.key, i.camera, i.rotation, i.translation, i.center, options["max_image_size"], windows[i.key])
                for i in solved.images if i.key in windows]
        mosaic = FeatheredMosaic(*shape)
        seams = SeamRecorder(workdir / "seams", grid["resolution"])
        shared = client.scatter(surface, broadcast=True)
        for _, rendering in map_completed(client, render, [storage.settings] * len(jobs), jobs, [grid] * len(jobs),
                                          [shared] * len(jobs), desc="sfm ortho", unit="img", progress=progress):
            mosaic.add(rendering)
            seams.add(rendering.features)
        return mosaic, seams


def _grid(solved: Reconstruction, ground: float, options: dict[str, Any]) -> tuple[dict[str, float], tuple[int, int], dict[str, tuple[int, int, int, int]]]:
    """The mosaic grid (local frame) covering every image's view of the ground, and each image's window on it."""
    extents = {}
    for image in solved.images:
        extent = ground_extent(image.camera, np.asarray(image.rotation), np.asarray(image.center), ground)
        if extent is not None:
            extents[image.key] = extent
    if not extents:
        raise EngineError("sfm: no solved camera sees the ground (the model is upside down or edge-on)")
    left, bottom = min(e[0] for e in extents.values()), min(e[1] for e in extents.values())
    right, top = max(e[2] for e in extents.values()), max(e[3] for e in extents.values())
    resolution = options.get("resolution") or max(float(np.median([gsd(i, ground) for i in solved.images])),
                                                  max(right - left, top - bottom) / DEFAULT_MAX_SIZE)
    shape = (math.ceil((top - bottom) / resolution), math.ceil((right - left) / resolution))
    if shape[0] * shape[1] > MAX_PIXELS:
        raise EngineError(f"the mosaic would be {shape[1]} x {shape[0]} px at {resolution:g} m per pixel: give a coarser "
                          f"resolution (at most {MAX_PIXELS / 1e6:.0f} Mpx)")
    grid = {"left": left, "top": top, "resolution": resolution}
    windows = {key: window for key, extent in extents.items() if (window := grid_window(extent, grid, shape))}
    return grid, shape, windows


def _transform(solved: Reconstruction, grid: dict[str, float]) -> Any:
    from rasterio.transform import from_origin

    return from_origin(grid["left"] + solved.origin[0], grid["top"] + solved.origin[1], grid["resolution"], grid["resolution"])


def _write_dsm(path: Path, solved: Reconstruction, surface: Surface, crs: str) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    heights = np.where(surface.support, surface.z + np.float32(solved.origin[2]), np.float32(DSM_NODATA)).astype(np.float32)
    profile = {"driver": "GTiff", "width": heights.shape[1], "height": heights.shape[0], "count": 1, "dtype": "float32",
               "crs": crs, "nodata": DSM_NODATA, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
               "transform": from_origin(surface.left + solved.origin[0], surface.top + solved.origin[1],
                                        surface.resolution, surface.resolution)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(heights, 1)
    return path


def _write_points(path: Path, solved: Reconstruction) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    xyz = solved.points + solved.origin
    table = pa.table({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "red": solved.colours[:, 0],
                      "green": solved.colours[:, 1], "blue": solved.colours[:, 2], "error_px": solved.errors,
                      "track_length": solved.track_lengths},
                     metadata={"crs": solved.crs.to_string(), "source": "workbench sfm engine (pycolmap sparse points)"})
    pq.write_table(table, path)
    return path


def _height_check(solved: Reconstruction, surface: Surface, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The cameras' median height above the solved surface against the images' height above ground (manifest)."""
    given = {row["key"]: row.get("relative_altitude") for row in inputs}
    solved_heights, stated = [], []
    for image in solved.images:
        if given.get(image.key):
            x, y, z = image.center
            solved_heights.append(z - float(surface.sample(np.array([x]), np.array([y]))[0]))
            stated.append(float(given[image.key]))
    if not solved_heights:
        return {"checked": False, "reason": "the images give no height above ground"}
    above, says = float(np.median(solved_heights)), float(np.median(stated))
    return {"checked": True, "solved_height_m": round(above, 2), "images_say_m": round(says, 2),
            "ratio": round(above / says, 3) if says else None}
