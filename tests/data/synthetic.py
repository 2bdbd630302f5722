"""A tiny on-disk dataset in the layout of datasets/README.md, built by the tests themselves.

Two dataset JSONs:

* ``TinyFF`` — FF++ compression nesting (split → c23/c40 → video); the folder
  name ``000`` exists under both labels; one real video has unpadded frame
  names 5, 10, 100 listed out of order.
* ``TinyFlat`` — no compression level; identities on some videos.

Landmarks are a left/right symmetric 68-point face (mirror pairs of iBUG-68
about the image centre) shifted per frame, so flipped landmarks can be
compared with unflipped ones.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from training.data.transforms import IBUG68_MIRROR

SIZE = 256
LABEL_DICT = {"FF-real": 0, "FF-DF": 1, "CelebDFv2_real": 0, "CelebDFv2_fake": 1}


def symmetric_landmarks(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """68 points where point ``IBUG68_MIRROR[i]`` is the mirror image of point ``i``."""
    rng = np.random.default_rng(seed)
    points = np.zeros((68, 2), np.float32)
    centre = (size - 1) / 2
    for i, j in enumerate(IBUG68_MIRROR):
        if j < i:
            continue
        y = rng.uniform(60, 200)
        if i == j:
            points[i] = (centre, y)
        else:
            x = rng.uniform(50, centre - 10)  # left half; its partner mirrors it
            points[i] = (x, y)
            points[j] = (size - 1 - x, y)
    return points


def frame_image(video_seed: int, frame_index: int, size: int = SIZE) -> np.ndarray:
    """A smooth RGB image that differs per video and per frame (cheap to PNG-encode)."""
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    rng = np.random.default_rng(video_seed)
    colour = rng.uniform(40, 200, 3).astype(np.float32)
    image = colour[None, None, :] * (0.5 + 0.5 * ramp[None, :, None]) * (0.7 + 0.3 * ramp[:, None, None])
    offset = (frame_index * 7) % (size - 40)
    image[offset:offset + 30, 100:140] = 250
    return image.astype(np.uint8)


def write_video(data_root: Path, folder: str, video: str, indices: Sequence[int], *, label: str,
                masks: bool = False, landmarks: bool = True, seed: int = 0, pad: int = 3,
                identity: Optional[str] = None) -> Dict:
    """Write frames (+ landmarks, masks) of one video; return its JSON record (relative paths)."""
    record: Dict = {"label": label, "frames": []}
    if masks:
        record["masks"] = []
    if landmarks:
        record["landmarks"] = []
    for index in indices:
        stem = str(index).zfill(pad)
        frame = f"{folder}/frames/{video}/{stem}.png"
        path = data_root / frame
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(frame_image(seed, index), cv2.COLOR_RGB2BGR))
        record["frames"].append(frame)
        if landmarks:
            rel = f"{folder}/landmarks/{video}/{stem}.npy"
            (data_root / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(data_root / rel, symmetric_landmarks(seed) + np.float32(index % 5))
            record["landmarks"].append(rel)
        if masks:
            rel = f"{folder}/masks/{video}/{stem}.png"
            (data_root / rel).parent.mkdir(parents=True, exist_ok=True)
            mask = np.zeros((SIZE, SIZE), np.uint8)
            cv2.circle(mask, (128, 140), 60 + index % 10, 255, -1)
            cv2.imwrite(str(data_root / rel), mask)
            record["masks"].append(rel)
    if identity is not None:
        record["identity"] = identity
    return record


def write_json(data_root: Path, name: str, tree: Dict) -> Path:
    path = data_root / "json" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: tree}, indent=1))
    return path


def reversed_lists(record: Dict) -> Dict:
    """The same record with its path lists listed back to front (the loader must sort)."""
    return {key: list(reversed(value)) if isinstance(value, list) else value for key, value in record.items()}


def build_tiny_ff(data_root: Path) -> None:
    real, fake = "TinyFF/original/{comp}", "TinyFF/Deepfakes/{comp}"
    unpadded = write_video(data_root, real.format(comp="c23"), "000", [5, 10, 100], label="FF-real",
                           seed=1, pad=1)
    unpadded["frames"] = [unpadded["frames"][i] for i in (2, 0, 1)]  # 100, 5, 10
    unpadded["landmarks"] = [unpadded["landmarks"][i] for i in (2, 0, 1)]
    tree = {
        "FF-real": {
            "train": {
                "c23": {"000": unpadded,
                        "001": reversed_lists(write_video(data_root, real.format(comp="c23"), "001",
                                                          range(0, 40, 5), label="FF-real", seed=2))},
                "c40": {"000": write_video(data_root, real.format(comp="c40"), "000", [0, 1],
                                           label="FF-real", seed=3)},
            },
            "test": {"c23": {"002": write_video(data_root, real.format(comp="c23"), "002", range(6),
                                                label="FF-real", seed=4)}},
        },
        "FF-DF": {
            "train": {
                "c23": {"000": reversed_lists(write_video(data_root, fake.format(comp="c23"), "000",
                                                          range(4), label="FF-DF", masks=True, seed=5))},
                "c40": {"000": write_video(data_root, fake.format(comp="c40"), "000", [0, 1],
                                           label="FF-DF", masks=True, seed=6)},
            },
            "test": {"c23": {"002_001": write_video(data_root, fake.format(comp="c23"), "002_001",
                                                    range(3), label="FF-DF", masks=True, seed=7)}},
        },
    }
    write_json(data_root, "TinyFF", tree)


def build_tiny_flat(data_root: Path) -> None:
    tree = {
        "CelebDFv2_real": {
            "train": {"id0_0000": write_video(data_root, "TinyFlat/Celeb-real", "id0_0000", range(5),
                                              label="CelebDFv2_real", seed=8, identity="id0")},
            "test": {"id1_0001": write_video(data_root, "TinyFlat/Celeb-real", "id1_0001", range(2),
                                             label="CelebDFv2_real", seed=9)},
        },
        "CelebDFv2_fake": {
            "train": {"id0_id1_0000": write_video(data_root, "TinyFlat/Celeb-synthesis", "id0_id1_0000",
                                                  range(5), label="CelebDFv2_fake", masks=True, seed=10,
                                                  identity="id1")},
            "test": {"id1_id0_0001": write_video(data_root, "TinyFlat/Celeb-synthesis", "id1_id0_0001",
                                                 range(2), label="CelebDFv2_fake", masks=True, seed=11)},
        },
    }
    write_json(data_root, "TinyFlat", tree)


def build_all(data_root: Path) -> Path:
    build_tiny_ff(data_root)
    build_tiny_flat(data_root)
    return data_root


def frame_paths(data_root: Path, pattern: str) -> List[Path]:
    return sorted(data_root.glob(pattern))
