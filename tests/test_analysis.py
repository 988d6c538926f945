"""Analytics on products read from the real SeaweedFS: reads, indices, volumes, change, zonal statistics, publishing."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from workbench import layout
from workbench.analysis import change, indices, terrain, zonal
from workbench.analysis.products import open_product, previous_run
from workbench.analysis.publish import derived_key, publish_derived
from workbench.engines.cog import write_cog
from workbench.engines.runs import RUN_RECORD
from workbench.errors import AnalysisError
from workbench.storage import Storage
from workbench.transfer import upload_file

ORG, PROJECT = "acme", "site"
CRS = "EPSG:32637"
ORIGIN = (500000.0, 9250000.0)
ODM_DEM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "odm_samples" / "nodeodm_outputs" / "odm_dem"


def _geotiff(path: Path, data: np.ndarray, resolution: float = 0.1, crs: str = CRS, nodata: float | None = None) -> Path:
    bands = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                       dtype=bands.dtype, crs=crs, transform=from_origin(*ORIGIN, resolution, resolution), nodata=nodata,
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(bands)
    return write_cog(path, path.with_name(path.stem + "-cog.tif"))


def _publish_run(storage: Storage, files: dict[str, Path], project: str = PROJECT) -> str:
    """A completed run with these products, and the latest pointer on it (what run_engine leaves)."""
    run = layout.new_id()
    products = []
    for name, path in files.items():
        key = layout.product_key(ORG, project, run, name)
        result = upload_file(storage, path, key, existing=None)
        products.append({"name": name, "key": key, "size": result.size, "etag": result.etag})
    record = {"run": run, "org": ORG, "project": project, "engine": "test", "status": "completed", "products": products}
    storage.put_bytes(layout.product_key(ORG, project, run, RUN_RECORD), json.dumps(record).encode())
    storage.put_bytes(layout.latest_key(ORG, project), json.dumps({"run": run, "engine": "test"}).encode())
    return run


@pytest.fixture(scope="module")
def bucket(s3_server) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket=f"analysis-{os.getpid()}"))
    storage.ensure_bucket()
    return storage


def _cone_and_box(size: int = 400, resolution: float = 0.1) -> np.ndarray:
    """A 40 m x 40 m DSM at 10 m: a cone (r 10 m, h 5 m) centred at (10 m, 20 m), a box 4 x 6 x 2 m at (30, 20)."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) * resolution
    dsm = np.full((size, size), 10.0, dtype="float32")
    distance = np.hypot(x - 10, y - 20)
    dsm += np.clip(5 * (1 - distance / 10), 0, None).astype("float32")
    dsm[(abs(x - 30) < 2) & (abs(y - 20) < 3)] += 2
    return dsm


def _polygon(west: float, north: float, east: float, south: float) -> dict:
    x0, y0 = ORIGIN
    return mapping(box(x0 + west, y0 - south, x0 + east, y0 - north))


def test_volumes_of_a_cone_and_a_box_match_the_formulas(bucket: Storage, tmp_path: Path) -> None:
    _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "dsm.tif", _cone_and_box())})
    dsm = open_product(bucket, ORG, PROJECT, "dsm")
    cone = terrain.volume(dsm, _polygon(0, 9.5, 20.5, 30.5))  # around the cone, its edge on the base
    assert cone.above_m3 == pytest.approx(math.pi * 10**2 * 5 / 3, rel=0.01) and cone.below_m3 < 1
    assert cone.area_m2 == pytest.approx(20.5 * 21, rel=0.01) and cone.crs == CRS
    level = terrain.volume(dsm, _polygon(26, 15, 34, 25), base=10.0)
    assert level.above_m3 == pytest.approx(4 * 6 * 2, rel=0.01)
    below = terrain.volume(dsm, _polygon(26, 15, 34, 25), base=11.0)  # 1 m above the ground: voids around the box
    assert below.below_m3 == pytest.approx((8 * 10 - 24) * 1, rel=0.01) and below.above_m3 == pytest.approx(24, rel=0.01)
    heights = terrain.height_above_ground(dsm, polygon=_polygon(0, 0, 40, 40)).compute()
    assert float(heights.max()) == pytest.approx(5, abs=0.05) and float(heights.min()) > -0.05


