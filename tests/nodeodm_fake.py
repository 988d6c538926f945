"""A NodeODM stand-in for tests: the HTTP API pyodm and the workbench use, on 127.0.0.1.

Written from NodeODM's API (../shared/reference/nodeodm.md): info, options, task new init/upload/commit,
task info/output/cancel/remove, download all.zip (built from the real NodeODM outputs in
``../shared/datasets/odm_samples/nodeodm_outputs``, filtered by the task's ``outputs``), token auth as a
query parameter, status codes 10/20/30/40/50, and errors as HTTP 200 ``{"error": ...}``. Behaviours:
``fail_tasks`` (every task ends FAILED), ``drop_uploads`` (HTTP 500 on every other upload),
``polls_to_finish`` (RUNNING for that many info calls), ``stalled_polls`` (a busy node: the first status
calls answer late).
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid as uuidlib
import zipfile
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

OPTIONS = [
    {"name": "fast-orthophoto", "type": "bool", "value": "false", "domain": "bool", "help": "Skips dense reconstruction"},
    {"name": "skip-3dmodel", "type": "bool", "value": "false", "domain": "bool", "help": ""},
    {"name": "skip-report", "type": "bool", "value": "false", "domain": "bool", "help": ""},
    {"name": "auto-boundary", "type": "bool", "value": "false", "domain": "bool", "help": ""},
    {"name": "dsm", "type": "bool", "value": "false", "domain": "bool", "help": ""},
    {"name": "dtm", "type": "bool", "value": "false", "domain": "bool", "help": ""},
    {"name": "cog", "type": "bool", "value": "false", "domain": "bool", "help": ""},
    {"name": "feature-quality", "type": "enum", "value": "high", "domain": ["ultra", "high", "medium", "low", "lowest"], "help": ""},
    {"name": "pc-quality", "type": "enum", "value": "medium", "domain": ["ultra", "high", "medium", "low", "lowest"], "help": ""},
    {"name": "orthophoto-resolution", "type": "float", "value": "5", "domain": "float > 0.0", "help": ""},
    {"name": "min-num-features", "type": "int", "value": "10000", "domain": "integer", "help": ""},
]
OUTPUT_LINES = ["[INFO]    Initializing ODM", "[INFO]    Running dataset stage", "[INFO]    Running OpenSfM",
                "[INFO]    Finished odm_orthophoto stage", "Compressing all.zip"]
FAILED_LINES = ["[INFO]    Running OpenSfM", "[ERROR]   Not enough features: the reconstruction failed",
                "ODM app finished - Tue Nov 24 2026"]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """No access log: tests read stderr."""


class FakeNodeODM:
    """``with FakeNodeODM(outputs_dir, token="...") as url:`` a node at ``url`` until the block ends."""

    def __init__(self, outputs_dir: Path, token: str = "", fail_tasks: bool = False, drop_uploads: bool = False,
                 polls_to_finish: int = 2, stalled_polls: int = 0, stall_seconds: float = 1.0, bad_gateway_polls: int = 0,
                 not_a_node: bool = False) -> None:
        self.outputs_dir = outputs_dir
        self.token = token
        self.fail_tasks = fail_tasks
        self.drop_uploads = drop_uploads
        self.polls_to_finish = polls_to_finish
        self.stalled_polls = stalled_polls  # the first N status calls answer only after stall_seconds (a busy node)
        self.stall_seconds = stall_seconds
        self.bad_gateway_polls = bad_gateway_polls  # the first N status calls get a proxy's 502 (ClusterODM, nginx)
        self.not_a_node = not_a_node  # answers every request with an HTML page, as a wrong URL would
        self.tasks: dict[str, dict[str, Any]] = {}
        self.uploads = 0
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, mimetype="application/json")

    def _task_info(self, task: dict[str, Any]) -> dict[str, Any]:
        return {"uuid": task["uuid"], "name": task["name"], "dateCreated": task["created"], "processingTime": 1000,
                "status": {"code": task["status"]}, "options": task["options"], "imagesCount": len(task["images"]),
                "progress": task["progress"]}

    def _advance(self, task: dict[str, Any]) -> None:
        if task["status"] not in (10, 20):
            return
        task["polls"] += 1
        task["status"], task["progress"] = 20, min(99, task["polls"] * 40)
        if task["polls"] >= self.polls_to_finish:
            task["status"] = 30 if self.fail_tasks else 40
            task["progress"] = 100
            task["output"] = FAILED_LINES if self.fail_tasks else OUTPUT_LINES

    def _zip(self, task: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            for path in sorted(self.outputs_dir.rglob("*")):
                relative = path.relative_to(self.outputs_dir).as_posix()
                if path.is_file() and (not task["outputs"] or relative in task["outputs"]):
                    bundle.write(path, relative)
        return buffer.getvalue()

    # -- the API ------------------------------------------------------------------------------------

    @Request.application  # type: ignore[arg-type]
    def app(self, request: Request) -> Response:
        if self.not_a_node:
            return Response("<html><body>Welcome to nginx!</body></html>", mimetype="text/html")
        if self.token and request.args.get("token") != self.token:
            return self._json({"error": "Invalid authentication token: token does not match."})
        path, method = request.path, request.method
        if path == "/info":
            return self._json({"version": "2.2.3", "taskQueueCount": 0, "totalMemory": 8e9, "availableMemory": 4e9,
                               "cpuCores": 2, "maxImages": None, "maxParallelTasks": 1, "engineVersion": "3.6.0",
                               "engine": "odm"})
        if path == "/options":
            return self._json(OPTIONS)
        if path == "/task/new/init" and method == "POST":
            options = json.loads(request.form.get("options", "[]"))
            known = {o["name"]: o for o in OPTIONS}
            for option in options:
                spec = known.get(option["name"])
                if spec and spec["type"] == "enum" and option["value"] not in spec["domain"]:
                    return self._json({"error": json.dumps([{"name": option["name"], "error": f"Invalid value {option['value']} (not in enum)"}])})
            task_id = str(uuidlib.uuid4())
            self.tasks[task_id] = {"uuid": task_id, "name": request.form.get("name", ""), "created": int(time.time() * 1000),
                                   "options": [o for o in options if o["name"] in known],  # unknown names dropped silently
                                   "outputs": json.loads(request.form.get("outputs", "[]")), "images": [],
                                   "status": None, "progress": 0, "polls": 0, "output": []}
            return self._json({"uuid": task_id})
        parts = path.strip("/").split("/")
        if path.startswith("/task/new/upload/") and method == "POST":
            with self.lock:
                self.uploads += 1
                drop = self.drop_uploads and self.uploads % 2 == 0
            if drop:
                return Response("upload dropped", status=500)
            task = self.tasks.get(parts[-1])
            if task is None:
                return self._json({"error": f"{parts[-1]} not found"})
            task["images"] += [f.filename for f in request.files.getlist("images")]
            return self._json({"success": True})
        if path.startswith("/task/new/commit/") and method == "POST":
            task = self.tasks.get(parts[-1])
            if task is None:
                return self._json({"error": f"{parts[-1]} not found"})
            task["status"] = 10
            return self._json({"uuid": task["uuid"]})
        if path in ("/task/cancel", "/task/remove") and method == "POST":
            task_id = request.form.get("uuid") or (request.get_json(silent=True) or {}).get("uuid")
            task = self.tasks.get(task_id or "")
            if task is None:
                return self._json({"error": f"{task_id} not found"})
            if path == "/task/cancel":
                task["status"] = 50
            else:
                del self.tasks[task["uuid"]]
            return self._json({"success": True})
        if len(parts) >= 3 and parts[0] == "task" and parts[1] in self.tasks:
            task = self.tasks[parts[1]]
            if parts[2] == "info":
                with self.lock:
                    stall = self.stalled_polls > 0
                    self.stalled_polls -= 1
                    bad_gateway = self.bad_gateway_polls > 0
                    self.bad_gateway_polls -= 1
                if bad_gateway:
                    return Response("<html>502 Bad Gateway</html>", status=502, mimetype="text/html")
                if stall:
                    time.sleep(self.stall_seconds)
                self._advance(task)
                return self._json(self._task_info(task))
            if parts[2] == "output":
                return self._json(task["output"][int(request.args.get("line", 0)):])
            if parts[2] == "download":
                if parts[-1] != "all.zip":
                    return self._json({"error": "Invalid asset"})
                if task["status"] != 40:
                    return self._json({"error": "Asset not ready"})
                return Response(self._zip(task), mimetype="application/zip")
        if len(parts) >= 2 and parts[0] == "task":
            return self._json({"error": f"{parts[1]} not found"})
        return Response("not found", status=404)
