"""Where frame, mask and landmark bytes come from: files on disk or an LMDB copy.

Both storages read bytes and decode them with the same functions, so a sample
is bit-identical whichever storage served it.

LMDB rule (shared with preprocessing/to_lmdb.py through :func:`lmdb_key`):

* one environment per dataset JSON, at ``<data_root>/lmdb/<Dataset>.lmdb/``,
  chosen by the record's dataset name (the ``dataset`` argument below);
* key = the path exactly as the JSON lists it, normalised to ``/`` separators
  without a leading ``./``; an absolute path under the data root becomes
  relative to it, any other absolute path is kept as is;
* value = the original file bytes for PNGs; for ``.npy`` the array re-saved
  with ``np.save`` (header included, so dtype and shape travel with it).
  A *decoded cache* (preprocessing/resize_cache.py) stores frames and masks as
  ``np.save``'d uint8 arrays (RGB frames) instead, optionally pre-resized; the
  decoders below recognise them by the ``.npy`` magic bytes.

DeepfakeBench's files are read unchanged (its preprocessing/dataset2lmdb_test.py and
training/dataset/abstract_dataset.py):

* JSON paths may use ``\\`` separators (its JSONs are made on Windows); both storages
  accept them. A data root that is a DeepfakeBench checkout also finds relative frame
  paths under its ``datasets/rgb`` (its ``rgb_dir``) and LMDBs under ``datasets/lmdb``.
* Its LMDB for a dataset is ``<lmdb_dir>/<Dataset>_lmdb``, and the FF++ family
  (FF-DF.json, FaceShifter.json ...) shares ``FaceForensics++_lmdb``: any path
  component ``C`` with a ``<lmdb_dir>/C_lmdb`` is tried, which covers both.
* Its key is ``"<DatasetDir>\\" + the path relative to that folder``, the rest joined
  with the writer's OS separator (all ``\\`` when written on Windows, ``/`` on Linux);
  the JSON path is matched from its ``<DatasetDir>`` component on, in either spelling.
  Such an LMDB has no ``__clipforensics_lmdb__`` record, which is how it is recognised.
* Its ``.npy`` values are raw buffers without a header (``np.load(f).tobytes()``): 81
  landmark points of int32 (648 bytes) or int64 (1296 bytes, its Linux saver's ``int``).

Nothing is ever substituted: a missing, empty or undecodable file raises
:class:`UnreadableFileError` naming the file (and the LMDB db and key).
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
import pyspng

from training.errors import UserError

PathLike = Union[str, os.PathLike]
LMDB_META_KEY = b"__clipforensics_lmdb__"
NPY_MAGIC = b"\x93NUMPY"
# DeepfakeBench's layout inside a checkout (training/config/train_config.yaml there:
# rgb_dir ./datasets/rgb, lmdb_dir ./datasets/lmdb).
DEEPFAKEBENCH_RGB_DIR = Path("datasets") / "rgb"
DEEPFAKEBENCH_LMDB_DIR = Path("datasets") / "lmdb"
DEEPFAKEBENCH_LANDMARKS = 81  # its shape_predictor_81_face_landmarks points


class UnreadableFileError(UserError, OSError):
    """A frame, mask or landmark file cannot be read or decoded."""

    # ``path`` is optional so DataLoader workers can re-raise it as the same type.
    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return self.args[0]


def lmdb_path(data_root: PathLike, dataset: str) -> Path:
    return Path(data_root) / "lmdb" / f"{dataset}.lmdb"


def deepfakebench_lmdb_keys(path: str, db_folder: str, linux_first: bool = False) -> List[str]:
    """Candidate DeepfakeBench keys of a JSON path (Windows spelling first unless ``linux_first``).

    ``db_folder`` is the dataset folder the LMDB was made from (the text before
    the first ``\\`` of its keys). The path is cut at that component, wherever the
    JSON's root put it (``FaceForensics++\\...``, ``./datasets\\FaceForensics++\\...``,
    ``/data/rgb/FaceForensics++/...``); the JSON string itself is the last resort,
    as DeepfakeBench's own reader uses it (after removing ``./datasets\\``).
    """
    parts = [part for part in str(path).replace("\\", "/").split("/") if part not in ("", ".")]
    keys: List[str] = []
    for index, part in enumerate(parts):
        if part == db_folder and index + 1 < len(parts):
            rest = parts[index + 1:]
            spellings = [f"{db_folder}\\" + "\\".join(rest), f"{db_folder}\\" + "/".join(rest)]
            keys += spellings[::-1] if linux_first else spellings
    raw = str(path)
    keys += [raw[len("./datasets\\"):] if raw.startswith("./datasets\\") else raw]
    return list(dict.fromkeys(keys))


def lmdb_key(path: str, data_root: PathLike) -> str:
    """The LMDB key of a JSON path (see the module docstring)."""
    text = str(path).replace("\\", "/")
    if os.path.isabs(text):
        root = os.path.abspath(os.fspath(data_root))
        absolute = os.path.abspath(text)
        if absolute == root or absolute.startswith(root + os.sep):
            text = os.path.relpath(absolute, root).replace(os.sep, "/")
    return posixpath.normpath(text)


# --------------------------------------------------------------------------- decoding


def is_decoded_array(data: bytes) -> bool:
    """Values of a decoded cache (preprocessing/resize_cache.py) are ``.npy`` arrays, not PNGs."""
    return data[:6] == NPY_MAGIC


def _decoded_array(data: bytes, where: str, kind: str, ndim: int) -> np.ndarray:
    # A decoded cache skips PNG decoding, the largest per-frame cost of the loader.
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise _decode_error(kind, where, len(data)) from error
    if array.dtype != np.uint8 or array.ndim != ndim or (ndim == 3 and array.shape[2] != 3):
        raise UnreadableFileError(
            f"Cached {kind} {where} is a {array.dtype} array of shape {array.shape}; expected uint8 "
            f"{'(H, W, 3) RGB' if ndim == 3 else '(H, W)'}. Rebuild the cache with preprocessing.resize_cache.",
            where)
    return array


# PNG header: 8-byte signature, then the IHDR chunk, whose bit depth and colour type are bytes 24, 25.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GREY, PNG_RGB = 0, 2


def _intact_png(data: bytes) -> bool:
    """Every chunk's CRC is right and the file ends with IEND. pyspng tells libspng to ignore
    CRC errors and accepts a file cut short, where OpenCV's libpng refuses both: without this
    check a damaged frame would decode to wrong pixels instead of raising."""
    offset, end = len(PNG_SIGNATURE), len(data)
    while offset + 12 <= end:
        length = int.from_bytes(data[offset:offset + 4], "big")
        body_end = offset + 8 + length
        if body_end + 4 > end:
            return False
        if zlib.crc32(data[offset + 4:body_end]) != int.from_bytes(data[body_end:body_end + 4], "big"):
            return False
        if data[offset + 4:offset + 8] == b"IEND":
            return True
        offset = body_end + 4
    return False


def _spng_decode(data: bytes, colour_type: int) -> Optional[np.ndarray]:
    """8-bit grey or RGB PNG bytes → pixels by libspng (pyspng), else None.

    libspng decodes the face crops ~2.8x faster than OpenCV's libpng (docs/BENCHMARKS.md,
    "Data loader") and gives the same pixels for these two formats, which is all it is used
    for; anything else (16-bit, palette, alpha, JPEG, a damaged file, one libspng rejects) is
    left to cv2, whose conversions (to 8-bit, BGR, grey) and errors the loader has always used."""
    if (len(data) < 26 or data[:8] != PNG_SIGNATURE or data[24] != 8 or data[25] != colour_type
            or not _intact_png(data)):
        return None
    try:
        pixels = pyspng.load(data)
    except RuntimeError:  # corrupt or unsupported: cv2 decides (and the error names the file)
        return None
    expected = (3,) if colour_type == PNG_RGB else ()
    if pixels.dtype != np.uint8 or pixels.shape[2:] != expected:
        return None  # e.g. a tRNS chunk made libspng add an alpha channel
    return pixels


def decode_image(data: bytes, where: str) -> np.ndarray:
    """PNG/JPEG bytes (or a decoded cache's RGB ``.npy``) → RGB uint8 (H, W, 3)."""
    if is_decoded_array(data):
        return _decoded_array(data, where, "image", 3)
    image = _spng_decode(data, PNG_RGB)
    if image is not None:
        return image
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise _decode_error("image", where, len(data))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_mask(data: bytes, where: str) -> np.ndarray:
    """PNG bytes (or a decoded cache's ``.npy``) → uint8 (H, W) (colour masks are converted to grey)."""
    if is_decoded_array(data):
        return _decoded_array(data, where, "mask", 2)
    mask = _spng_decode(data, PNG_GREY)
    if mask is not None:
        return mask
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) if data else None
    if mask is None:
        raise _decode_error("mask", where, len(data))
    return mask


