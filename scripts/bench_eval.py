"""Evaluation-forward throughput (no gradients) of the LN-CLIP detector, ours vs the reference stack.

    .venv/bin/python scripts/bench_eval.py --arch ViT-B-16 ViT-L-14 --batch 32 --steps 5 --repeats 3
    .venv/bin/python scripts/bench_eval.py --arch ViT-L-14 --batch 128 --device cuda --amp auto

Variants, each in its own subprocess (its own peak memory, its own GEMM-library choices):
  ours     this framework's detector (open_clip tower, ``feature`` fast path), eval mode
  hf       Hugging Face transformers ``CLIPVisionModel`` ``pooler_output`` + L2-norm + Linear, the
           forward LN-CLIP's and GenD's inference code runs (their ``src/`` models wrap it)
Weights are random: same architecture and FLOPs as the pretrained models.

Every line gives the precision, images/s, the model's GFLOP/s (FLOPs counted from the executed
operations) and that rate as a fraction of the in-run ceiling: the model's own matrix products
timed in isolation, in the same precision and process (scripts/bench_common.py).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
from training.cli import cli_parser, run_cli  # noqa: E402

VARIANTS = ("ours", "hf")


def build(variant: str, arch: str):
    import torch

    if variant == "hf":
        import transformers

        from scripts.bench_ln_tuning import HF_SIZES

        config = transformers.CLIPVisionConfig(image_size=224, hidden_act="quick_gelu", **HF_SIZES[arch])
        vision = transformers.CLIPVisionModel(config)
        head = torch.nn.Linear(config.hidden_size, 2)
        model = torch.nn.ModuleDict({"encoder": vision, "head": head})

        def forward(images):
            pooled = vision(pixel_values=images).pooler_output
            return torch.softmax(head(torch.nn.functional.normalize(pooled, dim=-1)).float(), dim=-1)[:, 1]

        return model, forward
    from scripts.bench_ln_tuning import build_ours

    detector, _ = build_ours(arch, "ln")
    return detector, lambda images: detector({"image": images})["prob"]


def run_variant(variant: str, arch: str, batch: int, steps: int, warmup: int, device_name: str, amp: str) -> dict:
    import torch

    from scripts.bench_common import count_flops, gemm_ceiling, record_gemms
    from training.engine.precision import autocast_context, resolve_precision

    device = torch.device(device_name)
    torch.manual_seed(0)
    model, forward = build(variant, arch)
    model.to(device).eval()
    images = torch.randn(batch, 3, 224, 224, device=device)

    @torch.no_grad()
    def evaluate():
        with autocast_context(device, amp):
            return forward(images)

    times = []
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        evaluate()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    flops = count_flops(evaluate)
    ceiling = gemm_ceiling(record_gemms(evaluate), device)
    achieved = flops / median / 1e9
    return {"variant": variant, "arch": arch, "batch": batch, "precision": resolve_precision(amp, device).name,
            "images_per_s": batch / median, "median_s": median, "gflop_per_batch": flops / 1e9,
            "achieved_gflops": achieved, "ceiling_gflops": ceiling["ceiling_gflops"],
            "fraction_of_ceiling": achieved / ceiling["ceiling_gflops"]}


def main(argv=None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--arch", nargs="+", default=["ViT-B-16"], help="open_clip architecture names")
    parser.add_argument("--batch", type=int, default=32, help="images per forward")
    parser.add_argument("--steps", type=int, default=5, help="timed forwards per run (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards before the timed ones")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--amp", default="auto", choices=["off", "bf16", "auto"],
                        help="precision: off = fp32, bf16 = bf16 autocast, auto = as train.amp auto chooses")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="what to run")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of the variants; medians reported")
    parser.add_argument("--json", help="also write every run's numbers to this file")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: one variant in this process
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(run_variant(args.single, args.arch[0], args.batch, args.steps, args.warmup, args.device,
                                     args.amp)))
        return 0
    import torch

    from scripts.bench_common import host_description, host_line

    print(host_line(host_description(torch.device(args.device))), flush=True)
    rows = []
    for arch in args.arch:
        runs = {variant: [] for variant in args.variants}
        for _ in range(args.repeats):
            for variant in args.variants:
                command = [sys.executable, __file__, "--single", variant, "--arch", arch, "--batch", str(args.batch),
                           "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device,
                           "--amp", args.amp]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                row = json.loads(output.strip().splitlines()[-1])
                runs[variant].append(row)
                rows.append(row)
                print(f"{arch:9s} {variant:5s} {row['precision']:10s} batch {row['batch']:4d}  "
                      f"{row['images_per_s']:8.2f} img/s  {row['achieved_gflops']:7.1f} GFLOP/s = "
                      f"{100 * row['fraction_of_ceiling']:5.1f}% of the in-run GEMM ceiling "
                      f"({row['ceiling_gflops']:.0f} GFLOP/s)", flush=True)
        if runs.get("ours") and runs.get("hf"):
            ratios = [o["images_per_s"] / h["images_per_s"] for o, h in zip(runs["ours"], runs["hf"])]
            print(f"{arch}: ours / hf = {statistics.median(ratios):.2f}x (median; per run "
                  f"{', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    if args.json:
        from training.utils.atomic import atomic_write_json

        atomic_write_json(Path(args.json), {"host": host_description(torch.device(args.device)), "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
