"""The sfm engine (pycolmap) through the real S3 and Dask: a synthetic survey against its truth, the real
brighton and seneca flights (ODM's own point cloud of brighton as the reference surface), bad inputs, and
the pieces (similarity fit, surface, feathered mosaic) on cases whose answer is known."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from workbench import layout
from workbench.cli import main
from workbench.engines.cog import report
from workbench.engines.orthorectify import FeatheredMosaic, Rendering
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.reconstruction import fit_similarity, umeyama
from workbench.engines.runs import EngineError, RunRecord, latest, read_record, run_engine
from workbench.engines.seams import RenderingFeatures
from workbench.engines.sfm import SfmEngine
from workbench.engines.surface import build_surface
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.storage import Storage
from workbench.synthetic import Survey, mosaic_offset, write_survey
from workbench.transfer import upload_folder

SURVEY = Survey(lines=2, shots_per_line=5)  # the demo's survey, 10 images (benchmarks/sfm.py runs all 18)
FAST = {"max_features": 2000}  # enough for the synthetic survey's sharp, textured images; keeps CI short


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = (f(math.radians(a)) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    return (np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]]) @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
            @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]]))


# --- options -------------------------------------------------------------------------------------------------

def test_options_are_checked_and_defaults_filled() -> None:
    engine = SfmEngine()
    checked = engine.check_options({"max_image_size": "1600", "matcher": "spatial"})
    assert checked["max_image_size"] == 1600 and checked["matcher"] == "spatial" and checked["min_images"] == 5
    for bad, message in (({"max_image_size": 100}, "between 500 and 8000"), ({"matcher": "vocab"}, "one of auto"),
                         ({"min_images": 2}, "between 3"), ({"min_registered": 1.5}, "between 0.1 and 1"),
                         ({"quality": "high"}, "unknown sfm option 'quality'"), ({"resolution": True}, "yes/no")):
        with pytest.raises(WorkbenchError, match=message):
            engine.check_options(bad)


# --- georeferencing ------------------------------------------------------------------------------------------

def test_similarity_fit_recovers_a_known_transform_of_coplanar_cameras_and_ignores_a_wrong_gps_fix() -> None:
    target = np.array([[x * 15.0, y * 20.0, 70.0] for x in range(3) for y in range(6)])  # one altitude: coplanar
    rotation = _rotation(30, 10, -5)
    source = (target - [10, 20, 30]) @ rotation / 8.5  # target = 8.5 * R @ source + t
    shifted = target.copy()
    shifted[4] += [40.0, -25.0, 3.0]  # one GPS fix 47 m off
    views = np.tile([0, 0, -1.0], (len(target), 1)) @ rotation
    scale, found, translation, inliers = fit_similarity(source, shifted, views)
    assert scale == pytest.approx(8.5, rel=1e-6) and np.allclose(found, rotation, atol=1e-6)
    assert np.allclose(scale * source @ found.T + translation, target, atol=1e-6)
    assert inliers.sum() == len(target) - 1 and not inliers[4]


def test_cameras_in_one_line_are_turned_to_look_down() -> None:
    target = np.array([[0.0, y * 20.0, 70.0] for y in range(6)])
    rotation = _rotation(0, 0, 40)  # a model rolled 40 degrees about the line of flight
    source = target @ rotation / 3.0
    views = np.tile([0, 0, -1.0], (len(target), 1)) @ rotation  # in the model, the cameras look along R^T down
    scale, found, translation, inliers = fit_similarity(source, target, views)
    assert inliers.all() and scale == pytest.approx(3.0)
    assert np.allclose(views @ found.T, [0, 0, -1], atol=1e-6)  # after the fit they look straight down
    assert np.allclose(scale * source @ found.T + translation, target, atol=1e-6)


def test_umeyama_is_exact_on_noiseless_points() -> None:
    generator = np.random.default_rng(3)
    source = generator.normal(size=(10, 3))
    rotation = _rotation(-120, 35, 80)
    scale, found, translation = umeyama(source, 2.0 * source @ rotation.T + [1, 2, 3])
    assert scale == pytest.approx(2.0) and np.allclose(found, rotation) and np.allclose(translation, [1, 2, 3])


# --- surface and mosaic --------------------------------------------------------------------------------------

def test_surface_follows_a_cone_and_drops_outliers() -> None:
    generator = np.random.default_rng(5)
    xy = generator.uniform(0, 100, size=(6000, 2))
    z = 10 + np.maximum(0, 8 - 0.4 * np.hypot(xy[:, 0] - 50, xy[:, 1] - 50))  # an 8 m cone on flat ground at 10 m
    points = np.column_stack([xy, z])
    points[:40, 2] += 30  # birds and mismatches
    surface = build_surface(points, np.full(len(points), 0.5), np.full(len(points), 4), (0, 0, 100, 100), 2.0)
    probe_x, probe_y = np.array([50.0, 10.0, 50.0, 62.0]), np.array([50.0, 10.0, 90.0, 50.0])
    heights = surface.sample(probe_x, probe_y)
    expected = 10 + np.maximum(0, 8 - 0.4 * np.hypot(probe_x - 50, probe_y - 50))
    assert np.abs(heights[1:] - expected[1:]).max() < 0.3  # flanks and ground
    assert 16.0 < heights[0] <= 18.0  # the apex, rounded by the 3 x 3 smoothing, not pulled up by the outliers
    assert surface.points_used <= len(points) - 40 and surface.support.all()


def test_too_few_reliable_points_make_no_surface() -> None:
    with pytest.raises(EngineError, match="too few for a surface"):
        build_surface(np.zeros((10, 3)), np.full(10, 5.0), np.full(10, 2), (0, 0, 10, 10))


def _rendering(value: int, off_nadir: float, shape: tuple[int, int] = (4, 6)) -> Rendering:
    empty = RenderingFeatures("x", (0, 0, *shape), np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), 1)
    return Rendering(0, 0, np.full((*shape, 3), value, np.uint8), np.full(shape, off_nadir, np.float32),
                     np.ones(shape, np.float32), empty)


def test_feathered_mosaic_keeps_the_most_nadir_view_and_blends_equal_ones() -> None:
    mosaic = FeatheredMosaic(4, 6)
    mosaic.add(_rendering(200, 0.5))
    mosaic.add(_rendering(20, 0.1))  # more nadir, arriving later: it wins
    rgb, alpha = mosaic.result()
    assert (alpha == 255).all() and abs(int(rgb[0, 0, 0]) - 20) <= 1
    even = FeatheredMosaic(4, 6)
    even.add(_rendering(100, 0.2))
    even.add(_rendering(200, 0.2))
    assert abs(int(even.result()[0][0, 0, 0]) - 150) <= 1
    assert not FeatheredMosaic(2, 2).result()[1].any()  # nothing seen: transparent


# --- the synthetic survey: known geometry ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def bucket(s3_server) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket="sfm"))
    storage.ensure_bucket()
    return storage


def _project(storage: Storage, folder: Path, project: str, client) -> None:
    flight = layout.new_id()
    upload_folder(storage, folder, lambda p: layout.raw_key("org", project, flight, p.name), progress=False)
    ingest(storage, "org", project, client=client, progress=False)


@pytest.fixture(scope="module")
def synthetic_run(bucket: Storage, tmp_path_factory, dask_client) -> RunRecord:
    folder = tmp_path_factory.mktemp("survey")
    write_survey(folder, SURVEY)
    _project(bucket, folder, "synthetic", dask_client)
    return run_engine(bucket, "org", "synthetic", SfmEngine(), FAST, client=dask_client, progress=False, reporter=report)


def _download(storage: Storage, record: RunRecord, name: str, folder: Path) -> Path:
    key = next(p["key"] for p in record.products if p["name"] == name)
    (folder / name).write_bytes(storage.get_bytes(key))
    return folder / name


@pytest.mark.slow
def test_synthetic_survey_all_registered_and_ortho_on_the_truth(bucket: Storage, synthetic_run: RunRecord, tmp_path: Path) -> None:
    assert synthetic_run.status == "completed" and len(synthetic_run.inputs) == 10 and not synthetic_run.skipped
    assert {p["name"] for p in synthetic_run.products} == {"ortho.tif", "dsm.tif", "points.parquet"}
    ortho = _download(bucket, synthetic_run, "ortho.tif", tmp_path)
    assert cog_validate(str(ortho))[0]
    gsd = SURVEY.camera.gsd(SURVEY.altitude)
    east, north = mosaic_offset(ortho, SURVEY)
    assert abs(east) <= gsd and abs(north) <= gsd  # within one pixel of where the scene really is
    quality = next(p for p in synthetic_run.products if p["name"] == "ortho.tif")["report"]["quality"]
    solved = quality["reconstruction"]
    assert solved["images_registered"] == 10 and solved["reprojection_error_px"] < 0.5
    assert solved["gps_residual_m"]["rms_horizontal"] < 0.05  # the synthetic GPS is exact
    assert quality["seams"]["median_m"] < gsd and quality["seams"]["unmeasured_pairs"] == 0
    assert quality["height_check"]["ratio"] == pytest.approx(1.0, abs=0.03)  # the flat scene's depth, settled
    with rasterio.open(_download(bucket, synthetic_run, "dsm.tif", tmp_path)) as dsm:
        heights = dsm.read(1, masked=True)
        assert dsm.crs.to_epsg() == 32737 and heights.count() > 0.3 * heights.size  # where points are
        assert abs(float(np.ma.median(heights)) - SURVEY.ground_elevation) < 1.0  # the ground is 12 m above sea level
    points = pq.read_table(_download(bucket, synthetic_run, "points.parquet", tmp_path))
    assert points.num_rows == solved["points"] and {"x", "y", "z", "error_px", "track_length"} <= set(points.column_names)


@pytest.mark.slow
def test_cli_process_skips_a_corrupt_image_among_good_ones(config_file: Path, tmp_path: Path, capsys) -> None:
    """``workbench process --engine sfm`` on one flight line (the cameras are in a line) with an image that was
    fine at ingest but is now corrupt in the bucket: the run completes without it and says why."""
    from workbench.config import load_settings

    storage = Storage(load_settings(config_file=config_file))
    write_survey(tmp_path / "line", Survey(lines=1, shots_per_line=7))
    assert main(["upload", str(tmp_path / "line"), "--org", "org", "--project", "line", "--no-progress"]) == 0
    assert main(["ingest", "--org", "org", "--project", "line", "--workers", "1", "--no-progress"]) == 0
    broken = sorted(info.key for info in storage.list(layout.flights_prefix("org", "line")))[3]
    storage.put_bytes(broken, b"\xff\xd8\xff\xe0 not a JPEG any more")
    capsys.readouterr()
    code = main(["process", "--org", "org", "--project", "line", "--engine", "sfm", "--option", "max_features=2000",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "(sfm): completed, 7 images" in out, out
    assert "6 of 7 images placed, reprojection error" in out and "dsm.tif" in out and "points.parquet" in out
    assert f"not used: {broken}: cannot decode the image" in out
    record = latest(storage, "org", "line")
    assert record["skipped"] == [{"key": broken, "reason": record["skipped"][0]["reason"]}]
    quality = next(p for p in record["products"] if p["name"] == "ortho.tif")["report"]["quality"]
    assert quality["seams"]["median_m"] < SURVEY.camera.gsd(SURVEY.altitude)


def test_three_images_are_refused_before_any_work(bucket: Storage, tmp_path: Path, dask_client) -> None:
    folder = tmp_path / "three"
    write_survey(folder, Survey(lines=1, shots_per_line=3))
    _project(bucket, folder, "three", dask_client)
    with pytest.raises(EngineError, match="3 image.*at least 5 overlapping images"):
        run_engine(bucket, "org", "three", SfmEngine(), client=dask_client, progress=False)
    pointer = read_record(bucket, layout.latest_key("org", "three"))
    assert pointer is None  # nothing published


@pytest.mark.slow
def test_images_with_no_overlap_fail_clearly_with_a_record(bucket: Storage, tmp_path: Path, dask_client) -> None:
    folder = tmp_path / "apart"
    write_survey(folder, Survey(lines=1, shots_per_line=5, forward_overlap=-3.0))  # three image heights between shots
    _project(bucket, folder, "apart", dask_client)
    # the synthetic scene's furrows repeat, so a few pairs pass geometric verification by chance: either
    # reason ("no verified feature matches", "could not be placed") is the truth about these images
    with pytest.raises(EngineError, match=r"registered 0 of 5 images \(0%; option min_registered asks for 50%\): 5 "):
        run_engine(bucket, "org", "apart", SfmEngine(), client=dask_client, progress=False)
    runs = [read_record(bucket, info.key) for info in bucket.list(layout.runs_prefix("org", "apart"))
            if info.key.endswith("run.json")]
    [failed] = runs
    assert failed["status"] == "failed" and len(failed["skipped"]) == 5
    assert all(s["reason"].startswith(("no verified feature matches", "could not be placed")) for s in failed["skipped"])


# --- real flights --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def brighton(bucket: Storage, brighton_images: list[Path], dask_client) -> dict[str, RunRecord]:
    _project(bucket, brighton_images[0].parent, "brighton", dask_client)
    runs = ((QuicklookEngine(), {}), (SfmEngine(), {"max_image_size": 1000}))  # 1000 px: 18/18, seams 0.054 m
    return {engine.name: run_engine(bucket, "org", "brighton", engine, options, client=dask_client, progress=False,
                                    reporter=report) for engine, options in runs}  # the defaults: benchmarks/sfm.py


@pytest.mark.slow
def test_brighton_registered_with_seams_a_tenth_of_the_quicklook(brighton: dict[str, RunRecord]) -> None:
    record = brighton["sfm"]
    assert record.status == "completed" and not record.skipped
    quality = next(p for p in record.products if p["name"] == "ortho.tif")["report"]["quality"]
    quick = next(p for p in brighton["quicklook"].products if p["name"] == "ortho.tif")["report"]["quality"]
    assert quality["reconstruction"]["images_registered"] == 18
    assert quality["reconstruction"]["reprojection_error_px"] < 1.5
    assert quality["seams"]["pairs"] >= 10
    assert quality["seams"]["median_m"] <= 0.1 * quick["seams"]["median_m"]
    assert quality["seams"]["median_m"] < 0.3


@pytest.mark.slow
def test_brighton_surface_agrees_with_odms_point_cloud(bucket: Storage, brighton: dict[str, RunRecord], tmp_path: Path,
                                                       brighton_images: list[Path]) -> None:
    laspy = pytest.importorskip("laspy")
    cloud = laspy.read(brighton_images[0].parent.parent / "model.laz")
    assert cloud.header.parse_crs().to_epsg() == 32615
    x, y, z = (np.asarray(axis)[::10] for axis in (cloud.x, cloud.y, cloud.z))
    with rasterio.open(_download(bucket, brighton["sfm"], "dsm.tif", tmp_path)) as dsm:
        assert dsm.crs.to_epsg() == 32615
        ours = np.array([v[0] for v in dsm.sample(zip(x, y))])
        nodata = dsm.nodata
    inside = ours != nodata
    assert inside.mean() > 0.9  # the DSM covers ODM's cloud
    difference = z[inside] - ours[inside]
    offset = np.median(difference)  # one constant: the two solutions' vertical datum
    assert np.median(np.abs(difference - offset)) < 0.5


@pytest.mark.slow
def test_seneca_fixed_wing_registered_and_ortho_made(bucket: Storage, seneca_images: list[Path], dask_client, tmp_path: Path) -> None:
    _project(bucket, seneca_images[0].parent, "seneca", dask_client)
    options = {"max_image_size": 1400}  # the defaults (2000 px, 11 of 14): benchmarks/sfm.py
    record = run_engine(bucket, "org", "seneca", SfmEngine(), options, client=dask_client, progress=False, reporter=report)
    assert record.status == "completed"
    stored = next(p for p in record.products if p["name"] == "ortho.tif")["report"]
    quality = stored["quality"]
    assert quality["images_placed"] >= 9 and quality["images_placed"] + len(record.skipped) == 14
    assert all(s["reason"] for s in record.skipped)  # the turns at both ends overlap one image each
    assert quality["seams"]["median_m"] < 0.5
    assert stored["crs"] == "EPSG:32617" and stored["coverage_m2"] > 20000  # New York State, UTM zone 17N


@pytest.mark.slow
def test_ctrl_c_stops_the_reconstruction_and_marks_the_run_canceled(config_file: Path, tmp_path: Path) -> None:
    """SIGINT while pycolmap matches or maps (C++ that holds no Python frame) stops the command within moments."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    from workbench.config import load_settings

    storage = Storage(load_settings(config_file=config_file))
    write_survey(tmp_path / "ctrlc", SURVEY)
    _project(storage, tmp_path / "ctrlc", "ctrlc", None)
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "process", "--org", "org", "--project", "ctrlc",
                                "--engine", "sfm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # a group of its own, as a terminal's foreground job
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: process.stderr.read(64), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while "sfm matching" not in "".join(seen) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, "".join(seen)[-1500:]
        time.sleep(1.0)  # inside the matcher
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl+C: every process of the job gets it
        process.wait(timeout=90)  # a guard against a hang, not a timing goal
    finally:
        if process.poll() is None:  # a failed test leaves no engine running for the next ones
            process.kill()
            process.wait()
    reader.join(5)
    err = "".join(seen)
    assert process.returncode == 130 and err.rstrip().endswith("workbench: interrupted") and "Traceback" not in err, err[-1500:]
    [record] = [read_record(storage, info.key) for info in storage.list(layout.runs_prefix("org", "ctrlc"))
                if info.key.endswith("run.json")]
    assert record["status"] == "canceled" and read_record(storage, layout.latest_key("org", "ctrlc")) is None


