"""Statistics per polygon: count, mean, spread, percentiles and area, as a GeoDataFrame.

Polygons come as a GeoDataFrame, a GeoJSON/GeoParquet file, or the coverage tables the workbench writes
(:func:`coverage_polygons`); they are reprojected to the raster's CRS. A pixel counts when its centre is inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from workbench.analysis.terrain import clip
from workbench.errors import AnalysisError
from workbench.storage import Storage

PERCENTILES = (10, 50, 90)


def read_polygons(source: Any) -> Any:
    """A GeoDataFrame from a GeoDataFrame, a GeoJSON file or a GeoParquet file."""
    import geopandas

    if isinstance(source, geopandas.GeoDataFrame):
        return source
    path = Path(source)
    if not path.exists():
        raise AnalysisError(f"no polygons at {path}")
    try:
        return geopandas.read_parquet(path) if path.suffix in (".parquet", ".geoparquet") else geopandas.read_file(path)
    except Exception as exc:  # fiona/pyogrio/pyarrow errors: one line
        raise AnalysisError(f"cannot read polygons from {path}: {str(exc).splitlines()[0]}") from None


def coverage_polygons(storage: Storage, org: str, project: str) -> Any:
    """The project's flight coverage polygons (what ``workbench ingest`` wrote), one row per flight."""
    from workbench.imagery.ingest import coverage_key
    from workbench.imagery.manifest import read_geodataframe

    frame = read_geodataframe(storage, coverage_key(org, project))
    return frame[frame.geometry.notna() & ~frame.geometry.is_empty]


def zonal_statistics(array: xr.DataArray, polygons: Any) -> Any:
    """One row per polygon: its attributes, count of valid pixels, mean, std, min, max, percentiles, area (m2 of
    valid pixels) and the geometry. An attribute named like a statistic (the coverage layer's ``area_m2``, the
    polygon's own area) is kept as ``{name}_polygon``, so every column name says one thing."""
    frame = read_polygons(polygons)
    if not len(frame):
        raise AnalysisError("no polygons to compute statistics for")
    values = array.squeeze("band", drop=True) if "band" in array.dims and array.sizes["band"] == 1 else array
    if "band" in values.dims:
        raise AnalysisError("zonal statistics need one band (an index, a DSM or a change), not RGB")
    crs = values.rio.crs
    if crs is None:
        raise AnalysisError("the raster has no CRS")
    if frame.crs is None:
        raise AnalysisError("the polygons have no CRS (GeoJSON is longitude/latitude; set it with .set_crs)")
    projected = frame.to_crs(crs)
    xres, yres = values.rio.resolution()
    rows = []
    for geometry in projected.geometry:
        try:
            window, inside = clip(values, geometry)
        except AnalysisError:
            window, inside = None, None
        data = window.values[inside] if window is not None else np.array([])
        data = data[np.isfinite(data)]
        row: dict[str, float] = {"count": int(data.size), "area_m2": float(data.size * abs(xres * yres))}
        if data.size:
            row.update(mean=float(data.mean()), std=float(data.std()), min=float(data.min()), max=float(data.max()),
                       **{f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(data, PERCENTILES))})
        else:
            row.update(dict.fromkeys(["mean", "std", "min", "max", *(f"p{p}" for p in PERCENTILES)], float("nan")))
        rows.append(row)
    import geopandas
    import pandas as pd

    stats = pd.DataFrame(rows, index=frame.index)
    attributes = frame.drop(columns=frame.geometry.name)
    attributes = attributes.rename(columns={name: f"{name}_polygon" for name in attributes.columns if name in stats.columns})
    return geopandas.GeoDataFrame(pd.concat([attributes, stats], axis=1), geometry=frame.geometry, crs=frame.crs)
