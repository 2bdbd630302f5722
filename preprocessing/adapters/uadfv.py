"""UADFV.

Layout (after preprocessing)::

    <root>/real/frames/<nnnn>/          e.g. 0000
    <root>/fake/frames/<nnnn>_fake/     made from the real video <nnnn>

UADFV has no official split and is used as a test set; DeepfakeBench puts every
video in train, val and test, which leaks test videos into training. Here every
video is in ``test`` only (train and val are empty). Identity: the real video's
number (shared by its fake).
"""
from __future__ import annotations

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterResult, IndexBuilder, require_dir

LABELS = {"real": "UADFV_Real", "fake": "UADFV_Fake"}


@DATASET_ADAPTERS.register("UADFV")
def uadfv(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    builder = IndexBuilder(context, "UADFV", list(LABELS.values()))
    for folder, label in LABELS.items():
        frames = require_dir(root / folder / "frames", f"UADFV {folder} frames",
                             f"Run `python -m preprocessing.preprocess --input {root}` first.")
        for video in sorted(p.name for p in frames.iterdir() if p.is_dir()):
            builder.add(label, "test", root / folder, video, identity=video.split("_")[0],
                        source=video.split("_")[0] if folder == "fake" else None)
    builder.check_labels({label: root / folder / "frames" for folder, label in LABELS.items()})
    return AdapterResult({"UADFV": builder.json()}, builder.notes())