def decode_landmarks(data: bytes, where: str) -> np.ndarray:
    """``.npy`` bytes → float32 (K, 2)."""
    if not data:
        raise _decode_error("landmarks", where, 0)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UnreadableFileError(
            f"Cannot decode landmarks {where}: {error}. The file must be a .npy array of shape (K, 2) "
            f"written by np.save; re-run preprocessing for this video.", where) from error
    if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.number):
        raise UnreadableFileError(
            f"Landmarks {where} have shape {array.shape} and dtype {array.dtype}; expected a numeric "
            f"(K, 2) array of x, y pixel coordinates. Re-run preprocessing for this video.", where)
    return array.astype(np.float32, copy=False)


def decode_raw_landmarks(data: bytes, where: str) -> np.ndarray:
    """A DeepfakeBench LMDB landmark value (headerless ``tobytes()`` of 81 x 2 ints) → float32 (81, 2).

    Its reader assumes 4-byte integers; its saver's ``int`` array is 8-byte on Linux,
    so both sizes are accepted (signed: a point may lie just outside the crop)."""
    if is_decoded_array(data):
        return decode_landmarks(data, where)
    for dtype in (np.int32, np.int64):
        if len(data) == DEEPFAKEBENCH_LANDMARKS * 2 * np.dtype(dtype).itemsize:
            return np.frombuffer(data, dtype).reshape(DEEPFAKEBENCH_LANDMARKS, 2).astype(np.float32)
    raise UnreadableFileError(
        f"Landmarks {where} are a raw buffer of {len(data)} bytes; a DeepfakeBench LMDB stores "
        f"{DEEPFAKEBENCH_LANDMARKS} x 2 int32 ({DEEPFAKEBENCH_LANDMARKS * 8} bytes) or int64 "
        f"({DEEPFAKEBENCH_LANDMARKS * 16} bytes). Rebuild the LMDB, or use rgb storage.", where)


