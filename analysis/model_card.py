"""Model card numbers: parameters (total, trainable, %), GFLOPs per image, measured images/s.

    python -m analysis.model_card --run runs/<run> [--batch_size 32] [--iters 10] [--device cpu]
    python -m analysis.model_card --detector_path configs/detector/demo_clip_tiny.yaml [--opts ...]

* Parameters: as the trainer counts them (``training.models.count_parameters``),
  with the config's tuning mode deciding what is trainable.
* GFLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of
  one sample; a multiply-add counts as 2 FLOPs (the convention of the paper
  tables that quote "GFLOPs" from fvcore count it as 1: divide by 2 to compare).
  Only matrix products and convolutions are counted. Attention runs on
  PyTorch's math kernel while counting, so its two matrix products are counted
  on every device (the fused CPU kernel is invisible to the counter).
* Throughput: inference images/s at ``--batch_size`` (eval mode, no grad,
  the config's AMP setting), after ``--warmup`` untimed batches; a clip of T
  frames counts as T images. Depends on the machine; the card records it.

Writes ``model_card.{json,md}`` into the run directory (or ``--out`` folder).
"""
from __future__ import annotations

import argparse
import sys
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from training.cli import cli_parser, run_cli
from training.engine.run_dir import RunDir
from training.utils.atomic import atomic_write_json, atomic_write_text


def dummy_batch(spec, batch_size: int, device: torch.device) -> Dict[str, torch.Tensor]:
    shape = (batch_size, 3, spec.resolution, spec.resolution)
    if spec.frames_per_sample > 1:
        shape = (batch_size, spec.frames_per_sample, 3, spec.resolution, spec.resolution)
    generator = torch.Generator().manual_seed(0)
    return {"image": torch.randn(shape, generator=generator).to(device)}


def count_flops(detector: torch.nn.Module, spec, device: torch.device) -> int:
    """FLOPs of one forward pass on one sample (see the module docstring)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    batch = dummy_batch(spec, 1, device)
    detector.eval()
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        detector(batch)
    return int(counter.get_total_flops())


def measure_throughput(detector: torch.nn.Module, spec, device: torch.device, batch_size: int, iters: int,
                       warmup: int, amp: str) -> float:
    """Inference images/s (clips count as frames_per_sample images)."""
    from training.engine.precision import autocast_context

    batch = dummy_batch(spec, batch_size, device)
    detector.eval()
    with torch.no_grad(), autocast_context(device, amp):
        for _ in range(warmup):
            detector(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            detector(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    return batch_size * spec.frames_per_sample * iters / elapsed


def model_card(config: Dict[str, Any], detector: torch.nn.Module, device: torch.device, batch_size: int = 32,
               iters: int = 10, warmup: int = 2, measure_speed: bool = True) -> Dict[str, Any]:
    from training.models import count_parameters

    spec = detector.input_spec
    counts = count_parameters(detector)
    flops = count_flops(detector, spec, device)
    card: Dict[str, Any] = {
        "name": config["name"],
        "detector": config["model"]["name"],
        "tuning": config["model"].get("tuning"),
        "input": {"resolution": spec.resolution, "frames_per_sample": spec.frames_per_sample,
                  "mean": list(spec.mean), "std": list(spec.std), "resize_mode": spec.resize_mode},
        "parameters": {"total": int(counts["total"]), "trainable": int(counts["trainable"]),
                       "trainable_pct": float(counts["trainable_pct"])},
        "gflops_per_sample": flops / 1e9,
        "gflops_per_image": flops / 1e9 / spec.frames_per_sample,
        "flops_convention": "multiply-add = 2 FLOPs (torch.utils.flop_counter)",
    }
    if measure_speed:
        card["throughput"] = {
            "images_per_s": measure_throughput(detector, spec, device, batch_size, iters, warmup,
                                               config["train"]["amp"]),
            "batch_size": batch_size, "iters": iters, "device": _device_name(device),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        }
    return card


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def to_markdown(card: Dict[str, Any]) -> str:
    params = card["parameters"]
    lines = [f"## Model card: {card['name']}", "",
             "| Property | Value |", "|:---|---:|",
             f"| Detector | {card['detector']} (tuning: {card['tuning']}) |",
             f"| Input | {card['input']['resolution']}x{card['input']['resolution']}"
             + (f", clips of {card['input']['frames_per_sample']}" if card["input"]["frames_per_sample"] > 1 else "")
             + " |",
             f"| Parameters (total) | {params['total']:,} |",
             f"| Parameters (trainable) | {params['trainable']:,} ({params['trainable_pct']:.4f} %) |",
             f"| GFLOPs per image | {card['gflops_per_image']:.4g} |"]
    if "throughput" in card:
        speed = card["throughput"]
        lines.append(f"| Throughput (images/s) | {speed['images_per_s']:.1f} "
                     f"(batch {speed['batch_size']}, {speed['device']}, {speed['torch_threads']} threads) |")
    lines += ["", f"FLOPs: {card['flops_convention']}; matrix products and convolutions only."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="training run directory (its config.yaml)")
    source.add_argument("--detector_path", help="detector YAML")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--batch_size", type=int, default=32, help="images per batch of the speed measurement")
    parser.add_argument("--iters", type=int, default=10, help="timed batches")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument("--no_speed", action="store_true", help="skip the throughput measurement")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", help="output folder (default: the run directory; required with --detector_path)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from training.config import load_config
    from training.engine.distributed import select_device
    from training.models import build_detector

    if args.detector_path and not args.out:
        raise SystemExit("--out is required with --detector_path (there is no run directory to write into)")
    config_path = RunDir(args.run).config if args.run else Path(args.detector_path)
    if not config_path.is_file():
        raise SystemExit(f"{config_path} not found: --run must be a training run directory (runs/<run>)")
    config = load_config(config_path, args.opts)
    device = select_device(args.device)
    detector = build_detector(config).to(device)
    card = model_card(config, detector, device, args.batch_size, args.iters, args.warmup,
                      measure_speed=not args.no_speed)
    out = Path(args.out) if args.out else Path(args.run)
    atomic_write_json(out / "model_card.json", card)
    markdown = to_markdown(card)
    atomic_write_text(out / "model_card.md", markdown)
    print(markdown)
    print(out / "model_card.json")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
