"""A 2.5D surface (heights on a grid) from a sparse point cloud, for orthorectification and as a coarse DSM.

The method of ODM's fast-orthophoto, in a few steps of numpy and GDAL: points with a large reprojection
error or seen by too few images are dropped; each grid cell takes the median height of its points; cells
without points are filled by GDAL's inverse-distance interpolation (``rasterio.fill.fillnodata``); a 3 x 3
median then a 3 x 3 mean smooth it. Points far from that first surface (more than 3 scaled MADs, at least
:data:`MIN_OUTLIER_M`) are removed and the surface is made again. Cells further than :data:`SUPPORT_CELLS`
from any kept point are outside its support (no data in the DSM; the ortho still uses the filled heights).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MAX_ERROR_PX = 2.0  # points reprojected worse than this are dropped
MIN_TRACK = 3  # ... and points seen by fewer images (2 when that leaves too few points)
MIN_POINTS = 30
MIN_OUTLIER_M = 0.5
SUPPORT_CELLS = 3


@dataclasses.dataclass(frozen=True)
class Surface:
    """Heights (metres, local frame) on a north-up grid whose top-left corner is ``(left, top)``."""

    z: np.ndarray  # (rows, cols) float32, filled everywhere
    support: np.ndarray  # (rows, cols) bool: near kept points
    left: float
    top: float
    resolution: float
    points_used: int

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear heights at local ``x, y`` (clamped to the grid's edge outside it)."""
        rows, cols = self.z.shape
        c = np.clip((x - self.left) / self.resolution - 0.5, 0, cols - 1)
        r = np.clip((self.top - y) / self.resolution - 0.5, 0, rows - 1)
        c0, r0 = np.minimum(c.astype(np.int64), cols - 2 if cols > 1 else 0), np.minimum(r.astype(np.int64), rows - 2 if rows > 1 else 0)
        fc, fr = c - c0, r - r0
        c1, r1 = np.minimum(c0 + 1, cols - 1), np.minimum(r0 + 1, rows - 1)
        top = self.z[r0, c0] * (1 - fc) + self.z[r0, c1] * fc
        bottom = self.z[r1, c0] * (1 - fc) + self.z[r1, c1] * fc
        return top * (1 - fr) + bottom * fr


def _window_filter(grid: np.ndarray, reduce: str) -> np.ndarray:
    padded = np.pad(grid, 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
    return (np.median(windows, axis=(2, 3)) if reduce == "median" else windows.mean(axis=(2, 3))).astype(np.float32)


def _cells(x: np.ndarray, y: np.ndarray, left: float, top: float, resolution: float, shape: tuple[int, int]) -> np.ndarray:
    cols = np.clip(((x - left) / resolution).astype(np.int64), 0, shape[1] - 1)
    rows = np.clip(((top - y) / resolution).astype(np.int64), 0, shape[0] - 1)
    return rows * shape[1] + cols


def _grid(points: np.ndarray, left: float, top: float, resolution: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed, filled surface of ``points`` and the mask of cells that hold points."""
    from rasterio.fill import fillnodata

    cells = _cells(points[:, 0], points[:, 1], left, top, resolution, shape)
    order = np.lexsort((points[:, 2], cells))
    cells, heights = cells[order], points[order, 2]
    unique, starts, counts = np.unique(cells, return_index=True, return_counts=True)
    medians = np.array([np.median(heights[s:s + n]) for s, n in zip(starts, counts)], dtype=np.float32)
    grid = np.zeros(shape[0] * shape[1], dtype=np.float32)
    grid[unique] = medians
    held = np.zeros(shape[0] * shape[1], dtype=bool)
    held[unique] = True
    grid, held = grid.reshape(shape), held.reshape(shape)
    filled = fillnodata(grid, mask=held.astype(np.uint8), max_search_distance=float(max(shape)) * 2, smoothing_iterations=0)
    return _window_filter(_window_filter(filled, "median"), "mean"), held


def build_surface(points: np.ndarray, errors: np.ndarray, track_lengths: np.ndarray,
                  bounds: tuple[float, float, float, float], resolution: float | None = None) -> Surface:
    """The surface of sparse ``points`` (local frame) over ``bounds`` (left, bottom, right, top); the cell size
    defaults to about one kept point per cell (see the module docstring)."""
    from workbench.engines.runs import EngineError
    from workbench.engines.seams import eroded

    good = errors <= MAX_ERROR_PX
    keep = good & (track_lengths >= MIN_TRACK)
    if keep.sum() < MIN_POINTS:
        keep = good & (track_lengths >= 2)
    kept = points[keep]
    if len(kept) < MIN_POINTS:
        raise EngineError(f"sfm triangulated only {len(kept)} reliable points: too few for a surface (need {MIN_POINTS})")
    left, bottom, right, top = bounds
    if resolution is None:
        spread = np.ptp(kept[:, 0]) * np.ptp(kept[:, 1])
        resolution = max(math.sqrt(max(spread, 1.0) / len(kept)), 0.05)
    shape = (max(2, math.ceil((top - bottom) / resolution)), max(2, math.ceil((right - left) / resolution)))
    surface, _ = _grid(kept, left, top, resolution, shape)
    first = Surface(surface, np.ones(shape, bool), left, top, resolution, len(kept))
    residual = kept[:, 2] - first.sample(kept[:, 0], kept[:, 1])
    spread_m = 1.4826 * np.median(np.abs(residual - np.median(residual)))
    inliers = np.abs(residual - np.median(residual)) <= max(3 * spread_m, MIN_OUTLIER_M)
    kept = kept[inliers]
    surface, held = _grid(kept, left, top, resolution, shape)
    support = ~eroded(~held, SUPPORT_CELLS)  # held cells grown by SUPPORT_CELLS
    return Surface(surface, support, left, top, resolution, len(kept))
