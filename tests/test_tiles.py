"""Raster PMTiles from the quick-look COG: zooms, the same tiles as rio-pmtiles, a valid archive, publishing."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pmtiles.reader import MmapSource, Reader

from workbench import layout
from workbench.engines.cog import report
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import run_engine
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.pmtiles_check import check_archive, file_reader
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, write_survey
from workbench.tiles import (
    TileOptions,
    publish,
    source_facts,
    tile_run,
    write_pmtiles,
    zoom_range,
)
from workbench.transfer import upload_folder

SURVEY = Survey(lines=2, shots_per_line=4, camera=Camera(width=600, height=400))


@pytest.fixture(scope="module")
def project(s3_server, tmp_path_factory, dask_client) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket="tiles"))
    storage.ensure_bucket()
    folder = tmp_path_factory.mktemp("survey")
    write_survey(folder, SURVEY)
    flight = layout.new_id()
    upload_folder(storage, folder, lambda p: layout.raw_key("org", "tiles", flight, p.name), progress=False)
    ingest(storage, "org", "tiles", client=dask_client, progress=False)
    run_engine(storage, "org", "tiles", QuicklookEngine(), client=dask_client, progress=False, reporter=report)
    return storage


@pytest.fixture(scope="module")
def ortho(project: Storage, tmp_path_factory) -> Path:
    from workbench.engines.runs import latest

    record = latest(project, "org", "tiles")
    path = tmp_path_factory.mktemp("ortho") / "ortho.tif"
    path.write_bytes(project.get_bytes(next(p["key"] for p in record["products"] if p["name"] == "ortho.tif")))
    return path


def test_zoom_range_follows_the_source_resolution(ortho: Path) -> None:
    bounds, resolution = source_facts(str(ortho))
    assert resolution == pytest.approx(SURVEY.camera.gsd(SURVEY.altitude))
    minzoom, maxzoom = zoom_range(bounds, resolution)
    pixel = lambda z: 40075016.686 * np.cos(np.radians((bounds[1] + bounds[3]) / 2)) / (512 * 2**z)  # noqa: E731
    assert pixel(maxzoom) >= resolution > pixel(maxzoom + 1)
    assert minzoom <= maxzoom


def test_archive_is_valid_clustered_and_transparent_outside_the_ortho(ortho: Path, tmp_path: Path, dask_client) -> None:
    summary = write_pmtiles(str(ortho), tmp_path / "o.pmtiles", TileOptions(name="test", attribution="me"),
                            client=dask_client, progress=False)
    checked = check_archive(file_reader(summary.path))
    assert checked.ok, checked.problems
    assert checked.header["clustered"] and checked.header["tile_type"].name == "WEBP"
    assert checked.metadata["name"] == "test" and checked.metadata["attribution"] == "me"
    assert checked.tiles_per_zoom == summary.tiles_per_zoom and sum(summary.tiles_per_zoom.values()) == summary.tiles
    assert (checked.header["min_zoom"], checked.header["max_zoom"]) == (summary.minzoom, summary.maxzoom)
    with open(summary.path, "rb") as handle:
        reader = Reader(MmapSource(handle))
        z, x, y = sorted(checked.tiles)[-1]
        tile = Image.open(io.BytesIO(reader.get(z, x, y)))
    alpha = np.asarray(tile.convert("RGBA"))[..., 3]
    assert tile.size == (512, 512) and alpha.max() == 255


@pytest.mark.slow
def test_same_tiles_as_rio_pmtiles(ortho: Path, tmp_path: Path, dask_client) -> None:
    rio = shutil.which("rio", path=str(Path(sys.executable).parent))
    if rio is None:
        pytest.skip("rio-pmtiles is not installed")
    ours = write_pmtiles(str(ortho), tmp_path / "ours.pmtiles", client=dask_client, progress=False)
    subprocess.run([rio, "pmtiles", str(ortho), str(tmp_path / "rio.pmtiles"), "--rgba", "-f", "WEBP", "--tile-size", "512",
                    "--zoom-levels", f"{ours.minzoom}..{ours.maxzoom}", "--silent"], check=True)
    theirs = check_archive(file_reader(tmp_path / "rio.pmtiles"))
    assert theirs.ok and check_archive(file_reader(ours.path)).tiles == theirs.tiles


@pytest.mark.parametrize(("tile_format", "magic"), [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8")])
def test_other_formats_and_tile_sizes(ortho: Path, tmp_path: Path, dask_client, tile_format: str, magic: bytes) -> None:
    summary = write_pmtiles(str(ortho), tmp_path / "o.pmtiles", TileOptions(tile_format=tile_format, tile_size=256),
                            client=dask_client, progress=False)
    checked = check_archive(file_reader(summary.path))
    assert checked.ok, checked.problems
    with open(summary.path, "rb") as handle:
        reader = Reader(MmapSource(handle))
        data = reader.get(*sorted(checked.tiles)[0])
    assert data.startswith(magic) and Image.open(io.BytesIO(data)).size == (256, 256)


def test_bad_options_are_refused() -> None:
    for kwargs, message in (({"tile_format": "gif"}, "tile format"), ({"tile_size": 300}, "tile size"),
                            ({"quality": 0}, "quality")):
        with pytest.raises(WorkbenchError, match=message):
            TileOptions(**kwargs)


def test_the_checker_finds_broken_archives(ortho: Path, tmp_path: Path, dask_client) -> None:
    summary = write_pmtiles(str(ortho), tmp_path / "o.pmtiles", client=dask_client, progress=False)
    data = bytearray(summary.path.read_bytes())
    garbage = check_archive(lambda o, n: (b"NOTPMTL" + bytes(16384))[o : o + n])
    assert not garbage.ok and "not a PMTiles v3 archive" in garbage.problems[0]
    corrupt = bytearray(data)
    header = check_archive(file_reader(summary.path)).header
    corrupt[header["tile_data_offset"] : header["tile_data_offset"] + 4] = b"XXXX"
    problems = check_archive(lambda o, n: bytes(corrupt[o : o + n])).problems
    assert any("is not WEBP" in p for p in problems)


def test_tile_run_publishes_with_headers_and_prunes_generations(project: Storage, dask_client) -> None:
    for day in range(1, 9):
        project.put_bytes(f"pmtiles/ortho/org/tiles/2026-01-0{day}.pmtiles", b"old generation")
    key, summary, pruned = tile_run(project, "org", "tiles", client=dask_client, progress=False)
    assert key == f"pmtiles/ortho/org/tiles/{dt.date.today().isoformat()}.pmtiles"
    head = project.client.head_object(Bucket=project.bucket, Key=key)
    assert head["ContentType"] == "application/vnd.pmtiles" and "max-age" in head["CacheControl"]
    assert check_archive(lambda o, n: project.get_bytes(key, (o, o + n - 1))).ok
    remaining = sorted(i.key for i in project.list("pmtiles/ortho/org/tiles/"))
    assert len(remaining) == 7 and key in remaining and len(pruned.deleted) == 2
    with pytest.raises(WorkbenchError, match="no completed processing run"):
        tile_run(project, "org", "nothing-here", client=dask_client, progress=False)


def test_publish_refuses_an_invalid_archive(project: Storage, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pmtiles"
    bad.write_bytes(b"not an archive" * 100)
    with pytest.raises(WorkbenchError, match="not a valid PMTiles"):
        publish(project, bad, "ortho", "org", "tiles")


def test_coverage_vector_tiles_of_the_org(project: Storage) -> None:
    from workbench.coverage import build_coverage

    summary = build_coverage(project, "org")
    assert summary.projects == ["tiles"] and summary.footprints == 8 and summary.flights == 1 and summary.tiles > 0
    assert summary.key == f"pmtiles/coverage/org/{dt.date.today().isoformat()}.pmtiles"
    checked = check_archive(lambda o, n: project.get_bytes(summary.key, (o, o + n - 1)))
    assert checked.ok, checked.problems
    assert checked.header["tile_type"].name == "MVT"
    layers = {layer["id"]: layer for layer in checked.metadata["vector_layers"]}
    assert set(layers) == {"footprints", "coverage"}
    assert {"project", "flight", "captured_at", "qa"} <= set(layers["footprints"]["fields"])
    with pytest.raises(WorkbenchError, match="no ingested images"):
        build_coverage(project, "nobody")
