r"""A decoded (optionally pre-resized) LMDB cache of a dataset: no PNG decoding while training.

    python -m preprocessing.resize_cache --data_root datasets --dataset FaceForensics++ \
        --out datasets_cache256 [--size 256]
    python training/train.py ... --opts data.root=datasets_cache256 data.storage=lmdb

PNG decoding is the largest per-frame cost of the data loader (docs/BENCHMARKS.md).
This writes ``<out>/lmdb/<Dataset>.lmdb`` with every frame stored as raw RGB pixels
(an ``np.save``'d uint8 array, which training/data/storage.py decodes with a copy)
and copies ``json/<Dataset>.json`` to ``<out>/json/``, so ``<out>`` is a complete data
root for ``data.storage=lmdb``. Keys follow the LMDB rule of storage.py.

``--size S`` resizes each frame so its shorter side is S (bicubic, as the loader's
geometry step does), masks with nearest neighbour, and scales landmarks to match.
For square face crops and a detector with ``resolution: S`` the loader's resize is
then the identity, so samples are bit-identical to resizing on the fly. Without
``--size`` frames keep their stored size (lossless: identical samples). Raw pixels
take more disk than PNG (256 px: 192 KiB per frame, about 2.3x the demo PNGs).
"""
from __future__ import annotations

import io
import json
import logging
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from preprocessing.to_lmdb import _chmod_like_a_new_directory, _replace_directory
from training.cli import cli_parser, run_cli
from training.data.catalog import CatalogError, dataset_json_path, find_dataset_json, is_record, load_dataset_json
from training.data.storage import (LMDB_META_KEY, RgbStorage, UnreadableFileError, decode_image,
                                   decode_landmarks, decode_mask, lmdb_key, lmdb_path)
from training.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)
CACHE_FORMAT = 1

Entry = Tuple[str, bytes]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def target_size(height: int, width: int, size: Optional[int]) -> Tuple[int, int]:
    """(height, width) with the shorter side ``size`` (unchanged when ``size`` is None)."""
    if not size:
        return height, width
    scale = size / min(height, width)
    return (size, max(size, int(round(width * scale)))) if height <= width else \
        (max(size, int(round(height * scale))), size)


def iter_records(tree: Any) -> Iterator[Dict[str, Any]]:
    if is_record(tree):
        yield tree
    elif isinstance(tree, dict):
        for child in tree.values():
            yield from iter_records(child)


def _stem(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]


def encode_record(record: Dict[str, Any], storage: RgbStorage, size: Optional[int]) -> List[Entry]:
    """The cache entries (key, value) of one video: frames, and its masks/landmarks resized to match."""
    entries: List[Entry] = []
    frame_sizes: Dict[str, Tuple[int, int]] = {}
    for path in record["frames"]:
        image = decode_image(*storage.read_bytes(path))
        height, width = image.shape[:2]
        new_h, new_w = target_size(height, width, size)
        if (new_h, new_w) != (height, width):
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
        frame_sizes[_stem(path)] = (height, width)
        entries.append((lmdb_key(path, storage.data_root), _npy(image)))
    for path in record.get("masks") or []:
        mask = decode_mask(*storage.read_bytes(path))
        new_h, new_w = target_size(*mask.shape[:2], size)
        if (new_h, new_w) != mask.shape[:2]:
            mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        entries.append((lmdb_key(path, storage.data_root), _npy(mask)))
    for path in record.get("landmarks") or []:
        data, where = storage.read_bytes(path)
        points = decode_landmarks(data, where)
        if size and _stem(path) not in frame_sizes:
            raise UnreadableFileError(f"landmarks {where} have no frame with the same index in their record; "
                                      f"cannot scale them to the resized frame", path)
        if size:
            height, width = frame_sizes[_stem(path)]
            new_h, new_w = target_size(height, width, size)
            points = points * np.array([new_w / width, new_h / height], np.float32)
        entries.append((lmdb_key(path, storage.data_root), _npy(points.astype(np.float32))))
    return entries


def build_cache(data_root: Path, dataset: str, out_root: Path, size: Optional[int] = None,
                workers: int = 2, commit_every_videos: int = 50) -> Path:
    """Write ``<out_root>/lmdb/<dataset>.lmdb`` and ``<out_root>/json/<dataset>.json``; return the LMDB path."""
    import lmdb

    if Path(out_root).resolve() == Path(data_root).resolve():
        raise CatalogError(f"--out must differ from --data_root ({data_root}): the cache would replace the "
                         f"original LMDB of {dataset}.")
    records = list(iter_records(load_dataset_json(data_root, dataset)))
    if not records:
        raise CatalogError(f"json/{dataset}.json lists no videos; nothing to cache")
    storage = RgbStorage(data_root)
    target = lmdb_path(out_root, dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{dataset}.lmdb.partial-", dir=target.parent))
    _chmod_like_a_new_directory(temporary)
    frames = sum(len(r["frames"]) for r in records)
    side = size or 512
    map_size = int(frames * (side * side * 3 * 1.5 + 4096) * 1.5) + (1 << 30)  # sparse: address space only
    started, written = time.time(), set()
    try:
        env = lmdb.open(str(temporary), map_size=map_size, subdir=True, meminit=False, map_async=True)
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # cv2 releases the GIL
                for start in range(0, len(records), commit_every_videos):
                    batch = records[start:start + commit_every_videos]
                    with env.begin(write=True) as txn:
                        for entries in pool.map(lambda r: encode_record(r, storage, size), batch):
                            for key, value in entries:
                                if key not in written:  # a file listed twice is stored once
                                    txn.put(key.encode("utf-8"), value)
                                    written.add(key)
                    log.info("%s: %d/%d videos", dataset, min(start + commit_every_videos, len(records)),
                             len(records))
            meta = {"format": CACHE_FORMAT, "kind": "decoded_cache", "dataset": dataset, "files": len(written),
                    "shorter_side": size, "source_root": str(data_root)}
            with env.begin(write=True) as txn:
                txn.put(LMDB_META_KEY, json.dumps(meta).encode("utf-8"))
            env.sync(True)
        finally:
            env.close()
        _replace_directory(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    json_target = dataset_json_path(out_root, dataset)
    json_target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_target, find_dataset_json(data_root, dataset).read_text(encoding="utf-8"))
    log.info("wrote %s (%d files, %s) in %.1fs", target, len(written),
             f"shorter side {size}" if size else "stored size", time.time() - started)
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--data_root", default="datasets", help="source data root (default: datasets)")
    parser.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                        help="dataset name(s): json/<dataset>.json")
    parser.add_argument("--out", required=True, help="data root to write (lmdb/ and json/ are created in it)")
    parser.add_argument("--size", type=int, default=None,
                        help="resize so the shorter side is SIZE (the detector's resolution); default: keep")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.size is not None and args.size <= 0:
        parser.error("--size must be a positive number of pixels")
    for dataset in args.dataset:  # CatalogError / UnreadableFileError: user errors (exit 2)
        build_cache(Path(args.data_root), dataset, Path(args.out), args.size, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
