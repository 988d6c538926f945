"""The incremental pipeline: a cold run does every step, an unchanged run none, a new flight only what depends on it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from workbench import layout
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import EngineError, EngineOutput, latest
from workbench.pipeline import DONE, FAILED, SKIPPED, UNCHANGED, run_pipeline, state_key
from workbench.storage import Storage
from workbench.synthetic import Survey, write_survey
from workbench.transfer import upload_folder

ORG = "acme"


def _fly(storage: Storage, project: str, folder: Path, survey: Survey | None = None) -> str:
    survey = survey or Survey()
    write_survey(folder, survey)
    flight = layout.new_id(at=survey.start)
    upload_folder(storage, folder, lambda p: layout.raw_key(ORG, project, flight, p.name), progress=False)
    return flight


@pytest.fixture(scope="module")
def bucket(s3_server) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket=f"pipeline-{os.getpid()}"))
    storage.ensure_bucket()
    return storage


def _statuses(result) -> dict[str, str]:
    return {step.step: step.status for step in result.steps}


def test_cold_then_unchanged_then_a_new_flight(bucket: Storage, tmp_path: Path, dask_client) -> None:
    _fly(bucket, "north", tmp_path / "north")
    _fly(bucket, "south", tmp_path / "south")
    page = tmp_path / "map.html"
    cold = run_pipeline(bucket, ORG, "north", client=dask_client, progress=False, map_path=page)
    assert _statuses(cold) == dict.fromkeys(["ingest", "process", "tiles", "coverage", "map"], DONE) and cold.ok
    assert page.exists() and latest(bucket, ORG, "north")["run"] == cold.outcome("process").value.run
    south = run_pipeline(bucket, ORG, "south", client=dask_client, progress=False)
    assert _statuses(south)["coverage"] == DONE and _statuses(south)["map"] == SKIPPED
    manifest = bucket.head(f"parquet/images/{ORG}/north/manifest.parquet")

    again = run_pipeline(bucket, ORG, "north", client=dask_client, progress=False, map_path=page)
    assert _statuses(again) == dict.fromkeys(["ingest", "process", "tiles", "coverage", "map"], UNCHANGED)
    assert bucket.head(f"parquet/images/{ORG}/north/manifest.parquet").etag == manifest.etag  # nothing rewritten
    (key, built), (same_key, stored) = cold.outcome("tiles").value, again.outcome("tiles").value
    assert same_key == key and dataclasses.replace(stored, path=built.path) == built  # told from the stored archive
    assert again.outcome("coverage").value == cold.outcome("coverage").value and again.outcome("map").value == page

    _fly(bucket, "south", tmp_path / "south-2", Survey(lines=2, shots_per_line=3))  # a new flight of the other project
    changed = run_pipeline(bucket, ORG, "south", client=dask_client, progress=False)
    assert _statuses(changed) == {"ingest": DONE, "process": DONE, "tiles": DONE, "coverage": DONE, "map": SKIPPED}
    other = run_pipeline(bucket, ORG, "north", client=dask_client, progress=False, map_path=page)
    assert _statuses(other) == dict.fromkeys(["ingest", "process", "tiles", "coverage", "map"], UNCHANGED)
    state = json.loads(bucket.get_bytes(state_key(ORG, "north")))
    assert state["tiles"]["run"] == latest(bucket, ORG, "north")["run"]


class Failing(QuicklookEngine):
    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> EngineOutput:
        raise EngineError("the node ran out of memory")


def test_a_failed_step_stops_the_chain_and_leaves_latest(bucket: Storage, tmp_path: Path, dask_client) -> None:
    _fly(bucket, "east", tmp_path / "east")
    first = run_pipeline(bucket, ORG, "east", client=dask_client, progress=False)
    assert first.ok
    before = latest(bucket, ORG, "east")["run"]
    _fly(bucket, "east", tmp_path / "east-2", Survey(lines=2, shots_per_line=3))
    failed = run_pipeline(bucket, ORG, "east", engine=Failing(), client=dask_client, progress=False)
    assert not failed.ok
    assert _statuses(failed) == {"ingest": DONE, "process": FAILED, "tiles": SKIPPED, "coverage": SKIPPED, "map": SKIPPED}
    assert failed.outcome("process").detail == "the node ran out of memory"
    assert latest(bucket, ORG, "east")["run"] == before
    runs = [json.loads(bucket.get_bytes(i.key)) for i in bucket.list(layout.runs_prefix(ORG, "east")) if i.key.endswith("run.json")]
    assert sorted(r["status"] for r in runs) == ["completed", "failed"]


def test_unknown_steps_are_refused(bucket: Storage) -> None:
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="unknown pipeline step"):
        run_pipeline(bucket, ORG, "north", steps=["ingest", "publish"])


def test_a_wrong_engine_option_is_refused_before_any_step(bucket: Storage, tmp_path: Path) -> None:
    from workbench.errors import WorkbenchError
    from workbench.imagery.ingest import manifest_key

    _fly(bucket, "west", tmp_path / "west", Survey(lines=1, shots_per_line=3))
    with pytest.raises(WorkbenchError, match="resolution must be a number"):
        run_pipeline(bucket, ORG, "west", options={"resolution": "abc"})
    assert not bucket.exists(manifest_key(ORG, "west"))  # ingest never ran
