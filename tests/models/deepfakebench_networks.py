"""Stand-ins for DeepfakeBench's Xception and EfficientNet-B4 detectors, for checkpoint tests.

Written from reading SCLBD/DeepfakeBench ``training/networks/xception.py``,
``training/networks/efficientnetb4.py`` and the detectors that wrap them (state dict
under ``backbone.``): the same parameter names, shapes and eval-mode forward, not
their code. ``logits(images)`` is what their ``detector(data_dict)['cls']`` returns.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn


class _Separable(nn.Module):
    """Depthwise ``conv1`` then 1x1 ``pointwise``, no bias (their SeparableConv2d)."""

    def __init__(self, cin: int, cout: int, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, padding, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class _Block(nn.Module):
    """``rep``: [ReLU, separable, BN] x reps (first ReLU dropped when it does not start with
    one), widening at the first separable (grow_first) or the last; max-pool when strided;
    ``skip``/``skipbn`` 1x1 projection when the shape changes; output = rep + skip."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int, start_with_relu: bool = True,
                 grow_first: bool = True):
        super().__init__()
        widths: List[tuple] = []
        for i in range(reps):
            widen = (i == 0) if grow_first else (i == reps - 1)
            source = cout if (grow_first and i > 0) else cin
            widths.append((source, cout if widen else source))
        layers: List[nn.Module] = []
        for source, target in widths:
            layers += [nn.ReLU(), _Separable(source, target), nn.BatchNorm2d(target)]
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)
        self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None
        if self.skip is not None:
            self.skipbn = nn.BatchNorm2d(cout)

    def forward(self, x):
        shortcut = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.rep(x) + shortcut


class DeepfakeBenchXception(nn.Module):
    """Their Xception backbone in ``mode: original`` with ``num_classes: 2``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        plan = [(64, 128, 2, 2, False, True), (128, 256, 2, 2, True, True), (256, 728, 2, 2, True, True)]
        plan += [(728, 728, 3, 1, True, True)] * 8 + [(728, 1024, 2, 2, True, False)]
        for number, args in enumerate(plan, start=1):
            setattr(self, f"block{number}", _Block(*args))
        self.conv3 = _Separable(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = _Separable(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.last_linear = nn.Linear(2048, 2)
        # Built in every mode, used only by their IID detector's 'adjust_channel' mode.
        self.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU())

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for number in range(1, 13):
            x = getattr(self, f"block{number}")(x)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))  # features() ends at bn4; classifier() applies the ReLU
        return self.last_linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


class DeepfakeBenchEfficientNetB4(nn.Module):
    """Their EfficientNetB4 backbone: efficientnet_pytorch's b4 with an unpadded stem, ``_fc``
    removed, ``last_layer`` on the average-pooled ``extract_features``."""

    def __init__(self):
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.efficientnet = EfficientNet.from_name("efficientnet-b4")
        self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
        self.efficientnet._fc = nn.Identity()
        self.last_layer = nn.Linear(1792, 2)

    def forward(self, x):
        x = self.efficientnet.extract_features(x)
        return self.last_layer(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Detector(nn.Module):
    """Their detector classes keep the network as ``self.backbone`` (and no other parameters)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


def randomised(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics (so the test sees every buffer), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(1 + 0.2 * torch.rand(module.running_var.shape, generator=generator))
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, (nn.Conv2d, nn.Linear)):  # He init: the signal survives the depth,
                fan_in = module.weight[0].numel()  # so different inputs give different logits
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
    return model.eval()
