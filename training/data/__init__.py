"""Data layer: dataset JSON → records → sampled frames/clips → storage → transforms → batch.

Modules: ``records`` (VideoRecord), ``catalog`` (JSON → records), ``sampling``
(which frames), ``storage`` (rgb | lmdb), ``transforms`` (InputSpec + aug
config → callable), ``datasets`` (FrameDataset, ClipDataset, collate_samples).

The names below are re-exported lazily (PEP 562), so ``import training.data``
stays cheap: torch, OpenCV and albumentations load only when a name is used.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VideoRecord": "records",
    "CatalogError": "catalog", "SkipReport": "catalog", "CatalogReport": "catalog",
    "load_dataset_json": "catalog", "build_records": "catalog", "build_records_with_report": "catalog",
    "even_frame_positions": "sampling", "clip_starts": "sampling",
    "RgbStorage": "storage", "LmdbStorage": "storage", "build_storage": "storage",
    "UnreadableFileError": "storage",
    "build_transform": "transforms",
    "FrameDataset": "datasets", "ClipDataset": "datasets", "collate_samples": "datasets",
    "build_identity_index": "datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
