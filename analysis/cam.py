"""Where a detector looks: Grad-CAM (CNNs and ViTs) and attention rollout (ViTs) on face crops.

    python -m analysis.cam --run runs/<run> [--dataset DemoCDF] [--num_images 8] [--method auto]
        [--checkpoint best] [--target_layer NAME] [--out cam.png]

* **Grad-CAM** (Selvaraju et al., 2017) of the fake-vs-real log-odds
  ``logit_fake - logit_real``: the target layer's activations weighted by
  their mean gradient, ReLU, upsampled. Target layer: for a ViT the *input*
  of the last transformer block (patch tokens; prefix tokens such as CLS
  dropped) -- the block's output patch tokens get no gradient when the head
  reads the CLS token only, so they would give an empty map; for a CNN (e.g.
  a timm model) the last module whose output is a spatial map;
  ``--target_layer`` names another module (``detector.named_modules()``),
  whose output is used.
* **Attention rollout** (Abnar & Zuidema, 2020): head-averaged attention of
  every block plus the identity (residual), row-normalised and multiplied
  through the layers; the CLS token's row over the patches. Captured with
  hooks on open_clip attention (``PackedSelfAttention`` /
  ``nn.MultiheadAttention``: the weights are recomputed from the block input)
  and on timm ``Attention`` (its unfused path is used while capturing).

``--method auto`` = Grad-CAM and rollout for ViTs, Grad-CAM for CNNs. The
images are the model inputs (after the detector's resize), so heatmaps align
exactly. Samples are taken from the dataset's *test* split, alternating real
and fake videos and spreading over manipulation methods. Default output:
``<run>/plots/cam.png``.
"""
from __future__ import annotations

import argparse
import sys
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.plotting import PLOTS_DIR, new_figure, save_png
from training.cli import cli_parser, run_cli
from training.engine.run_dir import RunDir

METHODS = ("auto", "gradcam", "rollout", "both")


# ------------------------------------------------------------------- model pieces

def fake_score(out) -> torch.Tensor:
    """Per-sample scalar to explain: logit_fake - logit_real (or the single logit)."""
    logits = out["logits"] if isinstance(out, dict) else out
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    return logits.reshape(len(logits), -1)[:, -1]


def attention_modules(model: nn.Module) -> List[nn.Module]:
    """Self-attention modules, in forward order (open_clip/torch MHA, packed, timm)."""
    from training.models.backbones.fast_attention import PackedSelfAttention

    found = []
    for module in model.modules():
        if isinstance(module, (PackedSelfAttention, nn.MultiheadAttention)):
            found.append(module)
        elif hasattr(module, "qkv") and hasattr(module, "attn_drop") and hasattr(module, "fused_attn"):
            found.append(module)  # timm Attention
    return found


def is_vit(model: nn.Module) -> bool:
    return bool(attention_modules(model))


def last_block(model: nn.Module) -> Tuple[str, nn.Module]:
    """The module whose output is the last block's tokens: the parent of the last attention."""
    attention = attention_modules(model)[-1]
    for name, module in model.named_modules():
        if any(child is attention for child in module.children()):
            return name, module
    raise ValueError("cannot find the transformer block holding the last attention module; pass --target_layer")


def last_spatial_module(model: nn.Module, forward: Callable[[], object]) -> Tuple[str, nn.Module]:
    """The module that finished last with a (B, C, h, w) output, h*w > 1 (a CNN's last stage)."""
    finished: List[str] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_module, _inputs, output, name=name):
            if torch.is_tensor(output) and output.ndim == 4 and output.shape[-1] * output.shape[-2] > 1:
                finished.append(name)
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward()
    finally:
        for handle in handles:
            handle.remove()
    if not finished:
        raise ValueError("no module of the detector outputs a spatial (B, C, h, w) map; pass --target_layer")
    modules = dict(model.named_modules())
    return finished[-1], modules[finished[-1]]


