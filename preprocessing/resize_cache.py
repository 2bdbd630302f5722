"""A decoded (optionally pre-resized) LMDB cache of a dataset: no PNG decoding while training.

    python -m preprocessing.resize_cache --data_root datasets --dataset FaceForensics++ \
        --out datasets_cache256 [--detector_path configs/detector/xception.yaml]
    python training/train.py ... --opts data.root=datasets_cache256 data.storage=lmdb

PNG decoding is the largest per-frame cost of the data loader (docs/BENCHMARKS.md).
This writes ``<out>/lmdb/<Dataset>.lmdb`` with every frame stored as raw RGB pixels
(an ``np.save``'d uint8 array, which training/data/storage.py decodes with a copy)
and copies ``json/<Dataset>.json`` to ``<out>/json/``, so ``<out>`` is a complete data
root for ``data.storage=lmdb``. Keys follow the LMDB rule of storage.py.

Without ``--detector_path`` frames keep their stored size: lossless, the samples are
identical for every detector. ``--detector_path`` also resizes each frame through that
detector's own resize step (training/data/transforms.py ``build_geometry``: its
resolution, resize mode, interpolation and crop_pct; a centre crop is left to the
loader), jointly with its mask (nearest) and landmarks (position by position, as the
loader pairs them). The loader's resize is then the identity, so samples equal resizing
on the fly (landmarks to float32 rounding). That holds only where the augmentations run
after the resize (``augment.order`` resize_first, the reference order of cv2-resizing
detectors such as DeepfakeBench's); a detector that augments the stored crop first (PIL
towers: CLIP, timm) would augment at the cached size, so it is refused: cache it without
``--detector_path``. The geometry is recorded in the cache, and a loader with another one
is told so (storage.py). Raw pixels take more disk than PNG (256 px: 192 KiB per frame,
about 2.3x the demo PNGs).
"""
from __future__ import annotations

import copy
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

import albumentations as A
import numpy as np

from preprocessing.to_lmdb import _chmod_like_a_new_directory, _replace_directory
from training.cli import cli_parser, run_cli
from training.data.catalog import CatalogError, dataset_json_path, find_dataset_json, is_record, load_dataset_json
from training.data.storage import (LMDB_META_KEY, RgbStorage, UnreadableFileError, decode_image,
                                   decode_landmarks, decode_mask, lmdb_key, lmdb_path)
from training.data.transforms import AUGMENT_ORDERS, build_geometry, geometry_record, reference_order
from training.errors import UserError
from training.models.input_spec import InputSpec
from training.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)
CACHE_FORMAT = 1

Entry = Tuple[str, bytes]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class CacheGeometryError(UserError, ValueError):
    """A pre-resized cache cannot give the samples that resizing on the fly gives."""


def resize_step(spec: InputSpec, order: str = "reference") -> A.Compose:
    """The detector's resize (its first geometry step) as the cache applies it: image, mask and
    landmarks jointly, exactly as the loader's pipeline does. Refused for augment-first orders."""
    if order not in AUGMENT_ORDERS:
        raise CacheGeometryError(f"augment.order {order!r} is not one of {', '.join(AUGMENT_ORDERS)}.")
    effective = reference_order(spec) if order == "reference" else order
    if effective == "augment_first":
        raise CacheGeometryError(
            f"This detector augments the stored crop before its {spec.interpolation} resize "
            f"(augment.order {order}{' = augment_first for ' + spec.interpolation if order == 'reference' else ''}), "
            f"so a cache pre-resized to {spec.resolution} px would augment at the cached size and change "
            f"the training samples. Build the cache without --detector_path (decoded at the stored size: "
            f"identical samples, still no PNG decoding), or train with augment.order: resize_first.")
    return A.Compose(build_geometry(spec)[:1],
                     keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))


def detector_geometry(detector_path: str, overrides: Sequence[str] = ()) -> Tuple[InputSpec, str]:
    """The input spec and augmentation order of a detector config (its model built on the
    meta device: no weights are read)."""
    import torch

    from training.config import load_config
    from training.models import build_detector

    config = load_config(detector_path, list(overrides))
    with torch.device("meta"):
        spec = build_detector(config).input_spec
    return spec, (config.get("augment") or {}).get("order", "reference")


def iter_records(tree: Any) -> Iterator[Dict[str, Any]]:
    if is_record(tree):
        yield tree
    elif isinstance(tree, dict):
        for child in tree.values():
            yield from iter_records(child)


