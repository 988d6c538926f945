"""The ``odm`` engine: NodeODM or ClusterODM through pyodm, images from the bucket, products to the bucket.

Known traps, handled here:

* pyodm's ``Node`` shares a mutable default query dict, so one node's token can leak into another's
  URLs; it also speaks https only on port 443 and drops path prefixes. :class:`NodeClient` builds every
  URL itself from the node URL (scheme, host, port, path) and its own token.
* pyodm's ``create_task`` hangs forever when an upload fails and no progress callback is given, and
  fetches presigned URLs with no timeout or status check. The workbench therefore drives NodeODM's
  init / upload / commit itself (the same multipart requests pyodm sends): each image is streamed from
  the bucket into one upload, at most ``parallel_uploads`` at a time, so memory is bounded by that many
  images whatever the project size; uploads are retried with backoff unless NodeODM says ``noRetry``.
  Everything after the commit (status, output, cancel, remove, download) is pyodm's ``Task``.
* NodeODM drops unknown option names silently and answers errors as HTTP 200 ``{"error": ...}``: options
  are checked against the node's ``/options`` (names, types, enum domains) before anything is sent, and
  every ``error`` reply is a failure.
* NodeODM can stop answering for a while under load: the HTTP timeout is 120 s and status polling
  survives connection errors for ``max_poll_failures`` polls.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pyodm import Node
from pyodm.api import Task
from pyodm.exceptions import (
    NodeConnectionError,
    NodeResponseError,
    NodeServerError,
    OdmError,
)
from pyodm.types import TaskStatus
from requests_toolbelt.multipart.encoder import MultipartEncoder

from workbench.engines.cog import write_cog
from workbench.engines.runs import EngineError, EngineOutput
from workbench.errors import WorkbenchError
from workbench.options import parse_number
from workbench.progress import bar as progress_bar
from workbench.storage import Storage

PRESETS: dict[str, dict[str, Any]] = {
    "fast-orthophoto": {"fast-orthophoto": True, "skip-3dmodel": True, "skip-report": True, "feature-quality": "medium",
                        "auto-boundary": True},
    "standard": {"dsm": True, "skip-3dmodel": True, "auto-boundary": True},
    "high": {"dsm": True, "dtm": True, "feature-quality": "high", "pc-quality": "high", "auto-boundary": True},
}
OUTPUTS = {  # NodeODM output path -> product name
    "odm_orthophoto/odm_orthophoto.tif": "ortho.tif",
    "odm_dem/dsm.tif": "dsm.tif",
    "odm_dem/dtm.tif": "dtm.tif",
    "odm_georeferencing/odm_georeferenced_model.laz": "points.laz",
}
_TYPES = {"int": int, "float": float, "string": str, "bool": bool, "enum": str}


class NodeClient(Node):  # type: ignore[misc]
    """A pyodm ``Node`` whose URLs are built from its own URL and token only (no shared defaults)."""

    def __init__(self, url: str, token: str = "", timeout: float = 120) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WorkbenchError(f"node URL {url!r} must look like http(s)://host:port")
        query = dict(parse_qsl(parts.query))
        super().__init__(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                         token or query.get("token", ""), timeout)
        self.scheme, self.prefix = parts.scheme, parts.path.rstrip("/")
        self.netloc = parts.netloc.rsplit("@", 1)[-1]

    def url(self, url: str, query: dict[str, Any] | None = None) -> str:  # noqa: D102 - pyodm API
        values = dict(query or {})
        if self.token:
            values["token"] = self.token
        return urlunsplit((self.scheme, self.netloc, self.prefix + url, urlencode(values), ""))

    def get(self, url: str, query: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # noqa: D102 - pyodm API
        return super().get(url, dict(query or {}), **kwargs)

    def post(self, url: str, data: Any = None, headers: dict[str, str] | None = None) -> Any:  # noqa: D102 - pyodm API
        return super().post(url, data=data, headers=dict(headers or {}))

    def public_url(self) -> str:
        """The node URL without its token (for records and messages)."""
        return urlunsplit((self.scheme, self.netloc, self.prefix, "", ""))


def check_options(available: list[Any], options: dict[str, Any]) -> dict[str, Any]:
    """Refuse option names the node does not know and values of the wrong type or outside the domain."""
    known = {option.name: option for option in available}
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in known:
            close = [k for k in known if name.replace("_", "-") == k]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise WorkbenchError(f"the node does not know option {name!r}{hint}: NodeODM would drop it silently")
        option = known[name]
        kind = _TYPES.get(option.type, str)
        if kind is bool:
            if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
                raise WorkbenchError(f"option {name} must be true or false, got {value!r}")
            checked[name] = value if isinstance(value, bool) else str(value).lower() == "true"
            continue
        if kind in (int, float):
            converted = parse_number(value, kind, f"option {name}")
        else:
            converted = kind(value)
        if option.type == "enum" and option.domain and converted not in option.domain:
            raise WorkbenchError(f"option {name} must be one of {', '.join(map(str, option.domain))}, got {value!r}")
        checked[name] = converted
    return checked


class OdmEngine:
    """See the module docstring. ``preset`` plus free ``options`` (free options win)."""

    name = "odm"

    def __init__(self, node_url: str, token: str = "", preset: str = "fast-orthophoto", parallel_uploads: int = 4,
                 poll_seconds: float = 3.0, max_poll_failures: int = 20, upload_retries: int = 5,
                 retry_seconds: float = 2.0, timeout: float = 120.0) -> None:
        if preset not in PRESETS:
            raise WorkbenchError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        self.node = NodeClient(node_url, token, timeout=timeout)
        self.preset = preset
        self.parallel_uploads = parallel_uploads
        self.poll_seconds = poll_seconds
        self.max_poll_failures = max_poll_failures
        self.upload_retries = upload_retries
        self.retry_seconds = retry_seconds
        self.peak_upload_bytes = 0

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except NodeResponseError as exc:
            raise EngineError(f"{what}: the node answered: {exc}") from None
        except (NodeConnectionError, NodeServerError) as exc:
            raise EngineError(f"{what}: cannot use the node at {self.node.public_url()}: {exc}") from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # pyodm parsing an answer that is not NodeODM's JSON
            raise EngineError(f"{what}: the node at {self.node.public_url()} did not answer like NodeODM "
                              f"({type(exc).__name__}): is the URL right?") from None

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The preset merged with ``options``, checked against the node's ``/options``."""
        available = self._call("read the node's options", self.node.options)
        return check_options(available, {**PRESETS[self.preset], **options})

    def versions(self) -> dict[str, str]:
        """The node's and engine's versions."""
        info = self._call("read the node's info", self.node.info)
        return {"node": str(info.version), "engine": f"{info.engine} {info.engine_version}", "node_url": self.node.public_url()}

    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> EngineOutput:
        """Upload, process on the node, download the needed outputs, return the products."""
        task = self._create_task(storage, inputs, options, progress)
        try:
            self._wait(task, progress)
            archive = self._call("download the results", task.download_zip, str(workdir))
        except KeyboardInterrupt:
            self._call("cancel the task", task.cancel)
            raise
        products: dict[str, Path] = {}
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
            for source, product in OUTPUTS.items():
                if source in names:
                    extracted = Path(bundle.extract(source, workdir / "outputs"))
                    products[product] = write_cog(extracted, workdir / product) if product.endswith(".tif") else extracted
        if "ortho.tif" not in products:
            raise EngineError("the node finished but returned no orthophoto", self._output(task))
        self._call("remove the task from the node", task.remove)
        return EngineOutput(products)

    def _create_task(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], progress: bool) -> Task:
        wanted = [path for path, product in OUTPUTS.items()
                  if product not in ("dsm.tif", "dtm.tif") or options.get(product[:3])]  # DEMs only when asked for
        fields = {"name": f"workbench {inputs[0]['key'].split('/')[2]}", "options": json.dumps(
            [{"name": k, "value": v} for k, v in options.items()]), "outputs": json.dumps(sorted(wanted))}
        encoder = MultipartEncoder(fields=fields)
        result = self._call("create the task", self.node.post, "/task/new/init", encoder, {"Content-Type": encoder.content_type})
        uuid = result["uuid"]
        lock = threading.Lock()
        in_flight = {"bytes": 0}
        given_up = threading.Event()  # one upload failed for good: the others stop retrying at once

        def upload(row: dict[str, Any]) -> None:
            for attempt in range(self.upload_retries + 1):
                if given_up.is_set():
                    raise EngineError(f"upload {row['name']}: stopped, another upload to the node failed")
                data = storage.get_bytes(row["key"])
                with lock:
                    in_flight["bytes"] += len(data)
                    self.peak_upload_bytes = max(self.peak_upload_bytes, in_flight["bytes"])
                try:
                    part = MultipartEncoder(fields={"images": (row["name"], data, "image/jpeg")})
                    reply = self.node.post(f"/task/new/upload/{uuid}", data=part, headers={"Content-Type": part.content_type})
                    if isinstance(reply, dict) and reply.get("success"):
                        return
                    raise NodeServerError(f"unexpected reply {reply!r}")
                except NodeResponseError as exc:
                    given_up.set()
                    raise EngineError(f"upload {row['name']}: the node answered: {exc}") from None
                except OdmError as exc:
                    if attempt == self.upload_retries:
                        given_up.set()
                        raise EngineError(f"upload {row['name']} failed {attempt + 1} times: {exc}") from None
                finally:
                    with lock:
                        in_flight["bytes"] -= len(data)
                given_up.wait(self.retry_seconds * (attempt + 1))

        with cf.ThreadPoolExecutor(max_workers=self.parallel_uploads) as pool, \
                progress_bar(total=len(inputs), desc="upload to node", unit="img", disable=not progress) as bar:
            futures = [pool.submit(upload, row) for row in inputs]
            try:
                for future in cf.as_completed(futures):
                    future.result()
                    bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        self._call("start the task", self.node.post, f"/task/new/commit/{uuid}")
        return Task(self.node, uuid)

    def _wait(self, task: Task, progress: bool) -> None:
        failures = 0
        with progress_bar(total=100, desc="processing", unit="%", disable=not progress) as bar:
            while True:
                try:
                    info = task.info()
                    failures = 0
                except (NodeConnectionError, NodeServerError) as exc:  # refused, timed out, or a 5xx from a proxy
                    failures += 1
                    if failures > self.max_poll_failures:
                        raise EngineError(f"the node at {self.node.public_url()} stopped answering "
                                          f"({failures} attempts; last: {str(exc).splitlines()[0][:160]})") from None
                    time.sleep(self.poll_seconds)
                    continue
                except NodeResponseError as exc:
                    raise EngineError(f"task status: the node answered: {exc}") from None
                bar.update(max(0, int(info.progress) - bar.n))
                if info.status == TaskStatus.COMPLETED:
                    return
                if info.status in (TaskStatus.FAILED, TaskStatus.CANCELED):
                    state = "failed" if info.status == TaskStatus.FAILED else "was canceled on the node"
                    detail = f": {info.last_error}" if info.last_error else ""
                    raise EngineError(f"NodeODM task {task.uuid} {state}{detail}", self._output(task))
                time.sleep(self.poll_seconds)

    def _output(self, task: Task) -> list[str]:
        try:
            return [str(line) for line in task.output()][-50:]
        except OdmError:
            return []
