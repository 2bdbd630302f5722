"""Per-video "distribution" steps applied to real and fake videos alike.

Real benchmarks differ in how their videos were encoded and shared; these
steps reproduce that. They are sampled once per video from the same
distribution for both classes, so the degradation itself never gives the label
away.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from preprocessing.demo.render import CROP, to_uint8


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (uint8 in, uint8 out)."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed at quality {quality}")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def lose_resolution(image: np.ndarray, factor: float) -> np.ndarray:
    """A low-resolution source video upscaled to the crop size."""
    size = max(8, int(round(CROP * factor)))
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (CROP, CROP), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Distribution:
    """How one video was encoded after capture (and manipulation)."""

    jpeg_quality: int
    resolution_factor: float = 1.0  # 1: full resolution
    noise_sigma: float = 0.0  # extra noise (grey levels), e.g. a low-light re-capture

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 or uint8 BGR in, uint8 BGR out."""
        out = image.astype(np.float32)
        if self.resolution_factor < 1.0:
            out = lose_resolution(out, self.resolution_factor)
        if self.noise_sigma > 0:
            out = out + rng.standard_normal(out.shape, dtype=np.float32) * self.noise_sigma
        return jpeg(to_uint8(out), self.jpeg_quality)


def light_compression(rng: np.random.Generator) -> Distribution:
    """FF++ "c23"-like: visually lossless."""
    return Distribution(jpeg_quality=int(rng.integers(85, 93)))


def web_compression(rng: np.random.Generator) -> Distribution:
    """Celeb-DF-like: re-encoded for the web, a little stronger than c23."""
    return Distribution(jpeg_quality=int(rng.integers(70, 86)))


def in_the_wild(rng: np.random.Generator) -> Distribution:
    """DFDC-like: phone cameras, low light, heavy compression, low resolution."""
    return Distribution(jpeg_quality=int(rng.integers(40, 71)),
                        resolution_factor=float(rng.uniform(0.4, 0.7)),
                        noise_sigma=float(rng.uniform(1.5, 4.0)))


DISTRIBUTIONS = {
    "light": light_compression,
    "web": web_compression,
    "wild": in_the_wild,
}
