"""Folder scanning and seeded splits shared by the adapters of datasets without split files."""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from .common import AdapterError, natural_key

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
CELEB_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")  # Celeb-DF: <target>_<source face>_<index>


def listed_videos(folder: Path) -> List[str]:
    """Names of the videos of one video folder, preprocessed or not.

    A video is listed by its raw file (``<folder>/<v>.mp4`` or ``<folder>/videos/<v>.mp4``)
    or by its frame folder (``<folder>/frames/<v>/``). Listing the raw files too means
    a video that preprocessing skipped or failed is reported as missing by
    :meth:`IndexBuilder.add` instead of silently vanishing from the index."""
    names = set()
    for where in (folder, folder / "videos"):
        if where.is_dir():
            with os.scandir(where) as entries:
                names.update(os.path.splitext(e.name)[0] for e in entries
                              if e.is_file() and e.name.lower().endswith(VIDEO_SUFFIXES))
    frames = folder / "frames"
    if frames.is_dir():
        with os.scandir(frames) as entries:
            names.update(e.name for e in entries if e.is_dir())
    return sorted(names, key=natural_key)


def video_folders(top: Path) -> List[Path]:
    """Every folder under ``top`` (itself included) that holds videos or a ``frames/`` folder."""
    if not top.is_dir():
        return []
    found = []
    for folder, subfolders, files in os.walk(top):
        path = Path(folder)
        if path.name in ("frames", "landmarks", "masks", "videos") or path.parent.name in ("frames", "landmarks",
                                                                                            "masks"):
            subfolders[:] = []  # preprocessing outputs, not dataset folders
            continue
        if "frames" in subfolders or any(f.lower().endswith(VIDEO_SUFFIXES) for f in files) \
                or ("videos" in subfolders and any(n.lower().endswith(VIDEO_SUFFIXES)
                                                   for n in os.listdir(path / "videos"))):
            found.append(path)
    return sorted(found, key=lambda p: natural_key(p.as_posix()))


def celeb_source(video: str) -> Optional[str]:
    """Celeb-DF naming: a fake ``id0_id1_0003`` is made from the target's real video ``id0_0003``."""
    match = CELEB_FAKE.match(video)
    return f"{match.group(1)}_{match.group(3)}" if match else None


def seeded_split(groups: Iterable[str], seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)
                 ) -> Dict[str, str]:
    """Assign groups (identities) to train/val/test: sorted, shuffled with ``seed``, then cut
    by ``fractions`` (rounded; at least one group in each held-out split when there are
    three or more groups). Same seed and groups, same split."""
    ordered = sorted(set(groups), key=natural_key)
    random.Random(f"split/{seed}").shuffle(ordered)
    n = len(ordered)
    n_val, n_test = (max(1, round(n * fractions[1])), max(1, round(n * fractions[2]))) if n >= 3 else (0, 0)
    n_train = n - n_val - n_test
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return dict(zip(ordered, splits))


def int_option(options: Dict[str, str], key: str, default: int) -> int:
    value = options.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AdapterError(f"--option {key}={value!r} must be an integer.") from None


def split_note(dataset: str, assignment: Dict[str, str], seed: int) -> str:
    counts: Dict[str, int] = {}
    for split in assignment.values():
        counts[split] = counts.get(split, 0) + 1
    return (f"{dataset}: no official split; identities split by seed {seed} (--option split_seed=N): "
            + ", ".join(f"{split} {counts.get(split, 0)}" for split in ("train", "val", "test")))

