"""Raw demo videos from real face photographs that ship with installed packages.

``skimage.data.astronaut()`` (Eileen Collins) and matplotlib's ``grace_hopper.jpg``
are filmed by a virtual camera (pan, zoom, rotation, changing light). Fakes are
classical face swaps between the two photos: dlib landmarks, a Delaunay
triangulation, one affine warp per triangle, then Poisson (seamless) or
colour-matched alpha blending. The result exercises the real preprocessing
pipeline (decode, detection, tracking, alignment, mask videos) on real faces,
without any download.

Layout written under ``--out`` (the dataset root of the ``DemoRaw`` adapter)::

    real/videos/real_NNN.mp4
    fake/videos/fake_NNN.mp4
    fake/masks/videos/fake_NNN.mp4     swapped region, same camera motion (FF++ style mask videos)
    metadata.json                      per video: label, split, identity, photo, blend

End to end::

    python -m preprocessing.demo.raw_videos --out datasets/DemoRaw --seed 0
    python -m preprocessing.preprocess --input datasets/DemoRaw
    python -m preprocessing.rearrange --dataset DemoRaw --source_dir datasets/DemoRaw --data_root datasets \
        --allow_overlap identity

Two photographs are all the identities there are, and every split shows both, so the split
leakage check (preprocessing/leakage.py) must be told that the identity overlap is deliberate.
"""
from __future__ import annotations

import sys
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.cli import cli_parser, run_cli
from training.utils.atomic import atomic_write_json

PHOTOS = ("astronaut", "grace_hopper")
BLENDS = ("seamless", "alpha")
SPLITS = ("train", "val", "test")
DEFAULT_VIDEOS_PER_LABEL = {"train": 4, "val": 2, "test": 2}


# ----------------------------------------------------------------------------- photos and landmarks

def load_photo(name: str) -> np.ndarray:
    """A package-shipped face photo as a BGR uint8 array."""
    if name == "astronaut":
        from skimage import data

        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if name == "grace_hopper":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"matplotlib's sample photo {path} cannot be read; reinstall matplotlib.")
        return image
    raise KeyError(f"Unknown demo photo '{name}'; choose one of {', '.join(PHOTOS)}.")


def photo_landmarks(image_bgr: np.ndarray, predictor=None) -> np.ndarray:
    """68 landmarks of the largest face (detected at full resolution, no upsampling:
    on the astronaut photo upsampling adds a false face on the suit)."""
    from preprocessing.faces import FaceDetector, LandmarkPredictor

    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    boxes = FaceDetector(detect_width=max(image_bgr.shape[1], 64), upsample_levels=(0,)).detect(rgb)
    if not boxes:
        raise RuntimeError("dlib finds no face in a demo photo; the package data changed.")
    predictor = predictor or LandmarkPredictor()
    return predictor.predict(rgb, max(boxes, key=lambda box: box.area))


# ----------------------------------------------------------------------------- face swap

def delaunay_triangles(points: np.ndarray, shape: Tuple[int, int]) -> List[Tuple[int, int, int]]:
    """Triangles of the Delaunay triangulation of ``points``, as index triples."""
    height, width = shape
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    for x, y in points:
        subdiv.insert((float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1))))
    clipped = np.clip(points, 0, [width - 1, height - 1])
    triangles = []
    for tri in subdiv.getTriangleList():
        corners = tri.reshape(3, 2)
        # Subdiv2D returns coordinates; map each corner back to its landmark (the
        # triangles touching Subdiv2D's virtual outer vertices match none and are dropped).
        distances = np.linalg.norm(clipped[None, :, :] - corners[:, None, :], axis=2)
        nearest = distances.argmin(axis=1)
        if distances[np.arange(3), nearest].max() < 0.5 and len(set(nearest.tolist())) == 3:
            triangles.append(tuple(int(i) for i in nearest))
    return triangles


