"""Raster PMTiles: the workbench's Dask tiler vs ``rio pmtiles`` (rio-pmtiles >= 1.2.2) on the same COG.

Generates an RGBA COG (default 16000 x 16000 px at 5 cm, the synthetic scene, an irregular footprint
with transparency outside), then tiles it with both tools, one after the other, with the same tile size
(512), format (WebP), zoom range, on the same CPUs (rio-pmtiles: ``-j`` = CPU count processes; the
workbench: its default local Dask cluster, threads of one process). Each tool runs as its own
process tree; wall time, CPU seconds (all descendants) and peak memory (sum of the tree's RSS, sampled
every 50 ms) are measured from outside. Prints tiles per zoom, whether both produced the same set of
tiles, and the ratios.

``python benchmarks/tiles.py [--size 16000]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from pmtiles.reader import MmapSource, Reader
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import measure  # noqa: E402
from workbench.engines.cog import write_cog  # noqa: E402
from workbench.pmtiles_check import check_archive, file_reader  # noqa: E402
from workbench.synthetic import ground_colour  # noqa: E402
from workbench.tiles import source_facts, zoom_range  # noqa: E402

OURS = """
import sys
from workbench.tiles import TileOptions, write_pmtiles
if __name__ == "__main__":
    write_pmtiles(sys.argv[1], sys.argv[2], TileOptions(minzoom=int(sys.argv[3]), maxzoom=int(sys.argv[4])),
                  progress=False)
"""


PLACES = {  # CRS and upper-left corner of the COG
    "meridian": ("EPSG:32737", (500000.0, 9250000.0)),  # 7 S on UTM 37S's central meridian: grid north = north
    "off-meridian": ("EPSG:32633", (300000.0, 6655000.0)),  # 60 N, 200 km west of it: 3.1 deg grid convergence
}


def make_cog(path: Path, size: int, resolution: float, place: str = "meridian") -> Path:
    """An RGBA COG of the synthetic scene at ``place`` with an irregular (wavy-edged disc) footprint."""
    raw = path.with_suffix(".raw.tif")
    crs, (origin_x, origin_y) = PLACES[place]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint8", "crs": crs,
               "transform": from_origin(origin_x, origin_y, resolution, resolution), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    cols = np.arange(size)
    with rasterio.open(raw, "w", **profile) as dst:
        for row0 in range(0, size, 512):
            rows = np.arange(row0, min(size, row0 + 512))
            cc, rr = np.meshgrid(cols, rows)
            east, north = cc * resolution, -rr * resolution
            rgb = ground_colour(east, north)
            dx, dy = cc - size / 2, rr - size / 2
            radius = size * (0.42 + 0.05 * np.sin(np.arctan2(dy, dx) * 7))
            alpha = np.where(np.hypot(dx, dy) < radius, 255, 0).astype(np.uint8)
            window = rasterio.windows.Window(0, row0, size, len(rows))
            dst.write(np.moveaxis(rgb, -1, 0), [1, 2, 3], window=window)
            dst.write(alpha, 4, window=window)
        dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                           rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    write_cog(raw, path)
    raw.unlink()
    return path


def transparent_tiles(archive: Path, tiles: set[tuple[int, int, int]]) -> tuple[int, int]:
    """How many of ``tiles`` there are, and how many of them have no pixel with any alpha."""
    with open(archive, "rb") as handle:
        reader = Reader(MmapSource(handle))
        empty = sum(Image.open(io.BytesIO(reader.get(*tile))).convert("RGBA").getchannel("A").getbbox() is None
                    for tile in tiles)
    return len(tiles), empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16000, help="pixels per side (default 16000)")
    parser.add_argument("--resolution", type=float, default=0.05)
    parser.add_argument("--place", choices=sorted(PLACES), default="meridian",
                        help="where the COG lies: on its UTM zone's central meridian (default) or off it (rotated grid)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "tiles.json")
    args = parser.parse_args()
    rio = Path(sys.executable).with_name("rio")
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as scratch:
        folder = Path(scratch)
        print(f"making a {args.size} x {args.size} RGBA COG at {args.resolution * 100:g} cm ...", flush=True)
        cog = make_cog(folder / "ortho.tif", args.size, args.resolution, args.place)
        minzoom, maxzoom = zoom_range(*source_facts(str(cog)))
        print(f"COG {cog.stat().st_size / 2**20:.0f} MiB; zooms {minzoom}..{maxzoom}; {cpus} CPUs", flush=True)
        results = {
            "workbench": measure([sys.executable, "-c", OURS, str(cog), str(folder / "ours.pmtiles"), str(minzoom),
                                  str(maxzoom)]),
            "rio pmtiles": measure([str(rio), "pmtiles", str(cog), str(folder / "rio.pmtiles"), "--rgba", "-f", "WEBP",
                                    "--tile-size", "512", "--zoom-levels", f"{minzoom}..{maxzoom}", "-j", str(cpus),
                                    "--silent"]),
        }
        archives = {"workbench": check_archive(file_reader(folder / "ours.pmtiles")),
                    "rio pmtiles": check_archive(file_reader(folder / "rio.pmtiles"))}
        sizes = {"workbench": (folder / "ours.pmtiles").stat().st_size, "rio pmtiles": (folder / "rio.pmtiles").stat().st_size}
        only = {"workbench": transparent_tiles(folder / "ours.pmtiles", archives["workbench"].tiles - archives["rio pmtiles"].tiles),
                "rio pmtiles": transparent_tiles(folder / "rio.pmtiles", archives["rio pmtiles"].tiles - archives["workbench"].tiles)}
    print(f"{'tool':<14}{'wall s':>9}{'CPU s':>9}{'peak MiB':>10}{'tiles':>8}{'MiB':>8}  valid  tiles per zoom")
    for name, numbers in results.items():
        report = archives[name]
        print(f"{name:<14}{numbers['wall_s']:>9.1f}{numbers['cpu_s']:>9.1f}{numbers['peak_mib']:>10.0f}"
              f"{len(report.tile_ids):>8}{sizes[name] / 2**20:>8.1f}  {str(report.ok):<5}  "
              f"{dict(sorted(report.tiles_per_zoom.items()))}")
    ours, theirs = results["workbench"], results["rio pmtiles"]
    same = archives["workbench"].tiles == archives["rio pmtiles"].tiles
    print(f"same tiles (z/x/y): {same}; wall time ratio rio/workbench {theirs['wall_s'] / ours['wall_s']:.2f}x; "
          f"CPU ratio {theirs['cpu_s'] / ours['cpu_s']:.2f}x; peak memory workbench {ours['peak_mib']:.0f} MiB")
    for name, (count, transparent) in only.items():
        if count:
            print(f"  {count} tiles only in {name}'s archive, {transparent} of them fully transparent")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"size": args.size, "resolution": args.resolution, "place": args.place,
                                     "zooms": [minzoom, maxzoom], "cpus": cpus, "results": results, "same_tiles": same,
                                     "only_in": only, "bytes": sizes}, indent=2))


if __name__ == "__main__":
    main()
