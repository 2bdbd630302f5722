"""DeepfakeBench's Xception and EfficientNet-B4: its checkpoint keys, and the EfficientNet
padding its network really uses, so its released ``*_best.pth`` files give its logits here.

Read from SCLBD/DeepfakeBench: ``training/trainer/trainer.py`` saves
``torch.save(model.state_dict())`` of the whole detector (``module.`` in front under DDP),
so every key starts with ``backbone.``:

* Xception (``training/networks/xception.py``): the Cadene/FaceForensics port, the same
  modules and names as timm's ``legacy_xception`` (conv1, bn1, conv2, bn2, block1..12 with
  ``rep.N`` / ``skip`` / ``skipbn``, conv3/conv4 separable convs, bn3, bn4); the head is
  ``last_linear`` (a ``Sequential(Dropout, Linear)`` when ``dropout`` is set) after ReLU
  and global average pooling, as timm's ``act4`` + pooling. ``adjust_channel`` is built in
  every mode but used only by IID's ``adjust_channel`` mode: dropped.
* EfficientNet-B4 (``training/networks/efficientnetb4.py``): efficientnet_pytorch's
  ``EfficientNet.from_name('efficientnet-b4')`` under ``backbone.efficientnet.``, its stem
  replaced by a plain ``nn.Conv2d(3, 48, 3, stride 2, bias=False)`` (no padding), head
  ``backbone.last_layer`` on average-pooled ``extract_features``. efficientnet_pytorch
  pads every convolution "TF-same" with amounts fixed at construction for its default
  380 px input (``Conv2dStaticSamePadding``); at DeepfakeBench's 256 px input the
  stride-2 convolutions therefore pad differently from a TF-same pad computed on the
  real input (timm's ``tf_efficientnet_b4``), so :func:`use_deepfakebench_padding`
  rebuilds those pads as fixed amounts. BatchNorm eps 1e-3 and the channel plan are
  those of timm's ``tf_efficientnet_b4``.
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# efficientnet_pytorch's defaults for efficientnet-b4 (utils.efficientnet_params): the input
# size its static pads are computed for.
EFFICIENTNET_PYTORCH_B4_IMAGE_SIZE = 380

_XCEPTION_HEAD = re.compile(r"last_linear\.(?:1\.)?(weight|bias)")
_EFFNET_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(.+)")
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
# Blocks with expansion ratio 1 (the first stage) have no expand conv; timm calls them
# DepthwiseSeparableConv (conv_dw, bn1, se, conv_pw, bn2), the others InvertedResidual.
_EFFNET_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                     "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
                    "_project_conv": "conv_pwl", "_bn2": "bn3"}


def is_xception_checkpoint(state: Mapping[str, torch.Tensor]) -> bool:
    return any(_XCEPTION_HEAD.fullmatch(key[len("backbone."):]) for key in state if key.startswith("backbone."))


def is_efficientnet_checkpoint(state: Mapping[str, torch.Tensor]) -> bool:
    return "backbone.efficientnet._conv_stem.weight" in state


def xception_state(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """DeepfakeBench Xception keys → XceptionDetector keys (``backbone.model.*``, ``head.*``)."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith("backbone."):
            out[key] = value  # left for the checked loader to report as unexpected
            continue
        local = key[len("backbone."):]
        if local.startswith("adjust_channel."):
            continue
        head = _XCEPTION_HEAD.fullmatch(local)
        out[f"head.{head.group(1)}" if head else f"backbone.model.{local}"] = value
    return out


def efficientnet_state(state: Mapping[str, torch.Tensor], stage_depths: Sequence[int]) -> Dict[str, torch.Tensor]:
    """DeepfakeBench EfficientNet-B4 keys → EfficientNetB4Detector keys.

    ``stage_depths``: blocks per stage of the timm model (efficientnet_pytorch numbers
    its blocks 0..31 in one list; timm nests them as ``blocks.<stage>.<index>``).
    """
    places: List[Tuple[int, int]] = [(stage, index) for stage, depth in enumerate(stage_depths)
                                     for index in range(depth)]
    prefix = "backbone.efficientnet."
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("backbone.last_layer."):
            out["head." + key.rsplit(".", 1)[1]] = value
            continue
        if not key.startswith(prefix):
            out[key] = value
            continue
        local = key[len(prefix):]
        block = _EFFNET_BLOCK.fullmatch(local)
        if block:
            number, module, rest = int(block.group(1)), block.group(2), block.group(3)
            names = _EFFNET_INVERTED if f"{prefix}_blocks.{number}._expand_conv.weight" in state else _EFFNET_SEPARABLE
            if number >= len(places) or module not in names:
                out[key] = value
                continue
            stage, index = places[number]
            out[f"backbone.model.blocks.{stage}.{index}.{names[module]}.{rest}"] = value
            continue
        module, _, rest = local.partition(".")
        out[f"backbone.model.{_EFFNET_TOP[module]}.{rest}" if module in _EFFNET_TOP else key] = value
    return out


# --------------------------------------------------------------------------- padding


class FixedPadConv2d(nn.Conv2d):
    """A convolution after a fixed zero pad (left, right, top, bottom), whatever the input size."""

    def __init__(self, conv: nn.Conv2d, pad: Tuple[int, int, int, int]):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                         conv.dilation, conv.groups, conv.bias is not None, device=conv.weight.device,
                         dtype=conv.weight.dtype)
        self.weight = conv.weight
        self.bias = conv.bias
        self.pad = tuple(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad={self.pad}"


def tf_same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """TF "same" padding (before, after) of one axis of length ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def use_deepfakebench_padding(model: nn.Module, image_size: int = EFFICIENTNET_PYTORCH_B4_IMAGE_SIZE) -> None:
    """Give a timm ``tf_efficientnet_*`` the padding of DeepfakeBench's EfficientNet, in place.

    The stem loses its padding (DeepfakeBench swaps in an unpadded ``nn.Conv2d``); each
    block's depthwise convolution pads by the amounts efficientnet_pytorch fixes for an
    ``image_size`` input, tracking the size from block to block as it does. Weights are
    kept, so ImageNet weights stay loaded and the state dict keys do not change.
    """
    stem = model.conv_stem
    model.conv_stem = FixedPadConv2d(stem, (0, 0, 0, 0))
    size = math.ceil(image_size / stem.stride[0])
    for stage in model.blocks:
        for block in stage:
            conv = block.conv_dw
            (height_pad, width_pad) = [tf_same_pad(size, conv.kernel_size[axis], conv.stride[axis],
                                                   conv.dilation[axis]) for axis in (0, 1)]
            block.conv_dw = FixedPadConv2d(conv, (*width_pad, *height_pad))
            size = math.ceil(size / conv.stride[0])


def convert_state(detector_name: str, state: Mapping[str, torch.Tensor],
                  stage_depths: Optional[Sequence[int]] = None) -> Optional[Dict[str, torch.Tensor]]:
    """``state`` in the keys of our ``xception`` / ``efficientnet_b4`` detector when it is a
    DeepfakeBench checkpoint of that architecture, else None."""
    if detector_name == "xception" and is_xception_checkpoint(state):
        return xception_state(state)
    if detector_name == "efficientnet_b4" and is_efficientnet_checkpoint(state):
        return efficientnet_state(state, stage_depths or ())
    return None
