"""Change between two runs: one grid, the difference, a change mask, and what changed where."""

from __future__ import annotations

import xarray as xr
from rasterio.enums import Resampling

from workbench.errors import AnalysisError


def align(source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
    """``source`` on ``target``'s grid (reprojected with rioxarray, bilinear) unless the grids already match."""
    if source.rio.crs is None or target.rio.crs is None:
        raise AnalysisError("both rasters need a CRS to be aligned")
    same = (source.rio.crs == target.rio.crs and source.rio.transform() == target.rio.transform()
            and source.shape[-2:] == target.shape[-2:])
    if same:
        return source
    try:
        return source.rio.reproject_match(target, resampling=Resampling.bilinear)
    except Exception as exc:  # pyproj/GDAL failures when no transformation exists between the two CRSs
        raise AnalysisError(f"cannot align {source.rio.crs} onto {target.rio.crs}: {str(exc).splitlines()[0]}") from None


def difference(before: xr.DataArray, after: xr.DataArray) -> xr.DataArray:
    """``after - before`` on ``after``'s grid (both single-band: a DSM, or an index)."""
    if before.sizes.get("band", 1) != 1 or after.sizes.get("band", 1) != 1:
        raise AnalysisError("change is computed on one band (a DSM, a DTM or an index), not on RGB")
    first = before.squeeze("band", drop=True) if "band" in before.dims else before
    second = after.squeeze("band", drop=True) if "band" in after.dims else after
    delta = second - align(first, second)
    delta.name = "change"
    delta.attrs = {"long_name": f"change from run {before.attrs.get('run', '?')} to {after.attrs.get('run', '?')}",
                   "units": after.attrs.get("units", "")}
    return delta.rio.write_crs(second.rio.crs)


def change_mask(delta: xr.DataArray, threshold: float) -> xr.DataArray:
    """1 where ``|delta| > threshold`` (changed), 0 where not, NaN where either run had no data."""
    if not threshold > 0:
        raise AnalysisError(f"the change threshold must be above 0, not {threshold}")
    mask = xr.where(abs(delta) > threshold, 1.0, 0.0).where(delta.notnull())
    mask.name = "changed"
    return mask.rio.write_crs(delta.rio.crs)
