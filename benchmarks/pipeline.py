"""The pipeline on a real flight, from upload to map: cold, then again with nothing new.

brighton (18 DJI images from ``../shared/datasets``) is uploaded to a fresh embedded S3; then, each in its own
process (measured from outside: wall time and peak memory of the process tree), the pipeline runs cold
(ingest, quick-look, tiles, coverage, map page) and again with nothing new (every step "unchanged").
Prints the seconds of each step and the ratio of the unchanged run to the cold one (goal: under 5 %);
writes ``benchmarks/results/pipeline.json``. ``python benchmarks/pipeline.py``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure  # noqa: E402

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "brighton_beach" / "images"
ORG, PROJECT = "bench", "brighton"


def phase(settings_file: Path, out: Path, map_path: Path) -> None:
    """One pipeline run (in this process), its outcome written to ``out``."""
    from workbench.cluster import local_client
    from workbench.config import load_settings
    from workbench.pipeline import run_pipeline
    from workbench.storage import Storage

    storage = Storage(load_settings(config_file=settings_file))
    with local_client(n_workers=1, threads_per_worker=2, processes=False) as client:
        result = run_pipeline(storage, ORG, PROJECT, client=client, progress=False, map_path=map_path)
    out.write_text(json.dumps(result.table()))
    if not result.ok:
        raise SystemExit("; ".join(result.lines()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", nargs=3, metavar=("SETTINGS", "OUT", "MAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(*(Path(p) for p in args.phase))
        return
    if not DATASET.is_dir():
        raise SystemExit(f"skipped: {DATASET} is absent (the shared datasets are not mounted)")
    import yaml

    from workbench import layout
    from workbench.local import LocalS3
    from workbench.storage import Storage
    from workbench.transfer import upload_folder

    with tempfile.TemporaryDirectory(prefix="workbench-bench-pipeline-") as scratch:
        server = LocalS3(data_dir=Path(scratch) / "s3")
        settings = server.start()
        try:
            settings_file = Path(scratch) / "workbench.yaml"
            settings_file.write_text(yaml.safe_dump(settings.to_yaml_dict(include_secrets=True)))
            flight = layout.new_id()
            upload_folder(Storage(settings), DATASET, lambda p: layout.raw_key(ORG, PROJECT, flight, p.name), progress=False)
            results = {}
            for name in ("cold", "unchanged"):
                out = Path(scratch) / f"{name}.json"
                measured = measure([sys.executable, __file__, "--phase", str(settings_file), str(out),
                                    str(Path(scratch) / "map.html")])
                results[name] = {**measured, "steps": json.loads(out.read_text())}
        finally:
            server.stop()
    for name, result in results.items():
        steps = ", ".join(f"{s['step']} {s['status']} {s['seconds']:.1f} s" for s in result["steps"])
        print(f"{name:>9}: {result['wall_s']:5.1f} s wall (process), peak {result['peak_mib']:5.0f} MiB; {steps}")
    step_total = {name: sum(s["seconds"] for s in r["steps"]) for name, r in results.items()}
    ratio_steps = step_total["unchanged"] / step_total["cold"]
    ratio_wall = results["unchanged"]["wall_s"] / results["cold"]["wall_s"]
    print(f"unchanged / cold: {ratio_steps:.1%} of the steps' time ({step_total['unchanged']:.2f} s vs "
          f"{step_total['cold']:.1f} s; goal < 5 %), {ratio_wall:.1%} of the process wall time (imports included)")
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("pipeline.json").write_text(json.dumps(
        {"results": results, "ratio_steps": ratio_steps, "ratio_wall": ratio_wall}, indent=2))


if __name__ == "__main__":
    main()
