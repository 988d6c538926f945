"""``workbench analyze index|volume|diff|zonal``: thin commands over :mod:`workbench.analysis`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from workbench.errors import AnalysisError
from workbench.storage import Storage


def _polygon(source: str, crs: Any) -> Any:
    from workbench.analysis.zonal import read_polygons

    frame = read_polygons(source)
    if frame.crs is None:
        frame = frame.set_crs("OGC:CRS84")
    return frame.to_crs(crs).geometry.union_all()


def _bands(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        nir, visible = (int(part) for part in text.split(","))
    except ValueError:
        raise AnalysisError(f"--bands takes NIR,VISIBLE channel numbers (e.g. 1,3), not {text!r}") from None
    return nir, visible


def _summary(array: Any) -> str:
    import numpy as np

    values = array.values[np.isfinite(array.values)]
    if not values.size:
        return "no valid value"
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return f"mean {values.mean():.4g}, p10 {p10:.4g}, median {p50:.4g}, p90 {p90:.4g} over {values.size:,} pixels"


def cmd_index(args: argparse.Namespace, storage: Storage) -> int:
    from workbench.analysis.indices import index
    from workbench.analysis.products import open_product
    from workbench.analysis.publish import publish_derived

    ortho = open_product(storage, args.org, args.project, "ortho", args.run, overview_level=args.overview_level)
    options = {"camera": args.camera, "bands": _bands(args.bands)} if args.index == "ndvi" else {}
    result = index(ortho, args.index, **options)
    print(f"{args.index} of run {ortho.attrs['run']}: {_summary(result.compute())}")
    if args.publish:
        published = publish_derived(storage, result, args.index, colormap="RdYlGn")
        print(f"published {published['key']} and {published['pmtiles']}; legend {published['legend'].text()}")
    return 0


def cmd_volume(args: argparse.Namespace, storage: Storage) -> int:
    from workbench.analysis.products import open_product
    from workbench.analysis.terrain import volume

    dsm = open_product(storage, args.org, args.project, args.product, args.run)
    base: float | str = "plane" if args.base == "plane" else float(args.base)
    print(volume(dsm, _polygon(args.polygon, dsm.rio.crs), base).line())
    return 0


def cmd_diff(args: argparse.Namespace, storage: Storage) -> int:
    import numpy as np

    from workbench.analysis.change import change_mask, difference
    from workbench.analysis.products import open_product
    from workbench.analysis.publish import publish_derived

    before = open_product(storage, args.org, args.project, args.product, args.before)
    after = open_product(storage, args.org, args.project, args.product, args.after)
    delta = difference(before, after).compute()
    changed = change_mask(delta, args.threshold)
    xres, yres = delta.rio.resolution()
    area = float(np.nansum(changed.values)) * abs(xres * yres)
    print(f"change {args.product} {before.attrs['run']} -> {after.attrs['run']}: {_summary(delta)}; "
          f"{area:,.1f} m2 changed by more than {args.threshold:g}")
    if args.publish:
        delta.attrs.update(org=args.org, project=args.project, run=after.attrs["run"])
        published = publish_derived(storage, delta, f"change-{args.product}", colormap="RdBu", units="m")
        print(f"published {published['key']} and {published['pmtiles']}")
    return 0


def cmd_zonal(args: argparse.Namespace, storage: Storage) -> int:
    from workbench.analysis.indices import index
    from workbench.analysis.products import open_product
    from workbench.analysis.zonal import coverage_polygons, zonal_statistics

    if args.index:
        raster = index(open_product(storage, args.org, args.project, "ortho", args.run), args.index)
    else:
        raster = open_product(storage, args.org, args.project, args.product, args.run)
    polygons = coverage_polygons(storage, args.org, args.project) if args.polygons == "coverage" else args.polygons
    table = zonal_statistics(raster, polygons)
    print(table.drop(columns="geometry").to_string())
    return 0


def add_commands(commands: Any, command: Callable[..., argparse.ArgumentParser],
                 with_storage: Callable[[Callable[[argparse.Namespace, Storage], int]], Callable[[argparse.Namespace], int]]) -> None:
    """Register ``analyze`` and its actions on the CLI's subparsers."""
    analyze = commands.add_parser("analyze", help="indices, volumes, change and zonal statistics of a project's products")
    actions = analyze.add_subparsers(dest="analyze_command", required=True, metavar="ACTION")

    def action(name: str, func: Callable[[argparse.Namespace, Storage], int], help_text: str) -> argparse.ArgumentParser:
        sub = command(name, with_storage(func), help_text, actions)
        sub.add_argument("--org", required=True)
        sub.add_argument("--project", required=True)
        return sub

    idx = action("index", cmd_index, "a vegetation index of the ortho (vari, exg, gli; ndvi for NIR cameras)")
    idx.add_argument("--index", choices=["vari", "exg", "gli", "ndvi"], default="vari")
    idx.add_argument("--run", default="latest")
    idx.add_argument("--camera", help="ndvi: the camera model (e.g. 'Canon PowerShot ELPH 300 HS')")
    idx.add_argument("--bands", help="ndvi: NIR,VISIBLE channel numbers instead of --camera (e.g. 1,3)")
    idx.add_argument("--overview-level", type=int, help="read an overview (0 = half resolution) for a quick look")
    idx.add_argument("--publish", action="store_true", help="store it as a derived product and a map layer")

    vol = action("volume", cmd_volume, "volume above/below a base within a polygon (GeoJSON, any CRS)")
    vol.add_argument("--polygon", required=True, help="GeoJSON or GeoParquet file with the polygon")
    vol.add_argument("--base", default="plane", help="'plane' through the polygon's edge (default) or a level in metres")
    vol.add_argument("--product", choices=["dsm", "dtm"], default="dsm")
    vol.add_argument("--run", default="latest")

    diff = action("diff", cmd_diff, "change of a product between two runs")
    diff.add_argument("--before", required=True, help="run id")
    diff.add_argument("--after", default="latest", help="run id (default: the latest)")
    diff.add_argument("--product", choices=["dsm", "dtm"], default="dsm")
    diff.add_argument("--threshold", type=float, default=0.5, help="change mask threshold (default 0.5, product units)")
    diff.add_argument("--publish", action="store_true", help="store the change as a derived product and a map layer")

    zonal = action("zonal", cmd_zonal, "statistics per polygon (a file, or 'coverage': the project's flights)")
    zonal.add_argument("--polygons", default="coverage")
    zonal.add_argument("--product", choices=["dsm", "dtm"], default="dsm")
    zonal.add_argument("--index", choices=["vari", "exg", "gli"], help="statistics of this index of the ortho instead")
    zonal.add_argument("--run", default="latest")
