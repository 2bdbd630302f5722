"""Score raw media (videos, images, folders of frames) with a trained detector: the library behind
training/infer.py and the browser app (analysis/app.py), so both see the same faces and scores.

The face pipeline is preprocessing's (:func:`preprocessing.preprocess.extract_faces`: ``num_frames``
frames sampled evenly, dlib detection at reduced resolution, tracking of the subject, landmarks,
alignment), and the samples are the test data layer's (``data.frame_num.test`` frames spread evenly,
or the test clips of a temporal detector), so a score here equals preprocess.py followed by test.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FRAME_COLUMNS = ("input", "frame_index", "prob", "face_source", "left", "top", "right", "bottom")
INPUT_COLUMNS = ("input", "prob", "n_scored", "n_faces", "n_sampled", "status", "reason")
_FRAME_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a file name's stem


@dataclass
class FrameFaces:
    """What the pipeline found in one sampled frame."""

    index: int  # frame index in the video (0 for an image)
    detections: List[List[float]]  # every face dlib found: [left, top, right, bottom, score]
    box: Optional[List[int]]  # the subject's box, whose aligned crop is scored; None: no face
    source: str  # detected | fallback (an earlier frame's box reused) | none
    prob: Optional[float] = None  # mean P(fake) of the samples holding this crop; None: not scored


@dataclass
class InputResult:
    path: str
    status: str = "done"  # done | failed
    reason: str = ""
    n_sampled: int = 0  # frames decoded (1 for an image)
    n_faces: int = 0  # sampled frames with a face crop
    frame_rows: List[Dict[str, object]] = field(default_factory=list)  # per scored frame or clip (frames.csv)
    faces: List[FrameFaces] = field(default_factory=list)  # per sampled frame, in time order
    frames: Dict[int, np.ndarray] = field(default_factory=dict)  # RGB frames (only with keep_images)
    crops: Dict[int, np.ndarray] = field(default_factory=dict)  # scored RGB crops (only with keep_images)

    @property
    def prob(self) -> Optional[float]:
        """The input's score: the mean over its frames or clips, as the video score of metrics.json."""
        if not self.frame_rows:
            return None
        return float(np.mean([row["prob"] for row in self.frame_rows]))

    def summary_row(self) -> Dict[str, object]:
        return {"input": self.path, "prob": "" if self.prob is None else f"{self.prob:.6f}",
                "n_scored": len(self.frame_rows), "n_faces": self.n_faces, "n_sampled": self.n_sampled,
                "status": self.status, "reason": self.reason}


# ----------------------------------------------------------------------------- inputs

def frame_number(path: Path) -> Optional[int]:
    match = _FRAME_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


def frame_folder_images(folder: Path) -> Dict[int, Path]:
    """{frame index: image} of a folder of frames (``000.png``, ``frame_0012.jpg`` ...: the last number
    in the name is the frame index). Raises ValueError naming the file when a name has no number or
    two names have the same one."""
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                    and not p.name.startswith("."))
    if not images:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder of frames.")
    by_index: Dict[int, Path] = {}
    for image in images:
        index = frame_number(image)
        if index is None:
            raise ValueError(f"{image}: a folder of frames needs the frame index in every file name "
                             f"(e.g. 000.png, frame_0012.jpg); rename it or score the folder without "
                             f"--frames_as_video (each image on its own).")
        if index in by_index:
            raise ValueError(f"{by_index[index]} and {image} both carry frame index {index}; "
                             f"keep one of them.")
        by_index[index] = image
    return dict(sorted(by_index.items()))


