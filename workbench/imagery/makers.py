"""What drone makers write about height, orientation and camera: one table, each row with its source.

:data:`XMP_TAGS` maps an XMP property (namespace URI, property path) to an :class:`~ImageMetadata`
field, in priority order: for each field the first row present in an image wins, and the row's
``label`` is recorded as that value's source (``height_source``, ``yaw_source``). Properties are
matched by namespace URI, not by prefix (Autel's newer firmware writes DJI's URI with the prefix
``drone:``). Angles are stored in one convention: yaw in degrees clockwise from north (0-360), camera
pitch -90 = nadir, aircraft pitch positive nose up, roll positive right side down.

:data:`SENSOR_WIDTHS_MM` gives the sensor width of cameras whose EXIF has neither the focal plane
resolution nor a 35 mm equivalent.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

DJI = "http://www.dji.com/drone-dji/1.0/"
SENSEFLY = "http://ns.sensefly.com/sensefly/1.0/"
PARROT = "http://www.parrot.com/drone-parrot/1.0/"
PIX4D_CAMERA = "http://pix4d.com/camera/1.0/"
SKYDIO = "https://www.skydio.com/drone-skydio/1.0/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

_ODM_PHOTO = "OpenDroneMap/ODM opendm/photo.py@32cfaacf"
_PIX4D_SPEC = "https://support.pix4d.com/hc/en-us/articles/202558969 (yaw/pitch/roll convention)"
_PARROT_SPEC = "https://developer.parrot.com/docs/groundsdk-tools/photo-metadata.html"
_SENSEFLY_SAMPLE = ("the XMP of the senseFly Swinglet CAM images in OpenDroneMap's odm_data_seneca "
                    "(../shared/datasets/seneca)")


def _identity(value: float) -> float:
    return value


def _yaw(value: float) -> float:
    return value % 360.0


def _pitch_from_nadir_zero(value: float) -> float:
    """Pix4D-style pitch (0 = nadir, 90 = forward) to ours (-90 = nadir, 0 = horizon)."""
    return value - 90.0


@dataclasses.dataclass(frozen=True)
class XmpTag:
    """One maker's XMP property and the metadata field it fills."""

    namespace: str
    path: str  # property name; "Struct/Field" for a field of a struct property
    field: str
    label: str  # recorded as the value's source, e.g. "xmp-dji"
    source: str  # where the tag name and its convention come from
    convert: Callable[[float], float] = _identity


XMP_TAGS: tuple[XmpTag, ...] = (
    # height above ground (above the take-off point for DJI)
    XmpTag(DJI, "RelativeAltitude", "relative_altitude", "xmp-dji",
           "DJI Mavic 3E/3T user manual p.83 (XMP drone-dji); " + _ODM_PHOTO),
    XmpTag(SENSEFLY, "Height", "relative_altitude", "xmp-sensefly", _SENSEFLY_SAMPLE),
    XmpTag(PIX4D_CAMERA, "AboveGroundAltitude", "relative_altitude", "xmp-camera",
           "exiftool config_files/pix4d.config; " + _PARROT_SPEC),
    # camera (gimbal) orientation
    XmpTag(DJI, "GimbalYawDegree", "gimbal_yaw", "xmp-dji", "DJI user manual p.83; OpenSfM opensfm/exif.py", _yaw),
    XmpTag(DJI, "GimbalPitchDegree", "gimbal_pitch", "xmp-dji", "DJI user manual p.83 (-90 = nadir)"),
    XmpTag(DJI, "GimbalRollDegree", "gimbal_roll", "xmp-dji", "DJI user manual p.83"),
    XmpTag(PARROT, "CameraYawDegree", "gimbal_yaw", "xmp-parrot", _PARROT_SPEC + " (NED)", _yaw),
    XmpTag(PARROT, "CameraPitchDegree", "gimbal_pitch", "xmp-parrot", _PARROT_SPEC + " (-90 = nadir)"),
    XmpTag(PARROT, "CameraRollDegree", "gimbal_roll", "xmp-parrot", _PARROT_SPEC),
    XmpTag(SKYDIO, "CameraOrientationNED/Yaw", "gimbal_yaw", "xmp-skydio",
           "Theta-Limited/OpenAthena-Legacy-Python src/parseImage.py@93964654 lines 483-536", _yaw),
    XmpTag(SKYDIO, "CameraOrientationNED/Pitch", "gimbal_pitch", "xmp-skydio",
           "OpenAthena parseImage.py (NED, 0 = horizon)"),
    XmpTag(SKYDIO, "CameraOrientationNED/Roll", "gimbal_roll", "xmp-skydio", "OpenAthena parseImage.py"),
    XmpTag(PIX4D_CAMERA, "Yaw", "gimbal_yaw", "xmp-camera", _PIX4D_SPEC, _yaw),
    XmpTag(PIX4D_CAMERA, "Pitch", "gimbal_pitch", "xmp-camera", _PIX4D_SPEC + " (0 = nadir)", _pitch_from_nadir_zero),
    XmpTag(PIX4D_CAMERA, "Roll", "gimbal_roll", "xmp-camera", _PIX4D_SPEC),
    # aircraft attitude (a camera fixed in the airframe looks where the aircraft points it)
    XmpTag(DJI, "FlightYawDegree", "flight_yaw", "xmp-dji", "DJI MSDK DJIAttitude (true north, clockwise)", _yaw),
    XmpTag(DJI, "FlightPitchDegree", "flight_pitch", "xmp-dji", "DJI MSDK DJIAttitude"),
    XmpTag(DJI, "FlightRollDegree", "flight_roll", "xmp-dji", "DJI MSDK DJIAttitude"),
    XmpTag(SENSEFLY, "Heading", "flight_yaw", "xmp-sensefly", _SENSEFLY_SAMPLE + " (agrees with the track)", _yaw),
    XmpTag(SENSEFLY, "PitchAngle", "flight_pitch", "xmp-sensefly", _SENSEFLY_SAMPLE),
    XmpTag(SENSEFLY, "RollAngle", "flight_roll", "xmp-sensefly", _SENSEFLY_SAMPLE),
    # absolute altitude, where EXIF has none
    XmpTag(DJI, "AbsoluteAltitude", "altitude", "xmp-dji", "DJI user manual p.83; exiftool DJI.pm"),
    XmpTag(SENSEFLY, "AltitudeWGS84", "altitude", "xmp-sensefly", _SENSEFLY_SAMPLE),
    XmpTag(SKYDIO, "AbsoluteAltitude", "altitude", "xmp-skydio", "OpenAthena parseImage.py"),
)

