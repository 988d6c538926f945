"""Structure from motion with pycolmap (COLMAP, BSD-3): cameras and a sparse point cloud in the flight's UTM zone.

Stages (method after COLMAP's and OpenSfM's documentation; the code is the workbench's own):

1. **Features**: each image is fetched from the bucket and reduced (JPEG draft decode, then Lanczos) so its
   longer side is ``max_image_size`` px; SIFT (COLMAP's CPU implementation, native scale: no upsampled
   first octave) runs on it in a Dask task. An image that cannot be decoded is skipped with its reason.
2. **Database**: the reduced images are imported into a COLMAP database with one shared camera per camera
   model (prior focal length from EXIF focal length and sensor width, SIMPLE_RADIAL), their features, and a
   pose prior per image: its GPS position in a local frame (UTM east/north/altitude minus their mean).
3. **Matching**: exhaustive below :data:`EXHAUSTIVE_BELOW` images, else each image with its nearest
   ``neighbours`` by GPS position; matches are verified geometrically (two-view geometry).
4. **Mapping**: COLMAP's incremental mapper (registration, triangulation, bundle adjustment with focal length
   and radial distortion refined); the largest model is kept.
5. **Georeferencing**: a similarity transform (scale, rotation, translation) from the model's camera centres
   to the GPS positions, RANSAC over triples then least squares on the inliers (outlying GPS fixes do not
   pull it), applied to cameras and points; the GPS residuals after it are reported. The fit is the
   workbench's own (Umeyama's method): COLMAP's estimator refuses coplanar positions, i.e. any flight whose
   GPS altitude does not vary. Cameras in a single line are turned about it to look down.

Every long pycolmap call that takes a cancellation token runs in a thread (:func:`cancellable`), so Ctrl+C
stops it within moments.
Images that do not register are listed with the reason (no verified matches, a separate model, ...).
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.config import Settings
from workbench.engines.colmap import load_pycolmap
from workbench.engines.runs import EngineError, reasons_summary
from workbench.imagery.metadata import ImageMetadata
from workbench.storage import Storage, shared_storage

EXHAUSTIVE_BELOW = 40  # images: below this many, every pair is matched
GPS_INLIER_M = 5.0  # metres: a camera further than this from its GPS position after alignment is an outlier
FLAT_RELIEF = 0.1  # points' relief (5-95th percentile) under this share of the flying height: flat ground
CAMERA_MODEL = "SIMPLE_RADIAL"  # f, cx, cy, k: enough for the small lenses of survey drones with few images


@dataclasses.dataclass(frozen=True)
class FeatureJob:
    """What a feature task needs: the image's key and name, and the reduction."""

    key: str
    name: str
    max_size: int
    max_features: int


@dataclasses.dataclass(frozen=True)
class ImageFeatures:
    """One reduced image's SIFT features (or why it has none), and its reduced JPEG for the database."""

    name: str
    width: int = 0
    height: int = 0
    keypoints: np.ndarray | None = None  # (n, 6) float32: x, y and the affine shape a11, a12, a21, a22
    descriptors: np.ndarray | None = None  # (n, 128) uint8
    jpeg: bytes = b""
    error: str | None = None


@dataclasses.dataclass
class SolvedImage:
    """A registered image: its solved camera (reduced-image pixels) and pose in the local frame."""

    key: str
    name: str
    camera: dict[str, Any]  # model, width, height, params (of the reduced image)
    rotation: list[list[float]]  # cam_from_world rotation matrix
    translation: list[float]  # cam_from_world translation
    center: list[float]  # camera centre, local frame (metres)
    gps: list[float]  # its GPS position, local frame


@dataclasses.dataclass
class Reconstruction:
    """Solved cameras and sparse points in a local frame: UTM (``crs``) minus ``origin`` (metres)."""

    crs: Any
    origin: np.ndarray  # east, north, height of the local frame's origin
    images: list[SolvedImage]
    points: np.ndarray  # (n, 3) float64, local frame
    colours: np.ndarray  # (n, 3) uint8
    errors: np.ndarray  # (n,) mean reprojection error of each point, px
    track_lengths: np.ndarray  # (n,) images that see each point
    skipped: list[dict[str, str]]  # images not used: key and reason
    report: dict[str, Any]


