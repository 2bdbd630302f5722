"""Convolutional patch embedding for ViTs trained from scratch.

A randomly initialised ViT learns very slowly on small data: at step 0 its CLS
output barely depends on the input, and on the demo benchmark a tiny ViT stayed
at chance for 400+ steps while a small CNN reached 0.90 video AUC in 300
(docs/BENCHMARKS.md, "Demo detector"). Replacing the single stride-P
patchify convolution by a few stride-2 3×3 conv/BN/ReLU stages ("Early
Convolutions Help Transformers See Better", Xiao et al., NeurIPS 2021) fixes
that. Only for random initialisation: pretrained CLIP weights expect the
original ``conv1``.
"""
from __future__ import annotations

import math

from torch import nn

from training.errors import ConfigError


class ConvStem(nn.Sequential):
    """(B, 3, H, W) → (B, width, H/P, W/P) with log2(P) stride-2 stages, like ``conv1``."""

    def __init__(self, width: int, patch_size: int):
        stages = int(round(math.log2(patch_size)))
        if 2 ** stages != patch_size or stages < 1:
            raise ConfigError(f"model.backbone.conv_stem needs a power-of-two patch_size (got {patch_size}).")
        channels = [3] + [max(width // 2 ** (stages - i), 8) for i in range(1, stages + 1)]
        layers = []
        for i in range(stages):
            layers += [nn.Conv2d(channels[i], channels[i + 1], 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(channels[i + 1]), nn.ReLU(inplace=True),
                       nn.Conv2d(channels[i + 1], channels[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm2d(channels[i + 1]), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels[-1], width, 1))
        super().__init__(*layers)