def warp_face(source: np.ndarray, source_points: np.ndarray, target_shape: Tuple[int, int],
              target_points: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp of ``source`` so its landmarks land on ``target_points``."""
    height, width = target_shape
    # Inner-lip points (60-67) are dropped: on a closed mouth they coincide, and a
    # degenerate source triangle samples pixels far away (e.g. a blue collar).
    source_points, target_points = source_points[:60], target_points[:60]
    warped = np.zeros((height, width, 3), dtype=np.float32)
    for a, b, c in delaunay_triangles(target_points, (height, width)):
        src = source_points[[a, b, c]].astype(np.float32)
        dst = target_points[[a, b, c]].astype(np.float32)
        x, y, w, h = cv2.boundingRect(dst)
        if w == 0 or h == 0:
            continue
        matrix = cv2.getAffineTransform(src, dst - np.float32([x, y]))
        patch = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        triangle_mask = np.zeros((h, w), dtype=np.float32)
        cv2.fillConvexPoly(triangle_mask, np.round(dst - [x, y]).astype(np.int32), 1.0, lineType=cv2.LINE_AA)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        region = (slice(y0, y1), slice(x0, x1))
        local = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
        alpha = triangle_mask[local][..., None]
        warped[region] = warped[region] * (1 - alpha) + patch[local].astype(np.float32) * alpha
    return np.clip(warped, 0, 255).astype(np.uint8)


def face_region_mask(points: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """uint8 mask of the inner face (jaw line and eyebrows), slightly eroded so the
    blend seam stays inside the warped area."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points[:27]).astype(np.int32)), 255)
    return cv2.erode(mask, np.ones((5, 5), np.uint8))


def match_colours(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift ``image`` to the mean/std of ``reference`` inside ``mask`` (in Lab)."""
    inside = mask > 0
    image_lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    reference_lab = cv2.cvtColor(reference, cv2.COLOR_BGR2LAB).astype(np.float32)
    for channel in range(3):
        values, wanted = image_lab[..., channel][inside], reference_lab[..., channel][inside]
        image_lab[..., channel] = ((image_lab[..., channel] - values.mean()) / (values.std() + 1e-6)
                                   * wanted.std() + wanted.mean())
    return cv2.cvtColor(np.clip(image_lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def swap_face(source: np.ndarray, source_points: np.ndarray, target: np.ndarray,
              target_points: np.ndarray, blend: str = "seamless") -> Tuple[np.ndarray, np.ndarray]:
    """Put the face of ``source`` onto ``target``. Returns (fake image, forgery mask)."""
    shape = target.shape[:2]
    warped = warp_face(source, source_points, shape, target_points)
    mask = face_region_mask(target_points, shape)
    if blend == "seamless":
        x, y, w, h = cv2.boundingRect(mask)
        # seamlessClone overwrites the mask it is given: hand it a copy.
        fake = cv2.seamlessClone(warped, target, mask.copy(), (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    elif blend == "alpha":
        warped = match_colours(warped, target, mask)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 4)[..., None]
        fake = np.clip(warped * alpha + target * (1 - alpha), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"Unknown blend '{blend}'; choose one of {', '.join(BLENDS)}.")
    return fake, mask


# ----------------------------------------------------------------------------- camera

@dataclass(frozen=True)
class CameraPose:
    zoom: float  # >= 1: relative to the scale at which the photo just covers the frame
    angle: float  # degrees
    shift: Tuple[float, float]  # view centre offset from the focus point, fraction of the view
    gain: float  # overall brightness
    light_slope: float  # brightness gradient across the frame (a moving light)


def camera_path(rng: np.random.Generator, num_frames: int, max_zoom: float = 0.3, max_angle: float = 8.0,
                max_shift: float = 0.05) -> List[CameraPose]:
    """A smooth random camera move: start and end poses, eased in between, plus a small shake."""
    start, end = ([rng.uniform(1.0, 1.0 + max_zoom), rng.uniform(-max_angle, max_angle),
                   rng.uniform(-max_shift, max_shift), rng.uniform(-max_shift, max_shift),
                   rng.uniform(0.75, 1.2), rng.uniform(-0.25, 0.25)] for _ in range(2))
    shake = rng.normal(0, 0.004, size=(num_frames, 2))
    poses = []
    for index in range(num_frames):
        t = index / max(1, num_frames - 1)
        ease = 0.5 - 0.5 * np.cos(np.pi * t)
        value = [a + (b - a) * ease for a, b in zip(start, end)]
        poses.append(CameraPose(zoom=value[0], angle=value[1],
                                shift=(value[2] + shake[index, 0], value[3] + shake[index, 1]),
                                gain=value[4], light_slope=value[5]))
    return poses


def camera_matrix(photo_shape: Tuple[int, int], frame_size: Tuple[int, int], pose: CameraPose,
                  focus: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """2x3 matrix taking photo pixels to frame pixels for ``pose``.

    The camera looks at ``focus`` (photo pixels; default the photo centre), moved
    by ``pose.shift`` and kept inside the photo so no border has to be invented.
    """
    photo_h, photo_w = photo_shape
    frame_w, frame_h = frame_size
    scale = max(frame_w / photo_w, frame_h / photo_h) * pose.zoom
    half_w, half_h = frame_w / 2.0 / scale, frame_h / 2.0 / scale  # half the view, in photo pixels
    focus_x, focus_y = focus if focus is not None else (photo_w / 2.0, photo_h / 2.0)
    centre_x = float(np.clip(focus_x + pose.shift[0] * 2 * half_w, half_w, photo_w - half_w))
    centre_y = float(np.clip(focus_y + pose.shift[1] * 2 * half_h, half_h, photo_h - half_h))
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), pose.angle, scale)
    matrix[0, 2] += frame_w / 2.0 - centre_x
    matrix[1, 2] += frame_h / 2.0 - centre_y
    return matrix


def render_frame(photo: np.ndarray, frame_size: Tuple[int, int], pose: CameraPose,
                 focus: Optional[Tuple[float, float]] = None, lighting: bool = True) -> np.ndarray:
    # Replicated borders only show in the corners of rotated views; a reflected
    # border could mirror the face and add a second one.
    frame = cv2.warpAffine(photo, camera_matrix(photo.shape[:2], frame_size, pose, focus), frame_size,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if not lighting:
        return frame
    ramp = np.linspace(-pose.light_slope, pose.light_slope, frame_size[0], dtype=np.float32)[None, :, None]
    if frame.ndim == 2:
        ramp = ramp[..., 0]
    return np.clip(frame.astype(np.float32) * (pose.gain + ramp), 0, 255).astype(np.uint8)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float = 25.0) -> None:
    """mp4v video, written under a hidden temporary name and renamed when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # hidden: preprocessing ignores it
    writer = None
    try:
        for frame in frames:
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"cv2.VideoWriter cannot write {tmp} (mp4v codec unavailable?).")
            writer.write(frame)
        if writer is None:
            raise ValueError(f"No frames to write to {path}.")
        writer.release()
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)


