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

Nothing is ever substituted: a missing, empty or undecodable file raises
:class:`UnreadableFileError` naming the file (and the LMDB db and key).
"""
from __future__ import annotations

import io
import os
import posixpath
import threading
from pathlib import Path
from typing import Dict, Optional, Union

import cv2
import numpy as np

PathLike = Union[str, os.PathLike]
LMDB_META_KEY = b"__clipforensics_lmdb__"
NPY_MAGIC = b"\x93NUMPY"


class UnreadableFileError(OSError):
    """A frame, mask or landmark file cannot be read or decoded."""

    # ``path`` is optional so DataLoader workers can re-raise it as the same type.
    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return self.args[0]


def lmdb_path(data_root: PathLike, dataset: str) -> Path:
    return Path(data_root) / "lmdb" / f"{dataset}.lmdb"


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


def decode_image(data: bytes, where: str) -> np.ndarray:
    """PNG/JPEG bytes (or a decoded cache's RGB ``.npy``) → RGB uint8 (H, W, 3)."""
    if is_decoded_array(data):
        return _decoded_array(data, where, "image", 3)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise _decode_error("image", where, len(data))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_mask(data: bytes, where: str) -> np.ndarray:
    """PNG bytes (or a decoded cache's ``.npy``) → uint8 (H, W) (colour masks are converted to grey)."""
    if is_decoded_array(data):
        return _decoded_array(data, where, "mask", 2)
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


class RgbStorage(Storage):
    """Files on disk; relative paths resolve against the data root."""

    kind = "rgb"

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.data_root / candidate

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
        self._forget_handles()

    def _forget_handles(self) -> None:
        self._envs: Dict[str, object] = {}
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
        return self.lmdb_dir / f"{dataset}.lmdb"

    def _env(self, dataset: Optional[str]):
        if not dataset:
            raise ValueError("LmdbStorage needs the record's dataset name to choose its LMDB "
                             "(pass dataset=record.dataset)")
        if self._pid != os.getpid():  # forked (DataLoader worker): the parent's handles are unusable
            self._forget_handles()
        env = self._envs.get(dataset)
        if env is None:
            with self._open_lock:
                env = self._envs.get(dataset) or self._open(dataset)
                self._envs[dataset] = env
        return env

    def _open(self, dataset: str):
        import lmdb  # local import: rgb-only users need no lmdb

        path = self.db_path(dataset)
        if not (path / "data.mdb").is_file():
            raise FileNotFoundError(
                f"LMDB for dataset {dataset!r} not found at {path}. Build it with "
                f"`python -m preprocessing.to_lmdb --data_root {self.data_root} --dataset {dataset}`, "
                f"or use rgb storage.")
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)

    def read_bytes(self, path: str, dataset: Optional[str] = None) -> tuple[bytes, str]:
        env = self._env(dataset)
        key = lmdb_key(path, self.data_root)
        where = f"'{path}' (LMDB {self.db_path(dataset)}, key '{key}')"
        with env.begin(write=False, buffers=False) as txn:
            data = txn.get(key.encode("utf-8"))
        if data is None:
            raise UnreadableFileError(
                f"Missing {where}. The LMDB is out of date with json/{dataset}.json: rebuild it with "
                f"`python -m preprocessing.to_lmdb --data_root {self.data_root} --dataset {dataset}`.",
                str(path))
        return data, where


STORAGES = {"rgb": RgbStorage, "lmdb": LmdbStorage}


def build_storage(kind: str, data_root: PathLike) -> Storage:
    if kind not in STORAGES:
        raise ValueError(f"Unknown storage {kind!r} (data.storage); choose one of {sorted(STORAGES)}")
    return STORAGES[kind](data_root)
