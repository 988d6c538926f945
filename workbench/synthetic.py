"""A deterministic synthetic drone survey: nadir JPEGs of a generated scene, with DJI-style metadata.

The scene is a function of ground position (fields, roads, buildings, fine texture), so every image
samples exactly the ground its footprint covers and the truth is known for every pixel. Geometry:
a flat scene in a local east/north frame (metres) around ``origin``; positions are converted to
WGS84 with the local ellipsoid radii (error well under a centimetre over a few hundred metres).
Cameras fly serpentine lines north and south, yaw 0° or 180°, gimbal pitch -90°.

Each JPEG carries EXIF (make, model, capture time, focal length and its 35 mm equivalent, GPS
latitude, longitude and altitude) and DJI ``drone-dji`` XMP (absolute and relative altitude,
gimbal pitch/yaw/roll, flight pitch/yaw/roll), as a DJI drone writes them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera (defaults: a 1-inch sensor with a 24 mm-equivalent lens, downsized images)."""

    width: int = 1200
    height: int = 800
    sensor_width_mm: float = 13.2
    focal_mm: float = 8.8
    focal_35mm: int = 24
    make: str = "DJI"
    model: str = "WBSYNTH1"

    def gsd(self, altitude_m: float) -> float:
        """Ground sample distance (metres per pixel) at ``altitude_m`` above flat ground."""
        return altitude_m * self.sensor_width_mm / (self.focal_mm * self.width)


@dataclasses.dataclass(frozen=True)
class Shot:
    """One image of the survey: where it was taken and how the camera pointed."""

    name: str
    east: float
    north: float
    lat: float
    lon: float
    relative_altitude: float
    absolute_altitude: float
    yaw: float
    time: dt.datetime
    gimbal_pitch: float = -90.0


@dataclasses.dataclass(frozen=True)
class Survey:
    """A serpentine grid survey over the synthetic scene."""

    origin_lat: float = -6.7924
    origin_lon: float = 39.2083
    ground_elevation: float = 12.0
    altitude: float = 60.0
    lines: int = 3
    shots_per_line: int = 6
    forward_overlap: float = 0.75
    side_overlap: float = 0.65
    start: dt.datetime = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.timezone.utc)
    seconds_between_shots: float = 3.0
    camera: Camera = Camera()
    seed: int = 7

    def shots(self) -> list[Shot]:
        """The camera stations in capture order."""
        gsd = self.camera.gsd(self.altitude)
        along = self.camera.height * gsd * (1 - self.forward_overlap)
        across = self.camera.width * gsd * (1 - self.side_overlap)
        out: list[Shot] = []
        for line in range(self.lines):
            northward = line % 2 == 0
            for i in range(self.shots_per_line):
                step = i if northward else self.shots_per_line - 1 - i
                east, north = line * across, step * along
                lat, lon = enu_to_latlon(east, north, self.origin_lat, self.origin_lon)
                index = len(out)
                out.append(Shot(
                    name=f"SYN_{index + 1:04d}.JPG", east=east, north=north, lat=lat, lon=lon,
                    relative_altitude=self.altitude, absolute_altitude=self.ground_elevation + self.altitude,
                    yaw=0.0 if northward else 180.0,
                    time=self.start + dt.timedelta(seconds=index * self.seconds_between_shots),
                ))
        return out


def _radii(lat0: float) -> tuple[float, float]:
    """Metres per radian of latitude and of longitude at ``lat0`` (WGS84)."""
    phi = math.radians(lat0)
    s = 1 - WGS84_E2 * math.sin(phi) ** 2
    return WGS84_A * (1 - WGS84_E2) / s**1.5, WGS84_A / math.sqrt(s) * math.cos(phi)


def enu_to_latlon(east: float, north: float, lat0: float, lon0: float) -> tuple[float, float]:
    """Local east/north metres around (lat0, lon0) to WGS84 degrees (local ellipsoid radii)."""
    per_lat, per_lon = _radii(lat0)
    return lat0 + math.degrees(north / per_lat), lon0 + math.degrees(east / per_lon)


