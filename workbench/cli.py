"""``workbench``: thin commands over the library. User errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from workbench import layout, policy
from workbench.analysis.commands import add_commands as add_analysis_commands
from workbench.cluster import quiet_shutdown
from workbench.config import load_settings
from workbench.costs.commands import add_commands as add_cost_commands
from workbench.errors import WorkbenchError
from workbench.local import data_folder, leave, live_leases, running_state, shared_server, stop_server, write_private
from workbench.presign import Presigner
from workbench.redact import redact
from workbench.storage import Storage
from workbench.transfer import upload_folder

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def _storage(args: argparse.Namespace) -> Storage:
    settings = load_settings(profile=args.profile, config_file=args.config, bucket=args.bucket,
                             endpoint=args.endpoint, region=args.region, timeout=args.timeout)
    return Storage(settings)


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# -- commands ---------------------------------------------------------------------------------------


def _data_dir(args: argparse.Namespace) -> Path:
    return data_folder(args.data)


def cmd_s3_serve(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    settings, started = shared_server(data, bucket=args.serve_bucket, port=args.port)
    config_file = data / "workbench.yaml"
    write_private(config_file, yaml.safe_dump(settings.to_yaml_dict(include_secrets=True), sort_keys=False))
    print(f"embedded S3 {'on' if started else 'already running on'} {settings.endpoint} "
          f"(bucket {settings.bucket}, data in {data})")
    print(f"settings with credentials (mode 0600): {config_file}")
    print(f"  export WORKBENCH_CONFIG={config_file}")
    print("press Ctrl+C to stop", flush=True)
    try:
        _run_until_stopped(data)
    finally:
        others = leave(data)
        print(f"embedded S3 left running: {len(others)} other process(es) use it (workbench s3 stop ends it)" if others
              else "embedded S3 stopped")
    return 0


def cmd_s3_status(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    state = running_state(data)
    if state is None:
        raise WorkbenchError(f"no embedded S3 runs for {data} (start one with `workbench s3 serve --data {data}`)")
    users = live_leases(data)
    print(f"embedded S3 on {state['endpoint']} (bucket {state['bucket']}, pid {state['pid']}, data in {data})")
    print(f"  used by {len(users)} process(es): {', '.join(map(str, users)) or 'none (it stops in a few seconds)'}")
    print(f"  export WORKBENCH_CONFIG={data / 'workbench.yaml'}" if (data / "workbench.yaml").is_file() else
          "  (no workbench.yaml: `workbench s3 serve` writes one)")
    return 0


def cmd_s3_stop(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    state = stop_server(data)
    print(f"stopped the embedded S3 on {state['endpoint']} (data kept in {data})" if state else
          f"no embedded S3 runs for {data}")
    return 0


def _run_until_stopped(data: Path) -> None:
    """Wait for Ctrl+C or SIGTERM, even where SIGINT was ignored when this process started (background jobs
    of a non-interactive shell inherit an ignored SIGINT); fail if the embedded S3 of ``data`` stops meanwhile."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    while not stop.wait(1.0):
        if running_state(data) is None:
            raise WorkbenchError(f"the embedded S3 server stopped unexpectedly; see {data / 'weed.log'}")


def cmd_upload(args: argparse.Namespace) -> int:
    flight = layout.check_id(args.flight, "flight") if args.flight else layout.new_id()
    layout.flights_prefix(args.org, args.project)  # validates org and project before any request
    storage = _storage(args)
    report = upload_folder(
        storage, args.folder, lambda p: layout.raw_key(args.org, args.project, flight, p.name),
        workers=args.workers, progress=not args.no_progress,
    )
    print(f"flight {flight}: {report.summary()}")
    print(f"  {storage.url(layout.flights_prefix(args.org, args.project) + flight + '/')}")
    for path in report.ignored:
        print(f"  ignored (not an image): {path}")
    for path, reason in report.failed:
        print(f"  FAILED {path}: {reason}", file=sys.stderr)
    return EXIT_USER_ERROR if report.failed else 0


