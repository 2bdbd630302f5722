"""Image/clip transforms built from a detector's :class:`InputSpec` and the ``aug_cfg`` dict.

Pipeline: the resize of the tower's reference processor (``spec.resize_mode``,
``spec.interpolation``, ``spec.crop_pct``: :func:`build_geometry`) and — in
training only — the augmentations listed in ``aug_cfg``, then normalisation
with ``spec.mean``/``spec.std``. The augmentations run in the reference's order
(``order: reference``, the default): on the stored crop before a PIL resize, as
LN-CLIP and GenD augment the PNG and then run the HF/timm processor; after a
cv2 resize, as DeepfakeBench does. ``order: augment_first`` or ``resize_first``
forces one (``resize_first`` was this module's only order before).
Albumentations applies every step *jointly* to the image, the forgery mask and
the landmarks (kept even when they leave the image), so all three stay
consistent; DeepfakeBench discarded the augmented landmarks.

Augmentation config (the config's top-level ``augment`` section; every key
optional; a key set to ``null``/``false`` is off; unknown keys are an error). They are applied in this
fixed order, whatever the order in the YAML: geometric first, photometric next,
JPEG last (compression is the final step of the real-world pipeline)::

    hflip: 0.5                       # or {p: 0.5}; mirrors iBUG-68 landmark indices too
    rotate: {p: 0.5, degrees: 10, border: constant}          # A.Rotate(±degrees)
    affine: {p: 1.0, degrees: 10, translate: 0.1, scale: [0.9, 1.1], border: constant}
                                     # like torchvision RandomAffine: isotropic scale,
                                     # translate = max shift as a fraction of the size per axis
    blur: {p: 0.5, sigma: [0.1, 2.0], kernel: 0}   # kernel: odd int or [lo, hi]; 0 = from sigma;
                                     # sigma omitted: OpenCV's sigma for the kernel sizes
                                     # (or [0.1, 2.0] when kernel is 0 too)
    color_jitter: {p: 0.5, brightness: 0.1, contrast: 0.1, saturation: 0.0, hue: 0.0}
    brightness_contrast: {p: 0.5, brightness: 0.1, contrast: 0.1}   # A.RandomBrightnessContrast
    hue_saturation: {p: 0.5, hue: 20, saturation: 30, value: 20}    # A.HueSaturationValue
    fancy_pca: {p: 0.5, alpha: 0.1}
    one_of: {p: 0.5, brightness_contrast: {...}, fancy_pca: {...}, hue_saturation: {...}}
                                     # picks one of the listed photometric ops (their own p is ignored)
    jpeg: {p: 0.5, quality: [40, 100]}
    order: reference                 # or augment_first | resize_first (not an augmentation)

``border`` is ``constant`` (black, mask 0) or ``reflect``. The LN-CLIP paper's
set is ``hflip 0.5, affine {degrees 10, translate 0.1, scale [0.9, 1.1]},
blur {sigma [0.1, 2]}, color_jitter {brightness 0.1, contrast 0.1}, jpeg
{quality [40, 100]}``; DeepfakeBench's is ``hflip 0.5, rotate {p 0.5,
degrees 10}, blur {p 0.5, kernel [3, 7]}, one_of {p 0.5, brightness_contrast
{brightness 0.1, contrast 0.1}, fancy_pca {}, hue_saturation {}}, jpeg {p 0.5,
quality [40, 100]}``.

Clips: the T frames go through albumentations' ``images``/``masks`` targets
and their landmarks are concatenated into one keypoint array, so one sampled
set of parameters is applied identically to every frame.

Randomness: albumentations keeps its own RNG, which a forked DataLoader worker
would inherit unchanged (every worker would draw the same augmentations). The
transform therefore reseeds itself from ``torch.initial_seed()`` whenever it
finds itself in a new process or under a new torch seed (torch gives each
worker a distinct seed derived from the main process's seed, and a per-sample
``torch.manual_seed`` reseeds it per sample). :meth:`FaceTransform.reseed`
sets the seed explicitly.
"""
from __future__ import annotations

import math
import os
import random
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image

from training.errors import ConfigError
from training.models.input_spec import InputSpec

