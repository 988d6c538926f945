"""The notebooks in a real JupyterLab, as users open it: Run All in Debian's chromium, JupyterLab under a base URL
(as on a hub) opened at 127.0.0.1, with every request to anything but loopback refused (offline)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.jupyterlab import (
    CHROMIUM,
    JupyterLab,
    browser,
    copy_notebooks,
    kernel_processes,
    map_pictures,
    painted,
    painted_centre,
    run_all,
    seaweed_processes,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.mark.slow
def test_run_all_in_jupyterlab_under_a_base_url_offline_then_kill_the_kernels(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is missing (.ci/run installs it)")
    pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    root = copy_notebooks(NOTEBOOKS, tmp_path / "notebooks")
    with JupyterLab(root, tmp_path / "lab") as lab, browser(offline=True) as (page, refused):
        results = {}
        for notebook in sorted(p.name for p in root.glob("0[1-4]_*.ipynb")):  # the map notebooks; nbmake runs the rest
            errors = run_all(page, lab, notebook)
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{notebook}.png"), full_page=True)
            results[notebook] = (errors, map_pictures(page, ARTIFACTS, f"jupyterlab-{Path(notebook).stem}"))
        assert refused == [], refused[:5]  # offline: nothing but loopback was asked for (no CDN)
        for notebook, (errors, _) in results.items():
            assert errors == [], (notebook, errors)
        [qa_map] = results["02_ingest_and_qa.ipynb"][1]
        assert painted(qa_map) > 0.05  # footprints, positions and coverage drawn
        [ortho_map] = results["04_tiles_and_map.ipynb"][1]
        assert painted(ortho_map) > 0.25, ortho_map
        x, y = painted_centre(ortho_map)
        assert 0.3 < x < 0.7 and 0.3 < y < 0.7, (x, y)  # centred on the data, not in a corner
        pixels = np.asarray(Image.open(ortho_map).convert("RGB")).astype(int)
        middle = pixels[pixels.shape[0] // 3 : 2 * pixels.shape[0] // 3, pixels.shape[1] // 3 : 2 * pixels.shape[1] // 3]
        assert middle.std() > 10  # imagery, not a flat fill or an error box
        kernels = kernel_processes(lab)
        assert len(kernels) == len(results) and len(seaweed_processes(lab.data_home)) == 1  # a kernel per notebook, one S3
        for kernel in kernels:
            kernel.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while seaweed_processes(lab.data_home) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert seaweed_processes(lab.data_home) == []  # nothing orphaned


@pytest.mark.slow
def test_the_jupyter_server_passes_on_only_presigned_reads_of_the_embedded_s3(s3_server, settings, tmp_path: Path) -> None:
    import requests

    from workbench.presign import Presigner
    from workbench.storage import Storage

    storage = Storage(settings)
    storage.put_bytes("pmtiles/ortho/o/p/x.bin", bytes(range(256)) * 8)
    url = Presigner(storage).get("pmtiles/ortho/o/p/x.bin")
    path_and_query = url.split(f"127.0.0.1:{s3_server.ports['s3']}", 1)[1]
    with JupyterLab(copy_notebooks(NOTEBOOKS, tmp_path / "nb"), tmp_path / "lab") as lab:
        through = f"{lab.url}workbench/s3/{s3_server.ports['s3']}{path_and_query}"
        auth = {"Authorization": f"token {lab.token}"}
        ranged = requests.get(through, headers={**auth, "Range": "bytes=10-19"}, timeout=30)
        assert ranged.status_code == 206 and ranged.content == bytes(range(10, 20))  # the signature still verifies
        assert ranged.headers["Content-Range"] == "bytes 10-19/2048" and ranged.headers.get("ETag")
        assert requests.head(through, headers=auth, timeout=30).status_code == 403  # passed on; S3 refuses: signed for GET
        assert requests.put(through, headers=auth, data=b"x", timeout=30).status_code == 405
        assert requests.delete(through, headers=auth, timeout=30).status_code == 405
        unsigned = f"{lab.url}workbench/s3/{s3_server.ports['s3']}/{settings.bucket}/pmtiles/ortho/o/p/x.bin"
        assert requests.get(unsigned, headers=auth, timeout=30).status_code == 403
        other_port = f"{lab.url}workbench/s3/{lab.port}{path_and_query}"  # JupyterLab itself: not an embedded S3
        assert requests.get(other_port, headers=auth, timeout=30).status_code == 404
        anonymous = requests.get(through, timeout=30, allow_redirects=False)
        assert anonymous.status_code in (302, 403) and anonymous.content != bytes(range(256)) * 8
        tampered = through.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert requests.get(tampered, headers=auth, timeout=30).status_code == 403
