"""Small videos for the preprocessing tests, made from package-shipped face photos."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from preprocessing.demo import raw_videos

# The astronaut's face box in skimage.data.astronaut() (dlib HOG, full resolution, upsample 1).
ASTRONAUT_FACE = (175, 76, 265, 166)


def film_photo(path: Path, photo_name: str, num_frames: int, size: Tuple[int, int],
               seed: int = 0) -> Tuple[np.ndarray, List[raw_videos.CameraPose]]:
    """A camera move over a photo; returns the photo and the poses (to project known boxes)."""
    photo = raw_videos.load_photo(photo_name)
    poses = raw_videos.camera_path(np.random.default_rng(seed), num_frames, max_zoom=0.15, max_angle=6.0)
    raw_videos.film(photo, poses, size, path)  # the camera looks at the photo centre
    return photo, poses


def project_box(box, photo: np.ndarray, size: Tuple[int, int], pose) -> Tuple[int, int, int, int]:
    """Where a photo-space box lands in a frame (axis-aligned bounds of its corners)."""
    matrix = raw_videos.camera_matrix(photo.shape[:2], size, pose)
    left, top, right, bottom = box
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]], dtype=np.float64)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    return tuple(int(round(v)) for v in (*moved.min(axis=0), *moved.max(axis=0)))


def write_faceless_video(path: Path, num_frames: int = 6, size: Tuple[int, int] = (160, 120)) -> None:
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), size, interpolation=cv2.INTER_CUBIC)
    raw_videos.write_video(path, (np.roll(base, 3 * i, axis=1) for i in range(num_frames)))


def write_avi(path: Path, num_frames: int = 20, size: Tuple[int, int] = (160, 120)) -> None:
    """MJPG in AVI: its header announces the frame count up front, so a cut file still opens."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for i in range(num_frames):
        frame = np.full((size[1], size[0], 3), (i * 12) % 255, np.uint8)
        cv2.putText(frame, str(i), (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(frame)
    writer.release()


def cut_file(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
