"""The LayerNorm-tuning detector on any vision tower (LN-CLIP, arXiv 2503.19683; GenD, arXiv 2508.06248).

Registered as ``clip`` (its first tower; every config keeps working) and works on every tower
family (docs/ARCHITECTURE.md): feature = the tower's pooled feature (CLIP: CLS token after the
final LayerNorm, before the projection; PE: the attention pool; DINO: CLS after the final
norm); L2-normalised; one linear layer (no scale) → 2 logits. With ``tuning: ln`` only the
tower's LayerNorms (``tower.layernorms()``, GenD's tuned set) and the head train: 41,474
parameters for CLIP ViT-B/16, 104,450 for ViT-L/14, 106,498 for PE-Core-L/14, 102,402 for
DINOv3 ViT-L/16 and DINOv2 ViT-L/14, as in the reference code.

The framework's own modules are config switches, all off by default (then the
detector is exactly LN-CLIP: same parameters, outputs and checkpoint keys):

* ``freq``: Freq-Adapter, FFT + DWT branches fused into chosen ViT blocks
  and/or the CLS feature (training/models/modules/frequency.py);
* ``boundary``: Boundary Mining, patch pooling weighted by high-pass/Sobel
  cues, optionally supervised by forgery-mask boundaries (modules/boundary.py);
* ``identity``: identity discriminator behind a gradient-reversal layer
  (modules/identity.py);
* ``loss.classification: arc_margin``: additive angular margin instead of CE.

Every fusion is a zero-initialised residual, so at step 0 each variant
computes what LN-CLIP computes (docs/ABLATION.md).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import ConfigError
from training.losses.arc_margin import arc_margin_loss, cosine_logits
from training.losses.boundary import boundary_bce
from training.losses.classification import cross_entropy
from training.losses.consistency import CONSISTENCY_KINDS, prediction_consistency
from training.losses.hypersphere import hypersphere_terms
from training.losses.identity import identity_adversarial_loss
from training.models.detectors.base import PREPROCESSING_DEFAULTS, PretrainedTowerDetector
from training.models.input_spec import InputSpec
from training.models.modules.boundary import BoundaryMining, mask_boundary_target
from training.models.modules.frequency import FreqAdapter, forward_with_adapters
from training.models.modules.heads import build_head
from training.models.modules.identity import IdentityDiscriminator
from training.models.modules.slerp import slerp_same_class
from training.registry import DETECTORS

TUNING_MODES = ("ln", "full", "linear_probe")
CLASSIFICATION_LOSSES = ("ce", "arc_margin")


@DETECTORS.register("clip")
class ClipDetector(PretrainedTowerDetector):
    DEFAULTS: Dict[str, Any] = {
        # The vision tower (every key: backbones/tower.py, docs/ARCHITECTURE.md).
        "backbone": {"tower": "open_clip", "arch": "ViT-B-16", "pretrained": "openai"},
        "tuning": "ln",  # ln: LayerNorms + head | full | linear_probe (head only)
        "head": "linear",  # linear | ln_mlp
        "head_hidden": 512,
        "normalize_feature": True,
        **PREPROCESSING_DEFAULTS,  # null: the tower's own (input_spec)
        "loss": {"ce": 1.0, "label_smoothing": 0.0, "alignment": 0.0, "alignment_alpha": 2.0,
                 "uniformity": 0.0, "uniformity_t": 2.0,
                 # ce: weight of the classification loss, which is CE or ArcMargin (arc_s, arc_m)
                 "classification": "ce", "arc_s": 16.0, "arc_m": 0.3,
                 # Weights of the module losses; each applies only when its module is enabled.
                 "freq_aux": 0.5,  # CE of the frequency-only head (freq.enabled)
                 "freq_consistency": 0.1,  # frequency head vs main prediction (freq.enabled)
                 "consistency": "sym_kl",  # sym_kl | mse
                 "boundary": 0.5,  # boundary map vs mask boundary (boundary.mask_supervision)
                 "identity": 0.1},  # adversarial identity CE (identity.enabled)
        "slerp": {"enabled": False, "range": [0.0, 1.0]},
        "freq": {"enabled": False,
                 "branches": ["fft", "dwt"],
                 "channels": 32,  # width of each branch's conv stack
                 "dim": 64,  # width of the fused frequency tokens
                 "low_freq_cutoff": 0.1,  # FFT bins with radius <= this (cycles/pixel) are dropped; DC always
                 "fusion": "cls",  # cls: concat at the CLS feature | blocks: adapters in ViT blocks | both
                 "blocks": [-2],  # blocks (negative: from the end) followed by an adapter (fusion blocks/both)
                 "adapter_dim": 16,  # adapter bottleneck width
                 "fusion_rank": 64},  # rank of the CLS fusion projection (null: full rank)
        "boundary": {"enabled": False,
                     "blur_sigma": 1.0,  # Gaussian blur of the high-pass residual
                     "hidden": 8,  # width of the conv scorer
                     "mask_supervision": False,  # supervise the weight map with mask boundaries (needs masks)
                     "boundary_width": 3,  # morphological-gradient kernel in pixels (odd)
                     "fusion_rank": 64},  # rank of the CLS fusion projection (null: full rank)
        "identity": {"enabled": False,
                     "num_identities": None,  # null: training/train.py sets it from the data's identity index
                     "hidden": 256,
                     "grl_gamma": 10.0,  # DANN schedule: λ = grl_max · (2 / (1 + exp(−γ p)) − 1)
                     "grl_max": 1.0},
    }

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        if cfg["tuning"] not in TUNING_MODES:
            raise ConfigError(f"model.tuning '{cfg['tuning']}' is not one of {', '.join(TUNING_MODES)}.")
        self.backbone = self._build_backbone(cfg["backbone"])
        self.head = build_head(cfg["head"], self.backbone.width, 2, cfg["head_hidden"])
        self._apply_tuning_mode(cfg["tuning"])
        self._check_loss_config(cfg)
        if cfg["loss"]["classification"] == "arc_margin":
            # Cosine logits have no bias: fix it at 0 so it neither trains nor counts as trainable.
            nn.init.zeros_(self.head.bias)
            self.head.bias.requires_grad = False
        # The optional modules are registered after the backbone and head, so with
        # every switch off the state dict (keys and order) is exactly LN-CLIP's.
        self.freq = self._build_freq(cfg) if cfg["freq"]["enabled"] else None
        self.boundary = self._build_boundary(cfg) if cfg["boundary"]["enabled"] else None
        self.identity = self._build_identity(cfg) if cfg["identity"]["enabled"] else None
        self._input_spec = self._tower_input_spec(cfg, with_mask=self._wants_masks())

    # -- optional modules ------------------------------------------------------------
    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size

    def _check_loss_config(self, cfg: Dict[str, Any]) -> None:
        loss = cfg["loss"]
        if loss["classification"] not in CLASSIFICATION_LOSSES:
            raise ConfigError(f"model.loss.classification '{loss['classification']}' is not one of "
                             f"{', '.join(CLASSIFICATION_LOSSES)}.")
        if loss["consistency"] not in CONSISTENCY_KINDS:
            raise ConfigError(f"model.loss.consistency '{loss['consistency']}' is not one of "
                             f"{', '.join(CONSISTENCY_KINDS)}.")
        if loss["classification"] == "arc_margin" and cfg["head"] != "linear":
            raise ConfigError("model.loss.classification: arc_margin needs model.head: linear "
                             "(its rows are the class centres on the hypersphere).")

    def _build_freq(self, cfg: Dict[str, Any]) -> FreqAdapter:
        freq, loss = cfg["freq"], cfg["loss"]
        return FreqAdapter(
            width=self.backbone.width, patch_size=self.patch_size, num_layers=len(self.backbone.blocks),
            branches=freq["branches"], channels=freq["channels"], dim=freq["dim"],
            low_freq_cutoff=freq["low_freq_cutoff"], fusion=freq["fusion"], blocks=freq["blocks"],
            adapter_dim=freq["adapter_dim"], fusion_rank=freq["fusion_rank"],
            aux_head=loss["freq_aux"] > 0 or loss["freq_consistency"] > 0)

    def _build_boundary(self, cfg: Dict[str, Any]) -> BoundaryMining:
        boundary = cfg["boundary"]
        return BoundaryMining(self.backbone.width, self.patch_size, boundary["blur_sigma"], boundary["hidden"],
                              boundary["fusion_rank"])

    def _build_identity(self, cfg: Dict[str, Any]) -> IdentityDiscriminator:
        identity = cfg["identity"]
        if identity["num_identities"] is None:
            raise ConfigError("model.identity.num_identities is null: training/train.py fills it in from the "
                             "training data's identity index (data.identity_labels: true); when building the "
                             "detector elsewhere, set it to the number of training identities.")
        return IdentityDiscriminator(self.backbone.width, int(identity["num_identities"]), identity["hidden"],
                                     identity["grl_gamma"], identity["grl_max"])

    def _wants_masks(self) -> bool:
        return self.boundary is not None and bool(self.cfg["boundary"]["mask_supervision"])

    def parameter_report(self) -> Dict[str, Dict[str, int]]:
        """{backbone, head, freq, boundary, identity (those built)}: total and trainable parameters."""
        return {name: {"total": sum(p.numel() for p in child.parameters()),
                       "trainable": sum(p.numel() for p in child.parameters() if p.requires_grad)}
                for name, child in self.named_children()}

    def set_training_progress(self, progress: float) -> None:
        if self.identity is not None:
            self.identity.set_progress(progress)

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
        """The tower's feature (CLIP: CLS after ln_post, before projection), before L2 normalisation."""
        return self.backbone.feature(images)

    def encode_with_modules(self, images: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The tower's pooled feature with the enabled Freq-Adapter / Boundary Mining fused in
        (before L2 normalisation), and the modules' auxiliary outputs."""
        extras: Dict[str, torch.Tensor] = {}
        freq_tokens = self.freq.tokens(images) if self.freq is not None else None
        if freq_tokens is not None and len(self.freq.adapters):
            tokens = forward_with_adapters(self.backbone, images, self.freq, freq_tokens)
        else:
            tokens = self.backbone(images)
        feat = self.backbone.pooled(tokens)
        if freq_tokens is not None:
            feat = self.freq.fuse_cls(feat, freq_tokens)
            freq_logits = self.freq.predict(freq_tokens)
            if freq_logits is not None:
                extras["freq_logits"] = freq_logits
        if self.boundary is not None:
            feat, extras["boundary_logits"] = self.boundary(feat, self.backbone.patch_tokens(tokens), images)
        return feat, extras

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        if self.freq is None and self.boundary is None:
            feat, extras = self.encode(batch["image"]), {}
        else:
            feat, extras = self.encode_with_modules(batch["image"])
        if self.cfg["normalize_feature"]:
            feat = F.normalize(feat, dim=-1)
        if self.identity is not None:
            # Before slerp: an interpolated feature has no single identity.
            extras["identity_logits"] = self.identity(feat)
        if self.training and self.cfg["slerp"]["enabled"] and "label" in batch:
            feat = slerp_same_class(feat, batch["label"], self.cfg["slerp"]["range"])
        if self.cfg["loss"]["classification"] == "arc_margin":
            extras["cosine"] = cosine_logits(feat, self.head.weight)
            logits = self.cfg["loss"]["arc_s"] * extras["cosine"]
        else:
            logits = self.head(feat)
        prob = torch.softmax(logits.float(), dim=-1)[:, 1]
        return {"logits": logits, "prob": prob, "feat": feat, **extras}

    def losses(self, batch: Dict[str, Any], out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        weights = self.cfg["loss"]
        labels = batch["label"]
        if weights["classification"] == "arc_margin":
            parts = {"arc_margin": arc_margin_loss(out["cosine"], labels, weights["arc_s"], weights["arc_m"],
                                                   weights["label_smoothing"])}
            classification = parts["arc_margin"]
        else:
            parts = {"ce": cross_entropy(out["logits"], labels, weights["label_smoothing"])}
            classification = parts["ce"]
        sphere, sphere_total = hypersphere_terms(out["feat"], labels, weights)
        parts.update(sphere)
        total = weights["ce"] * classification + sphere_total
        for name, (loss, weight) in self._module_losses(batch, out).items():
            if weight:  # only parts that count are reported (and logged)
                parts[name] = loss
            # even at weight 0 the term stays in the graph: DDP expects a gradient for every enabled module
            total = total + weight * loss
        parts["total"] = total
        return parts

    def _module_losses(self, batch: Dict[str, Any], out: Dict[str, torch.Tensor]) -> Dict[str, Tuple]:
        """{name: (loss, weight)} of the enabled modules."""
        weights, labels = self.cfg["loss"], batch["label"]
        losses: Dict[str, Tuple] = {}
        if "freq_logits" in out:
            losses["freq_ce"] = (cross_entropy(out["freq_logits"], labels), weights["freq_aux"])
            losses["freq_consistency"] = (prediction_consistency(out["logits"], out["freq_logits"],
                                                                 weights["consistency"]),
                                          weights["freq_consistency"])
        if self._wants_masks():
            if batch.get("mask") is None:
                raise KeyError("model.boundary.mask_supervision needs forgery masks in the batch ('mask'); the "
                               "training loaders add them when the detector's input_spec.with_mask is set. "
                               "Check that the training datasets list masks for their fake videos.")
            target = mask_boundary_target(batch["mask"], self.patch_size, self.cfg["boundary"]["boundary_width"])
            losses["boundary"] = (boundary_bce(out["boundary_logits"], target), weights["boundary"])
        if self.identity is not None:
            if batch.get("identity") is None:
                raise KeyError("model.identity.enabled needs identity ids in the batch ('identity'); set "
                               "data.identity_labels: true.")
            losses["identity"] = (identity_adversarial_loss(out["identity_logits"], batch["identity"]),
                                  weights["identity"])
        return losses

    # -- checkpoints -----------------------------------------------------------------
    def _is_compact(self) -> bool:
        return self.cfg["tuning"] in ("ln", "linear_probe") and bool(self.cfg["backbone"]["pretrained"])
