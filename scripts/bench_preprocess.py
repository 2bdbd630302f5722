r"""Preprocessing throughput: our pipeline vs a faithful re-implementation of DeepfakeBench's.

Usage::

    .venv/bin/python scripts/bench_preprocess.py [--videos 8] [--frames 120] [--size 1280x720] \
        [--workers 2] [--repeats 3] [--num_frames 32] [--work_dir DIR]

Generates raw demo videos (preprocessing/demo/raw_videos.py: real face photos,
camera motion, face swaps), then preprocesses the same videos with both
pipelines over ``--workers`` processes, ``--repeats`` times each, and prints
videos/min (median) and the speed-up. Mask videos are left out for both.

DeepfakeBench's approach (preprocessing/preprocess.py there), as re-implemented here:
sample indices from the container's frame count; decode *every* frame with
``read()``; on each sampled frame run dlib HOG on the full-resolution RGB frame
with upsample 1, take the largest box, align with landmarks 37/44/30/49/55, then
run the detector *again* on the 256x256 crop (upsample 1) and the predictor on
its first box for the saved landmarks. Two deliberate kindnesses to it: the
landmark model is loaded once per worker (DeepfakeBench reloads it per video),
and it runs in processes (it used threads, which the GIL serialises).
"""
from __future__ import annotations

import multiprocessing
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

# Run as a script from anywhere: make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing import faces  # noqa: E402
from preprocessing import preprocess as ours  # noqa: E402
from preprocessing.demo import raw_videos  # noqa: E402
from training.cli import cli_parser, run_cli  # noqa: E402

# DeepfakeBench's five alignment points (dlib 68-point indices).
DFB_POINTS = (37, 44, 30, 49, 55)


class _DfbModels:
    detector = None
    predictor = None


def _dfb_init() -> None:
    import dlib

    cv2.setNumThreads(1)
    _DfbModels.detector = dlib.get_frontal_face_detector()
    _DfbModels.predictor = dlib.shape_predictor(str(faces.default_landmark_model()))


def _dfb_align(rgb: np.ndarray, points: np.ndarray, size: int = 256) -> np.ndarray:
    matrix = faces.similarity_matrix(points, faces.crop_template(size, 1.3))
    return cv2.warpAffine(rgb, matrix, (size, size))


