"""Atomic file writes: write to a temporary file in the same folder, fsync, rename.

A crash (or a full disk) during the write leaves the previous version of the
file untouched; readers never see a half-written file. The finished file gets the
mode a plain ``open(path, "w")`` would give (0666 minus the umask), not the
temporary file's private 0600.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Union

PathLike = Union[str, os.PathLike]


def current_umask() -> int:
    """The process umask. Linux reports it in /proc (no side effect); elsewhere it can only be
    read by setting it, briefly, which is harmless outside multi-threaded file creation."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    return 0o666 & ~current_umask()


def new_directory_mode() -> int:
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The caller writes the temporary file however it likes (torch.save, cv2.imwrite ...).
    On any exception the temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp made it 0600; results, checkpoints and plots are meant to be shared like any file.
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == 28:  # ENOSPC
            raise OSError(error.errno, f"No space left on device while writing {path}; "
                          f"the previous version of this file (if any) is intact. "
                          f"Free disk space and retry.") from error
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
