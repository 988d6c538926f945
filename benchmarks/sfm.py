"""The sfm engine on real flights, beside the quick-look (and ODM's fast-orthophoto when a node is given).

brighton (18 DJI images, 4000 x 2250) and seneca (14 senseFly images, 3600 x 2700) from ``../shared``, and
the synthetic survey (18 images, known geometry), are uploaded to a fresh embedded S3 and ingested once.
Then each engine runs on each flight in its own process (a local Dask cluster of 2 single-thread workers),
measured from outside: wall time, peak memory of the process and its workers (the S3 server excluded), and
from the run's report: images registered, reprojection error, GPS residual, seam misfit, and the sfm
engine's time per stage. Goals (2 cores): brighton under 3 minutes and 2 GiB; seam misfit under 0.3 m.

``python benchmarks/sfm.py [--node http://host:3000] [--flights brighton seneca synthetic] [--sizes 1600 2400]``
(``--sizes``: sfm again with other ``max_image_size`` values, the measurement behind the default of 2000 px)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from measure import measure  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
FLIGHTS = {"brighton": SHARED / "brighton_beach" / "images", "seneca": SHARED / "seneca" / "images", "synthetic": None}
BRIGHTON_GOALS = {"wall_s": 180, "peak_mib": 2048, "seam_m": 0.3}


def run_one(engine_name: str, project: str, settings_file: Path, out: Path, node: str | None, size: int) -> None:
    """One engine on one ingested project (in its own process); the run record goes to ``out``."""
    from workbench.cli import local_engine
    from workbench.cluster import local_client
    from workbench.config import load_settings
    from workbench.engines.cog import report
    from workbench.engines.runs import run_engine
    from workbench.storage import Storage

    storage = Storage(load_settings(config_file=settings_file))
    if engine_name == "odm":
        from workbench.engines.odm import OdmEngine

        engine: Any = OdmEngine(node or "", token=os.environ.get("WORKBENCH_NODE_TOKEN", ""), preset="fast-orthophoto")
    else:
        engine = local_engine(engine_name)
    client = local_client(n_workers=2, threads_per_worker=1)
    try:
        options = {"max_image_size": size} if engine_name == "sfm" and size else {}
        record = run_engine(storage, "bench", project, engine, options, client=client, progress=False, reporter=report,
                            force=True)
    finally:
        client.close()
    out.write_text(json.dumps({"status": record.status, "products": record.products, "skipped": record.skipped}, default=str))


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    quality = next((p.get("report", {}).get("quality", {}) for p in record["products"] if p["name"] == "ortho.tif"), {})
    solved = quality.get("reconstruction", {})
    seams = quality.get("seams") or {}
    return {"registered": solved.get("images_registered", quality.get("images_placed")),
            "given": quality.get("images_given"), "reprojection_px": solved.get("reprojection_error_px"),
            "gps_rms_m": (solved.get("gps_residual_m") or {}).get("rms_horizontal"),
            "seam_median_m": seams.get("median_m"), "seam_p90_m": seams.get("p90_m"), "stages_s": solved.get("stages"),
            "height_check": quality.get("height_check"), "skipped": record["skipped"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", help="a NodeODM/ClusterODM URL: also run odm fast-orthophoto")
    parser.add_argument("--flights", nargs="+", default=list(FLIGHTS), choices=list(FLIGHTS))
    parser.add_argument("--sizes", nargs="*", type=int, default=[],
                        help="also run sfm with these max_image_size values (the reduction's measurement)")
    parser.add_argument("--run", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        engine_name, project, settings_file, out, size = args.run
        run_one(engine_name, project, Path(settings_file), Path(out), args.node, int(size))
        return
    import yaml

    from workbench import layout
    from workbench.cluster import local_client
    from workbench.imagery.ingest import ingest
    from workbench.local import LocalS3
    from workbench.storage import Storage
    from workbench.synthetic import write_survey
    from workbench.transfer import upload_folder

    runs = [("quicklook", 0), ("sfm", 0), *[("sfm", size) for size in args.sizes], *([("odm", 0)] if args.node else [])]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="workbench-bench-sfm-") as scratch:
        server = LocalS3(data_dir=Path(scratch) / "s3")
        settings = server.start()
        try:
            storage = Storage(settings)
            settings_file = Path(scratch) / "workbench.yaml"
            settings_file.write_text(yaml.safe_dump(settings.to_yaml_dict(include_secrets=True)))
            client = local_client(n_workers=2, threads_per_worker=1)
            for flight in args.flights:
                folder = FLIGHTS[flight]
                if folder is None:
                    folder = Path(scratch) / "synthetic"
                    write_survey(folder)
                elif not folder.is_dir():
                    print(f"{flight}: skipped ({folder} is absent)")
                    continue
                flight_id = layout.new_id()
                upload_folder(storage, folder, lambda p, f=flight_id, n=flight: layout.raw_key("bench", n, f, p.name),
                              progress=False)
                ingest(storage, "bench", flight, client=client, progress=False)
            client.close()
            for flight in args.flights:
                if FLIGHTS[flight] is not None and not FLIGHTS[flight].is_dir():
                    continue
                for engine_name, size in runs:
                    engine = f"{engine_name}@{size}" if size else engine_name
                    out = Path(scratch) / f"{flight}-{engine}.json"
                    command = [sys.executable, __file__, "--run", engine_name, flight, str(settings_file), str(out), str(size)]
                    measured = measure(command + (["--node", args.node] if args.node else []))
                    record = json.loads(out.read_text())
                    results[f"{flight}/{engine}"] = {**measured, **_summary(record)}
                    row = results[f"{flight}/{engine}"]
                    seam = f"{row['seam_median_m']:.3f} m median, {row['seam_p90_m']:.3f} m p90" if row["seam_median_m"] is not None else "n/a"
                    extra = (f", reprojection {row['reprojection_px']:.2f} px, GPS rms {row['gps_rms_m']:.2f} m, "
                             f"stages {row['stages_s']}" if row["reprojection_px"] is not None else "")
                    print(f"{flight:>9} {engine:>9}: {row['wall_s']:6.1f} s, peak {row['peak_mib']:6.0f} MiB, "
                          f"{row['registered']}/{row['given']} images, seams {seam}{extra}", flush=True)
        finally:
            server.stop()
    for flight in args.flights:
        sfm, quick = results.get(f"{flight}/sfm"), results.get(f"{flight}/quicklook")
        if sfm and quick and sfm["seam_median_m"] and quick["seam_median_m"]:
            print(f"{flight}: sfm seam misfit / quick-look's = {sfm['seam_median_m'] / quick['seam_median_m']:.3f}; "
                  f"sfm took {sfm['wall_s'] / quick['wall_s']:.1f}x its time")
    brighton = results.get("brighton/sfm")
    if brighton:
        print(f"brighton goals: {brighton['wall_s']:.0f} s (< {BRIGHTON_GOALS['wall_s']}), {brighton['peak_mib']:.0f} MiB "
              f"(< {BRIGHTON_GOALS['peak_mib']}), seams {brighton['seam_median_m']} m (< {BRIGHTON_GOALS['seam_m']})")
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("sfm.json").write_text(
        json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
