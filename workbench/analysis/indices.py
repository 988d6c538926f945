"""Vegetation indices of an ortho, lazily (Dask), each with its formula and valid range.

RGB indices work on any camera (bands 1-3 = red, green, blue):

===========  ===================================  ========  ====================================
index        formula                              range     use
===========  ===================================  ========  ====================================
``vari``     (G - R) / (G + R - B)                -1 .. 1*  visible atmospherically resistant
                                                            index (Gitelson et al. 2002)
``exg``      2g - r - b, with r, g, b = R, G, B   -1 .. 2   excess green (Woebbecke et al. 1995)
             divided by (R + G + B)
``gli``      (2G - R - B) / (2G + R + B)          -1 .. 1   green leaf index (Louhaichi et al. 2001)
``ndvi``     (NIR - VIS) / (NIR + VIS)            -1 .. 1   needs a camera that records near-infrared
===========  ===================================  ========  ====================================

\\* VARI's denominator can approach 0 on grey pixels: values outside -1 .. 1 are set to NaN.

NDVI needs to know which channel holds NIR and which holds the visible band (:data:`NIR_CAMERAS`, or pass
``bands``). NIR-converted compacts with a red-blocking filter (the seneca flight's Canon PowerShot ELPH 300
HS on a senseFly Swinglet) record NIR in the red channel and visible blue in the blue channel (Public Lab's
"infragram" filter convention; the seneca images show vegetation bright red); the visible band is then blue.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from workbench.analysis.products import map_pixels
from workbench.errors import AnalysisError

# camera model (EXIF Model) -> (NIR band, visible band), 1-based channels of the ortho; with where it is from
NIR_CAMERAS: dict[str, tuple[int, int, str]] = {
    "Canon PowerShot ELPH 300 HS": (1, 3, "NIR-converted (red-blocking filter): NIR in red, blue visible; seneca images"),
    "Canon PowerShot S110 NIR": (1, 3, "senseFly S110 NIR, same NIR-in-red layout"),
}
RANGES = {"vari": (-1.0, 1.0), "exg": (-1.0, 2.0), "gli": (-1.0, 1.0), "ndvi": (-1.0, 1.0)}


def _apply(ortho: xr.DataArray, kernel: Callable[[np.ndarray], np.ndarray], name: str, needs: int = 3) -> xr.DataArray:
    """``kernel`` over ``ortho`` (bands first) with :func:`~workbench.analysis.products.map_pixels`: one task per
    chunk, strip by strip; values outside the index's range become NaN."""
    if "band" not in ortho.dims or ortho.sizes["band"] < needs:
        raise AnalysisError(f"{name.upper()} needs an ortho with at least {needs} bands")
    low, high = RANGES[name]

    def bounded(values: np.ndarray) -> np.ndarray:  # one strip of a chunk (bands, rows, cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = kernel(values)
            outside = np.less(out, low)
            outside |= np.greater(out, high)  # NaN stays NaN; +-inf and out-of-range values become NaN
            np.copyto(out, np.float32(np.nan), where=outside)
        return out

    ordered = ortho.transpose("band", "y", "x")
    values = map_pixels(ordered, bounded)  # one task per chunk, straight from the COG for an opened product
    result = xr.DataArray(values, dims=("y", "x"), coords={"y": ordered.y, "x": ordered.x}, name=name,
                          attrs={"long_name": name.upper(), "valid_range": [low, high], "units": "1"})
    for coordinate in ("spatial_ref",):
        if coordinate in ortho.coords:
            result = result.assign_coords({coordinate: ortho.coords[coordinate]})
    return result


def vari(ortho: xr.DataArray) -> xr.DataArray:
    """Visible Atmospherically Resistant Index: (G - R) / (G + R - B)."""
    def kernel(c: np.ndarray) -> np.ndarray:
        r, g, b = c[0], c[1], c[2]
        out = g - r
        out /= g + r - b
        return out
    return _apply(ortho, kernel, "vari")


def exg(ortho: xr.DataArray) -> xr.DataArray:
    """Excess Green on chromatic coordinates: 2g - r - b, with r = R / (R + G + B), ..."""
    def kernel(c: np.ndarray) -> np.ndarray:
        r, g, b = c[0], c[1], c[2]
        out = 2 * g - r - b
        out /= r + g + b
        return out
    return _apply(ortho, kernel, "exg")


def gli(ortho: xr.DataArray) -> xr.DataArray:
    """Green Leaf Index: (2G - R - B) / (2G + R + B)."""
    def kernel(c: np.ndarray) -> np.ndarray:
        r, g, b = c[0], c[1], c[2]
        return (2 * g - r - b) / (2 * g + r + b)
    return _apply(ortho, kernel, "gli")


def ndvi(ortho: xr.DataArray, camera: str | None = None, bands: tuple[int, int] | None = None) -> xr.DataArray:
    """(NIR - VIS) / (NIR + VIS) with the channels of ``camera`` (:data:`NIR_CAMERAS`; default: the camera the
    project's images were taken with) or ``bands`` (1-based)."""
    camera = camera or ortho.attrs.get("camera") or None
    if bands is None:
        if camera not in NIR_CAMERAS:
            raise AnalysisError(f"NDVI needs a near-infrared camera: {camera or 'this camera'} is not one the workbench "
                                f"knows ({', '.join(NIR_CAMERAS)}); pass bands=(nir, visible)")
        bands = NIR_CAMERAS[camera][:2]
    nir_band, visible_band = bands
    count = ortho.sizes.get("band", 1)
    if not (1 <= nir_band <= count and 1 <= visible_band <= count) or nir_band == visible_band:
        raise AnalysisError(f"NDVI bands {bands} do not fit an ortho of {count} band(s)")
    def kernel(c: np.ndarray) -> np.ndarray:
        nir, visible = c[nir_band - 1], c[visible_band - 1]
        return (nir - visible) / (nir + visible)
    return _apply(ortho, kernel, "ndvi", needs=max(nir_band, visible_band))


INDICES: dict[str, Callable[..., xr.DataArray]] = {"vari": vari, "exg": exg, "gli": gli, "ndvi": ndvi}


def index(ortho: xr.DataArray, name: str, **options: object) -> xr.DataArray:
    """The index ``name`` (:data:`INDICES`) of ``ortho``."""
    if name not in INDICES:
        raise AnalysisError(f"unknown index {name!r}: choose {', '.join(INDICES)}")
    result = INDICES[name](ortho, **options)
    result.attrs.update({k: v for k, v in ortho.attrs.items() if k in ("run", "org", "project")}, source_product="ortho")
    return result.rio.write_crs(ortho.rio.crs) if ortho.rio.crs else result
