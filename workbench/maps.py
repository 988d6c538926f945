"""Maps of a project: the orthophoto as raster PMTiles and the coverage as vector PMTiles, read by the
browser straight from the bucket through presigned URLs (range requests).

leafmap's ``add_pmtiles`` assumes vector tiles, so the ortho is added as a MapLibre ``raster`` source
with a ``pmtiles://`` URL. Presigned reads from a page need the bucket's CORS to allow the page's origin
with ``Range`` and to expose ``ETag``: the helpers check that first, with a real preflight, and say what
to fix. :func:`map_html` writes a standalone page (MapLibre GL JS and the pmtiles protocol inlined from a
local ``node_modules`` when given, else loaded from unpkg).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import io
import json
import re
import string
import warnings
from pathlib import Path
from typing import Any

from PIL import Image
from pmtiles.reader import Reader

from workbench import layout
from workbench.errors import WorkbenchError
from workbench.policy.cors import diagnose_cors
from workbench.policy.generations import newest_generation
from workbench.presign import Presigner
from workbench.storage import Storage

MAPLIBRE_VERSION = "5.24.0"
PMTILES_JS_VERSION = "4.5.0"
QA_COLOURS = ["match", ["get", "qa"], "ok", "#1a9641", "#d7191c"]
BACKGROUND = "#f4f4f0"  # a plain background instead of a basemap: the map works offline

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
maplibregl.addProtocol("pmtiles", $protocol);
const map = new maplibregl.Map({
  container: "map", bounds: $bounds, fitBoundsOptions: {padding: 10}, attributionControl: {compact: true},
  style: {version: 8, sources: {}, layers: [{id: "background", type: "background", paint: {"background-color": "$background"}}]}
});
window.workbenchMapErrors = [];
map.on("error", (event) => window.workbenchMapErrors.push(String((event.error && event.error.message) || event)));
map.on("load", () => {
  for (const [id, source] of Object.entries(layers.sources)) map.addSource(id, source);
  for (const layer of layers.layers) map.addLayer(layer);
});
map.on("idle", () => { window.workbenchMapIdle = true; });
</script></body></html>
""")


def _transparent_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def settling_protocol(protocol: str) -> str:
    """JavaScript for a MapLibre protocol handler that wraps the pmtiles ``Protocol`` named ``protocol``
    so that a raster tile missing from an archive is answered as a transparent tile.

    The pmtiles protocol answers ``{data: null}`` for a raster tile the archive lacks (the tiler skips
    empty tiles); MapLibre then keeps that tile loading forever, so the map never becomes idle.
    """
    return (f'((params, abort) => {protocol}.tilev4(params, abort).then((answer) => '
            f'(params.type !== "json" && answer.data == null) ? '
            f'{{data: Uint8Array.from(atob("{_transparent_png()}"), (c) => c.charCodeAt(0))}} : answer))')


@dataclasses.dataclass(frozen=True)
class MapLayers:
    """What a project map shows: presigned archive URLs and the ortho's bounds."""

    ortho_key: str
    ortho_url: str
    bounds: tuple[float, float, float, float]
    coverage_key: str | None
    coverage_url: str | None
    caption: str = ""  # what the ortho is (e.g. a quick-look preview and its seam misfit)

    def style(self) -> dict[str, Any]:
        """MapLibre sources and layers for these archives."""
        sources: dict[str, Any] = {"ortho": {"type": "raster", "url": f"pmtiles://{self.ortho_url}", "tileSize": 512}}
        layers: list[dict[str, Any]] = [{"id": "ortho", "type": "raster", "source": "ortho"}]
        if self.coverage_url:
            sources["coverage"] = {"type": "vector", "url": f"pmtiles://{self.coverage_url}"}
            layers += [
                {"id": "footprints", "type": "line", "source": "coverage", "source-layer": "footprints",
                 "paint": {"line-color": QA_COLOURS, "line-width": 1}},
                {"id": "coverage", "type": "line", "source": "coverage", "source-layer": "coverage",
                 "paint": {"line-color": "#2b83ba", "line-width": 3}},
            ]
        return {"sources": sources, "layers": layers}


