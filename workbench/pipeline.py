"""One incremental chain for a project: ingest -> process -> tiles -> coverage -> map page.

Each step runs only when its inputs changed, and says so:

* **ingest** reads only new or changed images; the manifest is rewritten only when its content changes;
* **process** runs when the usable inputs or options changed (the run record's fingerprint knows);
* **tiles** runs when the project's latest run is not the one its newest PMTiles came from;
* **coverage** runs when a table of any project of the org is newer than the org's newest coverage archive;
* **map** writes the page when the tiles or the coverage it shows changed, or it is missing.

What each step last did is kept in ``projects/{org}/{project}/pipeline.json``. A failed step stops the
chain: it is reported with its one-line reason, the later steps are ``skipped``, and nothing already
published changes (a failed processing run never moves ``latest``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench import layout
from workbench.engines.runs import Engine, latest, run_engine
from workbench.errors import NotFoundError, WorkbenchError
from workbench.policy.generations import newest_generation
from workbench.storage import Storage

STEPS = ("ingest", "process", "tiles", "coverage", "map")
DONE, UNCHANGED, FAILED, SKIPPED = "done", "unchanged", "failed", "skipped"


@dataclasses.dataclass
class StepOutcome:
    """What one step did: ``done``, ``unchanged``, ``failed`` (with the reason) or ``skipped``.

    ``value`` is of the same kind whether the step ran or found nothing to do: ingest an ``IngestResult``,
    process a ``RunRecord``, tiles ``(key, TileSummary)``, coverage the archive's key, map the page's path."""

    step: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    value: Any = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class PipelineResult:
    """The outcome of every step, in order."""

    org: str
    project: str
    steps: list[StepOutcome]

    @property
    def ok(self) -> bool:
        """Whether no step failed."""
        return all(step.status != FAILED for step in self.steps)

    def outcome(self, step: str) -> StepOutcome:
        """The outcome of ``step``."""
        return next(s for s in self.steps if s.step == step)

    def table(self) -> list[dict[str, Any]]:
        """Rows for a summary table."""
        return [{"step": s.step, "status": s.status, "seconds": round(s.seconds, 1), "detail": s.detail} for s in self.steps]

    def lines(self) -> list[str]:
        """The outcome as text, one line a step."""
        return [f"{s.step:<9} {s.status:<9} {s.seconds:6.1f} s  {s.detail}" for s in self.steps]


def state_key(org: str, project: str) -> str:
    """Where the pipeline keeps what each step last did."""
    return layout.project_prefix(org, project) + "pipeline.json"


def _read_state(storage: Storage, org: str, project: str) -> dict[str, Any]:
    try:
        return json.loads(storage.get_bytes(state_key(org, project)))
    except NotFoundError:
        return {}
    except ValueError:
        return {}  # unreadable state: every step checks its inputs again


def _coverage_is_current(storage: Storage, org: str) -> str | None:
    """The org's newest coverage archive when it is newer than every table it is built from, else None."""
    newest = newest_generation(storage, layout.pmtiles_prefix("coverage", org))
    if newest is None:
        return None
    inputs = [info.last_modified for dataset in ("coverage", "images")
              for info in storage.list(layout.parquet_prefix(dataset, org)) if info.last_modified]
    built = storage.head(newest).last_modified
    return newest if built and inputs and built >= max(inputs) else None


