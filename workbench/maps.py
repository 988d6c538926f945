"""Maps of a project: the orthophoto as raster PMTiles and the coverage as vector PMTiles, read by the
browser by range requests, wherever the map is opened.

How the tiles reach the browser (:func:`map_layers` picks, ``MapLayers.via`` says which):

* ``direct``: presigned URLs straight to the bucket (AWS S3, R2, a reachable MinIO): nobody proxies
  bytes. The bucket's CORS must allow the page's origin with ``Range`` (checked when ``origin`` is given);
* ``jupyter``: the bucket is the embedded S3 on 127.0.0.1 of the machine running the kernel, which the
  browser may not reach (Binder, JupyterHub, a remote JupyterLab): the same presigned URLs go through the
  Jupyter server that serves the notebook (:mod:`workbench.jupyter`, under its base URL, same origin, so
  no CORS), and the signatures still verify;
* ``embedded``: the archives are inside the page itself (small archives, e.g. the demo's): it works
  opened as a file, offline, after every server has stopped.

Pages and notebook maps load MapLibre GL JS from the ``maplibre`` Python package and the pmtiles protocol
from :mod:`workbench.assets`, never from a CDN unless asked (``cdn=True``): they work offline. A raster
tile missing from an archive (the tiler skips empty tiles) is answered as a transparent tile, or MapLibre
would wait for it forever and the map never become idle. When tiles cannot be read, the map itself
says why on one line (CORS with the page's real origin and the ``workbench policy apply`` that fixes
it, expired URLs, a Jupyter server without the proxy), not only the browser console.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import io
import ipaddress
import json
import math
import re
import string
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from pmtiles.reader import Reader

from workbench import layout
from workbench.errors import WorkbenchError
from workbench.pmtiles_check import header_bounds, stored_reader
from workbench.policy.cors import diagnose_cors
from workbench.policy.generations import newest_generation
from workbench.presign import Presigner
from workbench.progress import static_mode
from workbench.storage import Storage

MAPLIBRE_VERSION = "5.3.0"  # the version the maplibre Python package ships (used only with cdn=True)
PMTILES_JS_VERSION = "4.5.0"
QA_COLOURS = ["match", ["get", "qa"], "ok", "#1a9641", "#d7191c"]
BACKGROUND = "#f4f4f0"  # a plain background instead of a basemap: the map works offline
MAX_EMBEDDED_BYTES = 32 * 1024 * 1024
ASSETS = Path(__file__).parent / "assets"
VIAS = ("auto", "direct", "jupyter")

_PAGE = string.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
$head
<style>html, body, #map { margin: 0; height: 100%; background: $background; }
#caption { position: absolute; top: 8px; left: 8px; z-index: 2; max-width: 60%; padding: 4px 8px; font: 13px sans-serif;
  background: rgba(255, 255, 255, 0.85); border-radius: 4px; }</style>
</head><body><div id="map"></div><div id="caption">$caption</div>
<script>
const layers = $layers;
const protocol = new pmtiles.Protocol();
$embedded
maplibregl.addProtocol("pmtiles", $handler);
const map = new maplibregl.Map({
  container: "map", bounds: $bounds, fitBoundsOptions: {padding: 20}, attributionControl: {compact: true},
  style: {version: 8, sources: {}, layers: [{id: "background", type: "background", paint: {"background-color": "$background"}}]}
});
window.workbenchMapErrors = window.workbenchMapErrors || [];
map.on("error", (event) => window.workbenchMapErrors.push(String((event.error && event.error.message) || event)));
map.on("load", () => {
  for (const [id, source] of Object.entries(layers.sources)) map.addSource(id, source);
  for (const layer of layers.layers) map.addLayer(layer);
});
map.on("idle", () => { window.workbenchMapIdle = true; });
</script></body></html>
""")

