"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022) as an online training option.

A real frame becomes a fake made from itself: one copy is colour- and
frequency-jittered (RGB shift, hue/saturation/value, brightness/contrast, then
down-up-scaling or sharpening) and slightly shifted/scaled, and is blended into
the other copy inside the face: the convex hull of the landmarks, elastically
deformed, eroded and blurred, times a random blend ratio. The result carries
only generic blending artefacts (boundary, colour and frequency mismatch), which
is what makes SBI generalise across manipulation methods.

Config (``data.self_blend``; any detector, frame datasets only)::

    self_blend: {enabled: true, p: 0.5, reals_only: false,
                 blend_ratios: [0.25, 0.5, 0.75, 1, 1, 1]}

``p`` is the chance that a real training frame is replaced by its blend (label
1; forgery mask = the blend mask). ``reals_only: true`` drops the dataset's own
fakes, as the paper trains on real videos alone. Every sample carries
``self_blended`` (bool). The blend is drawn from the per-sample seed that
:class:`training.data.loaders.EpochSeededDataset` sets, so it depends on
(seed, epoch, index) only, not on the worker that loads it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import albumentations as A
import cv2
import numpy as np

from .catalog import frame_index_of
from .datasets import DataRequirementError, FrameDataset
from .records import VideoRecord
from .transforms import seed_independently

from training.errors import ConfigError

log = logging.getLogger(__name__)

# Points of the 68-point iBUG layout; 81-point files (dlib 81) add 13 forehead points after them.
IBUG68 = 68


@dataclass(frozen=True)
class SelfBlendConfig:
    p: float = 0.5
    reals_only: bool = False
    blend_ratios: Tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "SelfBlendConfig":
        options = {k: v for k, v in section.items() if k != "enabled"}
        config = cls(p=float(options.get("p", cls.p)), reals_only=bool(options.get("reals_only", cls.reals_only)),
                     blend_ratios=tuple(float(r) for r in options.get("blend_ratios", cls.blend_ratios)))
        if not 0.0 <= config.p <= 1.0:
            raise ConfigError(f"data.self_blend.p must lie in [0, 1], got {config.p}")
        if not config.blend_ratios or not all(0.0 < r <= 1.0 for r in config.blend_ratios):
            raise ConfigError(f"data.self_blend.blend_ratios must be a non-empty list of values in (0, 1], "
                             f"got {list(config.blend_ratios)}")
        return config


def _source_jitter() -> A.Compose:
    # The paper's source transforms (its RandomDownScale = albumentations' Downscale by 2-4x).
    return A.Compose([
        A.RGBShift(r_shift_limit=(-20, 20), g_shift_limit=(-20, 20), b_shift_limit=(-20, 20), p=0.3),
        A.HueSaturationValue(hue_shift_limit=(-0.3, 0.3), sat_shift_limit=(-0.3, 0.3),
                             val_shift_limit=(-0.3, 0.3), p=1.0),
        A.RandomBrightnessContrast(brightness_limit=(-0.1, 0.1), contrast_limit=(-0.1, 0.1), p=1.0),
        A.OneOf([A.Downscale(scale_range=(0.25, 0.5),
                             interpolation_pair={"downscale": cv2.INTER_NEAREST, "upscale": cv2.INTER_LINEAR},
                             p=1.0),
                 A.Sharpen(alpha=(0.2, 0.5), lightness=(0.5, 1.0), p=1.0)], p=1.0),
    ])


def _source_shift() -> A.Compose:
    # A small misalignment of the blended copy (jointly with its mask), as in the paper.
    return A.Compose([A.Affine(translate_percent={"x": (-0.03, 0.03), "y": (-0.015, 0.015)},
                               scale=(0.95, 1 / 0.95), p=1.0)])


def _mask_deform() -> A.Compose:
    return A.Compose([A.ElasticTransform(alpha=50, sigma=7, p=1.0)])


