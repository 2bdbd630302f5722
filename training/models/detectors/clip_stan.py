"""CLIP-STAN: a spatial-temporal branch on the last K blocks of a ViT tower (CLIP by default).

STAN (Liu et al., CVPR 2023, "Revisiting Temporal Modeling for CLIP-based
Image-to-Video Knowledge Transferring") as ported to deepfake detection by the
ToExperienceMore thesis, with the port's errors fixed (docs/TEMPORAL.md):

* Input ``(B, T, 3, H, W)``; the T frames go through the CLIP tower as B·T images.
* Branch layer j (j = 0..K-1) belongs to CLIP block ``s + j`` with ``s = L - K``:
  temporal attention per patch across the T frames (pre-LN, residual,
  zero-initialised output projection, learned time embedding), then a
  spatial block **copied from CLIP block s + j** (the public port left these
  random and frozen).
* Residual inputs from CLIP: branch layer j reads ``½(branch + CLIP tokens)``
  where the CLIP tokens are the input of block s + j (the output of block
  s + j - 1); layer 0 reads the CLIP tokens alone. Upstream *adds* the output
  of block s + j, i.e. feeds a copy of block s + j with features that already
  went through it, at twice the scale; averaging the input of the same block
  keeps the copied block on the features it was trained for.
* Token layout: frame-major ``(B·T, P+N, D)`` for the spatial blocks,
  patch-major ``(B·N, T, D)`` for temporal attention (modules/temporal.py). The
  P prefix tokens (CLS, registers) stay per frame (upstream shares one CLS across
  the clip's frames) and take part in spatial attention only.
* Fusion: per frame ``pool(final_norm(½(CLIP tokens + branch tokens)))`` with the
  tower's norm and pooling (CLIP: ``ln_post`` and the CLS token), mean over the T
  frames, L2 normalisation (``normalize_feature``), then the same head as the
  CLIP detector. Any tower works (docs/ARCHITECTURE.md); the blocks run through
  ``tower.run_block``, so per-block context (rotary embeddings) reaches the copies too.

Why these choices: at initialisation every temporal layer is the identity and
every branch block computes what its CLIP block computes, so the branch
reproduces the CLIP stream token for token and CLIP-STAN's output equals the
**frame-averaged CLIP detector**: ``head(normalize(mean_t ln_post(CLS_t)))``,
the CLIP detector applied to the mean over the clip of its per-frame
(pre-normalisation) features (tests/models/test_clip_stan.py checks this to
1e-5). Training starts from the frame model and can only add temporal
evidence. This is feature averaging, not the mean of per-frame probabilities
that the frame model's video score uses.

Trainable parts: ``tuning`` for the CLIP tower (``ln``: its LayerNorms,
``full``, ``frozen``); ``branch_trainable``: ``all`` trains the whole branch,
``temporal_only`` trains the temporal layers and time embedding and tunes the
copied spatial blocks like the tower they came from. The head always trains.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from training.errors import ConfigError
from training.losses.classification import cross_entropy
from training.losses.hypersphere import hypersphere_terms
from training.models.detectors.base import PREPROCESSING_DEFAULTS, PretrainedTowerDetector
from training.models.input_spec import InputSpec
from training.models.modules.heads import build_head
from training.models.modules.temporal import (TemporalAttention, frames_to_patch_sequences,
                                              patch_sequences_to_frames)
from training.registry import DETECTORS

TOWER_TUNING = ("ln", "full", "frozen")
BRANCH_TRAINABLE = ("all", "temporal_only")


class StanLayer(nn.Module):
    """One branch layer: temporal attention per patch, then a spatial (tower) block per frame."""

    def __init__(self, spatial_block: nn.Module, width: int, heads: int, drop_path: float):
        super().__init__()
        self.temporal = TemporalAttention(width, heads, drop_path)
        self.spatial = spatial_block

    def forward(self, tokens: torch.Tensor, frames: int, time_embed: torch.Tensor, num_prefix_tokens: int,
                run_spatial: Callable[[torch.Tensor, nn.Module], torch.Tensor]) -> torch.Tensor:
        """``tokens``: frame-major ``(B·T, P+N, D)``; returns the same layout. ``run_spatial(tokens,
        block)`` runs the spatial block as the tower runs its own (``tower.run_block``)."""
        prefix, patches = tokens[:, :num_prefix_tokens], tokens[:, num_prefix_tokens:]
        sequences = self.temporal(frames_to_patch_sequences(patches, frames), time_embed)
        patches = patch_sequences_to_frames(sequences, patches.shape[1])
        return run_spatial(torch.cat([prefix, patches], dim=1), self.spatial)


def _tune(module: nn.Module, mode: str, norms: List[nn.Module]) -> None:
    """requires_grad for a tower or a copied block: all (full), its LayerNorms ``norms`` only (ln)
    or nothing (frozen)."""
    module.requires_grad_(mode == "full")
    if mode == "ln":
        for norm in norms:
            norm.requires_grad_(True)


def _norms_of_copy(original: nn.Module, copy_: nn.Module, tower_norms: List[nn.Module]) -> List[nn.Module]:
    """The modules of ``copy_`` (a deep copy of ``original``) at the places of the tower's LayerNorms."""
    ids = {id(m) for m in tower_norms}
    return [copy_.get_submodule(name) for name, sub in original.named_modules() if id(sub) in ids]


