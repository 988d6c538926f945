"""Hostile and careless input: no leaked token, no unauthenticated port, no forged header, nothing stored lost
to a refused command, Ctrl+C that stops, one clear line instead of a traceback. One test per defect found."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.nodeodm_fake import FakeNodeODM
from tests.test_cli import assert_one_line_error, run
from tests.test_odm import OUTPUTS
from workbench import layout, policy
from workbench.config import Settings, load_settings
from workbench.engines.odm import OdmEngine
from workbench.engines.quicklook import QuicklookEngine
from workbench.engines.runs import EngineError, run_engine
from workbench.errors import WorkbenchError
from workbench.imagery.ingest import ingest
from workbench.local import LocalS3
from workbench.options import bounded, check_header_text, parse_number
from workbench.redact import redact
from workbench.storage import Storage
from workbench.synthetic import Camera, Survey, write_survey
from workbench.transfer import pending_uploads, upload_file, upload_files, upload_folder

TOKEN = "node-token-7f3a9c"
SMALL = Survey(lines=1, shots_per_line=3, camera=Camera(width=240, height=160))


def _cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _ingested(storage: Storage, project: str, tmp_path: Path, dask_client) -> None:
    write_survey(tmp_path / project, SMALL)
    flight = layout.new_id()
    upload_folder(storage, tmp_path / project, lambda p: layout.raw_key("org", project, flight, p.name), progress=False)
    ingest(storage, "org", project, client=dask_client, pixels=False, progress=False)


# -- security -------------------------------------------------------------------------------------------


def test_a_node_token_never_reaches_the_terminal_or_the_run_record(config_file: Path, storage: Storage, tmp_path: Path,
                                                                     dask_client, capsys, monkeypatch) -> None:
    _ingested(storage, "tok", tmp_path, dask_client)
    monkeypatch.setenv("WORKBENCH_NODE_TOKEN", TOKEN)
    code, out, err = run(capsys, "process", "--org", "org", "--project", "tok", "--engine", "odm",
                         "--node", "http://127.0.0.1:1", "--no-progress")
    assert_one_line_error(code, err, "cannot use the node")
    assert TOKEN not in out + err and "token=***" in err  # the URL in the library's message is redacted
    records = [i.key for i in storage.list(layout.runs_prefix("org", "tok")) if i.key.endswith("run.json")]
    assert records and all(TOKEN not in storage.get_bytes(k).decode() for k in records)


def test_redaction_of_signatures_tokens_and_user_info() -> None:
    text = ("GET http://u:pw@h:9000/b/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&token=t1&X-Amz-Expires=60 "
            "Authorization: AWS4-HMAC-SHA256 Credential=x")
    cleaned = redact(text)
    assert all(secret not in cleaned for secret in ("pw@", "AKIA", "abc&", "t1", "Credential=x"))
    assert "X-Amz-Expires=60" in cleaned
    assert str(WorkbenchError("failed: /options?token=s3cr3t")) == "failed: /options?token=***"


def test_the_embedded_s3_is_reachable_only_through_its_signed_s3_port(tmp_path: Path) -> None:
    server = LocalS3(data_dir=tmp_path / "s3")
    settings = server.start()
    try:
        Storage(settings).put_bytes("projects/o/p/secret.txt", b"TOP SECRET")
        bucket = settings.bucket
        filer, volume, master, admin = (f"http://127.0.0.1:{server.ports[n]}" for n in ("filer", "volume", "master", "admin"))
        assert requests.get(f"{filer}/buckets/{bucket}/projects/o/p/secret.txt", timeout=10).status_code == 401
        assert requests.get(f"{filer}/buckets/{bucket}/", timeout=10).status_code == 401
        assert requests.put(f"{filer}/buckets/{bucket}/evil.txt", data=b"x", timeout=10).status_code == 401
        assert requests.post(f"{filer}/buckets/{bucket}/evil.txt", files={"file": b"x"}, timeout=10).status_code == 401
        fid = requests.get(f"{master}/dir/assign", timeout=10).json()["fid"]  # a file id, but no write token
        assert requests.post(f"{volume}/{fid}", files={"file": b"x"}, timeout=10).status_code == 401
        assert requests.get(f"{admin}/", timeout=10).status_code == 404  # no admin UI
        assert requests.get(f"{settings.endpoint}/{bucket}/projects/o/p/secret.txt", timeout=10).status_code == 403  # unsigned S3
        assert [i.key for i in Storage(settings).list("")] == ["projects/o/p/secret.txt"]
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [
    ["presign", "put", "projects/o/p/raw/f/x.jpg", "--content-type", "image/jpeg\r\nX-Evil: 1"],
    ["presign", "post", "projects/o/p/raw/f/x.jpg", "--content-type-prefix", "image/\nX-Evil: 1"],
    ["policy", "apply", "--web-origin", "https://maps.example.org\r\nX-Evil: 1"],
])
def test_control_characters_never_become_headers(config_file: Path, capsys, argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, "control characters")
    assert "X-Evil" not in out


def test_cors_diagnose_does_not_follow_a_redirected_preflight(capsys) -> None:
    hits: list[str] = []

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_OPTIONS(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()

        do_GET = do_OPTIONS  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, out, _ = run(capsys, "cors", "diagnose", f"http://127.0.0.1:{server.server_address[1]}/b/k",
                           "--origin", "https://maps.example.org")
    finally:
        server.shutdown()
    assert code == 1 and "redirected the preflight" in out and hits == ["/b/k"]  # never went to /elsewhere


def test_serve_leaves_an_existing_folder_alone_and_writes_its_secrets_0600(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "workbench.yaml").write_text("old: 1\n")
    (shared / "workbench.yaml").chmod(0o644)
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "s3", "serve", "--data", str(shared)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "Ctrl+C" in line:
                break
        assert shared.stat().st_mode & 0o7777 == 0o1777
        assert (shared / "workbench.yaml").stat().st_mode & 0o777 == 0o600
        assert (shared / "credentials.json").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def test_a_session_token_stays_with_the_keys_it_came_with(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "wb.yaml"
    config.write_text(yaml.safe_dump(settings.to_yaml_dict(include_secrets=True)))
    loaded = load_settings(env={"WORKBENCH_CONFIG": str(config), "AWS_SESSION_TOKEN": "stale-token-from-a-shell"})
    assert loaded.session_token is None and loaded.access_key == settings.access_key
    assert loaded.credentials_source == f"the settings file {config}"
    Storage(loaded).exists("anything")  # the keys work: no token from elsewhere spoils them
    both = load_settings(env={"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "tok"})
    assert both.session_token is not None and both.session_token.reveal() == "tok" and both.credentials_source == "the AWS_* variables"


# -- data safety -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["tiles", "--org", "org", "--project", "keep"], ["coverage", "--org", "org"]])
@pytest.mark.parametrize("keep", ["0", "-1"])
def test_keep_below_one_is_refused_before_anything_is_written(config_file: Path, storage: Storage, capsys,
                                                              command: list[str], keep: str) -> None:
    archive = layout.pmtiles_key("ortho", "org", dt.date.today(), "keep")
    storage.put_bytes(archive, b"x" * 5000)
    code, _, err = run(capsys, *command, "--keep", keep)
    assert_one_line_error(code, err, "keep must be a whole number of at least 1")
    assert storage.get_bytes(archive) == b"x" * 5000


@pytest.mark.parametrize("prefix", ["", "projects/", "parquet/", "projects/org/p/raw/"])
def test_prune_touches_only_generations_under_pmtiles(config_file: Path, storage: Storage, capsys, prefix: str) -> None:
    raw = layout.raw_key("org", "p", layout.new_id(), "2024-01-01.jpg")  # a raw image named like a date
    storage.put_bytes(raw, b"image")
    code, _, err = run(capsys, "prune", prefix, "--keep", "1")
    assert_one_line_error(code, err, "only")
    assert storage.exists(raw)


def test_superseded_incomplete_uploads_are_aborted(storage: Storage, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 5 * 1024 * 1024 + 100))
    key = layout.raw_key("org", "p", layout.new_id(), "big.bin")
    for _ in range(2):  # two crashed uploads that never sent a part, and one of an older version of the file
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)
    old = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)["UploadId"]
    storage.client.upload_part(Bucket=storage.bucket, Key=key, UploadId=old, PartNumber=1, Body=os.urandom(5 * 1024 * 1024))
    assert len(pending_uploads(storage, key)) == 3
    result = upload_file(storage, big, key, single_put_limit=1024, part_size=5 * 1024 * 1024)
    assert result.status == "uploaded" and result.aborted_uploads == 3
    assert pending_uploads(storage, key) == []


def test_two_uploads_of_the_same_folder_at_once_both_succeed(storage: Storage, tmp_path: Path) -> None:
    folder = tmp_path / "flight"
    folder.mkdir()
    for i in range(3):
        (folder / f"IMG_{i}.jpg").write_bytes(os.urandom(12 * 1024 * 1024 + i))
    flight = layout.new_id()
    reports = []

    def upload() -> None:
        reports.append(upload_files(storage, [(p, layout.raw_key("org", "p", flight, p.name)) for p in sorted(folder.iterdir())],
                                    progress=False, single_put_limit=1024 * 1024, part_size=5 * 1024 * 1024))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert [r.failed for r in reports] == [[], []], [r.failed for r in reports]
    for path in folder.iterdir():
        assert storage.get_bytes(layout.raw_key("org", "p", flight, path.name)) == path.read_bytes()


# -- interrupts and hangs ----------------------------------------------------------------------------------


def _communicate_or_kill(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """``process.communicate(timeout)``; a process still running then is killed, so a failing test leaves none."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


