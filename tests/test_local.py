"""The embedded S3: loopback only, persistent data, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench import local
from workbench.errors import LocalS3Error
from workbench.local import (
    LOOPBACK,
    LocalS3,
    free_ports,
    leave,
    live_leases,
    local_s3,
    register,
    registered_ports,
    running_state,
    stop_server,
    unregister,
)
from workbench.storage import Storage
from workbench.watchdog import GRACE, add_lease, group_alive, locked, release_lease


def test_every_listening_port_is_on_loopback(s3_server: LocalS3) -> None:
    addresses = s3_server.listening_addresses()
    assert (LOOPBACK, s3_server.ports["s3"]) in addresses
    assert len(addresses) >= 5
    assert {ip for ip, _ in addresses} == {LOOPBACK}


def test_stop_leaves_no_process_and_no_temporary_folder() -> None:
    server = LocalS3()
    server.start()
    assert server.process is not None
    parent = psutil.Process(server.process.pid)
    family = [parent, *parent.children(recursive=True)]
    data_dir = server.data_dir
    server.stop()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)
    assert not data_dir.exists()


def test_persistent_folder_keeps_objects_and_credentials(tmp_path: Path) -> None:
    with local_s3(data_dir=tmp_path / "s3") as first:
        Storage(first).put_bytes("projects/o/p/kept.txt", b"still here")
    assert (tmp_path / "s3" / "credentials.json").stat().st_mode & 0o077 == 0
    with local_s3(data_dir=tmp_path / "s3") as second:
        assert second.access_key == first.access_key and second.secret_key == first.secret_key
        assert Storage(second).get_bytes("projects/o/p/kept.txt") == b"still here"


def test_a_relative_folder_is_the_one_under_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the server runs in its folder: a relative path must not be taken from there
    with local_s3(data_dir="s3") as settings:
        Storage(settings).put_bytes("projects/o/p/kept.txt", b"here")
    with local_s3(data_dir=tmp_path / "s3") as again:
        assert again.access_key == settings.access_key and Storage(again).get_bytes("projects/o/p/kept.txt") == b"here"


def test_a_busy_port_is_a_clear_error(s3_server: LocalS3, tmp_path: Path) -> None:
    server = LocalS3(data_dir=tmp_path / "busy", s3_port=s3_server.ports["s3"])
    with pytest.raises(LocalS3Error):
        server.start(timeout=20)
    assert server.process is None


def test_a_server_that_exits_is_reported_by_its_fatal_line_not_its_stack_trace() -> None:
    log = ("  S3           starting\n"  # what weed mini 4.x wrote when it could not read its S3 config
           "W1202 14:09:12.126831 auth_credentials.go:634 fail to read s3/s3.json : open s3/s3.json: no such file\n"
           "F1202 14:09:12.126856 auth_credentials.go:376 fail to load config file s3/s3.json: no such file\n"
           "goroutine 357 [running]:\n\tgithub.com/seaweedfs/seaweedfs/weed/command/mini.go:1473 +0x1e5\n")
    assert local.exit_reason(log) == "fail to load config file s3/s3.json: no such file"
    assert local.exit_reason("x\npanic: runtime error: index out of range\n\tmain.go:3\n") == "runtime error: index out of range"
    assert local.exit_reason("Port allocation failed: reserved for gRPC calculation\n") == "Port allocation failed: reserved for gRPC calculation"
    assert local.exit_reason("") == "(no output)"


def _start_in_child(code: str) -> tuple[subprocess.Popen[str], list[str]]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return child, child.stdout.readline().split()


def _gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def test_a_temporary_server_dies_with_its_parent_even_on_sigkill() -> None:
    child, (data_dir, pid) = _start_in_child(
        "from workbench.local import LocalS3; import time; s = LocalS3(); s.start(); "
        "print(s.data_dir, s.process.pid, flush=True); time.sleep(600)")
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert _gone(int(pid)), "SeaweedFS outlived its parent"
    deadline = time.monotonic() + 10
    while Path(data_dir).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(data_dir).exists()  # the temporary folder went too


def test_one_shared_server_per_folder_lives_while_someone_uses_it(tmp_path: Path) -> None:
    folder = tmp_path / "user-s3"
    code = ("from workbench.local import shared_server; import sys, time; s, started = shared_server(sys.argv[1]); "
            "print(s.endpoint, started, flush=True); time.sleep(600)")
    first = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        one, two = first.stdout.readline().split(), second.stdout.readline().split()
        assert one[0] == two[0] and {one[1], two[1]} == {"True", "False"}  # the second reused the first's server
        state = running_state(folder)
        assert state is not None and live_leases(folder) == sorted([first.pid, second.pid])
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(5)
        assert running_state(folder) is not None  # still used by the second
        second.send_signal(signal.SIGKILL)
        second.wait()
        assert _gone(int(state["pid"]))
        assert folder.exists() and (folder / "credentials.json").exists()  # a user's folder is kept
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
        stop_server(folder)


def test_the_watchdog_never_stops_a_server_that_a_new_user_is_joining(tmp_path: Path) -> None:
    """Notebook N's kernel ends as notebook N+1's opens its session: the watchdog's grace ran out while the newcomer,
    holding the folder's lock, checked the server it had found running; it stopped it under the newcomer (Run All
    of the next notebook then failed with 'the embedded S3 ... does not answer')."""
    folder = tmp_path / "user-s3"
    code = ("from workbench.local import shared_server; import sys, time; s, started = shared_server(sys.argv[1]); "
            "print(s.endpoint, started, flush=True); time.sleep(600)")
    first = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().split()[1] == "True"
        state = running_state(folder)
        assert state is not None
        with locked(folder):  # what shared_server holds while it checks the running server and takes its lease
            first.send_signal(signal.SIGKILL)
            first.wait()
            time.sleep(GRACE + 3)  # the last user is gone for longer than the grace
            assert group_alive(int(state["pid"])), "the watchdog stopped the server while a new user was joining it"
            add_lease(folder)
        time.sleep(GRACE + 1)
        assert running_state(folder) is not None  # joined: it runs for the new user
        assert leave(folder) == []
        assert not group_alive(int(state["pid"]))
    finally:
        if first.poll() is None:
            first.kill()
        release_lease(folder)
        stop_server(folder)


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with local_s3(data_dir=shared):
        pass
    assert shared.stat().st_mode & 0o7777 == 0o1777
    fresh = tmp_path / "fresh"
    with local_s3(data_dir=fresh):
        pass
    assert fresh.stat().st_mode & 0o777 == 0o700


@pytest.mark.slow
def test_the_embedded_s3_takes_writes_beyond_seventy_volumes(tmp_path: Path) -> None:
    """weed mini's automatic volume count stopped near 71 volumes (each bucket takes one): then every write failed."""
    server = LocalS3(data_dir=tmp_path / "s3")
    settings = server.start()
    try:
        for i in range(80):
            bucket = Storage(settings.with_(bucket=f"many-{i:03d}"))
            bucket.ensure_bucket()
            bucket.put_bytes("projects/o/p/raw/f/x.txt", b"x")
        assert Storage(settings.with_(bucket="many-079")).get_bytes("projects/o/p/raw/f/x.txt") == b"x"
    finally:
        server.stop()