class SelfBlender:
    """``blend(image, landmarks, rng) -> (blended uint8 RGB, blend mask float32 in [0, 1])``."""

    def __init__(self, config: SelfBlendConfig):
        self.config = config
        self.jitter, self.shift, self.deform = _source_jitter(), _source_shift(), _mask_deform()

    @staticmethod
    def _seed(pipeline: A.Compose, rng: np.random.Generator) -> A.Compose:
        seed_independently(pipeline, int(rng.integers(2 ** 32)))  # one stream: uncorrelated ops
        return pipeline

    def hull_mask(self, landmarks: np.ndarray, shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        points = np.asarray(landmarks, np.float32)
        if len(points) > IBUG68 and rng.random() < 0.25:  # sometimes without the forehead points
            points = points[:IBUG68]
        mask = np.zeros(shape, np.float32)
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
        return mask

    @staticmethod
    def soften(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Erode by blur-and-threshold, then blur, at a random working size (the paper's get_blend_mask)."""
        height, width = mask.shape
        small = cv2.resize(mask, (int(rng.integers(192, 257)), int(rng.integers(192, 257))))
        k1, k2 = (int(k) for k in rng.choice(np.arange(5, 26, 2), size=2))
        eroded = cv2.GaussianBlur(small, (k1, k1), 0)
        eroded = eroded / max(float(eroded.max()), 1e-6)
        eroded[eroded < 1] = 0
        blurred = cv2.GaussianBlur(eroded, (k2, k2), float(rng.integers(5, 46)))
        peak = float(blurred.max())
        if peak <= 0:  # the hull vanished in the erosion (a tiny face): blend the hull as it is
            blurred, peak = small, max(float(small.max()), 1e-6)
        return cv2.resize(blurred / peak, (width, height)).astype(np.float32)

    def blend(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
              ) -> Tuple[np.ndarray, np.ndarray]:
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"self-blending needs a uint8 RGB frame, got {image.shape} {image.dtype}")
        mask = self.hull_mask(landmarks, image.shape[:2], rng)
        source, target = image, image
        if rng.random() < 0.5:  # which copy gets the jitter is random, as in the paper
            source = self._seed(self.jitter, rng)(image=image)["image"]
        else:
            target = self._seed(self.jitter, rng)(image=image)["image"]
        shifted = self._seed(self.shift, rng)(image=source, mask=mask)
        source, mask = shifted["image"], shifted["mask"]
        mask = self._seed(self.deform, rng)(image=mask)["image"]
        mask = self.soften(mask, rng) * np.float32(rng.choice(self.config.blend_ratios))
        weight = mask[..., None]
        blended = weight * source.astype(np.float32) + (1 - weight) * target.astype(np.float32)
        return np.clip(np.round(blended), 0, 255).astype(np.uint8), mask


class SelfBlendFrameDataset(FrameDataset):
    """A :class:`FrameDataset` whose real frames become self-blended fakes with probability ``p``.

    Real videos need landmarks (the blend region is their convex hull): a real video
    without them raises in strict mode and, in lenient mode, is kept unblended and
    counted in ``report``.
    """

    def __init__(self, records: Sequence[VideoRecord], storage, transform, frame_num: int,
                 blend: SelfBlendConfig, with_mask: bool = False, with_landmarks: bool = False,
                 identity_to_index: Optional[Mapping[str, int]] = None, strict: bool = True):
        records = [r for r in records if r.label == 0] if blend.reals_only else list(records)
        if not any(r.label == 0 for r in records):
            raise DataRequirementError("data.self_blend is enabled but the training split has no real videos "
                                       "to blend; add real videos or disable data.self_blend.")
        no_landmarks = [r.key for r in records if r.label == 0 and r.landmarks is None]
        if no_landmarks and strict:
            raise DataRequirementError(
                f"data.self_blend needs landmarks for real videos; {len(no_landmarks)} have none in the dataset "
                f"JSON (e.g. {no_landmarks[0]}). Re-run preprocessing with landmarks, disable data.self_blend, "
                f"or use lenient mode (strict=False) to keep them unblended.")
        super().__init__(records, storage, transform, frame_num, with_mask=with_mask,
                         with_landmarks=with_landmarks, identity_to_index=identity_to_index, strict=strict)
        for key in no_landmarks:
            self.report.add(key, "real video without landmarks: never self-blended")
        if no_landmarks:
            log.warning("data.self_blend: %d real video(s) without landmarks stay unblended, e.g. %s",
                        len(no_landmarks), no_landmarks[0])
        self.blend_config = blend
        self.blender = SelfBlender(blend)
        self._sample_seed: Optional[int] = None

    def reseed(self, seed: int) -> None:
        super().reseed(seed)
        self._sample_seed = int(seed)

    def _rng(self, index: int) -> np.random.Generator:
        # The per-sample seed of EpochSeededDataset when there is one; numpy's global state otherwise.
        seed = self._sample_seed if self._sample_seed is not None else int(np.random.randint(0, 2 ** 31 - 1))
        return np.random.default_rng([seed, index, 0x5B1])

    def __getitem__(self, index: int) -> Dict[str, Any]:
        record_index, position = self.samples[index]
        record = self.records[record_index]
        image, mask, landmarks = self._read_frame(record, position)
        rng = self._rng(index)
        blended = record.label == 0 and record.landmarks is not None and rng.random() < self.blend_config.p
        if blended:
            points = landmarks if landmarks is not None else self.storage.read_landmarks(
                record.landmarks[position], record.dataset)
            image, blend_mask = self.blender.blend(image, points, rng)
            if mask is not None:
                mask = np.round(blend_mask * 255).astype(np.uint8)
        out = self._apply_transform(record, record.frames[position], image, mask, landmarks)
        sample = self._base_sample(record, out, frame_index_of(record.frames[position]))
        if blended:
            sample["label"] = 1
        sample["self_blended"] = blended
        return sample


def build_self_blend_dataset(records: Sequence[VideoRecord], storage, transform, section: Mapping[str, Any],
                             frame_num: int, **kwargs: Any) -> SelfBlendFrameDataset:
    """The training dataset when ``data.self_blend.enabled`` (see the module docstring)."""
    blend = SelfBlendConfig.from_config(section)
    dataset = SelfBlendFrameDataset(records, storage, transform, frame_num, blend, **kwargs)
    n_real = sum(1 for record_index, _ in dataset.samples if dataset.records[record_index].label == 0)
    log.info("Self-blending (SBI): %d of %d training frames are real; each becomes a blended fake with p=%.2f%s",
             n_real, len(dataset), blend.p, " (dataset fakes dropped: reals_only)" if blend.reals_only else "")
    return dataset

