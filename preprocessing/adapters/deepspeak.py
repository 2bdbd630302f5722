"""DeepSpeak v1 (faridlab/deepspeak_v1 on the Hugging Face hub).

The dataset is distributed through the ``datasets`` library with splits
``train`` and ``test``. Assumed layout once its videos are exported to files
and preprocessed (write them out this way)::

    <root>/<train|test>/<real|fake>/<vid>.mp4   ->   <root>/<split>/<label>/frames/<vid>/
    <root>/metadata.csv                             optional: columns "video" (file name) and "identity"

test = the hub's ``test`` split. val is carved from ``train`` by identity (every
10th identity in natural order) when metadata.csv gives identities, otherwise
by video (every 10th video name). Videos without a metadata row have no identity.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, carve_by_identity

LABELS = {"real": "DeepSpeak_real", "fake": "DeepSpeak_fake"}
VAL_PERIOD = 10


def read_identities(path: Path) -> Dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"video", "identity"} <= set(rows[0]):
        raise AdapterError(f"{path} needs the columns 'video' and 'identity' (found {sorted(rows[0])}).")
    return {Path(row["video"]).stem: row["identity"] for row in rows if row.get("identity")}


@DATASET_ADAPTERS.register("DeepSpeak-v1")
def deepspeak(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    identities = read_identities(root / "metadata.csv")
    videos = {(split, folder): sorted(p.name for p in (root / split / folder / "frames").iterdir() if p.is_dir())
              for split in ("train", "test") for folder in LABELS
              if (root / split / folder / "frames").is_dir()}
    if not videos:
        raise AdapterError(f"DeepSpeak-v1: no {root}/<train|test>/<real|fake>/frames folder. Export the hub "
                           f"dataset's videos to that layout and preprocess them (see the adapter docstring).")

    def group(video: str) -> str:
        return identities.get(video, f"video/{video}")

    assignment = carve_by_identity({group(v) for (split, _), names in videos.items() if split == "train"
                                    for v in names}, VAL_PERIOD, ("val",))
    builder = IndexBuilder(context, "DeepSpeak-v1", list(LABELS.values()))
    for (split, folder), names in sorted(videos.items()):
        for video in names:
            target = "test" if split == "test" else assignment[group(video)]
            builder.add(LABELS[folder], target, root / split / folder, video, identity=identities.get(video))
    builder.check_labels({label: root / "train" / folder / "frames" for folder, label in LABELS.items()})
    return AdapterResult({"DeepSpeak-v1": builder.json()}, builder.notes())
