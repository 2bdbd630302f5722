"""Procedural talking-head renderer for the demo benchmark.

A face is drawn in a fixed *canonical* 256x256 crop (features placed from the
68 iBUG landmarks, so landmarks and pixels agree by construction), shaded by
a per-identity ellipsoid normal map, then moved by a per-frame similarity
transform (the residual head motion an aligned face crop still has) and
composited over the identity's background. Everything is vectorised numpy or
cv2 drawing: one frame costs about a millisecond.

Landmark order (iBUG 68): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67; "left" means image left.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

CROP = 256  # side of every face crop, as written by preprocessing
CENTER_X = CROP / 2.0
NOISE_SIGMA = 2.0  # sensor noise (grey levels) of every "camera" frame

# Pairs (image-left index, image-right index) used to mirror the left half of
# the face onto the right half in iBUG order.
_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
)

SKIN_LIGHT_BGR = np.array([170.0, 195.0, 235.0])
SKIN_DARK_BGR = np.array([55.0, 80.0, 125.0])
HAIR_BGR = np.array([[20, 20, 25], [30, 45, 75], [45, 80, 130], [90, 150, 200],
                     [40, 60, 150], [150, 150, 155]], dtype=np.float64)
IRIS_BGR = np.array([[30, 60, 100], [140, 100, 60], [80, 120, 60], [110, 110, 110],
                     [20, 35, 60]], dtype=np.float64)


@dataclass(frozen=True)
class Expression:
    blink: float = 0.0  # 0 open .. 1 closed
    mouth_open: float = 0.0  # 0 closed .. 1 wide open
    smile: float = 0.0  # -0.3 (frown) .. 1 (smile)


@dataclass(frozen=True)
class FrameState:
    """Everything that changes from frame to frame of one clip."""

    pose: np.ndarray  # (2, 3) canonical -> crop similarity transform
    expression: Expression
    light: np.ndarray  # (3,) unit light direction (x right, y down, z towards camera)
    gain_bgr: np.ndarray  # (3,) global colour gain (exposure / white balance drift)


@dataclass(frozen=True)
class FaceIdentity:
    """Shape and colour of one synthetic person (all geometry in canonical pixels)."""

    number: int
    face_half_width: float
    jaw_squareness: float  # <1: square jaw, >1: pointed chin
    eye_y: float
    eye_spacing: float  # half distance between eye centres
    eye_half_width: float
    eye_half_height: float
    eye_tilt: float  # outer corner drop in pixels
    brow_raise: float
    brow_arch: float
    brow_thickness: int
    nose_length: float
    nose_half_width: float
    mouth_gap: float  # nose tip -> mouth line
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    chin_gap: float  # lower lip -> chin
    forehead_height: float
    hairline_depth: float  # 0 bald .. 1 low fringe
    hair_volume: float
    long_hair: bool
    skin_bgr: Tuple[float, float, float]
    lip_bgr: Tuple[float, float, float]
    hair_bgr: Tuple[float, float, float]
    brow_bgr: Tuple[float, float, float]
    iris_bgr: Tuple[float, float, float]
    clothes_bgr: Tuple[float, float, float]
    asymmetry: np.ndarray  # (68, 2) fixed small landmark offsets


@dataclass(frozen=True)
class IdentityAssets:
    """Per-identity images computed once and reused for every frame."""

    skin_texture: np.ndarray  # (H, W) float32 multiplicative albedo texture, mean ~1
    normals: np.ndarray  # (H, W, 3) float32 unit normals of an ellipsoid head (x, y, z)
    background: np.ndarray  # (H, W, 3) float32 BGR


def sample_identity(number: int, rng: np.random.Generator) -> FaceIdentity:
    """Draw a random but plausible face; every dimension varies between people."""
    tone = rng.uniform(0.0, 1.0)
    skin = SKIN_LIGHT_BGR * (1 - tone) + SKIN_DARK_BGR * tone + rng.normal(0, 6, 3)
    lip = skin * np.array([0.75, 0.7, 0.95]) + np.array([0, 0, 25]) + rng.normal(0, 5, 3)
    hair = HAIR_BGR[rng.integers(len(HAIR_BGR))] + rng.normal(0, 8, 3)
    iris = IRIS_BGR[rng.integers(len(IRIS_BGR))] + rng.normal(0, 8, 3)
    clothes = rng.uniform(30, 220, 3)
    # Brows are mostly dark whatever the hair colour, so a pasted face's brows
    # are not an obvious give-away on their own.
    brow = 0.35 * hair + 0.65 * rng.uniform(25, 60) * np.array([0.8, 0.9, 1.0])
    return FaceIdentity(
        number=number,
        face_half_width=rng.uniform(64, 80),
        jaw_squareness=rng.uniform(0.6, 1.1),
        eye_y=rng.uniform(106, 118),
        eye_spacing=rng.uniform(26, 33),
        eye_half_width=rng.uniform(10, 14),
        eye_half_height=rng.uniform(4.0, 6.5),
        eye_tilt=rng.uniform(-2.5, 2.5),
        brow_raise=rng.uniform(11, 18),
        brow_arch=rng.uniform(1, 6),
        brow_thickness=int(rng.integers(3, 7)),
        nose_length=rng.uniform(28, 38),
        nose_half_width=rng.uniform(8, 13),
        mouth_gap=rng.uniform(14, 22),
        mouth_half_width=rng.uniform(17, 26),
        upper_lip=rng.uniform(3.5, 7),
        lower_lip=rng.uniform(5, 9),
        chin_gap=rng.uniform(16, 26),
        forehead_height=rng.uniform(88, 102),
        hairline_depth=float(rng.choice([0.0, rng.uniform(0.3, 1.0)], p=[0.1, 0.9])),
        hair_volume=rng.uniform(1.05, 1.3),
        long_hair=bool(rng.random() < 0.4),
        skin_bgr=tuple(np.clip(skin, 20, 250)),
        lip_bgr=tuple(np.clip(lip, 20, 250)),
        hair_bgr=tuple(np.clip(hair, 5, 240)),
        brow_bgr=tuple(np.clip(brow, 5, 240)),
        iris_bgr=tuple(np.clip(iris, 5, 240)),
        clothes_bgr=tuple(clothes),
        asymmetry=rng.normal(0, 0.6, (68, 2)),
    )


def _smooth_noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Unit-variance noise with correlation length ``sigma`` pixels, (CROP, CROP) float32."""
    # Coarse noise is drawn at reduced resolution: same look, a fraction of the blur cost.
    factor = int(max(1, sigma // 2))
    noise = rng.standard_normal((CROP // factor, CROP // factor), dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma / factor)
    if factor > 1:
        noise = cv2.resize(noise, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    return noise / (noise.std() + 1e-6)


def build_assets(identity: FaceIdentity, rng: np.random.Generator) -> IdentityAssets:
    # Skin pores (fine) plus blotches (coarse): texture that resampling or a
    # pasted face visibly changes.
    texture = 1.0 + 0.035 * _smooth_noise(rng, 1.0) + 0.04 * _smooth_noise(rng, 6.0)
    lm = face_landmarks(identity, Expression())
    face_cy = (lm[:, 1].min() - identity.forehead_height * 0.3 + lm[8, 1]) / 2
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    u = (xs - CENTER_X) / (identity.face_half_width * 1.25)
    v = (ys - face_cy) / ((lm[8, 1] - face_cy) * 1.25)
    nz = np.sqrt(np.clip(1.0 - u * u - v * v, 0.05, 1.0))
    normals = np.stack([u, v, nz], axis=2)
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    background = _background(rng)
    return IdentityAssets(texture.astype(np.float32), normals.astype(np.float32), background)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A room-like backdrop: a colour gradient plus a few blurred objects."""
    c0, c1 = rng.uniform(20, 230, 3), rng.uniform(20, 230, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32) / CROP
    ramp = np.clip(np.cos(angle) * xs + np.sin(angle) * ys, 0, 1)[..., None]
    bg = (c0 * (1 - ramp) + c1 * ramp).astype(np.float32)
    small = np.zeros((CROP // 4, CROP // 4, 3), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        colour = rng.uniform(-60, 60, 3)
        x0, y0 = rng.integers(0, CROP // 4, 2)
        w, h = rng.integers(4, 24, 2)
        cv2.rectangle(small, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour.tolist(), -1)
    bg += cv2.GaussianBlur(cv2.resize(small, (CROP, CROP)), (0, 0), 3)
    bg += 4.0 * _smooth_noise(rng, 2.0)[..., None]
    return np.clip(bg, 0, 255)


def face_landmarks(identity: FaceIdentity, expression: Expression) -> np.ndarray:
    """The 68 iBUG landmarks of ``identity`` making ``expression``, canonical frame."""
    f = identity
    cx = CENTER_X
    lm = np.zeros((68, 2), np.float64)
    ey = f.eye_y
    eye_cx = cx - f.eye_spacing
    ew, eh = f.eye_half_width, f.eye_half_height
    blink = float(np.clip(expression.blink, 0, 1))
    lower_lid = ey + 0.7 * eh
    upper_lid = ey - eh + blink * 1.6 * eh
    # Left eye: 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid.
    lm[36] = (eye_cx - ew, ey + f.eye_tilt)
    lm[37] = (eye_cx - ew / 3, upper_lid)
    lm[38] = (eye_cx + ew / 3, upper_lid)
    lm[39] = (eye_cx + ew, ey)
    lm[40] = (eye_cx + ew / 3, lower_lid)
    lm[41] = (eye_cx - ew / 3, lower_lid)
    # Left brow 17 (outer) .. 21 (inner).
    for k in range(5):
        t = k / 4
        x = eye_cx - ew * 1.25 + t * ew * 2.25
        y = ey - f.brow_raise - f.brow_arch * np.sin(np.pi * (0.3 + 0.7 * t)) + (1 - t) * 2
        lm[17 + k] = (x, y)
    # Nose: 27-30 bridge to tip, 31-35 base.
    tip_y = ey + f.nose_length
    for k in range(4):
        lm[27 + k] = (cx, ey - 3 + (f.nose_length + 3) * k / 3)
    lm[31] = (cx - f.nose_half_width, tip_y + 3)
    lm[32] = (cx - f.nose_half_width / 2, tip_y + 5)
    lm[33] = (cx, tip_y + 6)
    # Mouth: the lower lip and chin drop with the jaw, the corners rise with a smile.
    open_px = float(np.clip(expression.mouth_open, 0, 1)) * 16.0
    smile = float(expression.smile)
    my = tip_y + 6 + f.mouth_gap
    mw = f.mouth_half_width * (1 + 0.12 * smile)
    corner_y = my - 3.5 * smile + open_px * 0.3
    upper_inner = my - 0.5 - open_px * 0.1
    lower_inner = my + 0.5 + open_px
    lm[48] = (cx - mw, corner_y)
    lm[49] = (cx - mw * 0.55, upper_inner - f.upper_lip * 0.85)
    lm[50] = (cx - mw * 0.2, upper_inner - f.upper_lip - 1)
    lm[51] = (cx, upper_inner - f.upper_lip * 0.8)
    lm[59] = (cx - mw * 0.55, lower_inner + f.lower_lip * 0.85)
    lm[58] = (cx - mw * 0.2, lower_inner + f.lower_lip)
    lm[57] = (cx, lower_inner + f.lower_lip + 0.5)
    lm[60] = (cx - mw * 0.85, corner_y)
    lm[61] = (cx - mw * 0.35, upper_inner)
    lm[62] = (cx, upper_inner)
    lm[67] = (cx - mw * 0.35, lower_inner)
    lm[66] = (cx, lower_inner)
    # Jaw 0 (left temple) .. 8 (chin) .. 16: a superellipse-like curve.
    jaw_top = ey + 4
    chin_y = lower_inner + f.lower_lip + f.chin_gap + open_px * 0.3
    for k in range(9):
        a = np.pi * k / 16
        c = np.cos(a)
        x = cx - f.face_half_width * np.sign(c) * abs(c) ** f.jaw_squareness
        y = jaw_top + (chin_y - jaw_top) * np.sin(a) ** 1.1
        lm[k] = (x, y)
    for left, right in _MIRROR_PAIRS:
        lm[right] = (2 * cx - lm[left, 0], lm[left, 1])
    lm[8, 0] = cx
    return (lm + f.asymmetry).astype(np.float32)


def _poly(points: np.ndarray) -> np.ndarray:
    # cv2 draws with 4 fractional bits for sub-pixel accurate, anti-aliased outlines.
    return np.round(np.asarray(points) * 16).astype(np.int32).reshape(-1, 1, 2)


def _fill(img, points, colour):
    cv2.fillPoly(img, [_poly(points)], colour, cv2.LINE_AA, 4)


def _line(img, points, colour, thickness, closed=False):
    cv2.polylines(img, [_poly(points)], closed, colour, thickness, cv2.LINE_AA, 4)


def _ellipse(img, center, axes, angle, start, end, colour, thickness=-1):
    cv2.ellipse(img, (int(round(center[0] * 16)), int(round(center[1] * 16))),
                (int(round(axes[0] * 16)), int(round(axes[1] * 16))), angle, start, end,
                colour, thickness, cv2.LINE_AA, 4)


def _forehead_arc(identity: FaceIdentity, lm: np.ndarray, scale: float = 1.0, n: int = 15):
    """Points of the top of the head from landmark 16 back round to landmark 0."""
    left, right = lm[0], lm[16]
    cx = (left[0] + right[0]) / 2
    half_w = (right[0] - left[0]) / 2 * scale
    top = identity.forehead_height * scale
    base_y = (left[1] + right[1]) / 2
    angles = np.linspace(0, np.pi, n)
    return np.stack([cx + half_w * np.cos(angles), base_y - top * np.sin(angles)], 1)


def render_canonical(identity: FaceIdentity, expression: Expression) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unshaded colour (uint8 BGR), coverage alpha (uint8) and landmarks, canonical frame."""
    f = identity
    lm = face_landmarks(f, expression)
    img = np.zeros((CROP, CROP, 3), np.uint8)
    alpha = np.zeros((CROP, CROP), np.uint8)
    skin = tuple(float(c) for c in f.skin_bgr)
    shadow_skin = tuple(float(c) * 0.78 for c in f.skin_bgr)
    hair = tuple(float(c) for c in f.hair_bgr)
    cx = CENTER_X

    # Back layers: shoulders, long hair, neck, ears.
    shoulders_y = lm[8, 1] + 38
    _ellipse(img, (cx, shoulders_y + 60), (f.face_half_width * 1.9, 75), 0, 180, 360, f.clothes_bgr)
    _ellipse(alpha, (cx, shoulders_y + 60), (f.face_half_width * 1.9, 75), 0, 180, 360, 255)
    head = _forehead_arc(f, lm, f.hair_volume)
    if f.long_hair:
        hair_poly = np.concatenate([head, [[head[-1, 0], lm[8, 1] + 30], [head[0, 0], lm[8, 1] + 30]]])
    else:
        hair_poly = np.concatenate([head, [[head[-1, 0] + 6, lm[2, 1]], [head[0, 0] - 6, lm[2, 1]]]])
    if f.hairline_depth > 0:
        _fill(img, hair_poly, hair)
        _fill(alpha, hair_poly, 255)
    neck = np.array([[lm[4, 0] + 6, lm[4, 1]], [lm[12, 0] - 6, lm[12, 1]],
                     [lm[12, 0] - 2, CROP + 5], [lm[4, 0] + 2, CROP + 5]])
    _fill(img, neck, shadow_skin)
    _fill(alpha, neck, 255)
    for side in (0, 16):
        _ellipse(img, (lm[side, 0] + (3 if side == 0 else -3), lm[side, 1] + 8), (8, 15), 0, 0, 360, shadow_skin)
        _ellipse(alpha, (lm[side, 0] + (3 if side == 0 else -3), lm[side, 1] + 8), (8, 15), 0, 0, 360, 255)

    # Face: jaw line closed over the forehead.
    face = np.concatenate([lm[0:17], _forehead_arc(f, lm)])
    _fill(img, face, skin)
    _fill(alpha, face, 255)
    if f.hairline_depth > 0:
        top = _forehead_arc(f, lm, 1.02)
        hairline_y = lm[19, 1] - 10 - (1 - f.hairline_depth) * 45
        xs = np.linspace(top[-1, 0], top[0, 0], 9)
        wave = hairline_y - 10 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 9)) ** 0.5 * (1 - f.hairline_depth)
        fringe = np.concatenate([top, np.stack([xs, wave], 1)])
        _fill(img, fringe, hair)

    # Eyes: sclera, iris and pupil, then the lids clip the iris to the opening.
    iris_r = f.eye_half_width * 0.45
    for eye in (lm[36:42], lm[42:48]):
        centre = eye.mean(0)
        _fill(img, eye, (225, 228, 232))
        _ellipse(img, centre, (iris_r, iris_r), 0, 0, 360, f.iris_bgr)
        _ellipse(img, centre, (iris_r * 0.45, iris_r * 0.45), 0, 0, 360, (15, 15, 15))
        _ellipse(img, centre + (-iris_r * 0.3, -iris_r * 0.35), (1.2, 1.2), 0, 0, 360, (250, 250, 250))
        upper = eye[[0, 1, 2, 3]]  # corner, upper lid, corner (both eyes in iBUG order)
        lid_top = upper + np.array([0, -3 * f.eye_half_height])
        _fill(img, np.concatenate([upper, lid_top[::-1]]), shadow_skin)
        lower = eye[[3, 4, 5, 0]]
        lid_bottom = lower + np.array([0, 2.5 * f.eye_half_height])
        _fill(img, np.concatenate([lower, lid_bottom[::-1]]), skin)
        _line(img, upper, (25, 25, 30), 2)
    # Brows.
    _line(img, lm[17:22], f.brow_bgr, f.brow_thickness)
    _line(img, lm[22:27], f.brow_bgr, f.brow_thickness)
    # Nose: side shadow of the bridge, nostrils.
    _line(img, np.stack([lm[27] + (-5, 4), lm[30] + (-7, -2)]), shadow_skin, 2)
    _line(img, lm[31:36], shadow_skin, 2)
    for k in (32, 34):
        _ellipse(img, lm[k] + (0, -1.5), (3.0, 1.8), 0, 0, 360, (35, 40, 55))
    # Mouth: lips, then the inside when open (dark cavity and a band of teeth).
    _fill(img, lm[48:60], f.lip_bgr)
    if lm[66, 1] - lm[62, 1] > 1.5:
        inner = lm[60:68]
        _fill(img, inner, (30, 25, 45))
        teeth = np.concatenate([inner[0:5], inner[[4, 3, 2, 1, 0]] + (0, 4)])
        _fill(img, teeth, (215, 222, 228))
    _line(img, lm[[48, 60, 61, 62, 63, 64, 54]], tuple(float(c) * 0.6 for c in f.lip_bgr), 1)
    return img, alpha, lm


def render_face_layer(identity: FaceIdentity, assets: IdentityAssets,
                      state: FrameState) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shaded face moved to its crop position: colour (float32 BGR), alpha [0,1], landmarks.

    This is what a face-swap model "generates": no background and no sensor noise.
    """
    albedo, alpha, lm = render_canonical(identity, state.expression)
    lambert = cv2.transform(assets.normals, state.light.reshape(1, 3).astype(np.float32))
    shading = np.maximum(lambert, 0.0)
    shading *= 0.75
    shading += 0.45  # ambient light
    shading *= assets.skin_texture
    # Exposure / white balance as a per-channel matrix: one pass instead of a broadcast.
    colour = cv2.transform(albedo.astype(np.float32), np.diag(state.gain_bgr).astype(np.float32))
    colour *= shading[..., None]
    colour = cv2.warpAffine(colour, state.pose, (CROP, CROP), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, state.pose, (CROP, CROP), flags=cv2.INTER_LINEAR)
    lm = transform_points(lm, state.pose)
    return colour, alpha.astype(np.float32) * (1.0 / 255.0), lm


def render_frame(identity: FaceIdentity, assets: IdentityAssets, state: FrameState,
                 noise_rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, np.ndarray]:
    """A full camera frame (float32 BGR, not yet clipped) and its landmarks."""
    colour, alpha, lm = render_face_layer(identity, assets, state)
    background = cv2.transform(assets.background, np.diag(state.gain_bgr).astype(np.float32))
    image = cv2.blendLinear(colour, background, alpha, 1.0 - alpha)
    if noise_rng is not None:
        image += sensor_noise(noise_rng)
    return image, lm


def sensor_noise(rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    # Drawn at half resolution and upsampled: demosaicing correlates neighbouring
    # pixels, and the noise then compresses and resizes like real sensor noise.
    half = rng.standard_normal((CROP // 2, CROP // 2, 3), dtype=np.float32) * (sigma * 1.6)
    return cv2.resize(half, (CROP, CROP), interpolation=cv2.INTER_LINEAR)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
