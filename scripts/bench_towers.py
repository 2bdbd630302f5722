"""LN-tuning step time and peak memory on timm towers (PE-Core-L/14, DINOv3 ViT-L/16), ours vs GenD's way.

    nice .venv/bin/python scripts/bench_towers.py --towers pe dinov3 --batch 8 --steps 3 --repeats 2
    .venv/bin/python scripts/bench_towers.py --device cuda --amp bf16

Variants, each run in its own subprocess so peak memory is its own:
  ours_ln  this framework's ClipDetector on the timm tower, tuning=ln (tower.layernorms() + head)
  gend_ln  GenD's way (github yermandy/GenD, src/model/GenD.py `_freeze_parameters`, src/encoders/):
           the timm model itself, requires_grad_(False), then every parameter whose name contains one
           of GenD's `unfreeze_layers` substrings trainable; feature = PE: `model(x)` with no classifier
           (attention pool), DINOv3: CLS of the final-normed tokens; L2-norm + Linear head ("LinearNorm")
  gend_hf_ln DINOv3 only: GenD's own library for it, Hugging Face transformers DINOv3ViTModel (ViT-L/16
           config of facebook/dinov3-vitl16-pretrain-lvd1689m), same substrings on HF's names, feature
           last_hidden_state[:, 0] (src/encoders/dino_encoder.py)
Both at 224 px, random weights (same architecture and FLOPs as the pretrained ones); PE-Core-L/14-336 runs
at 224 with dynamic_img_size as GenD does. Step = forward, CE, backward, AdamW step. Time: median over the
timed steps after --warmup untimed ones; repeats alternate the variants, and the ratio is the median of the
per-repeat ratios. Peak memory: CPU: growth of the peak RSS during the steps; CUDA: max allocated.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
from training.cli import cli_parser, run_cli  # noqa: E402

TOWERS = {  # name: (timm arch, GenD's unfreeze_layers for it: src/exp/wacv_rebuttal.py)
    "pe": ("vit_pe_core_large_patch14_336", ("norm_pre", "norm1", "norm2", "norm")),
    "dinov3": ("vit_large_patch16_dinov3", ("norm1", "norm2", "norm")),
}
IMAGE_SIZE = 224


def build_ours(tower: str):
    from training.models.detectors.clip_detector import ClipDetector

    cfg = ClipDetector.default_config()
    cfg["backbone"].update(tower="timm", arch=TOWERS[tower][0], pretrained=None, image_size=IMAGE_SIZE)
    detector = ClipDetector(cfg)
    return detector, lambda images: detector({"image": images})["logits"]


def build_gend(tower: str):
    import timm
    import torch

    arch, substrings = TOWERS[tower]
    # GenD's PerceptionEncoder(img_size=224) turns on dynamic_img_size; its DINOv3 (HF) takes any size.
    backbone = timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True)
    head = torch.nn.Linear(backbone.num_features, 2)
    model = torch.nn.ModuleDict({"feature_extractor": backbone, "model": head})
    model.requires_grad_(False)
    for name, param in model.named_parameters():
        if any(s in name for s in substrings) or name.startswith("model."):  # GenD trains its head
            param.requires_grad = True

    def forward(images):
        feat = backbone(images) if tower == "pe" else backbone.forward_features(images)[:, 0]
        return head(torch.nn.functional.normalize(feat, dim=-1))

    return model, forward


HF_DINOV3_L = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                   patch_size=16, num_register_tokens=4, layerscale_value=1e-5, image_size=IMAGE_SIZE)


def build_gend_hf(tower: str):
    import torch
    import transformers

    if tower != "dinov3":
        raise ValueError("gend_hf_ln exists for dinov3 only (GenD runs PE through timm, i.e. gend_ln).")
    backbone = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(**HF_DINOV3_L))
    head = torch.nn.Linear(HF_DINOV3_L["hidden_size"], 2)
    model = torch.nn.ModuleDict({"feature_extractor": backbone, "model": head})
    model.requires_grad_(False)
    for name, param in model.named_parameters():
        if any(s in name for s in TOWERS[tower][1]) or name.startswith("model."):
            param.requires_grad = True

    def forward(images):
        feat = backbone(pixel_values=images).last_hidden_state[:, 0]
        return head(torch.nn.functional.normalize(feat, dim=-1))

    return model, forward


BUILDERS = {"ours_ln": build_ours, "gend_ln": build_gend, "gend_hf_ln": build_gend_hf}


def run_variant(variant: str, tower: str, batch: int, steps: int, warmup: int, device_name: str, amp: str) -> dict:
    import torch

    from training.engine.precision import autocast_context, resolve_precision

    device = torch.device(device_name)
    torch.manual_seed(0)
    model, forward = BUILDERS[variant](tower)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    images = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    precision = resolve_precision(amp, device)

    def train_step():
        with autocast_context(device, amp):
            logits = forward(images)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:  # ru_maxrss is in KiB on Linux
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {"variant": variant, "tower": tower, "arch": TOWERS[tower][0], "batch": batch, "device": device_name,
            "precision": precision.name, "trainable": sum(p.numel() for p in params),
            "median_step_s": statistics.median(times), "peak_mem_mb": peak_mb}


def run_single(variant: str, tower: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--single", variant, "--towers", tower, "--batch", str(args.batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device, "--amp", args.amp]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--towers", nargs="+", default=list(TOWERS), choices=list(TOWERS),
                        help="vision towers to measure")
    parser.add_argument("--batch", type=int, default=8, help="images per training step")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "auto"],
                        help="off = fp32, bf16 = bf16 autocast, auto = as train.amp auto chooses")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of the variants")
    parser.add_argument("--variants", nargs="+", default=list(BUILDERS), choices=list(BUILDERS),
                        help="implementations to compare, each in its own subprocess")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: one variant in this process
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(run_variant(args.single, args.towers[0], args.batch, args.steps, args.warmup,
                                     args.device, args.amp)))
        return 0
    import torch
    from scripts.bench_common import host_description, host_line

    print(host_line(host_description(torch.device(args.device))), flush=True)
    for tower in args.towers:
        runs = {variant: [] for variant in ("ours_ln", "gend_ln", "gend_hf_ln")
                if variant in args.variants and (variant != "gend_hf_ln" or tower == "dinov3")}
        for _ in range(args.repeats):
            for variant in runs:
                row = run_single(variant, tower, args)
                runs[variant].append(row)
                print(f"{row['arch']:30s} {variant:8s} {row['precision']:6s} trainable {row['trainable']:>8,d}  "
                      f"step {row['median_step_s']:7.2f} s  peak {row['peak_mem_mb']:7.0f} MB", flush=True)
        for reference in [v for v in runs if v != "ours_ln" and runs.get("ours_ln")]:
            pairs = list(zip(runs["ours_ln"], runs[reference]))
            speed = [ref["median_step_s"] / ours["median_step_s"] for ours, ref in pairs]
            memory = [ours["peak_mem_mb"] / max(ref["peak_mem_mb"], 1e-9) for ours, ref in pairs]
            print(f"{TOWERS[tower][0]}: ours / {reference} speed {statistics.median(speed):.2f}x (per repeat "
                  f"{', '.join(f'{x:.2f}' for x in speed)}), peak memory ours / {reference} "
                  f"{statistics.median(memory):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