def film(photo: np.ndarray, poses: Sequence[CameraPose], frame_size: Tuple[int, int], path: Path,
         focus: Optional[Tuple[float, float]] = None, fps: float = 25.0, lighting: bool = True) -> None:
    """Write the video of ``photo`` seen through the camera ``poses``."""
    write_video(path, (render_frame(photo, frame_size, pose, focus, lighting) for pose in poses), fps)


# ----------------------------------------------------------------------------- the demo set

@dataclass(frozen=True)
class Scene:
    """A still image to film: a real photo or a face swap, optionally mirrored."""

    image: np.ndarray
    mask: Optional[np.ndarray]
    focus: Tuple[float, float]  # where the camera looks: the face centre
    info: Dict[str, object]


def build_scenes() -> Tuple[List[Scene], List[Scene]]:
    """Real scenes (each photo, plain and mirrored) and fake ones (each swap direction x blend, x mirror)."""
    from preprocessing.faces import LandmarkPredictor

    predictor = LandmarkPredictor()
    photos = {name: load_photo(name) for name in PHOTOS}
    points = {name: photo_landmarks(image, predictor) for name, image in photos.items()}
    reals, fakes = [], []  # ordered so that consecutive videos (one split) differ in photo and blend
    def focus(name: str, mirrored: bool) -> Tuple[float, float]:
        x, y = points[name].mean(axis=0)  # the face centre; the camera keeps the view inside the photo
        width = photos[name].shape[1]
        return (width - 1 - float(x) if mirrored else float(x)), float(y)

    for name, image in photos.items():
        for mirrored in (False, True):
            reals.append(Scene(image[:, ::-1].copy() if mirrored else image, None, focus(name, mirrored),
                               {"photo": name, "identity": name, "mirrored": mirrored}))
    for target in PHOTOS:
        source = next(name for name in PHOTOS if name != target)
        for blend in BLENDS:
            fake, mask = swap_face(photos[source], points[source], photos[target], points[target], blend)
            for mirrored in (False, True):
                if mirrored:
                    fake, mask = fake[:, ::-1].copy(), mask[:, ::-1].copy()
                info = {"photo": target, "identity": target, "face_from": source,
                                  "blend": blend, "mirrored": mirrored}
                fakes.append(Scene(fake, mask, focus(target, mirrored), info))
    reals.sort(key=lambda scene: (scene.info["mirrored"], scene.info["photo"]))
    fakes.sort(key=lambda scene: (scene.info["mirrored"], scene.info["blend"] != "seamless", scene.info["photo"]))
    return reals, fakes


