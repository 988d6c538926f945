"""Processing runs: inputs from the manifest, a run record, and atomic publishing of products.

Every run gets a UUIDv7 and writes ``products/{run}/run.json`` when it starts and when it ends. Products
are uploaded under ``products/{run}/`` and verified (size and checksum) before the project's
``products/latest.json`` pointer moves to the run, last: a crashed or cancelled run never leaves a
half-published product where users look. A run with the same engine, options and inputs (keys and
ETags) as the latest one is not run again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from workbench import layout
from workbench.cluster import trim_memory
from workbench.costs.pricebook import load as load_price_book
from workbench.costs.receipt import RECEIPT, write_receipt
from workbench.errors import IntegrityError, NotFoundError, WorkbenchError
from workbench.imagery.ingest import manifest_key
from workbench.imagery.manifest import read_table
from workbench.redact import redact
from workbench.storage import Storage
from workbench.transfer import upload_file

RUN_RECORD = "run.json"
REPORT_SUFFIX = ".report.json"


class EngineError(WorkbenchError):
    """An engine failed; ``output`` holds the last lines it printed, ``skipped`` the images it could not use."""

    def __init__(self, message: str, output: list[str] | None = None, skipped: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.output = output or []
        self.skipped = skipped or []


@dataclasses.dataclass
class EngineOutput:
    """What an engine made: product files, and quality measures per product (stored in its report)."""

    files: dict[str, Path]
    quality: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)  # images not used: key and reason


class Engine(Protocol):
    """Turns input images into product files in a local folder."""

    name: str

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate options (refuse unknown names and bad values); return them normalised."""
        ...

    def versions(self) -> dict[str, str]:
        """Software versions that shape the products."""
        ...

    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> EngineOutput:
        """Build the products from manifest rows ``inputs``: local files by product name, and their quality."""
        ...


@dataclasses.dataclass
class RunRecord:
    """What ``run.json`` holds."""

    run: str
    org: str
    project: str
    engine: str
    options: dict[str, Any]
    inputs: list[dict[str, Any]]
    fingerprint: str
    versions: dict[str, str]
    status: str = "running"  # running | completed | failed | canceled
    started_at: str = ""
    finished_at: str | None = None
    seconds: float | None = None
    error: str | None = None
    output_tail: list[str] = dataclasses.field(default_factory=list)
    products: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)  # inputs the engine could not use, and why
    reused: bool = False

    def key(self) -> str:
        """Where this record lives."""
        return layout.product_key(self.org, self.project, self.run, RUN_RECORD)

    def to_json(self) -> bytes:
        """The record as JSON bytes (``reused`` is not stored)."""
        data = dataclasses.asdict(self)
        data.pop("reused")
        return json.dumps(data, indent=2, default=str).encode()


