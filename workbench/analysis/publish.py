"""Derived rasters as products and map layers.

:func:`publish_derived` writes an analysis result as a COG next to its run
(``projects/{org}/{project}/products/{run}/derived/{name}.tif`` with a ``.report.json``), renders it through a
colour map into raster PMTiles (``pmtiles/derived/{org}/{project}/{name}/{date}.pmtiles``) and returns the
legend (the colour of each value). :func:`workbench.maps.map_layers` shows them with ``derived=[name]``.
Chunks are written one at a time (Dask), so memory stays bounded by the chunk size.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.windows import Window

from workbench import layout
from workbench.engines.cog import report, write_cog
from workbench.errors import AnalysisError
from workbench.storage import Storage
from workbench.transfer import upload_file

LEGEND_STOPS = 5


@dataclasses.dataclass(frozen=True)
class Legend:
    """What the colours of a derived layer mean."""

    name: str
    colormap: str
    vmin: float
    vmax: float
    units: str
    stops: list[tuple[float, str]]

    def text(self) -> str:
        """One line: ``VARI: -0.20 #a50026 ... 0.40 #006837``."""
        return f"{self.name}: " + ", ".join(f"{value:.3g} {colour}" for value, colour in self.stops) + (
            f" ({self.units})" if self.units else "")

    def html(self) -> str:
        """A small gradient bar with its end values (for maps)."""
        gradient = ", ".join(colour for _, colour in self.stops)
        return (f"<b>{self.name}</b><div style='height:10px;width:180px;background:linear-gradient(to right, {gradient})'>"
                f"</div><span>{self.vmin:.3g}</span><span style='float:right'>{self.vmax:.3g} {self.units}</span>")


def legend(name: str, colormap: str, vmin: float, vmax: float, units: str = "") -> Legend:
    """The legend of ``colormap`` (a matplotlib name) from ``vmin`` to ``vmax``."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if colormap not in colormaps:
        raise AnalysisError(f"unknown colour map {colormap!r} (matplotlib names, e.g. RdYlGn, viridis, RdBu)")
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
        raise AnalysisError(f"the legend needs vmin < vmax, got {vmin} and {vmax}")
    cmap = colormaps[colormap]
    stops = [(float(vmin + (vmax - vmin) * i / (LEGEND_STOPS - 1)), to_hex(cmap(i / (LEGEND_STOPS - 1))))
             for i in range(LEGEND_STOPS)]
    return Legend(name, colormap, float(vmin), float(vmax), units, stops)


def derived_key(org: str, project: str, run: str, name: str) -> str:
    """Where a derived raster of a run lives."""
    return layout.runs_prefix(org, project) + f"{layout.check_id(run, 'run')}/derived/{layout.check_component(name, 'derived name')}.tif"


def _write_float(array: xr.DataArray, path: Path) -> None:
    values = array.squeeze("band", drop=True) if "band" in array.dims else array
    if values.ndim != 2:
        raise AnalysisError("a derived raster has one band")
    values = values.astype("float32")
    values.rio.write_nodata(np.nan, encoded=True, inplace=True)
    values.rio.to_raster(path, tiled=True, blockxsize=512, blockysize=512, compress="deflate", lock=threading.Lock())


def _colourise(source: Path, target: Path, scale: Legend) -> None:
    """The float raster through the colour map, as an RGBA GeoTIFF (window by window)."""
    from matplotlib import colormaps

    cmap = colormaps[scale.colormap]
    with rasterio.open(source) as src:
        profile = src.profile | {"count": 4, "dtype": "uint8", "nodata": None, "photometric": "RGB", "compress": "deflate"}
        with rasterio.open(target, "w", **profile) as dst:
            dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
            for row in range(0, src.height, 1024):
                for col in range(0, src.width, 1024):
                    window = Window(col, row, min(1024, src.width - col), min(1024, src.height - row))
                    data = src.read(1, window=window)
                    valid = np.isfinite(data)
                    scaled = np.clip((np.nan_to_num(data) - scale.vmin) / (scale.vmax - scale.vmin), 0, 1)
                    rgba = (cmap(scaled) * 255).astype("uint8")
                    rgba[..., 3] = np.where(valid, 255, 0)
                    dst.write(np.moveaxis(rgba, -1, 0), window=window)


def publish_derived(storage: Storage, array: xr.DataArray, name: str, *, colormap: str = "RdYlGn",
                    vmin: float | None = None, vmax: float | None = None, units: str = "",
                    client: Any = None, progress: bool = False) -> dict[str, Any]:
    """Store ``array`` as a derived product of its run and as a coloured PMTiles layer; return keys and legend.

    ``array.attrs`` must name the run, org and project (arrays from :func:`open_product` and what is computed
    from them keep them). ``vmin``/``vmax`` default to the 2nd and 98th percentiles.
    """
    from workbench.tiles import TileOptions, publish, write_pmtiles

    try:
        org, project, run = array.attrs["org"], array.attrs["project"], array.attrs["run"]
    except KeyError:
        raise AnalysisError("the array does not say which run it comes from (org, project and run in attrs)") from None
    key = derived_key(org, project, run, name)
    with tempfile.TemporaryDirectory(prefix="workbench-derived-") as scratch:
        raw, cog, coloured = (Path(scratch) / f for f in ("raw.tif", f"{name}.tif", "rgba.tif"))
        _write_float(array, raw)
        write_cog(raw, cog)
        with rasterio.open(cog) as src:
            sample = src.read(1, out_shape=(min(src.height, 1024), min(src.width, 1024)))
        finite = sample[np.isfinite(sample)]
        if not finite.size:
            raise AnalysisError(f"{name} has no valid value to publish")
        low = float(np.percentile(finite, 2)) if vmin is None else vmin
        high = float(np.percentile(finite, 98)) if vmax is None else vmax
        if high <= low:
            high = low + 1e-6
        scale = legend(name, colormap, low, high, units)
        facts = report(cog) | {"legend": dataclasses.asdict(scale), "source_run": run}
        upload_file(storage, cog, key, existing=None, content_type="image/tiff")
        storage.put_bytes(key + ".report.json", json.dumps(facts, indent=2).encode(), content_type="application/json")
        _colourise(cog, coloured, scale)
        write_cog(coloured, Path(scratch) / "rgba-cog.tif")
        options = TileOptions(name=f"{org}/{project} {name}", attribution=f"{org}, run {run}",
                              description=scale.text(), tile_format="png")
        summary = write_pmtiles(str(Path(scratch) / "rgba-cog.tif"), Path(scratch) / f"{name}.pmtiles", options,
                                client=client, progress=progress)
        tiles_key, _, _ = publish(storage, summary.path, "derived", org, project, name)
    return {"key": key, "pmtiles": tiles_key, "legend": scale}
