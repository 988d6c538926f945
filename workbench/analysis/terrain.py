"""Heights and volumes from elevation models, with units (metres, square and cubic metres) and the CRS explicit.

* :func:`height_above_ground`: DSM - DTM, or DSM - a plane fitted (least squares) to the DSM along the
  polygon's edge when there is no DTM.
* :func:`volume`: within a polygon, the volume between the DSM and a base (the plane through the polygon's
  edge, or a fixed level): ``above`` (material above the base, "cut" for a stockpile) and ``below`` (voids
  under it, "fill"), the net, and the area used. Pixels are counted when their centre is inside the polygon.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr
from rasterio.features import geometry_mask
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from workbench.analysis.products import check_elevation
from workbench.errors import AnalysisError


@dataclasses.dataclass(frozen=True)
class Volume:
    """A volume within a polygon, in cubic metres, and how it was measured."""

    above_m3: float
    below_m3: float
    area_m2: float
    base: str
    crs: str
    pixels: int

    @property
    def net_m3(self) -> float:
        """Above minus below."""
        return self.above_m3 - self.below_m3

    def line(self) -> str:
        """One line for people."""
        return (f"{self.above_m3:,.1f} m3 above and {self.below_m3:,.1f} m3 below the base ({self.base}); net "
                f"{self.net_m3:,.1f} m3 over {self.area_m2:,.1f} m2 ({self.pixels:,} pixels, {self.crs})")


def _metric(array: xr.DataArray) -> tuple[float, str]:
    crs = array.rio.crs
    if crs is None or not crs.is_projected:
        raise AnalysisError("volumes and areas need a projected CRS in metres (the products' native UTM); "
                            f"this raster is in {crs or 'no CRS'}")
    if crs.linear_units not in ("metre", "meter", "m"):
        raise AnalysisError(f"the raster's CRS is in {crs.linear_units}, not metres")
    xres, yres = array.rio.resolution()
    return abs(xres * yres), crs.to_string()


def _geometry(polygon: Any) -> BaseGeometry:
    geometry = shape(polygon) if isinstance(polygon, dict) else polygon
    if geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise AnalysisError("a volume needs a polygon (in the raster's CRS)")
    return geometry


def clip(array: xr.DataArray, polygon: Any) -> tuple[xr.DataArray, np.ndarray]:
    """The window of ``array`` around ``polygon`` (computed) and the mask of pixels inside it."""
    geometry = _geometry(polygon)
    west, south, east, north = geometry.bounds
    raster = array.rio.bounds()
    if east < raster[0] or west > raster[2] or north < raster[1] or south > raster[3]:
        raise AnalysisError("the polygon lies outside the raster (check that both are in the raster's CRS, "
                            f"{array.rio.crs})")
    window = array.rio.clip_box(west, south, east, north).compute()
    inside = ~geometry_mask([geometry], out_shape=window.shape[-2:], transform=window.rio.transform(), all_touched=False)
    return window, inside


def fit_plane(window: xr.DataArray, where: np.ndarray) -> np.ndarray:
    """A plane z = a x + b y + c fitted to the values where ``where`` holds, evaluated over the window."""
    ys, xs = np.nonzero(where & np.isfinite(window.values))
    if len(xs) < 3:
        raise AnalysisError("too few valid heights along the polygon's edge to fit a base plane")
    design = np.column_stack([xs, ys, np.ones(len(xs))])
    coefficients, *_ = np.linalg.lstsq(design, window.values[ys, xs], rcond=None)
    yy, xx = np.mgrid[0:window.shape[0], 0:window.shape[1]]
    return coefficients[0] * xx + coefficients[1] * yy + coefficients[2]


def _edge(inside: np.ndarray) -> np.ndarray:
    """Pixels inside the polygon with a neighbour outside it (the polygon's edge, one pixel wide)."""
    padded = np.pad(inside, 1, constant_values=False)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside & ~interior


def volume(dsm: xr.DataArray, polygon: Any, base: float | str = "plane") -> Volume:
    """The volume between ``dsm`` and ``base`` (``"plane"`` through the polygon's edge, or a level in metres)."""
    surface = check_elevation(dsm, "a volume")
    pixel_area, crs = _metric(surface)
    window, inside = clip(surface, polygon)
    if not inside.any():
        raise AnalysisError("no pixel centre of the raster falls inside the polygon")
    if base == "plane":
        level = fit_plane(window, _edge(inside))
        described = "plane through the polygon's edge"
    elif isinstance(base, (int, float)) and np.isfinite(base):
        level = np.full(window.shape, float(base))
        described = f"level {float(base):g} m"
    else:
        raise AnalysisError(f"base must be 'plane' or a level in metres, not {base!r}")
    height = np.where(inside, window.values - level, np.nan)
    valid = np.isfinite(height)
    return Volume(above_m3=float(np.nansum(np.clip(height, 0, None)) * pixel_area),
                  below_m3=float(np.nansum(np.clip(-height, 0, None)) * pixel_area),
                  area_m2=float(valid.sum() * pixel_area), base=described, crs=crs, pixels=int(valid.sum()))


def height_above_ground(dsm: xr.DataArray, dtm: xr.DataArray | None = None, polygon: Any = None) -> xr.DataArray:
    """DSM - DTM (aligned to the DSM's grid), or DSM - the plane through ``polygon``'s edge without a DTM."""
    from workbench.analysis.change import align

    surface = check_elevation(dsm, "a height above ground")
    if dtm is not None:
        ground = align(check_elevation(dtm, "a height above ground"), surface)
        heights = surface - ground
    else:
        if polygon is None:
            raise AnalysisError("without a DTM, a height above ground needs a polygon whose edge is ground")
        window, inside = clip(surface, polygon)
        heights = window.where(inside) - fit_plane(window, _edge(inside))
    heights.name = "height"
    heights.attrs = {"units": "m", "long_name": "height above ground"}
    return heights.rio.write_crs(surface.rio.crs)
