"""Celeb-DF v1 and v2.

Layout (the official archive, after preprocessing each folder)::

    <root>/Celeb-real/frames/id<k>_<nnnn>/            real, celebrity k
    <root>/YouTube-real/frames/<nnnnn>/               real, unnamed YouTube people
    <root>/Celeb-synthesis/frames/id<t>_id<s>_<nnnn>/ fake: target t, source s
    <root>/List_of_testing_videos.txt                 lines "<1 real | 0 fake> <folder>/<video>.mp4"

test = the official list. train = every other video: DeepfakeBench also puts the
test videos into train, which leaks the test set into training. val is carved
from train by identity: in natural order, every 10th identity (celebrity id, or
the video itself for YouTube-real) goes to val. A fake goes to the split of
its two identities; a fake whose target and source land in different splits
is left out (reported), so no identity is shared between train and val.
The official test list is not identity-disjoint from train; that is the
protocol everybody reports, so it is kept as is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from training.registry import DATASET_ADAPTERS

from .common import (AdapterContext, AdapterError, AdapterResult, IndexBuilder, carve_by_identity,
                     require_file, split_of_group)
from .scan import celeb_source

REAL_FOLDERS = ("Celeb-real", "YouTube-real")
FAKE_FOLDER = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"
VAL_PERIOD = 10


def identities_of(folder: str, video: str) -> List[str]:
    if folder == "YouTube-real":
        return [f"youtube/{video}"]
    parts = video.split("_")
    return [part for part in parts if part.startswith("id")] or [video]


def read_test_list(path: Path) -> Set[Tuple[str, str]]:
    """{(folder, video stem)} of the official test list."""
    listed = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        relative = Path(fields[-1].replace("\\", "/"))
        if len(fields) != 2 or relative.parent.name not in (*REAL_FOLDERS, FAKE_FOLDER):
            raise AdapterError(f"{path}, line {number}: expected '<label> <folder>/<video>.mp4' with folder "
                               f"one of {', '.join((*REAL_FOLDERS, FAKE_FOLDER))}, got {line!r}. Use the "
                               f"official {TEST_LIST}.")
        listed.add((relative.parent.name, relative.stem))
    return listed


def build_celebdf(context: AdapterContext, dataset: str, prefix: str) -> AdapterResult:
    root = context.dataset_root
    test = read_test_list(require_file(root / TEST_LIST, f"{dataset} test list",
                                       f"It ships in the {dataset} archive; copy it into {root}."))
    real_label, fake_label = f"{prefix}_real", f"{prefix}_fake"
    label_of = {folder: real_label for folder in REAL_FOLDERS}
    label_of[FAKE_FOLDER] = fake_label
    on_disk: Dict[str, List[str]] = {}
    for folder in label_of:
        frames = root / folder / "frames"
        on_disk[folder] = sorted(p.name for p in frames.iterdir() if p.is_dir()) if frames.is_dir() else []

    train_videos = [(folder, video) for folder, videos in on_disk.items() for video in videos
                    if (folder, video) not in test]
    assignment = carve_by_identity({identity for folder, video in train_videos
                                    for identity in identities_of(folder, video)}, VAL_PERIOD, ("val",))
    builder = IndexBuilder(context, dataset, [real_label, fake_label])
    for folder, video in sorted(test):
        builder.add(label_of[folder], "test", root / folder, video, identity=_identity(folder, video),
                    source=source_video(folder, video))
    crossing = 0
    for folder, video in train_videos:
        split = split_of_group(identities_of(folder, video), assignment)
        if split is None:
            crossing += 1
            continue
        builder.add(label_of[folder], split, root / folder, video, identity=_identity(folder, video),
                    source=source_video(folder, video))
    builder.check_labels({real_label: root / REAL_FOLDERS[0] / "frames", fake_label: root / FAKE_FOLDER / "frames"})
    notes = builder.notes()
    if crossing:
        notes.append(f"{dataset}: {crossing} training fake(s) mix a train and a val identity and are left out")
    return AdapterResult({dataset: builder.json()}, notes)


def source_video(folder: str, video: str) -> Optional[str]:
    return celeb_source(video) if folder == FAKE_FOLDER else None


def _identity(folder: str, video: str) -> Optional[str]:
    """The filmed person: the celebrity id (target id for fakes); unknown for YouTube-real."""
    return None if folder == "YouTube-real" else identities_of(folder, video)[0]


@DATASET_ADAPTERS.register("Celeb-DF-v1")
def celebdf_v1(context: AdapterContext) -> AdapterResult:
    return build_celebdf(context, "Celeb-DF-v1", "CelebDFv1")


@DATASET_ADAPTERS.register("Celeb-DF-v2")
def celebdf_v2(context: AdapterContext) -> AdapterResult:
    return build_celebdf(context, "Celeb-DF-v2", "CelebDFv2")