def test_ctrl_c_cancels_a_long_call_in_a_thread_and_waits_for_it() -> None:
    """``in_thread`` (the matcher and the mapper): SIGINT calls ``cancel`` and the caller gets KeyboardInterrupt only
    once the call has ended (on Python 3.11 a Thread.join interrupted by Ctrl+C made the next join return at once)."""
    import os
    import signal
    import threading

    from workbench.engines.reconstruction import in_thread

    release, ended = threading.Event(), threading.Event()

    def long_call() -> None:  # stands in for C++ work that never returns to Python in this thread
        release.wait(60)
        ended.set()

    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            in_thread(long_call, cancel=release.set)
        assert ended.is_set(), "the cancelled call must have ended before the caller goes on"
    finally:
        release.set()


_SIGTERM_AFTER_PYCOLMAP = """
import os, signal, sys, threading, time
from workbench.engines.colmap import load_pycolmap
if sys.argv[1] == "handler":  # a Python handler set before the import still runs after it
    signal.signal(signal.SIGTERM, lambda *_: (print("handled", flush=True), os._exit(7)))
if sys.argv[1] == "thread":  # Dask imports it in a worker thread
    worker = threading.Thread(target=load_pycolmap)
    worker.start()
    worker.join()
else:
    load_pycolmap()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
"""


@pytest.mark.parametrize("how", ["main", "thread", "handler"])
def test_sigterm_after_pycolmap_ends_the_process_without_a_crash_report(how: str) -> None:
    """pycolmap's glog handler caught SIGTERM (Dask stopping a worker, Jupyter a kernel) and printed '*** Aborted at'
    with a stack trace after 'workbench: interrupted'."""
    import signal
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_PYCOLMAP, how], capture_output=True, text=True, timeout=120)
    assert "Aborted" not in done.stderr and "SIGTERM" not in done.stderr, done.stderr
    if how == "handler":
        assert done.returncode == 7 and done.stdout.strip() == "handled"
    else:
        assert done.returncode == -signal.SIGTERM


def test_pycolmap_is_imported_only_through_load_pycolmap() -> None:
    """A plain `import pycolmap` anywhere in the package would bring the SIGTERM crash report back."""
    import re

    package = Path(__file__).resolve().parents[1] / "workbench"
    direct = [str(path.relative_to(package)) for path in package.rglob("*.py")
              if path.name != "colmap.py" and re.search(r"^\s*(import pycolmap|from pycolmap)", path.read_text(), re.M)]
    assert direct == []
