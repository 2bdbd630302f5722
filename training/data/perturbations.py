"""Test-time image degradations for the robustness suite (``training/test.py --perturb``).

Each degradation is a pure function of an RGB uint8 image (and, for noise, a
numpy ``Generator``) returning a new RGB uint8 image of the same size:

=========  ==========================================  =====================
kind       what                                        severities (default)
=========  ==========================================  =====================
jpeg       JPEG re-encoding at a quality               90, 70, 50, 30
noise      additive white Gaussian noise, sigma in     5, 10, 20
           0-255 pixel units, per pixel and channel
blur       Gaussian blur, sigma in pixels              1, 2, 3
resize     downscale by a factor (area), upscale back  0.5, 0.25
           (bicubic) to the original size
chain      blur -> resize -> noise -> JPEG at one of   1, 2, 3
           three levels (:data:`CHAIN_LEVELS`)
=========  ==========================================  =====================

The chain follows DeeperForensics-1.0 (Jiang et al., CVPR 2020), whose hidden
test set applies several distortions on top of each other; here the mixture is
fixed per level (instead of drawn at random) so a level means the same thing
for every frame, and ordered like a capture-and-share pipeline (optics blur,
resolution loss, sensor noise, compression).

Degradations are applied to the stored face crops, before the detector's own
resize and normalisation, by wrapping the storage (:class:`PerturbedStorage`),
so datasets, samplers and transforms are unchanged. Randomness (noise) is
seeded from (seed, perturbation, frame path) alone: the result does not depend
on the DataLoader worker, the batch order or the number of GPUs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.data.storage import Storage

SEVERITIES: Dict[str, Tuple[float, ...]] = {
    "jpeg": (90, 70, 50, 30),
    "noise": (5, 10, 20),
    "blur": (1, 2, 3),
    "resize": (0.5, 0.25),
    "chain": (1, 2, 3),
}

# For these kinds a *smaller* parameter is a stronger degradation.
_DECREASING = ("jpeg", "resize")

# chain level -> steps applied in this order; each step is (kind, parameter).
CHAIN_LEVELS: Dict[int, Tuple[Tuple[str, float], ...]] = {
    1: (("blur", 1), ("noise", 5), ("jpeg", 90)),
    2: (("blur", 2), ("resize", 0.5), ("noise", 10), ("jpeg", 70)),
    3: (("blur", 3), ("resize", 0.25), ("noise", 20), ("jpeg", 50)),
}

PARAMETER_NAMES = {"jpeg": "quality", "noise": "sigma", "blur": "sigma", "resize": "factor", "chain": "level"}


# ------------------------------------------------------------------ pure functions

def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"perturbations take RGB uint8 images (H, W, 3); got shape {shape}, dtype {dtype}")


def jpeg_bytes(image: np.ndarray, quality: float) -> bytes:
    """The JPEG file :func:`jpeg` decodes (exposed so its size can be inspected)."""
    _check_image(image)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(round(quality))])
    if not ok:
        raise RuntimeError(f"OpenCV failed to JPEG-encode a {image.shape} image at quality {quality}")
    return encoded.tobytes()


def jpeg(image: np.ndarray, quality: float) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (OpenCV/libjpeg scale, 4:2:0 chroma) and decode."""
    decoded = cv2.imdecode(np.frombuffer(jpeg_bytes(image, quality), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) noise (0-255 units) to every pixel and channel; round and clip."""
    _check_image(image)
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel +-3 sigma, reflected border)."""
    _check_image(image)
    if sigma <= 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    kernel = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (kernel, kernel), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def downscale_upscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by ``factor`` (area averaging, as a camera or a re-upload would) and
    upscale back to the original size (bicubic): detail finer than the small image is lost."""
    _check_image(image)
    if not 0 < factor <= 1:
        raise ValueError(f"resize factor must be in (0, 1], got {factor}")
    height, width = image.shape[:2]
    small = (max(1, int(round(width * factor))), max(1, int(round(height * factor))))
    reduced = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(reduced, (width, height), interpolation=cv2.INTER_CUBIC)


def chain(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """The :data:`CHAIN_LEVELS` steps of ``level``, in order."""
    if int(level) not in CHAIN_LEVELS:
        raise ValueError(f"chain level must be one of {sorted(CHAIN_LEVELS)}, got {level}")
    for kind, parameter in CHAIN_LEVELS[int(level)]:
        image = apply(kind, image, parameter, rng)
    return image


def apply(kind: str, image: np.ndarray, parameter: float, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Apply one degradation by name; ``rng`` is needed by ``noise`` and ``chain``."""
    if kind in ("noise", "chain") and rng is None:
        raise ValueError(f"perturbation {kind!r} is random: pass rng (a numpy Generator)")
    if kind == "jpeg":
        return jpeg(image, parameter)
    if kind == "noise":
        return gaussian_noise(image, parameter, rng)
    if kind == "blur":
        return gaussian_blur(image, parameter)
    if kind == "resize":
        return downscale_upscale(image, parameter)
    if kind == "chain":
        return chain(image, int(parameter), rng)
    raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(SEVERITIES)}")


