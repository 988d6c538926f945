"""Real clients no one here wrote: the npm `pmtiles` reader in Node, and a map page in Debian's chromium.

Both read the archives from the embedded S3 through presigned URLs, with range requests and CORS.
"""

from __future__ import annotations

import functools
import http.server
import json
import math
import shutil
import subprocess
import threading
from pathlib import Path

import mercantile
import numpy as np
import pytest
from PIL import Image

from workbench import layout, policy
from workbench.coverage import build_coverage
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import run_engine
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.maps import map_layers, write_map
from workbench.pmtiles_check import check_archive, stored_reader
from workbench.presign import Presigner
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, write_survey
from workbench.tiles import tile_run
from workbench.transfer import upload_folder

JS = Path(__file__).parent / "js"
MODULES = JS / "node_modules"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def published(s3_server, tmp_path_factory, dask_client) -> tuple[Storage, str]:
    storage = Storage(s3_server.settings.with_(bucket="maps"))
    storage.ensure_bucket()
    folder = tmp_path_factory.mktemp("survey")
    write_survey(folder, Survey(lines=2, shots_per_line=4, camera=Camera(width=600, height=400)), flawed=True)
    flight = layout.new_id()
    upload_folder(storage, folder, lambda p: layout.raw_key("org", "site", flight, p.name), progress=False)
    ingest(storage, "org", "site", client=dask_client, progress=False)
    run_engine(storage, "org", "site", QuicklookEngine(), client=dask_client, progress=False)
    key, _, _ = tile_run(storage, "org", "site", client=dask_client, progress=False)
    build_coverage(storage, "org")
    return storage, key


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    """A static file server on 127.0.0.1 for the map page."""
    root = tmp_path_factory.mktemp("site")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_npm_pmtiles_reads_header_and_a_tile_over_a_presigned_url(published) -> None:
    if shutil.which("node") is None or not (MODULES / "pmtiles").is_dir():
        pytest.skip("node or tests/js/node_modules is missing (run: npm ci --prefix tests/js)")
    storage, key = published
    checked = check_archive(stored_reader(storage, key))
    z, x, y = sorted(checked.tiles)[-1]
    url = Presigner(storage).get(key)
    done = subprocess.run(["node", str(JS / "read_pmtiles.mjs"), url, str(z), str(x), str(y)], capture_output=True,
                          text=True, timeout=60, cwd=JS)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["header"]["minZoom"] == checked.header["min_zoom"] and result["header"]["maxZoom"] == checked.header["max_zoom"]
    assert result["header"]["tileType"] == 4 and result["header"]["clustered"] is True
    assert result["tileBytes"] > 0 and result["magic"].startswith("RIFF") and result["magic"][8:12] == "WEBP"


def test_the_map_refuses_an_origin_the_bucket_does_not_allow(published) -> None:
    storage, _ = published
    policy.apply_cors(storage, policy.cors_rules([], ["https://maps.example.org"]))
    with pytest.raises(WorkbenchError, match="workbench policy apply --web-origin https://nowhere.example"):
        map_layers(storage, "org", "site", "https://nowhere.example")