def test_change_between_two_runs_finds_a_planted_change(bucket: Storage, tmp_path: Path) -> None:
    base = _cone_and_box()
    first = _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "a.tif", base)}, "change")
    again = _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "b.tif", base)}, "change")
    same = change.difference(open_product(bucket, ORG, "change", "dsm", first), open_product(bucket, ORG, "change", "dsm", again))
    assert float(abs(same).max()) < 1e-6
    planted = base.copy()
    planted[100:130, 200:230] += 1.0  # 3 m x 3 m, 1 m higher
    third = _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "c.tif", planted, resolution=0.1)}, "change")
    delta = change.difference(open_product(bucket, ORG, "change", "dsm", first), open_product(bucket, ORG, "change", "dsm", third))
    mask = change.change_mask(delta, 0.5).compute()
    assert previous_run(bucket, ORG, "change", "dsm") == again and previous_run(bucket, ORG, "change", "dsm", again) == first
    assert previous_run(bucket, ORG, "change", "dsm", first) is None  # the first flight has nothing before it
    assert float(mask.sum()) * 0.01 == pytest.approx(9.0, rel=0.01)
    polygons = _frame([_polygon(20, 10, 23, 13), _polygon(0, 0, 5, 5)])
    polygons["area_m2"] = polygons.area  # an attribute named like a statistic (the coverage layer has one)
    stats = zonal.zonal_statistics(delta, polygons)
    assert stats["mean"].tolist() == pytest.approx([1.0, 0.0], abs=1e-5) and stats["area_m2"].tolist() == pytest.approx([9, 25])
    assert stats.columns.is_unique and stats["area_m2_polygon"].tolist() == pytest.approx([9, 25])


def _frame(polygons: list[dict]):
    import geopandas
    from shapely.geometry import shape

    return geopandas.GeoDataFrame({"name": [f"p{i}" for i in range(len(polygons))]},
                                  geometry=[shape(p) for p in polygons], crs=CRS)


def test_grids_that_differ_are_aligned_and_unalignable_ones_refused(bucket: Storage, tmp_path: Path) -> None:
    base = _cone_and_box()
    first = _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "a.tif", base)}, "grids")
    coarse = _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "b.tif", base[::2, ::2], resolution=0.2)}, "grids")
    delta = change.difference(open_product(bucket, ORG, "grids", "dsm", coarse), open_product(bucket, ORG, "grids", "dsm", first))
    assert delta.shape == (400, 400) and float(np.nanmedian(abs(delta.values))) < 0.05
    local = 'LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    odd = _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "c.tif", base, crs=local)}, "grids")
    with pytest.raises(AnalysisError, match="cannot align"):
        change.difference(open_product(bucket, ORG, "grids", "dsm", odd), open_product(bucket, ORG, "grids", "dsm", first))


