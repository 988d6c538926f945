"""Vector coverage PMTiles: tippecanoe (what ``workbench coverage`` runs) vs mapbox-vector-tile, same features.

Generates an organisation's footprints and flight coverage (default 40 projects x 3 flights x 150 images,
serpentine surveys at 80/70 % overlap around Dar es Salaam, the attributes ``workbench coverage`` writes),
then builds zooms 0-18 with both tools, one after the other:

* tippecanoe through ``workbench.coverage.tile_features`` (multi-threaded C++);
* mapbox-vector-tile: per tile, features found with a shapely STRtree, clipped to the tile plus a 1/64
  buffer, encoded, gzipped, in a process pool of CPU-count workers, written by ``pmtiles.Writer``.

Each runs as its own process tree; wall time, CPU seconds and peak memory are measured from outside.
Prints tiles, archive size, features in the busiest deepest-zoom tile of each, and the ratios.

``python benchmarks/coverage.py [--projects 40]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import measure  # noqa: E402
from workbench.pmtiles_check import check_archive, file_reader  # noqa: E402

MAX_ZOOM = 18
EXTENT = 4096
OURS = """
import json, sys
from pathlib import Path
from workbench.coverage import tile_features
layers = json.loads(Path(sys.argv[1]).read_text())
tile_features(layers, Path(sys.argv[2]), name="bench coverage", attribution="bench")
"""


def _reprojector(source: str, target: str) -> Any:
    """A function reprojecting shapely geometries from ``source`` to ``target``."""
    import numpy as np
    import shapely
    from pyproj import Transformer

    transformer = Transformer.from_crs(source, target, always_xy=True)
    return lambda geometry: shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def make_features(projects: int, flights: int, images: int) -> dict[str, list[dict[str, Any]]]:
    """Footprints (90 x 60 m, 80 % forward / 70 % side overlap) and flight coverage polygons, as GeoJSON."""
    from shapely import affinity, unary_union
    from shapely.geometry import box, mapping

    to_lonlat = _reprojector("EPSG:32737", "EPSG:4326")
    footprints, coverage = [], []
    per_line = 15
    for p in range(projects):
        origin_x, origin_y = 520000 + (p % 8) * 5000, 9240000 - (p // 8) * 5000
        for f in range(flights):
            shapes = []
            for i in range(images):
                line, shot = divmod(i, per_line)
                x = origin_x + f * 700 + line * 90 * 0.3
                y = origin_y + (shot if line % 2 == 0 else per_line - 1 - shot) * 60 * 0.2
                shape = affinity.rotate(box(x - 45, y - 30, x + 45, y + 30), 12 * (line % 2), origin="center")
                shapes.append(shape)
                footprints.append({"type": "Feature", "geometry": mapping(to_lonlat(shape)), "properties": {
                    "name": f"DJI_{i:04d}.JPG", "project": f"project-{p:02d}", "flight": f"flight-{f}",
                    "captured_at": f"2026-05-{1 + f:02d}T10:{i // 60:02d}:{i % 60:02d}", "qa": "ok" if i % 17 else "blurry"}})
            union = unary_union(shapes)
            coverage.append({"type": "Feature", "geometry": mapping(to_lonlat(union)), "properties": {
                "project": f"project-{p:02d}", "flight": f"flight-{f}", "images": images, "usable_images": images - 9,
                "area_m2": round(union.area, 1)}})
    return {"footprints": footprints, "coverage": coverage}


_LAYERS: dict[str, tuple[Any, list[Any], list[dict[str, Any]]]] = {}


def _load(path: str) -> None:
    """Pool initialiser: the features in web mercator with an STRtree per layer."""
    from shapely import STRtree
    from shapely.geometry import shape

    to_mercator = _reprojector("EPSG:4326", "EPSG:3857")
    for name, features in json.loads(Path(path).read_text()).items():
        geometries = [to_mercator(shape(f["geometry"])) for f in features]
        _LAYERS[name] = (STRtree(geometries), geometries, [f["properties"] for f in features])


def _encode_tiles(tiles: list[tuple[int, int, int]]) -> list[tuple[tuple[int, int, int], bytes]]:
    import mapbox_vector_tile
    import mercantile
    from shapely import clip_by_rect

    out = []
    for z, x, y in tiles:
        bounds = mercantile.xy_bounds(x, y, z)
        pad = (bounds.right - bounds.left) / 64
        layers = []
        for name, (tree, geometries, properties) in _LAYERS.items():
            area = _box(bounds, pad)
            features = []
            for i in sorted(tree.query(area)):
                clipped = clip_by_rect(geometries[i], *area.bounds)
                if not clipped.is_empty:
                    features.append({"geometry": clipped, "properties": properties[i]})
            if features:
                layers.append({"name": name, "features": features})
        if layers:
            data = mapbox_vector_tile.encode(layers, default_options={"quantize_bounds": tuple(bounds),
                                                                      "extents": EXTENT})
            out.append(((z, x, y), gzip.compress(data)))
    return out


def _box(bounds: Any, pad: float) -> Any:
    from shapely.geometry import box

    return box(bounds.left - pad, bounds.bottom - pad, bounds.right + pad, bounds.top + pad)


def run_mapbox_vector_tile(features_path: str, archive: str) -> None:
    """The mapbox-vector-tile contender: every tile of zooms 0..MAX_ZOOM that holds a feature."""
    import mercantile
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer
    from shapely.geometry import shape

    layers = json.loads(Path(features_path).read_text())
    shapes = [shape(f["geometry"]) for features in layers.values() for f in features]
    west = min(s.bounds[0] for s in shapes)
    south = min(s.bounds[1] for s in shapes)
    east = max(s.bounds[2] for s in shapes)
    north = max(s.bounds[3] for s in shapes)
    candidates = [(t.z, t.x, t.y) for s in shapes for t in mercantile.tiles(*s.bounds, zooms=[MAX_ZOOM])]
    wanted: set[tuple[int, int, int]] = set(candidates)
    for z in range(MAX_ZOOM - 1, -1, -1):
        wanted |= {(z, x >> (MAX_ZOOM - z), y >> (MAX_ZOOM - z)) for _, x, y in candidates}
    ordered = sorted(wanted, key=lambda t: zxy_to_tileid(*t))
    cpus = os.cpu_count() or 1
    chunks = [ordered[i::cpus * 8] for i in range(cpus * 8)]
    with ProcessPoolExecutor(cpus, initializer=_load, initargs=(features_path,)) as pool:
        encoded = dict(tile for chunk in pool.map(_encode_tiles, chunks) for tile in chunk)
    with open(archive, "wb") as handle:
        writer = Writer(handle)
        for zxy in sorted(encoded, key=lambda t: zxy_to_tileid(*t)):
            writer.write_tile(zxy_to_tileid(*zxy), encoded[zxy])
        writer.finalize({"tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
                         "min_lon_e7": int(west * 1e7), "min_lat_e7": int(south * 1e7), "max_lon_e7": int(east * 1e7),
                         "max_lat_e7": int(north * 1e7), "center_zoom": 12, "center_lon_e7": int((west + east) / 2 * 1e7),
                         "center_lat_e7": int((south + north) / 2 * 1e7)},
                        {"name": "bench coverage", "vector_layers": [{"id": name, "fields": {}} for name in layers]})


def busiest_deepest_tile(archive: Path) -> int:
    """Features (both layers) in the deepest-zoom tile that holds most of them."""
    import mapbox_vector_tile
    from pmtiles.reader import MmapSource, Reader, all_tiles

    most = 0
    with open(archive, "rb") as handle:
        reader = Reader(MmapSource(handle))
        deepest = reader.header()["max_zoom"]
        for (z, _, _), data in all_tiles(reader.get_bytes):
            if z == deepest:
                decoded = mapbox_vector_tile.decode(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
                most = max(most, sum(len(layer["features"]) for layer in decoded.values()))
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--flights", type=int, default=3)
    parser.add_argument("--images", type=int, default=150, help="images per flight")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "coverage.json")
    parser.add_argument("--run-mapbox-vector-tile", nargs=2, metavar=("FEATURES", "ARCHIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_mapbox_vector_tile:
        run_mapbox_vector_tile(*args.run_mapbox_vector_tile)
        return
    with tempfile.TemporaryDirectory(prefix="bench-coverage-") as scratch:
        folder = Path(scratch)
        layers = make_features(args.projects, args.flights, args.images)
        features = folder / "features.json"
        features.write_text(json.dumps(layers))
        count = sum(len(f) for f in layers.values())
        print(f"{len(layers['footprints'])} footprints + {len(layers['coverage'])} flight polygons; zooms 0..{MAX_ZOOM}; "
              f"{os.cpu_count()} CPUs", flush=True)
        archives = {"tippecanoe": folder / "tippecanoe.pmtiles", "mapbox-vector-tile": folder / "mvt.pmtiles"}
        results = {
            "tippecanoe": measure([sys.executable, "-c", OURS, str(features), str(archives["tippecanoe"])]),
            "mapbox-vector-tile": measure([sys.executable, str(Path(__file__).resolve()), "--run-mapbox-vector-tile",
                                           str(features), str(archives["mapbox-vector-tile"])]),
        }
        for name, archive in archives.items():
            report = check_archive(file_reader(archive))
            results[name].update(tiles=len(report.tile_ids), bytes=archive.stat().st_size, valid=report.ok,
                                 busiest_tile_features=busiest_deepest_tile(archive))
    print(f"{'tool':<20}{'wall s':>8}{'CPU s':>8}{'peak MiB':>10}{'tiles':>8}{'MiB':>7}  valid  busiest z{MAX_ZOOM} tile")
    for name, numbers in results.items():
        print(f"{name:<20}{numbers['wall_s']:>8.1f}{numbers['cpu_s']:>8.1f}{numbers['peak_mib']:>10.0f}"
              f"{numbers['tiles']:>8}{numbers['bytes'] / 2**20:>7.1f}  {str(numbers['valid']):<5}  "
              f"{numbers['busiest_tile_features']} features")
    ours, theirs = results["tippecanoe"], results["mapbox-vector-tile"]
    print(f"wall time ratio mapbox-vector-tile/tippecanoe {theirs['wall_s'] / ours['wall_s']:.2f}x; "
          f"CPU ratio {theirs['cpu_s'] / ours['cpu_s']:.2f}x; size ratio {theirs['bytes'] / ours['bytes']:.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"features": count, "max_zoom": MAX_ZOOM, "cpus": os.cpu_count(),
                                     "results": results}, indent=2))


if __name__ == "__main__":
    main()
