"""Notebooks and scripts use the user's configuration first; the embedded S3 only when nothing is configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from workbench import layout
from workbench.config import Settings
from workbench.local import running_state
from workbench.session import configured_by, open_session
from workbench.storage import Storage
from workbench.transfer import upload_folder

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _config_file(settings: Settings, folder: Path) -> Path:
    path = folder / "workbench.yaml"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(settings.to_yaml_dict(include_secrets=True)))
    return path


def test_what_counts_as_configured() -> None:
    assert configured_by({}) is None
    assert configured_by({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}) is None  # names no bucket
    assert configured_by({"WORKBENCH_CONFIG": "/etc/wb.yaml"}) == "WORKBENCH_CONFIG=/etc/wb.yaml"
    assert configured_by({"AWS_ACCESS_KEY_ID": "x", "WORKBENCH_BUCKET": "b"}) == "environment (AWS_ACCESS_KEY_ID, WORKBENCH_BUCKET)"


def test_a_settings_file_wins_over_the_embedded_s3(settings: Settings, tmp_path: Path) -> None:
    config = _config_file(settings, tmp_path)
    session = open_session(env={"WORKBENCH_CONFIG": str(config)})
    assert not session.embedded and session.settings.bucket == settings.bucket
    assert session.describe() == f"bucket {settings.bucket} at {settings.endpoint}, from WORKBENCH_CONFIG={config}"


def test_nothing_configured_uses_the_users_embedded_s3(tmp_path: Path) -> None:
    folder = tmp_path / "user-s3"
    session = open_session(env={}, data_dir=folder)
    again = open_session(env={}, data_dir=folder)
    try:
        assert session.embedded and f"the embedded S3 of {folder} (started now; nothing else configured)" in session.describe()
        assert "already running" in again.describe() and again.settings.endpoint == session.settings.endpoint
        assert Storage(session.settings).exists("nothing") is False
        pid = running_state(folder)["pid"]
    finally:
        session.close()
        again.close()
    assert running_state(folder) is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_notebook_02_ingests_the_configured_project_not_a_synthetic_one(settings: Settings, seneca_images: list[Path],
                                                                       tmp_path: Path) -> None:
    storage = Storage(settings)
    flight = layout.new_id()
    upload_folder(storage, seneca_images[0].parent, lambda p: layout.raw_key("test", "seneca", flight, p.name), progress=False)
    config = _config_file(settings, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKBENCH_"))}
    env["WORKBENCH_CONFIG"] = str(config)
    output = tmp_path / "out.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / "02_ingest_and_qa.ipynb"), str(output),
                           "-p", "org", "test", "-p", "project", "seneca", "--cwd", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    first = next(o["text"] for o in outputs if o.get("output_type") == "stream").splitlines()[0]
    assert first == f"bucket {settings.bucket} at {settings.endpoint}, from WORKBENCH_CONFIG={config}"
    text = output.read_text()
    assert "14 images (14 read" in text and "SYN_" not in text
    assert settings.secret_key.reveal() not in text
