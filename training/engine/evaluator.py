"""Test-set evaluator (detectron2 style: ``reset`` / ``process`` / ``evaluate``).

``evaluate`` turns what every rank saw into ONE ``predictions.csv`` and computes
the metrics from that file alone, so the reported numbers can always be
recomputed from the file (``training.metrics.compute_metrics``) and do not
depend on the number of GPUs:

1. gather all ranks' rows;
2. drop rows repeated by ``DistributedSampler`` padding (same video_key,
   frame_index[, clip_index]);
3. sort by (video_key, frame_index[, clip_index]) so the file is byte-identical
   whatever the world size or batch order;
4. rank 0 writes ``predictions.csv`` (+ ``features.npz``), reads it back,
   writes ``metrics.json``, and broadcasts the metrics to the other ranks.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import torch

from training import metrics as metrics_lib
from training.engine import distributed as dist_utils
from training.engine.run_dir import FEATURES_FILE, METRICS_FILE, PREDICTIONS_FILE  # noqa: F401 - re-exported
from training.utils.atomic import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

Rows = Dict[str, np.ndarray]


class Evaluator:
    """Collect per-sample predictions of one test dataset and score them."""

    def __init__(self, dataset_name: str, output_dir: Union[str, os.PathLike], save_features: bool = False,
                 video_aggregation: str = "mean"):
        self.dataset_name = dataset_name
        self.output_dir = Path(output_dir)
        self.save_features = save_features
        self.video_aggregation = video_aggregation  # mean | median of a video's P(fake) (training/metrics.py)
        self._chunks: List[Rows] = []

    def reset(self) -> None:
        self._chunks = []

    def process(self, batch: Mapping[str, Any], out: Mapping[str, Any]) -> None:
        """Keep one batch: ``batch`` has ``label``, ``video_key``, ``frame_index``
        (optional ``clip_index``); ``out`` has ``prob`` = P(fake) (optional ``feat``)."""
        chunk: Rows = {
            "video_key": np.asarray(list(batch["video_key"]), dtype=object),
            "frame_index": _first_frame_index(_to_numpy(batch["frame_index"])).astype(np.int64),
            "label": _to_numpy(batch["label"]).astype(np.int64),
            "prob": _to_numpy(out["prob"], float_dtype=torch.float32),
        }
        if "clip_index" in batch and batch["clip_index"] is not None:
            chunk["clip_index"] = _to_numpy(batch["clip_index"]).astype(np.int64)
        if self.save_features:
            if out.get("feat") is None:
                raise KeyError("Evaluator(save_features=True) needs out['feat'] (B, D); "
                               "the detector returned none. Disable save_features or return features.")
            feat = _to_numpy(out["feat"], float_dtype=torch.float32)
            chunk["feat"] = feat.reshape(len(feat), -1)  # token/patch maps flattened per sample
        _check_batch_sizes(chunk)
        self._chunks.append(chunk)

    def evaluate(self) -> Dict[str, Any]:
        """Metrics of this dataset (same dict on every rank); writes the files on rank 0."""
        rows = _deduplicate_and_sort(_concatenate(_all_gather(_concatenate(self._chunks))))
        if rows["label"].size == 0:
            raise ValueError(f"Evaluator({self.dataset_name!r}): no predictions to evaluate; "
                             f"process() was never called with a non-empty batch on any rank.")
        if not dist_utils.is_main_process():
            return _receive_from_rank0()
        try:
            metrics = self._write_and_score(rows)
        except Exception as error:
            _send_from_rank0(None, f"{type(error).__name__}: {error}")
            raise
        _send_from_rank0(metrics, None)
        return metrics

    def _write_and_score(self, rows: Rows) -> Dict[str, Any]:
        predictions_path = self.output_dir / PREDICTIONS_FILE
        columns = {"dataset": np.full(rows["label"].size, self.dataset_name, dtype=object),
                   **{name: rows[name] for name in rows if name != "feat"}}
        metrics_lib.write_predictions(predictions_path, columns)
        if self.save_features:
            _write_features(self.output_dir / FEATURES_FILE, rows)
        # Score the file, not the arrays in memory: the file is what gets shared.
        all_metrics = metrics_lib.compute_metrics(predictions_path, video_aggregation=self.video_aggregation)
        atomic_write_json(self.output_dir / METRICS_FILE, all_metrics)
        return all_metrics[self.dataset_name]


# ------------------------------------------------------------------ batch handling

def _to_numpy(value: Any, float_dtype: Optional[torch.dtype] = None) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        # numpy has no bfloat16; half/bf16 outputs under AMP become float32.
        if float_dtype is not None and value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
            value = value.to(float_dtype)
        return value.cpu().numpy()
    return np.asarray(value)


def _first_frame_index(frame_index: np.ndarray) -> np.ndarray:
    # Clip batches may carry every frame's index (B, T); a clip is named by its first frame.
    return frame_index[:, 0] if frame_index.ndim == 2 else frame_index


def _check_batch_sizes(chunk: Rows) -> None:
    sizes = {name: len(values) for name, values in chunk.items()}
    if len(set(sizes.values())) != 1 or any(chunk[name].ndim != 1 for name in chunk if name != "feat"):
        shapes = {name: tuple(values.shape) for name, values in chunk.items()}
        raise ValueError(f"Evaluator.process: batch fields disagree on the batch size: {shapes}; "
                         f"prob must be (B,), label/frame_index (B,), video_key B strings.")


def _concatenate(chunks: List[Rows]) -> Rows:
    chunks = [chunk for chunk in chunks if chunk]
    if not chunks:
        return {}
    names = chunks[0].keys()
    for chunk in chunks[1:]:
        if chunk.keys() != names:
            raise ValueError(f"Evaluator: batches carry different fields ({sorted(names)} vs "
                             f"{sorted(chunk.keys())}); clip_index/feat must be in every batch or none.")
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in names}


def _sample_keys(rows: Rows) -> List[np.ndarray]:
    _, video_codes = np.unique(rows["video_key"], return_inverse=True)
    keys = [video_codes.reshape(-1), rows["frame_index"]]
    if "clip_index" in rows:
        keys.append(rows["clip_index"])
    return keys


def _deduplicate_and_sort(rows: Rows) -> Rows:
    """Sort by sample id and keep the first copy of each (padding duplicates)."""
    if not rows or rows["label"].size == 0:
        return {"label": np.zeros(0, dtype=np.int64)}
    keys = _sample_keys(rows)
    order = np.lexsort(keys[::-1])  # stable: the lowest rank's copy comes first
    sorted_keys = [key[order] for key in keys]
    repeats = np.concatenate([[False], np.logical_and.reduce([k[1:] == k[:-1] for k in sorted_keys])])
    labels = rows["label"][order]
    conflicting = repeats & (labels != np.roll(labels, 1))
    if conflicting.any():
        i = order[np.flatnonzero(conflicting)[0]]
        raise ValueError(f"Evaluator: sample (video {rows['video_key'][i]!r}, frame "
                         f"{int(rows['frame_index'][i])}) was seen with both labels; the dataset lists it twice.")
    if repeats.any():
        logger.info("Evaluator: dropped %d duplicate row(s) (distributed sampler padding)", int(repeats.sum()))
    keep = order[~repeats]
    return {name: values[keep] for name, values in rows.items()}


def _write_features(path: Path, rows: Rows) -> None:
    arrays = {"feat": rows["feat"], "label": rows["label"],
              "video_key": rows["video_key"].astype(str), "frame_index": rows["frame_index"]}
    if "clip_index" in rows:
        arrays["clip_index"] = rows["clip_index"]
    with atomic_path(path) as tmp:
        # A file handle, not a name: np.savez would append ".npz" to the temporary name.
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


# --------------------------------------------------------------- distributed glue

def _all_gather(rows: Rows) -> List[Rows]:
    return dist_utils.all_gather_objects(rows)


def _send_from_rank0(metrics: Optional[Dict[str, Any]], error: Optional[str]) -> None:
    # Every rank waits in the broadcast, so a failure on rank 0 is sent too;
    # otherwise the other ranks would hang until the collective times out.
    dist_utils.broadcast_object((metrics, error), src=0)


def _receive_from_rank0() -> Dict[str, Any]:
    metrics, error = dist_utils.broadcast_object(None, src=0)
    if error is not None:
        raise RuntimeError(f"Evaluator: rank 0 failed while writing/scoring predictions: {error}")
    return metrics