def expand_inputs(paths: Sequence[str], frames_as_video: bool = False) -> List[Path]:
    """Files as given; a folder becomes every video and image below it (sorted, hidden ones skipped),
    or, with ``frames_as_video``, one input: a video whose frames are the folder's images."""
    from preprocessing.video import VIDEO_EXTENSIONS

    known = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
    found: List[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir() and frames_as_video:
            frame_folder_images(path)  # fail now, before any model is loaded
            found.append(path)
        elif path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in known
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not below:
                raise ValueError(f"{path}: no videos or images ({', '.join(known)}) below this folder.")
            found.extend(below)
        elif path.is_file():
            if path.suffix.lower() not in known:
                raise ValueError(f"{path}: not a video or image file by its extension; "
                                 f"expected one of {', '.join(known)}.")
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder.")
    return list(dict.fromkeys(found))


def _read_image(path: Path) -> np.ndarray:
    import cv2

    from preprocessing.video import VideoReadError

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoReadError("unreadable", f"OpenCV cannot decode the image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_input_frames(path: Path, num_frames: int) -> Dict[int, np.ndarray]:
    """{frame index: RGB frame} of a video, an image or a folder of frames; raises VideoReadError
    (with a reason) when unusable. A folder of frames is sampled like a video: ``num_frames`` spread
    evenly over its images in frame-index order."""
    import cv2

    from preprocessing.video import evenly_spaced_indices, sample_video

    if path.is_dir():
        images = frame_folder_images(path)
        chosen = [list(images)[p] for p in evenly_spaced_indices(len(images), num_frames)]
        return {index: _read_image(images[index]) for index in chosen}
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return {0: _read_image(path)}
    sampled = sample_video(path, num_frames)
    return {index: cv2.cvtColor(sampled.frames[index], cv2.COLOR_BGR2RGB)
            for index in sampled.indices if index in sampled.frames}


# ----------------------------------------------------------------------------- scoring

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

    def images(self, crops: Dict[int, np.ndarray], indices: Sequence[int]):
        """The model input of one sample (its frame indices), as the test data layer builds it."""
        return self.transform(crops[indices[0]] if self.clip_len == 1 else [crops[i] for i in indices])["image"]

    def score(self, crops: Dict[int, np.ndarray]) -> List[Tuple[List[int], float, bool]]:
        """(frame indices, P(fake), padded) per test sample of one input's crops."""
        import torch

        from training.engine.precision import autocast_context

        samples = test_samples(sorted(crops), self.config, self.clip_len)
        results: List[Tuple[List[int], float, bool]] = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start:start + self.batch_size]
            images = torch.stack([self.images(crops, indices) for indices, _ in chunk]).to(self.device)
            with torch.no_grad(), autocast_context(self.device, self.config["train"]["amp"]):
                probs = self.detector({"image": images})["prob"].float().cpu().tolist()
            results += [(indices, prob, padded) for (indices, padded), prob in zip(chunk, probs)]
        return results


class Inferencer:
    """A detector and the face models, loaded once; scores one input at a time."""

    def __init__(self, config, detector, device, options, batch_size: int = 32):
        from preprocessing import faces

        self.config, self.detector, self.device, self.options = config, detector, device, options
        self.scorer = Scorer(config, detector, device, batch_size)
        self.face_models = (faces.FaceDetector(options.detect_width, options.upsample_levels),
                            faces.LandmarkPredictor(Path(options.landmark_model) if options.landmark_model
                                                    else None))

    @property
    def unit(self) -> str:
        """What one score row is: a frame, or a clip of ``clip_len`` frames."""
        return "clips" if self.scorer.clip_len > 1 else "frames"

    def score_path(self, path: Path, keep_images: bool = False) -> InputResult:
        """Score a video, an image or a folder of frames; an unusable input gives status "failed"."""
        from preprocessing.video import VideoReadError

        try:
            frames = read_input_frames(Path(path), self.options.num_frames)
        except VideoReadError as error:
            return InputResult(str(path), status="failed", reason=f"{error.reason}: {error}")
        return self.score_frames(str(path), frames, keep_images)

    def score_frames(self, name: str, frames: Dict[int, np.ndarray], keep_images: bool = False) -> InputResult:
        """Score decoded frames ({index: RGB}, one video or one image)."""
        from preprocessing.preprocess import extract_faces

        result = InputResult(name, n_sampled=len(frames))
        if keep_images:
            result.frames = dict(frames)
        if not frames:
            result.status, result.reason = "failed", "unreadable: no frame could be decoded"
            return result
        extracted = extract_faces(frames, self.options, *self.face_models)
        result.n_faces = len(extracted.crops)
        for index in sorted(frames):
            detail = extracted.per_frame[str(index)]
            result.faces.append(FrameFaces(index, detail["detections"], detail["chosen"], detail["source"]))
        if not extracted.crops:
            result.status, result.reason = "failed", f"no face: none found in the {len(frames)} sampled frame(s)"
            return result
        crops = {index: face.image for index, face in extracted.crops.items()}
        by_frame: Dict[int, List[float]] = {}
        for indices, prob, padded in self.scorer.score(crops):
            first = result.faces[sorted(frames).index(indices[0])]
            left, top, right, bottom = first.box
            result.frame_rows.append({"input": name, "frame_index": indices[0], "prob": prob,
                                      "face_source": first.source + (" (padded clip)" if padded else ""),
                                      "left": left, "top": top, "right": right, "bottom": bottom})
            for index in indices:
                by_frame.setdefault(index, []).append(prob)
        for face in result.faces:
            if face.index in by_frame:
                face.prob = float(np.mean(by_frame[face.index]))
        if keep_images:
            result.crops = {index: crops[index] for index in sorted(by_frame)}
        return result


def load_inferencer(weights_path: str, detector_path: Optional[str] = None, opts: Sequence[str] = (),
                    device: str = "auto", num_frames: int = 32, detect_width: int = 640,
                    landmark_model: Optional[str] = None, batch_size: int = 32,
                    crop_profile: Optional[str] = None) -> Inferencer:
    """An :class:`Inferencer` for ``weights_path`` (a run directory or a checkpoint file; the config is the
    run's config.yaml unless ``detector_path`` names one)."""
    from preprocessing.preprocess import PreprocessOptions
    from training.config import load_config
    from training.engine import distributed as dist_utils
    from training.engine.checkpoint import build_detector_with_weights, resolve_weights

    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: sample at least one frame per video (--num_frames 32).")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1 (--batch_size 32).")
    if landmark_model and not Path(landmark_model).is_file():
        raise FileNotFoundError(f"--landmark_model {landmark_model} does not exist.")
    checkpoint, config_path, _ = resolve_weights(weights_path, detector_path)
    config = load_config(config_path, list(opts))
    device = dist_utils.select_device(device)
    detector, config = build_detector_with_weights(config, checkpoint, device)
    detector.eval()
    options = PreprocessOptions(num_frames=num_frames, detect_width=detect_width, landmark_model=landmark_model,
                                crop_profile=crop_profile or PreprocessOptions.crop_profile)
    return Inferencer(config, detector, device, options, batch_size)