@pytest.mark.slow
def test_ctrl_c_stops_an_upload_and_the_next_run_finishes_it(config_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(120):
        (folder / f"IMG_{i:04d}.jpg").write_bytes(os.urandom(2 * 1024 * 1024))
    flight = layout.new_id()
    argv = [sys.executable, "-m", "workbench.cli", "upload", str(folder), "--org", "o", "--project", "p", "--flight", flight,
            "--workers", "2"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(3)
    os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl+C: every process of the job gets it
    out, err = _communicate_or_kill(process, 60)  # ends by itself, promptly, not after uploading everything
    assert process.returncode == 130 and err.strip().splitlines()[-1] == "workbench: interrupted", err[-500:]
    assert "Traceback" not in err and "Exception ignored" not in err
    storage = Storage(load_settings())
    stored = len(list(storage.list(layout.flights_prefix("o", "p") + flight + "/")))
    assert stored < 120
    again = _cli("upload", str(folder), "--org", "o", "--project", "p", "--flight", flight, "--no-progress")
    assert again.returncode == 0 and f"{120 - stored} uploaded" in again.stdout and f"{stored} skipped" in again.stdout


def test_an_endpoint_that_never_answers_or_refuses_fails_with_one_line(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never answers
    try:
        done = _cli("--timeout", "6", "ls", "projects/", timeout=120,
                    env={"WORKBENCH_CONFIG": "", "WORKBENCH_PROFILE": "minio", "WORKBENCH_BUCKET": "b",
                         "WORKBENCH_ENDPOINT": f"http://127.0.0.1:{listener.getsockname()[1]}",
                         "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
        refused = _cli("--timeout", "6", "ls", "projects/", timeout=120,
                       env={"WORKBENCH_CONFIG": "", "WORKBENCH_PROFILE": "minio", "WORKBENCH_BUCKET": "b",
                            "WORKBENCH_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
                            "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    finally:
        listener.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot reach the object store" in done.stderr and "no answer within about 6 s" in done.stderr
    # a port nobody listens on is said to refuse, not to be slow
    assert refused.returncode == 1 and "connection refused or closed" in refused.stderr, refused.stderr
    assert "no answer within" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_node_behind_a_proxy_that_answers_502_is_polled_again(storage: Storage, tmp_path: Path, dask_client) -> None:
    if not OUTPUTS.is_dir():
        pytest.skip(f"real NodeODM outputs not available: {OUTPUTS} is absent")
    _ingested(storage, "proxy", tmp_path, dask_client)
    with FakeNodeODM(OUTPUTS, bad_gateway_polls=3) as url:
        record = run_engine(storage, "org", "proxy", OdmEngine(url, poll_seconds=0.05, retry_seconds=0.05), progress=False)
    assert record.status == "completed"
    with FakeNodeODM(OUTPUTS, bad_gateway_polls=1000) as url, pytest.raises(EngineError, match="stopped answering") as raised:
        run_engine(storage, "org", "proxy", OdmEngine(url, poll_seconds=0.01, retry_seconds=0.05, max_poll_failures=5),
                   progress=False, force=True)
    assert "\n" not in str(raised.value)


def test_a_dead_node_during_the_upload_is_reported_once_in_one_line(storage: Storage, tmp_path: Path, dask_client) -> None:
    if not OUTPUTS.is_dir():
        pytest.skip(f"real NodeODM outputs not available: {OUTPUTS} is absent")
    _ingested(storage, "dead", tmp_path, dask_client)
    fake = FakeNodeODM(OUTPUTS)
    odm = OdmEngine(fake.__enter__(), retry_seconds=0.05, upload_retries=2, parallel_uploads=3)
    odm.check_options({})  # the node answered until now
    fake.__exit__()  # then it dies
    with pytest.raises(EngineError) as raised:
        run_engine(storage, "org", "dead", odm, progress=False)
    assert "\n" not in str(raised.value) and "node" in str(raised.value)


@pytest.mark.slow
def test_ctrl_c_during_ingest_prints_one_line(config_file: Path, storage: Storage, tmp_path: Path) -> None:
    write_survey(tmp_path / "big", Survey(lines=3, shots_per_line=10))
    flight = layout.new_id()
    upload_folder(storage, tmp_path / "big", lambda p: layout.raw_key("org", "ctrlc", flight, p.name), progress=False)
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "ingest", "--org", "org", "--project", "ctrlc",
                                "--workers", "1", "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # a group of its own, as a terminal's foreground job
    err = ""
    while not re.search(r"\b[1-9]\d*/30\b", err) and process.poll() is None:  # some images read: the ingest is under way
        err += process.stderr.read(1)
    assert process.poll() is None, err[-1500:]
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl+C in a terminal does: the Dask worker processes get it too
    err += _communicate_or_kill(process, 60)[1]
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("ingest:", "\r"))
             and "it/s" not in line and "img/s" not in line and "img]" not in line]
    assert process.returncode == 130 and lines[-1:] == ["workbench: interrupted"], err[-1500:]
    assert not any("distributed" in line or "WARNING" in line or "Traceback" in line for line in lines), lines


_INTERRUPTED_WHILE_WORKERS_START = """
import os, signal, sys
import distributed.nanny
from workbench.cli import main

starting = distributed.nanny.Nanny.start_unsafe

async def start_unsafe(self):  # Ctrl+C exactly while the worker process starts
    os.kill(os.getpid(), signal.SIGINT)
    return await starting(self)

distributed.nanny.Nanny.start_unsafe = start_unsafe
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_while_the_local_cluster_starts_prints_one_line(config_file: Path, storage: Storage, tmp_path: Path) -> None:
    write_survey(tmp_path / "few", Survey(lines=1, shots_per_line=3))
    upload_folder(storage, tmp_path / "few", lambda p: layout.raw_key("org", "early", layout.new_id(), p.name), progress=False)
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED_WHILE_WORKERS_START)
    mark = {"WORKBENCH_TEST_MARK": str(tmp_path)}  # inherited by the worker processes: finds any left behind
    done = subprocess.run([sys.executable, str(script), "ingest", "--org", "org", "--project", "early", "--workers", "1"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **mark})
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("ingest:")]
    assert done.returncode == 130 and lines == ["workbench: interrupted"], done.stderr[-1500:]
    time.sleep(2)
    assert not [p.pid for p in psutil.process_iter() if _environ(p).get("WORKBENCH_TEST_MARK") == str(tmp_path)]


def _environ(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except (psutil.Error, OSError):
        return {}


# -- one clear line, never a traceback ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("demo",), ("s3", "serve")])
def test_a_data_folder_that_cannot_be_one(tmp_path: Path, capsys, command: tuple[str, ...]) -> None:
    (tmp_path / "a-file").write_text("kept")
    for data, why in ((tmp_path / "a-file", "it is a file"), (tmp_path / "a-file" / "s3", "Not a directory")):
        code, _, err = run(capsys, *command, "--data", str(data))
        assert_one_line_error(code, err, f"the embedded S3 cannot keep its data in {data}: {why}")
    assert (tmp_path / "a-file").read_text() == "kept"


def test_a_file_name_in_another_encoding(config_file: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "latin1"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/caf\xe9.jpg", "wb") as handle:  # a Latin-1 name on a UTF-8 system
        handle.write(b"\xff\xd8x")
    code, _, err = run(capsys, "upload", str(folder), "--org", "o", "--project", "p", "--no-progress")
    assert_one_line_error(code, err, "not valid UTF-8")


@pytest.mark.parametrize("content", [b"\xff\xfeb\x00u\x00c\x00k\x00e\x00t\x00", b"\x00\x01\x02\x80\x81binary"])
def test_a_settings_file_that_is_not_utf8(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "workbench.yaml"
    path.write_bytes(content)
    done = _cli("--config", str(path), "ls")
    assert done.returncode == 1 and "is not UTF-8" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--region", "eu west 1", "ls"], "is not a region name"),
    (["--endpoint", "http://", "ls"], "must look like http(s)://host"),
    (["--endpoint", "http://dömäin.example", "ls"], "is not a host name"),
    (["--endpoint", "http://[::1", "ls"], "is not a URL"),
    (["process", "--org", "o", "--project", "p", "--option", "resolution=[1,2"], "is not valid"),
    (["process", "--org", "o", "--project", "p", "--option", "resolution=!!python/object/apply:os.system ['true']"], "is not valid"),
    (["process", "--org", "o", "--project", "p", "--option", "resolution=.nan"], "finite"),
    (["process", "--org", "o", "--project", "p", "--option", "resolution=.inf"], "finite"),
    (["process", "--org", "o", "--project", "p", "--option", "resolution=1e-9"], "between"),
    (["process", "--org", "o", "--project", "p", "--option", "max_size=2.5"], "whole number"),
    (["process", "--org", "o", "--project", "p", "--option", "max_size=yes"], "yes/no"),
    (["cors", "diagnose", "http://[::1", "--origin", "https://a.example"], "is not a URL"),
])
def test_user_errors_are_one_clear_line(config_file: Path, capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message.replace("(s)", "(s)") in lines[0], err


def test_odm_options_refuse_yes_no_for_numbers_and_fractions_for_whole_numbers() -> None:
    from workbench.engines.odm import check_options

    class Option:
        def __init__(self, name: str, kind: str) -> None:
            self.name, self.type, self.domain = name, kind, []

    available = [Option("orthophoto-resolution", "float"), Option("max-concurrency", "int")]
    assert check_options(available, {"orthophoto-resolution": "2.5", "max-concurrency": 4}) == \
        {"orthophoto-resolution": 2.5, "max-concurrency": 4}
    with pytest.raises(WorkbenchError, match="yes/no"):
        check_options(available, {"orthophoto-resolution": True})
    with pytest.raises(WorkbenchError, match="whole number"):
        check_options(available, {"max-concurrency": 2.5})


def test_a_node_that_does_not_speak_nodeodm(storage: Storage, tmp_path: Path) -> None:
    if not OUTPUTS.is_dir():
        pytest.skip(f"real NodeODM outputs not available: {OUTPUTS} is absent")
    with FakeNodeODM(OUTPUTS, not_a_node=True) as url, pytest.raises(EngineError, match="did not answer like NodeODM"):
        OdmEngine(url).check_options({})


def test_quicklook_bounds_its_output(storage: Storage, tmp_path: Path, dask_client) -> None:
    _ingested(storage, "huge", tmp_path, dask_client)
    with pytest.raises(EngineError, match="the mosaic would be"):
        run_engine(storage, "org", "huge", QuicklookEngine(), {"resolution": 0.005, "max_size": 20000}, progress=False)


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(config_file: Path, capsys, monkeypatch) -> None:
    def broken(args: object) -> int:
        raise ZeroDivisionError("division by zero in some library")

    monkeypatch.setattr("workbench.cli.cmd_ls", broken)
    code, _, err = run(capsys, "ls")
    assert code == 1 and "Traceback" not in err and "--debug" in err and "ZeroDivisionError" in err
    code, _, err = run(capsys, "--debug", "ls")
    assert code == 1 and "Traceback" in err


# -- every parser: a clear error or accepted, never another exception --------------------------------------------

_TEXT = st.one_of(st.text(), st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
                  st.sampled_from(["..", "/", "a/../b", "\r\n", "\x00", "caf\udce9", " a", "a ", "", "x" * 300]))
_ANY = st.one_of(_TEXT, st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none())


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_ANY)
def test_parsers_give_a_clear_error_or_accept(value: object) -> None:
    checks = [
        lambda v: layout.check_component(v), lambda v: layout.check_key(v), lambda v: layout.check_prefix(v),
        lambda v: layout.check_id(v), lambda v: layout.raw_key(v, "p", layout.new_id(), "x.jpg"),
        lambda v: check_header_text(v, "value"), lambda v: parse_number(v, int, "n"), lambda v: bounded(v, float, 0, 1, "n"),
        lambda v: load_settings(profile="minio", env={}, region=v), lambda v: load_settings(profile="minio", env={}, endpoint=v),
        lambda v: policy.cors_rules([], [v]), lambda v: QuicklookEngine().check_options({"resolution": v}),
        lambda v: QuicklookEngine().check_options({v: 1} if isinstance(v, str) else {}),
    ]
    for check in checks:
        try:
            check(value)
        except WorkbenchError:
            pass
        except TypeError:
            assert not isinstance(value, str), "text must never raise a TypeError"


@hsettings(max_examples=200, deadline=None)
@given(text=st.text())
def test_option_text_from_the_command_line(text: str) -> None:
    from workbench.cli import _parse_options

    try:
        _parse_options([f"resolution={text}", text])
    except WorkbenchError:
        pass



def test_thread_workers_start_offline_without_a_network_warning(monkeypatch) -> None:
    """Offline, distributed cannot find the IP that reaches 8.8.8.8 to name in-process (inproc://) workers and
    warns on every CLI run; nothing leaves the process, so the workbench's local cluster keeps it quiet."""
    import warnings

    import distributed.comm.inproc as inproc

    from workbench.cluster import local_client

    found_ip = inproc.get_ip

    def offline_ip(*args: object, **kwargs: object) -> str:  # what get_ip does with no route to 8.8.8.8
        warnings.warn("Couldn't detect a suitable IP address for reaching '8.8.8.8', defaulting to hostname: "
                      "[Errno 101] Network is unreachable", RuntimeWarning)
        return found_ip(*args, **kwargs)

    monkeypatch.setattr(inproc, "get_ip", offline_ip)
    monkeypatch.setattr(inproc.global_manager, "_ip", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = local_client(1, 1, processes=False)
        client.close()
    assert inproc.global_manager._ip == found_ip()  # the address was made through the offline path
    assert not [w for w in caught if "suitable IP address" in str(w.message)]
