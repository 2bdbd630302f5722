"""Write a dataset the way DeepfakeBench's own tools leave it, to test that we read it unchanged.

Our generator, written from reading SCLBD/DeepfakeBench (not its code):

* ``preprocessing/preprocess.py``: frames ``<video dir>/frames/<video>/NNN.png`` (NNN =
  original frame index, 3 digits), ``landmarks/<video>/NNN.npy`` (``np.save`` of the 81 x 2
  dlib points: int64 on Linux), FF++ masks ``<method>/c23/masks/<video>/NNN.png``.
* ``preprocessing/rearrange.py``: ``<output>/<Name>.json`` =
  ``{Name: {label: {train|val|test: {[c23: ]{video: {"label", "frames"[, "masks"]}}}}}}``,
  every label with all three splits, frame lists in directory order (unsorted), each
  path ``os.path.join(dataset_root_path, <Dataset folder>, ...)`` (its released JSONs are
  made on Windows: ``\\`` separators); FF++ fakes carry ``masks`` (``[]`` without a mask
  folder); a FaceForensics++ run also writes one ``<FF-X>.json`` per method holding
  ``{FF-X: {FF-real: ..., FF-X: ...}}``.
* ``preprocessing/dataset2lmdb_test.py``: ``<lmdb_dir>/<Dataset>_lmdb``, one key per file
  under ``<root>/<Dataset>``: ``"<Dataset>\\" + os.path.relpath(file, <root>/<Dataset>)``
  (the writer's OS separator after the first ``\\``), value = the file's bytes, or
  ``np.load(file).tobytes()`` for ``.npy``; folders whose path contains ``video`` are skipped
  (tested below the data root here, so a temporary folder's name cannot matter).

The checkout layout is its defaults (training/config/train_config.yaml): frames under
``datasets/rgb``, LMDBs under ``datasets/lmdb``, JSON under ``preprocessing/dataset_json``.
"""
from __future__ import annotations

import json
import ntpath
import os
import posixpath
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

SPLITS = ("train", "val", "test")
RGB_DIR = Path("datasets") / "rgb"
LMDB_DIR = Path("datasets") / "lmdb"
JSON_DIR = Path("preprocessing") / "dataset_json"


@dataclass
class Video:
    label: str  # DeepfakeBench label name (FF-DF, CelebDFv2_real ...)
    name: str  # the video's folder name
    folder: Tuple[str, ...]  # the folder holding frames/, relative to the dataset folder
    frames: Dict[int, np.ndarray]  # original frame index -> RGB image
    splits: Sequence[str] = ("train",)  # rearrange.py lists some videos in several splits
    compression: Optional[str] = None  # FF++ family: the nesting level (c23)
    mask_folder: Optional[Tuple[str, ...]] = None  # FF++ fakes: where masks/<video>/ lives
    landmarks: bool = True
    frame_files: Dict[int, str] = field(default_factory=dict)  # filled in: index -> file on disk


def write_checkout(checkout: Path, name: str, dataset_folder: str, videos: Iterable[Video], *,
                   json_root: str = "", windows: bool = True, seed: int = 0) -> Path:
    """Files of ``videos`` under ``checkout/datasets/rgb/<dataset_folder>`` and the JSON
    ``checkout/preprocessing/dataset_json/<name>.json`` whose paths start with ``json_root``
    (rearrange.py's ``dataset_root_path``), written as on Windows when ``windows``."""
    join = ntpath.join if windows else posixpath.join
    order = random.Random(seed)
    tree: Dict[str, Dict] = {}
    for video in videos:
        base = checkout / RGB_DIR / dataset_folder / Path(*video.folder)
        frame_paths, mask_paths = [], []
        indices = list(video.frames)
        order.shuffle(indices)  # os.scandir order, not sorted
        for index in indices:
            stem = f"{index:03d}"
            frame_file = base / "frames" / video.name / f"{stem}.png"
            _write_png(frame_file, video.frames[index])
            video.frame_files[index] = str(frame_file)
            frame_paths.append(join(json_root, dataset_folder, *video.folder, "frames", video.name, f"{stem}.png"))
            if video.landmarks:
                points = np.stack([np.arange(81) % 64, np.arange(81) // 2 + index], axis=1).astype(np.int64)
                _save_npy(base / "landmarks" / video.name / f"{stem}.npy", points)
            if video.mask_folder is not None:
                mask = np.zeros(video.frames[index].shape[:2], np.uint8)
                mask[2:-2, 3:-3] = 255
                _write_png(checkout / RGB_DIR / dataset_folder / Path(*video.mask_folder) / "masks" / video.name
                           / f"{stem}.png", mask)
                mask_paths.append(join(json_root, dataset_folder, *video.mask_folder, "masks", video.name,
                                       f"{stem}.png"))
        record = {"label": video.label, "frames": frame_paths}
        if video.compression is not None and video.label != "FF-real":
            record["masks"] = mask_paths  # [] when the method has no mask folder
        splits = tree.setdefault(video.label, {split: {} for split in SPLITS})
        for split in video.splits:
            level = splits[split]
            if video.compression is not None:
                level = level.setdefault(video.compression, {})
            level[video.name] = record
    for splits in tree.values():  # rearrange creates the compression level in every split
        levels = {level for split in splits.values() for level, node in split.items() if "frames" not in node}
        for split in splits.values():
            for level in levels:
                split.setdefault(level, {})
    path = checkout / JSON_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: tree}), encoding="utf-8")
    if name == "FaceForensics++":
        for label, value in tree.items():
            if label != "FF-real":
                (checkout / JSON_DIR / f"{label}.json").write_text(
                    json.dumps({label: {"FF-real": tree["FF-real"], label: value}}), encoding="utf-8")
    return path