def latlon_to_enu(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`enu_to_latlon`, for arrays."""
    per_lat, per_lon = _radii(lat0)
    return np.radians(lon - lon0) * per_lon, np.radians(lat - lat0) * per_lat


def mosaic_offset(path: str | Path, survey: Survey, size: int = 512) -> tuple[float, float]:
    """How far (east, north metres) a georeferenced mosaic of ``survey`` is from the scene's truth.

    Renders the truth on the mosaic's own grid for a central window and finds the shift between the two
    by phase correlation (to the nearest pixel).
    """
    import rasterio
    from pyproj import Transformer
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        side = min(size, src.width, src.height)
        window = Window((src.width - side) // 2, (src.height - side) // 2, side, side)
        mosaic = src.read([1, 2, 3], window=window).astype(np.float32).mean(axis=0)
        transform, crs = src.window_transform(window), src.crs
    cols, rows = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5)
    xs, ys = transform.c + cols * transform.a, transform.f + rows * transform.e  # north-up grid
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    east, north = latlon_to_enu(np.asarray(lat), np.asarray(lon), survey.origin_lat, survey.origin_lon)
    truth = ground_colour(east, north, survey.seed).astype(np.float32).mean(axis=-1)
    spectrum = np.fft.fft2(mosaic - mosaic.mean()) * np.conj(np.fft.fft2(truth - truth.mean()))
    correlation = np.fft.ifft2(spectrum / (np.abs(spectrum) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(correlation), correlation.shape)
    dy = dy - side if dy > side // 2 else dy
    dx = dx - side if dx > side // 2 else dx
    return float(dx * transform.a), float(dy * transform.e)  # rows grow southwards: e < 0


def _hash01(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) for each integer cell (a, b)."""
    x = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (seed * 83492791)
    x = (x ^ (x >> 13)) * 1274126177
    x = x ^ (x >> 16)
    return (x & 0xFFFFFF).astype(np.float32) / float(0x1000000)


_FIELD_COLOURS = np.array(
    [[92, 128, 60], [120, 150, 70], [160, 140, 90], [140, 110, 70], [70, 110, 55], [185, 170, 110]], dtype=np.float32
)


def ground_colour(east: np.ndarray, north: np.ndarray, seed: int = 7) -> np.ndarray:
    """RGB (uint8) of the synthetic scene at ground positions (metres, local frame)."""
    cell = 20.0
    ce, cn = np.floor(east / cell), np.floor(north / cell)
    parcel = _hash01(ce, cn, seed)
    rgb = _FIELD_COLOURS[(parcel * len(_FIELD_COLOURS)).astype(int) % len(_FIELD_COLOURS)].copy()
    # furrows in fields, oriented per parcel
    angle = _hash01(ce + 7, cn - 3, seed) * np.pi
    stripes = np.sin((east * np.cos(angle) + north * np.sin(angle)) * 2 * np.pi / 1.5)
    rgb *= (1 + 0.08 * stripes)[..., None]
    # buildings: a roof in some parcels
    fe, fn = east / cell - ce, north / cell - cn
    roof = (parcel > 0.8) & (fe > 0.2) & (fe < 0.75) & (fn > 0.25) & (fn < 0.8)
    rgb[roof] = np.array([170, 70, 55], dtype=np.float32) * (0.9 + 0.2 * _hash01(ce, cn, seed + 1)[roof])[:, None]
    # roads: a north-south and an east-west road with a centre line
    road_ns, road_ew = np.abs(east - 47.0) < 3.0, np.abs(north - 61.0) < 3.0
    road = road_ns | road_ew
    rgb[road] = [105, 105, 108]
    line = (np.abs(east - 47.0) < 0.12) | (np.abs(north - 61.0) < 0.12)
    rgb[line & road] = [235, 235, 225]
    # fine texture (gravel, grass) at 4 cm, so images are sharp and matchable
    grain = _hash01(np.floor(east / 0.04), np.floor(north / 0.04), seed + 2) - 0.5
    rgb += (grain * 36)[..., None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render(shot: Shot, survey: Survey) -> np.ndarray:
    """The nadir image a camera at ``shot`` sees (height × width × 3, uint8)."""
    cam = survey.camera
    gsd = cam.gsd(shot.relative_altitude)
    u = (np.arange(cam.width, dtype=np.float64) - cam.width / 2 + 0.5) * gsd
    v = (cam.height / 2 - np.arange(cam.height, dtype=np.float64) - 0.5) * gsd
    right_x, up_y = np.meshgrid(u, v)
    yaw = math.radians(shot.yaw)
    east = shot.east + right_x * math.cos(yaw) + up_y * math.sin(yaw)
    north = shot.north - right_x * math.sin(yaw) + up_y * math.cos(yaw)
    return ground_colour(east, north, survey.seed)


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = math.floor(value)
    minutes = math.floor((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return float(degrees), float(minutes), seconds


def dji_xmp(shot: Shot, camera: Camera) -> bytes:
    """A DJI-style XMP packet with the ``drone-dji`` attributes ingest reads."""
    def signed(value: float) -> str:
        return f"{value:+.2f}"

    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="DJI Meta Data"\n'
        '    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"\n'
        '    xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"\n'
        f'   tiff:Make="{camera.make}"\n'
        f'   tiff:Model="{camera.model}"\n'
        f'   drone-dji:AbsoluteAltitude="{signed(shot.absolute_altitude)}"\n'
        f'   drone-dji:RelativeAltitude="{signed(shot.relative_altitude)}"\n'
        '   drone-dji:GimbalRollDegree="+0.00"\n'
        f'   drone-dji:GimbalYawDegree="{signed(shot.yaw)}"\n'
        f'   drone-dji:GimbalPitchDegree="{signed(shot.gimbal_pitch)}"\n'
        '   drone-dji:FlightRollDegree="+0.00"\n'
        f'   drone-dji:FlightYawDegree="{signed(shot.yaw)}"\n'
        '   drone-dji:FlightPitchDegree="+0.00">\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>'
    ).encode()


def encode_jpeg(pixels: np.ndarray, shot: Shot, camera: Camera, quality: int = 90, xmp: bool = True) -> bytes:
    """JPEG bytes with EXIF (incl. GPS) and, unless ``xmp`` is False (a compact camera), DJI XMP for one shot."""
    image = Image.fromarray(pixels, "RGB")
    exif = Image.Exif()
    stamp = shot.time.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    exif[0x0131] = "workbench synthetic survey"
    exif[0x0132] = stamp
    exif[0x8769] = {
        0x9003: stamp, 0x9004: stamp, 0x920A: camera.focal_mm, 0xA405: camera.focal_35mm,
        0xA002: camera.width, 0xA003: camera.height,
    }
    exif[0x8825] = {
        0x0000: b"\x02\x03\x00\x00",
        0x0001: "N" if shot.lat >= 0 else "S", 0x0002: _dms(shot.lat),
        0x0003: "E" if shot.lon >= 0 else "W", 0x0004: _dms(shot.lon),
        0x0005: b"\x00", 0x0006: round(shot.absolute_altitude, 3),
    }
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes(), **({"xmp": dji_xmp(shot, camera)} if xmp else {}))
    return buffer.getvalue()


def write_survey(folder: str | Path, survey: Survey | None = None, flawed: bool = False, xmp: bool = True) -> list[Path]:
    """Render every shot of ``survey`` into ``folder``; return the image paths in capture order.

    ``flawed`` adds two images a QA pass must reject: ``SYN_BLURRED.JPG`` (a motion-blurred retake of
    the second shot) and ``SYN_OBLIQUE.JPG`` (the third shot with the gimbal pitched to -10 degrees).
    Without ``xmp`` the images carry EXIF only (GPS altitude, no height above ground, no yaw), as a
    compact camera writes them.
    """
    survey = survey or Survey()
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for shot in survey.shots():
        path = target / shot.name
        path.write_bytes(encode_jpeg(render(shot, survey), shot, survey.camera, xmp=xmp))
        paths.append(path)
    if flawed:
        shots = survey.shots()
        retake = dataclasses.replace(shots[1], name="SYN_BLURRED.JPG", time=shots[1].time + dt.timedelta(seconds=1))
        blurred = np.asarray(Image.fromarray(render(retake, survey)).filter(ImageFilter.BoxBlur(5)))
        oblique = dataclasses.replace(shots[2], name="SYN_OBLIQUE.JPG", gimbal_pitch=-10.0,
                                      time=shots[2].time + dt.timedelta(seconds=1))
        for shot, pixels in ((retake, blurred), (oblique, render(oblique, survey))):
            path = target / shot.name
            path.write_bytes(encode_jpeg(pixels, shot, survey.camera))
            paths.append(path)
    return paths
