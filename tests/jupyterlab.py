"""A real JupyterLab (under a base URL, as on a hub) driven in Debian's chromium by Playwright, for the tests
and the notebooks benchmark: open a notebook, Run All, wait, read the outputs, look at the maps."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                "--disable-background-networking", "--disable-component-update", "--no-first-run"]
BACKGROUND = (0xF4, 0xF4, 0xF0)  # workbench.maps.BACKGROUND

_READY = """(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.context && w.context.path === path && w.context.isReady && w.sessionContext && w.sessionContext.session
            && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === "idle"); }"""
_DONE = """() => { const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter((c) => c.model.type === "code");
  return w.sessionContext.session.kernel.status === "idle"
    && cells.every((c) => c.model.executionCount !== null && c.model.executionCount !== undefined); }"""
_ERRORS = """() => { const w = window.jupyterapp.shell.currentWidget; const found = [];
  for (const c of w.content.widgets.filter((c) => c.model.type === "code"))
    for (const o of c.model.outputs.toJSON())
      if (o.output_type === "error") found.push(o.ename + ": " + o.evalue);
      else if (o.output_type === "stream" && o.name === "stderr" && /Traceback|Error/.test(o.text)) found.push(String(o.text));
  return found; }"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """``jupyter lab`` on 127.0.0.1 serving ``root`` under ``base_url``, with the workbench's server extension."""

    def __init__(self, root: Path, state: Path, base_url: str = "/user/test/") -> None:
        self.root, self.state, self.base_url = root, state, base_url
        self.data_home = state / "xdg-data"  # the kernels' embedded S3 lives in data_home/workbench/s3
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where the browser opens it: 127.0.0.1, as ``jupyter lab`` prints it."""
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def __enter__(self) -> JupyterLab:
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(self.state / "config"), "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"),
               "IPYTHONDIR": str(self.state / "ipython"), "XDG_DATA_HOME": str(self.data_home)}
        self.state.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={self.port}",
                   "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}", f"--ServerApp.base_url={self.base_url}",
                   f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True", "--allow-root",
                   "--ServerApp.jpserver_extensions={'workbench.jupyter': True}", "--LabApp.news_url=None",
                   "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log = open(self.state / "jupyter.log", "wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}api/status", params={"token": self.token}, timeout=2).ok:
                    return self
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"JupyterLab did not start: {(self.state / 'jupyter.log').read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        self.log.close()

    def kernels(self) -> list[dict[str, Any]]:
        """The running kernels (REST API)."""
        return requests.get(f"{self.url}api/kernels", params={"token": self.token}, timeout=10).json()


def copy_notebooks(source: Path, target: Path) -> Path:
    """The project's notebooks in a folder JupyterLab may write (saved outputs stay out of the repository)."""
    target.mkdir(parents=True, exist_ok=True)
    for notebook in source.glob("*.ipynb"):
        shutil.copy(notebook, target / notebook.name)
    return target


@contextlib.contextmanager
def browser(offline: bool = True) -> Iterator[tuple[Any, list[str]]]:
    """A chromium page; with ``offline`` every request to anything but loopback is refused and recorded."""
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            context = chromium.new_context(viewport={"width": 1300, "height": 900})
            if offline:
                def route(request_route: Any) -> None:
                    host = urlsplit(request_route.request.url).hostname or ""
                    if request_route.request.url.startswith(("data:", "blob:", "file:")) or host in ("127.0.0.1", "localhost"):
                        request_route.continue_()
                    else:
                        refused.append(request_route.request.url)
                        request_route.abort()

                context.route("**/*", route)
            yield context.new_page(), refused
        finally:
            chromium.close()


def run_all(page: Any, lab: JupyterLab, notebook: str, timeout_s: float = 420) -> list[str]:
    """Open ``notebook``, Run All, wait until every code cell ran and the kernel is idle; return error outputs."""
    page.goto(f"{lab.url}lab/workspaces/{Path(notebook).stem}/tree/{notebook}?reset&token={lab.token}")
    page.wait_for_function(_READY, arg=notebook, timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_timeout(1000)
    page.wait_for_function(_DONE, timeout=timeout_s * 1000, polling=1000)
    return page.evaluate(_ERRORS)


def map_pictures(page: Any, folder: Path, stem: str, settle_s: float = 30) -> list[Path]:
    """Screenshots of every MapLibre map in the open notebook, taken once it has stopped changing."""
    maps = page.locator(".maplibregl-map")
    shots = []
    for i in range(maps.count()):
        element = maps.nth(i)
        element.scroll_into_view_if_needed()
        previous = None
        deadline = time.monotonic() + settle_s
        path = folder / f"{stem}-map{i}.png"
        while time.monotonic() < deadline:
            page.wait_for_timeout(1500)
            element.screenshot(path=str(path))
            current = np.asarray(Image.open(path).convert("RGB")).astype(int)
            if previous is not None and previous.shape == current.shape and np.abs(previous - current).mean() < 0.5 \
                    and painted(path) > 0.02:
                break
            previous = current
        shots.append(path)
    return shots


def painted(path: Path) -> float:
    """Share of a map screenshot that is not the plain background."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return float((np.abs(pixels - np.array(BACKGROUND)).sum(axis=2) > 30).mean())


def painted_centre(path: Path) -> tuple[float, float]:
    """Centre of the painted pixels as a share of the picture's width and height."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    rows, cols = np.nonzero(np.abs(pixels - np.array(BACKGROUND)).sum(axis=2) > 30)
    return float(cols.mean() / pixels.shape[1]), float(rows.mean() / pixels.shape[0])


def kernel_processes(lab: JupyterLab) -> list[Any]:
    """The kernel processes JupyterLab started."""
    import psutil

    assert lab.process is not None
    return [p for p in psutil.Process(lab.process.pid).children(recursive=True)
            if "ipykernel_launcher" in " ".join(p.cmdline())]


def seaweed_processes(data_home: Path) -> list[Any]:
    """SeaweedFS processes serving a folder under ``data_home``."""
    import psutil

    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "weed" and str(data_home) in " ".join(process.info["cmdline"] or []):
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
    return found