def _open_map(url: str, shot: Path, jump: tuple[float, float, int] | None = None,
              settle: str = "window.workbenchMapIdle === true && map.loaded()") -> tuple[list[str], list[str], dict]:
    """Open a map page in Debian's chromium with every request beyond loopback refused (offline), wait until
    ``settle`` (the map idle; again after jumping to ``jump``, a lon, lat and zoom, if given), screenshot it;
    return the Range headers of the archive requests, the map's errors and its view (zoom, bounds)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is missing (.ci/run installs it)")
    pytest.importorskip("playwright.sync_api")
    from tests.jupyterlab import browser

    ranges: list[str] = []
    with browser(offline=True) as (page, refused):
        page.set_viewport_size({"width": 800, "height": 600})
        page.on("request", lambda r: ranges.append(r.headers.get("range", "")) if ".pmtiles" in r.url else None)
        page.goto(url)
        page.wait_for_function(settle, timeout=60_000)
        if jump is not None:
            page.evaluate(f"window.workbenchMapIdle = false; map.jumpTo({{center: [{jump[0]}, {jump[1]}], zoom: {jump[2]}}})")
            page.wait_for_function(settle, timeout=60_000)
        errors = page.evaluate("window.workbenchMapErrors")
        view = page.evaluate("({zoom: map.getZoom(), bounds: map.getBounds().toArray()})")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(shot))
    assert refused == [], refused[:3]  # offline: MapLibre and pmtiles come inlined, no CDN
    return ranges, errors, view


@pytest.mark.slow
def test_chromium_paints_the_ortho_from_range_requests(published, page_server) -> None:
    storage, _ = published
    root, origin = page_server
    policy.apply_cors(storage, policy.cors_rules([], [origin]))
    page_path = write_map(storage, "org", "site", root / "map.html", origin, background="#ff00ff")
    assert "quick-look preview from image metadata (no photogrammetry); overlapping images disagree by" in page_path.read_text()
    shot = ARTIFACTS / "map.png"
    ranges, errors, _ = _open_map(f"{origin}/{page_path.name}", shot)
    assert errors == []
    assert any(r.startswith("bytes=") for r in ranges)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    magenta = (pixels[..., 0] > 240) & (pixels[..., 1] < 20) & (pixels[..., 2] > 240)
    centre = ~magenta[200:400, 250:550]
    assert centre.mean() > 0.9  # the ortho covers the middle of the view
    assert pixels[200:400, 250:550].std() > 10  # and it is imagery, not a flat fill


@pytest.mark.slow
def test_a_real_flight_with_holes_reaches_idle(s3_server, seneca_images, page_server, dask_client) -> None:
    """seneca's quick-look is irregular: tiles inside the archive's bounds but outside the imagery are missing
    from the archive. The page answers them as transparent tiles, so the map settles (idle, loaded)."""
    storage = Storage(s3_server.settings.with_(bucket="maps-seneca"))
    storage.ensure_bucket()
    flight = layout.new_id()
    upload_folder(storage, seneca_images[0].parent, lambda p: layout.raw_key("org", "seneca", flight, p.name), progress=False)
    ingest(storage, "org", "seneca", client=dask_client, progress=False, pixels=False)
    run_engine(storage, "org", "seneca", QuicklookEngine(), client=dask_client, progress=False)
    key, summary, _ = tile_run(storage, "org", "seneca", client=dask_client, progress=False)
    build_coverage(storage, "org")
    root, origin = page_server
    policy.apply_cors(storage, policy.cors_rules([], [origin]))
    page_path = write_map(storage, "org", "seneca", root / "seneca.html", origin, background="#ff00ff")
    stored = set(check_archive(stored_reader(storage, key)).tiles)
    deepest = {t for t in stored if t[0] == summary.maxzoom}
    holes = [t for t in mercantile.tiles(*summary.bounds, summary.maxzoom) if (t.z, t.x, t.y) not in stored
             and any((t.z, t.x + dx, t.y) in deepest for dx in (-1, 1))]  # a missing tile beside the imagery
    assert holes, "seneca's quick-look should leave tiles inside its bounds empty"
    hole = mercantile.bounds(holes[0])
    imagery_east = (summary.maxzoom, holes[0].x + 1, holes[0].y) in deepest
    jump = (hole.east if imagery_east else hole.west, (hole.south + hole.north) / 2, summary.maxzoom)  # half hole, half imagery
    shot = ARTIFACTS / "map-seneca.png"
    _, errors, view = _open_map(f"{origin}/{page_path.name}", shot, jump=jump)
    assert errors == []
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    magenta = (pixels[..., 0] > 240) & (pixels[..., 1] < 20) & (pixels[..., 2] > 240)
    assert 0.05 < magenta.mean() < 0.95  # the hole shows the background, the neighbouring tile the ortho
    zoom = min(max(math.floor(view["zoom"]), summary.minzoom), summary.maxzoom)
    (west, south), (east, north) = view["bounds"]
    west, south, east, north = max(west, summary.bounds[0]), max(south, summary.bounds[1]), min(east, summary.bounds[2]), \
        min(north, summary.bounds[3])
    in_view = {(t.z, t.x, t.y) for t in mercantile.tiles(west, south, east, north, zoom)}
    assert in_view - stored, "the view should hold tiles the archive lacks"
    assert in_view & stored


@pytest.mark.slow
def test_with_cors_wrong_the_map_says_so_and_how_to_fix_it(published, page_server) -> None:
    storage, _ = published
    root, origin = page_server
    policy.apply_cors(storage, policy.cors_rules([], [origin]))
    page_path = write_map(storage, "org", "site", root / "cors.html", origin)
    policy.apply_cors(storage, policy.cors_rules([], ["https://maps.example.org"]))  # then someone changes CORS
    _, errors, _ = _open_map(f"{origin}/{page_path.name}", ARTIFACTS / "map-cors.png",
                             settle="document.querySelector('.workbench-problem') !== null")
    assert any(f"workbench policy apply --web-origin {origin}" in e for e in errors), errors


@pytest.mark.slow
def test_an_embedded_page_opens_from_disk_with_no_server(published, tmp_path: Path) -> None:
    storage, _ = published
    page_path = write_map(storage, "org", "site", tmp_path / "embedded.html", embed=True, background="#ff00ff")
    text = page_path.read_text()
    assert "X-Amz-Signature" not in text and "unpkg" not in text  # no URL that expires, nothing from a CDN
    shot = ARTIFACTS / "map-embedded.png"
    ranges, errors, _ = _open_map(page_path.as_uri(), shot)
    assert errors == [] and ranges == []  # no request for tiles at all
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    magenta = (pixels[..., 0] > 240) & (pixels[..., 1] < 20) & (pixels[..., 2] > 240)
    assert (~magenta[200:400, 250:550]).mean() > 0.9 and pixels[200:400, 250:550].std() > 10
