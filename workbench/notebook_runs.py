"""Scheduled notebook runs: ``workbench run NOTEBOOK -p NAME VALUE`` with papermill, stored and logged.

* The kernel gets the workbench's own settings (endpoint, bucket, credentials) through its environment,
  as a private settings file named by ``WORKBENCH_CONFIG``: never as parameters, which papermill writes
  into the saved notebook.
* Parameters are checked first: each must be defined in the notebook's ``parameters`` cell, and none may
  look like a credential (by name or value).
* Outputs are saved for reading later (``WORKBENCH_STATIC_OUTPUT=1``: progress bars show their final state,
  maps are pictures), scrubbed of secrets and widget payloads (:mod:`workbench.scrub`), and stored with an
  HTML rendering and a ledger entry under ``runs/{org}/{notebook}/{YYYY-MM-DD}/{run}.(ipynb|html|json)``:
  run ids are UUIDv7, so a prefix listing is a time window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench import layout
from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.local import write_private
from workbench.progress import STATIC_ENV
from workbench.scrub import scrub_notebook, scrub_text
from workbench.storage import Storage

CREDENTIAL_NAME = re.compile(r"(?i)(secret|token|passw|credential|access_?key|api_?key|private_?key|session|auth)")
CREDENTIAL_VALUE = re.compile(r"(?i)(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b|x-amz-signature=|x-amz-credential=|[?&]token=|"
                              r"\b[A-Za-z0-9+/]{40}\b)")
SECRET_ENVIRONMENT = ("WORKBENCH_NODE_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "WORKBENCH_SECRET_KEY")


class NotebookRunError(WorkbenchError):
    """A notebook run failed (a cell raised, the kernel died, or it timed out); the run was still stored."""


@dataclasses.dataclass
class NotebookRun:
    """A ledger entry: what ran, with what, how it ended, and where its outputs are."""

    run: str
    org: str
    notebook: str
    parameters: dict[str, Any]
    started_at: str
    seconds: float = 0.0
    status: str = "running"  # completed | failed | canceled
    failed_cell: str | None = None
    error: str | None = None
    keys: dict[str, str] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        """One line for ``workbench runs ls``."""
        where = f" at {self.failed_cell}: {self.error}" if self.status == "failed" else ""
        params = " ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"{self.started_at}  {self.notebook:<24} {self.status:<9} {self.seconds:7.1f} s  {self.run}  {params}{where}"


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook's ``parameters`` cell defines, with their defaults (papermill's reading)."""
    import papermill

    try:
        found = papermill.inspect_notebook(str(path))
    except FileNotFoundError:
        raise WorkbenchError(f"no notebook at {path}") from None
    except Exception as exc:  # nbformat's validation errors: one line
        raise WorkbenchError(f"{path} is not a readable notebook: {str(exc).splitlines()[0]}") from None
    return {name: info.get("default") for name, info in found.items()}