@contextlib.contextmanager
def _scheduler_client(address: str) -> Iterator[Any]:
    """A client of the scheduler at ``address``, closed afterwards; None for "local" (started only if needed)."""
    from workbench.cluster import get_client

    client = None if address == "local" else get_client(address)
    try:
        yield client
    finally:
        if client is not None:
            client.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    from workbench.imagery.ground import HeightOptions
    from workbench.imagery.ingest import ingest

    layout.flights_prefix(args.org, args.project)  # validates org and project before any request
    heights = HeightOptions(agl=args.agl, ground_elevation=args.ground_elevation, dem=args.dem)
    storage = _storage(args)
    with _scheduler_client(args.cluster) as client:
        result = ingest(storage, args.org, args.project, client=client, workers=args.workers, heights=heights,
                        pixels=not args.no_pixels, batch_size=args.batch_size, progress=not args.no_progress)
    print(result.summary())
    for row in result.flagged:
        print(f"  {row['name']} ({row['flight']}): {'; '.join(row['reasons'])}")
    print(f"manifest: {storage.url(result.manifest_key)}")
    print(f"coverage: {storage.url(result.coverage_key)}")
    return 0


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise WorkbenchError(f"option {pair!r} must look like name=value")
        try:
            options[name] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            problem = str(getattr(exc, "problem", "") or exc).splitlines()[0]
            raise WorkbenchError(f"option {pair!r}: the value is not valid ({problem}); quote text values") from None
    return options


def local_engine(name: str) -> Any:
    """An engine that needs no server: ``quicklook`` or ``sfm``."""
    if name == "sfm":
        from workbench.engines.sfm import SfmEngine

        return SfmEngine()
    from workbench.engines.quicklook import QuicklookEngine

    return QuicklookEngine()


