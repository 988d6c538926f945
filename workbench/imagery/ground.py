"""Height above ground for cameras that write none: a flight height, a ground elevation, or a DEM.

Footprints and the quick-look need each camera's height above the ground. DJI, senseFly, Parrot
and cameras of the Pix4D ``Camera:`` namespace write it (:mod:`workbench.imagery.makers`); compact
cameras and many others write only a GPS altitude. For those, in this order:

1. ``agl``: the flight's height above ground in metres (what the flight plan said);
2. ``ground_elevation``: the ground's elevation in metres, subtracted from each image's GPS altitude;
3. ``dem``: a DEM (a local GeoTIFF, an http(s) COG URL, or ``s3://bucket/key`` in the workbench's
   bucket, read through a presigned URL) sampled at each image's position and subtracted likewise.

GPS altitudes of consumer cameras are usually above mean sea level, like most DEMs (SRTM, Copernicus):
use a DEM on the same vertical datum. An image none of these gives a height gets the ``no_height``
QA flag, whose reason names the three options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from workbench.errors import WorkbenchError
from workbench.imagery.metadata import ImageMetadata

FROM_IMAGE = ("xmp-", "exif-")  # height sources read from the image itself (kept on every run)
MAX_HEIGHT_M = 10_000.0
HOW_TO_GIVE = ("give `workbench ingest` the flight's height above ground (--agl METRES), the ground elevation "
               "(--ground-elevation METRES), or a DEM (--dem FILE_OR_URL)")


@dataclasses.dataclass(frozen=True)
class HeightOptions:
    """Where heights come from when an image has none (see the module docstring)."""

    agl: float | None = None
    ground_elevation: float | None = None
    dem: str | None = None

    def __post_init__(self) -> None:
        for name in ("agl", "ground_elevation"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise WorkbenchError(f"{name} must be a finite number of metres, got {value!r}")
        if self.agl is not None and not 0 < self.agl <= MAX_HEIGHT_M:
            raise WorkbenchError(f"agl must be between 0 and {MAX_HEIGHT_M:.0f} m above ground, got {self.agl!r}")
        if self.ground_elevation is not None and not -500 <= self.ground_elevation <= 9000:
            raise WorkbenchError(f"ground elevation must be between -500 and 9000 m, got {self.ground_elevation!r}")

    @property
    def any(self) -> bool:
        """Whether any fallback is configured."""
        return self.agl is not None or self.ground_elevation is not None or self.dem is not None


def sample_dem(dem: str, positions: Sequence[tuple[float, float]], opener: Callable[[str], str] | None = None) -> list[float | None]:
    """The DEM's elevation at each ``(lon, lat)``; None outside it or on nodata.

    ``opener`` turns ``dem`` into something rasterio opens (e.g. a presigned URL for ``s3://``).
    """
    try:
        import rasterio
        from rasterio.errors import RasterioIOError
        from rasterio.warp import transform
    except ImportError:
        raise WorkbenchError("sampling a DEM needs rasterio: pip install 'workbench[engines]'") from None
    path = opener(dem) if opener else dem
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise WorkbenchError(f"the DEM {dem} has no coordinate reference system")
            xs, ys = transform("EPSG:4326", src.crs, [p[0] for p in positions], [p[1] for p in positions])
            nodata = src.nodata
            values = [float(v[0]) for v in src.sample(zip(xs, ys), indexes=1, masked=False)]
            inside = [src.bounds.left <= x <= src.bounds.right and src.bounds.bottom <= y <= src.bounds.top
                      for x, y in zip(xs, ys)]
    except RasterioIOError as exc:
        raise WorkbenchError(f"cannot read the DEM {dem}: {str(exc).splitlines()[0][:200]}") from None
    return [v if ok and math.isfinite(v) and v != nodata else None for v, ok in zip(values, inside)]


def resolve_heights(images: Sequence[ImageMetadata], options: HeightOptions,
                    opener: Callable[[str], str] | None = None) -> list[str | None]:
    """Give images without a height from their own tags one from ``options``; return why any still has none.

    Heights that came from an option on an earlier run are recomputed (the options may have changed).
    """
    reasons: list[str | None] = [None] * len(images)
    pending = []
    for i, meta in enumerate(images):
        if meta.height_source and meta.height_source.startswith(FROM_IMAGE):
            continue
        meta.relative_altitude, meta.height_source = None, None
        pending.append(i)
    if not pending:
        return reasons
    if options.agl is not None:
        for i in pending:
            images[i].relative_altitude, images[i].height_source = float(options.agl), "agl-option"
        return reasons
    grounds: dict[int, float | None] = {}
    if options.ground_elevation is not None:
        grounds = {i: float(options.ground_elevation) for i in pending}
        source = "ground-elevation"
    elif options.dem is not None:
        located = [i for i in pending if images[i].lat is not None and images[i].lon is not None]
        sampled = sample_dem(options.dem, [(images[i].lon, images[i].lat) for i in located], opener) if located else []  # type: ignore[misc]
        grounds = dict(zip(located, sampled))
        source = "dem"
    for i in pending:
        meta = images[i]
        if not options.any:
            reasons[i] = f"the camera wrote no height above ground: {HOW_TO_GIVE}"
        elif meta.altitude is None:
            reasons[i] = "no GPS altitude to subtract the ground elevation from: give --agl METRES instead"
        elif grounds.get(i) is None:
            reasons[i] = f"the DEM has no elevation at this position ({meta.lat:.5f}, {meta.lon:.5f})"
        elif meta.altitude - grounds[i] <= 0:  # type: ignore[operator]
            reasons[i] = (f"GPS altitude {meta.altitude:.1f} m is not above the ground ({grounds[i]:.1f} m from the "
                          f"{source.replace('-', ' ')}): check the vertical datum, or give --agl")
        else:
            meta.relative_altitude, meta.height_source = meta.altitude - grounds[i], source  # type: ignore[operator]
    return reasons
