"""Which datasets the demo benchmark has, and how each is laid out and split.

Pure description, no rendering: the generator and the JSON writer both read
these specs, so the paths listed in a JSON are exactly the paths written.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

SPLITS = ("train", "val", "test")
LAYOUT_DIR = "demo"  # every demo dataset lives under <root>/demo/<DatasetName>/
DONOR_METHODS = frozenset({"swap", "reenact", "soft_swap", "wild_swap"})  # need a second person


@dataclass(frozen=True)
class LabelSpec:
    name: str  # label name, as in configs/_base_/datasets.yaml
    folder: str  # video folder relative to the dataset's layout root
    method: Optional[str] = None  # key of manipulations.METHODS; None for real videos

    @property
    def is_fake(self) -> bool:
        return self.method is not None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    labels: Tuple[LabelSpec, ...]
    identities_per_split: Tuple[int, int, int]  # train, val, test at scale 1
    distribution: str  # key of degradations.DISTRIBUTIONS, applied to every video
    video_naming: str  # "ff" | "celeb" | "hash" | "plain"
    compression: Optional[str] = None  # FF++-style nesting level ("c23"); None = flat
    fakes_share_real_clip: bool = False  # FF++: every fake is a manipulated copy of a real video
    motion: float = 1.0  # head motion and speech, relative to the default talking head (clips.sample_clip)

    def identity_counts(self, scale: float) -> Tuple[int, int, int]:
        # At least one identity per split, so every split exists at any scale.
        return tuple(max(1, int(round(n * scale))) for n in self.identities_per_split)


DATASETS: Tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="DemoFF",
        labels=(
            LabelSpec("DemoFF_real", "original_sequences/c23"),
            LabelSpec("DemoFF_swap", "manipulated_sequences/Swap/c23", "swap"),
            LabelSpec("DemoFF_reenact", "manipulated_sequences/Reenact/c23", "reenact"),
            LabelSpec("DemoFF_texture", "manipulated_sequences/Texture/c23", "texture"),
            LabelSpec("DemoFF_selfblend", "manipulated_sequences/SelfBlend/c23", "selfblend"),
        ),
        identities_per_split=(24, 6, 8),
        distribution="light",
        video_naming="ff",
        compression="c23",
        fakes_share_real_clip=True,
    ),
    DatasetSpec(
        name="DemoCDF",
        labels=(LabelSpec("DemoCDF_real", "Celeb-real"),
                LabelSpec("DemoCDF_fake", "Celeb-synthesis", "soft_swap")),
        identities_per_split=(8, 4, 20),
        distribution="web",
        video_naming="celeb",
    ),
    DatasetSpec(
        name="DemoDFDC",
        labels=(LabelSpec("DemoDFDC_real", "real"), LabelSpec("DemoDFDC_fake", "fake", "wild_swap")),
        identities_per_split=(8, 4, 20),
        distribution="wild",
        video_naming="hash",
    ),
    DatasetSpec(
        name="DemoTemporal",
        labels=(LabelSpec("DemoTemporal_real", "real"),
                LabelSpec("DemoTemporal_fake", "fake", "flicker")),
        # Bigger than the other held-out sets: it is also a training set (a from-scratch temporal
        # branch needs examples), and a 120-video test split keeps the temporal-vs-frame comparison
        # out of test-set noise (docs/TEMPORAL.md, section 4).
        identities_per_split=(32, 8, 60),
        distribution="light",
        video_naming="plain",
        # A steady interview shot (real and fake alike): little head motion and speech between
        # frames, so frame-to-frame change is the flicker's, not the renderer's motion.
        motion=0.25,
    ),
)
DATASET_NAMES = tuple(spec.name for spec in DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    for spec in DATASETS:
        if spec.name == name:
            return spec
    raise KeyError(f"Unknown demo dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")


@dataclass(frozen=True)
class VideoJob:
    """One identity of one split: its real video and its fakes are rendered together."""

    dataset: str
    split: str
    identity: int  # the target person
    donor: int  # the second person for swaps and reenactment


def _identity_blocks(scale: float) -> Dict[str, int]:
    """First identity number of each dataset: blocks of 100 keep identities disjoint across datasets."""
    blocks, start = {}, 0
    for spec in DATASETS:
        blocks[spec.name] = start
        needed = sum(spec.identity_counts(scale)) + len(SPLITS)  # + one spare donor per split
        start += 100 * math.ceil(needed / 100)
    return blocks


def jobs_for(spec: DatasetSpec, scale: float) -> List[VideoJob]:
    """Every identity of ``spec`` with its split and donor, in a fixed order.

    Donors come from the same split (as FF++ pairs its videos), so a test
    video never shows a training person; a split of one person borrows a
    spare identity that appears in no split.
    """
    start = _identity_blocks(scale)[spec.name]
    counts = spec.identity_counts(scale)
    spare = start + sum(counts)
    jobs, first = [], start
    for split_index, (split, count) in enumerate(zip(SPLITS, counts)):
        members = list(range(first, first + count))
        for position, person in enumerate(members):
            donor = members[(position + 1) % count] if count > 1 else spare + split_index
            jobs.append(VideoJob(spec.name, split, person, donor))
        first += count
    return jobs


def identity_name(number: int) -> str:
    return f"id_{number:03d}"


def video_name(spec: DatasetSpec, label: LabelSpec, job: VideoJob) -> str:
    """Folder name of one video, in the style of the dataset the spec imitates."""
    paired = label.method in DONOR_METHODS
    if spec.video_naming == "ff":  # 007 and 007_012 (target_source)
        return f"{job.identity:03d}_{job.donor:03d}" if paired else f"{job.identity:03d}"
    if spec.video_naming == "celeb":  # id7_0000 and id7_id12_0000
        return f"id{job.identity}_id{job.donor}_0000" if paired else f"id{job.identity}_0000"
    if spec.video_naming == "hash":  # DFDC's opaque names; stable across seeds
        return f"{zlib.crc32(f'{spec.name}/{label.name}/{job.identity}'.encode()):08x}"
    return f"id{job.identity:03d}"


def frame_folder(spec: DatasetSpec, label: LabelSpec) -> str:
    """Video folder relative to the data root, ``/``-separated."""
    return f"{LAYOUT_DIR}/{spec.name}/{label.folder}"