ArrayOrFrames = Union[np.ndarray, Sequence[np.ndarray]]  # one frame (H, W, C), or a clip of T

# iBUG-68 left/right mirror: index i of a mirrored face is point IBUG68_MIRROR[i] of the original.
_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(8)]  # jaw 0-16 (8 is the chin)
    + [(17 + i, 26 - i) for i in range(5)]  # eyebrows 17-21 <-> 26-22
    + [(31, 35), (32, 34)]  # nose bottom (33 is the tip); bridge 27-30 stays
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip (51, 57 stay)
    + [(60, 64), (61, 63), (65, 67)]  # inner lip (62, 66 stay)
)


def _mirror_permutation(pairs: Sequence[Tuple[int, int]], size: int) -> Tuple[int, ...]:
    order = list(range(size))
    for a, b in pairs:
        order[a], order[b] = b, a
    return tuple(order)


IBUG68_MIRROR = _mirror_permutation(_MIRROR_PAIRS, 68)
MIRROR_PERMUTATIONS = {68: IBUG68_MIRROR}  # other K (e.g. 81): coordinates flip, indices stay


class MirrorFlip(A.HorizontalFlip):
    """HorizontalFlip that also swaps left/right landmark indices.

    The permutation must happen exactly when the flip does, so it lives inside
    the flip. ``points_per_face`` is set per call by :class:`FaceTransform`
    (landmarks of a clip arrive concatenated, one block per frame).
    """

    points_per_face: int = 0

    def apply_to_keypoints(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        flipped = super().apply_to_keypoints(keypoints, **params)
        permutation = MIRROR_PERMUTATIONS.get(self.points_per_face)
        if permutation is None or len(flipped) == 0:
            return flipped
        blocks = len(flipped) // self.points_per_face
        order = (np.arange(blocks)[:, None] * self.points_per_face + np.asarray(permutation)).ravel()
        return flipped[order]


# --------------------------------------------------------------------------- config → ops


def _pair(value: Any, name: str, symmetric: bool = False) -> Tuple[float, float]:
    if isinstance(value, (int, float)):
        return (-float(value), float(value)) if symmetric else (float(value), float(value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise ValueError(f"augmentation parameter {name}: expected a number or [lo, hi], got {value!r}")


def _border(options: Mapping[str, Any], name: str) -> int:
    borders = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}
    border = options.get("border", "constant")
    if border not in borders:
        raise ValueError(f"augmentation {name}.border: {border!r} is not one of {sorted(borders)}")
    return borders[border]


def _hflip(o: Mapping[str, Any]) -> A.BasicTransform:
    return MirrorFlip(p=o["p"])


def _rotate(o: Mapping[str, Any]) -> A.BasicTransform:
    return A.Rotate(limit=_pair(o.get("degrees", 10), "rotate.degrees", symmetric=True),
                    border_mode=_border(o, "rotate"), fill=0, fill_mask=0, p=o["p"])


def _affine(o: Mapping[str, Any]) -> A.BasicTransform:
    translate = _pair(o.get("translate", 0.0), "affine.translate", symmetric=True)
    return A.Affine(rotate=_pair(o.get("degrees", 0.0), "affine.degrees", symmetric=True),
                    translate_percent=translate, scale=_pair(o.get("scale", 1.0), "affine.scale"),
                    keep_ratio=True, border_mode=_border(o, "affine"), fill=0, fill_mask=0, p=o["p"])


def _opencv_sigma(kernel: int) -> float:
    # The sigma OpenCV derives for a kernel size when given sigma 0 (DeepfakeBench relied on it);
    # albumentations 2.x needs sigma > 0, so derive it here.
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def _blur(o: Mapping[str, Any]) -> A.BasicTransform:
    kernel = o.get("kernel", 0)
    kernel = (int(kernel), int(kernel)) if isinstance(kernel, (int, float)) else tuple(int(k) for k in kernel)
    if "sigma" in o:
        sigma = _pair(o["sigma"], "blur.sigma")
    elif kernel[1] > 0:
        sigma = (_opencv_sigma(kernel[0]), _opencv_sigma(kernel[1]))
    else:
        sigma = (0.1, 2.0)
    if sigma[0] <= 0 or sigma[1] < sigma[0]:
        raise ConfigError(f"augment.blur.sigma must be 0 < lo <= hi, got {list(sigma)}")
    return A.GaussianBlur(blur_limit=kernel, sigma_limit=sigma, p=o["p"])


def _color_jitter(o: Mapping[str, Any]) -> A.BasicTransform:
    return A.ColorJitter(brightness=float(o.get("brightness", 0.0)), contrast=float(o.get("contrast", 0.0)),
                         saturation=float(o.get("saturation", 0.0)), hue=float(o.get("hue", 0.0)), p=o["p"])


def _brightness_contrast(o: Mapping[str, Any]) -> A.BasicTransform:
    return A.RandomBrightnessContrast(
        brightness_limit=_pair(o.get("brightness", 0.1), "brightness_contrast.brightness", symmetric=True),
        contrast_limit=_pair(o.get("contrast", 0.1), "brightness_contrast.contrast", symmetric=True), p=o["p"])


def _hue_saturation(o: Mapping[str, Any]) -> A.BasicTransform:
    return A.HueSaturationValue(
        hue_shift_limit=_pair(o.get("hue", 20), "hue_saturation.hue", symmetric=True),
        sat_shift_limit=_pair(o.get("saturation", 30), "hue_saturation.saturation", symmetric=True),
        val_shift_limit=_pair(o.get("value", 20), "hue_saturation.value", symmetric=True), p=o["p"])


class FastFancyPCA(A.FancyPCA):
    """albumentations' FancyPCA, same parameters and same output, ~10x faster on RGB uint8.

    Its noise is linear in the centred pixel (``V diag(alpha * lambda) (x - mean)``), so the
    whole op is one 3x4 affine colour matrix (``cv2.transform``). The 3x3 covariance comes
    from a Gram matrix (``cv2.mulTransposed``) instead of ``np.cov`` over every pixel, which
    made FancyPCA the slowest step of DeepfakeBench's augmentations (~60 ms per 256 px frame).
    """

    def apply(self, img: np.ndarray, alpha_vector: np.ndarray, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            return super().apply(img, alpha_vector, **params)
        from albucore import from_float

        pixels = img.astype(np.float32) * np.float32(1.0 / 255.0)
        flat = pixels.reshape(-1, 3)
        count = flat.shape[0]
        mean = np.asarray(cv2.mean(pixels)[:3], np.float64)
        gram = cv2.mulTransposed(flat, True, dtype=cv2.CV_64F)
        covariance = (gram - count * np.outer(mean, mean)) / max(count - 1, 1)
        values, vectors = np.linalg.eigh(covariance)
        order = values[::-1].argsort()
        noise = vectors[:, order] @ np.diag(alpha_vector.astype(np.float64) * values[order])
        affine = np.concatenate([np.eye(3) + noise, (-noise @ mean)[:, None]], axis=1).astype(np.float32)
        out = cv2.transform(pixels, affine)
        np.clip(out, 0, 1, out=out)
        return from_float(out, np.uint8)


def _fancy_pca(o: Mapping[str, Any]) -> A.BasicTransform:
    return FastFancyPCA(alpha=float(o.get("alpha", 0.1)), p=o["p"])


def _jpeg(o: Mapping[str, Any]) -> A.BasicTransform:
    low, high = _pair(o.get("quality", [40, 100]), "jpeg.quality")
    return A.ImageCompression(compression_type="jpeg", quality_range=(int(low), int(high)), p=o["p"])


_PHOTOMETRIC = {"color_jitter": _color_jitter, "brightness_contrast": _brightness_contrast,
                "hue_saturation": _hue_saturation, "fancy_pca": _fancy_pca}


def _one_of(o: Mapping[str, Any]) -> A.BaseCompose:
    choices = {name: options for name, options in o.items() if name != "p"}
    unknown = sorted(set(choices) - set(_PHOTOMETRIC))
    if unknown or not choices:
        raise ValueError(f"augmentation one_of: choose among {sorted(_PHOTOMETRIC)}, got {sorted(choices)}")
    ops = [_PHOTOMETRIC[name]({**(options or {}), "p": 1.0}) for name, options in choices.items()]
    return A.OneOf(ops, p=o["p"])


# Fixed application order (see the module docstring).
AUGMENTATIONS: Dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "hflip": _hflip, "rotate": _rotate, "affine": _affine, "blur": _blur,
    **_PHOTOMETRIC, "one_of": _one_of, "jpeg": _jpeg,
}


def build_augmentations(aug_cfg: Optional[Mapping[str, Any]]) -> List[Any]:
    aug_cfg = {name: options for name, options in (aug_cfg or {}).items() if name != "order"}
    unknown = sorted(set(aug_cfg) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"Unknown augmentation key(s) {unknown} in the augment section; "
                         f"known keys: {list(AUGMENTATIONS)}")
    ops = []
    for name, build in AUGMENTATIONS.items():
        options = aug_cfg.get(name)
        if options is None or options is False:
            continue
        if isinstance(options, (int, float)) and not isinstance(options, bool):
            options = {"p": float(options)}  # `hflip: 0.5` shorthand
        if not isinstance(options, Mapping):
            raise ConfigError(f"augment.{name} must be a mapping (or a probability), got {options!r}")
        options = {"p": 1.0, **options}
        if not 0.0 <= float(options["p"]) <= 1.0:
            raise ConfigError(f"augment.{name}.p must lie in [0, 1], got {options['p']}")
        ops.append(build(options))
    return ops


_PIL_FILTERS = {"pil_bicubic": "BICUBIC", "pil_bilinear": "BILINEAR"}


class PilResize(A.DualTransform):
    """Resize with PIL's filters, as the towers' reference processors do (antialiased when shrinking).

    HF's CLIPImageProcessor (the slow, PIL one that LN-CLIP and GenD run with the
    transformers versions they pin), open_clip's and timm's eval transforms all hand a PIL
    image to ``PIL.Image.resize``; cv2's INTER_CUBIC does not antialias and differs from it
    by up to 11 grey levels on a 256 -> 224 face crop. ``shortest_side``: the shorter side
    goes to ``size`` and the longer to ``int(size * long / short)`` (HF's
    ``get_resize_output_image_size`` and torchvision's ``Resize``); otherwise the square
    ``size`` x ``size``. Masks: nearest neighbour; keypoints: scaled like albumentations' Resize.
    """

    def __init__(self, size: int, interpolation: str, shortest_side: bool, p: float = 1.0):
        super().__init__(p=p)
        self.size, self.interpolation, self.shortest_side = int(size), interpolation, shortest_side
        self._filter = getattr(Image.Resampling, _PIL_FILTERS[interpolation])

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        if not self.shortest_side:
            return self.size, self.size
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        height, width = self.output_size(*img.shape[:2])
        if (height, width) == img.shape[:2]:
            return img  # PIL returns an unchanged copy too
        return np.array(Image.fromarray(img).resize((width, height), resample=self._filter))

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        height, width = self.output_size(*mask.shape[:2])
        return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)

    def apply_to_keypoints(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        from albumentations.augmentations.geometric.functional import keypoints_scale

        height, width = params["shape"][:2]
        out_height, out_width = self.output_size(height, width)
        return keypoints_scale(keypoints, out_width / width, out_height / height)

    def get_transform_init_args_names(self) -> Tuple[str, ...]:
        return ("size", "interpolation", "shortest_side")


def build_geometry(spec: InputSpec) -> List[Any]:
    """Stored crop -> model input, as the tower's reference processor (``spec.interpolation``)."""
    size = spec.resolution
    if spec.resize_mode not in ("resize_center_crop", "resize"):
        raise ValueError(f"InputSpec.resize_mode {spec.resize_mode!r} is not 'resize_center_crop' or 'resize'")
    crop = spec.resize_mode == "resize_center_crop"
    # timm: Resize(floor(size / crop_pct)) then CenterCrop(size); crop_pct 1 is CLIPImageProcessor's.
    scale_size = math.floor(size / spec.crop_pct) if crop else size
    if spec.interpolation == "cv2_cubic":
        resize = (A.SmallestMaxSize(max_size=scale_size, interpolation=cv2.INTER_CUBIC) if crop
                  else A.Resize(size, size, interpolation=cv2.INTER_CUBIC))
    else:
        resize = PilResize(scale_size, spec.interpolation, shortest_side=crop)
    return [resize, A.CenterCrop(size, size)] if crop else [resize]


def geometry_record(spec: InputSpec) -> Dict[str, Any]:
    """The fields of ``spec`` that decide :func:`build_geometry` (a pre-resized cache records them)."""
    return {"resolution": spec.resolution, "resize_mode": spec.resize_mode,
            "interpolation": spec.interpolation, "crop_pct": spec.crop_pct}


# Where the augmentations run relative to the resize (the augment section's ``order``).
AUGMENT_ORDERS = ("reference", "augment_first", "resize_first")


def reference_order(spec: InputSpec) -> str:
    """LN-CLIP and GenD augment the stored PIL crop, then run the processor (PIL resize):
    src/dataset/base.py ``__getitem__`` in both repositories. DeepfakeBench resizes with
    cv2 INTER_CUBIC first and augments the model-sized image (abstract_dataset.py)."""
    return "resize_first" if spec.interpolation == "cv2_cubic" else "augment_first"


# --------------------------------------------------------------------------- the callable


def seed_independently(pipeline: A.BaseCompose, seed: int) -> None:
    """Seed ``pipeline`` so that all its transforms draw from ONE stream derived from ``seed``.

    ``Compose.set_random_seed`` hands every transform its own generator with the *same*
    seed, so their draws coincide: reseeded per sample, transforms with equal ``p`` all
    fire together or not at all, and their parameters are correlated. One shared numpy
    Generator and one ``random.Random`` make consecutive draws independent (as the global
    RNG of albumentations 1.x did), and cost two generator constructions, not two per op.
    """
    generator, py_random = np.random.default_rng(seed), random.Random(seed)
    nodes: List[Any] = [pipeline]
    while nodes:
        node = nodes.pop()
        # The attributes BaseCompose/BasicTransform.set_random_seed assign (albumentations 2.x).
        node.seed, node.random_generator, node.py_random = seed, generator, py_random
        if isinstance(node, A.BaseCompose):
            nodes.extend(node.transforms)


class FaceTransform:
    """``(image, mask=None, landmarks=None) -> {"image", "mask", "landmarks"}``.

    One frame: image uint8 RGB (H, W, 3), mask uint8 (H, W) (0/255), landmarks
    (K, 2) x, y pixels → image float (3, S, S) normalised, mask float (1, S, S)
    in [0, 1], landmarks float (K, 2) in output pixels.
    A clip: sequences (or stacked arrays) of T of each → (T, 3, S, S),
    (T, 1, S, S), (T, K, 2); one set of augmentation parameters for all frames.
    """

    def __init__(self, spec: InputSpec, augmentations: Sequence[Any], train: bool,
                 order: str = "reference"):
        if order not in AUGMENT_ORDERS:
            raise ConfigError(f"augment.order {order!r} is not one of {', '.join(AUGMENT_ORDERS)}.")
        self.spec = spec
        self.train = train
        self.order = reference_order(spec) if order == "reference" else order
        geometry = build_geometry(spec)
        steps = ([*augmentations, *geometry] if self.order == "augment_first"
                 else [*geometry, *augmentations])
        # Shapes are checked by _check_shapes (with messages that say what to re-run).
        self.pipeline = A.Compose(
            steps, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), is_check_shapes=False)
        self._flips = [op for op in self.pipeline.transforms if isinstance(op, MirrorFlip)]
        # uint8 → normalised float as a per-channel lookup table: exact, and ~50x faster than
        # torch elementwise ops inside DataLoader workers competing for the same cores.
        levels = np.arange(256, dtype=np.float32) / 255.0
        self._lut = np.stack([(levels - np.float32(m)) / np.float32(s) for m, s in zip(spec.mean, spec.std)])
        self._seeded_for: Optional[Tuple[int, int]] = None

    def reseed(self, seed: int) -> None:
        """Make the next augmentations a function of ``seed`` alone."""
        seed_independently(self.pipeline, int(seed) % 2**32)
        self._seeded_for = (os.getpid(), torch.initial_seed())

    def _reseed_if_new_process(self) -> None:
        token = (os.getpid(), torch.initial_seed())
        if token != self._seeded_for:
            seed_independently(self.pipeline, token[1] % 2**32)
            self._seeded_for = token

    def __call__(self, image: ArrayOrFrames, mask: Optional[ArrayOrFrames] = None,
                 landmarks: Optional[ArrayOrFrames] = None) -> Dict[str, Optional[torch.Tensor]]:
        is_clip = not (isinstance(image, np.ndarray) and image.ndim == 3)
        if self.train:
            self._reseed_if_new_process()
        frames = np.stack(list(image)) if is_clip else image[None]
        masks = None if mask is None else (np.stack(list(mask)) if is_clip else np.asarray(mask)[None])
        points = None if landmarks is None else (
            np.stack([np.asarray(p, np.float32) for p in landmarks]) if is_clip
            else np.asarray(landmarks, np.float32)[None])
        _check_shapes(frames, masks, points)
        n_frames, n_points = frames.shape[0], 0 if points is None else points.shape[1]
        for flip in self._flips:
            flip.points_per_face = n_points

        # A single frame goes through albumentations' image/mask targets: its images/masks
        # targets would stack and copy the array around every op (same pixels, same draws).
        if is_clip:
            inputs: Dict[str, Any] = {"images": frames}
            if masks is not None:
                inputs["masks"] = masks
        else:
            inputs = {"image": image}
            if masks is not None:
                inputs["mask"] = masks[0]
        if points is not None:
            inputs["keypoints"] = points.reshape(-1, 2)
        out = self.pipeline(**inputs)
        out_frames = out["images"] if is_clip else out["image"][None]
        out_masks = None if masks is None else (out["masks"] if is_clip else out["mask"][None])

        image_t = self._normalise(out_frames)
        mask_t = None
        if out_masks is not None:
            mask_t = torch.from_numpy(out_masks[:, None].astype(np.float32) / np.float32(255.0))
        points_t = None
        if points is not None:
            keypoints = np.asarray(out["keypoints"], np.float32)[:, :2]
            points_t = torch.from_numpy(keypoints.reshape(n_frames, n_points, 2).copy())
        if not is_clip:
            image_t = image_t[0]
            mask_t = None if mask_t is None else mask_t[0]
            points_t = None if points_t is None else points_t[0]
        return {"image": image_t, "mask": mask_t, "landmarks": points_t}

    def _normalise(self, frames: np.ndarray) -> torch.Tensor:
        # One cv2.LUT per colour plane, written straight into the (T, 3, H, W) output: the same
        # values as numpy indexing of the table, ~5x faster than one 3-channel LUT followed by
        # an HWC -> CHW float copy.
        out = np.empty((frames.shape[0], 3, *frames.shape[1:3]), np.float32)
        for index, frame in enumerate(frames):
            for channel, plane in enumerate(cv2.split(frame)):
                cv2.LUT(plane, self._lut[channel], dst=out[index, channel])
        return torch.from_numpy(out)


def _check_shapes(frames: np.ndarray, masks: Optional[np.ndarray], points: Optional[np.ndarray]) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"transform expects uint8 RGB frames (H, W, 3), got {frames.shape} {frames.dtype}")
    if masks is not None and masks.shape != frames.shape[:3]:
        raise ValueError(f"mask shape {masks.shape[1:]} does not match image shape {frames.shape[1:3]}; "
                         f"masks must be saved at the frame resolution (re-run preprocessing)")
    if points is not None and (points.ndim != 3 or points.shape[0] != frames.shape[0] or points.shape[2] != 2):
        raise ValueError(f"landmarks must be (K, 2) per frame, got {points.shape[1:]}")


def build_transform(aug_cfg: Optional[Mapping[str, Any]], spec: InputSpec, train: bool) -> FaceTransform:
    """Train: geometry + augmentations from ``aug_cfg``, in its ``order``. Test: geometry only."""
    augmentations = build_augmentations(aug_cfg)  # validated in test mode too: config errors surface early
    order = (aug_cfg or {}).get("order", "reference")
    return FaceTransform(spec, augmentations if train else [], train, order)
