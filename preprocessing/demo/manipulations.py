"""Forgery methods of the demo benchmark, each imitating a family of real ones.

Every method turns a rendered camera clip of the *target* person into a fake
clip, frame by frame, and reports the blend weight it used as the forgery mask
and the landmarks of the face it actually shows. Parameters that a real method
keeps fixed for a video (its colour mismatch, its mask shape) are drawn once
per video; only the temporal forgery varies them per frame, on purpose.

| name        | imitates                  | artefacts left (all survive 256 -> 112 px)           |
|-------------|---------------------------|------------------------------------------------------|
| swap        | DeepFakes / FaceSwap      | low-res pasted face, colour mismatch, hull boundary  |
| reenact     | Face2Face                 | warped mouth/eyes, blurry re-rendered mouth, shading |
| texture     | NeuralTextures            | resampled mouth area, periodic texture, colour shift |
| selfblend   | SBI (self-blended images) | shifted/colour-jittered copy of the face, boundary   |
| soft_swap   | Celeb-DF v2               | elliptical, wide feather, near-full colour transfer  |
| wild_swap   | DFDC                      | "plastic" smoothed skin, brow-level hull boundary    |
| flicker     | temporal inconsistency    | wide, soft tint whose sign flips every frame         |
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from preprocessing.demo.blending import (INNER_FACE, about_face_centre, blend, deform_mask, feather,
                                         face_outline, hull_mask, resample, similarity_transform,
                                         smooth_field, transfer_colour, warp_image)
from preprocessing.demo.clips import ClipScript
from preprocessing.demo.render import (CROP, NOISE_SIGMA, FaceIdentity, FrameState, IdentityAssets, face_landmarks,
                                       render_face_layer, sensor_noise, transform_points)


@dataclass(frozen=True)
class Person:
    identity: FaceIdentity
    assets: IdentityAssets


@dataclass(frozen=True)
class CameraClip:
    """A rendered pristine clip: what the real video of the target shows."""

    person: Person
    frame_indices: Tuple[int, ...]
    states: Tuple[FrameState, ...]
    frames: Tuple[np.ndarray, ...]  # float32 BGR with sensor noise, not yet encoded
    landmarks: Tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Donor:
    """The other person of a manipulation: whose face is pasted or whose expressions drive."""

    person: Person
    script: ClipScript


@dataclass(frozen=True)
class FakeFrame:
    image: np.ndarray  # float32 BGR
    mask: np.ndarray  # float32 blend weight in [0, 1]
    landmarks: np.ndarray  # (68, 2) float32


Method = Callable[[CameraClip, Donor, np.random.Generator], List[FakeFrame]]


def _paste_face(target: CameraClip, k: int, donor: Donor, generated_px: int,
                mask: np.ndarray, colour_strength: float,
                generator_look: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                noise_rng: Optional[np.random.Generator] = None) -> FakeFrame:
    """Render the donor's face in the target's pose and expression, align and blend it.

    Shared by every face-swap family; they differ in the generator resolution,
    the mask, the colour correction, ``generator_look`` (applied at the
    generator's resolution) and whether camera noise is re-added (``noise_rng``).
    """
    state, frame, target_lm = target.states[k], target.frames[k], target.landmarks[k]
    face, alpha, donor_lm = render_face_layer(donor.person.identity, donor.person.assets, state)
    to_target = similarity_transform(donor_lm[INNER_FACE], target_lm[INNER_FACE])
    small = cv2.resize(warp_image(face, to_target), (generated_px, generated_px), interpolation=cv2.INTER_AREA)
    if generator_look is not None:
        small = generator_look(small)
    face = cv2.resize(small, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    if noise_rng is not None:
        face += sensor_noise(noise_rng, NOISE_SIGMA * 0.7)
    alpha = warp_image(alpha, to_target)
    weight = mask * np.clip(alpha * 1.5 - 0.25, 0, 1)  # never paste the donor's background
    face = transfer_colour(face, frame, weight, colour_strength)
    landmarks = target_lm.copy()
    landmarks[INNER_FACE] = transform_points(donor_lm, to_target)[INNER_FACE]
    return FakeFrame(blend(frame, face, weight), weight, landmarks)


def swap(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """DeepFakes/FaceSwap: a 56-80 px generated face, little colour correction, hull mask."""
    generated_px = int(rng.integers(56, 81))
    colour_strength = float(rng.uniform(0.0, 0.35))
    erode = float(rng.uniform(1, 5))
    sigma = float(rng.uniform(1.5, 3.5))
    out = []
    for k in range(len(target.frames)):
        mask = feather(hull_mask(face_outline(target.landmarks[k]), -erode), sigma)
        out.append(_paste_face(target, k, donor, generated_px, mask, colour_strength))
    return out


def soft_swap(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """Celeb-DF-like: higher resolution, elliptical wide-feathered mask, full colour transfer."""
    generated_px = int(rng.integers(112, 161))
    colour_strength = float(rng.uniform(0.85, 1.0))
    sigma = float(rng.uniform(7, 11))
    # Camera-like noise over the pasted face hides its smoothness.
    noise_rng = np.random.default_rng(rng.integers(2 ** 63))
    out = []
    for k in range(len(target.frames)):
        lm = target.landmarks[k]
        centre = lm[INNER_FACE].mean(0) + (0.0, 4.0)
        half_width = (lm[16, 0] - lm[0, 0]) / 2 * 0.75
        half_height = (lm[8, 1] - lm[19:25, 1].mean()) / 2 * 0.92
        angle = np.degrees(np.arctan2(lm[45, 1] - lm[36, 1], lm[45, 0] - lm[36, 0]))
        mask = np.zeros((CROP, CROP), np.float32)
        ellipse = ((float(centre[0]), float(centre[1])), (float(2 * half_width), float(2 * half_height)),
                   float(angle))
        cv2.ellipse(mask, ellipse, 1.0, -1, cv2.LINE_AA)
        out.append(_paste_face(target, k, donor, generated_px, feather(mask, sigma),
                               colour_strength, noise_rng=noise_rng))
    return out


def wild_swap(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """DFDC-like: a 'beautified' (bilateral-smoothed) face in a brow-level hull mask."""
    generated_px = int(rng.integers(144, 193))
    colour_strength = float(rng.uniform(0.8, 1.0))
    grow = float(rng.uniform(-2, 2))
    sigma = float(rng.uniform(3, 5))
    sharpen = float(rng.uniform(0.2, 0.5))

    def beautify(face):  # edge-preserving smoothing ("plastic skin"), lightly re-sharpened
        smooth = cv2.bilateralFilter(face, 5, 30, 3)
        return smooth + sharpen * (smooth - cv2.GaussianBlur(smooth, (0, 0), 1.0))

    out = []
    for k in range(len(target.frames)):
        mask = feather(hull_mask(face_outline(target.landmarks[k], 0.0), grow), sigma)
        out.append(_paste_face(target, k, donor, generated_px, mask, colour_strength, beautify))
    return out


_MOVING_POINTS = np.r_[5:12, 36:68]  # jaw around the chin, eyes, mouth


def _displacement_field(points: np.ndarray, shifts: np.ndarray, sigma: float = 9.0,
                        grid: int = 32) -> np.ndarray:
    """Smooth (H, W, 2) field equal to ``shifts`` at ``points`` and fading to 0 away from them.

    Evaluated on a coarse grid and upsampled: the field is smooth anyway.
    """
    step = CROP / grid
    coords = (np.mgrid[0:grid, 0:grid].reshape(2, -1).T[:, ::-1] + 0.5) * step
    d2 = ((coords[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    weights = np.exp(-d2 / (2 * sigma ** 2))
    field = weights @ shifts / np.maximum(weights.sum(1, keepdims=True), 1.0)
    field = field.reshape(grid, grid, 2).astype(np.float32)
    return cv2.resize(field, (CROP, CROP), interpolation=cv2.INTER_LINEAR)


def reenact(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """Face2Face: the donor's expressions drive the target's face.

    The image is warped so mouth, eyes and chin follow the new landmarks, and
    the mouth and eyes are replaced by a blurry re-rendering whose lighting
    estimate is slightly off (the 3D model's shading never matches exactly).
    """
    rendered_px = int(rng.integers(64, 97))
    colour_error = (1.0 + rng.uniform(0.05, 0.12, 3) * rng.choice([-1.0, 1.0], 3)).astype(np.float32)
    light_error = rng.normal(0, 0.25, 3)
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    out = []
    for k, t in enumerate(target.frame_indices):
        state, frame, old_lm = target.states[k], target.frames[k], target.landmarks[k]
        expression = donor.script.state(t).expression
        # Keep some of the target's own motion so the driven face is not frozen.
        expression = replace(expression, blink=max(expression.blink, state.expression.blink * 0.5))
        new_lm = transform_points(face_landmarks(target.person.identity, expression), state.pose)
        shifts = (new_lm - old_lm)[_MOVING_POINTS]
        field = _displacement_field(new_lm[_MOVING_POINTS], shifts)
        warped = cv2.remap(frame, xs - field[..., 0], ys - field[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
        light = state.light + light_error
        rerender_state = replace(state, expression=expression, light=light / np.linalg.norm(light),
                                 gain_bgr=state.gain_bgr * colour_error)
        face, _, _ = render_face_layer(target.person.identity, target.person.assets, rerender_state)
        face = resample(face, rendered_px)
        paste = np.maximum.reduce([hull_mask(new_lm[48:60], 4), hull_mask(new_lm[36:42], 4),
                                   hull_mask(new_lm[42:48], 4)])
        paste = feather(paste, 2.0)
        image = blend(warped, face, paste)
        moved = feather(np.minimum(cv2.magnitude(field[..., 0], field[..., 1]), 1.0), 2.0)
        out.append(FakeFrame(image, np.maximum(paste, moved), new_lm))
    return out


def texture(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """NeuralTextures: the mouth area re-rendered from a learned texture.

    Neural rendering leaves a low-resolution look and periodic upsampling
    patterns (checkerboard-like), visible after resizing because the period is
    several pixels.
    """
    rendered_px = int(rng.integers(40, 65))
    period = rng.uniform(5.0, 9.0)
    angle = rng.uniform(0, np.pi)
    amplitude = rng.uniform(5.0, 9.0)
    colour_shift = (rng.uniform(6, 14, 3) * rng.choice([-1.0, 1.0], 3)).astype(np.float32)
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    u = np.cos(angle) * xs + np.sin(angle) * ys
    v = -np.sin(angle) * xs + np.cos(angle) * ys
    grating = (np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)).astype(np.float32)
    pattern = amplitude * grating[..., None] + colour_shift
    out = []
    for k in range(len(target.frames)):
        lm = target.landmarks[k]
        region = np.concatenate([lm[3:14], lm[[29, 31, 35]]])
        mask = feather(hull_mask(region, 2), 3.0)
        neural = resample(target.frames[k], rendered_px, cv2.INTER_NEAREST)
        neural = cv2.GaussianBlur(neural, (0, 0), 0.8) + pattern
        out.append(FakeFrame(blend(target.frames[k], neural, mask), mask, lm.copy()))
    return out


def self_blend(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """SBI: the face blended onto itself after a slight colour and geometric change."""
    # A brightness change plus a tint: skin tones differ between people mostly
    # in brightness, so a tint is what makes the blended region unnatural.
    tint = rng.normal(0, 1, 3)
    tint -= tint.mean()
    tint *= rng.uniform(22, 34) / (np.linalg.norm(tint) + 1e-6)
    colour_shift = (tint + rng.uniform(-15, 15)).astype(np.float32)
    contrast = float(rng.uniform(0.9, 1.1))
    scale = 1.0 + float(rng.uniform(0.02, 0.06) * rng.choice([-1, 1]))
    shift = rng.uniform(-3, 3, 2)
    texture_change = rng.choice(["none", "blur", "sharpen"])
    # The hull is shrunk into the skin: the blend boundary then crosses
    # cheeks and forehead, where no natural edge explains it.
    grow = float(rng.uniform(-12, -3))
    elastic = smooth_field(rng, 5.0)
    sigma = float(rng.uniform(1.5, 3))
    ratio = float(rng.uniform(0.85, 1.0))
    geometric = about_face_centre(0.0, scale, shift)
    out = []
    for k in range(len(target.frames)):
        frame, lm = target.frames[k], target.landmarks[k]
        source = warp_image(frame, geometric)
        if texture_change == "blur":
            source = cv2.GaussianBlur(source, (0, 0), 1.2)
        elif texture_change == "sharpen":
            source = source + 0.8 * (source - cv2.GaussianBlur(source, (0, 0), 1.5))
        mean = source.mean((0, 1), keepdims=True)
        source = (source - mean) * contrast + mean + colour_shift
        mask = feather(deform_mask(hull_mask(face_outline(lm), grow), elastic), sigma) * ratio
        out.append(FakeFrame(blend(frame, source, mask), mask, lm.copy()))
    return out


def flicker(target: CameraClip, donor: Donor, rng: np.random.Generator) -> List[FakeFrame]:
    """A temporal forgery: each frame is almost clean, consecutive frames disagree.

    The face region carries a colour offset whose sign alternates between
    frames, under a mask so widely feathered that a single frame shows only a
    smooth tint, like the renderer's own lighting (which varies far more between
    videos); the mask also jitters by a pixel or two per frame. A per-frame
    detector sees a plausible face; a temporal one sees it flicker against the
    background (docs/TEMPORAL.md, section 4).
    """
    amplitude = float(rng.uniform(20.0, 28.0))  # grey levels
    direction = rng.normal(0, 1, 3) + 1.5  # mostly brightness, a little chroma
    direction = (direction / np.linalg.norm(direction) * np.sqrt(3)).astype(np.float32)
    sign = float(rng.choice([-1.0, 1.0]))
    sigma = float(rng.uniform(10, 16))  # no visible edge: the tint fades over the whole face
    out = []
    for k in range(len(target.frames)):
        frame, lm = target.frames[k], target.landmarks[k]
        jitter = about_face_centre(rng.uniform(-1.0, 1.0), 1.0 + rng.uniform(-0.02, 0.02),
                                   rng.uniform(-2.5, 2.5, 2))
        mask = feather(hull_mask(transform_points(face_outline(lm), jitter), -2), sigma)
        source = frame + sign * amplitude * direction
        out.append(FakeFrame(blend(frame, source, mask), mask, lm.copy()))
        sign = -sign
    return out


METHODS: Dict[str, Method] = {
    "swap": swap,
    "reenact": reenact,
    "texture": texture,
    "selfblend": self_blend,
    "soft_swap": soft_swap,
    "wild_swap": wild_swap,
    "flicker": flicker,
}