class _ScriptedSocket:
    """A socket whose ephemeral ports come from a script (binding a given port always works)."""

    script: list[int] = []

    def __init__(self) -> None:
        self.port = 0

    def bind(self, address: tuple[str, int]) -> None:
        self.port = address[1] or self.script.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return LOOPBACK, self.port

    def close(self) -> None:
        pass

    def __enter__(self) -> "_ScriptedSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_no_port_is_the_grpc_port_of_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """weed mini refused to start when the OS happened to hand out p and p + 10000 ('reserved for gRPC calculation')."""
    monkeypatch.setattr(local.socket, "socket", _ScriptedSocket)
    _ScriptedSocket.script = [33439, 43439, 20001, 20002]
    assert free_ports(3) == [33439, 20001, 20002]
    _ScriptedSocket.script = [43439, 23439, 33439, 20001]  # the companion of the fixed port, the port it is the companion of
    assert free_ports(1, fixed=(33439,)) == [20001]


def test_stopping_an_old_server_leaves_the_port_to_the_new_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port freed by a killed server and taken by a new one: the old server's clean-up must not unlist the new
    one (the Jupyter proxy then answered 404 for it: a blank map; seen with two test workers)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a live process group, as a server is
    try:
        old, new = 999_999_991, server.pid  # a pid that has ended, and the new server's
        register(45499, old)
        register(45499, new)
        unregister(45499, old)
        assert registered_ports() == {45499}
        unregister(45499, new)
        assert registered_ports() == set()
    finally:
        server.kill()
        server.wait()
