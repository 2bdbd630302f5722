"""DeepFakeDetection (Google/Jigsaw DFD, distributed inside FaceForensics++).

Layout (in the FaceForensics++ root, after preprocessing)::

    <root>/original_sequences/actors/<comp>/frames/<a>__<scene>/              e.g. 01__exit_phone_room
    <root>/manipulated_sequences/DeepFakeDetection/<comp>/frames/<a>_<b>__<scene>__<hash>/
    <root>/manipulated_sequences/DeepFakeDetection/masks/videos/*.mp4         (read by preprocessing)

DFD has no official split, and DeepfakeBench puts every video in train, val and
test. Here the split is by actor so no identity leaks between splits: the actor
ids (28 paid actors) in numeric order, of every 7 consecutive actors the 6th
goes to val, the 7th to test, the rest to train (20/4/4 actors). A real video
follows its actor. A fake involves two actors (``<a>_<b>``); it is kept only
when both are in the same split and dropped otherwise (reported; roughly half
the fakes), because either face would leak an identity across splits.

Cross-dataset evaluation in the literature uses *every* DFD video as the test
set; that protocol is written too, as ``DeepFakeDetection-all.json`` (split
``test`` only). Identity: the first actor (the filmed scene).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from training.registry import DATASET_ADAPTERS

from .common import (AdapterContext, AdapterResult, IndexBuilder, carve_by_identity, natural_key,
                     split_of_group)
from .faceforensics import compression_levels, method_dir

REAL_LABEL, FAKE_LABEL = "DFD_real", "DFD_fake"
ACTOR_PERIOD, HELD_OUT = 7, ("val", "test")


def actors_of(video: str) -> List[str]:
    """``01__scene`` -> [01]; ``01_02__scene__hash`` -> [01, 02]."""
    return video.split("__")[0].split("_")


def source_of_fake(video: str) -> str:
    """``01_02__scene__hash`` was made from actor 01's recording ``01__scene``."""
    parts = video.split("__")
    return f"{actors_of(video)[0]}__{parts[1]}" if len(parts) > 1 else video


def videos_in(folder: Path) -> List[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir()) if folder.is_dir() else []


@DATASET_ADAPTERS.register("DeepFakeDetection")
def deepfakedetection(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    reals = root / "original_sequences" / "actors"
    fakes = method_dir(root, "DeepFakeDetection")
    levels = compression_levels(context, [reals, fakes])
    by_level: Dict[str, Dict[str, List[str]]] = {
        level: {REAL_LABEL: videos_in(reals / level / "frames"), FAKE_LABEL: videos_in(fakes / level / "frames")}
        for level in levels}
    actors = {actor for videos in by_level.values() for names in videos.values()
              for name in names for actor in actors_of(name)}
    assignment = carve_by_identity(actors, ACTOR_PERIOD, HELD_OUT)

    split_builder = IndexBuilder(context, "DeepFakeDetection", [REAL_LABEL, FAKE_LABEL], levels)
    all_builder = IndexBuilder(context, "DeepFakeDetection-all", [REAL_LABEL, FAKE_LABEL], levels)
    crossing = 0
    for level in levels:
        for label, folder in ((REAL_LABEL, reals), (FAKE_LABEL, fakes)):
            for name in by_level[level][label]:
                identity = actors_of(name)[0]
                source = source_of_fake(name) if label == FAKE_LABEL else None
                all_builder.add(label, "test", folder / level, name, identity=identity, compression=level,
                                source=source)
                split = split_of_group(actors_of(name), assignment)
                if split is None:
                    crossing += 1
                    continue
                split_builder.add(label, split, folder / level, name, identity=identity, compression=level,
                                  source=source)
    hints = {REAL_LABEL: reals / levels[0] / "frames", FAKE_LABEL: fakes / levels[0] / "frames"}
    split_builder.check_labels(hints)
    notes = split_builder.notes()
    if crossing:
        notes.append(f"DeepFakeDetection: {crossing} fake video(s) mix actors of two splits and are left out of "
                     f"DeepFakeDetection.json (they are in DeepFakeDetection-all.json)")
    held = {split: sorted((actor for actor, where in assignment.items() if where == split), key=natural_key)
            for split in HELD_OUT}
    notes.append(f"DeepFakeDetection: actors in val {held['val']}, in test {held['test']}, the rest in train")
    return AdapterResult({"DeepFakeDetection": split_builder.json(),
                          "DeepFakeDetection-all": all_builder.json()}, notes)