def test_vari_equals_its_formula_and_is_published_as_a_layer(bucket: Storage, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgba = rng.integers(20, 235, (4, 512, 512), dtype="uint8")
    rgba[3] = 255
    rgba[3, :50] = 0  # transparent strip: no data
    cog = _geotiff(tmp_path / "ortho.tif", rgba)
    run = _publish_run(bucket, {"ortho.tif": cog}, "colours")
    result = indices.index(open_product(bucket, ORG, "colours", "ortho"), "vari").compute()
    r, g, b = (rgba[i].astype("float64") for i in range(3))
    expected = (g - r) / (g + r - b)
    expected[(expected < -1) | (expected > 1) | (rgba[3] == 0)] = np.nan
    np.testing.assert_allclose(result.values, expected, rtol=1e-5, equal_nan=True)
    published = publish_derived(bucket, result, "vari")
    assert published["key"] == derived_key(ORG, "colours", run, "vari") and bucket.exists(published["pmtiles"])
    report = json.loads(bucket.get_bytes(published["key"] + ".report.json"))
    assert report["legend"]["colormap"] == "RdYlGn" and len(report["legend"]["stops"]) == 5
    from workbench.maps import map_layers
    from workbench.tiles import tile_run

    tile_run(bucket, ORG, "colours", progress=False)
    layers = map_layers(bucket, ORG, "colours", via="direct", derived=["vari"])
    assert "derived-vari" in layers.style()["sources"] and "vari:" in layers.caption
    with pytest.raises(AnalysisError, match="needs an elevation model"):
        terrain.volume(open_product(bucket, ORG, "colours", "ortho"), _polygon(0, 0, 10, 10))
    with pytest.raises(AnalysisError, match="has no dsm"):
        open_product(bucket, ORG, "colours", "dsm")
    with pytest.raises(AnalysisError, match="NDVI needs a near-infrared camera"):
        indices.ndvi(open_product(bucket, ORG, "colours", "ortho"), camera="DJI FC300X")


def test_indices_read_straight_from_the_cog_equal_those_over_its_chunks(bucket: Storage, tmp_path: Path) -> None:
    """An index over a product as opened is computed from the COG window each task reads (no float32 copy of
    every band); over anything else (a computed array, a subset, numpy) through its chunks: same values."""
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (4, 700, 600), dtype="uint8")
    rgba[3] = 255
    rgba[3, 100:180, 50:400] = 0
    rgb = rgba[:3].copy()
    rgb[:, 300:310] = 7  # the nodata value in every band: no data
    rgb[0, 400:405] = 7  # in one band only: indices using that band have no value there
    _publish_run(bucket, {"ortho.tif": _geotiff(tmp_path / "rgba.tif", rgba)}, "fused-alpha")
    _publish_run(bucket, {"ortho.tif": _geotiff(tmp_path / "rgb.tif", rgb, nodata=7)}, "fused-nodata")
    for project in ("fused-alpha", "fused-nodata"):
        ortho = open_product(bucket, ORG, project, "ortho", chunk=256)
        for name, options in (("vari", {}), ("exg", {}), ("gli", {}), ("ndvi", {"bands": (1, 3)})):
            fused = indices.index(ortho, name, **options)
            assert any(layer.startswith("_pixels_of_source") for layer in fused.data.dask.layers), (project, name)
            over_chunks = indices.index(ortho + 0, name, **options)
            assert not any(layer.startswith("_pixels_of_source") for layer in over_chunks.data.dask.layers)
            in_memory = indices.index(ortho.compute(), name, **options)
            values = fused.values
            no_data = (slice(100, 180), slice(50, 400)) if project == "fused-alpha" else (slice(300, 310), slice(None))
            assert np.isnan(values[no_data]).all() and np.isfinite(values).mean() > 0.5, (project, name)
            np.testing.assert_array_equal(values, over_chunks.values, err_msg=f"{project} {name}")
            np.testing.assert_array_equal(values, in_memory.values, err_msg=f"{project} {name}")
        subset = indices.vari(ortho.isel(x=slice(10, 500)))
        np.testing.assert_array_equal(subset.values, indices.vari(ortho).values[:, 10:500])


