"""What a detector needs from the data layer, declared by the detector itself.

The data layer builds its transforms from this, so it needs no
detector-specific code (timm's ``pretrained_cfg`` plays the same role).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("cv2_cubic", "pil_bicubic", "pil_bilinear")


@dataclass(frozen=True)
class InputSpec:
    resolution: int  # square model input size in pixels
    mean: Tuple[float, float, float] = CLIP_MEAN
    std: Tuple[float, float, float] = CLIP_STD
    # "resize_center_crop": resize the shortest side to `resolution` then centre-crop, as
    # CLIPProcessor and timm's eval transform do. "resize": plain resize to the square
    # (DeepfakeBench's loader, HF's DINOv3 processor).
    resize_mode: str = "resize_center_crop"
    frames_per_sample: int = 1  # >1: the sample is a clip of T frames (B,T,3,H,W)
    with_mask: bool = False  # the detector's losses use forgery masks
    with_landmarks: bool = False
    # The resize kernel of the tower's reference processor (one of INTERPOLATIONS):
    # "cv2_cubic": cv2.INTER_CUBIC, no antialiasing (DeepfakeBench's loader; our old default);
    # "pil_bicubic": PIL bicubic, antialiased when shrinking (HF CLIPImageProcessor as LN-CLIP
    #   and GenD run it, open_clip's and timm's eval transforms on PIL images);
    # "pil_bilinear": PIL bilinear, antialiased (HF DINOv3ViTImageProcessor: torchvision's
    #   antialiased bilinear, which it matches to within 1 grey level).
    interpolation: str = "cv2_cubic"
    # resize_center_crop only: the shortest side goes to floor(resolution / crop_pct) before
    # the centre crop (timm's pretrained_cfg crop_pct; 1.0 for HF CLIPImageProcessor).
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"InputSpec.interpolation {self.interpolation!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}.")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"InputSpec.crop_pct {self.crop_pct} must lie in (0, 1].")
