"""Notebooks run under papermill with parameters, and never save a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import layout
from workbench.config import Settings
from workbench.storage import Storage

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_notebook_has_a_parameters_cell_and_no_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), path.name
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{path.name} has outputs"


@pytest.mark.slow
def test_quickstart_under_papermill_against_a_given_bucket(settings: Settings, tmp_path: Path) -> None:
    output = tmp_path / "out.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKBENCH_"))}
    env.update(AWS_ACCESS_KEY_ID=settings.access_key, AWS_SECRET_ACCESS_KEY=settings.secret_key.reveal())
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOKS / "01_storage_quickstart.ipynb"), str(output),
         "-p", "profile", "minio", "-p", "endpoint", settings.endpoint, "-p", "bucket", settings.bucket,
         "-p", "project", "papermill-run", "-p", "synthetic_lines", "1", "-p", "synthetic_shots_per_line", "4",
         "-p", "apply_policies", "True", "--cwd", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = output.read_text()
    assert settings.secret_key.reveal() not in text
    assert "6 uploaded" in text and "second run: 0 uploaded, 0 resumed, 6 skipped" in text  # 4 shots + 2 flawed
    assert "may GET" in text
    storage = Storage(settings)
    [flight] = [p.rstrip("/").rsplit("/", 1)[-1] for p in storage.list_prefixes(layout.flights_prefix("demo-org", "papermill-run"))]
    assert len(list(storage.list(layout.flights_prefix("demo-org", "papermill-run") + flight + "/"))) == 6


def test_a_failing_notebook_exits_non_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOKS / "01_storage_quickstart.ipynb"), str(tmp_path / "out.ipynb"),
         "-p", "profile", "r2", "--cwd", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "needs an endpoint" in done.stderr + (tmp_path / "out.ipynb").read_text()


@pytest.mark.slow
def test_process_notebook_with_the_odm_engine_against_the_test_node(tmp_path: Path) -> None:
    from tests.nodeodm_fake import FakeNodeODM
    from tests.test_odm import OUTPUTS

    if not OUTPUTS.is_dir():
        pytest.skip(f"real NodeODM outputs not available: {OUTPUTS} is absent")
    output = tmp_path / "out.ipynb"
    env = {**os.environ, "WORKBENCH_NODE_TOKEN": "node-secret-token"}
    with FakeNodeODM(OUTPUTS, token="node-secret-token") as url:
        done = subprocess.run(
            [sys.executable, "-m", "papermill", str(NOTEBOOKS / "03_process.ipynb"), str(output),
             "-p", "engine", "odm", "-p", "node_url", url, "-p", "preset", "standard", "--cwd", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=300,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    text = output.read_text()
    assert ": completed" in text and "dsm.tif" in text and "EPSG:32615" in text
    assert "node-secret-token" not in text
