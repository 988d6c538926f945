"""Products as Cloud-Optimized GeoTIFFs (rio-cogeo), in their native CRS, with a small report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from workbench.errors import WorkbenchError


def write_cog(source: str | Path, destination: str | Path, profile: str = "deflate") -> Path:
    """Translate a GeoTIFF into a COG (internal 512 px tiles, overviews, mask/alpha kept); validate it."""
    target = Path(destination)
    options = cog_profiles.get(profile)
    options.update(blockxsize=512, blockysize=512)
    cog_translate(str(source), str(target), options, overview_resampling="average", quiet=True,
                  config={"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_TIFF_OVR_BLOCKSIZE": "512"})
    valid, errors, _ = cog_validate(str(target))
    if not valid:
        raise WorkbenchError(f"{target.name} is not a valid COG: {'; '.join(errors)}")
    return target


def write_rgba(path: Path, rgb: np.ndarray, alpha: np.ndarray, crs: Any, transform: Any) -> Path:
    """A tiled GeoTIFF of ``rgb`` (rows, cols, 3 uint8) with ``alpha`` as its 4th band (input to :func:`write_cog`)."""
    height, width = alpha.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 4, "dtype": "uint8", "crs": crs,
               "transform": transform, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(rgb, -1, 0), [1, 2, 3])
        dst.write(alpha, 4)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return path


def report(path: str | Path) -> dict[str, Any]:
    """Bounds, CRS, resolution (GSD), size and covered area of a raster product."""
    with rasterio.open(path) as src:
        xres, yres = src.res
        if src.count >= 4 and src.colorinterp[-1].name == "alpha":
            step = max(1, max(src.width, src.height) // 2048)
            valid = src.read(src.count, out_shape=(math.ceil(src.height / step), math.ceil(src.width / step)),
                             resampling=Resampling.nearest) > 0
            covered = float(valid.sum()) * xres * yres * step * step
        else:
            mask = src.dataset_mask() > 0
            covered = float(mask.sum()) * xres * yres
        return {
            "crs": src.crs.to_string() if src.crs else None,
            "bounds": list(src.bounds),
            "resolution_m": [xres, yres],
            "width": src.width,
            "height": src.height,
            "bands": src.count,
            "dtype": src.dtypes[0],
            "overviews": src.overviews(1),
            "coverage_m2": round(covered, 2),
            "size_bytes": Path(path).stat().st_size,
        }

