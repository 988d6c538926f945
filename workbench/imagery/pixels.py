"""Pixel checks on a reduced decode of an image: sharpness, exposure, and the WebP thumbnail.

JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (Pillow's ``draft``), so a 12 MP image
costs a ~1 MP decode. Sharpness is the variance of the Laplacian in each cell of a 4 x 4 grid; cells
with little texture (water, snow, sand, sky) are left out so they are not mistaken for blur, and the
score is the 75th percentile of the remaining cells.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

ANALYSIS_SIZE = 1024  # long side the analysis decode aims at (at least)
THUMBNAIL_SIZE = 256
GRID = 4
LOW_TEXTURE_STD = 6.0  # grey-level standard deviation below which a cell is "low texture"


@dataclasses.dataclass(frozen=True)
class PixelStats:
    """What the pixels say: sharpness, exposure, and a thumbnail."""

    sharpness: float | None  # None: every cell is low texture, blur not assessed
    textured_cells: int
    brightness: float
    dark_fraction: float
    bright_fraction: float
    thumbnail_webp: bytes


def analyse(data: bytes) -> PixelStats:
    """Decode ``data`` at reduced scale and measure it; raises ValueError for undecodable images."""
    try:
        opened = Image.open(io.BytesIO(data))
        opened.draft("RGB", (ANALYSIS_SIZE, ANALYSIS_SIZE))
        image = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"undecodable image: {detail}") from None
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    laplacian = (grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1])
    cell_h, cell_w = laplacian.shape[0] // GRID, laplacian.shape[1] // GRID
    scores = []
    for row in range(GRID):
        for col in range(GRID):
            cell = (slice(row * cell_h, (row + 1) * cell_h), slice(col * cell_w, (col + 1) * cell_w))
            if grey[1:-1, 1:-1][cell].std() >= LOW_TEXTURE_STD:
                scores.append(float(laplacian[cell].var()))
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    thumb.save(buffer, "WEBP", quality=70)
    return PixelStats(
        sharpness=float(np.percentile(scores, 75)) if scores else None,
        textured_cells=len(scores),
        brightness=float(grey.mean()),
        dark_fraction=float((grey < 8).mean()),
        bright_fraction=float((grey > 247).mean()),
        thumbnail_webp=buffer.getvalue(),
    )
