"""A Jupyter server extension that passes presigned reads of the embedded S3 on to the browser.

On Binder, JupyterHub or any remote JupyterLab, the embedded S3 listens on 127.0.0.1 of the machine
running the kernel, which the user's browser cannot reach; the Jupyter server can. Maps then fetch
``{base_url}workbench/s3/{port}/{bucket}/{key}?{presigned query}`` from the Jupyter server (same origin:
no CORS), which forwards the request unchanged to ``http://127.0.0.1:{port}`` (so the signature, made for
that host, still verifies) and returns the answer. Deliberately narrow, where a general proxy such as
jupyter-server-proxy forwards any method to any local port:

* only GET and HEAD (anything else: 405), only with a presigned query (``X-Amz-Signature``; else 403);
* only to ports where an embedded S3 of this user runs (:func:`workbench.local.registered_ports`; else 404);
* only for users the Jupyter server has authenticated; only the request headers a range read needs.

Enabled by ``etc/jupyter/jupyter_server_config.d/workbench.json`` (installed with the package), or by
``jupyter server extension enable workbench.jupyter``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from workbench.local import LOOPBACK, registered_ports

FORWARDED_REQUEST = ("Range", "If-Match", "If-None-Match", "If-Modified-Since")
FORWARDED_RESPONSE = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified",
                      "Cache-Control", "Expires")
MAX_BODY = 64 * 1024 * 1024  # range reads of map tiles are kilobytes


class EmbeddedS3Handler(JupyterHandler):
    """GET/HEAD ``workbench/s3/{port}/{path}?{presigned query}`` (see the module docstring)."""

    @web.authenticated
    async def get(self, port: str, path: str) -> None:
        """Forward a presigned GET."""
        await self._forward(int(port))

    @web.authenticated
    async def head(self, port: str, path: str) -> None:
        """Forward a presigned HEAD."""
        await self._forward(int(port))

    async def _forward(self, port: int) -> None:
        if port not in registered_ports():
            raise web.HTTPError(404, "no embedded S3 of this user listens on that port")
        if "X-Amz-Signature=" not in self.request.query:
            raise web.HTTPError(403, "only presigned URLs are passed on")
        marker = f"/workbench/s3/{port}"
        raw_path = self.request.path.split(marker, 1)[1]  # as sent: the signature covers the encoded path
        headers = {name: self.request.headers[name] for name in FORWARDED_REQUEST if name in self.request.headers}
        request = HTTPRequest(f"http://{LOOPBACK}:{port}{raw_path}?{self.request.query}", method=self.request.method,
                              headers=headers, follow_redirects=False, request_timeout=120,
                              decompress_response=False)
        response = await AsyncHTTPClient(max_body_size=MAX_BODY).fetch(request, raise_error=False)
        if response.code == 599:
            raise web.HTTPError(502, f"the embedded S3 on port {port} does not answer")
        self.set_status(response.code, response.reason)
        for name in FORWARDED_RESPONSE:
            if name in response.headers:
                self.set_header(name, response.headers[name])
        if self.request.method == "GET" and response.body:
            self.write(response.body)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "workbench.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    pattern = url_path_join(serverapp.web_app.settings["base_url"], r"/workbench/s3/(\d+)(/.*)")
    serverapp.web_app.add_handlers(".*$", [(pattern, EmbeddedS3Handler)])
