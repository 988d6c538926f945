"""Scheduled runs: `workbench run` stores notebook, HTML and ledger; checks parameters; scrubs; the recipes run."""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from workbench import layout
from workbench.notebook_runs import ledger
from workbench.scrub import scrub_notebook
from workbench.storage import Storage
from workbench.synthetic import Survey, write_survey
from workbench.transfer import upload_folder

ROOT = Path(__file__).resolve().parents[1]
SECRET_TOKEN = "node-token-0123456789"


def _notebook(path: Path, *cells: str) -> Path:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("org = 'acme'\nlabel = 'hello'", metadata={"tags": ["parameters"]})]
    book.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, path)
    return path


@pytest.fixture
def config(config_file: Path) -> Path:
    """The suite's settings file for a fresh bucket (WORKBENCH_CONFIG names it)."""
    return config_file


def _workbench(*argv: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


def _storage(config: Path) -> Storage:
    from workbench.config import load_settings

    return Storage(load_settings(config_file=config))


def test_a_run_stores_notebook_html_and_ledger_with_secrets_scrubbed(config: Path, tmp_path: Path, settings) -> None:
    secret_key = settings.secret_key.reveal()
    notebook = _notebook(
        tmp_path / "report.ipynb",
        "import os\nfrom workbench.config import load_settings\ns = load_settings()\nprint('bucket', s.bucket, 'label', label)",
        "print('https://b.example/k?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP')\n"
        "print(os.environ['WORKBENCH_NODE_TOKEN'], s.secret_key.reveal())",
        "from workbench.progress import bar\nwith bar(total=3, desc='steps') as b:\n    for _ in range(3):\n        b.update()",
    )
    result = _workbench("run", str(notebook), "-p", "label", "scheduled", env={"WORKBENCH_NODE_TOKEN": SECRET_TOKEN})
    assert result.returncode == 0, result.stderr
    storage = _storage(config)
    [entry] = ledger(storage, "acme", notebook="report")
    assert entry.status == "completed" and entry.parameters == {"label": "scheduled"}
    assert entry.keys["ipynb"] == layout.notebook_run_key("acme", "report", dt.date.today(), entry.run, ".ipynb")
    saved = storage.get_bytes(entry.keys["ipynb"]).decode()
    html = storage.get_bytes(entry.keys["html"]).decode()
    for text in (saved, html):
        assert f"bucket {storage.bucket} label scheduled" in text
        assert SECRET_TOKEN not in text and secret_key not in text and "abcdef0123" not in text
        assert "AKIAABCDEFGHIJKLMNOP" not in text and "X-Amz-Signature=***" in text
    assert "3/3" in saved  # the progress bar's final state, not a widget at 0%
    assert "application/vnd.jupyter.widget" not in saved
    assert "WORKBENCH_CONFIG" not in json.dumps(entry.parameters)
    listed = _workbench("runs", "ls", "--org", "acme", "--since", dt.date.today().isoformat())
    assert listed.returncode == 0 and entry.run in listed.stdout and "completed" in listed.stdout


def test_a_failing_notebook_exits_non_zero_naming_the_cell(config: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "broken.ipynb", "x = 1", "raise ValueError('the survey has no images')")
    result = _workbench("run", str(notebook))
    assert result.returncode == 1
    assert "broken failed at cell 3 (raise ValueError" in result.stderr and "the survey has no images" in result.stderr
    [entry] = ledger(_storage(config), "acme", notebook="broken")
    assert entry.status == "failed" and entry.failed_cell.startswith("cell 3") and entry.keys["html"]


def test_a_dead_kernel_is_named(config: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "dies.ipynb", "import os\nos._exit(1)")
    result = _workbench("run", str(notebook))
    assert result.returncode == 1 and "the kernel died" in result.stderr
    assert ledger(_storage(config), "acme", notebook="dies")[0].status == "failed"


@pytest.mark.parametrize(("argv", "message"), [
    (["-p", "colour", "red"], "has no parameter 'colour'; it has: org, label"),
    (["-p", "label", "AKIAABCDEFGHIJKLMNOP"], "parameter 'label' looks like a credential"),
    (["-p", "org", "acme", "-p", "label", "https://x/y?X-Amz-Signature=abc"], "looks like a credential"),
])
def test_parameters_are_checked_before_any_kernel_starts(config: Path, tmp_path: Path, argv: list[str], message: str) -> None:
    notebook = _notebook(tmp_path / "checked.ipynb", "print(label)")
    result = _workbench("run", str(notebook), *argv, timeout=60)
    assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1
    assert ledger(_storage(config), "acme", notebook="checked") == []


def test_a_credential_named_parameter_is_refused(config: Path, tmp_path: Path) -> None:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("org = 'acme'\nsecret_key = None", metadata={"tags": ["parameters"]})]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, tmp_path / "creds.ipynb")
    result = _workbench("run", str(tmp_path / "creds.ipynb"), "-p", "secret_key", "x", timeout=60)
    assert result.returncode == 1 and "'secret_key' looks like a credential" in result.stderr