def parse_size(text: str) -> Tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size '{text}' must look like WIDTHxHEIGHT, e.g. 512x384.") from None
    if width < 64 or height < 64:
        raise ValueError(f"--size {text} is too small (at least 64x64).")
    return width, height


def make_raw_demo(out_dir: Path, seed: int = 0, num_frames: int = 40, size: Tuple[int, int] = (512, 384),
                  videos_per_label: Optional[Dict[str, int]] = None, fps: float = 25.0) -> Dict[str, object]:
    """Write the DemoRaw videos and ``metadata.json`` under ``out_dir``; return the metadata."""
    out_dir = Path(out_dir)
    counts = dict(DEFAULT_VIDEOS_PER_LABEL if videos_per_label is None else videos_per_label)
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"videos_per_label has unknown splits {sorted(unknown)}; use {', '.join(SPLITS)}.")
    rng = np.random.default_rng(seed)
    reals, fakes = build_scenes()
    videos: Dict[str, Dict[str, object]] = {}
    for label, scenes in (("real", reals), ("fake", fakes)):
        number = 0
        for split in SPLITS:
            for _ in range(counts.get(split, 0)):
                scene = scenes[number % len(scenes)]  # cycle so every split sees every kind of scene
                name = f"{label}_{number:03d}"
                poses = camera_path(rng, num_frames)
                film(scene.image, poses, size, out_dir / label / "videos" / f"{name}.mp4", scene.focus, fps)
                if scene.mask is not None:
                    film(scene.mask, poses, size, out_dir / label / "masks" / "videos" / f"{name}.mp4",
                         scene.focus, fps, lighting=False)
                videos[name] = {"label": label, "split": split, **scene.info}
                number += 1
    metadata = {"dataset": "DemoRaw", "seed": seed, "num_frames": num_frames, "size": list(size),
                "fps": fps, "videos": videos}
    atomic_write_json(out_dir / "metadata.json", metadata)
    return metadata


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    parser = cli_parser(__file__, "Write raw demo videos (real photos, camera motion, face swaps).")
    parser.add_argument("--out", required=True, help="dataset root to write (e.g. datasets/DemoRaw)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of photos, motion and swaps")
    parser.add_argument("--num_frames", type=int, default=40, help="frames per video (40)")
    parser.add_argument("--size", default="512x384", help="frame size WIDTHxHEIGHT (512x384)")
    parser.add_argument("--videos", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                        default=[DEFAULT_VIDEOS_PER_LABEL[s] for s in SPLITS],
                        help="videos per label in each split (4 2 2)")
    args = parser.parse_args(argv)
    metadata = make_raw_demo(Path(args.out), seed=args.seed, num_frames=args.num_frames,
                             size=parse_size(args.size), videos_per_label=dict(zip(SPLITS, args.videos)))
    print(f"wrote {len(metadata['videos'])} videos to {args.out}")
    return metadata


if __name__ == "__main__":
    sys.exit(run_cli(main))