def fingerprint(engine: str, options: dict[str, Any], inputs: list[dict[str, Any]]) -> str:
    """What makes two runs the same: engine, options, and input keys with their ETags."""
    body = json.dumps({"engine": engine, "options": options,
                       "inputs": sorted((i["key"], i["etag"]) for i in inputs)}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def select_inputs(storage: Storage, org: str, project: str, include_flagged: bool = False) -> list[dict[str, Any]]:
    """Manifest rows to process: usable images (all readable ones with ``include_flagged``)."""
    table = read_table(storage, manifest_key(org, project))
    if table is None:
        raise WorkbenchError(f"project {org}/{project} has no manifest yet: run `workbench ingest` first")
    rows = table.to_pylist()
    if include_flagged:
        return [r for r in rows if "unreadable" not in r["flags"]]
    return [r for r in rows if r["usable"]]


def read_record(storage: Storage, key: str) -> dict[str, Any] | None:
    """A JSON object stored at ``key``, or None."""
    try:
        return json.loads(storage.get_bytes(key))
    except NotFoundError:
        return None


def latest(storage: Storage, org: str, project: str) -> dict[str, Any] | None:
    """The run record the project's ``latest`` pointer names, or None."""
    pointer = read_record(storage, layout.latest_key(org, project))
    return read_record(storage, layout.product_key(org, project, pointer["run"], RUN_RECORD)) if pointer else None


def _metres(value: float) -> str:
    return f"{value:.2f} m" if value < 10 else f"{value:.0f} m"


def caption(record: dict[str, Any]) -> str:
    """What a run's orthophoto is, in a line for maps: the engine and, when measured, its seam misfit."""
    ortho = next((p for p in record.get("products", []) if p["name"] == "ortho.tif"), {})
    seams = ((ortho.get("report") or {}).get("quality") or {}).get("seams") or {}
    what = ("quick-look preview from image metadata (no photogrammetry)" if record.get("engine") == "quicklook"
            else f"orthophoto by the {record.get('engine')} engine")
    if seams.get("median_m") is not None:
        what += (f"; overlapping images disagree by {_metres(seams['median_m'])} (median), {_metres(seams['p90_m'])} "
                 "(90th percentile)")
    return f"{what}; run {record.get('run')}"


def quality_summary(quality: dict[str, Any]) -> str:
    """One line of an engine's quality measures: images placed and the seam misfit."""
    seams = quality.get("seams") or {}
    placed = f"{quality['images_placed']} of {quality['images_given']} images placed" if "images_placed" in quality else ""
    solved = quality.get("reconstruction") or {}
    if solved:
        placed += (f", reprojection error {solved['reprojection_error_px']:.2f} px, GPS residual "
                   f"{solved['gps_residual_m']['rms_horizontal']:.2f} m rms, {solved['points']} points")
    misfit = ""  # products without a seam measure (a DSM) say nothing of seams
    if "seams" in quality:
        misfit = (f"seams: overlapping images disagree by {seams['median_m']:.2f} m median, {seams['p90_m']:.2f} m p90 "
                  f"({seams['pairs']} pairs)" if seams.get("median_m") is not None else "seams: not measured")
    if "surface_resolution_m" in quality:
        placed = f"surface from {quality['points_used']} points, {quality['surface_resolution_m']:.2f} m cells"
    return "; ".join(part for part in (placed, misfit) if part)


def reasons_summary(skipped: list[dict[str, str]]) -> str:
    """Skipped images counted by reason, in one line: ``3 no verified feature matches ..., 1 cannot decode ...``."""
    counts = Counter(item["reason"].split(" (")[0] for item in skipped)
    return ", ".join(f"{count} {reason}" for reason, count in counts.most_common())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _publish(storage: Storage, record: RunRecord, files: dict[str, Path], reports: dict[str, dict[str, Any]]) -> None:
    for name, path in sorted(files.items()):
        key = layout.product_key(record.org, record.project, record.run, name)
        result = upload_file(storage, path, key, existing=None)  # checksummed while read for the upload
        stored = storage.head(key)
        if stored.size != result.size or stored.etag != result.etag:
            raise IntegrityError(f"product {name} did not verify after upload")
        entry = {"name": name, "key": key, "size": stored.size, "etag": result.etag}
        if name in reports:
            report_key = layout.product_key(record.org, record.project, record.run, name + REPORT_SUFFIX)
            storage.put_bytes(report_key, json.dumps(reports[name], indent=2).encode(), content_type="application/json")
            entry["report"] = reports[name]
        record.products.append(entry)


def run_engine(
    storage: Storage,
    org: str,
    project: str,
    engine: Engine,
    options: dict[str, Any] | None = None,
    *,
    include_flagged: bool = False,
    min_images: int = 2,
    client: Any = None,
    progress: bool = True,
    reporter: Callable[[Path], dict[str, Any]] | None = None,
    force: bool = False,
) -> RunRecord:
    """Run ``engine`` on the project's images and publish its products (see the module docstring).

    ``force`` runs even when the latest run had the same engine, options and inputs.
    Every failure after the arguments are known, setup included (unknown options, an unreachable node,
    too few images), leaves a run record with status ``failed``.
    """
    started = time.perf_counter()
    record = RunRecord(run=layout.new_id(), org=org, project=project, engine=engine.name, options=dict(options or {}),
                       inputs=[], fingerprint="", versions={"python": platform.python_version()}, started_at=_now())
    try:
        record.options = engine.check_options(dict(options or {}))
        inputs = select_inputs(storage, org, project, include_flagged)
        if len(inputs) < min_images:
            raise WorkbenchError(f"{len(inputs)} usable image(s) in {org}/{project}: "
                                 f"the {engine.name} engine needs at least {min_images}")
        record.inputs = [{"key": r["key"], "etag": r["etag"]} for r in inputs]
        record.fingerprint = fingerprint(engine.name, record.options, record.inputs)
        previous = latest(storage, org, project)
        if not force and previous and previous.get("fingerprint") == record.fingerprint and previous.get("status") == "completed":
            reused = RunRecord(**{k: v for k, v in previous.items() if k in {f.name for f in dataclasses.fields(RunRecord)}})
            reused.reused = True
            return reused
        record.versions.update(engine.versions())
    except WorkbenchError as exc:
        _finish(storage, record, started, "failed", str(exc))
        raise
    storage.put_bytes(record.key(), record.to_json(), content_type="application/json")
    try:
        with tempfile.TemporaryDirectory(prefix=f"workbench-{engine.name}-") as scratch:
            output = engine.process(storage, inputs, record.options, Path(scratch), client, progress)
            record.skipped = output.skipped
            reports = {name: reporter(path) for name, path in output.files.items() if reporter and path.suffix == ".tif"}
            for name, measures in output.quality.items():
                reports.setdefault(name, {})["quality"] = measures
            _publish(storage, record, output.files, reports)
    except KeyboardInterrupt:
        _finish(storage, record, started, "canceled", "canceled by the user")
        raise
    except EngineError as exc:
        record.output_tail = exc.output[-50:]
        record.skipped = exc.skipped
        _finish(storage, record, started, "failed", str(exc))
        raise
    except Exception as exc:
        _finish(storage, record, started, "failed", f"{type(exc).__name__}: {exc}")
        raise
    _finish(storage, record, started, "completed", None)
    _point_latest(storage, org, project, record.run, engine.name, record.finished_at or _now())
    trim_memory()  # the mosaic's buffers, freed by threads, back to the OS
    return record


def _point_latest(storage: Storage, org: str, project: str, run: str, engine: str, published_at: str) -> None:
    """Move the project's ``latest`` pointer to ``run`` (always the last write of a publication)."""
    storage.put_bytes(layout.latest_key(org, project),
                      json.dumps({"run": run, "engine": engine, "published_at": published_at}).encode(),
                      content_type="application/json")


def _finish(storage: Storage, record: RunRecord, started: float, status: str, error: str | None) -> None:
    record.status, record.error = status, redact(error) if error else error
    record.output_tail = [redact(line) for line in record.output_tail]
    record.finished_at = _now()
    record.seconds = round(time.perf_counter() - started, 3)
    storage.put_bytes(record.key(), record.to_json(), content_type="application/json")
    _receipt(storage, record)


def _receipt(storage: Storage, record: RunRecord) -> None:
    """Store the run's ``cost.json`` (a receipt that cannot be priced warns; it never fails the run)."""
    try:
        write_receipt(storage, json.loads(record.to_json()), load_price_book(warn=False))
    except WorkbenchError as exc:
        warnings.warn(f"run {record.run} has no cost receipt: {exc}", stacklevel=2)


def reconcile(storage: Storage, org: str, project: str, run: str) -> dict[str, Any]:
    """Settle a run's status from the bucket: a ``running`` run whose products were all stored is done.

    A run is done when its orthophoto and the orthophoto's report exist (the report is written after the
    product was verified); then its record becomes ``completed`` and, if it is newer than the run
    ``latest`` names, the pointer moves to it. Returns the (possibly updated) record.
    """
    key = layout.product_key(org, project, run, RUN_RECORD)
    record = read_record(storage, key)
    if record is None:
        raise NotFoundError(f"run {run} of {org}/{project} has no run.json")
    if record["status"] != "running":
        return record
    prefix = layout.product_key(org, project, run, RUN_RECORD)[: -len(RUN_RECORD)]
    stored = {info.key[len(prefix):]: info for info in storage.list(prefix)}
    if "ortho.tif" not in stored or "ortho.tif" + REPORT_SUFFIX not in stored:
        return record
    record["products"] = [{"name": name, "key": info.key, "size": info.size, "etag": info.etag}
                          for name, info in sorted(stored.items())
                          if name not in (RUN_RECORD, RECEIPT) and not name.endswith(REPORT_SUFFIX)]
    record["status"], record["finished_at"] = "completed", record.get("finished_at") or _now()
    record["error"] = None
    storage.put_bytes(key, json.dumps(record, indent=2, default=str).encode(), content_type="application/json")
    pointer = read_record(storage, layout.latest_key(org, project))
    if pointer is None or pointer["run"] < run:
        _point_latest(storage, org, project, run, record["engine"], record["finished_at"])
    return record
