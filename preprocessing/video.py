"""Video decoding and frame sampling.

Frames are sampled evenly over the *decoded* length. The container's frame count
is only a hint (it is wrong for truncated files and some encoders), so it is
used to plan one optimistic pass; when the decoded length disagrees, the indices
are re-planned and a second pass retrieves them.

Each pass reads the video once, sequentially: ``grab()`` for every frame (it
demuxes and decodes but skips the colour conversion and copy), ``retrieve()``
only for the sampled ones. Seeking (CAP_PROP_POS_FRAMES) is avoided because it
is inexact for many codecs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class VideoReadError(UserError):
    """A video that cannot be used. ``reason`` is one of: zero-byte, unreadable, truncated."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def evenly_spaced_indices(length: int, count: int) -> List[int]:
    """``count`` frame indices spread evenly over ``[0, length)``, first and last included.

    Same rule as DeepfakeBench (``linspace(0, N - 1, count)`` truncated to int), but
    without duplicates when the video is shorter than ``count``.
    """
    if length <= 0 or count <= 0:
        return []
    if count >= length:
        return list(range(length))
    return sorted(set(np.linspace(0, length - 1, count).astype(int).tolist()))


def open_video(path: Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoReadError("unreadable", f"{path} does not exist.")
    if path.stat().st_size == 0:
        raise VideoReadError("zero-byte", f"{path} is empty (0 bytes); re-download or re-extract it.")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError("unreadable", f"OpenCV cannot open {path} (corrupt file or missing "
                                           f"container index); re-download or re-extract it.")
    return capture


def container_frame_count(path: Path) -> int:
    capture = open_video(path)
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()


def read_frames(path: Path, indices: Sequence[int]) -> Tuple[Dict[int, np.ndarray], int]:
    """Decode the whole video once; return the frames at ``indices`` and the decoded length."""
    wanted = set(indices)
    frames: Dict[int, np.ndarray] = {}
    capture = open_video(path)
    decoded = 0
    try:
        while capture.grab():
            if decoded in wanted:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    frames[decoded] = frame
            decoded += 1
    finally:
        capture.release()
    return frames, decoded


@dataclass
class SampledVideo:
    frames: Dict[int, np.ndarray]  # original frame index -> BGR frame
    indices: List[int]  # the planned sample (some may be missing from ``frames`` if retrieve failed)
    decoded_length: int
    container_length: int
    passes: int


def sample_video(path: Path, num_frames: int, truncation_tolerance: float = 0.1) -> SampledVideo:
    """Sample ``num_frames`` evenly over the decoded length of ``path``.

    Raises :class:`VideoReadError` when the file is empty or unreadable, when no
    frame decodes, or when fewer than ``(1 - truncation_tolerance)`` of the frames
    the container announces decode (a truncated download).
    """
    container_length = container_frame_count(path)
    planned = evenly_spaced_indices(container_length, num_frames)
    frames, decoded = read_frames(path, planned)
    passes = 1
    if decoded == 0:
        raise VideoReadError("unreadable", f"{path}: no frame could be decoded.")
    if container_length and decoded < (1.0 - truncation_tolerance) * container_length:
        raise VideoReadError("truncated", f"{path}: the container announces {container_length} frames "
                                          f"but only {decoded} decode; the file is truncated or damaged. "
                                          f"Re-download it.")
    indices = evenly_spaced_indices(decoded, num_frames)
    if indices != planned:  # the container count was wrong: plan again over the real length
        frames, decoded_again = read_frames(path, indices)
        passes = 2
        if decoded_again != decoded:
            raise VideoReadError("unreadable", f"{path}: decoding is not repeatable ({decoded} then "
                                               f"{decoded_again} frames).")
    frames = {index: frames[index] for index in indices if index in frames}
    return SampledVideo(frames, indices, decoded, container_length, passes)


def read_companion_frames(path: Path, indices: Sequence[int]) -> Dict[int, np.ndarray]:
    """Frames of a companion video (e.g. a forgery-mask video) at the same indices."""
    frames, _ = read_frames(path, indices)
    return frames


def find_videos(folder: Path) -> List[Path]:
    """Every video file below ``folder`` (sorted), except mask videos under a ``masks`` folder."""
    found = []
    for root, dirs, files in os.walk(folder):
        # Mask videos (FF++ <method>/masks/videos) are inputs of their fake's job, not jobs.
        # Our own output folders never hold videos; pruning them keeps the walk fast on reruns.
        dirs[:] = sorted(d for d in dirs if d not in ("masks", "frames", "landmarks", "manifests")
                         and not d.startswith("."))
        for name in files:
            if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith("."):
                found.append(Path(root) / name)
    return sorted(found)


def companion_mask_video(video: Path) -> Optional[Path]:
    """The forgery-mask video of ``video`` in the dataset's own layout, if there is one.

    FaceForensics++/DFD: ``<method>/<comp>/videos/<vid>.mp4`` has its mask at
    ``<method>/masks/videos/<vid>.mp4``; a layout ``<x>/videos/<vid>.mp4`` with
    ``<x>/masks/videos/<vid>.mp4`` is accepted too (the raw-video demo uses it).
    """
    stem = video.stem
    candidates = [video.parent.parent / "masks" / "videos", video.parent.parent.parent / "masks" / "videos"]
    for folder in candidates:
        if folder.resolve() == video.parent.resolve():
            continue
        for extension in VIDEO_EXTENSIONS:
            candidate = folder / f"{stem}{extension}"
            if candidate.is_file():
                return candidate
    return None