# Sensor widths (mm) by lower-case "make model", from OpenSfM's opensfm/data/sensor_data.json
# (mapillary/OpenSfM@238744cd, BSD-2; line numbers of that file).
SENSOR_WIDTHS_MM: dict[str, tuple[float, str]] = {
    "canon canon powershot elph 300 hs": (6.16, "OpenSfM sensor_data.json:344"),
    "canon canon ixus 220 hs": (6.16, "OpenSfM sensor_data.json:288"),
    "canon canon powershot s100": (7.53, "OpenSfM sensor_data.json:371"),
    "canon canon powershot s110": (7.53, "OpenSfM sensor_data.json:373"),
    "canon canon powershot sx260 hs": (6.16, "OpenSfM sensor_data.json:443"),
    "canon canon powershot sx280 hs": (6.16, "OpenSfM sensor_data.json:445"),
    "dji fc6310": (13.2, "OpenSfM sensor_data.json:713"),
    "dji fc330": (6.25, "OpenSfM sensor_data.json:710"),
    "dji fc220": (6.17, "OpenSfM sensor_data.json:711"),
    "dji fc300x": (6.2, "OpenSfM sensor_data.json:707"),
}


def sensor_width(make: str | None, model: str | None) -> tuple[float, str] | None:
    """The camera table's sensor width (mm) and its source for ``make``/``model``, if listed."""
    if not model:
        return None
    key = f"{make or ''} {model}".strip().lower()
    return SENSOR_WIDTHS_MM.get(key) or SENSOR_WIDTHS_MM.get(model.strip().lower())


_PROPERTY = re.compile(r"""([\w.-]+):([\w.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ELEMENT = re.compile(r"<([\w.-]+):([\w.-]+)>([^<]*)</\1:\2>")


def xmp_properties(packet: bytes) -> dict[tuple[str, str], str]:
    """Every simple XMP property as ``{(namespace URI without its trailing slash, path): text}``.

    Properties may be attributes of ``rdf:Description`` or elements; fields of a struct property
    (attributes or child elements) get the path ``Struct/Field``. Malformed XML falls back to a
    lenient scan that resolves prefixes from the packet's ``xmlns`` declarations.
    """
    text = packet.decode("utf-8", errors="ignore")
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    body = text[start : end + len("</x:xmpmeta>")] if start >= 0 and end > start else text
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return _lenient_properties(text)
    found: dict[tuple[str, str], str] = {}
    _collect(root, "", found)
    return found


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _collect(element: ET.Element, struct: str, found: dict[tuple[str, str], str]) -> None:
    namespace, name = _split(element.tag)
    is_property = namespace not in ("", _RDF, "adobe:ns:meta/")
    prefix = f"{struct}{name}/" if is_property else struct
    for attribute, value in element.attrib.items():
        attr_namespace, attr_name = _split(attribute)
        if attr_namespace not in ("", _RDF):
            found.setdefault((attr_namespace.rstrip("/"), prefix + attr_name), value.strip())
    children = list(element)
    if is_property and not children and element.text and element.text.strip():
        found.setdefault((namespace.rstrip("/"), f"{struct}{name}"), element.text.strip())
    for child in children:
        _collect(child, prefix, found)


def _lenient_properties(text: str) -> dict[tuple[str, str], str]:
    namespaces = {prefix: uri.rstrip("/") for prefix, uri in re.findall(r"""xmlns:([\w.-]+)\s*=\s*["']([^"']*)["']""", text)}
    found: dict[tuple[str, str], str] = {}
    for prefix, name, double, single in _PROPERTY.findall(text):
        if prefix in namespaces:
            found.setdefault((namespaces[prefix], name), double or single)
    for prefix, name, value in _ELEMENT.findall(text):
        if prefix in namespaces and value.strip():
            found.setdefault((namespaces[prefix], name), value.strip())
    return found