# ----------------------------------------------------------------------------- outputs

def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Dict[str, object]]) -> None:
    import csv

    from training.utils.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_results(out: Path, results: Sequence[InputResult]) -> Tuple[Path, Path]:
    """<out>/frames.csv (one row per scored frame or clip) and <out>/inputs.csv (one row per input)."""
    out = Path(out)
    write_csv(out / "frames.csv", FRAME_COLUMNS, [row for r in results for row in r.frame_rows])
    write_csv(out / "inputs.csv", INPUT_COLUMNS, [r.summary_row() for r in results])
    return out / "inputs.csv", out / "frames.csv"


def crop_folder_name(path: str, taken: set) -> str:
    """A folder name for one input's crops: its file (or folder) stem, numbered when two inputs share it."""
    stem = Path(path).stem or "input"
    name, number = stem, 1
    while name in taken:
        number += 1
        name = f"{stem}_{number}"
    taken.add(name)
    return name


def save_crops(folder: Path, result: InputResult) -> List[Path]:
    """Write the crops that were scored as ``<folder>/<frame index>.png`` (preprocessing's frames/ layout)."""
    import cv2

    from preprocessing.preprocess import frame_stem
    from training.utils.atomic import atomic_path

    written = []
    for index, crop in sorted(result.crops.items()):
        path = Path(folder) / f"{frame_stem(index)}.png"
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"OpenCV could not encode the crop for {path}.")
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded.tobytes())
        written.append(path)
    return written