def write_lmdb(checkout: Path, dataset_folder: str, *, windows: bool = True) -> Path:
    """``datasets/lmdb/<dataset_folder>_lmdb`` as dataset2lmdb_test.py writes it."""
    import lmdb

    source = checkout / RGB_DIR / dataset_folder
    target = checkout / LMDB_DIR / f"{dataset_folder}_lmdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(target), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for root, _, files in os.walk(source, followlinks=True):
            if "video" in os.path.relpath(root, source.parent):
                continue
            for file_name in files:
                file_path = os.path.join(root, file_name)
                relative = os.path.relpath(file_path, source)
                key = f"{dataset_folder}\\" + (relative.replace(os.sep, "\\") if windows else relative)
                if file_name.endswith(".npy"):
                    value = np.load(file_path).tobytes()
                else:
                    value = Path(file_path).read_bytes()
                txn.put(key.encode("utf-8"), value)
    env.close()
    return target


def lmdb_keys(path: Path) -> List[str]:
    import lmdb

    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        keys = [key.decode("utf-8") for key in txn.cursor().iternext(values=False)]
    env.close()
    return keys


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"cannot write {path}")


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


# --------------------------------------------------------------------------- small datasets


def _frame(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def faceforensics_videos() -> List[Video]:
    """FF-real 000/001 and FF-DF 000_001 (train), FF-real 002 and FF-DF 002_003 (test), c23."""
    videos = []
    for number, (real, fake, split) in enumerate([("000", "000_001", "train"), ("001", None, "train"),
                                                  ("002", "002_003", "test")]):
        videos.append(Video("FF-real", real, ("original_sequences", "youtube", "c23"),
                            {i * 10: _frame(100 * number + i) for i in range(3)}, (split,), "c23"))
        if fake:
            videos.append(Video("FF-DF", fake, ("manipulated_sequences", "Deepfakes", "c23"),
                                {i * 10: _frame(1000 + 100 * number + i) for i in range(3)}, (split,), "c23",
                                mask_folder=("manipulated_sequences", "Deepfakes", "c23")))
    return videos


def celebdf_videos() -> List[Video]:
    """Celeb-DF-v2 as rearrange.py lists it: the test videos are in train too (its bug)."""
    return [
        Video("CelebDFv2_real", "id0_0000", ("Celeb-real",), {i: _frame(5000 + i) for i in (0, 7, 100)},
              ("train", "val", "test")),
        Video("CelebDFv2_fake", "id0_id1_0000", ("Celeb-synthesis",), {i: _frame(6000 + i) for i in (3, 4)},
              ("train", "val", "test")),
        Video("CelebDFv2_real", "00001", ("YouTube-real",), {i: _frame(7000 + i) for i in (0, 1)}, ("train",)),
    ]


def as_deepfakebench_checkout(data_root: Path, checkout: Path, names: Sequence[str],
                              frames: Optional[int] = None) -> Path:
    """Re-lay datasets of ours (e.g. the demo) as DeepfakeBench keeps them: the frames (the
    first ``frames`` of each video) under ``datasets/rgb/<Name>/``, the JSON with Windows
    paths ``<Name>\\...`` in ``preprocessing/dataset_json``, and ``datasets/lmdb/<Name>_lmdb``."""
    import shutil

    from training.data.catalog import frame_index_of, is_record, load_dataset_json

    for name in names:
        def relaid(path: str) -> str:
            parts = path.replace("\\", "/").split("/")
            inside = parts[parts.index(name):]  # from the dataset folder on
            target = checkout / RGB_DIR / Path(*inside)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(data_root) / path, target)
            return ntpath.join(*inside)

        def convert(node):
            if is_record(node):
                order = sorted(range(len(node["frames"])), key=lambda i: frame_index_of(node["frames"][i]))
                keep = order[:frames] if frames else order
                record = {"label": node["label"], "frames": [relaid(node["frames"][i]) for i in keep]}
                if node.get("masks"):
                    record["masks"] = [relaid(node["masks"][i]) for i in keep]
                return record
            return {key: convert(value) for key, value in node.items()}

        tree = convert(load_dataset_json(data_root, name))
        path = checkout / JSON_DIR / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({name: tree}), encoding="utf-8")
        write_lmdb(checkout, name)
    return checkout