# An expression: the handler MapLibre calls for pmtiles:// URLs, wrapping the pmtiles Protocol $protocol.
_HANDLER = string.Template("""((P) => {
  const transparent = "$transparent";
  const report = (url, error) => {
    const target = String(url).replace(/^pmtiles:\\/\\//, "").replace(/\\/\\d+\\/\\d+\\/\\d+$$/, "").split("?")[0];
    let where = null;
    try { where = new URL(target, location.href); } catch (e) { where = null; }
    const text = String((error && error.message) || error);
    const origin = location.origin;
    let line;
    if (location.protocol === "file:") {
      line = "this page was opened as a file and cannot read the tiles: write it with --embed, or serve its folder (python -m http.server) and open it from there";
    } else if (/Bad response code: 403/.test(text)) {
      line = "the bucket refused the tiles (403): the presigned URLs have probably expired (they last an hour): run the map cell or workbench map again";
    } else if (where && where.origin === origin && /Bad response code: 40[34]/.test(text)) {
      line = "the Jupyter server does not pass the tiles on (" + text + "): enable its workbench extension (jupyter server extension enable workbench.jupyter) and restart it";
    } else if (where && where.origin !== origin) {
      line = "the tiles could not be read from " + where.origin + ": its CORS may not allow this page (" + origin + ") - fix: workbench policy apply --web-origin " + origin + " - or the server is not running";
    } else {
      line = "the tiles could not be read: " + text;
    }
    window.workbenchMapErrors = window.workbenchMapErrors || [];
    window.workbenchMapErrors.push(line);
    for (const container of document.querySelectorAll(".maplibregl-map")) {
      let box = container.querySelector(".workbench-problem");
      if (!box) {
        box = document.createElement("div");
        box.className = "workbench-problem";
        box.style.cssText = "position:absolute;bottom:8px;left:8px;right:8px;z-index:3;padding:6px 8px;font:13px sans-serif;background:#fff3cd;border:1px solid #d39e00;border-radius:4px";
        container.appendChild(box);
      }
      box.textContent = line;
    }
  };
  return (params, abort) => P.tilev4(params, abort).then(
    (answer) => (params.type !== "json" && answer.data == null)
      ? {data: Uint8Array.from(atob(transparent), (c) => c.charCodeAt(0))} : answer,
    (error) => { if (!(error && error.name === "AbortError")) report(params.url, error); throw error; });
})($protocol)""")

_EMBEDDED = string.Template("""class WorkbenchBytes {
  constructor(key, encoded) { this.key = key; this.bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)); }
  getKey() { return this.key; }
  async getBytes(offset, length) { return {data: this.bytes.slice(offset, offset + length).buffer}; }
}
for (const [key, encoded] of Object.entries($archives)) protocol.add(new pmtiles.PMTiles(new WorkbenchBytes(key, encoded)));""")


def _transparent_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def protocol_handler(protocol: str) -> str:
    """JavaScript (an expression) for MapLibre's ``pmtiles`` protocol: the pmtiles ``Protocol`` named
    ``protocol``, with missing raster tiles answered as transparent tiles and failures said on the map."""
    return _HANDLER.substitute(protocol=protocol, transparent=_transparent_png())


@dataclasses.dataclass(frozen=True)
class MapLayers:
    """What a project map shows: archive URLs, the ortho's bounds, and how the tiles travel."""

    ortho_key: str
    ortho_url: str
    bounds: tuple[float, float, float, float]
    coverage_key: str | None
    coverage_url: str | None
    caption: str = ""  # what the ortho is (e.g. a quick-look preview and its seam misfit)
    via: str = "direct"  # direct | jupyter | embedded
    overlays: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (name, url, legend) derived layers

    def style(self) -> dict[str, Any]:
        """MapLibre sources and layers for these archives."""
        sources: dict[str, Any] = {"ortho": {"type": "raster", "url": f"pmtiles://{self.ortho_url}", "tileSize": 512}}
        layers: list[dict[str, Any]] = [{"id": "ortho", "type": "raster", "source": "ortho"}]
        for name, url, _ in self.overlays:
            sources[f"derived-{name}"] = {"type": "raster", "url": f"pmtiles://{url}", "tileSize": 512}
            layers.append({"id": f"derived-{name}", "type": "raster", "source": f"derived-{name}",
                           "paint": {"raster-opacity": 0.85}})
        if self.coverage_url:
            sources["coverage"] = {"type": "vector", "url": f"pmtiles://{self.coverage_url}"}
            layers += [
                {"id": "footprints", "type": "line", "source": "coverage", "source-layer": "footprints",
                 "paint": {"line-color": QA_COLOURS, "line-width": 1}},
                {"id": "coverage", "type": "line", "source": "coverage", "source-layer": "coverage",
                 "paint": {"line-color": "#2b83ba", "line-width": 3}},
            ]
        return {"sources": sources, "layers": layers}

    def describe(self) -> str:
        """One line: how the tiles reach the browser."""
        return {"direct": "tiles straight from the bucket (presigned URLs, range requests)",
                "jupyter": "tiles through this Jupyter server (the bucket is the embedded S3 on the kernel's machine)",
                "embedded": "tiles inside the page (no server needed)"}[self.via]