def _decode_error(kind: str, where: str, size: int) -> UnreadableFileError:
    reason = "it is empty (0 bytes)" if size == 0 else f"it is corrupt or not an image ({size} bytes)"
    return UnreadableFileError(
        f"Cannot decode {kind} {where}: {reason}. Re-run preprocessing for this video, or "
        f"train in lenient mode (strict=False), which drops and counts unreadable frames.", where)


# --------------------------------------------------------------------------- storages


class Storage:
    """Reads the files a record lists. Subclasses provide :meth:`read_bytes`."""

    kind = "abstract"

    def __init__(self, data_root: PathLike):
        self.data_root = Path(data_root)

    def read_bytes(self, path: str, dataset: Optional[str] = None) -> tuple[bytes, str]:
        """Return ``(bytes, description for error messages)``."""
        raise NotImplementedError

    def read_image(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        return decode_image(*self.read_bytes(path, dataset))

    def read_mask(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        return decode_mask(*self.read_bytes(path, dataset))

    def read_landmarks(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        return decode_landmarks(*self.read_bytes(path, dataset))

    def read(self, kind: str, path: str, dataset: Optional[str] = None) -> np.ndarray:
        """``kind`` in frames | masks | landmarks (the JSON field names)."""
        readers = {"frames": self.read_image, "masks": self.read_mask, "landmarks": self.read_landmarks}
        return readers[kind](path, dataset)


def _native(path: str) -> str:
    # DeepfakeBench's JSONs are written on Windows ("FaceForensics++\\original_sequences\\...").
    return path.replace("\\", "/") if os.sep == "/" else path


class RgbStorage(Storage):
    """Files on disk; relative paths resolve against the data root, or, when the data
    root is a DeepfakeBench checkout, against its ``datasets/rgb`` as DeepfakeBench does."""

    kind = "rgb"

    def __init__(self, data_root: PathLike):
        super().__init__(data_root)
        self._bases: Optional[List[Path]] = None  # found on first use: no file access here

    def bases(self) -> List[Path]:
        if self._bases is None:
            extra = self.data_root / DEEPFAKEBENCH_RGB_DIR
            self._bases = [self.data_root] + ([extra] if extra.is_dir() else [])
        return self._bases

    def resolve(self, path: str) -> Path:
        candidate = Path(_native(str(path)))
        if candidate.is_absolute():
            return candidate
        bases = self.bases()
        if len(bases) > 1:
            for base in bases:
                if (base / candidate).exists():
                    return base / candidate
        return bases[0] / candidate

    def read_bytes(self, path: str, dataset: Optional[str] = None) -> tuple[bytes, str]:
        resolved = self.resolve(path)
        where = f"'{resolved}'"
        try:
            return resolved.read_bytes(), where
        except OSError as error:
            reason = "does not exist" if isinstance(error, FileNotFoundError) else str(error)
            raise UnreadableFileError(
                f"Cannot read {where} (listed as {path!r}): {reason}. Check data.root "
                f"({self.data_root}) and re-run preprocessing for this video, or train in lenient "
                f"mode (strict=False), which drops and counts unreadable frames.", str(path)) from error


@dataclass
class _OpenLmdb:
    env: object
    path: Path
    db_folder: Optional[str]  # None: this framework's LMDB; else DeepfakeBench's, made from that folder
    linux_first: bool = False  # DeepfakeBench: its keys were written on Linux ("/" after the folder)


# py-lmdb refuses to open one environment twice in a process, and several storages (train,
# val, test loaders) or datasets (the FF++ family's shared DeepfakeBench LMDB) read the same one.
_OPEN_ENVS: Dict[str, "_OpenLmdb"] = {}
_OPEN_ENVS_PID = [os.getpid()]
_OPEN_ENVS_LOCK = threading.Lock()


def _shared_env(path: Path, opener) -> "_OpenLmdb":
    key = os.path.realpath(path)
    with _OPEN_ENVS_LOCK:
        if _OPEN_ENVS_PID[0] != os.getpid():  # forked: the parent's handles are unusable here
            _OPEN_ENVS.clear()
            _OPEN_ENVS_PID[0] = os.getpid()
        if key not in _OPEN_ENVS:
            _OPEN_ENVS[key] = opener(path)
        return _OPEN_ENVS[key]


class LmdbStorage(Storage):
    """One read-only LMDB environment per dataset, opened lazily in each process.

    LMDB handles must not cross ``fork`` (DataLoader workers), so environments
    are opened on first use and dropped when the process id changes; pickling
    (spawn workers) drops them as well.
    """

    kind = "lmdb"

    def __init__(self, data_root: PathLike, lmdb_dir: Optional[PathLike] = None):
        super().__init__(data_root)
        self.lmdb_dir = Path(lmdb_dir) if lmdb_dir is not None else self.data_root / "lmdb"
        # Without an explicit lmdb_dir, a DeepfakeBench checkout's datasets/lmdb is tried too.
        self.lmdb_dirs = [self.lmdb_dir] if lmdb_dir is not None else [
            self.lmdb_dir, self.data_root / DEEPFAKEBENCH_LMDB_DIR]
        self._forget_handles()

    def _forget_handles(self) -> None:
        self._envs: Dict[str, _OpenLmdb] = {}
        self._pid = os.getpid()
        # LMDB forbids opening one environment twice in a process; validation reads from threads.
        self._open_lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_envs"], state["_open_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._forget_handles()

    def db_path(self, dataset: str) -> Path:
        """Where this framework's converter writes the dataset's LMDB."""
        return self.lmdb_dir / f"{dataset}.lmdb"

    def db_candidates(self, dataset: str, path: Optional[str] = None) -> List[Path]:
        """LMDB folders tried for ``dataset``, in order: ours, DeepfakeBench's ``<Dataset>_lmdb``,
        then ``<C>_lmdb`` for each folder ``C`` of ``path`` (its FF++ family shares one)."""
        names = [f"{dataset}.lmdb", f"{dataset}_lmdb"]
        if path:
            names += [f"{part}_lmdb" for part in str(path).replace("\\", "/").split("/")[:-1]
                      if part not in ("", ".", "..")]
        return [folder / name for folder in self.lmdb_dirs for name in dict.fromkeys(names)]

    def _env(self, dataset: Optional[str], path: Optional[str] = None) -> object:
        return self._opened(dataset, path).env

    def _opened(self, dataset: Optional[str], path: Optional[str]) -> _OpenLmdb:
        if not dataset:
            raise ValueError("LmdbStorage needs the record's dataset name to choose its LMDB "
                             "(pass dataset=record.dataset)")
        if self._pid != os.getpid():  # forked (DataLoader worker): the parent's handles are unusable
            self._forget_handles()
        opened = self._envs.get(dataset)
        if opened is None:
            with self._open_lock:
                opened = self._envs.get(dataset) or self._open(dataset, path)
                self._envs[dataset] = opened
        return opened

    def _open(self, dataset: str, path: Optional[str]) -> _OpenLmdb:
        candidates = self.db_candidates(dataset, path)
        found = next((c for c in candidates if (c / "data.mdb").is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"LMDB for dataset {dataset!r} not found (looked for {', '.join(map(str, candidates))}). "
                f"Build it with `python -m preprocessing.to_lmdb --data_root {self.data_root} --dataset "
                f"{dataset}`, set data.lmdb_dir to the folder holding it, or use rgb storage.")
        return _shared_env(found, self._open_path)

    @staticmethod
    def _open_path(found: Path) -> _OpenLmdb:
        import lmdb  # local import: rgb-only users need no lmdb

        env = lmdb.open(str(found), readonly=True, lock=False, readahead=False, meminit=False)
        with env.begin(write=False) as txn:
            if txn.get(LMDB_META_KEY) is not None:
                return _OpenLmdb(env, found, None)
            first_key = next(txn.cursor().iternext(values=False), b"").decode("utf-8", "replace")
        if "\\" not in first_key:
            env.close()
            raise UnreadableFileError(
                f"{found} is neither an LMDB written by preprocessing.to_lmdb (no "
                f"{LMDB_META_KEY.decode()} record) nor one of DeepfakeBench's (its keys start with "
                f"'<Dataset>\\'; the first key is {first_key!r}). Rebuild it with preprocessing.to_lmdb.",
                str(found))
        folder, rest = first_key.split("\\", 1)
        return _OpenLmdb(env, found, folder, linux_first="/" in rest)

    def _lookup(self, opened: _OpenLmdb, path: str) -> Tuple[Optional[bytes], str]:
        with opened.env.begin(write=False, buffers=False) as txn:
            if opened.db_folder is None:
                key = lmdb_key(path, self.data_root)
                return txn.get(key.encode("utf-8")), key
            keys = deepfakebench_lmdb_keys(path, opened.db_folder, opened.linux_first)
            for key in keys:
                data = txn.get(key.encode("utf-8"))
                if data is not None:
                    return data, key
            return None, "' or '".join(keys)

    def read_bytes(self, path: str, dataset: Optional[str] = None) -> tuple[bytes, str]:
        opened = self._opened(dataset, path)
        data, key = self._lookup(opened, path)
        where = f"'{path}' (LMDB {opened.path}, key '{key}')"
        if data is None:
            rebuild = (f"rebuild it with `python -m preprocessing.to_lmdb --data_root {self.data_root} "
                       f"--dataset {dataset}`")
            if opened.db_folder is not None:
                rebuild = (f"it is DeepfakeBench's LMDB of folder {opened.db_folder!r}; rebuild it with its "
                           f"dataset2lmdb_test.py from the frames the JSON lists, or {rebuild}")
            raise UnreadableFileError(
                f"Missing {where}. The LMDB is out of date with {dataset}.json: {rebuild}.", str(path))
        return data, where

    def read_landmarks(self, path: str, dataset: Optional[str] = None) -> np.ndarray:
        data, where = self.read_bytes(path, dataset)
        if self._opened(dataset, path).db_folder is not None:
            return decode_raw_landmarks(data, where)  # DeepfakeBench stores headerless buffers
        return decode_landmarks(data, where)

    def cache_geometry(self, dataset: str) -> Optional[Dict[str, object]]:
        """The geometry a decoded cache (preprocessing/resize_cache.py) pre-resized ``dataset``
        with; None for a cache at the stored size and for every other LMDB."""
        try:
            opened = self._opened(dataset, None)
        except FileNotFoundError:  # e.g. DeepfakeBench's shared LMDB, found from a frame's path only
            return None
        if opened.db_folder is not None:
            return None
        with opened.env.begin(write=False) as txn:
            meta = json.loads(txn.get(LMDB_META_KEY) or b"{}")
        return meta.get("geometry") if meta.get("kind") == "decoded_cache" else None


STORAGES = {"rgb": RgbStorage, "lmdb": LmdbStorage}


def build_storage(kind: str, data_root: PathLike, lmdb_dir: Optional[PathLike] = None) -> Storage:
    """``lmdb_dir`` (data.lmdb_dir): where the LMDBs are, default ``<data_root>/lmdb``."""
    if kind not in STORAGES:
        raise ValueError(f"Unknown storage {kind!r} (data.storage); choose one of {sorted(STORAGES)}")
    return LmdbStorage(data_root, lmdb_dir) if kind == "lmdb" else STORAGES[kind](data_root)
