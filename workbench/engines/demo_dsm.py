"""A demo engine for the analysis notebook on the embedded S3: the latest ortho plus a made-up DSM on its grid.

The quick-look engine makes no elevation model and the embedded S3 has no photogrammetry node, so notebook
06 shows heights, volumes and change on this stand-in: flat ground at ``ground`` metres with a conical
stockpile (``pile_radius``, ``pile_height``) at the ortho's centre, and, with ``planted=True``, a 4 m x 4 m
block 1.5 m high beside it (a "change" between two runs). Never use it for real projects: runs made with it
say ``engine: demo-dsm``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from workbench import layout
from workbench.engines.cog import write_cog
from workbench.engines.runs import EngineOutput, latest
from workbench.errors import WorkbenchError
from workbench.storage import Storage


class DemoDsmEngine:
    """The latest ortho, copied, and a synthetic DSM on its grid (see the module docstring)."""

    name = "demo-dsm"

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Options: ``planted`` (bool), ``ground``, ``pile_radius``, ``pile_height`` (metres)."""
        known = {"planted": False, "ground": 12.0, "pile_radius": 6.0, "pile_height": 3.0}
        unknown = set(options) - set(known)
        if unknown:
            raise WorkbenchError(f"demo-dsm has no option(s) {', '.join(sorted(unknown))}")
        return known | options

    def versions(self) -> dict[str, str]:
        """Nothing but numpy shapes the DSM."""
        return {"numpy": np.__version__}

    def process(self, storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> EngineOutput:
        """Copy the project's latest ortho and write the DSM on its grid."""
        parsed = layout.parse_key(inputs[0]["key"])
        org, project = parsed.org or "", parsed.project or ""
        record = latest(storage, org, project)
        ortho_key = next((p["key"] for p in (record or {}).get("products", []) if p["name"] == "ortho.tif"), None)
        if ortho_key is None:
            raise WorkbenchError(f"{org}/{project} has no ortho to put a demo DSM under: run the quicklook engine first")
        ortho = workdir / "ortho.tif"
        with storage.errors(f"download {ortho_key}"):
            storage.client.download_file(storage.bucket, ortho_key, str(ortho))
        with rasterio.open(ortho) as src:
            profile = src.profile | {"count": 1, "dtype": "float32", "nodata": -9999.0, "photometric": "MINISBLACK"}
            profile.pop("alpha", None)
            xres = src.res[0]
            rows, cols = np.mgrid[0:src.height, 0:src.width]
            x, y = (cols - src.width / 2) * xres, (src.height / 2 - rows) * xres
            dsm = np.full((src.height, src.width), options["ground"], dtype="float32")
            dsm += np.clip(options["pile_height"] * (1 - np.hypot(x, y) / options["pile_radius"]), 0, None).astype("float32")
            if options["planted"]:
                dsm[(abs(x - 2 * options["pile_radius"]) < 2) & (abs(y) < 2)] += 1.5
            alpha = src.read(src.count) if src.count == 4 else np.full(dsm.shape, 255)
            dsm[alpha == 0] = -9999.0
        raw = workdir / "dsm-raw.tif"
        with rasterio.open(raw, "w", **{k: v for k, v in profile.items() if k not in ("photometric",)}) as dst:
            dst.write(dsm, 1)
        shutil.copy(ortho, workdir / "ortho-copy.tif")
        return EngineOutput(files={"ortho.tif": workdir / "ortho-copy.tif", "dsm.tif": write_cog(raw, workdir / "dsm.tif")})