def _token_grid(length: int) -> Tuple[int, int]:
    """(number of prefix tokens, grid side) for ``length`` tokens = prefix + side^2."""
    for prefix in range(0, 9):
        side = math.isqrt(length - prefix) if length > prefix else 0
        if side > 0 and side * side == length - prefix:
            return prefix, side
    raise ValueError(f"cannot split {length} tokens into prefix tokens and a square patch grid")


def _as_spatial(activation: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) from a CNN map or (B, L, D) ViT tokens (prefix tokens dropped)."""
    if activation.ndim == 4:
        return activation
    if activation.ndim == 3:
        prefix, side = _token_grid(activation.shape[1])
        patches = activation[:, prefix:]
        return patches.transpose(1, 2).reshape(len(activation), -1, side, side)
    raise ValueError(f"target layer output has shape {tuple(activation.shape)}; expected (B, C, h, w) or (B, L, D)")


def _normalise_maps(maps: torch.Tensor, size: Tuple[int, int]) -> np.ndarray:
    maps = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return ((maps - low) / (high - low).clamp_min(1e-12)).detach().cpu().numpy()


# ------------------------------------------------------------------------ methods

def gradcam(model: nn.Module, images: torch.Tensor, target_layer: Optional[str] = None,
            forward: Optional[Callable[[torch.Tensor], object]] = None) -> np.ndarray:
    """(B, H, W) Grad-CAM maps in [0, 1] of ``fake_score`` at ``target_layer``.

    ``forward(images)`` runs the model (default ``model({"image": images})``, the detector interface)."""
    forward = forward or (lambda x: model({"image": x}))
    modules = dict(model.named_modules())
    use_input = False
    if target_layer is not None:
        if target_layer not in modules:
            raise ValueError(f"--target_layer {target_layer!r} is not a module of the detector; e.g. "
                             f"{', '.join(list(modules)[1:6])} ...")
        layer = modules[target_layer]
    elif is_vit(model):
        _, layer = last_block(model)
        use_input = True
    else:
        _, layer = last_spatial_module(model, lambda: forward(images[:1]))

    captured: Dict[str, torch.Tensor] = {}

    def keep(tensor: torch.Tensor) -> None:
        captured["activation"] = tensor
        tensor.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    if use_input:
        handle = layer.register_forward_pre_hook(lambda _module, args: keep(args[0]))
    else:
        handle = layer.register_forward_hook(
            lambda _module, _inputs, output: keep(output[0] if isinstance(output, tuple) else output))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # Inputs require grad so the graph exists even when every weight is frozen.
            inputs = images.detach().clone().requires_grad_(True)
            score = fake_score(forward(inputs))
            model.zero_grad(set_to_none=True)
            score.sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
    if "gradient" not in captured:
        raise RuntimeError("the target layer's output did not reach the score; choose another --target_layer")
    activation, gradient = _as_spatial(captured["activation"]), _as_spatial(captured["gradient"])
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1))
    model.zero_grad(set_to_none=True)
    return _normalise_maps(cam, tuple(images.shape[-2:]))


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[List[torch.Tensor]]:
    """Collect head-averaged attention weights (B, L, L) of every block during a forward pass."""
    from training.models.backbones.fast_attention import PackedSelfAttention

    weights: List[torch.Tensor] = []
    handles, unfused = [], []

    def packed_hook(module, args, kwargs):
        # Recompute softmax(q k^T / sqrt(d)) from the block input: the fast path never forms it.
        query = args[0] if args else kwargs["query"]
        if isinstance(module, nn.MultiheadAttention) and not module.batch_first:
            query = query.transpose(0, 1)
        batch, length, dim = query.shape
        heads = module.num_heads
        qkv = F.linear(query, module.in_proj_weight, module.in_proj_bias)
        q, k, _ = qkv.view(batch, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // heads), dim=-1)
        weights.append(attention.mean(1).detach())

    def timm_hook(_module, inputs, _output):
        weights.append(inputs[0].mean(1).detach())

    for module in attention_modules(model):
        if isinstance(module, (PackedSelfAttention, nn.MultiheadAttention)):
            handles.append(module.register_forward_pre_hook(packed_hook, with_kwargs=True))
        else:
            unfused.append((module, module.fused_attn))
            module.fused_attn = False  # the unfused path materialises the weights (input of attn_drop)
            handles.append(module.attn_drop.register_forward_hook(timm_hook))
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()
        for module, fused in unfused:
            module.fused_attn = fused


def attention_rollout(model: nn.Module, images: torch.Tensor,
                      forward: Optional[Callable[[torch.Tensor], object]] = None) -> np.ndarray:
    """(B, H, W) attention-rollout maps in [0, 1] (CLS token's row over the patch grid)."""
    if not is_vit(model):
        raise ValueError("attention rollout needs a transformer (no attention module found); use --method gradcam")
    forward = forward or (lambda x: model({"image": x}))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture_attention(model) as weights:
            forward(images)
    finally:
        model.train(was_training)
    if not weights:
        raise RuntimeError("no attention weights were captured during the forward pass")
    length = weights[0].shape[-1]
    rollout = torch.eye(length, device=weights[0].device).expand(len(images), length, length)
    for attention in weights:
        mixed = 0.5 * attention + 0.5 * torch.eye(length, device=attention.device)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    prefix, side = _token_grid(length)
    maps = rollout[:, 0, prefix:].reshape(len(images), side, side)
    return _normalise_maps(maps, tuple(images.shape[-2:]))


# --------------------------------------------------------------------- run + data

def load_run_detector(run_dir: Path, checkpoint: str = "best", device: str = "cpu", overrides=()):
    """(config, detector in eval mode) of a training run directory."""
    from training.config import load_config
    from training.engine.checkpoint import build_detector_with_weights

    run = RunDir(run_dir)
    config_path = run.config
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: --run must be a training run directory (runs/<run>)")
    config = load_config(config_path, list(overrides))
    checkpoint_path = Path(checkpoint) if checkpoint.endswith(".pt") else run.checkpoint(checkpoint)
    detector, config = build_detector_with_weights(config, checkpoint_path)
    return config, detector.to(device).eval()


def pick_samples(dataset, num_images: int) -> List[int]:
    """Dataset indices: one frame (the middle one) per video, alternating real and fake and
    cycling over manipulation methods, so a few images show every kind of video."""
    per_video: Dict[int, List[int]] = {}
    for index, (record_index, _) in enumerate(dataset.samples):
        per_video.setdefault(record_index, []).append(index)
    by_method: Dict[Tuple[int, str], List[int]] = {}
    for record_index, indices in per_video.items():
        record = dataset.records[record_index]
        by_method.setdefault((record.label, record.label_name), []).append(indices[len(indices) // 2])
    reals = [queue for (label, _), queue in sorted(by_method.items()) if label == 0]
    fakes = [queue for (label, _), queue in sorted(by_method.items()) if label == 1]
    chosen: List[int] = []
    turn = 0
    while len(chosen) < num_images and any(reals + fakes):
        for group in (reals, fakes):
            if len(chosen) >= num_images:
                break
            queues = [queue for queue in group if queue]
            if queues:
                chosen.append(queues[turn % len(queues)].pop(0))
        turn += 1
    return chosen


def load_images(config, detector, dataset_name: str, num_images: int):
    """(images (N, 3, H, W) normalised, samples metadata, un-normalised RGB (N, H, W, 3) in [0, 1])."""
    from training.data.datasets import collate_samples
    from training.data.loaders import build_dataset

    spec = detector.input_spec
    if spec.frames_per_sample > 1:
        raise ValueError(f"analysis.cam explains frame detectors; this one takes clips of "
                         f"{spec.frames_per_sample} frames")
    dataset = build_dataset(config, [dataset_name], "test", spec, train=False)
    batch = collate_samples([dataset[i] for i in pick_samples(dataset, num_images)])
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    pictures = (batch["image"] * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return batch, pictures


def plot_cams(pictures: np.ndarray, maps: Dict[str, np.ndarray], captions: Sequence[str], path, title: str) -> Path:
    """Rows: the face crop, then one heatmap overlay per method; one column per image."""
    n_rows, n_columns = 1 + len(maps), len(pictures)
    figure, axes = new_figure(n_columns * n_rows, max_columns=n_columns, panel_size=(2.3, 2.5))
    image = None
    for column, (picture, caption) in enumerate(zip(pictures, captions)):
        axes[0, column].imshow(picture)
        axes[0, column].set_title(caption, fontsize=8)
        for row, (method, method_maps) in enumerate(maps.items(), start=1):
            axes[row, column].imshow(picture)
            image = axes[row, column].imshow(method_maps[column], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for row in range(n_rows):
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
    for row, name in enumerate(["face crop (model input)"] + list(maps), start=0):
        axes[row, 0].set_ylabel(name, fontsize=9)
    if image is not None:
        bar = figure.colorbar(image, ax=axes[1:, :].ravel().tolist(), fraction=0.1 / max(n_columns, 2) ** 0.5,
                              pad=0.01)
        bar.set_label("relevance to P(fake) (per image, 0-1)", fontsize=8)
    figure.suptitle(title, fontsize=11)
    return save_png(figure, path, tight_bbox=True)


def explain(detector: nn.Module, images: torch.Tensor, method: str = "auto",
            target_layer: Optional[str] = None) -> Dict[str, np.ndarray]:
    """``{method name: (B, H, W) maps}`` for ``method`` in auto | gradcam | rollout | both."""
    if method not in METHODS:
        raise ValueError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    vit = is_vit(detector)
    if method == "auto":
        method = "both" if vit else "gradcam"
    maps: Dict[str, np.ndarray] = {}
    if method in ("gradcam", "both"):
        maps["Grad-CAM"] = gradcam(detector, images, target_layer)
    if method in ("rollout", "both"):
        maps["attention rollout"] = attention_rollout(detector, images)
    return maps


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--run", required=True, help="training run directory (runs/<run>)")
    parser.add_argument("--dataset", metavar="NAME", help="test dataset to draw faces from (default: the run's first test set)")
    parser.add_argument("--num_images", type=int, default=8, help="faces in the figure (half real, half fake)")
    parser.add_argument("--method", default="auto", choices=METHODS,
                        help="auto: Grad-CAM for CNNs, attention rollout for ViTs")
    parser.add_argument("--checkpoint", default="best", help="best | last | path to a .pt file")
    parser.add_argument("--target_layer", help="module name for Grad-CAM (default: chosen automatically)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (data.root=...)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--out", help="output PNG (default: <run>/plots/cam.png)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from training.config import as_list

    run = Path(args.run)
    config, detector = load_run_detector(run, args.checkpoint, args.device, args.opts)
    datasets = [str(n) for n in as_list(config["data"]["test_dataset"])]
    dataset = args.dataset or (datasets[0] if datasets else None)
    if dataset is None:
        raise SystemExit(f"{run}/config.yaml lists no data.test_dataset; pass --dataset")
    batch, pictures = load_images(config, detector, dataset, args.num_images)
    images = batch["image"].to(args.device)
    maps = explain(detector, images, args.method, args.target_layer)
    with torch.no_grad():
        probs = detector({"image": images})["prob"].float().cpu().numpy()
    captions = [f"{key.split('/')[1]}\nP(fake)={prob:.2f}" for key, prob in zip(batch["video_key"], probs)]
    out = Path(args.out) if args.out else run / PLOTS_DIR / "cam.png"
    print(plot_cams(pictures, maps, captions, out, title=f"{run.name} on {dataset} (test split)"))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
