"""FFIW-10K (Face Forensics in the Wild).

Layout (the official releases, after preprocessing each folder)::

    <root>/source/<split>/frames/<vid>/     real   (from source/<split>/[videos/]<vid>.mp4)
    <root>/target/<split>/frames/<vid>/     fake   (same clip with some faces swapped)

``<split>`` is ``train``, ``val`` (FFIW10K-v1-release) and ``test`` (the separate
FFIW10K-v1-release-test archive: copy or link its ``source/test`` and
``target/test`` into the same root). Any split folder that exists is indexed.
No identity labels ship; a source clip and its manipulated target share the
file name, which is used as the identity so pairs stay together.

FFIW videos show several people and only some faces are manipulated: preprocessing
keeps the largest consistently tracked face, which may be an untouched one.
"""
from __future__ import annotations

from training.registry import DATASET_ADAPTERS

from .common import SPLITS, AdapterContext, AdapterError, AdapterResult, IndexBuilder

LABELS = {"source": "FFIW_real", "target": "FFIW_fake"}


@DATASET_ADAPTERS.register("FFIW-10K")
def ffiw(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    builder = IndexBuilder(context, "FFIW-10K", list(LABELS.values()))
    found = []
    for folder, label in LABELS.items():
        for split in SPLITS:
            frames = root / folder / split / "frames"
            if not frames.is_dir():
                continue
            found.append(f"{folder}/{split}")
            for video in sorted(p.name for p in frames.iterdir() if p.is_dir()):
                builder.add(label, split, root / folder / split, video, identity=video,
                            source=video if folder == "target" else None)  # same clip, faces swapped
    if not found:
        raise AdapterError(f"FFIW-10K: no {root}/<source|target>/<train|val|test>/frames folder. Extract the "
                           f"release into {root} and run `python -m preprocessing.preprocess --input {root}`.")
    builder.check_labels({label: root / folder for folder, label in LABELS.items()})
    return AdapterResult({"FFIW-10K": builder.json()}, builder.notes() + [f"FFIW-10K: indexed {', '.join(found)}"])
