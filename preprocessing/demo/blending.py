"""Geometry and colour helpers shared by the manipulations: masks, alignment, colour transfer."""
from __future__ import annotations

import cv2
import numpy as np

from preprocessing.demo.render import CROP

INNER_FACE = slice(17, 68)  # brows, nose, eyes, mouth: what a face swap replaces
FACE_CENTRE_X, FACE_CENTRE_Y = CROP / 2.0, 140.0


def face_outline(landmarks: np.ndarray, forehead_lift: float = 0.25) -> np.ndarray:
    """Jaw plus brows lifted towards the hairline (the hull DeepfakeBench masks use)."""
    brows = landmarks[17:27].copy()
    nose_length = float(landmarks[30, 1] - landmarks[27, 1])
    brows[:, 1] -= forehead_lift * nose_length
    return np.concatenate([landmarks[0:17], brows])


def hull_mask(points: np.ndarray, grow_px: float = 0.0) -> np.ndarray:
    """Filled convex hull of ``points`` as float32 [0,1]; ``grow_px`` < 0 erodes."""
    mask = np.zeros((CROP, CROP), np.uint8)
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA, 4)
    radius = int(round(abs(grow_px)))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel) if grow_px > 0 else cv2.erode(mask, kernel)
    return mask.astype(np.float32) / 255.0


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Soften a mask's edge with a Gaussian of ``sigma`` pixels."""
    if sigma <= 0:
        return mask
    if sigma < 3:
        return cv2.GaussianBlur(mask, (0, 0), sigma)
    # Wide feathers are blurred at quarter resolution: the result is smooth
    # anyway and a wide kernel at full resolution costs several milliseconds.
    small = cv2.resize(mask, (CROP // 4, CROP // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
    return cv2.resize(small, (CROP, CROP), interpolation=cv2.INTER_LINEAR)


def blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask * source + (1 - mask) * target`` for float32 images and a float32 mask."""
    return cv2.blendLinear(source.astype(np.float32), target.astype(np.float32),
                           mask.astype(np.float32), (1.0 - mask).astype(np.float32))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping ``src`` points onto ``dst``, as (2, 3).

    Closed form rather than cv2.estimateAffinePartial2D: no RANSAC, so no
    hidden random state and the result is exactly reproducible.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sing, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[1, 1] = -1
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(sing) @ flip) / s.var(0).sum())
    shift = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])


def warp_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def about_face_centre(angle_deg: float, scale: float, shift=(0.0, 0.0)) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((FACE_CENTRE_X, FACE_CENTRE_Y), angle_deg, scale)
    matrix[:, 2] += shift
    return matrix


def resample(image: np.ndarray, size: int, up_interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """Down to ``size`` px and back: the resolution a generator actually produced."""
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (CROP, CROP), interpolation=up_interpolation)


def transfer_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray,
                    strength: float) -> np.ndarray:
    """Reinhard-style per-channel mean/std matching of ``source`` to ``target`` inside ``mask``.

    ``strength`` 0 keeps the source colours (a visible mismatch), 1 matches fully.
    """
    if strength <= 0:
        return source
    inside = (mask > 0.5).astype(np.uint8)
    if cv2.countNonZero(inside) < 16:
        return source
    mu_s, sd_s = (v.ravel() for v in cv2.meanStdDev(source, mask=inside))
    mu_d, sd_d = (v.ravel() for v in cv2.meanStdDev(target, mask=inside))
    sd_s, sd_d = sd_s + 1e-3, sd_d + 1e-3
    # Matching the spread fully would also copy the target's face features'
    # contrast; halve it, as practical colour-correction steps do.
    gain = 1.0 + strength * 0.5 * (sd_d / sd_s - 1.0)
    offset = mu_s * (1.0 - gain) + strength * (mu_d - mu_s)
    # (source - mu_s) * gain + mu_s + strength * (mu_d - mu_s), as one affine colour transform.
    return cv2.transform(source, np.hstack([np.diag(gain), offset[:, None]]).astype(np.float32))


def smooth_field(rng: np.random.Generator, amplitude: float, grid: int = 6) -> np.ndarray:
    """A smooth random (H, W, 2) displacement field: elastic deformation of a mask."""
    coarse = rng.uniform(-amplitude, amplitude, (grid, grid, 2)).astype(np.float32)
    return cv2.resize(coarse, (CROP, CROP), interpolation=cv2.INTER_CUBIC)


def deform_mask(mask: np.ndarray, field: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    return cv2.remap(mask, xs + field[..., 0], ys + field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