def test_scrub_removes_planted_secrets_and_widget_payloads() -> None:
    signed = "https://bucket.s3.amazonaws.com/k.tif?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F&X-Amz-Signature=deadbeef"
    notebook = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"x": "y" * 1000}}}},
        "cells": [
            {"cell_type": "code", "source": ["token = 'my-node-token-xyz'\n"], "outputs": [
                {"output_type": "stream", "name": "stdout", "text": [f"url {signed}\n", "token my-node-token-xyz\n"]},
                {"output_type": "error", "ename": "E", "evalue": "GET /options?token=abc123 failed", "traceback": ["?token=abc123"]},
            ]},
            {"cell_type": "code", "source": "m", "outputs": [
                {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                                                         "text/plain": "MapWidget()"}},
                {"output_type": "display_data", "data": {"image/jpeg": "/9j/", "text/plain": "map preview"}},
            ]},
        ],
    }
    text = json.dumps(scrub_notebook(notebook, secrets=["my-node-token-xyz"]))
    for leaked in ("deadbeef", "AKIAIOSFODNN7EXAMPLE", "my-node-token-xyz", "abc123", "widget-state", "widget-view"):
        assert leaked not in text, leaked
    assert "map preview" in text and "MapWidget()" not in text


# -- the scheduling recipes, executed as written ------------------------------------------------------------


def _survey_projects(storage: Storage, tmp_path: Path, projects: list[str]) -> None:
    for project in projects:
        folder = tmp_path / project
        survey = Survey(lines=2, shots_per_line=4)
        write_survey(folder, survey)
        flight = layout.new_id(at=survey.start)
        upload_folder(storage, folder, lambda p, project=project: layout.raw_key("acme", project, flight, p.name), progress=False)


@pytest.mark.slow
def test_the_cron_line_and_the_systemd_unit_run_as_written(config: Path, tmp_path: Path) -> None:
    storage = _storage(config)
    _survey_projects(storage, tmp_path, ["survey-a", "survey-b"])
    lines = (ROOT / "deploy" / "workbench.cron").read_text().splitlines()
    variables = dict(line.split("=", 1) for line in lines if line and not line.startswith("#") and "=" in line.split()[0])
    assert set(variables) == {"WORKBENCH_HOME", "WORKBENCH_CONFIG", "WORKBENCH_LOG"}
    [entry] = [line for line in lines if line and not line.startswith("#") and "=" not in line.split()[0]]
    fields = entry.split(maxsplit=5)
    assert len(fields) == 6 and fields[:5] == ["15", "*", "*", "*", "*"]
    venv = tmp_path / "home"  # WORKBENCH_HOME as an install would look: the project with its .venv
    venv.mkdir()
    (venv / "notebooks").symlink_to(ROOT / "notebooks")
    (venv / ".venv" / "bin").mkdir(parents=True)
    (venv / ".venv" / "bin" / "workbench").symlink_to(Path(sys.executable).with_name("workbench"))
    log = tmp_path / "pipeline.log"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WORKBENCH_HOME": str(venv), "WORKBENCH_CONFIG": str(config),
           "WORKBENCH_LOG": str(log), "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", str(tmp_path))}
    cron = subprocess.run(["/bin/sh", "-c", fields[5]], env=env, capture_output=True, text=True, timeout=900)
    assert cron.returncode == 0, log.read_text()[-3000:]
    assert "00_pipeline: completed" in log.read_text()
    [run] = ledger(storage, "acme", notebook="00_pipeline")
    assert run.status == "completed" and run.parameters == {"org": "acme", "projects": "survey-a,survey-b"}
    for project in ("survey-a", "survey-b"):
        assert storage.exists(layout.pmtiles_key("ortho", "acme", dt.date.today(), project))  # tiles published

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "deploy" / "workbench-pipeline.service")
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    home = service["WorkingDirectory"]
    command = shlex.split(service["ExecStart"].replace(home, str(venv)))
    name, value = service["Environment"].split("=", 1)
    unit_env = {**env, name: str(config) if name == "WORKBENCH_CONFIG" else value}
    systemd = subprocess.run(command, env=unit_env, cwd=venv, capture_output=True, text=True, timeout=900)
    assert systemd.returncode == 0, systemd.stderr[-2000:]
    runs = ledger(storage, "acme", notebook="00_pipeline")
    assert len(runs) == 2 and runs[-1].status == "completed"
    saved = storage.get_bytes(runs[-1].keys["ipynb"]).decode()
    assert saved.count("unchanged") >= 10  # nothing new: every step of both projects unchanged
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(ROOT / "deploy" / "workbench-pipeline.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


def test_the_kubernetes_cronjob_validates_against_the_schema() -> None:
    import kubernetes_validate

    manifest = yaml.safe_load((ROOT / "deploy" / "cronjob.yaml").read_text())
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    job = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = job["containers"]
    assert container["command"][:3] == ["workbench", "run", "notebooks/00_pipeline.ipynb"]
    assert manifest["spec"]["concurrencyPolicy"] == "Forbid" and job["restartPolicy"] in ("Never", "OnFailure")
    config = next(e["value"] for e in container["env"] if e["name"] == "WORKBENCH_CONFIG")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret_volume = next(v for v in job["volumes"] if "secret" in v)
    assert str(Path(config).parent) == mounts[secret_volume["name"]]  # the settings come from the Secret
    assert not any("secret" in e["name"].lower() or "key" in e["name"].lower() for e in container["env"])
    fields = manifest["spec"]["schedule"].split()
    assert len(fields) == 5
