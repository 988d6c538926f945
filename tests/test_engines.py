"""Engines: run records, atomic publishing, reruns, and the quicklook orthomosaic against the known truth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from workbench import layout
from workbench.engines.cog import report
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import EngineError, EngineOutput, RunRecord, latest, run_engine
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.storage import Storage
from workbench.synthetic import Survey, mosaic_offset, write_survey
from workbench.transfer import upload_folder

SURVEY = Survey()


@pytest.fixture(scope="module")
def project(s3_server, tmp_path_factory, dask_client) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket="engines"))
    storage.ensure_bucket()
    folder = tmp_path_factory.mktemp("survey")
    write_survey(folder, SURVEY, flawed=True)
    flight = layout.new_id(SURVEY.start)
    upload_folder(storage, folder, lambda p: layout.raw_key("org", "site", flight, p.name), progress=False)
    ingest(storage, "org", "site", client=dask_client, progress=False)
    return storage


@pytest.fixture(scope="module")
def quicklook_run(project: Storage, dask_client) -> RunRecord:
    return run_engine(project, "org", "site", QuicklookEngine(), client=dask_client, progress=False, reporter=report)


def test_quicklook_publishes_a_valid_cog_with_a_report(project: Storage, quicklook_run: RunRecord, tmp_path: Path) -> None:
    assert quicklook_run.status == "completed" and len(quicklook_run.inputs) == 18  # the 2 flawed images excluded
    [product] = quicklook_run.products
    assert product["name"] == "ortho.tif"
    local = tmp_path / "ortho.tif"
    local.write_bytes(project.get_bytes(product["key"]))
    valid, errors, _ = cog_validate(str(local))
    assert valid, errors
    with rasterio.open(local) as src:
        assert src.crs.to_epsg() == 32737  # native UTM, not web mercator
        assert src.count == 4 and src.colorinterp[-1].name == "alpha" and src.overviews(1)
        assert src.res[0] == pytest.approx(SURVEY.camera.gsd(SURVEY.altitude))
    stored_report = json.loads(project.get_bytes(product["key"] + ".report.json"))
    assert stored_report["crs"] == "EPSG:32737" and stored_report["coverage_m2"] > 15000
    seams = stored_report["quality"]["seams"]  # the synthetic cameras are exact: overlapping images agree
    assert seams["pairs"] >= 15 and seams["unmeasured_pairs"] == 0
    assert seams["median_m"] < 0.5 * SURVEY.camera.gsd(SURVEY.altitude) and seams["p90_m"] < SURVEY.camera.gsd(SURVEY.altitude)


def test_quicklook_geometric_error_against_the_truth(project: Storage, quicklook_run: RunRecord, tmp_path: Path) -> None:
    local = tmp_path / "ortho.tif"
    local.write_bytes(project.get_bytes(quicklook_run.products[0]["key"]))
    east, north = mosaic_offset(local, SURVEY)
    gsd = SURVEY.camera.gsd(SURVEY.altitude)
    assert abs(east) <= gsd and abs(north) <= gsd  # within one pixel (7.5 cm) of where the scene really is


def test_run_record_and_latest_pointer(project: Storage, quicklook_run: RunRecord) -> None:
    record = json.loads(project.get_bytes(layout.product_key("org", "site", quicklook_run.run, "run.json")))
    assert record["status"] == "completed" and record["engine"] == "quicklook"
    assert {i["key"] for i in record["inputs"]} and all(i["etag"] for i in record["inputs"])
    assert record["versions"]["gdal"] and record["seconds"] > 0 and record["products"][0]["size"] > 0
    assert latest(project, "org", "site")["run"] == quicklook_run.run


def test_same_inputs_and_options_are_not_run_again(project: Storage, quicklook_run: RunRecord, dask_client) -> None:
    again = run_engine(project, "org", "site", QuicklookEngine(), client=dask_client, progress=False)
    assert again.reused and again.run == quicklook_run.run
    forced = run_engine(project, "org", "site", QuicklookEngine(), client=dask_client, progress=False, force=True)
    assert not forced.reused and forced.run != quicklook_run.run and forced.status == "completed"
    assert latest(project, "org", "site")["run"] == forced.run


class Exploding(QuicklookEngine):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> EngineOutput:
        (workdir / "half.tif").write_bytes(b"partial")
        raise self.error


@pytest.mark.parametrize(("error", "status"), [(EngineError("boom", ["line 1", "last line"]), "failed"),
                                               (KeyboardInterrupt(), "canceled")])
def test_failed_or_canceled_runs_leave_latest_untouched(project: Storage, quicklook_run: RunRecord, error, status) -> None:
    before = latest(project, "org", "site")["run"]
    with pytest.raises(type(error)):
        run_engine(project, "org", "site", Exploding(error), {"resolution": 0.5}, progress=False)
    runs = layout.runs_between(project, "org", "site", layout.id_time(before), layout.id_time(layout.new_id()))
    failed = json.loads(project.get_bytes(layout.product_key("org", "site", runs[-1], "run.json")))
    assert failed["status"] == status and failed["error"]
    if status == "failed":
        assert failed["output_tail"] == ["line 1", "last line"]
    assert not any(o.key.endswith("half.tif") for o in project.list(layout.runs_prefix("org", "site")))
    assert latest(project, "org", "site")["run"] == before


def test_a_product_that_does_not_verify_fails_the_run(project: Storage, quicklook_run: RunRecord,
                                                      monkeypatch: pytest.MonkeyPatch, dask_client) -> None:
    """A product whose stored checksum differs from what was sent fails the run; latest does not move."""
    from workbench.errors import IntegrityError

    before = latest(project, "org", "site")["run"]
    head = Storage.head

    def corrupted(self: Storage, key: str):  # type: ignore[no-untyped-def]
        info = head(self, key)
        return dataclasses.replace(info, etag="0" * 32) if key.endswith("ortho.tif") else info

    monkeypatch.setattr(Storage, "head", corrupted)
    with pytest.raises(IntegrityError, match="did not verify"):
        run_engine(project, "org", "site", QuicklookEngine(), {"resolution": 0.5}, client=dask_client, progress=False,
                   force=True)
    assert latest(project, "org", "site")["run"] == before


def test_bad_options_and_too_few_images(project: Storage, s3_server) -> None:
    with pytest.raises(WorkbenchError, match="unknown quicklook option 'colour'"):
        run_engine(project, "org", "site", QuicklookEngine(), {"colour": "red"}, progress=False)
    with pytest.raises(WorkbenchError, match="must be a number"):
        run_engine(project, "org", "site", QuicklookEngine(), {"resolution": "fine"}, progress=False)
    with pytest.raises(WorkbenchError, match="no manifest"):
        run_engine(project, "org", "elsewhere", QuicklookEngine(), progress=False)
    with pytest.raises(WorkbenchError, match="needs at least 50"):
        run_engine(project, "org", "site", QuicklookEngine(), progress=False, min_images=50)


def test_images_without_gps_cannot_be_placed(s3_server, tmp_path: Path, dask_client) -> None:
    import io

    from PIL import Image

    storage = Storage(s3_server.settings.with_(bucket="engines-nogps"))
    storage.ensure_bucket()
    flight = layout.new_id()
    for i in range(3):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (i * 40, 100, 100)).save(buffer, "JPEG")
        storage.put_bytes(layout.raw_key("org", "nogps", flight, f"IMG_{i}.JPG"), buffer.getvalue())
    ingest(storage, "org", "nogps", client=dask_client, progress=False)
    with pytest.raises(EngineError, match="cannot place any"):
        run_engine(storage, "org", "nogps", QuicklookEngine(), include_flagged=True, client=dask_client, progress=False)
    [run] = layout.runs_between(storage, "org", "nogps", layout.id_time(flight), layout.id_time(layout.new_id()))
    assert json.loads(storage.get_bytes(layout.product_key("org", "nogps", run, "run.json")))["status"] == "failed"
    assert latest(storage, "org", "nogps") is None


def test_a_run_that_died_after_publishing_is_reconciled_from_the_bucket(project: Storage, quicklook_run: RunRecord) -> None:
    from workbench.engines.runs import reconcile

    run = layout.new_id()
    record = {**json.loads(project.get_bytes(quicklook_run.key())), "run": run, "status": "running", "products": [],
              "finished_at": None}
    project.put_bytes(layout.product_key("org", "site", run, "run.json"), json.dumps(record).encode())
    assert reconcile(project, "org", "site", run)["status"] == "running"  # nothing stored yet: still running
    project.copy(quicklook_run.products[0]["key"], layout.product_key("org", "site", run, "ortho.tif"))
    project.copy(quicklook_run.products[0]["key"] + ".report.json", layout.product_key("org", "site", run, "ortho.tif.report.json"))
    settled = reconcile(project, "org", "site", run)
    assert settled["status"] == "completed" and [p["name"] for p in settled["products"]] == ["ortho.tif"]
    assert latest(project, "org", "site")["run"] == run


def test_every_run_carries_a_cost_receipt(project: Storage, quicklook_run: RunRecord) -> None:
    from workbench.costs.pricebook import load
    from workbench.costs.receipt import receipt

    cost = json.loads(project.get_bytes(layout.product_key("org", "site", quicklook_run.run, "cost.json")))
    lines = {line["item"]: line for line in cost["lines"]}
    assert cost["run"] == quicklook_run.run and cost["status"] == "completed" and cost["price_book_as_of"]
    assert lines["compute"]["usd"] == 0 and "machine of your own" in lines["compute"]["unit"]
    product_gb = sum(p["size"] for p in quicklook_run.products) / 2**30
    assert lines["storage added"]["quantity"] == pytest.approx(product_gb, abs=1e-6)
    record = json.loads(project.get_bytes(layout.product_key("org", "site", quicklook_run.run, "run.json")))
    as_aws = Storage(project.settings.with_(profile="aws"))
    priced = {line["item"]: line for line in receipt(as_aws, record, load(warn=False), instance_type="r7i.8xlarge")["lines"]}
    assert priced["compute"]["usd"] == pytest.approx(record["seconds"] / 3600 * 2.1168, abs=1e-6)
    assert priced["storage added"]["usd"] == pytest.approx(product_gb * 0.023, abs=1e-6)
    assert "18 reads" in priced["requests"]["note"]
    assert priced["transfer"]["usd"] == 0  # same region as the bucket
    assert priced["compute"]["as_of"] == "2026-01-19" and "karpenter" in priced["compute"]["source"]
    outside = {line["item"]: line for line in receipt(as_aws, record, load(warn=False))["lines"]}
    input_gb = sum(info.size for info in project.list(layout.flights_prefix("org", "site"))
                   if info.key in {i["key"] for i in record["inputs"]}) / 2**30
    assert input_gb > 0 and outside["transfer"]["quantity"] == pytest.approx(input_gb, abs=1e-6)
    assert outside["transfer"]["usd"] == pytest.approx(input_gb * 0.09, abs=1e-6)  # read from AWS by your machine
