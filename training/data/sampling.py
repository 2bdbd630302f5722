"""Which frames of a video become samples.

Positions are indices into a record's (sorted) frame list, not original frame
numbers. Image detectors take frames spread over the *whole* video
(DeepfakeBench meant to, but took the first N); temporal detectors take clips
of consecutive frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np


def _round_half_up(values: np.ndarray) -> np.ndarray:
    # np.round rounds half to even, which can map two linspace points onto one index.
    return np.floor(values + 0.5).astype(int)


def even_frame_positions(n_frames: int, frame_num: int) -> List[int]:
    """``frame_num`` positions evenly spread over ``n_frames``, first and last included.

    All frames when ``n_frames <= frame_num`` or ``frame_num <= 0``; the middle
    frame when ``frame_num == 1``.
    """
    if n_frames <= 0:
        return []
    if frame_num <= 0 or n_frames <= frame_num:
        return list(range(n_frames))
    if frame_num == 1:
        return [(n_frames - 1) // 2]
    return _round_half_up(np.linspace(0, n_frames - 1, frame_num)).tolist()


@dataclass(frozen=True)
class ClipStarts:
    starts: List[int]  # first position of each clip
    padded: bool  # the video is shorter than one clip; clip_positions repeats its last frame


def num_clips_for(n_frames: int, clip_len: int, num_clips: int) -> int:
    """How many clips a video yields; fixed per video so epochs have equal length.

    ``num_clips <= 0`` means every non-overlapping clip (``n_frames // clip_len``).
    A short video yields one padded clip. Never more clips than distinct starts.
    """
    if n_frames <= 0:
        raise ValueError("a video with no frames has no clips")
    if clip_len <= 0:
        raise ValueError(f"clip_len must be positive, got {clip_len}")
    if n_frames < clip_len:
        return 1
    if num_clips <= 0:
        return n_frames // clip_len
    return min(num_clips, n_frames - clip_len + 1)


def clip_starts(n_frames: int, clip_len: int, num_clips: int, train: bool,
                rng: np.random.Generator) -> ClipStarts:
    """Start positions of the clips of one video.

    Test: evenly spaced over the whole video (first and last clip included; the
    middle clip when there is one), deterministic. Train: the range of valid
    starts is cut into equal segments and each clip starts at a random point of
    its segment (TSN-style), so offsets change every call; ``rng`` makes them
    reproducible. A video shorter than ``clip_len`` gives ``[0]`` with ``padded=True``.
    """
    count = num_clips_for(n_frames, clip_len, num_clips)
    if n_frames < clip_len:
        return ClipStarts([0], padded=True)
    last_start = n_frames - clip_len
    if not train:
        if count == 1:
            return ClipStarts([last_start // 2], padded=False)
        return ClipStarts(_round_half_up(np.linspace(0, last_start, count)).tolist(), padded=False)
    bounds = np.linspace(0, last_start + 1, count + 1)
    starts = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        low_i = int(np.floor(low))
        high_i = max(int(np.floor(high)), low_i + 1)  # exclusive; segments are never empty
        starts.append(int(rng.integers(low_i, min(high_i, last_start + 1))))
    return ClipStarts(starts, padded=False)


def clip_positions(start: int, clip_len: int, n_frames: int) -> List[int]:
    """The ``clip_len`` frame positions of a clip; past the end the last frame repeats.

    Holding the last frame (rather than looping to the first) avoids a jump cut,
    which a temporal detector could mistake for a manipulation artefact.
    """
    return [min(start + offset, n_frames - 1) for offset in range(clip_len)]
