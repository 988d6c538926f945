"""The ``workbench`` command: real commands against the real server; user errors are one line, exit 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from workbench import layout
from workbench.cli import main
from workbench.config import Settings
from workbench.synthetic import Camera, Survey, write_survey

WEB = "https://maps.example.org"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, text: str) -> None:
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("workbench: error:") and text in lines[0], err
    assert "Traceback" not in err


def test_upload_ls_presign(config_file: Path, settings: Settings, tmp_path: Path, capsys) -> None:
    images = write_survey(tmp_path / "imgs", Survey(lines=1, shots_per_line=3, camera=Camera(width=240, height=160)))
    flight = layout.new_id()
    code, out, _ = run(capsys, "upload", str(tmp_path / "imgs"), "--org", "hot", "--project", "p1", "--flight", flight, "--no-progress")
    assert code == 0 and f"flight {flight}: 3 uploaded" in out
    code, out, _ = run(capsys, "ls", "projects/hot/")
    assert code == 0 and "3 objects" in out and images[0].name in out and "KiB" in out
    key = layout.raw_key("hot", "p1", flight, images[0].name)
    code, out, _ = run(capsys, "presign", "get", key, "--ttl", "60")
    assert code == 0 and requests.get(out.strip()).content == images[0].read_bytes()
    code, out, err = run(capsys, "presign", "put", key + ".new", "--content-type", "image/jpeg")
    assert code == 0 and "Content-Type: image/jpeg" in err
    assert requests.put(out.strip(), data=b"x", headers={"Content-Type": "image/jpeg"}).status_code == 200
    code, out, _ = run(capsys, "presign", "post", key + ".post", "--max-size", "10")
    form = yaml.safe_load(out)
    assert requests.post(form["url"], data=form["fields"], files={"file": b"x" * 11}).status_code == 400


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["upload", ".", "--org", "../etc", "--project", "p"], "path separator"),
        (["upload", ".", "--org", "..", "--project", "p"], "relative path"),
        (["upload", ".", "--org", "o", "--project", "p", "--flight", "flight-1"], "UUIDv7"),
        (["presign", "get", "projects/a", "--ttl", "0"], "too short"),
        (["presign", "get", "projects/a", "--ttl", "604801"], "7 days"),
        (["presign", "get", "/etc/passwd"], "starts with '/'"),
        (["prune", "--keep", "0"], "at least 1"),
        (["policy", "apply", "--web-origin", "example.org"], "origin"),
        (["--config", "/nonexistent/settings.yaml", "ls"], "does not exist"),
        (["ingest", "--org", "o", "--project", "p", "--agl", "-70"], "agl must be between 0"),
        (["ingest", "--org", "o", "--project", "p", "--ground-elevation", "nan"], "finite"),
        (["ingest", "--org", "o", "--project", "p", "--batch-size", "0"], "batch size"),
        (["ingest", "--org", "o", "--project", "p", "--batch-size", "-1"], "batch size"),
    ],
)
def test_user_errors_are_one_line(config_file: Path, capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, message)


def test_ingest_command(config_file: Path, tmp_path: Path, capsys) -> None:
    write_survey(tmp_path / "imgs", Survey(lines=1, shots_per_line=3, camera=Camera(width=240, height=160)), flawed=True)
    assert run(capsys, "upload", str(tmp_path / "imgs"), "--org", "hot", "--project", "qa", "--no-progress")[0] == 0
    code, out, _ = run(capsys, "ingest", "--org", "hot", "--project", "qa", "--workers", "1", "--no-progress")
    assert code == 0 and "5 images (5 read, 0 unchanged), 3 usable" in out
    assert "SYN_OBLIQUE.JPG" in out and "manifest: s3://" in out
    code, out, _ = run(capsys, "ingest", "--org", "hot", "--project", "qa", "--workers", "1", "--no-progress")
    assert code == 0 and "(0 read, 5 unchanged)" in out
    code, _, err = run(capsys, "ingest", "--org", "hot", "--project", "nothing-here", "--workers", "1")
    assert_one_line_error(code, err, "no raw images")
    code, _, err = run(capsys, "ingest", "--org", "hot", "--project", "qa", "--cluster", "nonsense")
    assert_one_line_error(code, err, "scheduler address")


def test_process_command_quicklook_and_odm(config_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from tests.nodeodm_fake import FakeNodeODM
    from tests.test_odm import OUTPUTS

    write_survey(tmp_path / "imgs", Survey(lines=2, shots_per_line=3, camera=Camera(width=300, height=200)))
    run(capsys, "upload", str(tmp_path / "imgs"), "--org", "hot", "--project", "proc", "--no-progress")
    run(capsys, "ingest", "--org", "hot", "--project", "proc", "--workers", "1", "--no-progress")
    code, out, _ = run(capsys, "process", "--org", "hot", "--project", "proc", "--no-progress")
    assert code == 0 and "(quicklook): completed, 6 images" in out and "ortho.tif" in out and "EPSG:32737" in out
    code, out, _ = run(capsys, "process", "--org", "hot", "--project", "proc", "--no-progress")
    assert code == 0 and "unchanged inputs and options: kept" in out
    code, out, _ = run(capsys, "tiles", "--org", "hot", "--project", "proc", "--no-progress")
    assert code == 0 and "tiles (zoom" in out and ".pmtiles" in out and "kept 1" in out
    code, out, _ = run(capsys, "coverage", "--org", "hot")
    assert code == 0 and "6 footprints and 1 flight coverages from 1 project(s)" in out
    code, _, err = run(capsys, "policy", "apply", "--web-origin", "http://localhost:8000")
    code, out, _ = run(capsys, "map", "--org", "hot", "--project", "proc", "--html", str(tmp_path / "map.html"),
                       "--origin", "http://localhost:8000")
    page = (tmp_path / "map.html").read_text()
    assert code == 0 and "pmtiles://http://127.0.0.1" in page and "source-layer" in page and "unpkg.com" not in page
    assert "MapLibre GL JS" in page and "quick-look preview" in page  # inlined: works offline; says what it shows
    code, out, _ = run(capsys, "map", "--org", "hot", "--project", "proc", "--html", str(tmp_path / "cdn.html"), "--cdn")
    assert code == 0 and "unpkg.com/maplibre-gl" in (tmp_path / "cdn.html").read_text()
    code, out, _ = run(capsys, "map", "--org", "hot", "--project", "proc", "--html", str(tmp_path / "e.html"), "--embed")
    assert code == 0 and "no server" in out and "X-Amz-Signature" not in (tmp_path / "e.html").read_text()
    code, _, err = run(capsys, "map", "--org", "hot", "--project", "proc", "--html", str(tmp_path / "m.html"),
                       "--origin", "https://elsewhere.example")
    assert_one_line_error(code, err, "--web-origin https://elsewhere.example")
    code, _, err = run(capsys, "tiles", "--org", "hot", "--project", "proc", "--minzoom", "20", "--maxzoom", "3")
    assert_one_line_error(code, err, "zoom range 20..3")
    code, _, err = run(capsys, "process", "--org", "hot", "--project", "proc", "--option", "sharpen=yes")
    assert_one_line_error(code, err, "unknown quicklook option 'sharpen'")
    code, _, err = run(capsys, "process", "--org", "hot", "--project", "proc", "--engine", "odm")
    assert_one_line_error(code, err, "needs --node")
    if not OUTPUTS.is_dir():
        pytest.skip(f"real NodeODM outputs not available: {OUTPUTS} is absent")
    monkeypatch.setenv("WORKBENCH_NODE_TOKEN", "tok")
    with FakeNodeODM(OUTPUTS, token="tok") as url:
        code, out, _ = run(capsys, "process", "--org", "hot", "--project", "proc", "--engine", "odm", "--node", url,
                           "--option", "orthophoto-resolution=3", "--no-progress")
        assert code == 0 and "(odm): completed" in out and "dsm.tif" not in out and "points.laz" in out
        code, _, err = run(capsys, "process", "--org", "hot", "--project", "proc", "--engine", "odm", "--node", url,
                           "--option", "orthophoto_resolution=3")
        assert_one_line_error(code, err, "did you mean 'orthophoto-resolution'")
    code, _, err = run(capsys, "process", "--org", "hot", "--project", "proc", "--engine", "odm", "--node", "http://127.0.0.1:9")
    assert_one_line_error(code, err, "cannot use the node")


def test_missing_folder_and_empty_folder(config_file: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "upload", str(tmp_path / "nope"), "--org", "o", "--project", "p")
    assert_one_line_error(code, err, "is not a folder")
    code, _, err = run(capsys, "upload", str(tmp_path), "--org", "o", "--project", "p")
    assert_one_line_error(code, err, "no images")


def test_wrong_credentials(config_file: Path, settings: Settings, capsys) -> None:
    data = yaml.safe_load(config_file.read_text())
    data["secret_key"] = "definitely-wrong-secret"
    config_file.write_text(yaml.safe_dump(data))
    code, _, err = run(capsys, "ls")
    assert_one_line_error(code, err, "refused the credentials")
    assert "definitely-wrong-secret" not in err and settings.secret_key.reveal() not in err


def test_unknown_option_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["upload", ".", "--org", "o", "--project", "p", "--colour", "red"])
    assert caught.value.code == 2


def test_policy_diff_apply_verify(config_file: Path, capsys) -> None:
    code, _, err = run(capsys, "policy", "verify", "--web-origin", WEB)
    assert_one_line_error(code, err, "does not match")
    code, out, _ = run(capsys, "policy", "diff", "--web-origin", WEB)
    assert code == 0 and "+ workbench-logs-expire" in out and "+ workbench-web" in out
    code, out, _ = run(capsys, "policy", "apply", "--web-origin", WEB)
    assert code == 0 and "verified" in out
    code, out, _ = run(capsys, "policy", "verify", "--web-origin", WEB)
    assert code == 0 and "match" in out
    code, _, err = run(capsys, "policy", "apply", "--transitions")
    assert_one_line_error(code, err, "transitions")


def test_cors_diagnose_exit_codes(config_file: Path, settings: Settings, capsys) -> None:
    run(capsys, "policy", "apply", "--web-origin", WEB)
    from workbench.presign import Presigner
    from workbench.storage import Storage

    storage = Storage(settings)
    storage.put_bytes("pmtiles/o/a/2026-01-01.pmtiles", b"x")
    url = Presigner(storage).get("pmtiles/o/a/2026-01-01.pmtiles")
    code, out, _ = run(capsys, "cors", "diagnose", url, "--origin", WEB)
    assert code == 0 and "may GET" in out
    code, out, _ = run(capsys, "cors", "diagnose", url, "--origin", "https://elsewhere.example")
    assert code == 1 and "no CORS rule" in out


def test_prune_dry_run_then_real(config_file: Path, settings: Settings, capsys) -> None:
    from workbench.storage import Storage

    storage = Storage(settings)
    for day in range(1, 10):
        storage.put_bytes(f"pmtiles/ortho/o/2026-02-0{day}.pmtiles", b"x")
    code, out, _ = run(capsys, "prune", "--dry-run")
    assert code == 0 and out.count("would delete") == 3 and len(list(storage.list("pmtiles/"))) == 9
    code, out, _ = run(capsys, "prune")
    assert code == 0 and "deleted 2" in out and len(list(storage.list("pmtiles/"))) == 7


def _weed_left(data: Path) -> list[int]:
    """SeaweedFS processes still serving ``data`` (other test runs on the machine have other folders)."""
    import psutil

    return [p.pid for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "weed" and str(data) in " ".join(p.info["cmdline"] or [])]


@pytest.mark.slow
def test_demo_command_prints_the_summary(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "demo", "--no-progress", "--map-dir", str(tmp_path),
                           "--data", str(tmp_path / "s3")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "20 uploaded" in done.stdout and "GET (1 h)" in done.stdout and "X-Amz-Signature=" in done.stdout
    assert "18 usable; flags: 1 blurry, 1 not_nadir" in done.stdout and "SYN_OBLIQUE.JPG: gimbal pitch -10.0" in done.stdout
    assert "quicklook   ortho.tif" in done.stdout and "EPSG:32737" in done.stdout and "ortho (1 h)" in done.stdout
    assert "WebP tiles, zoom" in done.stdout and "pmtiles://http://127.0.0.1:" in done.stdout
    page = (tmp_path / "map.html").read_text()
    assert f"map         {tmp_path / 'map.html'}" in done.stdout and "pmtiles://embedded-ortho" in page
    assert "X-Amz-Signature" not in page and "unpkg.com" not in page  # carries its tiles and its JavaScript
    assert "it carries its tiles: no server needed" in done.stdout
    assert "lifecycle   applied" in done.stdout and "CORS        applied" in done.stdout
    assert _weed_left(tmp_path / "s3") == []
    again = subprocess.Popen([sys.executable, "-m", "workbench.cli", "demo", "--no-progress", "--map-dir", str(tmp_path),
                              "--data", str(tmp_path / "s3"), "--keep-running", "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = []
        while (line := again.stdout.readline()) and "press Ctrl+C to stop" not in line:
            printed.append(line)
        served = line.split(" or ", 1)[1].split(";")[0]  # "  or http://127.0.0.1:PORT/map.html; the embedded S3 keeps running"
        assert requests.get(served, timeout=10).content.decode() == page and _weed_left(tmp_path / "s3")  # served while it waits
        again.send_signal(signal.SIGINT)  # how the user ends the wait: not an interruption of the work
        out, err = again.communicate(timeout=60)
    finally:
        again.kill()
    printed = "".join(printed) + out
    flight = next(line for line in done.stdout.splitlines() if line.startswith("  flight"))
    assert again.returncode == 0 and flight in printed and "interrupted" not in err, err  # the same survey, the same flight
    assert "0 uploaded, 0 resumed, 20 skipped (already stored)" in printed and "20 images" in printed
    assert "lifecycle   already in place" in printed and "18 usable; flags: 1 blurry, 1 not_nadir" in printed
    assert _weed_left(tmp_path / "s3") == []


@pytest.mark.slow
def test_ctrl_c_during_the_demo_says_interrupted_and_stops_the_s3(tmp_path: Path) -> None:
    demo = subprocess.Popen([sys.executable, "-m", "workbench.cli", "demo", "--no-progress", "--map-dir", str(tmp_path),
                             "--data", str(tmp_path / "s3")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)  # as a terminal's job
    try:
        assert demo.stdout.readline().startswith("rendering 20 synthetic images")  # the S3 runs, the work has begun
        os.killpg(demo.pid, signal.SIGINT)  # a terminal's Ctrl+C: every process of the job gets it
        _, err = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == 130 and [line for line in err.splitlines() if line.strip()] == ["workbench: interrupted"], err
    assert _weed_left(tmp_path / "s3") == []


@pytest.mark.slow
def test_s3_serve_runs_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "s3", "serve", "--data", str(tmp_path / "s3")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl+C" in line or not line:
                break
        config = tmp_path / "s3" / "workbench.yaml"
        assert config.stat().st_mode & 0o077 == 0
        from workbench.config import load_settings
        from workbench.storage import Storage

        settings = load_settings(config_file=config, env={})
        assert settings.secret_key.reveal() not in "".join(lines)
        Storage(settings).put_bytes("projects/o/p/x.txt", b"served")
        assert _weed_left(tmp_path / "s3")  # the check below sees this server while it runs
        status = subprocess.run([sys.executable, "-m", "workbench.cli", "s3", "status", "--data", str(tmp_path / "s3")],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and settings.endpoint in status.stdout and f"{process.pid}" in status.stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert _weed_left(tmp_path / "s3") == []
    stopped = subprocess.run([sys.executable, "-m", "workbench.cli", "s3", "status", "--data", str(tmp_path / "s3")],
                             capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 1 and "no embedded S3 runs for" in stopped.stderr


def test_s3_stop_ends_a_server_others_still_use(tmp_path: Path) -> None:
    code = "from workbench.local import shared_server; import sys, time; shared_server(sys.argv[1]); print('up', flush=True); time.sleep(600)"
    user = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s3")], stdout=subprocess.PIPE, text=True)
    try:
        assert user.stdout.readline().strip() == "up" and _weed_left(tmp_path / "s3")
        done = subprocess.run([sys.executable, "-m", "workbench.cli", "s3", "stop", "--data", str(tmp_path / "s3")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "stopped the embedded S3 on http://127.0.0.1:" in done.stdout
        assert _weed_left(tmp_path / "s3") == []
    finally:
        user.kill()


def test_ingest_gives_a_height_to_a_camera_that_writes_none(config_file: Path, tmp_path: Path, capsys) -> None:
    survey = Survey(lines=1, shots_per_line=4, camera=Camera(width=240, height=160))
    write_survey(tmp_path / "compact", survey, xmp=False)
    code, _, _ = run(capsys, "upload", str(tmp_path / "compact"), "--org", "o", "--project", "compact", "--no-progress")
    assert code == 0
    code, out, _ = run(capsys, "ingest", "--org", "o", "--project", "compact", "--no-pixels", "--no-progress",
                       "--workers", "1")
    assert code == 0 and "4 of 4 image(s) have no footprint" in out and "--agl METRES" in out
    code, out, _ = run(capsys, "ingest", "--org", "o", "--project", "compact", "--no-pixels", "--no-progress",
                       "--workers", "1", "--agl", str(survey.altitude))
    assert code == 0 and "no footprint" not in out and "0 read, 4 unchanged" in out  # heights are flight-level: no re-read