def _loopback(endpoint: str | None) -> bool:
    host = urlsplit(endpoint or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jupyter_base_url() -> str | None:
    """The base URL of the Jupyter server this process is a kernel of (e.g. ``/user/ana/``), or None."""
    try:
        import psutil
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    try:
        ancestors = {p.pid for p in psutil.Process().parents()}
        servers = list(list_running_servers())
    except (psutil.Error, OSError, ValueError):
        return None
    for server in servers:
        if server.get("pid") in ancestors:
            return str(server.get("base_url") or "/")
    return None


def _through_jupyter(url: str, base_url: str) -> str:
    """A presigned URL of the embedded S3 as a path of the Jupyter server's proxy (query and signature kept)."""
    parts = urlsplit(url)
    return f"{base_url.rstrip('/')}/workbench/s3/{parts.port}{parts.path}?{parts.query}"


def map_layers(storage: Storage, org: str, project: str, origin: str | None = None, ttl: int = 3600,
               via: str = "auto", derived: Sequence[str] = ()) -> MapLayers:
    """The newest ortho and coverage archives of a project, presigned, and how the browser will reach them.

    ``via``: ``auto`` (through the Jupyter server when the bucket is an embedded S3 on loopback and this runs
    in a Jupyter kernel, else direct), ``direct`` or ``jupyter``. ``derived`` names analysis layers
    (:func:`workbench.analysis.publish.publish_derived`) drawn over the ortho, with their legends in the caption. For direct URLs and a given ``origin`` (where
    the page will be served), the bucket's CORS is checked with a real preflight first.
    """
    if via not in VIAS:
        raise WorkbenchError(f"via {via!r}: choose one of {', '.join(VIAS)}")
    ortho = newest_generation(storage, layout.pmtiles_prefix("ortho", org, project))
    if ortho is None:
        raise WorkbenchError(f"no orthophoto PMTiles for {org}/{project}: run `workbench tiles` first")
    coverage = newest_generation(storage, layout.pmtiles_prefix("coverage", org))
    presigner = Presigner(storage)
    ortho_url = presigner.get(ortho, ttl=ttl)
    coverage_url = presigner.get(coverage, ttl=ttl) if coverage else None
    base_url = jupyter_base_url() if via != "direct" else None
    if via == "jupyter" and base_url is None:
        raise WorkbenchError("via='jupyter' needs this code to run in a Jupyter kernel")
    if base_url is not None and (via == "jupyter" or _loopback(storage.settings.endpoint)):
        chosen = "jupyter"
        ortho_url = _through_jupyter(ortho_url, base_url)
        coverage_url = _through_jupyter(coverage_url, base_url) if coverage_url else None
    else:
        chosen = "direct"
        if origin:
            verdict = diagnose_cors(ortho_url, origin, "GET")
            if not verdict.allowed:
                raise WorkbenchError(f"a map served from {origin} could not read the tiles: {verdict.reason}; fix it "
                                     f"with `workbench policy apply --web-origin {origin}`")
    overlays = []
    for name in derived:
        key = newest_generation(storage, layout.pmtiles_prefix("derived", org, project, name))
        if key is None:
            raise WorkbenchError(f"no derived layer {name!r} for {org}/{project}: publish it first (workbench analyze)")
        url = presigner.get(key, ttl=ttl)
        legend_text = Reader(stored_reader(storage, key)).metadata().get("description", "")
        overlays.append((name, _through_jupyter(url, base_url) if chosen == "jupyter" else url, legend_text))
    reader = Reader(stored_reader(storage, ortho))
    header = reader.header()
    bounds = header_bounds(header)
    caption = "; ".join([reader.metadata().get("description", ""), *(text for _, _, text in overlays)])
    return MapLayers(ortho, ortho_url, bounds, coverage, coverage_url,  # type: ignore[arg-type]
                     caption.strip("; "), chosen, overlays)


def _assets(cdn: bool) -> str:
    if cdn:
        base = f"https://unpkg.com/maplibre-gl@{MAPLIBRE_VERSION}/dist"
        return (f'<link rel="stylesheet" href="{base}/maplibre-gl.css">\n<script src="{base}/maplibre-gl.js"></script>\n'
                f'<script src="https://unpkg.com/pmtiles@{PMTILES_JS_VERSION}/dist/pmtiles.js"></script>')
    maplibre = _maplibre_assets()
    return (f"<style>{(maplibre / 'maplibre-gl.css').read_text()}</style>\n"
            f"<script>{(maplibre / 'maplibre-gl.js').read_text()}</script>\n"
            f"<script>{(ASSETS / 'pmtiles.js').read_text()}</script>")


def _maplibre_assets() -> Path:
    _quiet_maplibre()
    try:
        import maplibre
    except ImportError:
        raise WorkbenchError("map pages need the maplibre package for MapLibre GL JS: pip install 'workbench[tiles]' "
                             "(or pass cdn=True / --cdn to load it from unpkg)") from None
    return Path(maplibre.__file__).parent / "srcjs"


def embed_archives(storage: Storage, layers: MapLayers) -> tuple[MapLayers, dict[str, str]]:
    """The layers with their archives read into the page (base64), for a page that needs no server."""
    archives: dict[str, str] = {}
    total = 0
    for name, key in (("ortho", layers.ortho_key), ("coverage", layers.coverage_key)):
        if key is None:
            continue
        size = storage.head(key).size
        total += size
        if total > MAX_EMBEDDED_BYTES:
            raise WorkbenchError(f"the archives are {total / 2**20:.0f} MiB, too large to embed in a page "
                                 f"(at most {MAX_EMBEDDED_BYTES // 2**20} MiB): serve them instead")
        archives[f"embedded-{name}"] = base64.b64encode(storage.get_bytes(key)).decode()
    embedded = dataclasses.replace(layers, ortho_url="embedded-ortho", via="embedded",
                                   coverage_url="embedded-coverage" if layers.coverage_key else None)
    return embedded, archives


def map_html(layers: MapLayers, title: str, cdn: bool = False, background: str = BACKGROUND,
             archives: dict[str, str] | None = None) -> str:
    """A standalone HTML page showing ``layers`` (MapLibre and pmtiles inlined unless ``cdn``; ``archives``
    from :func:`embed_archives` make it work with no server)."""
    west, south, east, north = layers.bounds
    embedded = _EMBEDDED.substitute(archives=json.dumps(archives)) if archives else ""
    return _PAGE.substitute(title=html.escape(title), head=_assets(cdn), background=background,
                            layers=json.dumps(layers.style()), caption=html.escape(layers.caption), embedded=embedded,
                            handler=protocol_handler("protocol"), bounds=json.dumps([[west, south], [east, north]]))


def write_map(storage: Storage, org: str, project: str, path: str | Path, origin: str | None = None, cdn: bool = False,
              embed: bool = False, background: str = BACKGROUND) -> Path:
    """Write a project's standalone map page to ``path``: presigned URLs (valid 1 hour), or with ``embed``
    the archives themselves (the page then works with no server, offline, for good)."""
    layers = map_layers(storage, org, project, None if embed else origin, via="direct")
    archives = None
    if embed:
        layers, archives = embed_archives(storage, layers)
    target = Path(path)
    target.write_text(map_html(layers, f"{org}/{project}", cdn, background, archives))
    return target


def view(bounds: tuple[float, float, float, float], width_px: int = 700, height_px: int = 500) -> tuple[list[float], float]:
    """Centre ``[lon, lat]`` and zoom that fit ``bounds`` in a map of the given size (512 px tiles)."""
    west, south, east, north = bounds
    mercator = lambda lat: math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))  # noqa: E731
    span_x = max(east - west, 1e-9) / 360
    span_y = max(mercator(north) - mercator(south), 1e-12) / (2 * math.pi)
    zoom = min(math.log2(width_px / 512 / span_x), math.log2(height_px / 512 / span_y))
    centre_y = math.degrees(2 * math.atan(math.exp((mercator(north) + mercator(south)) / 2)) - math.pi / 2)
    return [(west + east) / 2, centre_y], max(0.0, min(22.0, zoom - 0.2))


