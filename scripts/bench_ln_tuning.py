"""Training throughput and peak memory of one LN-tuning step, ours vs the reference stack.

    .venv/bin/python scripts/bench_ln_tuning.py --arch ViT-B-16 --batch 8 --steps 6 --repeats 5
    .venv/bin/python scripts/bench_ln_tuning.py --arch ViT-L-14 --batch 8 --device cuda --amp bf16

Variants, each run in its own subprocess so peak memory is its own:
  ours_ln    this framework's ClipDetector, tuning=ln (open_clip tower)
  hf_peft_ln Hugging Face transformers CLIPVisionModel + PEFT LNTuningConfig + L2-norm + Linear
             (the LN-CLIP reference implementation)
  ours_full  this framework's ClipDetector, tuning=full (for the memory comparison)
Weights are random (identical architecture and FLOPs; pretrained values do not change speed).
Throughput is the median over the timed steps, after --warmup untimed steps (default 2). The first step
is where frozen_linear.py times MKL against oneDNN for each product shape (the line shows how many shapes
chose each); in the second, glibc malloc is still settling: fresh activation buffers are page-faulted in
(ViT-B/16 on the 2-core host: ~125k minor faults and ~1.5-2 s of system time in ours, ~60k in the
reference) until malloc's adaptive mmap threshold keeps freed buffers for reuse. Training runs thousands
of steps, so the benchmark measures the steady state; each line reports the minor page faults per timed
step so that this stays visible.
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

HF_SIZES = {  # transformers CLIPVisionConfig equivalents of the open_clip towers
    "ViT-B-16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                     patch_size=16),
    "ViT-L-14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                     patch_size=14),
}


def build_ours(arch: str, tuning: str):
    from training.models.detectors.clip_detector import ClipDetector

    cfg = ClipDetector.default_config()
    cfg["backbone"].update(arch=arch, pretrained=None, quick_gelu=True)
    cfg["tuning"] = tuning
    detector = ClipDetector(cfg)
    return detector, lambda images: detector({"image": images})["logits"]


def build_hf_peft(arch: str):
    import peft
    import torch
    import transformers

    config = transformers.CLIPVisionConfig(image_size=224, hidden_act="quick_gelu", **HF_SIZES[arch])
    vision = transformers.CLIPVisionModel(config)
    tuned = peft.get_peft_model(vision, peft.LNTuningConfig(
        target_modules=["pre_layrnorm", "layer_norm1", "layer_norm2", "post_layernorm"]))
    head = torch.nn.Linear(config.hidden_size, 2)
    model = torch.nn.ModuleDict({"encoder": tuned, "head": head})

    def forward(images):
        pooled = tuned(pixel_values=images).pooler_output
        return head(torch.nn.functional.normalize(pooled, dim=-1))

    return model, forward


def run_variant(variant: str, arch: str, batch: int, steps: int, warmup: int, device_name: str, amp: str) -> dict:
    import torch

    device = torch.device(device_name)
    torch.manual_seed(0)
    if variant == "hf_peft_ln":
        model, forward = build_hf_peft(arch)
    else:
        model, forward = build_ours(arch, "ln" if variant == "ours_ln" else "full")
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    images = torch.randn(batch, 3, 224, 224, device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    from training.engine.precision import autocast_context, resolve_precision

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
    times, faults = [], []
    for step in range(warmup + steps):
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:  # ru_maxrss is in KiB on Linux; the growth during training steps
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    median = statistics.median(times)
    # After the timed steps, so neither the counting modes nor the ceiling GEMMs disturb them.
    from scripts.bench_common import count_flops, gemm_ceiling, record_gemms

    step_flops = count_flops(train_step)
    ceiling = gemm_ceiling(record_gemms(train_step), device)
    achieved = step_flops / median / 1e9
    from training.models.backbones.frozen_linear import measured_choices

    libraries = list(measured_choices().values())  # which GEMM library each frozen product shape uses
    return {"variant": variant, "arch": arch, "batch": batch, "device": device_name, "amp": amp,
            "trainable": sum(p.numel() for p in params), "median_step_s": median,
            "images_per_s": batch / median, "peak_mem_mb": peak_mb, "precision": precision.name,
            "step_gflop": step_flops / 1e9, "achieved_gflops": achieved,
            "ceiling_gflops": ceiling["ceiling_gflops"], "fraction_of_ceiling": achieved / ceiling["ceiling_gflops"], "page_faults_per_step": statistics.median(faults),
            "frozen_gemm_shapes": {name: libraries.count(name) for name in ("mkl", "onednn")}}


def run_single(variant: str, arch: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--single", variant, "--arch", arch, "--batch", str(args.batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device, "--amp", args.amp]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def summarise(arch: str, runs: dict) -> None:
    """Medians over the repeats; the throughput ratio per repeat (ours and the reference ran back
    to back) and its median."""
    def median(variant, key):
        return statistics.median(row[key] for row in runs[variant])

    for variant, rows in runs.items():
        if len(rows) > 1:
            print(f"{arch}: {variant} median {median(variant, 'images_per_s'):.2f} img/s, "
                  f"peak {median(variant, 'peak_mem_mb'):.0f} MB over {len(rows)} runs")
    if runs.get("ours_ln") and runs.get("hf_peft_ln"):
        ratios = [ours["images_per_s"] / ref["images_per_s"] for ours, ref in zip(runs["ours_ln"], runs["hf_peft_ln"])]
        print(f"{arch}: ours_ln / hf_peft_ln throughput = {statistics.median(ratios):.2f}x "
              f"(median; per run {', '.join(f'{r:.2f}' for r in ratios)})")
    if runs.get("ours_ln") and runs.get("ours_full"):
        print(f"{arch}: peak memory ours_ln / ours_full = "
              f"{median('ours_ln', 'peak_mem_mb') / max(median('ours_full', 'peak_mem_mb'), 1e-9):.2f}")


def main(argv=None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--arch", nargs="+", default=["ViT-B-16"], help="open_clip architectures to measure")
    parser.add_argument("--batch", type=int, default=8, help="images per training step")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones (see above)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "auto"],
                        help="precision: off = fp32, bf16 = bf16 autocast, auto = as train.amp auto chooses")
    parser.add_argument("--variants", nargs="+", default=["ours_ln", "hf_peft_ln", "ours_full"],
                        help="variants to run (see above), each in its own subprocess")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the variants this many times, alternating; report medians")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(run_variant(args.single, args.arch[0], args.batch, args.steps, args.warmup, args.device,
                                     args.amp)))
        return 0
    import torch
    from scripts.bench_common import host_description, host_line

    print(host_line(host_description(torch.device(args.device))), flush=True)
    for arch in args.arch:
        runs = {variant: [] for variant in args.variants}
        for _ in range(args.repeats):  # variants alternate, so slow spells of a shared host hit all of them
            for variant in args.variants:
                row = run_single(variant, arch, args)
                runs[variant].append(row)
                print(f"{arch:9s} {variant:11s} {row['precision']:10s} trainable {row['trainable']:>11,d}  "
                      f"{row['images_per_s']:7.2f} img/s  {row['achieved_gflops']:7.1f} GFLOP/s = "
                      f"{100 * row['fraction_of_ceiling']:5.1f}% of the in-run GEMM ceiling "
                      f"({row['ceiling_gflops']:.0f} GFLOP/s; {row['step_gflop']:.0f} GFLOP/step)  "
                      f"peak {row['peak_mem_mb']:8.0f} MB  page faults/step {row['page_faults_per_step']:>7.0f}"
                      + (f"  frozen GEMM shapes {row['frozen_gemm_shapes']}" if variant.startswith("ours") else ""),
                      flush=True)
        summarise(arch, runs)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