def dfb_process_video(video: str, out_dir: str, num_frames: int = 32) -> int:
    """One video the DeepfakeBench way; returns the number of frames saved."""
    detector, predictor = _DfbModels.detector, _DfbModels.predictor
    name = Path(video).stem
    capture = cv2.VideoCapture(video)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, count - 1, num_frames, dtype=int).tolist())
    saved = 0
    for index in range(count):
        ok, frame = capture.read()  # every frame decoded and converted
        if not ok:
            break
        if index not in wanted:
            continue
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        found = detector(rgb, 1)
        if len(found) == 0:
            continue
        face = max(found, key=lambda r: r.width() * r.height())
        shape = predictor(rgb, face)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in DFB_POINTS], dtype=np.float64)
        crop = _dfb_align(rgb, points)
        again = detector(crop, 1)  # the second detection, on the crop
        if len(again) == 0:
            continue
        crop_shape = predictor(crop, again[0])
        landmarks = np.array([[p.x, p.y] for p in crop_shape.parts()])
        for kind in ("frames", "landmarks"):
            (Path(out_dir) / kind / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(Path(out_dir) / "frames" / name / f"{index:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        np.save(Path(out_dir) / "landmarks" / name / f"{index:03d}.npy", landmarks)
        saved += 1
    capture.release()
    return saved


def run_deepfakebench(videos: Sequence[Path], out_dir: Path, workers: int, num_frames: int) -> int:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_dfb_init) as pool:
        return sum(pool.map(dfb_process_video, [str(v) for v in videos], [str(out_dir)] * len(videos),
                            [num_frames] * len(videos)))


def run_ours(videos: Sequence[Path], out_dir: Path, workers: int, num_frames: int) -> int:
    jobs = [ours.VideoJob(str(v), v.name, str(out_dir), v.stem) for v in videos]  # no mask videos
    results = ours.run_jobs(jobs, ours.PreprocessOptions(num_frames=num_frames), workers=workers, progress=False)
    return sum(int(r.get("frames_kept", 0)) for r in results)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished worker processes
    return usage.ru_utime + usage.ru_stime


def time_runs(runners: dict, videos: Sequence[Path], work_dir: Path, workers: int, num_frames: int,
              repeats: int) -> Tuple[dict, dict]:
    """Wall-clock and worker CPU seconds per run, pool start-up included.

    The pipelines alternate so that a change in machine load (the box is shared) hits both
    alike; CPU seconds are reported too because they depend much less on that load.
    """
    wall = {label: [] for label in runners}
    cpu = {label: [] for label in runners}
    for repeat in range(repeats):
        for label, runner in runners.items():
            out_dir = work_dir / f"out_{label}"
            shutil.rmtree(out_dir, ignore_errors=True)
            cpu_before, started = _children_cpu_seconds(), time.perf_counter()
            frames = runner(videos, out_dir, workers, num_frames)
            wall[label].append(time.perf_counter() - started)
            cpu[label].append(_children_cpu_seconds() - cpu_before)
            print(f"  run {repeat + 1} {label}: {wall[label][-1]:.1f} s wall, {cpu[label][-1]:.1f} s worker CPU, "
                  f"{frames} frames saved", flush=True)
            shutil.rmtree(out_dir, ignore_errors=True)
    return wall, cpu


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--videos", type=int, default=8, help="number of demo videos (even; half real, half fake)")
    parser.add_argument("--frames", type=int, default=120, help="frames per video (120)")
    parser.add_argument("--size", default="1280x720", help="video size WIDTHxHEIGHT (1280x720)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of both pipelines")
    parser.add_argument("--repeats", type=int, default=3, help="runs per pipeline (the median is reported)")
    parser.add_argument("--num_frames", type=int, default=32, help="frames sampled per video (32)")
    parser.add_argument("--work_dir", help="where videos and outputs go (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated demo videos")
    args = parser.parse_args(argv)

    work_dir = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    demo = work_dir / "DemoRaw"
    shutil.rmtree(demo, ignore_errors=True)
    started = time.perf_counter()
    raw_videos.make_raw_demo(demo, seed=args.seed, num_frames=args.frames, size=raw_videos.parse_size(args.size),
                             videos_per_label={"train": max(1, args.videos // 2)})
    videos = sorted(demo.glob("*/videos/*.mp4"))
    print(f"{len(videos)} videos, {args.frames} frames at {args.size}, generated in "
          f"{time.perf_counter() - started:.1f} s; {args.workers} workers, {args.num_frames} frames sampled")

    wall, cpu = time_runs({"ours": run_ours, "deepfakebench": run_deepfakebench}, videos, work_dir,
                          args.workers, args.num_frames, args.repeats)
    rate = {label: 60.0 * len(videos) / statistics.median(seconds) for label, seconds in wall.items()}
    cpu_per_video = {label: statistics.median(seconds) / len(videos) for label, seconds in cpu.items()}
    print(f"\n{'pipeline':<15}{'median wall s':>14}{'videos/min':>12}{'CPU s/video':>13}")
    for label in wall:
        print(f"{label:<15}{statistics.median(wall[label]):>14.1f}{rate[label]:>12.1f}{cpu_per_video[label]:>13.2f}")
    print(f"speed-up: {rate['ours'] / rate['deepfakebench']:.1f}x videos/min, "
          f"{cpu_per_video['deepfakebench'] / cpu_per_video['ours']:.1f}x less CPU per video")
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {"wall_seconds": wall, "worker_cpu_seconds": cpu, "videos_per_min": rate}


if __name__ == "__main__":
    sys.exit(run_cli(main))