def _plain_style() -> dict[str, Any]:
    return {"version": 8, "sources": {},
            "layers": [{"id": "background", "type": "background", "paint": {"background-color": BACKGROUND}}]}


def _quiet_maplibre() -> None:
    """No warning about the ``maplibre`` package's optional 'shiny' bindings (before its first import)."""
    import logging

    logging.getLogger("maplibre").setLevel(logging.ERROR)


def _widget(bounds: tuple[float, float, float, float], height: str, basemap: str | dict[str, Any] | None = None) -> Any:
    _quiet_maplibre()
    from maplibre import MapOptions
    from maplibre.controls import NavigationControl, ScaleControl

    centre, zoom = view(bounds, height_px=int(height.removesuffix("px")))
    options = MapOptions(center=centre, zoom=zoom, style=basemap or _plain_style())
    return _settling_map_class()(options, height=height, controls=[NavigationControl(), ScaleControl(position="bottom-left")])


class Picture:
    """An image a notebook shows as a compact JPEG (a saved map preview), with a readable text form."""

    def __init__(self, image: Image.Image, title: str, quality: int = 80) -> None:
        self.image, self.title, self.quality = image, title, quality

    def _repr_jpeg_(self) -> bytes:
        buffer = io.BytesIO()
        self.image.convert("RGB").save(buffer, format="JPEG", quality=self.quality)
        return buffer.getvalue()

    def __repr__(self) -> str:
        return f"{self.title} ({self.image.width}x{self.image.height} px)"


