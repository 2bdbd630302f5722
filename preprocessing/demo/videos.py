"""Render, manipulate, encode and write the videos of one identity (one ``VideoJob``).

Every random choice draws from a generator seeded by (seed, what, who), never
from shared state, so jobs can run in any order or process and the output is
byte-identical for a given seed.
"""
from __future__ import annotations

import functools
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from preprocessing.demo.benchmark import (DatasetSpec, LabelSpec, VideoJob, dataset_spec, frame_folder,
                                          identity_name, video_name)
from preprocessing.demo.clips import FRAME_INDICES, sample_clip
from preprocessing.demo.degradations import DISTRIBUTIONS
from preprocessing.demo.manipulations import METHODS, CameraClip, Donor, Person
from preprocessing.demo.render import build_assets, render_frame, sample_identity, to_uint8

# Huffman-only deflate: ~30% faster than the default and smaller on noisy images.
_FRAME_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
_MASK_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # masks are mostly flat: run-length friendly

Record = Dict[str, Union[str, List[str]]]


def rng_for(seed: int, *parts: Union[str, int]) -> np.random.Generator:
    """An independent generator for one named purpose (strings hashed stably, not with hash())."""
    words = [int(seed)] + [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return np.random.default_rng(words)


@functools.lru_cache(maxsize=8)  # a person is often needed again as another's donor
def make_person(seed: int, number: int) -> Person:
    rng = rng_for(seed, "identity", number)
    identity = sample_identity(number, rng)
    return Person(identity, build_assets(identity, rng))


def render_clip(seed: int, person: Person, clip_index: int, motion: float = 1.0) -> CameraClip:
    script = sample_clip(rng_for(seed, "clip", person.identity.number, clip_index), motion)
    noise_rng = rng_for(seed, "sensor", person.identity.number, clip_index)
    states, frames, landmarks = [], [], []
    for t in FRAME_INDICES:
        state = script.state(t)
        image, lm = render_frame(person.identity, person.assets, state, noise_rng)
        states.append(state)
        frames.append(image)
        landmarks.append(lm)
    return CameraClip(person, FRAME_INDICES, tuple(states), tuple(frames), tuple(landmarks))


def _write_png(path: Path, image: np.ndarray, params: Sequence[int]) -> None:
    if not cv2.imwrite(str(path), image, list(params)):
        raise OSError(f"cv2.imwrite could not write {path}; check that the folder is writable")


def write_video(root: Path, folder: str, video: str, frames: Sequence[np.ndarray],
                landmarks: Sequence[np.ndarray], masks: Optional[Sequence[np.ndarray]]) -> Record:
    """Write one video's files under ``root/folder`` and return its JSON record paths."""
    kinds = ["frames", "landmarks"] + (["masks"] if masks is not None else [])
    for kind in kinds:
        (root / folder / kind / video).mkdir(parents=True, exist_ok=True)
    record: Record = {kind: [] for kind in kinds}
    for k, index in enumerate(FRAME_INDICES):
        stem = f"{index:03d}"
        rel = {kind: f"{folder}/{kind}/{video}/{stem}" for kind in kinds}
        _write_png(root / (rel["frames"] + ".png"), frames[k], _FRAME_PNG)
        np.save(root / (rel["landmarks"] + ".npy"), np.asarray(landmarks[k], np.float32))
        record["frames"].append(rel["frames"] + ".png")
        record["landmarks"].append(rel["landmarks"] + ".npy")
        if masks is not None:
            _write_png(root / (rel["masks"] + ".png"), masks[k], _MASK_PNG)
            record["masks"].append(rel["masks"] + ".png")
    return record


def _encode(seed: int, spec: DatasetSpec, label: LabelSpec, job: VideoJob,
            frames: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Apply the dataset's distribution step (compression, resolution loss ...) to one video."""
    rng = rng_for(seed, "distribution", spec.name, label.name, job.identity)
    distribution = DISTRIBUTIONS[spec.distribution](rng)
    return [distribution.apply(frame, rng) for frame in frames]


def run_job(root: Union[str, Path], seed: int, dataset: str, job: VideoJob) -> List[Tuple[str, str, Record]]:
    """Write every video of ``job``; return (label name, video name, JSON record) per video."""
    root = Path(root)
    spec = dataset_spec(dataset)
    person = make_person(seed, job.identity)
    real_clip = render_clip(seed, person, 0, spec.motion)
    # FF++ fakes are manipulated copies of the real videos; elsewhere the fake
    # comes from another recording of the same person.
    fake_base = real_clip if spec.fakes_share_real_clip else None
    donor: Optional[Donor] = None
    written = []
    real_label = next(label for label in spec.labels if not label.is_fake)
    for label in spec.labels:
        name = video_name(spec, label, job)
        if not label.is_fake:
            frames, landmarks, masks = real_clip.frames, real_clip.landmarks, None
        else:
            if fake_base is None:
                fake_base = render_clip(seed, person, 1, spec.motion)
            if donor is None:
                donor_script = sample_clip(rng_for(seed, "clip", job.donor, 0))
                donor = Donor(make_person(seed, job.donor), donor_script)
            fakes = METHODS[label.method](fake_base, donor, rng_for(seed, "method", spec.name, label.name,
                                                                      job.identity))
            frames = [fake.image for fake in fakes]
            landmarks = [fake.landmarks for fake in fakes]
            masks = [to_uint8(fake.mask * 255.0) for fake in fakes]
        encoded = _encode(seed, spec, label, job, frames)
        record = write_video(root, frame_folder(spec, label), name, encoded, landmarks, masks)
        ordered: Record = {"label": label.name, "frames": record["frames"]}
        if masks is not None:
            ordered["masks"] = record["masks"]
        ordered["landmarks"] = record["landmarks"]
        ordered["identity"] = identity_name(job.identity)
        if label.is_fake and spec.fakes_share_real_clip:  # a manipulated copy of this job's real video
            ordered["source"] = video_name(spec, real_label, job)
        written.append((label.name, name, ordered))
    return written
