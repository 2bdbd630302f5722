"""CLIP ViT detector with LayerNorm tuning (LN-CLIP, arXiv 2503.19683; GenD recipe).

Feature = CLS token after the vision tower's final LayerNorm, before the
projection; L2-normalised; one linear layer (no scale) → 2 logits. With
``tuning: ln`` only the weight and bias of every LayerNorm of the tower (ln_pre,
ln_1/ln_2 of each block, ln_post) and the head train: 41,474 parameters for
ViT-B/16 and 104,450 for ViT-L/14, as in the reference code.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn.functional as F

from training.losses.classification import cross_entropy
from training.losses.hypersphere import alignment_loss, uniformity_loss
from training.models.backbones.open_clip_vit import OpenClipVisionBackbone
from training.models.detectors.base import Detector
from training.models.input_spec import CLIP_MEAN, CLIP_STD, InputSpec
from training.models.modules.heads import build_head
from training.models.modules.slerp import slerp_same_class
from training.registry import DETECTORS

TUNING_MODES = ("ln", "full", "linear_probe")


@DETECTORS.register("clip")
class ClipDetector(Detector):
    DEFAULTS: Dict[str, Any] = {
        "backbone": {
            "arch": "ViT-B-16",  # any open_clip ViT name, or "custom" with vision_cfg
            "pretrained": "openai",  # open_clip tag, local file, or null (random init)
            "vision_cfg": None,  # overrides of open_clip's vision config (custom sizes)
            "quick_gelu": None,  # null: as the pretrained weights were trained
            "weights_dir": "weights",  # where <arch>/<tag>/open_clip_model.safetensors is looked for
            "allow_download": False,
        },
        "tuning": "ln",  # ln: LayerNorms + head | full | linear_probe (head only)
        "head": "linear",  # linear | ln_mlp
        "head_hidden": 512,
        "normalize_feature": True,
        "resize_mode": "resize_center_crop",
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "loss": {"ce": 1.0, "label_smoothing": 0.0, "alignment": 0.0, "alignment_alpha": 2.0,
                 "uniformity": 0.0, "uniformity_t": 2.0},
        "slerp": {"enabled": False, "range": [0.0, 1.0]},
    }

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        if cfg["tuning"] not in TUNING_MODES:
            raise ValueError(f"model.tuning '{cfg['tuning']}' is not one of {', '.join(TUNING_MODES)}.")
        backbone_cfg = cfg["backbone"]
        self.backbone = OpenClipVisionBackbone(
            arch=backbone_cfg["arch"], pretrained=backbone_cfg["pretrained"],
            vision_cfg=backbone_cfg["vision_cfg"], quick_gelu=backbone_cfg["quick_gelu"],
            weights_dir=backbone_cfg["weights_dir"], allow_download=backbone_cfg["allow_download"])
        self.head = build_head(cfg["head"], self.backbone.width, 2, cfg["head_hidden"])
        self._apply_tuning_mode(cfg["tuning"])
        self._input_spec = InputSpec(resolution=self.backbone.image_size, mean=tuple(cfg["mean"]),
                                     std=tuple(cfg["std"]), resize_mode=cfg["resize_mode"])

    def _apply_tuning_mode(self, mode: str) -> None:
        for param in self.backbone.parameters():
            param.requires_grad = mode == "full"
        if mode == "ln":
            for norm in self.backbone.layernorms():
                for param in norm.parameters():
                    param.requires_grad = True

    @property
    def input_spec(self) -> InputSpec:
        return self._input_spec

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """CLS feature after ln_post (before projection, before L2 normalisation)."""
        return self.backbone(images)[:, 0]

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        feat = self.encode(batch["image"])
        if self.cfg["normalize_feature"]:
            feat = F.normalize(feat, dim=-1)
        if self.training and self.cfg["slerp"]["enabled"] and "label" in batch:
            feat = slerp_same_class(feat, batch["label"], self.cfg["slerp"]["range"])
        logits = self.head(feat)
        prob = torch.softmax(logits.float(), dim=-1)[:, 1]
        return {"logits": logits, "prob": prob, "feat": feat}

    def losses(self, batch: Dict[str, Any], out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        weights = self.cfg["loss"]
        labels = batch["label"]
        parts = {"ce": cross_entropy(out["logits"], labels, weights["label_smoothing"])}
        # Alignment/uniformity are always computed so they can be monitored (as in the reference).
        with torch.set_grad_enabled(torch.is_grad_enabled() and weights["alignment"] > 0):
            parts["alignment"] = alignment_loss(out["feat"], labels, weights["alignment_alpha"])
        with torch.set_grad_enabled(torch.is_grad_enabled() and weights["uniformity"] > 0):
            parts["uniformity"] = uniformity_loss(out["feat"], weights["uniformity_t"])
        parts["total"] = (weights["ce"] * parts["ce"] + weights["alignment"] * parts["alignment"]
                          + weights["uniformity"] * parts["uniformity"])
        return parts

    # -- checkpoints -----------------------------------------------------------------
    def _is_compact(self) -> bool:
        return self.cfg["tuning"] in ("ln", "linear_probe") and bool(self.cfg["backbone"]["pretrained"])

    def checkpoint_state(self) -> Dict[str, Any]:
        """LN-tuned pretrained models store only what changed (LN params + head) plus
        the backbone's identity and a hash of its frozen weights; the rest is full."""
        if not self._is_compact():
            return super().checkpoint_state()
        trainable = {name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad}
        backbone = self.cfg["backbone"]
        return {"format": "compact", "state_dict": trainable,
                "backbone": {"arch": backbone["arch"], "pretrained": str(backbone["pretrained"]),
                             "frozen_weights_sha256": self.backbone.frozen_weights_hash()}}

    def load_checkpoint_state(self, state: Dict[str, Any], source: str = "checkpoint") -> None:
        if state.get("format") != "compact":
            return super().load_checkpoint_state(state, source)
        from training.engine.checkpoint import CheckpointError, load_state_dict_checked

        expected = state["backbone"]["frozen_weights_sha256"]
        actual = self.backbone.frozen_weights_hash()
        if expected != actual:
            raise CheckpointError(
                f"{source} is a compact checkpoint for backbone {state['backbone']['arch']} "
                f"'{state['backbone']['pretrained']}' with frozen-weight hash {expected[:16]}…, but the "
                f"backbone built from this config hashes to {actual[:16]}…. Load the same pretrained "
                f"weights the checkpoint was trained from (model.backbone.pretrained).")
        load_state_dict_checked(self, state["state_dict"], source, partial=True)
