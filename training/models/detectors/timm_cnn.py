"""CNN baselines on timm backbones: Xception and EfficientNet-B4 (DeepfakeBench's two
most-cited baselines), and any other timm model by name (``timm_cnn``).

Pooled backbone feature → dropout → one linear layer → 2 logits; cross-entropy;
every parameter trains. The three registered names share this code and differ
only in their defaults (model name, normalisation, EfficientNet padding), so each
is one YAML away. ``xception`` and ``efficientnet_b4`` are DeepfakeBench's networks
layer for layer and load its released checkpoints (deepfakebench_compat.py).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import torch
from torch import nn

from training.errors import ConfigError
from training.losses.classification import cross_entropy
from training.models.backbones.timm_backbone import IMAGENET_TAG, TimmBackbone
from training.models.detectors import deepfakebench_compat
from training.models.detectors.base import Detector
from training.models.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from training.registry import DETECTORS

RESIZE_MODES = ("resize", "resize_center_crop")


@DETECTORS.register("timm_cnn")
class TimmCnnDetector(Detector):
    DEFAULTS: Dict[str, Any] = {
        "backbone": {
            "model_name": None,  # any timm model name
            "pretrained": IMAGENET_TAG,  # imagenet (timm's default weights) | timm tag | file | null
            "weights_dir": "weights",  # where <model_name>/<tag>/model.safetensors is looked for
            "allow_download": False,
            "drop_path_rate": 0.0,
            "create_kwargs": {},  # extra timm.create_model arguments
        },
        "resolution": 256,
        "resize_mode": "resize",  # DeepfakeBench resizes the aligned 256 px crop, no crop
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "dropout": 0.0,
        "loss": {"label_smoothing": 0.0},
    }

    DEEPFAKEBENCH_NETWORK: Optional[str] = None  # the DeepfakeBench network whose checkpoints load

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        if cfg["resize_mode"] not in RESIZE_MODES:
            raise ConfigError(f"model.resize_mode '{cfg['resize_mode']}' is not one of {', '.join(RESIZE_MODES)}.")
        backbone = cfg["backbone"]
        self.backbone = TimmBackbone(
            model_name=backbone["model_name"], pretrained=backbone["pretrained"],
            weights_dir=backbone["weights_dir"], allow_download=backbone["allow_download"],
            drop_path_rate=backbone["drop_path_rate"], create_kwargs=backbone["create_kwargs"])
        self._adapt_backbone(self.backbone.model)
        self.dropout = nn.Dropout(float(cfg["dropout"]))
        self.head = nn.Linear(self.backbone.num_features, 2)
        self._input_spec = InputSpec(resolution=int(cfg["resolution"]), mean=tuple(cfg["mean"]),
                                     std=tuple(cfg["std"]), resize_mode=cfg["resize_mode"])

    def _adapt_backbone(self, model: nn.Module) -> None:
        """Subclasses change the timm model here (before the head is built)."""

    @property
    def input_spec(self) -> InputSpec:
        return self._input_spec

    def convert_external_state(self, state: Dict[str, torch.Tensor]) -> Optional[Dict[str, torch.Tensor]]:
        """A DeepfakeBench checkpoint of this network in our keys; None for any other state dict."""
        if self.DEEPFAKEBENCH_NETWORK is None:
            return None
        depths = [len(stage) for stage in getattr(self.backbone.model, "blocks", [])]
        return deepfakebench_compat.convert_state(self.DEEPFAKEBENCH_NETWORK, state, depths)

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        feat = self.backbone(batch["image"])
        logits = self.head(self.dropout(feat))
        prob = torch.softmax(logits.float(), dim=-1)[:, 1]
        return {"logits": logits, "prob": prob, "feat": feat}

    def losses(self, batch: Dict[str, Any], out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        ce = cross_entropy(out["logits"], batch["label"], self.cfg["loss"]["label_smoothing"])
        return {"ce": ce, "total": ce}


def _defaults_with(model_name: str, mean, std) -> Dict[str, Any]:
    defaults = copy.deepcopy(TimmCnnDetector.DEFAULTS)
    defaults["backbone"]["model_name"] = model_name
    defaults["mean"], defaults["std"] = list(mean), list(std)
    return defaults


@DETECTORS.register("xception")
class XceptionDetector(TimmCnnDetector):
    """DeepfakeBench's Xception: timm ``legacy_xception`` (the Cadene port), [0.5]*3 normalisation."""

    DEFAULTS = _defaults_with("legacy_xception", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    DEEPFAKEBENCH_NETWORK = "xception"


PADDINGS = ("deepfakebench", "timm")


@DETECTORS.register("efficientnet_b4")
class EfficientNetB4Detector(TimmCnnDetector):
    """DeepfakeBench's EfficientNet-B4 (efficientnet_pytorch's, as its networks/efficientnetb4.py
    builds it): timm ``tf_efficientnet_b4`` (TF channel plan, BatchNorm eps 1e-3) with
    ``padding: deepfakebench`` (an unpadded stem, TF-same pads fixed for a 380 px input)
    and its [0.5]*3 normalisation. ``padding: timm`` keeps timm's own padding."""

    DEFAULTS = {**_defaults_with("tf_efficientnet_b4", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                "padding": "deepfakebench"}
    # TensorFlow's AutoAugment ImageNet checkpoint, the release efficientnet_pytorch converts
    # (timm's default tag for this model is the JFT Noisy Student one).
    DEFAULTS["backbone"]["pretrained"] = "aa_in1k"
    DEEPFAKEBENCH_NETWORK = "efficientnet_b4"

    def _adapt_backbone(self, model: nn.Module) -> None:
        if self.cfg["padding"] not in PADDINGS:
            raise ConfigError(f"model.padding '{self.cfg['padding']}' is not one of {', '.join(PADDINGS)}.")
        if self.cfg["padding"] == "deepfakebench":
            if not hasattr(model, "conv_stem") or not hasattr(model, "blocks"):
                raise ConfigError(f"model.padding 'deepfakebench' needs an EfficientNet (conv_stem and blocks); "
                                 f"{self.cfg['backbone']['model_name']} has neither. Set model.padding: timm.")
            deepfakebench_compat.use_deepfakebench_padding(model)
