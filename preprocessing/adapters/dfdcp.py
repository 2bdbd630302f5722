"""DFDC Preview (DFDCP).

Layout (the official archive, after preprocessing every video folder in place)::

    <root>/dataset.json     {"<path>.mp4": {"label": "real"|"fake", "set": "train"|"test", ...}}
    <root>/original_videos/<id>/.../<vid>.mp4      -> frames at <same folder>/frames/<vid>/
    <root>/method_A/<id>/.../<vid>.mp4             fake, label DFDCP_FakeA
    <root>/method_B/<id>/.../<vid>.mp4             fake, label DFDCP_FakeB

Assumption: the first path component of a dataset.json key is ``original_videos``,
``method_A`` or ``method_B`` (as DeepfakeBench also assumes), and frames sit
next to the video (``<folder>/frames/<vid>/``, our preprocessing) or, for
DeepfakeBench-preprocessed copies, under ``<root>/<component>/frames/<vid>/``.
Video names in the JSON are the key without extension (video file names repeat
across folders).

test = ``set: test``. DeepfakeBench uses the test set as val; here val is carved
from ``set: train`` by identity (the entry's ``target_id`` when present, else
the second path component, the subject id): every 10th identity in natural order.
"""
from __future__ import annotations

import json
from pathlib import PurePosixPath

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, carve_by_identity, require_file

LABEL_OF_FOLDER = {"original_videos": "DFDCP_Real", "method_A": "DFDCP_FakeA", "method_B": "DFDCP_FakeB"}
VAL_PERIOD = 10


def identity_of(key: str, entry: dict) -> str:
    if entry.get("target_id") is not None:
        return str(entry["target_id"])
    parts = PurePosixPath(key).parts
    return parts[1] if len(parts) > 2 else PurePosixPath(key).stem


@DATASET_ADAPTERS.register("DFDCP")
def dfdcp(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    path = require_file(root / "dataset.json", "DFDC Preview index", "It ships in the DFDCP archive; place it there.")
    index = json.loads(path.read_text(encoding="utf-8"))
    entries = []
    for key, entry in sorted(index.items()):
        key = key.replace("\\", "/")
        top = PurePosixPath(key).parts[0]
        if top not in LABEL_OF_FOLDER:
            raise AdapterError(f"{path}: entry {key!r} is not under {', '.join(LABEL_OF_FOLDER)}; this adapter "
                               f"assumes the official DFDCP layout.")
        expected_fake = top != "original_videos"
        if str(entry.get("label", "")).lower() not in ("real", "fake") or \
                (entry["label"].lower() == "fake") != expected_fake:
            raise AdapterError(f"{path}: entry {key!r} has label {entry.get('label')!r} but lives under {top}.")
        if entry.get("set") not in ("train", "test"):
            raise AdapterError(f"{path}: entry {key!r} has set {entry.get('set')!r}; expected train or test.")
        entries.append((key, entry, top))
    assignment = carve_by_identity({identity_of(k, e) for k, e, _ in entries if e["set"] == "train"},
                                   VAL_PERIOD, ("val",))
    builder = IndexBuilder(context, "DFDCP", list(LABEL_OF_FOLDER.values()))
    for key, entry, top in entries:
        relative = PurePosixPath(key)
        identity = identity_of(key, entry)
        split = "test" if entry["set"] == "test" else assignment[identity]
        video_dir = root / relative.parent
        if not (video_dir / "frames" / relative.stem).is_dir():
            video_dir = root / top  # DeepfakeBench-style flat frames folder
        builder.add(LABEL_OF_FOLDER[top], split, video_dir, relative.stem,
                    video=str(relative.with_suffix("")), identity=identity)
    builder.check_labels({label: root / folder for folder, label in LABEL_OF_FOLDER.items()})
    return AdapterResult({"DFDCP": builder.json()}, builder.notes())