def run_pipeline(
    storage: Storage,
    org: str,
    project: str,
    *,
    engine: Engine | None = None,
    options: dict[str, Any] | None = None,
    client: Any = None,
    progress: bool = True,
    map_path: str | Path | None = None,
    embed_map: bool = False,
    steps: Sequence[str] = STEPS,
    ingest_options: dict[str, Any] | None = None,
    echo: Callable[[str], object] = lambda line: None,
) -> PipelineResult:
    """Run ``steps`` of the chain for ``org/project`` (see the module docstring); never raises for a step's failure.

    ``engine`` defaults to the quick-look engine; ``map_path`` names the page the ``map`` step writes (the
    step is skipped without it). ``echo`` receives a line as each step ends.
    """
    from workbench.coverage import build_coverage
    from workbench.engines.cog import report
    from workbench.engines.quicklook import QuicklookEngine
    from workbench.imagery.ingest import ingest
    from workbench.maps import write_map
    from workbench.tiles import stored_summary, tile_run

    layout.project_prefix(org, project)  # validates before any request
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise WorkbenchError(f"unknown pipeline step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}")
    engine = engine or QuicklookEngine()
    if "process" in steps:
        engine.check_options(dict(options or {}))  # a wrong option is refused before any step writes anything
    state = _read_state(storage, org, project)
    outcomes: list[StepOutcome] = []

    def do_ingest() -> StepOutcome:
        result = ingest(storage, org, project, client=client, progress=progress, **(ingest_options or {}))
        status = DONE if result.changed else UNCHANGED
        return StepOutcome("ingest", status, result.summary().splitlines()[0], value=result)

    def do_process() -> StepOutcome:
        record = run_engine(storage, org, project, engine, options, client=client, progress=progress, reporter=report)
        if record.reused:
            return StepOutcome("process", UNCHANGED, f"run {record.run} ({record.engine}): same inputs and options", value=record)
        return StepOutcome("process", DONE, f"run {record.run} ({record.engine}), {len(record.inputs)} images", value=record)

    def do_tiles() -> StepOutcome:
        record = latest(storage, org, project)
        if record is None:
            raise WorkbenchError(f"no completed processing run for {org}/{project}")
        previous = state.get("tiles", {})
        if previous.get("run") == record["run"] and previous.get("key") and storage.exists(previous["key"]):
            return StepOutcome("tiles", UNCHANGED, f"{previous['key']} is from run {record['run']}",
                               value=(previous["key"], stored_summary(storage, previous["key"])))
        key, summary, _ = tile_run(storage, org, project, client=client, progress=progress)
        state["tiles"] = {"run": record["run"], "key": key}
        return StepOutcome("tiles", DONE, f"{summary.tiles} tiles, zoom {summary.minzoom}-{summary.maxzoom} -> {key}",
                           value=(key, summary))

    def do_coverage() -> StepOutcome:
        current = _coverage_is_current(storage, org)
        if current:
            state["coverage"] = {"key": current}
            return StepOutcome("coverage", UNCHANGED, f"{current} is newer than every project's tables", value=current)
        summary = build_coverage(storage, org)
        state["coverage"] = {"key": summary.key}
        return StepOutcome("coverage", DONE, f"{summary.footprints} footprints, {summary.flights} flights -> {summary.key}",
                           value=summary.key)

    def do_map() -> StepOutcome:
        if map_path is None:
            return StepOutcome("map", SKIPPED, "no page asked for (map_path)")
        path = Path(map_path)
        shown = {"tiles": state.get("tiles", {}).get("key"), "coverage": state.get("coverage", {}).get("key"),
                 "path": str(path.resolve()), "embed": embed_map}
        if state.get("map") == shown and path.exists():
            return StepOutcome("map", UNCHANGED, f"{path} shows the current tiles and coverage", value=path)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = write_map(storage, org, project, path, embed=embed_map)
        state["map"] = shown
        return StepOutcome("map", DONE, f"{written}", value=written)

    actions = {"ingest": do_ingest, "process": do_process, "tiles": do_tiles, "coverage": do_coverage, "map": do_map}
    failed = False
    for name in STEPS:
        if name not in steps:
            continue
        if failed:
            outcomes.append(StepOutcome(name, SKIPPED, "an earlier step failed"))
            continue
        started = time.perf_counter()
        try:
            outcome = actions[name]()
        except WorkbenchError as exc:
            outcome = StepOutcome(name, FAILED, str(exc).splitlines()[0])
            failed = True
        outcome.seconds = time.perf_counter() - started
        outcomes.append(outcome)
        echo(f"{outcome.step:<9} {outcome.status:<9} {outcome.detail}")
    storage.put_bytes(state_key(org, project), json.dumps(state, indent=2).encode(), content_type="application/json")
    return PipelineResult(org, project, outcomes)
