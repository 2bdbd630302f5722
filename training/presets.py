"""Cross-dataset protocol presets: ``configs/_base_/protocol_<name>.yaml``.

A preset names the test sets of one published table (DeepfakeBench's, GenD's, the
demo's). ``training/test.py --preset NAME`` tests on exactly those sets, so one
command gives the whole table (frame and video AUC per set, and their means).
A preset file is an ordinary config fragment, so a detector config can also
include it with ``_base_``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "_base_"
PREFIX = "protocol_"


def available_presets() -> List[str]:
    return sorted(path.stem[len(PREFIX):] for path in PRESET_DIR.glob(f"{PREFIX}*.yaml"))


def preset_path(value: str) -> Path:
    """A preset name (``gend``) or a YAML path."""
    from training.config import ConfigError

    path = Path(value)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"--preset {value}: file not found.")
        return path
    path = PRESET_DIR / f"{PREFIX}{value}.yaml"
    if not path.is_file():
        raise ConfigError(f"--preset {value!r} is not a preset; choose from {', '.join(available_presets())} "
                          f"(files {PRESET_DIR}/{PREFIX}<name>.yaml) or give a YAML path.")
    return path


def preset_overrides(value: str) -> List[str]:
    """Config overrides of a preset: its ``data.test_dataset``, and ``data.compression`` when it sets one."""
    from training.config import ConfigError, read_yaml_with_bases

    path = preset_path(value)
    data = read_yaml_with_bases(path).get("data") or {}
    names = data.get("test_dataset")
    if not names:
        raise ConfigError(f"{path}: a protocol preset needs data.test_dataset (the sets of its table).")
    overrides = [f"data.test_dataset=[{','.join(str(name) for name in names)}]"]
    if data.get("compression"):
        overrides.append(f"data.compression={data['compression']}")
    return overrides