def check_parameters(path: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse parameters the notebook does not define and any that look like credentials."""
    defined = notebook_parameters(path)
    if not defined and parameters:
        raise WorkbenchError(f"{path.name} has no cell tagged 'parameters': it takes no -p")
    for name, value in parameters.items():
        if name not in defined:
            raise WorkbenchError(f"{path.name} has no parameter {name!r}; it has: {', '.join(defined)}")
        if CREDENTIAL_NAME.search(name) or (isinstance(value, str) and CREDENTIAL_VALUE.search(value)):
            raise WorkbenchError(f"parameter {name!r} looks like a credential: papermill would write it into the saved "
                                 "notebook; give credentials through the settings file or the environment")
    return dict(parameters)


def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill reads it: numbers, true/false, null, else text (no YAML tags)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str, type(None), list)) else text


@contextlib.contextmanager
def _kernel_environment(settings: Settings) -> Iterator[list[str]]:
    """The settings in a private file named by ``WORKBENCH_CONFIG`` (and static outputs) while the kernel runs."""
    secrets = [v.reveal() if hasattr(v, "reveal") else v
               for v in (settings.access_key, settings.secret_key, settings.session_token, settings.cloudfront_private_key) if v]
    secrets += [os.environ[name] for name in SECRET_ENVIRONMENT if os.environ.get(name)]
    with tempfile.TemporaryDirectory(prefix="workbench-run-") as scratch:
        config = Path(scratch) / "workbench.yaml"
        write_private(config, yaml.safe_dump(settings.to_yaml_dict(include_secrets=True), sort_keys=False))
        changes = {"WORKBENCH_CONFIG": str(config), STATIC_ENV: "1"}
        before = {name: os.environ.get(name) for name in changes}
        os.environ.update(changes)
        try:
            yield secrets
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _html(notebook: dict[str, Any]) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    node = nbformat.reads(json.dumps(notebook), as_version=4)  # normalised: sources joined, as nbconvert expects
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(node)
    return body


def _failure(exc: BaseException) -> tuple[str | None, str]:
    """(the failing cell, the one-line error) of a papermill/nbclient exception."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first = (exc.source or "").strip().splitlines()[0][:80] if (exc.source or "").strip() else ""
        cell = f"cell {exc.exec_count or exc.cell_index}" + (f" ({first})" if first else "")
        return cell, f"{exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}".strip()
    name = type(exc).__name__
    if name == "DeadKernelError":
        return None, "the kernel died (out of memory, or killed)"
    if name in ("CellTimeoutError", "TimeoutError"):
        return None, f"a cell ran past the time limit ({str(exc).splitlines()[0] if str(exc) else ''})"
    return None, f"{name}: {str(exc).splitlines()[0] if str(exc) else ''}"


def run_notebook(settings: Settings, path: str | Path, parameters: Mapping[str, Any] | None = None, *,
                 org: str | None = None, kernel: str = "python3", timeout: int | None = None) -> NotebookRun:
    """Run a notebook (see the module docstring), store it, and return its ledger entry.

    Raises :class:`NotebookRunError` (after storing everything) when the notebook fails.
    """
    import papermill

    path = Path(path)
    parameters = check_parameters(path, parameters or {})
    defaults = notebook_parameters(path)
    org = org or parameters.get("org") or (defaults.get("org") or "").strip("'\"") or None
    if not org:
        raise WorkbenchError(f"{path.name} names no org: pass --org (runs are stored under runs/{{org}}/)")
    name = layout.check_component(path.stem, "notebook")
    layout.check_component(str(org), "org")
    storage = Storage(settings)
    record = NotebookRun(run=layout.new_id(), org=str(org), notebook=name, parameters=dict(parameters),
                         started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    day = layout.id_time(record.run).date()
    started = time.perf_counter()
    failure: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="workbench-run-output-") as scratch, _kernel_environment(settings) as secrets:
        output = Path(scratch) / f"{name}.ipynb"
        try:
            papermill.execute_notebook(str(path), str(output), parameters=dict(parameters), kernel_name=kernel,
                                       progress_bar=False, cwd=str(path.parent.resolve()), execution_timeout=timeout)
            record.status = "completed"
        except KeyboardInterrupt:
            record.status, record.error = "canceled", "canceled by the user"
            failure = KeyboardInterrupt()
        except Exception as exc:  # papermill/nbclient failures of every kind end as a failed, stored run
            record.status = "failed"
            record.failed_cell, record.error = _failure(exc)
            record.error = scrub_text(record.error, secrets)
            failure = exc
        record.seconds = round(time.perf_counter() - started, 1)
        notebook = json.loads(output.read_text(encoding="utf-8")) if output.exists() else json.loads(path.read_text(encoding="utf-8"))
        scrub_notebook(notebook, secrets)
        stored = {".ipynb": json.dumps(notebook, indent=1).encode(), ".html": scrub_text(_html(notebook), secrets).encode()}
    types = {".ipynb": "application/x-ipynb+json", ".html": "text/html; charset=utf-8", ".json": "application/json"}
    for suffix, body in stored.items():
        key = layout.notebook_run_key(record.org, name, day, record.run, suffix)
        storage.put_bytes(key, body, content_type=types[suffix])
        record.keys[suffix.lstrip(".")] = key
    ledger_key = layout.notebook_run_key(record.org, name, day, record.run, ".json")
    record.keys["ledger"] = ledger_key
    storage.put_bytes(ledger_key, json.dumps(dataclasses.asdict(record), indent=2, default=str).encode(), content_type=types[".json"])
    if isinstance(failure, KeyboardInterrupt):
        raise KeyboardInterrupt
    if failure is not None:
        where = f" at {record.failed_cell}" if record.failed_cell else ""
        raise NotebookRunError(f"{name} failed{where}: {record.error} (stored: {record.keys['html']})")
    return record


def ledger(storage: Storage, org: str, since: dt.date | None = None, notebook: str | None = None) -> list[NotebookRun]:
    """The org's notebook runs (optionally of one notebook, from ``since`` on), oldest first."""
    entries = []
    for info in storage.list(layout.notebook_runs_prefix(org, notebook)):
        if not info.key.endswith(".json"):
            continue
        parsed = layout.parse_key(info.key)
        if since and parsed.date and parsed.date < since:
            continue
        data = json.loads(storage.get_bytes(info.key))
        entries.append(NotebookRun(**{f.name: data.get(f.name) for f in dataclasses.fields(NotebookRun)}))
    return sorted(entries, key=lambda entry: entry.run)