@DETECTORS.register("clip_stan")
class ClipStanDetector(PretrainedTowerDetector):
    DEFAULTS: Dict[str, Any] = {
        # The vision tower (every key: backbones/tower.py, docs/ARCHITECTURE.md).
        "backbone": {"tower": "open_clip", "arch": "ViT-B-16", "pretrained": "openai"},
        "frames": 8,  # T: frames per clip (the data layer builds clips of this length)
        "branch_depth": 4,  # K: the branch runs along the last K CLIP blocks
        "tuning": "ln",  # CLIP tower: ln (its LayerNorms) | full | frozen
        "branch_trainable": "all",  # all | temporal_only (spatial blocks tuned like the tower)
        "drop_path": 0.0,  # max DropPath rate on the temporal residuals, linear over the branch layers
        "grad_checkpointing": False,  # recompute block activations in backward (saves memory)
        "head": "linear",  # linear | ln_mlp (same head module as the CLIP detector)
        "head_hidden": 512,
        "normalize_feature": True,
        **PREPROCESSING_DEFAULTS,  # null: the tower's own (input_spec)
        "loss": {"ce": 1.0, "label_smoothing": 0.0, "alignment": 0.0, "alignment_alpha": 2.0,
                 "uniformity": 0.0, "uniformity_t": 2.0},
    }

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self._check_config(cfg)
        self.backbone = self._build_backbone(cfg["backbone"])
        n_blocks = len(self.backbone.blocks)
        depth = int(cfg["branch_depth"])
        if not 1 <= depth <= n_blocks:
            raise ConfigError(f"model.branch_depth = {depth}, but the CLIP tower has {n_blocks} blocks; "
                             f"choose 1..{n_blocks}.")
        self.frames = int(cfg["frames"])
        self.first_branch_block = n_blocks - depth
        width = self.backbone.width
        heads = self.backbone.num_heads
        rates = np.linspace(0.0, float(cfg["drop_path"]), depth).tolist()  # deeper layers drop more (STAN)
        # The spatial blocks start as copies of the (pretrained) CLIP blocks they run beside.
        self.branch = nn.ModuleList(
            StanLayer(copy.deepcopy(self.backbone.blocks[self.first_branch_block + j]), width, heads, rates[j])
            for j in range(depth))
        self.time_embed = nn.Parameter(torch.empty(self.frames, width))
        nn.init.normal_(self.time_embed, std=0.02)
        self.head = build_head(cfg["head"], width, 2, cfg["head_hidden"])
        self._set_trainable()
        self._input_spec = self._tower_input_spec(cfg, frames_per_sample=self.frames)

    @staticmethod
    def _check_config(cfg: Dict[str, Any]) -> None:
        if cfg["tuning"] not in TOWER_TUNING:
            raise ConfigError(f"model.tuning '{cfg['tuning']}' is not one of {', '.join(TOWER_TUNING)}.")
        if cfg["branch_trainable"] not in BRANCH_TRAINABLE:
            raise ConfigError(f"model.branch_trainable '{cfg['branch_trainable']}' is not one of "
                             f"{', '.join(BRANCH_TRAINABLE)}.")
        if int(cfg["frames"]) < 2:
            raise ConfigError(f"model.frames = {cfg['frames']}: a clip needs at least 2 frames "
                             f"(use the 'clip' detector for single frames).")
        if not 0.0 <= float(cfg["drop_path"]) < 1.0:
            raise ConfigError(f"model.drop_path = {cfg['drop_path']} must be in [0, 1).")

    def _set_trainable(self) -> None:
        tower_norms = self.backbone.layernorms()
        _tune(self.backbone, self.cfg["tuning"], tower_norms)
        spatial_mode = "full" if self.cfg["branch_trainable"] == "all" else self.cfg["tuning"]
        for j, layer in enumerate(self.branch):
            original = self.backbone.blocks[self.first_branch_block + j]
            _tune(layer.spatial, spatial_mode, _norms_of_copy(original, layer.spatial, tower_norms))
            layer.temporal.requires_grad_(True)
        self.time_embed.requires_grad_(True)
        self.head.requires_grad_(True)

    @property
    def input_spec(self) -> InputSpec:
        return self._input_spec

    def parameter_report(self) -> Dict[str, Dict[str, int]]:
        """Trainable/total parameters per part (CLIP tower, temporal, spatial branch, head)."""
        parts = {"tower": list(self.backbone.parameters()),
                 "temporal": [self.time_embed] + [p for layer in self.branch for p in layer.temporal.parameters()],
                 "spatial": [p for layer in self.branch for p in layer.spatial.parameters()],
                 "head": list(self.head.parameters())}
        return {name: {"trainable": sum(p.numel() for p in params if p.requires_grad),
                       "total": sum(p.numel() for p in params)} for name, params in parts.items()}

    # -- forward ---------------------------------------------------------------------

    def _run(self, module: nn.Module, *args) -> torch.Tensor:
        if self.cfg["grad_checkpointing"] and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _frames_of(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 5 or images.shape[1] != self.frames:
            raise ValueError(
                f"clip_stan expects batch['image'] of shape (B, T={self.frames}, 3, H, W), got "
                f"{tuple(images.shape)}. The data layer builds clips of input_spec.frames_per_sample = "
                f"model.frames frames; check model.frames and that the loader was built for this detector.")
        batch, frames = images.shape[:2]
        # (B, T, 3, H, W) -> (B·T, 3, H, W): frame-major, row b·T + t is frame t of clip b.
        return images.reshape(batch * frames, *images.shape[2:])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Clip feature ``mean_t pool(final_norm(½(tower tokens_t + branch tokens_t)))`` before L2
        normalisation, with the tower's final norm and pooling (CLIP: ln_post, CLS token)."""
        batch = images.shape[0]
        frames = self._frames_of(images)
        tower = self.backbone
        tower_trains = any(p.requires_grad for p in tower.parameters())
        # A frozen tower needs no autograd graph: only the branch and head get gradients.
        tower_grad = torch.is_grad_enabled() and tower_trains
        with torch.set_grad_enabled(tower_grad):
            tokens = tower.embed(frames)
            for index in range(self.first_branch_block):
                tokens = self._run(tower.run_block, tokens, index)
        branch = None
        for j, layer in enumerate(self.branch):
            index = self.first_branch_block + j

            def run_spatial(spatial_in: torch.Tensor, block: nn.Module, index: int = index) -> torch.Tensor:
                return tower.run_block(spatial_in, index, block=block)  # a copy of block `index`

            # The tower tokens entering block s+j feed branch layer j (averaged with the branch).
            branch_in = tokens if branch is None else 0.5 * (branch + tokens)
            branch = self._run(layer, branch_in, self.frames, self.time_embed, tower.num_prefix_tokens, run_spatial)
            with torch.set_grad_enabled(tower_grad):
                tokens = self._run(tower.run_block, tokens, index)
        fused = tower.pooled(tower.final_norm(0.5 * (tokens + branch)))  # (B·T, D)
        return fused.reshape(batch, self.frames, -1).mean(dim=1)

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        feat = self.encode(batch["image"])
        if self.cfg["normalize_feature"]:
            feat = F.normalize(feat, dim=-1)
        logits = self.head(feat)
        prob = torch.softmax(logits.float(), dim=-1)[:, 1]
        return {"logits": logits, "prob": prob, "feat": feat}

    def losses(self, batch: Dict[str, Any], out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """CE (+ optional alignment/uniformity on the clip features), as for the CLIP detector."""
        weights = self.cfg["loss"]
        labels = batch["label"]
        parts = {"ce": cross_entropy(out["logits"], labels, weights["label_smoothing"])}
        sphere, sphere_total = hypersphere_terms(out["feat"], labels, weights)
        return {**parts, **sphere, "total": weights["ce"] * parts["ce"] + sphere_total}

    # -- checkpoints -----------------------------------------------------------------

    def _is_compact(self) -> bool:
        # Everything frozen is then the pretrained tower or a copy of its blocks: rebuilt from the config.
        return self.cfg["tuning"] in ("ln", "frozen") and bool(self.cfg["backbone"]["pretrained"])