def reduce_image(data: bytes, max_size: int) -> np.ndarray:
    """The image in ``data`` as RGB with its longer side at most ``max_size`` px (same result in every task)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    width, height = image.size
    factor = max(width, height) / max_size
    if factor <= 1:
        return np.asarray(image.convert("RGB"))
    target = (round(width / factor), round(height / factor))
    image.draft("RGB", target)
    return np.asarray(image.convert("RGB").resize(target, Image.Resampling.LANCZOS))


def _extractor(max_features: int) -> Any:
    pycolmap = load_pycolmap()

    pycolmap.logging.minloglevel = 2
    options = pycolmap.FeatureExtractionOptions()
    options.sift.max_num_features = max_features
    options.sift.first_octave = 0  # native scale: 4x faster than COLMAP's upsampled first octave, measured
    options.num_threads = 1  # one per Dask thread
    return pycolmap.FeatureExtractor.create(options, pycolmap.Device.cpu)


def image_features(settings: Settings, job: FeatureJob) -> ImageFeatures:
    """Fetch, reduce and describe one image (a Dask task); an undecodable image comes back with ``error``."""
    from PIL import Image, UnidentifiedImageError

    data = shared_storage(settings).get_bytes(job.key)
    try:
        rgb = reduce_image(data, job.max_size)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return ImageFeatures(job.name, error=f"cannot decode the image ({str(exc).splitlines()[0] or type(exc).__name__})")
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    keypoints, descriptors = _extractor(job.max_features).extract_from_uint8_array(np.ascontiguousarray(grey))
    shapes = np.array([(k.x, k.y, k.a11, k.a12, k.a21, k.a22) for k in keypoints], dtype=np.float32).reshape(-1, 6)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=92)
    return ImageFeatures(job.name, rgb.shape[1], rgb.shape[0], shapes,
                         np.asarray(descriptors.data, dtype=np.uint8).reshape(-1, 128), out.getvalue())


def in_thread(function: Callable[..., Any], *args: Any, cancel: Callable[[], None], **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a thread, so that Ctrl+C reaches this one at once (a long C++ call in this
    thread would hold it until the call ends); on Ctrl+C ``cancel`` is called and the call waited for (up to a
    minute), so nothing of it still runs while the process exits."""
    outcome: dict[str, Any] = {}
    done = threading.Event()  # not Thread.join: on Python 3.11 a join interrupted by Ctrl+C marks the thread
    # stopped, and every later join returns at once (the cancelled call was not waited for)

    def target() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        cancel()
        done.wait(60)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def cancellable(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a long pycolmap call that takes a cancellation token in a thread; Ctrl+C cancels it and waits for it."""
    token = load_pycolmap().CancellationToken()
    return in_thread(function, *args, cancel=token.cancel, cancellation_token=token, **kwargs)


def _positions(metas: list[ImageMetadata]) -> tuple[np.ndarray, Any, str]:
    """GPS positions (UTM east, north, height), the UTM CRS, and which height was used."""
    from pyproj import Transformer

    from workbench.imagery import footprint as fp

    if any(m.lat is None or m.lon is None for m in metas):
        missing = sum(m.lat is None or m.lon is None for m in metas)
        raise EngineError(f"sfm needs the GPS position of every image to georeference the model: {missing} have none")
    crs = fp.flight_crs(metas)
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    absolute = all(m.altitude is not None for m in metas)
    heights = [(m.altitude if absolute else m.relative_altitude) for m in metas]
    if any(h is None for h in heights):
        raise EngineError("sfm needs the GPS altitude or the height above ground of every image: some have neither")
    east, north = to_utm.transform([m.lon for m in metas], [m.lat for m in metas])
    return np.column_stack([east, north, heights]).astype(np.float64), crs, "gps-altitude" if absolute else "relative-altitude"


def _camera_params(meta: ImageMetadata, width: int, height: int) -> tuple[str, bool]:
    """The SIMPLE_RADIAL prior of a reduced image (focal length from EXIF when known) and whether it is a prior."""
    if meta.focal_length_mm and meta.sensor_width_mm:
        return f"{meta.focal_length_mm / meta.sensor_width_mm * width},{width / 2},{height / 2},0", True
    return f"{1.2 * max(width, height)},{width / 2},{height / 2},0", False


def _verified_partners(database: Path) -> Counter[str]:
    """How many images each image (by name) has verified matches with."""
    pycolmap = load_pycolmap()

    partners: Counter[str] = Counter()
    with pycolmap.Database.open(database) as db:
        names = {image.image_id: image.name for image in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
        for pair_id, geometry in zip(pair_ids, geometries):
            if len(geometry.inlier_matches) >= 15:
                a, b = pycolmap.pair_id_to_image_pair(pair_id)
                partners[names[a]] += 1
                partners[names[b]] += 1
    return partners


def reconstruct(storage: Storage, inputs: list[dict[str, Any]], options: dict[str, Any], workdir: Path,
                client: Any, progress: bool) -> Reconstruction:
    """Solve the cameras of ``inputs`` (manifest rows) and their sparse points, georeferenced (module docstring)."""
    pycolmap = load_pycolmap()

    from workbench.cluster import ensure_client, map_completed
    from workbench.progress import bar

    pycolmap.logging.minloglevel = 2
    clock = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        stages[stage] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    metas = {row["key"]: ImageMetadata.from_row(row) for row in inputs}
    names = {row["key"]: f"{i:05d}_{Path(row['key']).name}" for i, row in enumerate(inputs)}  # unique, safe
    keys_by_name = {name: key for key, name in names.items()}
    skipped: list[dict[str, str]] = []
    images_dir = workdir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    features: dict[str, ImageFeatures] = {}
    jobs = [FeatureJob(row["key"], names[row["key"]], options["max_image_size"], options["max_features"]) for row in inputs]
    with ensure_client(client) as active:
        for _, result in map_completed(active, image_features, [storage.settings] * len(jobs), jobs,
                                       desc="sfm features", unit="img", progress=progress):
            if result.error:
                skipped.append({"key": keys_by_name[result.name], "reason": result.error})
                continue
            (images_dir / result.name).write_bytes(result.jpeg)
            features[result.name] = dataclasses.replace(result, jpeg=b"")
    lap("features_s")
    usable = [row["key"] for row in inputs if names[row["key"]] in features]
    if len(usable) < options["min_images"]:
        raise EngineError(f"only {len(usable)} of {len(inputs)} image(s) could be read: sfm needs at least "
                          f"{options['min_images']} (option min_images); {reasons_summary(skipped)}", skipped=skipped)
    positions, crs, height_source = _positions([metas[k] for k in usable])
    origin = positions.mean(axis=0)
    local = dict(zip(usable, positions - origin))

    database = workdir / "database.db"
    pycolmap.Database.open(database).close()
    first = features[names[usable[0]]]
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = CAMERA_MODEL
    one_camera = len({(metas[k].model, features[names[k]].width, features[names[k]].height) for k in usable}) == 1
    focal_prior = False
    if one_camera:
        reader.camera_params, focal_prior = _camera_params(metas[usable[0]], first.width, first.height)
    pycolmap.import_images(database, images_dir, pycolmap.CameraMode.SINGLE if one_camera else pycolmap.CameraMode.AUTO,
                           [names[k] for k in usable], reader)
    with pycolmap.Database.open(database) as db:
        for image in db.read_all_images():
            found = features[image.name]
            db.write_keypoints(image.image_id, found.keypoints)
            db.write_descriptors(image.image_id, pycolmap.FeatureDescriptors(pycolmap.FeatureExtractorType.SIFT, found.descriptors))
            db.write_pose_prior(pycolmap.PosePrior(corr_data_id=image.data_id, position=local[keys_by_name[image.name]],
                                                   coordinate_system=pycolmap.PosePriorCoordinateSystem.CARTESIAN))
    del features

    matcher = options["matcher"]
    if matcher == "auto":
        matcher = "exhaustive" if len(usable) < EXHAUSTIVE_BELOW else "spatial"
    matching = pycolmap.FeatureMatchingOptions()
    with bar(total=1, desc=f"sfm matching ({matcher})", unit="step", disable=not progress) as step:
        if matcher == "exhaustive":
            cancellable(pycolmap.match_exhaustive, database, matching)
        else:
            pairing = pycolmap.SpatialPairingOptions()
            pairing.ignore_z, pairing.max_num_neighbors, pairing.max_distance = False, options["neighbours"], 1e9
            cancellable(pycolmap.match_spatial, database, matching, pairing)
        step.update(1)
    lap("matching_s")

    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.min_model_size = 3
    mapping.random_seed = 1  # the same images give the same model
    mapping.mapper.abs_pose_min_num_inliers = 15  # COLMAP's 30 leaves the ends of fixed-wing strips out (seneca)
    mapping.mapper.abs_pose_min_inlier_ratio = 0.15
    with bar(total=len(usable), desc="sfm mapping", unit="img", disable=not progress) as registered:
        models = cancellable(pycolmap.incremental_mapping, database, images_dir, workdir / "sparse", mapping,
                             next_image_callback=lambda: registered.update(1))
    lap("mapping_s")
    model = max(models.values(), key=lambda m: m.num_reg_images()) if models else None
    solved_names = {image.name for image in model.images.values() if image.has_pose} if model else set()
    others = {image.name: len(m.images) for m in models.values() if m is not model for image in m.images.values()}
    partners = _verified_partners(database)
    for key in usable:
        name = names[key]
        if name in solved_names:
            continue
        if name in others:
            reason = f"in a separate model ({others[name]} images, not connected to the main one)"
        elif not partners[name]:
            reason = "no verified feature matches with any other image (no overlap, or no texture)"
        else:
            reason = f"could not be placed (verified matches with {partners[name]} image(s), too few consistent ones)"
        skipped.append({"key": key, "reason": reason})
    share = len(solved_names) / len(inputs)
    if len(solved_names) < 3 or share < options["min_registered"]:
        raise EngineError(f"sfm registered {len(solved_names)} of {len(inputs)} images ({share:.0%}; option "
                          f"min_registered asks for {options['min_registered']:.0%}): {reasons_summary(skipped)}",
                          skipped=skipped)
    stated = {k: metas[k].relative_altitude for k in usable}
    solution = _georeference(model, usable, names, local, crs, origin, skipped, stated=stated, report={
        "images_given": len(inputs), "images_registered": len(solved_names), "matcher": matcher,
        "max_image_size": options["max_image_size"], "height_source": height_source,
        "focal_length_prior": "exif" if focal_prior else "guessed (1.2 x image size)"})
    lap("georeference_s")
    solution.report["stages"] = stages
    return solution


def _georeference(model: Any, usable: list[str], names: dict[str, str], local: dict[str, np.ndarray], crs: Any,
                  origin: np.ndarray, skipped: list[dict[str, str]], report: dict[str, Any],
                  stated: dict[str, float | None]) -> Reconstruction:
    """Fit the model to the GPS positions (:func:`fit_similarity`), transform it, and collect the solution."""
    pycolmap = load_pycolmap()

    by_name = {image.name: image for image in model.images.values() if image.has_pose}
    solved = [k for k in usable if names[k] in by_name]
    source = np.array([by_name[names[k]].projection_center() for k in solved])
    target = np.array([local[k] for k in solved])
    views = np.array([by_name[names[k]].viewing_direction() for k in solved])
    fitted = fit_similarity(source, target, views)
    if fitted is None:
        raise EngineError("sfm could not align the model to the GPS positions (fewer than 3 cameras agree within "
                          f"{GPS_INLIER_M:g} m)", skipped=skipped)
    scale, rotation, translation, inliers = fitted
    model.transform(pycolmap.Sim3d(scale, pycolmap.Rotation3d(rotation), translation))
    report["depth"] = settle_flat_depth(model, stated, {names[k]: k for k in solved})
    if report["depth"]["settled"]:  # bundle adjustment moved the model a little: fit it to the GPS again
        refit = fit_similarity(np.array([by_name[names[k]].projection_center() for k in solved]), target,
                               np.array([by_name[names[k]].viewing_direction() for k in solved]))
        if refit is not None:
            step, turn, shift, inliers = refit
            model.transform(pycolmap.Sim3d(step, pycolmap.Rotation3d(turn), shift))
            scale *= step
    images = []
    for key in solved:
        image = by_name[names[key]]
        camera = image.camera
        pose = image.cam_from_world()
        images.append(SolvedImage(
            key=key, name=names[key],
            camera={"model": camera.model.name, "width": camera.width, "height": camera.height,
                    "params": [float(p) for p in camera.params], "focal": float(camera.mean_focal_length())},
            rotation=pose.rotation.matrix().tolist(), translation=[float(t) for t in pose.translation],
            center=[float(c) for c in image.projection_center()], gps=[float(g) for g in local[key]]))
    residuals = np.array([np.subtract(i.center, i.gps) for i in images])
    points = list(model.points3D.values())
    xyz = np.array([p.xyz for p in points], dtype=np.float64).reshape(-1, 3)
    cameras = {image.camera["model"]: [round(p, 6) for p in image.camera["params"]] for image in images}
    report.update({
        "points": len(points),
        "reprojection_error_px": round(float(model.compute_mean_reprojection_error()), 3),
        "mean_track_length": round(float(model.compute_mean_track_length()), 2),
        "gps_residual_m": {"rms_horizontal": round(float(np.sqrt((residuals[:, :2] ** 2).sum(axis=1).mean())), 3),
                           "rms_vertical": round(float(np.sqrt((residuals[:, 2] ** 2).mean())), 3),
                           "max": round(float(np.linalg.norm(residuals, axis=1).max()), 3),
                           "inliers": int(inliers.sum())},
        "scale": round(float(scale), 6),
        "cameras": cameras,
    })
    return Reconstruction(
        crs=crs, origin=origin, images=images, points=xyz,
        colours=np.array([p.color for p in points], dtype=np.uint8).reshape(-1, 3),
        errors=np.array([p.error for p in points], dtype=np.float32),
        track_lengths=np.array([p.track.length() for p in points], dtype=np.int32),
        skipped=skipped, report=report)


def settle_flat_depth(model: Any, stated: dict[str, float | None], keys: dict[str, str]) -> dict[str, Any]:
    """Over flat ground seen from above, focal length and depth trade off (the images look the same with a
    longer lens from higher up), so bundle adjustment may drift both (measured: 20-28 % on the synthetic survey).
    When the points' relief is under :data:`FLAT_RELIEF` of the flying height and the images state their height
    above ground, the model's depth is rescaled to those heights about the cameras, the focal length and radial
    distortion (SIMPLE_RADIAL) with it, and the model is bundle-adjusted again with the focal length held.
    ``keys``: image name -> key. In place; returns what was done, for the report."""
    pycolmap = load_pycolmap()

    images = [image for image in model.images.values() if image.has_pose]
    heights = [(image.projection_center()[2], stated[keys[image.name]]) for image in images if stated.get(keys[image.name])]
    points = np.array([point.xyz for point in model.points3D.values()]).reshape(-1, 3)
    if len(heights) < max(3, len(images) // 2) or not len(points):
        return {"settled": False, "reason": "the images do not state their height above ground"}
    cameras_at = float(np.median([h[0] for h in heights]))
    solved_height = cameras_at - float(np.median(points[:, 2]))
    relief = float(np.percentile(points[:, 2], 95) - np.percentile(points[:, 2], 5))
    ratio = solved_height / float(np.median([h[1] for h in heights]))
    if relief >= FLAT_RELIEF * solved_height or abs(ratio - 1) < 0.02 or ratio <= 0:
        return {"settled": False, "relief_m": round(relief, 2), "height_ratio": round(ratio, 3)}
    for point in model.points3D.values():
        x, y, z = point.xyz
        point.xyz = np.array([x, y, cameras_at + (z - cameras_at) / ratio])
    for camera in model.cameras.values():
        if camera.model.name == CAMERA_MODEL:
            f, cx, cy, k = camera.params
            camera.params = [f / ratio, cx, cy, k * ratio**2]
    adjust = pycolmap.BundleAdjustmentOptions()
    adjust.refine_focal_length, adjust.print_summary = False, False
    config = pycolmap.BundleAdjustmentConfig()
    for image in images:
        config.add_image(image.image_id)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.THREE_POINTS)
    # (bundle_adjustment() logs to stderr); pycolmap cannot cancel it: Ctrl+C takes effect when it ends (seconds)
    pycolmap.create_default_bundle_adjuster(adjust, config, model).solve()
    return {"settled": True, "relief_m": round(relief, 2), "height_ratio": round(ratio, 3),
            "note": "flat ground: depth and focal length rescaled to the images' stated height above ground, "
                    "then bundle-adjusted again with the focal length held"}


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (scale, rotation, translation) taking ``source`` points onto ``target`` in the least-squares
    sense (Umeyama 1991); unlike COLMAP's estimator it accepts coplanar points (a flight at one altitude)."""
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(b.T @ a / len(a))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / max((a ** 2).sum() / len(a), 1e-12))
    return scale, rotation, mean_t - scale * rotation @ mean_s


