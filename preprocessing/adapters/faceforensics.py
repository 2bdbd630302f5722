"""FaceForensics++ (Deepfakes, Face2Face, FaceSwap, NeuralTextures + youtube originals).

Layout (the official download script's, after preprocessing each ``videos`` folder)::

    <root>/original_sequences/youtube/<comp>/frames/<vid>/NNN.png       vid = 000 .. 999
    <root>/manipulated_sequences/<Method>/<comp>/frames/<tgt>_<src>/NNN.png
    <root>/manipulated_sequences/<Method>/masks/videos/<tgt>_<src>.mp4  (read by preprocessing)
    <root>/{train,val,test}.json   or   <root>/splits/{train,val,test}.json

``<comp>`` is ``c23``, ``c40`` or ``raw``. The split files are the official
lists of ``[a, b]`` pairs (github.com/ondyari/FaceForensics, dataset/splits):
real videos ``a`` and ``b`` and fakes ``a_b`` and ``b_a`` belong to that split.

Writes ``FaceForensics++.json`` (all four methods) and, like DeepfakeBench,
``FF-DF.json``, ``FF-F2F.json``, ``FF-FS.json``, ``FF-NT.json`` (one method + reals).
Identity: a real video's id; a fake ``000_003`` has the target id ``000``
(the filmed person, whose scene and body are kept).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, SPLITS, first_existing

COMPRESSIONS = ("c23", "c40", "raw")
REAL_LABEL = "FF-real"
METHOD_LABELS = {"Deepfakes": "FF-DF", "Face2Face": "FF-F2F", "FaceSwap": "FF-FS", "NeuralTextures": "FF-NT"}
SPLITS_URL = "https://github.com/ondyari/FaceForensics/tree/master/dataset/splits"


def real_dir(root: Path) -> Path:
    return root / "original_sequences" / "youtube"


def method_dir(root: Path, method: str) -> Path:
    return root / "manipulated_sequences" / method


def read_pair_splits(root: Path) -> Dict[str, List[Tuple[str, str]]]:
    """The official ``{split: [(a, b), ...]}`` lists."""
    pairs = {}
    for split in SPLITS:
        path = first_existing([root / f"{split}.json", root / "splits" / f"{split}.json"],
                              f"FaceForensics++ split file {split}.json",
                              f"Download train.json, val.json and test.json from {SPLITS_URL} into {root}.")
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            pairs[split] = [(str(a), str(b)) for a, b in content]
        except (ValueError, TypeError) as error:
            raise AdapterError(f"{path} is not a list of [a, b] video-id pairs ({error}). "
                               f"Replace it with the official file from {SPLITS_URL}.") from None
    return pairs


def compression_levels(context: AdapterContext, folders: Sequence[Path]) -> List[str]:
    """Levels with preprocessed frames in any of ``folders`` (or the one requested)."""
    found = [level for level in COMPRESSIONS if any((folder / level / "frames").is_dir() for folder in folders)]
    if context.compression:
        if context.compression not in COMPRESSIONS:
            raise AdapterError(f"--compression {context.compression} is not one of {', '.join(COMPRESSIONS)}.")
        if context.compression not in found:
            raise AdapterError(f"No preprocessed frames for compression {context.compression}: expected "
                               f"{folders[0] / context.compression / 'frames'}. Preprocess that level or "
                               f"pick one of: {', '.join(found) or 'none found'}.")
        return [context.compression]
    if not found:
        raise AdapterError(f"No preprocessed frames under {folders[0]}/<c23|c40|raw>/frames. Run "
                           f"`python -m preprocessing.preprocess --input {folders[0]}` first.")
    return found


def fake_identity(video: str) -> str:
    return video.split("_")[0]


def add_pair_split(builder: IndexBuilder, pairs: Dict[str, List[Tuple[str, str]]], label: str,
                   folder: Path, levels: Sequence[str], fake: bool) -> None:
    """Index the reals (``fake=False``) or one method's fakes of every pair split."""
    for split, split_pairs in pairs.items():
        if fake:
            names: Set[str] = {f"{a}_{b}" for a, b in split_pairs} | {f"{b}_{a}" for a, b in split_pairs}
        else:
            names = {video for pair in split_pairs for video in pair}
        for level in levels:
            for name in sorted(names):
                builder.add(label, split, folder / level, name, compression=level,
                            identity=fake_identity(name) if fake else name,
                            source=fake_identity(name) if fake else None)  # made from the target's video


@DATASET_ADAPTERS.register("FaceForensics++")
def faceforensics(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    pairs = read_pair_splits(root)
    levels = compression_levels(context, [real_dir(root)] + [method_dir(root, m) for m in METHOD_LABELS])
    builder = IndexBuilder(context, "FaceForensics++", [REAL_LABEL, *METHOD_LABELS.values()], levels)
    add_pair_split(builder, pairs, REAL_LABEL, real_dir(root), levels, fake=False)
    for method, label in METHOD_LABELS.items():
        add_pair_split(builder, pairs, label, method_dir(root, method), levels, fake=True)
    builder.check_labels({REAL_LABEL: real_dir(root) / levels[0] / "frames",
                          **{label: method_dir(root, method) / levels[0] / "frames"
                             for method, label in METHOD_LABELS.items()}})
    indexes = {"FaceForensics++": builder.json()}
    for label in METHOD_LABELS.values():  # DeepfakeBench's per-method files
        indexes[label] = {label: {REAL_LABEL: builder.tree[REAL_LABEL], label: builder.tree[label]}}
    return AdapterResult(indexes, builder.notes())