def static_preview(storage: Storage, layers: MapLayers, width_px: int = 700) -> Image.Image:
    """The ortho as a picture: its PMTiles tiles at the zoom that best fills ``width_px``, cropped to its bounds."""
    import mercantile

    reader = Reader(stored_reader(storage, layers.ortho_key))
    header = reader.header()
    west, south, east, north = layers.bounds
    zoom = header["min_zoom"]
    for z in range(header["min_zoom"], header["max_zoom"] + 1):
        left, right = mercantile.tile(west, north, z), mercantile.tile(east, south, z)
        if (right.x - left.x + 1) * 512 > 2 * width_px:
            break
        zoom = z
    first, last = mercantile.tile(west, north, zoom), mercantile.tile(east, south, zoom)
    canvas = Image.new("RGBA", ((last.x - first.x + 1) * 512, (last.y - first.y + 1) * 512), BACKGROUND)
    for x in range(first.x, last.x + 1):
        for y in range(first.y, last.y + 1):
            data = reader.get(zoom, x, y)
            if data:
                tile = Image.open(io.BytesIO(data)).convert("RGBA")
                canvas.alpha_composite(tile.resize((512, 512)), ((x - first.x) * 512, (y - first.y) * 512))
    origin = mercantile.xy_bounds(first)
    size = (origin.right - origin.left) / 512
    top_left = mercantile.xy(west, north)
    bottom_right = mercantile.xy(east, south)
    box = (int((top_left[0] - origin.left) / size), int((origin.top - top_left[1]) / size),
           int(math.ceil((bottom_right[0] - origin.left) / size)), int(math.ceil((origin.top - bottom_right[1]) / size)))
    picture = canvas.crop(box)
    if picture.width > width_px:
        picture = picture.resize((width_px, max(1, round(picture.height * width_px / picture.width))), Image.LANCZOS)
    return picture


def notebook_map(layers: MapLayers, basemap: str | dict[str, Any] | None = None, height: str = "500px",
                 storage: Storage | None = None) -> Any:
    """A MapLibre map of ``layers`` for JupyterLab (the ``maplibre`` package's widget), centred on the data.

    ``basemap`` is a style URL (fetched from the internet) or a MapLibre style; the default is a plain
    background, so the map works offline and on Binder. The widget brings its own MapLibre and pmtiles.
    In a run saved for later (:func:`workbench.progress.static_mode`) with ``storage`` given, the map is a
    picture of the ortho's tiles instead (a saved widget would be megabytes of code and show nothing).
    """
    if storage is not None and static_mode():
        return Picture(static_preview(storage, layers), f"map preview of {layers.ortho_key}")
    _quiet_maplibre()
    from maplibre.controls import InfoBoxControl

    m = _widget(layers.bounds, height, basemap)
    style = layers.style()
    for source_id, source in style["sources"].items():
        m.add_source(source_id, source)
    for layer in style["layers"]:
        m.add_layer(layer)
    if layers.caption:
        m.add_control(InfoBoxControl(content=html.escape(layers.caption), css_text="font: 12px sans-serif; max-width: 420px;"),
                      "top-left")
    return m


