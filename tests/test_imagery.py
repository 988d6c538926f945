"""Ingest and QA: real DJI images, tiny PyODM images, and synthetic bad cases, through the real S3 and Dask."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFilter

from workbench import layout
from workbench.imagery import footprint as fp
from workbench.imagery.ingest import ingest
from workbench.imagery.metadata import ImageMetadata, metadata_from_file, read_metadata
from workbench.imagery.qa import Thresholds, distance_m, flight_flags
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, encode_jpeg, render, write_survey
from workbench.transfer import upload_folder

SURVEY = Survey(lines=2, shots_per_line=4, camera=Camera(width=600, height=400))
SHARED_TINY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "odm_samples" / "pyodm_tiny"


def _variant(folder: Path, name: str, shot_index: int, pixels: np.ndarray | None = None, **changes) -> None:
    shot = dataclasses.replace(SURVEY.shots()[shot_index], **changes)
    image = render(shot, SURVEY) if pixels is None else pixels
    (folder / name).write_bytes(encode_jpeg(image, shot, SURVEY.camera))


@pytest.fixture(scope="module")
def bad_flight(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("flight")
    paths = write_survey(folder, SURVEY)
    shots = SURVEY.shots()
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe1\x00\x01" + bytes(range(256)) * 10)
    (folder / "truncated.jpg").write_bytes(paths[0].read_bytes()[:3000])
    (folder / "empty.jpg").write_bytes(b"")
    png = io.BytesIO()
    Image.fromarray(render(shots[1], SURVEY)).save(png, "PNG")
    (folder / "noexif.png").write_bytes(png.getvalue())
    _variant(folder, "zero_gps.jpg", 2, lat=0.0, lon=0.0)
    _variant(folder, "oblique.jpg", 3, gimbal_pitch=0.0)
    _variant(folder, "far.jpg", 4, lat=shots[4].lat + 0.5)
    (folder / "duplicate.jpg").write_bytes(paths[5].read_bytes())
    blurred = np.asarray(Image.fromarray(render(shots[6], SURVEY)).filter(ImageFilter.GaussianBlur(4)))
    _variant(folder, "blurred.jpg", 6, pixels=blurred)
    _variant(folder, "dark.jpg", 7, pixels=(render(shots[7], SURVEY) * 0.08).astype(np.uint8))
    rng = np.random.default_rng(3)
    water = np.clip(np.array([40, 80, 140]) + rng.normal(0, 1.5, (400, 600, 3)), 0, 255).astype(np.uint8)
    _variant(folder, "water.jpg", 7, pixels=water)
    return folder


EXPECTED = {
    "corrupt.jpg": ("unreadable", "corrupt JPEG"),
    "truncated.jpg": ("unreadable", "truncated (no end-of-image marker)"),
    "empty.jpg": ("unreadable", "empty file"),
    "noexif.png": ("no_gps", "PNG"),
    "zero_gps.jpg": ("bad_gps", "0,0"),
    "oblique.jpg": ("not_nadir", "gimbal pitch 0.0"),
    "far.jpg": ("far", "km from the flight's median"),
    "duplicate.jpg": ("duplicate", "same content as SYN_0006.JPG"),
    "blurred.jpg": ("blurry", "sharpness"),
    "dark.jpg": ("underexposed", "mean brightness"),
}


@pytest.fixture(scope="module")
def ingested(s3_server, bad_flight: Path, dask_client):
    settings = s3_server.settings.with_(bucket="imagery-qa")
    storage = Storage(settings)
    storage.ensure_bucket()
    flight = layout.new_id()
    upload_folder(storage, bad_flight, lambda p: layout.raw_key("org", "qa", flight, p.name), progress=False)
    return storage, ingest(storage, "org", "qa", client=dask_client, progress=False)


def test_each_bad_case_gets_the_right_flag_and_reason(ingested) -> None:
    _, result = ingested
    rows = {row["name"]: row for row in result.rows}
    assert len(rows) == 8 + 11
    for name, (flag, reason) in EXPECTED.items():
        assert flag in rows[name]["flags"], (name, rows[name]["flags"], rows[name]["reasons"])
        assert any(reason in text for text in rows[name]["reasons"]), (name, rows[name]["reasons"])
        assert rows[name]["usable"] is False
    for name in [f"SYN_000{i}.JPG" for i in range(1, 9)] + ["water.jpg"]:
        assert rows[name]["flags"] == [], (name, rows[name]["reasons"])
    assert rows["water.jpg"]["sharpness"] is None  # low texture: blur not assessed, not flagged


def test_manifest_is_geoparquet_readable_by_pyarrow_geopandas_and_duckdb(ingested, tmp_path: Path) -> None:
    storage, result = ingested
    local = tmp_path / "manifest.parquet"
    local.write_bytes(storage.get_bytes(result.manifest_key))
    table = pq.read_table(local)
    assert table.num_rows == 19
    assert b"geo" in table.schema.metadata
    import geopandas

    frame = geopandas.read_parquet(local)
    assert frame.crs is not None and frame.crs.equals("OGC:CRS84")
    synthetic = frame[frame["name"].str.startswith("SYN_")]
    assert synthetic.geometry.notna().all() and synthetic.geometry.to_crs(32737).area.gt(5000).all()
    import duckdb

    flagged = duckdb.sql(f"select count(*) from read_parquet('{local}') where len(flags) > 0").fetchall()[0][0]
    assert flagged == len(EXPECTED)


def test_thumbnails_are_written_for_readable_images(ingested) -> None:
    storage, result = ingested
    row = next(r for r in result.rows if r["name"] == "SYN_0001.JPG")
    thumb = Image.open(io.BytesIO(storage.get_bytes(row["thumbnail_key"])))
    assert thumb.format == "WEBP" and max(thumb.size) == 256


def test_rerun_reads_only_new_images(ingested, bad_flight: Path, dask_client) -> None:
    storage, first = ingested
    flight = layout.new_id()
    extra = bad_flight / "extra"
    extra.mkdir(exist_ok=True)
    _variant(extra, "EXTRA_1.JPG", 0)
    upload_folder(storage, extra, lambda p: layout.raw_key("org", "qa", flight, p.name), progress=False)
    again = ingest(storage, "org", "qa", client=dask_client, progress=False)
    assert again.read == 1 and again.reused == first.read
    assert len(again.rows) == 20


def test_metadata_reads_at_most_128_kib_per_image(storage: Storage, bad_flight: Path, dask_client) -> None:
    flight = layout.new_id()
    upload_folder(storage, bad_flight, lambda p: layout.raw_key("org", "meta", flight, p.name), progress=False)
    result = ingest(storage, "org", "meta", client=dask_client, progress=False, pixels=False)
    assert all(r["bytes_read"] <= 128 * 1024 for r in result.rows)
    assert {r["name"] for r in result.rows if "unreadable" in r["flags"]} == {"corrupt.jpg", "truncated.jpg", "empty.jpg"}


def test_real_dji_images_have_gps_nadir_and_overlapping_footprints(brighton_images: list[Path]) -> None:
    metas = [metadata_from_file(p) for p in brighton_images]
    assert len(metas) == 18
    assert all(m.lat and m.lon and m.error is None for m in metas)
    assert all(m.gimbal_pitch is not None and m.gimbal_pitch <= -85 for m in metas)
    assert all(m.make == "DJI" and m.relative_altitude and m.relative_altitude > 30 for m in metas)
    polygons, crs = fp.footprints(metas)
    assert crs is not None and crs.to_epsg() == 32615
    ordered = sorted(zip(metas, polygons), key=lambda mp: mp[0].captured_at)
    for (_, a), (_, b) in zip(ordered, ordered[1:]):
        assert a.intersection(b).area / a.area > 0.3
    assert all(not flags for flags in flight_flags(metas, Thresholds()))


def _recording_reader(data: bytes):
    requested: list[tuple[int, int]] = []

    def reader(start: int, end: int) -> bytes:
        requested.append((start, end))
        return data[start:end]

    return reader, requested


def test_real_dji_metadata_needs_only_the_first_64_kib(brighton_images: list[Path]) -> None:
    data = brighton_images[0].read_bytes()
    reader, requested = _recording_reader(data)
    meta = read_metadata("x.jpg", len(data), reader)
    assert requested == [(0, 65536), (len(data) - 16, len(data))]
    assert meta.width == 4000 and meta.focal_35mm == 20 and meta.error is None


def test_metadata_past_the_first_read_is_fetched(brighton_images: list[Path]) -> None:
    data = brighton_images[0].read_bytes()
    reader, requested = _recording_reader(data)
    meta = read_metadata("x.jpg", len(data), reader, first_read=4096)
    assert len(requested) > 1 and meta.gimbal_pitch == pytest.approx(-89.9) and meta.error is None
    assert sum(end - start for start, end in requested) < 128 * 1024


def test_tiny_pyodm_images() -> None:
    if not SHARED_TINY.is_dir():
        pytest.skip(f"{SHARED_TINY} is absent")
    metas = [metadata_from_file(p) for p in sorted(SHARED_TINY.glob("*.jpg"))]
    assert [m.make for m in metas] == ["Canon", "Canon"]
    assert all(m.lat and m.lon and m.width == 48 for m in metas)
    assert all(m.sensor_width_mm is None for m in metas)  # resized: the EXIF focal plane no longer fits
    assert fp.footprints(metas)[0] == [None, None]


def test_synthetic_footprints_match_the_truth() -> None:
    survey = Survey()
    metas = []
    for shot in survey.shots():
        data = encode_jpeg(render(shot, survey), shot, survey.camera)
        metas.append(read_metadata(shot.name, len(data), lambda s, e, d=data: d[s:e]))
    polygons, crs = fp.footprints(metas)
    gsd = survey.camera.gsd(survey.altitude)
    for polygon in polygons:
        width, height = polygon.bounds[2] - polygon.bounds[0], polygon.bounds[3] - polygon.bounds[1]
        assert width == pytest.approx(survey.camera.width * gsd, rel=1e-3)
        assert height == pytest.approx(survey.camera.height * gsd, rel=1e-3)
    centre_spacing = polygons[1].centroid.distance(polygons[0].centroid)
    assert centre_spacing == pytest.approx(survey.camera.height * gsd * (1 - survey.forward_overlap), rel=2e-3)


def _meta(name: str, lat: float, lon: float, second: int) -> ImageMetadata:
    return ImageMetadata(name=name, size=1, lat=lat, lon=lon, captured_at=dt.datetime(2026, 1, 1, 10, 0) + dt.timedelta(seconds=second))


def test_gaps_and_hovering_in_the_sequence() -> None:
    step = 20 / 111_000  # about 20 m of latitude
    metas = [_meta(f"a{i}", 10 + i * step, 20, i * 3) for i in range(5)]
    metas += [_meta(f"h{i}", 10 + 5 * step, 20, 15 + i * 3) for i in range(5)]  # hovering in place
    metas += [_meta("late", 10 + 6 * step, 20, 300)]  # a long pause
    flags = flight_flags(metas, Thresholds())
    named = {m.name: [f for f, _ in fl] for m, fl in zip(metas, flags)}
    assert named["late"] == ["gap"]
    assert all(named[f"h{i}"] == ["hover"] for i in range(1, 5))
    assert all(named[f"a{i}"] == [] for i in range(5))


def test_distance_helper() -> None:
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-3)
    assert math.isclose(distance_m(10, 20, 10, 20), 0.0)
