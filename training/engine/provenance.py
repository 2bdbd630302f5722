"""Where a run's numbers came from: git commit (and whether the tree had uncommitted changes), the
versions of the packages that shape results, the command line, host, device and wall time.

train.py writes it to the run directory (``provenance.json``) when the run starts and again when it ends
(with the wall time); analysis/report.py shows it. Every field is best effort: a missing git or package
says so instead of failing the run.
"""
from __future__ import annotations

import datetime
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

# The distributions whose versions change numbers (kernels, decoders, face detection, metrics).
PACKAGES = ("torch", "torchvision", "open_clip_torch", "timm", "numpy", "opencv-python-headless", "dlib-bin",
            "scikit-learn", "scikit-image", "albumentations", "Pillow")
REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> Dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "note": f"{REPO} is not a git checkout (or git is missing)"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status), "changed_files": status.splitlines()[:50] if status else []}


def package_versions(names: Sequence[str] = PACKAGES) -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect(command: Sequence[str], device: Optional[str] = None) -> Dict[str, Any]:
    """The provenance record of a run starting now, launched with ``command`` (program and arguments)."""
    import torch

    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [str(part) for part in command],
        "git": git_state(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "host": platform.node(),
        "platform": platform.platform(),
        "device": device,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "cpu_threads": torch.get_num_threads(),
    }


def write_start(path: Path, command: Sequence[str], device: Optional[str] = None) -> Dict[str, Any]:
    from training.utils.atomic import atomic_write_json

    record = collect(command, device)
    record["_monotonic_start"] = time.monotonic()  # not written: only for the wall time of this process
    atomic_write_json(path, {k: v for k, v in record.items() if not k.startswith("_")})
    return record


def write_end(path: Path, record: Dict[str, Any], status: str = "finished") -> None:
    """Add the end time, status and wall time of this process to the record written by :func:`write_start`."""
    from training.utils.atomic import atomic_write_json

    done = {k: v for k, v in record.items() if not k.startswith("_")}
    done["ended"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    done["status"] = status
    done["wall_time_s"] = round(time.monotonic() - record["_monotonic_start"], 1)
    atomic_write_json(path, done)