_WIDGET_PROTOCOL = re.compile(r'(\w+)\.default\.addProtocol\("pmtiles",(\w+)\.tile\)')


@functools.lru_cache(maxsize=1)
def _settling_map_class() -> type:
    """The ``maplibre`` package's map widget, with :func:`protocol_handler` for pmtiles.

    The widget's JavaScript registers the pmtiles protocol itself; its module is loaded with that
    registration wrapped. Should a future ``maplibre`` release register it differently, the widget is
    used unchanged and a warning says so.
    """
    _quiet_maplibre()
    from maplibre.ipywidget import MapWidget

    source = str(MapWidget._esm)  # the widget module's text (anywidget's FileContents reads the file)
    patched, count = _WIDGET_PROTOCOL.subn(
        lambda found: f'{found.group(1)}.default.addProtocol("pmtiles",{protocol_handler(found.group(2))})', source)
    if count != 1:
        warnings.warn("the maplibre widget registers pmtiles differently than expected: a map whose ortho "
                      "has holes may not finish loading", stacklevel=3)
        return MapWidget
    return type("SettlingMap", (MapWidget,), {"_esm": patched})



def qa_map(images: Any, coverage: Any | None = None, height: str = "500px") -> Any:
    """A MapLibre map of a project's footprints and camera positions, green when usable, red when flagged,
    and its flights' coverage; ``images``/``coverage`` are the manifest GeoDataFrames
    (:func:`workbench.imagery.manifest.read_geodataframe`). Offline: no basemap."""
    import geopandas

    with_footprint = images[images.geometry.notna()]
    located = images[images["lat"].notna()]
    positions = geopandas.GeoDataFrame(located[["name", "usable"]], crs="OGC:CRS84",
                                       geometry=geopandas.points_from_xy(located["lon"], located["lat"]))
    everything = [frame.total_bounds for frame in (with_footprint, positions) if len(frame)]
    if not everything:
        raise WorkbenchError("no image has a position: nothing to map")
    bounds = (min(b[0] for b in everything), min(b[1] for b in everything), max(b[2] for b in everything),
              max(b[3] for b in everything))
    if static_mode():
        return _static_qa_map(with_footprint, positions, coverage)
    m = _widget(bounds, height)
    usable = ["case", ["get", "usable"], "#1a9641", "#d7191c"]
    footprints = json.loads(with_footprint[["name", "qa", "usable", "geometry"]].to_json())
    m.add_source("footprints", {"type": "geojson", "data": footprints})
    m.add_layer({"id": "footprints-fill", "type": "fill", "source": "footprints",
                 "paint": {"fill-color": usable, "fill-opacity": 0.06}})
    m.add_layer({"id": "footprints", "type": "line", "source": "footprints", "paint": {"line-color": usable, "line-width": 1}})
    if coverage is not None and len(coverage):
        m.add_source("coverage", {"type": "geojson", "data": json.loads(coverage[["flight", "geometry"]].to_json())})
        m.add_layer({"id": "coverage", "type": "line", "source": "coverage", "paint": {"line-color": "#2b83ba", "line-width": 3}})
    m.add_source("positions", {"type": "geojson", "data": json.loads(positions.to_json())})
    m.add_layer({"id": "positions", "type": "circle", "source": "positions",
                 "paint": {"circle-radius": 4, "circle-color": usable, "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}})
    return m


def _static_qa_map(footprints: Any, positions: Any, coverage: Any | None) -> Any:
    """:func:`qa_map` as a picture (matplotlib), for runs saved to be read later."""
    import matplotlib.pyplot as plt

    colour = lambda frame: ["#1a9641" if usable else "#d7191c" for usable in frame["usable"]]  # noqa: E731
    figure, axes = plt.subplots(figsize=(7, 5))
    if len(footprints):
        footprints.plot(ax=axes, facecolor="none", edgecolor=colour(footprints), linewidth=0.8)
    if coverage is not None and len(coverage):
        coverage.boundary.plot(ax=axes, color="#2b83ba", linewidth=2)
    positions.plot(ax=axes, color=colour(positions), markersize=12)
    axes.set(title="footprints and camera positions (green: usable, red: flagged)", xlabel="longitude", ylabel="latitude")
    axes.ticklabel_format(useOffset=False, style="plain")
    plt.close(figure)
    return figure