class _RecordingProxy:
    """A TCP proxy on 127.0.0.1 that records each request's path and its ``Range`` header (``None``: none).

    What a client asked for, not what the server pushed: a GET that the client aborts after the headers (GDAL's
    size probe of a presigned URL) still makes the server push whatever the socket buffers take, at a time
    that depends on the load."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header) in the order they came
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            client, _ = self.server.accept()
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _record(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        ranges = [line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("range:")]
        self.requests.append((lines[0].split(" ")[1].split("?")[0], ranges[0] if ranges else None))

    def _pipe(self, source: socket.socket, target: socket.socket, requests: bool) -> None:
        pending = b""
        try:
            while data := source.recv(65536):
                if requests:  # GETs only: no request bodies to skip
                    pending += data
                    while b"\r\n\r\n" in pending:
                        head, pending = pending.split(b"\r\n\r\n", 1)
                        self._record(head)
                target.sendall(data)
        except OSError:
            pass
        finally:
            target.close()


def _range_bytes(header: str) -> int:
    """The bytes a ``Range: bytes=a-b[,c-d...]`` header asks for."""
    spans = (span.split("-") for span in header.removeprefix("bytes=").split(","))
    return sum(int(end) - int(begin) + 1 for begin, end in spans)


def test_open_product_reads_only_the_chunks_used(bucket: Storage, tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    noise = np.random.default_rng(2).normal(100, 20, (2048, 2048)).astype("float32")  # incompressible
    cog = _geotiff(tmp_path / "big.tif", noise)
    _publish_run(bucket, {"dsm.tif": cog}, "big")
    proxy = _RecordingProxy(urlsplit(bucket.settings.endpoint).port)
    through = Storage(bucket.settings.with_(endpoint=f"http://127.0.0.1:{proxy.port}"))
    dsm = open_product(through, ORG, "big", "dsm", chunk=512)
    assert dsm.chunks is not None and "X-Amz" not in json.dumps(dsm.attrs, default=str) and dsm.encoding["source"].startswith("s3://")
    opened = len(proxy.requests)
    window = dsm.isel(y=slice(0, 256), x=slice(0, 256)).compute(scheduler="threads").values  # here: GDAL knows the size
    with rasterio.open(cog) as src:
        local = src.read(1, window=rasterio.windows.Window(0, 0, 256, 256))
    np.testing.assert_array_equal(window[0], local)
    cog_requests = [(index, ranges) for index, (path, ranges) in enumerate(proxy.requests) if path.endswith("/dsm.tif")]
    reads = [ranges for index, ranges in cog_requests if index >= opened]
    assert reads and None not in reads, proxy.requests  # every read of the window is ranged
    assert sum(map(_range_bytes, reads)) < 0.2 * cog.stat().st_size, reads
    assert [ranges for _, ranges in cog_requests].count(None) <= 1, proxy.requests  # at most the size probe at open


def test_odm_sample_dems_give_heights_of_the_right_sign(bucket: Storage) -> None:
    if not ODM_DEM.is_dir():
        pytest.skip("../shared/datasets is absent: the real NodeODM outputs are not mounted")
    _publish_run(bucket, {"dsm.tif": ODM_DEM / "dsm.tif", "dtm.tif": ODM_DEM / "dtm.tif"}, "odm")
    dsm, dtm = (open_product(bucket, ORG, "odm", p) for p in ("dsm", "dtm"))
    heights = terrain.height_above_ground(dsm, dtm).compute().values
    valid = heights[np.isfinite(heights)]
    assert valid.size > 1000 and valid.min() >= -0.01 and valid.max() < 100  # the sample's DSM and DTM are the same file
    outside = _polygon(10_000, 10_000, 10_010, 10_010)
    with pytest.raises(AnalysisError, match="outside the raster"):
        terrain.volume(dsm, outside)


@pytest.mark.slow
def test_ndvi_of_the_nir_camera_separates_vegetation_from_road(bucket: Storage, seneca_images, dask_client) -> None:
    from workbench.engines.quicklook import QuicklookEngine
    from workbench.engines.runs import run_engine
    from workbench.imagery.ingest import ingest
    from workbench.transfer import upload_files

    flight = layout.new_id()
    upload_files(bucket, [(p, layout.raw_key(ORG, "seneca", flight, p.name)) for p in seneca_images], progress=False)
    ingest(bucket, ORG, "seneca", client=dask_client, progress=False)
    run_engine(bucket, ORG, "seneca", QuicklookEngine(), client=dask_client, progress=False)
    ortho = open_product(bucket, ORG, "seneca", "ortho", overview_level=0)
    assert ortho.attrs["camera"] == "Canon PowerShot ELPH 300 HS"
    values = indices.ndvi(ortho).compute().values  # the camera's band mapping, from the manifest
    rgb = ortho.compute().values
    red_channel, blue_channel = rgb[0], rgb[2]
    vegetation = red_channel > 1.5 * blue_channel  # plants glow in the NIR (red) channel of this camera
    road = (abs(red_channel - blue_channel) < 0.1 * blue_channel) & (blue_channel > 90)  # grey asphalt and gravel
    assert vegetation.sum() > 1000 and road.sum() > 1000
    assert np.nanmean(values[vegetation]) > 0.15 > np.nanmean(values[road])


def test_analyze_cli(bucket: Storage, tmp_path: Path, capsys, monkeypatch) -> None:
    import geopandas
    import yaml

    from workbench.cli import main

    config = tmp_path / "workbench.yaml"
    config.write_text(yaml.safe_dump(bucket.settings.to_yaml_dict(include_secrets=True)))
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    _publish_run(bucket, {"dsm.tif": _geotiff(tmp_path / "dsm.tif", _cone_and_box())}, "cli")
    polygon = _frame([_polygon(26, 15, 34, 25)]).to_crs("OGC:CRS84")
    polygon.to_file(tmp_path / "box.geojson", driver="GeoJSON")
    assert main(["analyze", "volume", "--org", ORG, "--project", "cli", "--polygon", str(tmp_path / "box.geojson"),
                 "--base", "10"]) == 0
    out = capsys.readouterr().out
    assert "48.0 m3 above" in out and "EPSG:32637" in out
    geopandas.GeoDataFrame(geometry=[], crs="OGC:CRS84").to_file(tmp_path / "empty.geojson", driver="GeoJSON")
    assert main(["analyze", "zonal", "--org", ORG, "--project", "cli", "--polygons", str(tmp_path / "empty.geojson")]) == 1
    assert "no polygons" in capsys.readouterr().err
    assert main(["analyze", "index", "--org", ORG, "--project", "cli"]) == 1
    assert "has no ortho" in capsys.readouterr().err