def map_layers(storage: Storage, org: str, project: str, origin: str, ttl: int = 3600) -> MapLayers:
    """The newest ortho and coverage archives of a project, presigned, after checking CORS for ``origin``."""
    ortho = newest_generation(storage, layout.pmtiles_prefix("ortho", org, project))
    if ortho is None:
        raise WorkbenchError(f"no orthophoto PMTiles for {org}/{project}: run `workbench tiles` first")
    coverage = newest_generation(storage, layout.pmtiles_prefix("coverage", org))
    presigner = Presigner(storage)
    ortho_url = presigner.get(ortho, ttl=ttl)
    verdict = diagnose_cors(ortho_url, origin, "GET")
    if not verdict.allowed:
        raise WorkbenchError(f"a map served from {origin} could not read the tiles: {verdict.reason}; fix it with "
                             f"`workbench policy apply --web-origin {origin}`")
    reader = Reader(lambda offset, length: storage.get_bytes(ortho, (offset, offset + length - 1)))
    header = reader.header()
    bounds = tuple(header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7"))
    return MapLayers(ortho, ortho_url, bounds, coverage,  # type: ignore[arg-type]
                     presigner.get(coverage, ttl=ttl) if coverage else None, reader.metadata().get("description", ""))


def map_html(layers: MapLayers, title: str, assets: Path | None = None, background: str = BACKGROUND) -> str:
    """A standalone HTML page showing ``layers`` (JS inlined from ``assets``/node_modules, else unpkg)."""
    if assets is not None:
        files = {"maplibre": assets / "maplibre-gl" / "dist" / "maplibre-gl.js",
                 "css": assets / "maplibre-gl" / "dist" / "maplibre-gl.css", "pmtiles": assets / "pmtiles" / "dist" / "pmtiles.js"}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise WorkbenchError(f"map assets missing: {', '.join(missing)} (npm install maplibre-gl pmtiles)")
        head = (f"<style>{files['css'].read_text()}</style>\n<script>{files['maplibre'].read_text()}</script>\n"
                f"<script>{files['pmtiles'].read_text()}</script>")
    else:
        base = f"https://unpkg.com/maplibre-gl@{MAPLIBRE_VERSION}/dist"
        head = (f'<link rel="stylesheet" href="{base}/maplibre-gl.css">\n<script src="{base}/maplibre-gl.js"></script>\n'
                f'<script src="https://unpkg.com/pmtiles@{PMTILES_JS_VERSION}/dist/pmtiles.js"></script>')
    west, south, east, north = layers.bounds
    return _PAGE.substitute(title=html.escape(title), head=head, background=background, layers=json.dumps(layers.style()),
                            caption=html.escape(layers.caption),
                            bounds=json.dumps([[west, south], [east, north]]), protocol=settling_protocol("protocol"))


def write_map(storage: Storage, org: str, project: str, path: str | Path, origin: str,
              assets: Path | None = None, background: str = BACKGROUND) -> Path:
    """Write a project's standalone map page to ``path`` (URLs valid for 1 hour)."""
    page = map_html(map_layers(storage, org, project, origin), f"{org}/{project}", assets, background)
    target = Path(path)
    target.write_text(page)
    return target


def leafmap_map(layers: MapLayers, basemap: str | dict[str, Any] | None = None) -> Any:
    """A leafmap (MapLibre backend) map of ``layers`` for JupyterLab.

    ``basemap`` is a leafmap style name (e.g. ``"positron"``, fetched from the internet) or a MapLibre
    style; the default is a plain background, so the map works offline and on Binder.
    """
    west, south, east, north = layers.bounds
    style = basemap or {"version": 8, "sources": {},
                        "layers": [{"id": "background", "type": "background", "paint": {"background-color": BACKGROUND}}]}
    m = _settling_map_class()(center=[(west + east) / 2, (south + north) / 2], zoom=16, style=style)
    style = layers.style()
    for source_id, source in style["sources"].items():
        m.add_source(source_id, source)
    for layer in style["layers"]:
        m.add_layer(layer)
    m.fit_bounds([[west, south], [east, north]])
    if layers.caption:
        m.add_text(layers.caption, fontsize=13, position="top-left")
    return m



_WIDGET_PROTOCOL = re.compile(r'(\w+)\.default\.addProtocol\("pmtiles",(\w+)\.tile\)')


@functools.lru_cache(maxsize=1)
def _settling_map_class() -> type:
    """leafmap's MapLibre map whose widget answers missing raster tiles with transparent ones.

    The widget's JavaScript (from the ``maplibre`` package) registers the pmtiles protocol itself; its
    module is loaded with that registration wrapped by :func:`settling_protocol`. Should a future
    ``maplibre`` release register it differently, the map is used unchanged and a warning says so.
    """
    import leafmap.maplibregl as leafmap

    source = str(leafmap.Map._esm)  # the widget module's text (anywidget's FileContents reads the file)
    patched, count = _WIDGET_PROTOCOL.subn(
        lambda found: f'{found.group(1)}.default.addProtocol("pmtiles",{settling_protocol(found.group(2))})', source)
    if count != 1:
        warnings.warn("the maplibre widget registers pmtiles differently than expected: a map whose ortho "
                      "has holes may not finish loading", stacklevel=3)
        return leafmap.Map
    return type("SettlingMap", (leafmap.Map,), {"_esm": patched})
