"""``workbench demo``: the whole storage story on an embedded S3, with nothing but pip.

Starts the embedded S3, renders the synthetic survey (with two flawed images), uploads it (in
parallel, resumable, checksummed), applies the lifecycle and CORS policies, ingests it on a local Dask
cluster (metadata, QA, footprints, thumbnails, GeoParquet manifest), builds the quick-look
orthomosaic (a COG in the bucket), tiles it into raster PMTiles, and prints a summary with presigned
URLs and a map page that carries its archives (it opens from disk, offline, after the S3 has stopped).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench import layout, policy
from workbench.cluster import ensure_client
from workbench.config import Settings
from workbench.engines.runs import Engine, RunRecord, latest, quality_summary
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import IngestResult
from workbench.pipeline import FAILED, PipelineResult, run_pipeline
from workbench.presign import Presigner
from workbench.storage import Storage
from workbench.synthetic import Survey, write_survey
from workbench.tiles import TileSummary
from workbench.transfer import UploadReport, upload_folder

DEMO_ORG = "demo-org"
DEMO_PROJECT = "synthetic-survey"
DEMO_UPLOAD_ORIGINS = ("http://localhost:8888", "http://127.0.0.1:8888")
DEMO_WEB_ORIGINS = ("http://localhost:8888", "http://127.0.0.1:8888", "http://localhost:8000", "http://127.0.0.1:8000")


@dataclasses.dataclass
class DemoResult:
    """What the demo did, for printing and for tests."""

    settings: Settings
    flight: str
    upload: UploadReport
    lifecycle: policy.RuleDiff
    cors: policy.RuleDiff
    get_url: str
    put_url: str
    ortho_url: str
    ingest: IngestResult
    ortho: RunRecord
    tiles_key: str
    tiles: TileSummary
    tiles_url: str
    map_path: Path
    seconds: float

    def summary(self) -> str:
        """The lines the demo prints."""
        first = self.upload.results[0]
        return "\n".join([
            "workbench demo: synthetic survey on the embedded S3",
            f"  endpoint    {self.settings.endpoint}  bucket {self.settings.bucket}",
            f"  flight      {self.flight}  (UUIDv7, created {layout.id_time(self.flight):%Y-%m-%d %H:%M:%S} UTC)",
            f"  upload      {self.upload.summary()}",
            f"  lifecycle   {_change_line(self.lifecycle)}",
            f"  CORS        {_change_line(self.cors)}",
            "  QA          " + "\n    ".join(self.ingest.summary().splitlines()),
            *[f"    {row['name']}: {'; '.join(row['reasons'])}" for row in self.ingest.flagged],
            f"  manifest    {self.settings.bucket}/{self.ingest.manifest_key} (GeoParquet)",
            f"  {self.ortho.engine:<11} {_product_line(self.ortho)}",
            f"  PMTiles     {self.tiles.tiles} WebP tiles, zoom {self.tiles.minzoom}-{self.tiles.maxzoom}, "
            f"{self.tiles.size / 1024:.0f} KiB, checked -> {self.tiles_key}",
            f"  PMTiles URL (1 h, range reads) pmtiles://{self.tiles_url}",
            f"  map         {self.map_path.resolve()} (ortho + coverage inside the page: works offline, no server)",
            f"  first image {first.key} ({first.size / 1024:.0f} KiB)",
            f"  GET (1 h)   {self.get_url}",
            f"  ortho (1 h) {self.ortho_url}",
            f"  PUT (15 min, image/jpeg) {self.put_url}",
            f"  done in {self.seconds:.1f} s",
        ])


def _product_line(record: RunRecord) -> str:
    ortho = next(p for p in record.products if p["name"] == "ortho.tif")
    facts = ortho["report"]
    what = "a preview: no photogrammetry; " if record.engine == "quicklook" else ""
    return (f"ortho.tif {facts['width']}x{facts['height']} px, {facts['resolution_m'][0] * 100:.1f} cm/px, "
            f"{facts['crs']}, {facts['coverage_m2'] / 1e4:.2f} ha ({what}"
            f"{quality_summary(facts['quality'])}) -> {ortho['key']}")


def _change_line(change: policy.RuleDiff) -> str:
    total = len(change.added) + len(change.changed) + len(change.removed)
    return "already in place" if change.empty else f"applied {total} rule change(s) and verified"


def run_demo(
    settings: Settings,
    survey: Survey | None = None,
    images_dir: str | Path | None = None,
    progress: bool = True,
    echo: Callable[[str], object] = print,
    map_dir: str | Path = "workbench-demo",
    engine: Engine | None = None,
) -> DemoResult:
    """Run the demo against a bucket (the embedded S3's, normally) with ``engine`` (default: the quick-look);
    return what it did."""
    started = time.perf_counter()
    storage = Storage(settings)
    with tempfile.TemporaryDirectory(prefix="workbench-demo-") as scratch:
        folder = Path(images_dir) if images_dir else Path(scratch) / "images"
        survey = survey or Survey()
        echo(f"rendering {survey.lines * survey.shots_per_line + 2} synthetic images into {folder} ...")
        write_survey(folder, survey, flawed=True)
        # the flight id encodes when it was flown; the same survey gets the same id, so running the demo again
        # re-uses the stored flight (its upload skips every image) instead of adding one more to the project
        flight = layout.new_id(at=survey.start, seed=f"demo {survey!r}")
        uploaded = upload_folder(storage, folder, lambda p: layout.raw_key(DEMO_ORG, DEMO_PROJECT, flight, p.name),
                                 progress=progress)
    if uploaded.failed:
        path, reason = uploaded.failed[0]
        raise WorkbenchError(f"demo upload failed for {path}: {reason}")
    rules = policy.lifecycle_rules(transitions=policy.default_transitions(storage))
    lifecycle_change = policy.apply_lifecycle(storage, rules)
    policy.verify_lifecycle(storage, rules)
    cors = policy.cors_rules(DEMO_UPLOAD_ORIGINS, DEMO_WEB_ORIGINS)
    cors_change = policy.apply_cors(storage, cors)
    policy.verify_cors(storage, cors)
    what = "the quick-look" if engine is None or engine.name == "quicklook" else f"the {engine.name} engine's"
    echo(f"running the pipeline: ingest (metadata, pixel checks, thumbnails on a local Dask cluster), {what} "
         "orthomosaic, PMTiles, coverage, the map page ...")
    with ensure_client(n_workers=1) as client:
        chain = run_pipeline(storage, DEMO_ORG, DEMO_PROJECT, engine=engine, client=client, progress=progress,
                             map_path=Path(map_dir) / "map.html", embed_map=True, echo=lambda line: echo(f"  {line}"))
    if not chain.ok:
        failed = next(step for step in chain.steps if step.status == FAILED)
        raise WorkbenchError(f"demo pipeline step {failed.step} failed: {failed.detail}")
    qa: IngestResult = chain.outcome("ingest").value
    ortho: RunRecord = chain.outcome("process").value
    tiles_key, tiles = chain.outcome("tiles").value
    map_path: Path = chain.outcome("map").value
    presigner = Presigner(storage)
    first = uploaded.results[0].key
    get_url = presigner.get(first)
    put_url = presigner.put(layout.raw_key(DEMO_ORG, DEMO_PROJECT, flight, "NEW_0001.JPG"), content_type="image/jpeg").url
    ortho_key = next(p["key"] for p in ortho.products if p["name"] == "ortho.tif")
    ortho_url = presigner.get(ortho_key, download_name="ortho.tif")
    return DemoResult(settings, flight, uploaded, lifecycle_change, cors_change, get_url, put_url, ortho_url, qa, ortho,
                      tiles_key, tiles, presigner.get(tiles_key), map_path, time.perf_counter() - started)


def prepare_project(storage: Storage, org: str, project: str, upto: str = "raw", client: Any = None,
                    echo: Callable[[str], object] = print) -> None:
    """Make sure a project on the embedded S3 has raw images (``raw``), a manifest (``manifest``) and a
    quick-look run (``run``): reuse what earlier notebooks stored, do only the missing steps, say which."""
    if upto not in ("raw", "manifest", "run"):
        raise WorkbenchError(f"upto {upto!r}: choose raw, manifest or run")
    stored = sum(1 for _ in storage.list(layout.flights_prefix(org, project)))
    if stored:
        echo(f"{org}/{project}: {stored} raw images already in the bucket")
    else:
        survey = Survey()
        flight = layout.new_id(at=survey.start)
        with tempfile.TemporaryDirectory(prefix="workbench-survey-") as scratch:
            write_survey(scratch, survey, flawed=True)
            uploaded = upload_folder(storage, scratch, lambda p: layout.raw_key(org, project, flight, p.name), progress=False)
        echo(f"{org}/{project}: uploaded a synthetic survey ({uploaded.summary()})")
    if upto == "raw":
        return
    chain = run_pipeline(storage, org, project, client=client, progress=False, steps=("ingest",))
    _say(chain, echo)
    if upto == "run":
        record = latest(storage, org, project)
        if record is not None:
            echo(f"{org}/{project}: using run {record['run']} ({record['engine']}, notebook 03 made it)")
        else:
            _say(run_pipeline(storage, org, project, client=client, progress=False, steps=("process",)), echo)


def _say(chain: PipelineResult, echo: Callable[[str], object]) -> None:
    """Echo each step of ``chain``; raise the first failure."""
    for step in chain.steps:
        echo(f"{chain.org}/{chain.project}: {step.step} {step.status}: {step.detail}")
        if step.status == FAILED:
            raise WorkbenchError(f"{step.step} of {chain.org}/{chain.project} failed: {step.detail}")
