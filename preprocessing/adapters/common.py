"""Building blocks shared by the dataset adapters.

An adapter reads one dataset's official layout and split files and returns the
dataset JSON(s) in DeepfakeBench's schema (datasets/README.md). It registers in
``training.registry.DATASET_ADAPTERS`` under the dataset name and has the
signature ``adapter(context: AdapterContext) -> AdapterResult``.

Preprocessing writes, for every video ``<vid>`` of a video folder ``<dir>``,
``<dir>/frames/<vid>/NNN.png`` (+ ``landmarks/``, ``masks/``); adapters only
need to know each video's ``<dir>`` and name (:meth:`IndexBuilder.add`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from training.errors import UserError

SPLITS = ("train", "val", "test")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


class AdapterError(UserError, FileNotFoundError):
    """A file or folder the official layout requires is missing or malformed."""


@dataclass(frozen=True)
class AdapterContext:
    dataset_root: Path  # the dataset's own folder (raw videos + preprocessing outputs + split files)
    data_root: Path  # JSON paths are relative to it when the dataset lives inside it
    compression: Optional[str] = None  # FF++ family: index only this level (default: all found)
    options: Dict[str, str] = field(default_factory=dict)  # adapter-specific, e.g. perturbation

    def path_string(self, path: Path) -> str:
        """``/``-separated path relative to the data root, or absolute when outside it."""
        resolved = Path(os.path.abspath(path))
        root = Path(os.path.abspath(self.data_root))
        try:
            return resolved.relative_to(root).as_posix()
        except ValueError:
            return resolved.as_posix()


@dataclass
class AdapterResult:
    indexes: Dict[str, dict]  # JSON file stem -> {DatasetName: {label: {split: ...}}}
    notes: List[str] = field(default_factory=list)  # what was left out, and why


def require_file(path: Path, what: str, fix: str) -> Path:
    if not Path(path).is_file():
        raise AdapterError(f"{what} not found: {path}. {fix}")
    return Path(path)


def require_dir(path: Path, what: str, fix: str) -> Path:
    if not Path(path).is_dir():
        raise AdapterError(f"{what} not found: {path}. {fix}")
    return Path(path)


def first_existing(candidates: Sequence[Path], what: str, fix: str) -> Path:
    for candidate in candidates:
        if Path(candidate).exists():
            return Path(candidate)
    listed = " or ".join(str(c) for c in candidates)
    raise AdapterError(f"{what} not found: {listed}. {fix}")


def natural_key(text: str):
    """'id2' < 'id10': compare digit runs as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def carve_by_identity(identities: Iterable[str], every: int, held_out: Sequence[str]) -> Dict[str, str]:
    """Map identities to splits deterministically.

    In natural sort order, of every ``every`` consecutive identities the last
    ``len(held_out)`` go to ``held_out`` (in that order) and the rest to train.
    Exact proportions, and no randomness to record.
    """
    if len(held_out) >= every:
        raise ValueError(f"carve_by_identity: {len(held_out)} held-out splits need every > {len(held_out)}.")
    assignment = {}
    for position, identity in enumerate(sorted(set(identities), key=natural_key)):
        slot = position % every - (every - len(held_out))
        assignment[identity] = held_out[slot] if slot >= 0 else "train"
    return assignment


def split_of_group(members: Iterable[str], assignment: Dict[str, str]) -> Optional[str]:
    """The split shared by all ``members`` (identities of one video), or None when they differ."""
    splits = {assignment[member] for member in members}
    return splits.pop() if len(splits) == 1 else None


def frame_files(folder: Path) -> List[Path]:
    """Frame images of one video, sorted by integer frame index; other files are ignored."""
    if not folder.is_dir():
        return []
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in FRAME_SUFFIXES and stem.isdigit() and entry.is_file():
                found.append((int(stem), Path(entry.path)))
    return [path for _, path in sorted(found)]


class IndexBuilder:
    """Accumulates one dataset JSON and what could not be indexed."""

    def __init__(self, context: AdapterContext, dataset: str, labels: Sequence[str],
                 compressions: Optional[Sequence[str]] = None):
        self.context = context
        self.dataset = dataset
        self.compressions = list(compressions) if compressions else None
        # Every label gets every split (and level), possibly empty: the loader
        # then reports "no videos" instead of "no such split".
        self.tree: Dict[str, Dict[str, dict]] = {
            label: {split: ({level: {} for level in self.compressions} if self.compressions else {})
                    for split in SPLITS} for label in labels}
        self.missing: List[str] = []
        self.partial: Dict[str, int] = {"landmarks": 0, "masks": 0}

    def add(self, label: str, split: str, video_dir: Path, name: str, *, video: Optional[str] = None,
            identity: Optional[str] = None, compression: Optional[str] = None,
            source: Optional[str] = None) -> bool:
        """Index ``<video_dir>/frames/<name>/`` as ``video`` (default ``name``).

        ``source``: for a fake, the name of the real video (same dataset) it was made
        from; read by the leakage check and by paired training subsets.
        Returns False (and remembers it) when preprocessing left no frames for it.
        """
        video = video or name
        frames = frame_files(Path(video_dir) / "frames" / name)
        where = f"{label}/{split}/{compression + '/' if compression else ''}{video}"
        if not frames:
            self.missing.append(f"{where} (no frames in {Path(video_dir) / 'frames' / name})")
            return False
        record = {"label": label, "frames": [self.context.path_string(p) for p in frames]}
        for kind, suffix in (("landmarks", ".npy"), ("masks", ".png")):
            paths = [Path(video_dir) / kind / name / f"{p.stem}{suffix}" for p in frames]
            present = [p.is_file() for p in paths]
            if all(present):
                record[kind] = [self.context.path_string(p) for p in paths]
            elif any(present):  # lists must align with frames; a partial list would not
                self.partial[kind] += 1
        if identity is not None:
            record["identity"] = str(identity)
        if source is not None:
            record["source"] = str(source)
        node = self.tree[label][split]
        if self.compressions:
            node = node[compression]
        if video in node:
            raise AdapterError(f"{self.dataset}: video '{where}' is listed twice. The split files or the "
                               f"folder layout contain a duplicate; remove one of them.")
        node[video] = record
        return True

    def count(self, label: str) -> int:
        total = 0
        for node in self.tree[label].values():
            values = node.values() if self.compressions else [node]
            total += sum(len(videos) for videos in values)
        return total

    def check_labels(self, hint: Dict[str, Path]) -> None:
        """Every label must have videos; name the folder where frames were expected."""
        for label in self.tree:
            if self.count(label) == 0:
                folder = hint.get(label)
                raise AdapterError(
                    f"{self.dataset}: no preprocessed video found for label {label}"
                    + (f" (expected frame folders under {folder})" if folder else "")
                    + ". Run `python -m preprocessing.preprocess --input <that video folder>` first, "
                      "or check --source_dir.")

    def notes(self) -> List[str]:
        notes = []
        if self.missing:
            shown = "; ".join(self.missing[:5])
            more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
            notes.append(f"{self.dataset}: {len(self.missing)} listed video(s) have no frames and are left out "
                         f"(not preprocessed, or failed: see their manifests): {shown}{more}")
        for kind, count in self.partial.items():
            if count:
                notes.append(f"{self.dataset}: {count} video(s) have {kind} for only some frames; their "
                             f"{kind} list is omitted (lists must align with frames)")
        return notes

    def json(self) -> dict:
        return {self.dataset: self.tree}

