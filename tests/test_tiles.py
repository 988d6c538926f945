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
import rasterio
from PIL import Image
from pmtiles.reader import MmapSource, Reader
from rasterio.transform import from_origin

from workbench import layout
from workbench.engines.cog import report
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import run_engine
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.pmtiles_check import check_archive, file_reader, stored_reader
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, write_survey
from workbench.tile_render import SourceRaster, plan_blocks, render_block
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
    differences = []
    with open(ours.path, "rb") as mine, open(tmp_path / "rio.pmtiles", "rb") as other:
        readers = Reader(MmapSource(mine)), Reader(MmapSource(other))
        for tile in theirs.tiles:
            a, b = (np.asarray(Image.open(io.BytesIO(r.get(*tile))).convert("RGBA")).astype(int) for r in readers)
            both = (a[..., 3] == 255) & (b[..., 3] == 255)
            if both.sum() > 1000:
                differences.append(np.abs(a[both][:, :3] - b[both][:, :3]).mean())
    assert differences and np.mean(differences) < 4.0, differences  # both lossy WebP at quality 75; 1 px off: 4.3


def _geotiff(path: Path, pixels: np.ndarray, resolution: float, crs: str = "EPSG:32737",
             origin: tuple[float, float] = (500100.0, 9250000.0)) -> Path:
    bands, height, width = pixels.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=bands, dtype=pixels.dtype, crs=crs,
                       transform=from_origin(*origin, resolution, resolution)) as dst:
        dst.write(pixels)
    return path