def _roll_to_nadir(rotation: np.ndarray, target: np.ndarray, views: np.ndarray) -> np.ndarray:
    """For cameras along one line the rotation about it is not fixed by their positions: turn the model about
    the line so the cameras look as straight down as possible."""
    line = np.linalg.svd(target - target.mean(axis=0))[2][0]
    look = (views @ rotation.T).mean(axis=0)
    down = np.array([0.0, 0.0, -1.0])
    look, down = look - look @ line * line, down - down @ line * line
    if np.linalg.norm(look) < 1e-9 or np.linalg.norm(down) < 1e-9:
        return rotation
    angle = math.atan2(np.cross(look, down) @ line, look @ down)
    k = np.array([[0, -line[2], line[1]], [line[2], 0, -line[0]], [-line[1], line[0], 0]])
    turn = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k  # Rodrigues
    return turn @ rotation


def fit_similarity(source: np.ndarray, target: np.ndarray, views: np.ndarray,
                   tolerance: float = GPS_INLIER_M) -> tuple[float, np.ndarray, np.ndarray, np.ndarray] | None:
    """A similarity from model camera centres ``source`` to GPS positions ``target``, robust to wrong GPS fixes:
    RANSAC over triples (seeded: deterministic), then a least-squares fit on the inliers (``tolerance`` metres).
    ``views`` (the cameras' viewing directions) fix the roll when the cameras are in one line. Returns scale,
    rotation, translation and the inlier mask, or None when fewer than 3 cameras agree."""
    count = len(source)
    if count < 3:
        return None
    generator = np.random.default_rng(0)
    triples = [generator.choice(count, 3, replace=False) for _ in range(min(500, math.comb(count, 3) * 3))]
    best = np.zeros(count, dtype=bool)
    for triple in triples:
        if np.linalg.norm(np.cross(*(target[triple[1:]] - target[triple[0]]))) < 1e-6:
            continue  # three cameras in a line fix no rotation
        scale, rotation, translation = umeyama(source[triple], target[triple])
        inliers = np.linalg.norm(scale * source @ rotation.T + translation - target, axis=1) <= tolerance
        if inliers.sum() > best.sum():
            best = inliers
    if best.sum() < 3:
        best = np.ones(count, dtype=bool)  # all in one line: fit them all, then fix the roll
    scale, rotation, translation = umeyama(source[best], target[best])
    spread = np.linalg.svd(target[best] - target[best].mean(axis=0), compute_uv=False)
    if spread[1] < 0.02 * spread[0]:
        rotation = _roll_to_nadir(rotation, target[best], views[best])
        translation = target[best].mean(axis=0) - scale * rotation @ source[best].mean(axis=0)
    inliers = np.linalg.norm(scale * source @ rotation.T + translation - target, axis=1) <= tolerance
    if inliers.sum() < 3:
        return None
    return scale, rotation, translation, inliers


def gsd(image: SolvedImage, ground_height: float) -> float:
    """Metres per reduced-image pixel at the image centre for ground at ``ground_height`` (local frame)."""
    return max(image.center[2] - ground_height, 1e-3) / image.camera["focal"]