# ------------------------------------------------------------- named perturbations

def _format_parameter(value: float) -> str:
    return f"{value:g}"


def derive_seed(seed: int, name: str, key: str) -> int:
    """A 64-bit seed from (seed, perturbation name, frame path); stable across processes
    (``hash()`` is salted per process, so it would differ between DataLoader workers)."""
    digest = hashlib.sha256(f"{int(seed)}\x00{name}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class Perturbation:
    """One degradation at one severity, e.g. ``Perturbation("jpeg", 50)``; picklable."""

    kind: str
    parameter: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SEVERITIES:
            raise ValueError(f"unknown perturbation {self.kind!r}; choose one of {', '.join(SEVERITIES)}")
        # Validate the parameter once, here, rather than on the first frame in a worker.
        apply(self.kind, np.zeros((8, 8, 3), np.uint8), self.parameter, np.random.default_rng(0))

    @property
    def name(self) -> str:
        """``kind=parameter`` (the form ``--perturb`` accepts), e.g. ``jpeg=50``."""
        return f"{self.kind}={_format_parameter(self.parameter)}"

    @property
    def label(self) -> str:
        """Human-readable and LaTeX-safe, e.g. ``JPEG quality 50``."""
        title = {"jpeg": "JPEG", "noise": "Noise", "blur": "Blur", "resize": "Resize", "chain": "Chain"}[self.kind]
        return f"{title} {PARAMETER_NAMES[self.kind]} {_format_parameter(self.parameter)}"

    @property
    def slug(self) -> str:
        """File-system-safe name, e.g. ``jpeg_50``."""
        return f"{self.kind}_{_format_parameter(self.parameter)}"

    @property
    def severity_rank(self) -> float:
        """Larger = stronger degradation (for sorting levels of one kind)."""
        return -float(self.parameter) if self.kind in _DECREASING else float(self.parameter)

    def __call__(self, image: np.ndarray, key: str) -> np.ndarray:
        """Degrade ``image``, the frame stored at ``key`` (its path as the dataset JSON lists it)."""
        rng = np.random.default_rng(derive_seed(self.seed, self.name, key))
        return apply(self.kind, image, self.parameter, rng)


def parse_perturbations(specs: Sequence[str], seed: int = 0) -> List[Perturbation]:
    """``--perturb`` values -> perturbations. An empty list means every kind at its default
    severities; ``jpeg`` means JPEG at its defaults; ``jpeg=90,50`` chooses the qualities."""
    if not specs:
        specs = list(SEVERITIES)
    perturbations: List[Perturbation] = []
    for spec in specs:
        kind, _, values = str(spec).partition("=")
        kind = kind.strip().lower()
        if kind not in SEVERITIES:
            raise ValueError(f"--perturb {spec!r}: unknown kind {kind!r}; choose from {', '.join(SEVERITIES)} "
                             f"(optionally with severities, e.g. jpeg=90,50 or blur=2)")
        try:
            parameters = [float(v) for v in values.split(",") if v.strip()] if values else SEVERITIES[kind]
        except ValueError:
            raise ValueError(f"--perturb {spec!r}: severities must be numbers separated by commas, "
                             f"e.g. {kind}={','.join(_format_parameter(v) for v in SEVERITIES[kind])}") from None
        for parameter in parameters:
            perturbation = Perturbation(kind, parameter, seed)
            if perturbation not in perturbations:
                perturbations.append(perturbation)
    return perturbations


def perturbation_from_name(name: str, seed: int = 0) -> Perturbation:
    """Inverse of :attr:`Perturbation.name`."""
    kind, separator, value = name.partition("=")
    if not separator:
        raise ValueError(f"perturbation name {name!r} is not 'kind=parameter' (e.g. 'jpeg=50')")
    return Perturbation(kind, float(value), seed)


# ------------------------------------------------------------------------- storage

class PerturbedStorage(Storage):
    """A storage whose frames come out degraded by ``perturbation``; masks and landmarks
    are read unchanged (every degradation keeps the image size, so they still fit)."""

    def __init__(self, storage: Storage, perturbation: Perturbation):
        super().__init__(storage.data_root)
        self.storage = storage
        self.perturbation = perturbation
        self.kind = f"{storage.kind}+{perturbation.name}"

    def read_bytes(self, path: str, dataset: Optional[str] = None) -> tuple:
        return self.storage.read_bytes(path, dataset)

    def read_image(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        return self.perturbation(self.storage.read_image(path, dataset), key=str(path))

    def read_mask(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        return self.storage.read_mask(path, dataset)

    def read_landmarks(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        return self.storage.read_landmarks(path, dataset)
