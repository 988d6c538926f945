"""Real flights from two makers, and cameras that write no height or heading, through the real S3 and Dask:
footprints, heights from the fallbacks, headings from the track, blur judged against the flight, and the
messages that say what is missing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import rasterio
from PIL import Image, ImageFilter
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely import from_wkb

from workbench import layout
from workbench.coverage import build_coverage
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import EngineError, run_engine
from workbench.errors import WorkbenchError
from workbench.imagery import footprint as fp
from workbench.imagery.ground import HeightOptions
from workbench.imagery.ingest import ingest
from workbench.imagery.manifest import read_table, write_table
from workbench.storage import Storage
from workbench.synthetic import Survey, write_survey
from workbench.transfer import upload_folder

COMPACT = Survey()  # flown 60 m above ground that is 12 m above sea level; written without XMP below


def _upload(storage: Storage, folder: Path, project: str) -> str:
    flight = layout.new_id()
    report = upload_folder(storage, folder, lambda p: layout.raw_key("org", project, flight, p.name), progress=False)
    assert not report.failed
    return flight


def _rows(storage: Storage, project: str) -> dict[str, dict]:
    table = read_table(storage, layout.parquet_key("images", "org", project, "manifest.parquet"))
    assert table is not None
    return {row["name"]: row for row in table.to_pylist()}


@pytest.fixture(scope="module")
def bucket(s3_server) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket="real-flights"))
    storage.ensure_bucket()
    return storage


@pytest.fixture(scope="module")
def real(bucket: Storage, seneca_images: list[Path], brighton_images: list[Path], dask_client):
    results = {}
    for project, images in (("seneca", seneca_images), ("brighton", brighton_images)):
        flight = layout.new_id()
        upload_folder(bucket, images[0].parent, lambda p, project=project, flight=flight: layout.raw_key("org", project, flight, p.name),
                      progress=False)
        results[project] = ingest(bucket, "org", project, client=dask_client, progress=False)
    return results


def _corners_utm(row: dict) -> np.ndarray:
    polygon = from_wkb(row["geometry"])
    crs = fp.utm_crs(row["lon"], row["lat"])
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return np.array([to_utm.transform(x, y) for x, y in list(polygon.exterior.coords)[:4]])


def _bearing_difference(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def test_seneca_footprints_have_the_right_size_and_follow_the_flight_line(bucket: Storage, real) -> None:
    rows = _rows(bucket, "seneca")
    assert len(rows) == 14 and all(r["usable"] and not r["flags"] for r in rows.values()), \
        {n: r["reasons"] for n, r in rows.items() if r["flags"]}
    differences = []
    for row in rows.values():
        assert row["height_source"] == "xmp-sensefly" and 60 < row["relative_altitude"] < 80
        assert row["yaw_source"] == "xmp-sensefly" and row["geometry"] is not None
        corners = _corners_utm(row)  # top-left, top-right, bottom-right, bottom-left
        across = row["relative_altitude"] * row["sensor_width_mm"] / row["focal_length_mm"]
        assert np.linalg.norm(corners[1] - corners[0]) == pytest.approx(across, rel=0.02)
        assert np.linalg.norm(corners[0] - corners[3]) == pytest.approx(across * row["height"] / row["width"], rel=0.02)
        up = (corners[0] + corners[1]) / 2 - (corners[2] + corners[3]) / 2
        differences.append(_bearing_difference(math.degrees(math.atan2(up[0], up[1])), row["track_yaw"]))
    assert np.median(differences) < 12 and sum(d < 20 for d in differences) >= 10, differences
    coverage = read_table(bucket, layout.parquet_key("coverage", "org", "seneca", "coverage.parquet")).to_pylist()
    assert coverage[0]["area_m2"] > 20_000


def test_brighton_is_read_as_before(bucket: Storage, real) -> None:
    rows = _rows(bucket, "brighton")
    assert len(rows) == 18 and all(not r["flags"] for r in rows.values())
    assert {r["height_source"] for r in rows.values()} == {"xmp-dji"} and {r["yaw_source"] for r in rows.values()} == {"xmp-dji"}
    assert all(r["geometry"] is not None and r["sensor_source"] == "exif-35mm" for r in rows.values())
    assert "no footprint" not in real["brighton"].summary()


def test_seneca_quicklook_reports_its_seam_misfit(bucket: Storage, real, dask_client) -> None:
    record = run_engine(bucket, "org", "seneca", QuicklookEngine(), {"max_size": 2000}, client=dask_client, progress=False)
    quality = record.products[0]["report"]["quality"]
    assert quality["images_placed"] == 14
    seams = quality["seams"]
    # real GPS and headings: overlapping images disagree by metres (ODM-style photogrammetry removes this)
    assert seams["pairs"] >= 8 and 2.0 < seams["median_m"] < 60.0 and seams["p90_m"] >= seams["median_m"]


@pytest.fixture(scope="module")
def compact_survey(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compact")
    write_survey(folder, COMPACT, xmp=False)
    return folder


@pytest.fixture(scope="module")
def dem(tmp_path_factory) -> Path:
    """A DEM 12 m above sea level everywhere around the survey (EPSG:4326, float32, with nodata)."""
    path = tmp_path_factory.mktemp("dem") / "dem.tif"
    values = np.full((200, 200), 12.0, dtype=np.float32)
    values[:5] = -9999.0  # a nodata strip far north of the survey
    with rasterio.open(path, "w", driver="GTiff", width=200, height=200, count=1, dtype="float32", crs="EPSG:4326",
                       nodata=-9999.0, transform=from_origin(COMPACT.origin_lon - 0.01, COMPACT.origin_lat + 0.01,
                                                             0.0001, 0.0001)) as dst:
        dst.write(values, 1)
    return path


@pytest.mark.parametrize(("name", "options", "source"), [
    ("agl", HeightOptions(agl=60.0), "agl-option"),
    ("ground", HeightOptions(ground_elevation=12.0), "ground-elevation"),
    ("dem", "DEM", "dem"),
])
def test_height_fallbacks_give_the_expected_height(bucket: Storage, compact_survey: Path, dem: Path, dask_client,
                                                   name: str, options, source: str) -> None:
    project = f"compact-{name}"
    _upload(bucket, compact_survey, project)
    heights = HeightOptions(dem=str(dem)) if options == "DEM" else options
    result = ingest(bucket, "org", project, client=dask_client, pixels=False, progress=False, heights=heights)
    rows = result.rows
    assert all(r["relative_altitude"] == pytest.approx(COMPACT.altitude, abs=0.01) for r in rows)
    assert {r["height_source"] for r in rows} == {source} and not result.missing_footprints
    truth = COMPACT.camera.width * COMPACT.camera.gsd(COMPACT.altitude) * COMPACT.camera.height * COMPACT.camera.gsd(COMPACT.altitude)
    for row in rows:
        assert row["yaw_source"] == "track" and row["usable"]
        assert from_wkb(row["geometry"]).area > 0
        corners = _corners_utm(row)
        area = 0.5 * abs(np.dot(corners[:, 0], np.roll(corners[:, 1], 1)) - np.dot(corners[:, 1], np.roll(corners[:, 0], 1)))
        assert area == pytest.approx(truth, rel=0.01)
    middle = [r for r in rows if r["name"] in ("SYN_0003.JPG", "SYN_0009.JPG")]  # mid-line: flying north, then south
    assert [round(r["track_yaw"]) % 360 for r in middle] == [0, 180]


def test_without_a_height_images_are_flagged_and_every_command_says_what_to_give(bucket: Storage, compact_survey: Path,
                                                                              dask_client) -> None:
    _upload(bucket, compact_survey, "compact-none")
    result = ingest(bucket, "org", "compact-none", client=dask_client, pixels=False, progress=False)
    assert all(r["flags"] == ["no_height"] and r["usable"] for r in result.rows)  # advisory: odm can still use them
    reason = result.rows[0]["reasons"][0]
    assert "--agl" in reason and "--ground-elevation" in reason and "--dem" in reason
    summary = result.summary()
    assert "18 of 18 image(s) have no footprint (18 no height above ground" in summary and "--agl" in summary
    with pytest.raises(WorkbenchError, match=r"no coverage for org 'nohts': .*18 no height above ground.*--agl") as raised:
        _coverage_of_a_fresh_org(bucket, compact_survey, dask_client)
    assert "run `workbench ingest` first" not in str(raised.value)
    with pytest.raises(EngineError, match=r"quicklook cannot place any image: 18 of 18 .*--ground-elevation"):
        run_engine(bucket, "org", "compact-none", QuicklookEngine(), client=dask_client, progress=False)


def _coverage_of_a_fresh_org(bucket: Storage, folder: Path, dask_client) -> None:
    flight = layout.new_id()
    upload_folder(bucket, folder, lambda p: layout.raw_key("nohts", "p", flight, p.name), progress=False)
    ingest(bucket, "nohts", "p", client=dask_client, pixels=False, progress=False)
    build_coverage(bucket, "nohts")


def test_a_dem_without_the_position_or_a_bad_option_is_a_clear_error(bucket: Storage, compact_survey: Path, tmp_path: Path,
                                                                     dask_client) -> None:
    with pytest.raises(WorkbenchError, match="agl must be between 0"):
        HeightOptions(agl=-5)
    with pytest.raises(WorkbenchError, match="finite"):
        HeightOptions(ground_elevation=float("nan"))
    _upload(bucket, compact_survey, "compact-baddem")
    with pytest.raises(WorkbenchError, match="cannot read the DEM"):
        ingest(bucket, "org", "compact-baddem", client=dask_client, pixels=False, progress=False,
               heights=HeightOptions(dem=str(tmp_path / "missing.tif")))


# -- blur judged against the flight -----------------------------------------------------------------------


def _save_like(original: Path, image: Image.Image, target: Path) -> None:
    with Image.open(original) as source:
        extra = {k: source.info[k] for k in ("exif", "xmp") if source.info.get(k)}
    image.save(target, "JPEG", quality=92, **extra)


def _motion(image: Image.Image, length: int = 15) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    padded = np.pad(pixels, ((0, 0), (length // 2, length // 2), (0, 0)), mode="edge")
    smeared = sum(padded[:, i : i + pixels.shape[1]] for i in range(length)) / length
    return Image.fromarray(np.clip(smeared, 0, 255).astype(np.uint8))


def _contrast(image: Image.Image, factor: float = 0.3) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    return Image.fromarray(np.clip(pixels.mean() + (pixels - pixels.mean()) * factor, 0, 255).astype(np.uint8))


def _flight(folder: Path, originals: list[Path], keep: int, change=None, blur_two: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in originals[:keep]:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            _save_like(path, change(rgb) if change else rgb, folder / path.name)
    if blur_two:
        for path, blur, name in ((originals[2], lambda im: im.filter(ImageFilter.GaussianBlur(2)), "GAUSS2.jpg"),
                                 (originals[5], _motion, "MOTION15.jpg")):
            with Image.open(path) as image:
                _save_like(path, blur(image.convert("RGB")), folder / name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("camera", ["brighton", "seneca"])
def test_blur_is_judged_against_the_flight(bucket: Storage, camera: str, brighton_images: list[Path],
                                           seneca_images: list[Path], tmp_path: Path, dask_client) -> None:
    originals = brighton_images if camera == "brighton" else seneca_images
    flights = {
        "sharp-with-two-blurred": _flight(tmp_path / "a", originals, 8, blur_two=True),
        "low-contrast": _flight(tmp_path / "b", originals, 8, change=_contrast),
        "all-blurred": _flight(tmp_path / "c", originals, 6, change=lambda im: im.filter(ImageFilter.GaussianBlur(2))),
    }
    flagged = {}
    for name, folder in flights.items():
        project = f"blur-{camera}-{name}"
        _upload(bucket, folder, project)
        result = ingest(bucket, "org", project, client=dask_client, progress=False)
        flagged[name] = {r["name"]: r["reasons"] for r in result.rows if "blurry" in r["flags"]}
    assert set(flagged["sharp-with-two-blurred"]) == {"GAUSS2.jpg", "MOTION15.jpg"}, flagged
    reason = next(iter(flagged["sharp-with-two-blurred"].values()))[0]
    assert "sharpness" in reason and "median" in reason and "threshold" in reason
    assert flagged["low-contrast"] == {}
    assert len(flagged["all-blurred"]) == 6 and all("floor" in r[0] for r in flagged["all-blurred"].values())


def test_old_manifest_rows_are_read_again(bucket: Storage, compact_survey: Path, dask_client) -> None:
    _upload(bucket, compact_survey, "compact-again")
    first = ingest(bucket, "org", "compact-again", client=dask_client, pixels=False, progress=False)
    assert first.read == 18
    assert ingest(bucket, "org", "compact-again", client=dask_client, pixels=False, progress=False).read == 0
    key = layout.parquet_key("images", "org", "compact-again", "manifest.parquet")
    table = read_table(bucket, key)
    older = table.set_column(table.schema.get_field_index("reader_version"), "reader_version", pa.array([1] * 18, pa.int64()))
    write_table(bucket, key, older)  # as an earlier reader (another sharpness scale, fewer makers) left it
    assert ingest(bucket, "org", "compact-again", client=dask_client, pixels=False, progress=False).read == 18
