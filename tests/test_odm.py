"""The odm engine through pyodm against a NodeODM stand-in that serves real NodeODM outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rio_cogeo.cogeo import cog_validate

from tests.nodeodm_fake import FakeNodeODM
from workbench import layout
from workbench.engines.cog import report
from workbench.engines.odm import NodeClient, OdmEngine
from workbench.engines.runs import EngineError, latest, run_engine
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, write_survey
from workbench.transfer import upload_folder

OUTPUTS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "odm_samples" / "nodeodm_outputs"


@pytest.fixture(scope="module")
def outputs_dir() -> Path:
    if not OUTPUTS.is_dir():
        pytest.skip(f"real NodeODM outputs not available: {OUTPUTS} is absent")
    return OUTPUTS


@pytest.fixture(scope="module")
def project(s3_server, tmp_path_factory, dask_client) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket="odm-engine"))
    storage.ensure_bucket()
    folder = tmp_path_factory.mktemp("survey")
    write_survey(folder, Survey(lines=2, shots_per_line=3, camera=Camera(width=400, height=300)))
    flight = layout.new_id()
    upload_folder(storage, folder, lambda p: layout.raw_key("org", "odm", flight, p.name), progress=False)
    ingest(storage, "org", "odm", client=dask_client, progress=False)
    return storage


def engine(url: str, **kwargs) -> OdmEngine:
    return OdmEngine(url, poll_seconds=0.05, retry_seconds=0.05, **kwargs)


def last_record(storage: Storage) -> dict:
    runs = layout.runs_between(storage, "org", "odm", layout.id_time(layout.new_id()).replace(year=2000),
                               layout.id_time(layout.new_id()))
    return json.loads(storage.get_bytes(layout.product_key("org", "odm", runs[-1], "run.json")))


def test_success_publishes_cogs_and_the_point_cloud(project: Storage, outputs_dir: Path, tmp_path: Path) -> None:
    with FakeNodeODM(outputs_dir, token="s3cret") as url:
        odm = engine(url, token="s3cret", preset="high", parallel_uploads=2)
        record = run_engine(project, "org", "odm", odm, {"orthophoto-resolution": 5}, progress=False, reporter=report)
    assert record.status == "completed" and record.versions["node"] == "2.2.3"
    assert record.options["dtm"] is True and record.options["orthophoto-resolution"] == 5.0
    names = {p["name"] for p in record.products}
    assert names == {"ortho.tif", "dsm.tif", "dtm.tif", "points.laz"}
    ortho = next(p for p in record.products if p["name"] == "ortho.tif")
    local = tmp_path / "ortho.tif"
    local.write_bytes(project.get_bytes(ortho["key"]))
    assert cog_validate(str(local))[0]
    assert ortho["report"]["crs"].startswith("EPSG:326") and ortho["report"]["width"] == 212
    assert latest(project, "org", "odm")["run"] == record.run
    assert "s3cret" not in json.dumps(last_record(project))
    images = 6
    assert odm.peak_upload_bytes <= 2 * max(i.size for i in project.list(layout.flights_prefix("org", "odm")))
    assert len(record.inputs) == images


def test_dropped_uploads_are_retried(project: Storage, outputs_dir: Path) -> None:
    with FakeNodeODM(outputs_dir, drop_uploads=True) as url:
        record = run_engine(project, "org", "odm", engine(url, preset="standard"), progress=False)
    assert record.status == "completed" and not record.reused
    assert {p["name"] for p in record.products} == {"ortho.tif", "dsm.tif", "points.laz"}  # standard: a DSM, no DTM


@pytest.mark.parametrize(
    ("node_kwargs", "engine_kwargs", "options", "message"),
    [
        ({"token": "right"}, {"token": "wrong"}, {}, "Invalid authentication token"),
        ({}, {}, {"fast_orthophoto": True}, "does not know option 'fast_orthophoto' (did you mean 'fast-orthophoto'?)"),
        ({}, {}, {"feature-quality": "extreme"}, "must be one of ultra, high, medium, low, lowest"),
        ({}, {}, {"min-num-features": "many"}, "must be a number"),
    ],
)
def test_bad_node_settings_fail_clearly_with_a_record(project: Storage, outputs_dir: Path, node_kwargs, engine_kwargs,
                                                      options, message) -> None:
    before = latest(project, "org", "odm")
    with FakeNodeODM(outputs_dir, **node_kwargs) as url:
        with pytest.raises(WorkbenchError) as caught:
            run_engine(project, "org", "odm", engine(url, **engine_kwargs), options, progress=False)
    assert message in str(caught.value)
    assert last_record(project)["status"] == "failed"
    assert latest(project, "org", "odm") == before


def test_a_node_that_is_down(project: Storage) -> None:
    with pytest.raises(EngineError, match="cannot use the node at http://127.0.0.1:9"):
        run_engine(project, "org", "odm", OdmEngine("http://127.0.0.1:9", poll_seconds=0.05), progress=False)
    assert last_record(project)["status"] == "failed"


def test_a_busy_node_that_answers_late_does_not_fail_the_run(project: Storage, outputs_dir: Path) -> None:
    with FakeNodeODM(outputs_dir, stalled_polls=3, stall_seconds=1.0) as url:
        record = run_engine(project, "org", "odm", engine(url, timeout=0.4), {"min-num-features": 8000}, progress=False)
    assert record.status == "completed"
    with FakeNodeODM(outputs_dir, stalled_polls=3, stall_seconds=1.0) as url:
        with pytest.raises(EngineError, match="stopped answering"):
            run_engine(project, "org", "odm", engine(url, timeout=0.4, max_poll_failures=1), {"min-num-features": 7000},
                       progress=False)


def test_nodeodm_failure_keeps_its_last_output_lines(project: Storage, outputs_dir: Path) -> None:
    before = latest(project, "org", "odm")
    with FakeNodeODM(outputs_dir, fail_tasks=True) as url:
        with pytest.raises(EngineError, match="failed"):
            run_engine(project, "org", "odm", engine(url, preset="high"), progress=False)
    record = last_record(project)
    assert record["status"] == "failed" and any("Not enough features" in line for line in record["output_tail"])
    assert latest(project, "org", "odm") == before


class CancelledWhileProcessing(OdmEngine):
    def _wait(self, task, progress: bool) -> None:
        raise KeyboardInterrupt


def test_cancel_cancels_the_node_task(project: Storage, outputs_dir: Path) -> None:
    before = latest(project, "org", "odm")
    node = FakeNodeODM(outputs_dir)
    with node as url:
        with pytest.raises(KeyboardInterrupt):
            run_engine(project, "org", "odm", CancelledWhileProcessing(url, poll_seconds=0.05), {"dsm": True},
                       progress=False)
    assert [t["status"] for t in node.tasks.values()] == [50]
    assert last_record(project)["status"] == "canceled"
    assert latest(project, "org", "odm") == before


def test_node_urls_never_share_a_token() -> None:
    with_token = NodeClient("http://node-a.example:3000", token="SECRET_A")
    without = NodeClient("https://node-b.example:8443/odm")
    assert "token=SECRET_A" in with_token.url("/info")
    assert without.url("/info", {"with_output": 0}) == "https://node-b.example:8443/odm/info?with_output=0"
    assert "SECRET_A" not in without.url("/info") and "SECRET_A" not in with_token.public_url()
    with pytest.raises(WorkbenchError, match="http"):
        NodeClient("ftp://node")
    with pytest.raises(WorkbenchError, match="unknown preset"):
        OdmEngine("http://127.0.0.1:9", preset="turbo")
