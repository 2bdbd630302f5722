"""DFDC (the full Deepfake Detection Challenge dataset).

Layout (the official archives, after preprocessing each folder)::

    <root>/test/labels.csv                          "filename,label" (label 1 = fake)
    <root>/test/frames/<vid>/                       from test/<vid>.mp4 (or test/videos/<vid>.mp4)
    <root>/train/dfdc_train_part_<n>/metadata.json  {"<vid>.mp4": {"label": "REAL"|"FAKE", "original": ...}}
    <root>/train/dfdc_train_part_<n>/frames/<vid>/

test = test/labels.csv. train and val come from the training parts: DFDC has
no actor labels, so val is carved by part (parts group recording sessions):
parts whose number ends in 9 (9, 19, 29, 39, 49: 10%) are val. A fake and the
real it was made from are in the same part, so they share the split.
Identity: a real video's own name; a fake's ``original`` (its source real).
Only the test part is needed to use DFDC as a test set.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, require_file

REAL_LABEL, FAKE_LABEL = "DFDC_Real", "DFDC_Fake"
PART_PATTERN = re.compile(r"dfdc_train_part_(\d+)$")


def read_test_labels(path: Path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"filename", "label"} <= set(rows[0]):
        raise AdapterError(f"{path} must be a CSV with the columns 'filename' and 'label' (1 = fake). "
                           f"Use the labels.csv of the official DFDC test set.")
    return [(Path(row["filename"]).stem, int(float(row["label"]))) for row in rows]


@DATASET_ADAPTERS.register("DFDC")
def dfdc(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    builder = IndexBuilder(context, "DFDC", [REAL_LABEL, FAKE_LABEL])
    labels = require_file(root / "test" / "labels.csv", "DFDC test labels",
                          "It ships with the DFDC test set (test/labels.csv); place it there.")
    for video, label in read_test_labels(labels):
        builder.add(FAKE_LABEL if label == 1 else REAL_LABEL, "test", root / "test", video, identity=video)

    parts = sorted((int(match.group(1)), path) for path in (root / "train").glob("dfdc_train_part_*")
                   if path.is_dir() and (match := PART_PATTERN.search(path.name)))
    for number, part in parts:
        metadata_path = require_file(part / "metadata.json", f"metadata of {part.name}",
                                     f"It ships inside each DFDC training part; re-extract {part.name}.")
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        split = "val" if number % 10 == 9 else "train"
        for filename, entry in sorted(metadata.items()):
            video = Path(filename).stem
            fake = str(entry.get("label", "")).upper() == "FAKE"
            identity = Path(entry["original"]).stem if fake and entry.get("original") else video
            builder.add(FAKE_LABEL if fake else REAL_LABEL, split, part, video, identity=identity,
                        source=identity if fake and entry.get("original") else None)
    builder.check_labels({REAL_LABEL: root / "test" / "frames", FAKE_LABEL: root / "test" / "frames"})
    return AdapterResult({"DFDC": builder.json()}, builder.notes())
