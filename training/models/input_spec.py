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


@dataclass(frozen=True)
class InputSpec:
    resolution: int  # square model input size in pixels
    mean: Tuple[float, float, float] = CLIP_MEAN
    std: Tuple[float, float, float] = CLIP_STD
    # "resize_center_crop": resize the shortest side to `resolution` (bicubic) then
    # centre-crop, as CLIPProcessor does. "resize": plain resize (DeepfakeBench).
    resize_mode: str = "resize_center_crop"
    frames_per_sample: int = 1  # >1: the sample is a clip of T frames (B,T,3,H,W)
    with_mask: bool = False  # the detector's losses use forgery masks
    with_landmarks: bool = False