def _offset(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Sub-pixel (dx, dy) of ``ours`` against ``reference``: cross-correlation peak refined by a parabola."""
    both = (ours[..., 3] == 255) & (reference[..., 3] == 255)
    a, b = (np.where(both, image[..., :3].mean(axis=-1), 0.0) for image in (ours, reference))
    a[both] -= a[both].mean()
    b[both] -= b[both].mean()
    correlation = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    peak_y, peak_x = np.unravel_index(np.argmax(correlation), correlation.shape)

    def refine(minus: float, centre: float, plus: float) -> float:
        return 0.5 * (minus - plus) / (minus - 2 * centre + plus)

    rows, cols = correlation.shape
    dx = refine(correlation[peak_y, peak_x - 1], correlation[peak_y, peak_x], correlation[peak_y, (peak_x + 1) % cols])
    dy = refine(correlation[peak_y - 1, peak_x], correlation[peak_y, peak_x], correlation[(peak_y + 1) % rows, peak_x])
    wrap = lambda value, n: value - n if value > n // 2 else value  # noqa: E731
    return wrap(peak_x, cols) + dx, wrap(peak_y, rows) + dy


@pytest.fixture(scope="module")
def far_from_meridian(tmp_path_factory) -> Path:
    """A textured RGB raster at 60 N, 200 km west of its UTM zone's central meridian (grid convergence ~2.5 deg)."""
    from workbench.engines.cog import write_cog
    from workbench.synthetic import ground_colour

    rows, cols = np.mgrid[0:1500, 0:1500] * 0.1
    pixels = np.moveaxis(ground_colour(cols, -rows), -1, 0).astype(np.uint8)
    folder = tmp_path_factory.mktemp("rotated")
    raw = _geotiff(folder / "raw.tif", pixels, 0.1, crs="EPSG:32633", origin=(300000.0, 6655000.0))
    return write_cog(raw, folder / "rotated.tif")


@pytest.mark.parametrize("fixture", ["ortho", "far_from_meridian"])
def test_block_warp_matches_gdal(fixture: str, request: pytest.FixtureRequest) -> None:
    """The fitted-affine warp puts pixels where GDAL's exact warp (the fallback path) does, within 1/20 pixel."""
    ortho = request.getfixturevalue(fixture)
    bounds, resolution = source_facts(str(ortho))
    minzoom, maxzoom = zoom_range(bounds, resolution)
    blocks = plan_blocks(bounds, minzoom, maxzoom, 512)
    assert {z for b in blocks for z, _, _ in b.tiles} == set(range(minzoom, maxzoom + 1))
    compared = 0
    with SourceRaster(str(ortho)) as raster:
        for block in blocks:
            fast, exact = render_block(raster, block, 512), render_block(raster, block, 512, max_error=-1)
            if fast is None:
                assert exact is None
                continue
            ours, gdal = np.asarray(fast).astype(int), np.asarray(exact).astype(int)
            assert ((ours[..., 3] > 0) != (gdal[..., 3] > 0)).mean() < 0.005
            both = (ours[..., 3] == 255) & (gdal[..., 3] == 255)
            assert np.abs(ours[both][:, :3] - gdal[both][:, :3]).mean() < 2.5
            dx, dy = _offset(ours, gdal)
            assert abs(dx) < 0.05 and abs(dy) < 0.05, (dx, dy)  # pixels of the block (measured: < 0.015)
            compared += 1
    assert compared >= 2


def test_tiles_are_antialiased(tmp_path: Path) -> None:
    """A one-pixel checkerboard seen three source pixels to a tile pixel is grey, not a moire of black and white."""
    board = ((np.indices((1536, 1536)).sum(axis=0) % 2) * 255).astype(np.uint8)
    source = _geotiff(tmp_path / "board.tif", np.stack([board] * 3), 0.025)
    summary = write_pmtiles(str(source), tmp_path / "b.pmtiles", TileOptions(tile_format="png"), progress=False)
    with open(summary.path, "rb") as handle:
        reader = Reader(MmapSource(handle))
        z, x, y = max(check_archive(file_reader(summary.path)).tiles)
        tile = np.asarray(Image.open(io.BytesIO(reader.get(z, x, y))).convert("RGBA")).astype(float)
    inside = tile[..., 3] == 255
    assert summary.maxzoom == z and inside.sum() > 10000
    assert abs(tile[inside][:, :3].mean() - 127.5) < 10 and tile[inside][:, :3].std() < 12


def test_rasters_without_overviews_are_read_decimated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain GeoTIFF tiled at a low zoom is averaged while read, not read whole; it looks like its COG."""
    from workbench.engines.cog import write_cog

    rows, cols = np.mgrid[0:4096, 0:4096]
    pixels = np.stack([(rows // 16 % 256), (cols // 16 % 256), ((rows + cols) // 64 % 256)]).astype(np.uint8)
    plain = _geotiff(tmp_path / "plain.tif", pixels, 0.05)
    cog = write_cog(plain, tmp_path / "cog.tif")
    largest: list[int] = []
    original = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        data = original(self, *args, **kwargs)
        largest.append(data.shape[-1] * data.shape[-2])
        return data

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    options = TileOptions(minzoom=16, maxzoom=16, tile_format="png")
    tiles = {}
    for name, source in (("plain", plain), ("cog", cog)):
        summary = write_pmtiles(str(source), tmp_path / f"{name}.pmtiles", options, progress=False)
        with open(summary.path, "rb") as handle:
            reader = Reader(MmapSource(handle))
            tiles[name] = {t: np.asarray(Image.open(io.BytesIO(reader.get(*t))).convert("RGBA")).astype(int)
                           for t in check_archive(file_reader(summary.path)).tiles}
    assert max(largest) < 1024 * 1024 < 4096 * 4096  # the 4096 x 4096 raster is never read whole
    assert tiles["plain"].keys() == tiles["cog"].keys() and tiles["plain"]
    for tile, plain_pixels in tiles["plain"].items():
        both = (plain_pixels[..., 3] == 255) & (tiles["cog"][tile][..., 3] == 255)
        assert np.abs(plain_pixels[both][:, :3] - tiles["cog"][tile][both][:, :3]).mean() < 3


def test_grey_sources_are_tiled_and_non_8bit_refused(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))[None]
    summary = write_pmtiles(str(_geotiff(tmp_path / "grey.tif", ramp, 0.1)), tmp_path / "g.pmtiles",
                            TileOptions(tile_format="png"), progress=False)
    with open(summary.path, "rb") as handle:
        rgb = np.asarray(Image.open(io.BytesIO(Reader(MmapSource(handle)).get(*max(
            check_archive(file_reader(summary.path)).tiles)))).convert("RGB")).astype(int)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() and rgb.max() > 200
    heights = _geotiff(tmp_path / "dsm.tif", np.ones((1, 64, 64), np.float32), 0.1)
    with pytest.raises(WorkbenchError, match="8-bit"):
        write_pmtiles(str(heights), tmp_path / "d.pmtiles", progress=False)


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
    assert check_archive(stored_reader(project, key)).ok
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
    checked = check_archive(stored_reader(project, summary.key))
    assert checked.ok, checked.problems
    assert checked.header["tile_type"].name == "MVT"
    layers = {layer["id"]: layer for layer in checked.metadata["vector_layers"]}
    assert set(layers) == {"footprints", "coverage"}
    assert {"project", "flight", "captured_at", "qa"} <= set(layers["footprints"]["fields"])
    with pytest.raises(WorkbenchError, match="no ingested images"):
        build_coverage(project, "nobody")
