"""Seconds per video of ``training/infer.py`` on CPU, split into its stages.

    .venv/bin/python scripts/bench_infer.py --arch ViT-L-14 --seconds 10 --height 720 --repeats 3

A practitioner's case: one 10 s 720p video (25 fps), scored by a ViT-L/14 LN-CLIP detector (random
weights: the FLOPs of the published model) through the library infer.py runs
(training/inference.py: the preprocessing face pipeline, then the test sampling). The video is made
here from a real face photo (scikit-image's astronaut), moving slowly over a textured background.

Stages, timed by wrapping the library's own functions (nothing is re-implemented):
  decode      read_input_frames: seek + decode the sampled frames (preprocessing/video.py)
  detect      dlib face detection on each sampled frame (faces.FaceDetector.detect)
  align       68-point landmarks + similarity warp of the subject's face (predict + align_face)
  model       the detector on the crops, with the test transform (Scorer.score)
The model stage is also read against the in-run GEMM ceiling: its FLOPs (counted) at the rate this
machine multiplies the model's own matrices, in the same precision (scripts/bench_common.py).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
from training.cli import cli_parser, run_cli  # noqa: E402

STAGES = ("decode", "detect", "align", "model")


def write_face_video(path: Path, seconds: float, height: int, fps: int = 25) -> Path:
    """A steady shot of the astronaut's face drifting a few pixels per frame (mp4v)."""
    import cv2
    import numpy as np
    from skimage import data

    width = height * 16 // 9
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    face = cv2.resize(face, (height * 2 // 3, height * 2 // 3), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (mp4v)")
    for index in range(int(seconds * fps)):
        frame = background.copy()
        x = width // 4 + int(20 * np.sin(index / 15))
        y = height // 8 + int(10 * np.cos(index / 20))
        frame[y:y + face.shape[0], x:x + face.shape[1]] = face
        writer.write(frame)
    writer.release()
    return path


def timed(store: Dict[str, float], stage: str, fn: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            store[stage] += time.perf_counter() - start
    return wrapper


def build_inferencer(arch: str, amp: str, num_frames: int):
    import torch

    from preprocessing.preprocess import PreprocessOptions
    from training.config import load_config
    from training.inference import Inferencer
    from training.models import build_detector

    recipe = {"ViT-L-14": "configs/detector/clip_vitl14_ln.yaml", "ViT-B-16": "configs/detector/clip_vitb16_ln.yaml"}
    config = load_config(recipe[arch], ["model.backbone.pretrained=null", f"train.amp={amp}"])
    torch.manual_seed(0)
    detector = build_detector(config).eval()
    return Inferencer(config, detector, torch.device("cpu"), PreprocessOptions(num_frames=num_frames))


def measure(inferencer, video: Path) -> Dict[str, float]:
    """One scored video, seconds per stage (wrappers installed for this call only)."""
    from preprocessing import faces
    from training import inference

    store: Dict[str, float] = defaultdict(float)
    detector, predictor = inferencer.face_models
    originals = (inference.read_input_frames, faces.align_face, detector.detect, predictor.predict,
                 inferencer.scorer.score)
    inference.read_input_frames = timed(store, "decode", originals[0])
    faces.align_face = timed(store, "align", originals[1])
    detector.detect = timed(store, "detect", originals[2])
    predictor.predict = timed(store, "align", originals[3])
    inferencer.scorer.score = timed(store, "model", originals[4])
    try:
        start = time.perf_counter()
        result = inferencer.score_path(video)
        store["total"] = time.perf_counter() - start
    finally:
        inference.read_input_frames, faces.align_face = originals[0], originals[1]
        del detector.detect, predictor.predict, inferencer.scorer.score  # back to the class methods
    if result.status != "done":
        raise RuntimeError(f"infer failed on the benchmark video: {result.reason}")
    store["n_scored"] = len(result.frame_rows)
    return dict(store)


def model_ceiling(inferencer, n_images: int) -> Dict[str, float]:
    import torch

    from scripts.bench_common import count_flops, gemm_ceiling, record_gemms
    from training.engine.precision import autocast_context

    spec = inferencer.detector.input_spec
    batch = min(n_images, inferencer.scorer.batch_size)
    images = torch.randn(batch, 3, spec.resolution, spec.resolution)

    @torch.no_grad()
    def forward():
        with autocast_context(inferencer.device, inferencer.config["train"]["amp"]):
            inferencer.detector({"image": images})

    flops = count_flops(forward) * n_images / batch
    ceiling = gemm_ceiling(record_gemms(forward), inferencer.device)
    return {"model_gflop": flops / 1e9, "ceiling_gflops": ceiling["ceiling_gflops"],
            "ceiling_seconds": flops / (ceiling["ceiling_gflops"] * 1e9)}


def main(argv=None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--arch", default="ViT-L-14", choices=["ViT-L-14", "ViT-B-16"], help="LN-CLIP tower")
    parser.add_argument("--seconds", type=float, default=10.0, help="video length")
    parser.add_argument("--height", type=int, default=720, help="video height in pixels (16:9)")
    parser.add_argument("--num_frames", type=int, default=32, help="frames sampled per video (infer.py --num_frames)")
    parser.add_argument("--amp", default="auto", choices=["auto", "off", "bf16"], help="precision (train.amp)")
    parser.add_argument("--repeats", type=int, default=3, help="videos scored; medians reported")
    args = parser.parse_args(argv)
    import torch

    from scripts.bench_common import host_description, host_line
    from training.engine.precision import resolve_precision

    print(host_line(host_description(torch.device("cpu"))), flush=True)
    inferencer = build_inferencer(args.arch, args.amp, args.num_frames)
    print(f"{args.arch}, precision {resolve_precision(args.amp, torch.device('cpu')).name}, "
          f"{args.seconds:g} s {args.height}p video, {args.num_frames} frames sampled", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        video = write_face_video(Path(tmp) / "face.mp4", args.seconds, args.height)
        measure(inferencer, video)  # warm-up: model pages, dlib models, GEMM-library choice
        runs = [measure(inferencer, video) for _ in range(args.repeats)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    ceiling = model_ceiling(inferencer, int(median["n_scored"]))
    other = median["total"] - sum(median[stage] for stage in STAGES)
    print("| stage | s per video |\n|:---|---:|")
    for stage in STAGES:
        print(f"| {stage} | {median[stage]:.2f} |")
    print(f"| other (tracking, transform bookkeeping) | {other:.2f} |\n| **total** | **{median['total']:.2f}** |")
    print(f"model: {ceiling['model_gflop']:.0f} GFLOP for {int(median['n_scored'])} crops; at the in-run GEMM "
          f"ceiling ({ceiling['ceiling_gflops']:.0f} GFLOP/s) {ceiling['ceiling_seconds']:.2f} s -> measured "
          f"{median['model'] / ceiling['ceiling_seconds']:.2f}x the ceiling time")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
