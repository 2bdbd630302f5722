"""DeeperForensics-1.0.

Layout (the official release, after preprocessing its video folders)::

    <root>/lists/splits/{train,val,test}.txt             manipulated video file names, e.g. 000_M101.mp4
    <root>/manipulated_videos/<perturbation>/frames/<ffid>_<actor>/
    <root>/source_videos/<actor>/.../frames/<vid>/        the actors' own recordings (real)

``<perturbation>`` is ``end_to_end`` unless ``--perturbation`` names another
folder of ``manipulated_videos``. Fakes follow the official split lists. The
actors' source videos have no split; DeepfakeBench puts them in all three
(leaking them into the test set). Here each actor's real videos go to the split
holding most of that actor's fakes (ties: test, then val), and actors without
listed fakes go to train. Identity: the actor id (the face shown in both).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict

from training.registry import DATASET_ADAPTERS

from .common import SPLITS, AdapterContext, AdapterResult, IndexBuilder, require_dir, require_file

REAL_LABEL, FAKE_LABEL = "DF_real", "DF_fake"
DEFAULT_PERTURBATION = "end_to_end"


def actor_of_fake(video: str) -> str:
    """``000_M101`` -> ``M101``."""
    return video.split("_", 1)[1] if "_" in video else video


@DATASET_ADAPTERS.register("DeeperForensics-1.0")
def deeperforensics(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    perturbation = context.options.get("perturbation", DEFAULT_PERTURBATION)
    fakes_dir = require_dir(root / "manipulated_videos" / perturbation, f"DeeperForensics-1.0 fakes ({perturbation})",
                            "Pass --perturbation <folder of manipulated_videos> or extract that folder.")
    builder = IndexBuilder(context, "DeeperForensics-1.0", [REAL_LABEL, FAKE_LABEL])
    fake_splits: Dict[str, Counter] = {}
    for split in SPLITS:
        listing = require_file(root / "lists" / "splits" / f"{split}.txt", f"DeeperForensics-1.0 split list {split}",
                               "It ships in the release under lists/splits/; extract the lists folder.")
        for line in listing.read_text(encoding="utf-8").split():
            video = Path(line.strip()).stem
            builder.add(FAKE_LABEL, split, fakes_dir, video, identity=actor_of_fake(video))
            fake_splits.setdefault(actor_of_fake(video), Counter())[split] += 1

    tie_order = {"test": 0, "val": 1, "train": 2}
    sources = root / "source_videos"
    for frames_dir in sorted(sources.rglob("frames")) if sources.is_dir() else []:
        actor = frames_dir.relative_to(sources).parts[0]
        counts = fake_splits.get(actor)
        split = min(counts, key=lambda s: (-counts[s], tie_order[s])) if counts else "train"
        prefix = frames_dir.parent.relative_to(sources).as_posix()
        for video in sorted(p.name for p in frames_dir.iterdir() if p.is_dir()):
            builder.add(REAL_LABEL, split, frames_dir.parent, video, video=f"{prefix}/{video}", identity=actor)
    builder.check_labels({REAL_LABEL: sources, FAKE_LABEL: fakes_dir / "frames"})
    return AdapterResult({"DeeperForensics-1.0": builder.json()}, builder.notes())