def encode_record(record: Dict[str, Any], storage: RgbStorage, resize: Optional[A.Compose]) -> List[Entry]:
    """The cache entries (key, value) of one video: frames, and its masks/landmarks resized with them."""
    frames, masks, landmarks = record["frames"], record.get("masks") or [], record.get("landmarks") or []
    if resize is None:
        return ([(lmdb_key(path, storage.data_root), _npy(decode_image(*storage.read_bytes(path))))
                 for path in frames]
                + [(lmdb_key(path, storage.data_root), _npy(decode_mask(*storage.read_bytes(path))))
                   for path in masks]
                + [(lmdb_key(path, storage.data_root), _npy(decode_landmarks(*storage.read_bytes(path))))
                   for path in landmarks])
    for kind, paths in (("masks", masks), ("landmarks", landmarks)):
        if paths and len(paths) != len(frames):
            raise UnreadableFileError(
                f"{frames[0]}: the record lists {len(frames)} frames but {len(paths)} {kind}; the loader "
                f"pairs them by position, so they cannot be resized with their frames. Fix the dataset JSON.",
                frames[0])
    entries: List[Entry] = []
    for position, path in enumerate(frames):
        inputs: Dict[str, Any] = {"image": decode_image(*storage.read_bytes(path))}
        if masks:
            data, where = storage.read_bytes(masks[position])
            inputs["mask"] = decode_mask(data, where)
            if inputs["mask"].shape != inputs["image"].shape[:2]:
                raise UnreadableFileError(f"mask {where} is {inputs['mask'].shape}, its frame {path} "
                                          f"{inputs['image'].shape[:2]}; re-run preprocessing", masks[position])
        if landmarks:
            inputs["keypoints"] = decode_landmarks(*storage.read_bytes(landmarks[position]))
        out = resize(**inputs)
        entries.append((lmdb_key(path, storage.data_root), _npy(out["image"])))
        if masks:
            entries.append((lmdb_key(masks[position], storage.data_root), _npy(out["mask"])))
        if landmarks:
            points = np.asarray(out["keypoints"], np.float32)[:, :2]
            entries.append((lmdb_key(landmarks[position], storage.data_root), _npy(points)))
    return entries


def build_cache(data_root: Path, dataset: str, out_root: Path, spec: Optional[InputSpec] = None,
                order: str = "reference", workers: int = 2, commit_every_videos: int = 50) -> Path:
    """Write ``<out_root>/lmdb/<dataset>.lmdb`` and ``<out_root>/json/<dataset>.json``; return the LMDB path.
    ``spec``/``order``: resize through that detector's geometry (:func:`resize_step`); None: stored size."""
    import lmdb

    resize = None if spec is None else resize_step(spec, order)

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
    side = spec.resolution if spec is not None else 512
    map_size = int(frames * (side * side * 3 * 1.5 + 4096) * 1.5) + (1 << 30)  # sparse: address space only
    started, written = time.time(), set()
    try:
        env = lmdb.open(str(temporary), map_size=map_size, subdir=True, meminit=False, map_async=True)
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # cv2 releases the GIL
                for start in range(0, len(records), commit_every_videos):
                    batch = records[start:start + commit_every_videos]
                    with env.begin(write=True) as txn:
                        # A copy per video: albumentations transforms keep per-call state (self.params).
                        for entries in pool.map(lambda r: encode_record(r, storage, copy.deepcopy(resize)), batch):
                            for key, value in entries:
                                if key not in written:  # a file listed twice is stored once
                                    txn.put(key.encode("utf-8"), value)
                                    written.add(key)
                    log.info("%s: %d/%d videos", dataset, min(start + commit_every_videos, len(records)),
                             len(records))
            meta = {"format": CACHE_FORMAT, "kind": "decoded_cache", "dataset": dataset, "files": len(written),
                    "geometry": None if spec is None else geometry_record(spec),
                    "source_root": str(data_root)}
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
             f"{spec.resolution} px, {spec.resize_mode}, {spec.interpolation}" if spec else "stored size",
             time.time() - started)
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--data_root", default="datasets", help="source data root (default: datasets)")
    parser.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                        help="dataset name(s): json/<dataset>.json")
    parser.add_argument("--out", required=True, help="data root to write (lmdb/ and json/ are created in it)")
    parser.add_argument("--detector_path", metavar="YAML",
                        help="resize through this detector's input geometry (configs/detector/*.yaml); "
                             "default: keep the stored size")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides of the detector config (e.g. model.resolution=224)")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.opts and not args.detector_path:
        parser.error("--opts overrides the detector config: give --detector_path too")
    spec, order = detector_geometry(args.detector_path, args.opts) if args.detector_path else (None, "reference")
    for dataset in args.dataset:  # CatalogError / UnreadableFileError / CacheGeometryError: user errors (exit 2)
        build_cache(Path(args.data_root), dataset, Path(args.out), spec, order, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
