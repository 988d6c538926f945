"""Pixel checks on a reduced decode of an image: sharpness, exposure, and the WebP thumbnail.

JPEGs of 2048 px or more are decoded at half scale by libjpeg itself (Pillow's ``draft``), so a 12 MP
image costs a 3 MP decode; no more reduction, or a 2 px blur of the original would vanish.

Sharpness is the share of fine detail that survives: in each cell of a 4 x 4 grid, for each of four
directions (0, 45, 90, 135 degrees), the energy of second differences one pixel apart over that of
second differences eight pixels apart; the cell's score is its weakest direction (motion blur
smears one direction), and the image's score is the median over cells with texture. A ratio of two
energies of the same pixels does not change with the scene's contrast or brightness (a contrast
reduced to 30 % scores the same), and comparing scales makes it depend little on what is in the
scene; blur removes the fine scale first. Measured on the real flights (1/2-scale decodes): DJI
brighton 0.15-0.25, senseFly seneca 0.05-0.18; the same images blurred by a 2 px Gaussian or a 15 px
motion blur score 0.006-0.028. Cells with little texture (water, snow, sand) are left out. Whether
a score means "blurry" is judged against the flight (:mod:`workbench.imagery.qa`).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

HALF_SCALE_FROM = 2048  # images at least this long (pixels) are decoded at half scale
THUMBNAIL_SIZE = 256
GRID = 4
LOW_TEXTURE_STD = 3.0  # grey-level standard deviation below which a cell is "low texture"
FINE_STEP, COARSE_STEP = 1, 8  # pixel steps of the two second differences compared
DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclasses.dataclass(frozen=True)
class PixelStats:
    """What the pixels say: sharpness, exposure, and a thumbnail."""

    sharpness: float | None  # fine-detail ratio (0..1); None: every cell is low texture, blur not assessed
    textured_cells: int
    brightness: float
    dark_fraction: float
    bright_fraction: float
    thumbnail_webp: bytes


def _second_difference_energy(grey: np.ndarray, direction: tuple[int, int], step: int, margin: int) -> np.ndarray:
    """Squared second differences along ``direction`` at ``step`` pixels, on the image less ``margin``."""
    dy, dx = direction[0] * step, direction[1] * step
    height, width = grey.shape
    centre = grey[margin : height - margin, margin : width - margin]
    before = grey[margin - dy : height - margin - dy, margin - dx : width - margin - dx]
    after = grey[margin + dy : height - margin + dy, margin + dx : width - margin + dx]
    return np.square(before + after - 2 * centre)


def _cell_sums(values: np.ndarray) -> np.ndarray:
    rows, cols = values.shape[0] // GRID, values.shape[1] // GRID
    return values[: rows * GRID, : cols * GRID].reshape(GRID, rows, GRID, cols).sum(axis=(1, 3))


def sharpness(grey: np.ndarray) -> tuple[float | None, int]:
    """The fine-detail ratio of a grey image (see the module docstring) and how many cells had texture."""
    margin = COARSE_STEP
    if min(grey.shape) <= 2 * margin + GRID:
        return None, 0
    inner = grey[margin:-margin, margin:-margin]
    rows, cols = inner.shape[0] // GRID, inner.shape[1] // GRID
    cells = inner[: rows * GRID, : cols * GRID].reshape(GRID, rows, GRID, cols)
    textured = cells.std(axis=(1, 3)) >= LOW_TEXTURE_STD
    if not textured.any():
        return None, 0
    ratios = np.full((GRID, GRID), np.inf)
    for direction in DIRECTIONS:
        fine = _cell_sums(_second_difference_energy(grey, direction, FINE_STEP, margin))
        coarse = _cell_sums(_second_difference_energy(grey, direction, COARSE_STEP, margin))
        ratios = np.minimum(ratios, fine / np.maximum(coarse, 1e-9))
    return float(np.median(ratios[textured])), int(textured.sum())


def analyse(data: bytes) -> PixelStats:
    """Decode ``data`` at reduced scale and measure it; raises ValueError for undecodable images."""
    try:
        opened = Image.open(io.BytesIO(data))
        width, height = opened.size
        half = max(width, height) >= HALF_SCALE_FROM
        opened.draft("RGB", (width // 2, height // 2) if half else (width, height))
        image = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"undecodable image: {detail}") from None
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    score, textured = sharpness(grey)
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    thumb.save(buffer, "WEBP", quality=70)
    return PixelStats(
        sharpness=score,
        textured_cells=textured,
        brightness=float(grey.mean()),
        dark_fraction=float((grey < 8).mean()),
        bright_fraction=float((grey > 247).mean()),
        thumbnail_webp=buffer.getvalue(),
    )
