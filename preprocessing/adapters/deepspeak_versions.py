"""DeepSpeak v1.1 and v2.0 (faridlab/deepspeak_v1_1, faridlab/deepspeak_v2 on the Hugging Face hub).

Both are distributed through the ``datasets`` library with splits ``train`` and
``test`` and a generation engine per fake. Layout once the videos are exported to
files, one folder per engine, and preprocessed (write them out this way)::

    <root>/<train|test>/real/<vid>.mp4         ->  <root>/<split>/real/frames/<vid>/
    <root>/<train|test>/<engine>/<vid>.mp4     ->  <root>/<split>/<engine>/frames/<vid>/
    <root>/metadata.csv                           optional: "video", "identity", and "source" (a fake's real video)

Engines, as in GenD's file lists (config/datasets/DeepSpeak-*/test/test-<engine>.txt):
v1.1 facefusion, facefusion_gan, facefusion_live, retalking, wav2lip; v2.0 diff2lip,
facefusion, hellomeme, latentsync, liveportrait, memo. Any other engine folder is
indexed as a fake too (and named in the notes). test = the hub's ``test`` split.
val is carved from ``train`` by identity (every 10th identity in natural order,
GenD's "my-val is sampled from train"); without metadata.csv every video is its
own identity. v1.1 differs from v1 (``DeepSpeak-v1``, one real and one fake folder)
by its per-engine folders and its identity/source metadata.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Tuple

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, carve_by_identity
from .deepspeak import LABELS
from .scan import listed_videos

REAL_FOLDER = "real"
ENGINES = {
    "DeepSpeak-v1.1": ("facefusion", "facefusion_gan", "facefusion_live", "retalking", "wav2lip"),
    "DeepSpeak-v2.0": ("diff2lip", "facefusion", "hellomeme", "latentsync", "liveportrait", "memo"),
}
VAL_PERIOD = 10


def read_metadata(path: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    """({video: identity}, {video: source real video}) from the optional metadata.csv."""
    if not path.is_file():
        return {}, {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "video" not in rows[0]:
        raise AdapterError(f"{path} needs a 'video' column (and 'identity', optionally 'source'); "
                           f"found {sorted(rows[0])}.")
    identities = {Path(r["video"]).stem: r["identity"] for r in rows if r.get("identity")}
    sources = {Path(r["video"]).stem: Path(r["source"]).stem for r in rows if r.get("source")}
    return identities, sources


def build(context: AdapterContext, dataset: str) -> AdapterResult:
    root = context.dataset_root
    identities, sources = read_metadata(root / "metadata.csv")
    folders = {split: sorted(p.name for p in (root / split).iterdir() if p.is_dir())
               for split in ("train", "test") if (root / split).is_dir()}
    if not folders or not any(REAL_FOLDER in names for names in folders.values()):
        raise AdapterError(f"{dataset}: expected {root}/<train|test>/{REAL_FOLDER}/ and one folder per engine "
                           f"({', '.join(ENGINES[dataset])}). Export the hub dataset's videos to that layout and "
                           f"preprocess them (see the adapter docstring).")

    def group(video: str) -> str:
        return identities.get(video, f"video/{video}")

    videos = {(split, folder): listed_videos(root / split / folder) for split, names in folders.items()
              for folder in names}
    assignment = carve_by_identity({group(v) for (split, _), names in videos.items() if split == "train"
                                    for v in names}, VAL_PERIOD, ("val",))
    builder = IndexBuilder(context, dataset, list(LABELS.values()))
    for (split, folder), names in sorted(videos.items()):
        fake = folder != REAL_FOLDER
        for video in names:
            target = "test" if split == "test" else assignment[group(video)]
            # Engines reuse file names: the key carries the engine.
            builder.add(LABELS["fake" if fake else "real"], target, root / split / folder, video,
                        video=f"{folder}/{video}" if fake else video, identity=identities.get(video),
                        source=sources.get(video) if fake else None)
    builder.check_labels({label: root / "train" / (REAL_FOLDER if kind == "real" else "<engine>") / "frames"
                          for kind, label in LABELS.items()})
    notes = builder.notes()
    unknown = sorted({f for names in folders.values() for f in names} - {REAL_FOLDER, *ENGINES[dataset]})
    if unknown:
        notes.append(f"{dataset}: folders {', '.join(unknown)} are not engines of its release; indexed as fakes")
    return AdapterResult({dataset: builder.json()}, notes)


@DATASET_ADAPTERS.register("DeepSpeak-v1.1")
def deepspeak_v1_1(context: AdapterContext) -> AdapterResult:
    return build(context, "DeepSpeak-v1.1")


@DATASET_ADAPTERS.register("DeepSpeak-v2.0")
def deepspeak_v2_0(context: AdapterContext) -> AdapterResult:
    return build(context, "DeepSpeak-v2.0")