def _engine(args: argparse.Namespace) -> Any:
    """The processing engine ``--engine`` (and ``--node``, ``--preset``) name."""
    if args.engine == "odm":
        from workbench.engines.odm import OdmEngine

        if not args.node:
            raise WorkbenchError("the odm engine needs --node http(s)://host:port (token: $WORKBENCH_NODE_TOKEN)")
        return OdmEngine(args.node, token=os.environ.get("WORKBENCH_NODE_TOKEN", ""), preset=args.preset)
    return local_engine(args.engine)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from workbench.pipeline import run_pipeline

    layout.project_prefix(args.org, args.project)
    options = _parse_options(args.option)
    engine = _engine(args)
    storage = _storage(args)
    with _scheduler_client("local" if args.engine == "odm" else args.cluster) as client:
        result = run_pipeline(storage, args.org, args.project, engine=engine, options=options, client=client,
                              progress=not args.no_progress, map_path=args.map, embed_map=args.embed,
                              echo=lambda line: print(line, flush=True))
    if not result.ok:
        failed = next(step for step in result.steps if step.status == "failed")
        raise WorkbenchError(f"pipeline of {args.org}/{args.project} stopped at {failed.step}: {failed.detail}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from workbench.notebook_runs import parse_value, run_notebook

    parameters = {name: parse_value(value) for name, value in args.parameter}
    settings = _storage(args).settings
    record = run_notebook(settings, args.notebook, parameters, org=args.org, kernel=args.kernel, timeout=args.cell_timeout)
    print(f"{record.notebook}: {record.status} in {record.seconds:.1f} s (run {record.run})")
    for kind, key in record.keys.items():
        print(f"  {kind:<6} {key}")
    return 0


def cmd_runs_ls(args: argparse.Namespace) -> int:
    import datetime as dt

    from workbench.notebook_runs import ledger

    try:
        since = dt.date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise WorkbenchError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    entries = ledger(_storage(args), args.org, since, args.notebook)
    for entry in entries:
        print(entry.line())
    if not entries:
        print(f"no notebook runs for {args.org}" + (f" since {since}" if since else ""))
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    from workbench.engines.cog import report
    from workbench.engines.runs import quality_summary, run_engine

    layout.project_prefix(args.org, args.project)  # validates org and project before any request
    options = _parse_options(args.option)
    engine = _engine(args)
    storage = _storage(args)
    with _scheduler_client("local" if args.engine == "odm" else args.cluster) as client:
        record = run_engine(storage, args.org, args.project, engine, options, include_flagged=args.include_flagged,
                            client=client, progress=not args.no_progress, reporter=report, force=args.force)
    state = "unchanged inputs and options: kept" if record.reused else record.status
    print(f"run {record.run} ({record.engine}): {state}, {len(record.inputs)} images")
    for product in record.products:
        extra = product.get("report") or {}
        detail = f", {extra['crs']}, {extra['resolution_m'][0] * 100:.1f} cm/px, {extra['coverage_m2'] / 1e4:.2f} ha" if "crs" in extra else ""
        print(f"  {product['name']:<12} {_human(product['size']):>10}{detail}  {storage.url(product['key'])}")
        if extra.get("quality"):
            print(f"  {'':<12} {quality_summary(extra['quality'])}")
    for image in record.skipped:
        print(f"  not used: {image['key']}: {image['reason']}")
    return 0



def cmd_tiles(args: argparse.Namespace) -> int:
    from workbench.tiles import TileOptions, tile_run

    layout.project_prefix(args.org, args.project)
    storage = _storage(args)
    options = TileOptions(minzoom=args.minzoom, maxzoom=args.maxzoom, tile_format=args.format, quality=args.quality,
                          tile_size=args.tile_size, name=f"{args.org}/{args.project} orthophoto",
                          attribution=args.attribution or args.org)
    key, summary, pruned = tile_run(storage, args.org, args.project, run=args.run, options=options,
                                    keep=args.keep, progress=not args.no_progress)
    zooms = ", ".join(f"z{z}: {n}" for z, n in sorted(summary.tiles_per_zoom.items()))
    print(f"{summary.tiles} tiles (zoom {summary.minzoom}-{summary.maxzoom}; {zooms}), {_human(summary.size)}")
    print(f"published {storage.url(key)}; generations: {pruned.summary()}")
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from workbench.coverage import build_coverage

    layout.check_component(args.org, "org")
    summary = build_coverage(_storage(args), args.org, keep=args.keep)
    print(f"{summary.footprints} footprints and {summary.flights} flight coverages from {len(summary.projects)} "
          f"project(s) in {summary.tiles} vector tiles")
    print(f"published {summary.key}; generations: {summary.pruned.summary()}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from workbench.maps import write_map

    layout.project_prefix(args.org, args.project)
    path = write_map(_storage(args), args.org, args.project, args.html, args.origin, cdn=args.cdn, embed=args.embed)
    if args.embed:
        print(f"wrote {path}: it carries its tiles, so it opens from disk, offline, with no server")
    else:
        print(f"wrote {path} (tile URLs valid for 1 hour; MapLibre inlined, works offline); serve it, e.g.:")
        print(f"  python -m http.server --bind 127.0.0.1 --directory {path.parent.resolve()} 8000")
        if args.origin:
            print(f"  the bucket's CORS allows {args.origin} (checked)")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    storage = _storage(args)
    count = total = 0
    for info in storage.list(args.prefix):
        count += 1
        total += info.size
        stamp = f"{info.last_modified:%Y-%m-%d %H:%M}" if info.last_modified else ""
        print(f"{stamp:16}  {_human(info.size):>10}  {info.key}")
    print(f"{count} objects, {_human(total)}")
    return 0


def cmd_presign(args: argparse.Namespace) -> int:
    presigner = Presigner(_storage(args))
    if args.action == "get":
        print(presigner.get(args.key, ttl=args.ttl, download_name=args.download_name))
    elif args.action == "put":
        put = presigner.put(args.key, ttl=args.ttl, content_type=args.content_type)
        print(put.url)
        for name, value in put.headers.items():
            print(f"# send header: {name}: {value}", file=sys.stderr)
    else:
        post = presigner.post(args.key, ttl=args.ttl, max_bytes=args.max_size, content_type_prefix=args.content_type_prefix)
        print(yaml.safe_dump({"url": post.url, "fields": post.fields}, sort_keys=False), end="")
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    storage = _storage(args)
    transitions = policy.default_transitions(storage) if args.transitions is None else args.transitions
    rules = policy.lifecycle_rules(transitions=transitions)
    cors = policy.cors_rules(args.upload_origin, args.web_origin) if (args.upload_origin or args.web_origin) else None
    if cors is None:
        print("CORS: skipped (give --upload-origin and/or --web-origin to manage it)")
    if args.action == "diff":
        print(policy.diff_lifecycle(storage, rules))
        if cors:
            print(policy.diff_cors(storage, cors))
    elif args.action == "apply":
        print(f"applied {policy.apply_lifecycle(storage, rules)}")
        policy.verify_lifecycle(storage, rules)
        if cors:
            print(f"applied {policy.apply_cors(storage, cors)}")
            policy.verify_cors(storage, cors)
        print("verified")
    else:
        policy.verify_lifecycle(storage, rules)
        if cors:
            policy.verify_cors(storage, cors)
        print("lifecycle" + (" and CORS" if cors else "") + " match the bucket")
    return 0


def cmd_cors_diagnose(args: argparse.Namespace) -> int:
    diagnosis = policy.diagnose_cors(args.url, args.origin, args.method, args.header or None)
    print(diagnosis.reason)
    return 0 if diagnosis.allowed else EXIT_USER_ERROR


def cmd_prune(args: argparse.Namespace) -> int:
    result = policy.prune_generations(_storage(args), args.prefix, keep=args.keep, dry_run=args.dry_run)
    for key in result.deleted:
        print(f"{'would delete' if result.dry_run else 'deleted'} {key}")
    print(result.summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from workbench.demo import run_demo

    page_server = _page_server(args.port, Path(args.map_dir)) if args.keep_running else None  # port checked before any work
    data = _data_dir(args)
    settings, started = shared_server(data)
    try:
        result = run_demo(settings, progress=not args.no_progress, map_dir=args.map_dir, engine=local_engine(args.engine))
        print(result.summary())
        print(f"view the map: open {result.map_path.resolve()} in a browser (it carries its tiles: no server needed)")
        if page_server is not None:
            threading.Thread(target=page_server.serve_forever, daemon=True).start()
            address = f"http://127.0.0.1:{page_server.server_address[1]}"
            print(f"  or {address}/{result.map_path.name}; the embedded S3 keeps running, so the URLs above work "
                  "(for an hour); press Ctrl+C to stop", flush=True)
            _run_until_stopped(data)
        elif started:
            print("the embedded S3 stops when this command ends (use --keep-running, or run `workbench s3 serve` "
                  "first, to keep it and try the URLs above)")
    finally:  # Ctrl+C during the work goes on to main (exit 130); while the page is served it just ends the wait
        leave(data)
        if page_server is not None:
            page_server.server_close()
    return 0


def _page_server(port: int, folder: Path) -> Any:
    """An HTTP server for ``folder`` on 127.0.0.1:``port``, or on a free port when that one is busy."""
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    folder.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(Quiet, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        print(f"port {port} on 127.0.0.1 is busy: serving the map on a free port instead", file=sys.stderr)
        return http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)


# -- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` argument parser."""
    parser = argparse.ArgumentParser(prog="workbench", description="Drone imagery in S3-compatible buckets.")
    parser.add_argument("--profile", choices=["aws", "minio", "r2", "local"], help="settings profile (default: aws)")
    parser.add_argument("--config", help="YAML settings file (default: $WORKBENCH_CONFIG)")
    parser.add_argument("--bucket", help="bucket name (overrides the environment and file)")
    parser.add_argument("--endpoint", help="S3 endpoint URL (overrides the environment and file)")
    parser.add_argument("--region", help="region (overrides the environment and file)")
    parser.add_argument("--timeout", type=int, help="seconds a request to the store may take, retries included (default 30)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    s3 = commands.add_parser("s3", help="the embedded S3 server").add_subparsers(dest="s3_command", required=True, metavar="ACTION")
    serve = command("serve", cmd_s3_serve, "run (or join) the user's embedded S3 (SeaweedFS) on 127.0.0.1 until Ctrl+C", s3)
    serve.add_argument("--data", help="data folder (persistent; default ~/.local/share/workbench/s3)")
    serve.add_argument("--port", type=int, help="S3 port (default: a free port)")
    serve.add_argument("--serve-bucket", default="workbench", help="bucket to create (default: workbench)")
    status = command("status", cmd_s3_status, "say whether the embedded S3 of a data folder runs, where, and for whom", s3)
    status.add_argument("--data", help="data folder (default ~/.local/share/workbench/s3)")
    stop = command("stop", cmd_s3_stop, "stop the embedded S3 of a data folder now (its data stays)", s3)
    stop.add_argument("--data", help="data folder (default ~/.local/share/workbench/s3)")

    upload = command("upload", cmd_upload, "upload a folder of images as one flight (parallel, resumable)")
    upload.add_argument("folder")
    upload.add_argument("--org", required=True)
    upload.add_argument("--project", required=True)
    upload.add_argument("--flight", help="flight id (a UUIDv7; default: a new one)")
    upload.add_argument("--workers", type=int, default=8, help="parallel file uploads (default 8)")
    upload.add_argument("--no-progress", action="store_true")

    ing = command("ingest", cmd_ingest, "read metadata, run QA, make thumbnails and the GeoParquet manifest (Dask)")
    ing.add_argument("--org", required=True)
    ing.add_argument("--project", required=True)
    ing.add_argument("--cluster", default="local", help="local (default) or a scheduler address tcp://host:8786 "
                     "(EC2 clusters: workbench.ec2 from Python)")
    ing.add_argument("--workers", type=int, help="local cluster: worker processes (default: one per CPU, at most 8)")
    ing.add_argument("--batch-size", type=int, default=10, help="images per Dask task (default 10)")
    ing.add_argument("--no-pixels", action="store_true", help="metadata only (<=128 KiB read per image): no blur, "
                     "exposure or thumbnails")
    ing.add_argument("--agl", type=float, metavar="METRES",
                     help="height above ground for images whose camera writes none (e.g. compact cameras)")
    ing.add_argument("--ground-elevation", type=float, metavar="METRES",
                     help="ground elevation to subtract from the GPS altitude of images without a height")
    ing.add_argument("--dem", metavar="FILE_OR_URL",
                     help="a DEM (GeoTIFF, COG URL or s3://bucket/key) sampled under images without a height")
    ing.add_argument("--no-progress", action="store_true")

    proc = command("process", cmd_process, "build an orthomosaic (and DEMs) from a project's usable images")
    proc.add_argument("--org", required=True)
    proc.add_argument("--project", required=True)
    proc.add_argument("--engine", choices=["quicklook", "sfm", "odm"], default="quicklook")
    proc.add_argument("--node", help="odm: NodeODM/ClusterODM URL; the token comes from $WORKBENCH_NODE_TOKEN")
    proc.add_argument("--preset", default="fast-orthophoto", choices=["fast-orthophoto", "standard", "high"],
                      help="odm: option preset (default fast-orthophoto)")
    proc.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                      help="engine option, repeatable (odm: checked against the node's /options; quicklook: "
                           "resolution, max_size; sfm: max_image_size, resolution, matcher, min_images, "
                           "min_registered, max_features, neighbours)")
    proc.add_argument("--include-flagged", action="store_true", help="also use images QA flagged (not unreadable ones)")
    proc.add_argument("--force", action="store_true", help="run even if the latest run had the same inputs and options")
    proc.add_argument("--cluster", default="local", help="quicklook, sfm: local (default) or a scheduler address")
    proc.add_argument("--no-progress", action="store_true")

    tiles = command("tiles", cmd_tiles, "raster PMTiles of a run's orthophoto, published and pruned to N generations")
    tiles.add_argument("--org", required=True)
    tiles.add_argument("--project", required=True)
    tiles.add_argument("--run", help="processing run id (default: the project's latest)")
    tiles.add_argument("--format", choices=["webp", "png", "jpeg"], default="webp")
    tiles.add_argument("--quality", type=int, default=75, help="WebP/JPEG quality (default 75)")
    tiles.add_argument("--tile-size", type=int, choices=[256, 512], default=512)
    tiles.add_argument("--minzoom", type=int)
    tiles.add_argument("--maxzoom", type=int, help="default: the deepest zoom not finer than the ortho")
    tiles.add_argument("--attribution")
    tiles.add_argument("--keep", type=int, default=7, help="generations kept per (org, layer, project)")
    tiles.add_argument("--no-progress", action="store_true")

    cov = command("coverage", cmd_coverage, "vector PMTiles of an org's footprints and flight coverage (tippecanoe)")
    cov.add_argument("--org", required=True)
    cov.add_argument("--keep", type=int, default=7, help="generations kept (default 7)")

    mapping = command("map", cmd_map, "a standalone HTML map of a project's ortho and coverage PMTiles")
    mapping.add_argument("--org", required=True)
    mapping.add_argument("--project", required=True)
    mapping.add_argument("--html", required=True, help="output file")
    mapping.add_argument("--origin", help="where the page will be served from: the bucket's CORS is checked for it")
    mapping.add_argument("--embed", action="store_true",
                         help="put the archives in the page (small projects): it then needs no server and no URL expires")
    mapping.add_argument("--cdn", action="store_true", help="load MapLibre GL JS and pmtiles from unpkg instead of inlining them")

    ls = command("ls", cmd_ls, "list objects under a prefix, with sizes")
    ls.add_argument("prefix", nargs="?", default="")

    presign = command("presign", cmd_presign, "print a presigned URL")
    presign.add_argument("action", choices=["get", "put", "post"])
    presign.add_argument("key")
    presign.add_argument("--ttl", type=int, help="lifetime in seconds (default: 3600 for get, 900 otherwise)")
    presign.add_argument("--download-name", help="get: file name the browser saves as")
    presign.add_argument("--content-type", help="put: content type the uploader must send")
    presign.add_argument("--max-size", type=int, default=100 * 1024 * 1024, help="post: largest body in bytes")
    presign.add_argument("--content-type-prefix", help="post: required content-type prefix, e.g. image/")

    pol = command("policy", cmd_policy, "lifecycle and CORS: diff, apply or verify against the live bucket")
    pol.add_argument("action", choices=["diff", "apply", "verify"])
    pol.add_argument("--upload-origin", action="append", default=[], help="origin allowed to PUT/POST (repeatable)")
    pol.add_argument("--web-origin", action="append", default=[], help="origin allowed to GET with Range (repeatable)")
    group = pol.add_mutually_exclusive_group()
    group.add_argument("--transitions", dest="transitions", action="store_true", default=None,
                       help="include the Intelligent-Tiering transition (default on AWS only)")
    group.add_argument("--no-transitions", dest="transitions", action="store_false")

    cors = commands.add_parser("cors", help="CORS tools").add_subparsers(dest="cors_command", required=True, metavar="ACTION")
    diagnose = command("diagnose", cmd_cors_diagnose, "send a real preflight and say why a browser would be refused", cors)
    diagnose.add_argument("url")
    diagnose.add_argument("--origin", required=True)
    diagnose.add_argument("--method", default="GET")
    diagnose.add_argument("--header", action="append", help="request header the browser sends (repeatable)")

    prune = command("prune", cmd_prune, "keep the newest N dated generations per folder; delete the rest")
    prune.add_argument("prefix", nargs="?", default="pmtiles/")
    prune.add_argument("--keep", type=int, default=7)
    prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")

    demo = command("demo", cmd_demo, "the end-to-end demo on an embedded S3 (no cloud account needed)")
    demo.add_argument("--data", help="the embedded S3's data folder (default: the user's, ~/.local/share/workbench/s3; "
                      "a running `workbench s3 serve` for it is reused)")
    demo.add_argument("--keep-running", action="store_true",
                      help="keep the server running after the demo and serve the map on http://127.0.0.1:PORT")
    demo.add_argument("--port", type=int, default=8000, help="--keep-running: the map page's port (default 8000; "
                      "a free one if busy)")
    demo.add_argument("--map-dir", default="workbench-demo", help="where to write map.html (default ./workbench-demo)")
    demo.add_argument("--engine", choices=["quicklook", "sfm"], default="quicklook",
                      help="quicklook (seconds, metadata only) or sfm (photogrammetry with pycolmap, a minute or two)")
    demo.add_argument("--no-progress", action="store_true")

    pipe = command("pipeline", cmd_pipeline, "ingest what is new, process, tile, coverage and map: each step only "
                   "when its inputs changed")
    pipe.add_argument("--org", required=True)
    pipe.add_argument("--project", required=True)
    pipe.add_argument("--engine", choices=["quicklook", "sfm", "odm"], default="quicklook")
    pipe.add_argument("--node", help="odm: NodeODM/ClusterODM URL; the token comes from $WORKBENCH_NODE_TOKEN")
    pipe.add_argument("--preset", default="fast-orthophoto", choices=["fast-orthophoto", "standard", "high"])
    pipe.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="engine option, repeatable")
    pipe.add_argument("--cluster", default="local", help="local (default) or a scheduler address tcp://host:8786")
    pipe.add_argument("--map", help="write the project's map page here (a step of its own)")
    pipe.add_argument("--embed", action="store_true", help="put the archives in the map page")
    pipe.add_argument("--no-progress", action="store_true")

    run = command("run", cmd_run, "run a notebook with papermill on these settings; store it, its HTML and a ledger entry")
    run.add_argument("notebook", type=Path)
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter its 'parameters' cell defines (repeatable; never a credential)")
    run.add_argument("--org", help="org the run is stored under (default: the org parameter)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel (default python3)")
    run.add_argument("--cell-timeout", type=int, help="seconds a cell may run (default: no limit)")

    runs = commands.add_parser("runs", help="scheduled notebook runs").add_subparsers(dest="runs_command", required=True,
                                                                                      metavar="ACTION")
    runs_ls = command("ls", cmd_runs_ls, "list an org's notebook runs (the ledger)", runs)
    runs_ls.add_argument("--org", required=True)
    runs_ls.add_argument("--since", help="from this day on (YYYY-MM-DD)")
    runs_ls.add_argument("--notebook", help="only this notebook (its file name without .ipynb)")

    add_cost_commands(commands, command, lambda func: lambda args: func(args, _storage(args)))
    add_analysis_commands(commands, command, lambda func: lambda args: func(args, _storage(args)))
    return parser


TRACKER_QUIET = "ignore::UserWarning:multiprocessing.resource_tracker"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` command: errors are one line (``--debug`` shows the traceback)."""
    for stream in (sys.stdout, sys.stderr):  # names in other encodings print escaped, never crash the command
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    args = build_parser().parse_args(argv)
    # a Ctrl+C while Dask's worker processes start can leave a semaphore for multiprocessing's resource tracker to
    # remove at exit, which it does with a warning for developers; the tracker process takes -W options from here
    if TRACKER_QUIET not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_QUIET)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"workbench: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        quiet_shutdown()
        print("workbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an unforeseen failure: still one line, never a traceback by default
        if args.debug:
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"workbench: unexpected error: {type(exc).__name__}: {redact(first)[:300]} "
              "(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
