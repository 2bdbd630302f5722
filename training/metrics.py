"""Predictions file and the evaluation protocol computed from it.

One protocol, documented here and nowhere else:

* ``predictions.csv`` has one row per scored sample with the columns
  :data:`PREDICTION_COLUMNS` (plus ``clip_index`` for clip models, whose
  ``frame_index`` is the first frame of the clip). ``prob`` is P(fake), label 1
  is fake.
* A video is identified by its FULL ``video_key`` (``dataset/label/video``),
  never by its folder name: FaceForensics++ methods reuse folder names such as
  ``000_003``, and grouping by folder merges different fake videos (the
  DeepfakeBench bug, see docs).
* The video score is the plain mean of that video's frame (or clip)
  probabilities, so each video counts once whatever its length; ``median`` is
  the option GenD also has (``reduce_video_predictions``, src/model/base.py of
  github yermandy/GenD), chosen by ``test.video_aggregation`` /
  ``train.val_video_aggregation``.
* EER is where FPR = 1 - TPR on the ROC, linearly interpolated between ROC
  points (DeepfakeBench takes the nearest point instead). TPR at a given FPR is
  interpolated the same way (GenD's ``calculate_tpr_at_fpr``, src/metrics.py:
  ``np.interp`` on sklearn's ROC, which at a vertical ROC step takes its top).
* ``ap`` is the average precision of the fake class (DeepfakeBench's ``ap``,
  training/metrics/utils.py); ``ap_real`` that of the real class scored by
  1 - P(fake); ``map`` their mean, the macro AP over both classes that LN-CLIP
  and GenD log as ``mAP`` and select checkpoints on (``ovr_prc``, src/metrics.py
  of both repositories: sklearn's macro ``average_precision_score`` over the
  one-hot labels and the two softmax columns).
* Accuracy uses the fixed threshold prob > 0.5 (what argmax over two softmax
  logits gives).

Every metric name is defined once, in :data:`METRICS`; tables, the report, the
ablation runner, ``train.val_metric`` and the evaluator read it from there.

Everything is vectorised over rows: a DFDC-scale file has ~4M rows.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from training.utils.atomic import atomic_path

PREDICTION_COLUMNS = ("dataset", "video_key", "frame_index", "label", "prob")
CLIP_COLUMN = "clip_index"

_STRING_COLUMNS = ("dataset", "video_key")
_INT_COLUMNS = ("frame_index", "label", CLIP_COLUMN)

Columns = Dict[str, np.ndarray]
PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------- I/O

def write_predictions(path: PathLike, rows_or_columns: Union[Mapping[str, Any], Iterable[Mapping[str, Any]]]) -> None:
    """Write ``predictions.csv`` atomically, rows in the order given.

    ``rows_or_columns`` is either a mapping column -> sequence (one entry per
    row) or an iterable of row mappings. ``clip_index`` is written when present.
    float32 probabilities are written with 9 significant digits (exact float32
    round trip), anything else with ``repr`` (exact float64 round trip), so
    metrics computed from the file equal metrics computed from memory.
    """
    columns = _as_columns(rows_or_columns)
    header = _header_for(columns)
    formatted = [_format_column(name, columns[name]) for name in header]

    with atomic_path(path) as tmp, _gc_paused():
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(zip(*formatted))


def read_predictions(path: PathLike) -> Columns:
    """Read ``predictions.csv`` into a dict of numpy arrays.

    String columns are object arrays; ``frame_index``, ``label`` and
    ``clip_index`` are int64; ``prob`` is float64.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle, _gc_paused():
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected a header with columns {PREDICTION_COLUMNS}")
        _check_header(path, header)
        rows = list(reader)

    bad = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"{path}: line {bad[0] + 2} has {len(rows[bad[0]])} fields, "
                         f"the header has {len(header)}")

    with _gc_paused():
        raw = dict(zip(header, zip(*rows))) if rows else {name: () for name in header}
    del rows
    return {name: _parse_column(path, name, raw[name]) for name in header
            if name in PREDICTION_COLUMNS or name == CLIP_COLUMN}


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while millions of small tuples/strings
    are created: they hold no cycles, but each allocation burst triggers full
    collections that made reading a 4M-row file ~4x slower."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_columns(rows_or_columns) -> Columns:
    if isinstance(rows_or_columns, Mapping):
        columns = dict(rows_or_columns)
    else:
        rows = list(rows_or_columns)
        names = list(PREDICTION_COLUMNS) + ([CLIP_COLUMN] if rows and CLIP_COLUMN in rows[0] else [])
        missing = [name for name in names if rows and name not in rows[0]]
        if missing:
            raise ValueError(f"prediction rows lack column(s) {missing}; each row needs {names}")
        columns = {name: [row[name] for row in rows] for name in names}
    _check_header("predictions", list(columns))
    lengths = {name: len(columns[name]) for name in _header_for(columns)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"prediction columns have different lengths: {lengths}")
    return columns


def _header_for(columns: Mapping[str, Any]) -> List[str]:
    return list(PREDICTION_COLUMNS) + ([CLIP_COLUMN] if CLIP_COLUMN in columns else [])


def _check_header(source, header: Sequence[str]) -> None:
    missing = [name for name in PREDICTION_COLUMNS if name not in header]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; a predictions file needs "
                         f"{list(PREDICTION_COLUMNS)} (+ optional {CLIP_COLUMN!r})")


def _format_column(name: str, values) -> List[str]:
    array = np.asarray(values)
    if name == "prob":
        if array.dtype == np.float32:
            return list(np.char.mod("%.9g", array))
        return [repr(float(v)) for v in array.astype(np.float64)]
    if name in _INT_COLUMNS:
        return [str(int(v)) for v in array]
    return [str(v) for v in values]


def _parse_column(path: Path, name: str, values: Sequence[str]) -> np.ndarray:
    if name in _STRING_COLUMNS:
        return np.array(values, dtype=object)
    dtype = np.float64 if name == "prob" else np.int64
    try:
        return np.array(values, dtype=dtype)
    except ValueError:
        caster = float if dtype is np.float64 else int
        for i, value in enumerate(values):
            try:
                caster(value)
            except ValueError:
                raise ValueError(f"{path}: line {i + 2}, column {name!r}: {value!r} is not "
                                 f"{'a number' if caster is float else 'an integer'}") from None
        raise


# --------------------------------------------------------------------- ROC helpers

def roc_curve(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) with every threshold kept, starting at (0, 0)."""
    from sklearn.metrics import roc_curve as sk_roc_curve

    labels, scores = _binary_inputs(labels, scores)
    fpr, tpr, _ = sk_roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    return fpr, tpr


def eer(labels, scores) -> float:
    """Equal error rate: FPR where FPR = 1 - TPR, interpolated on the ROC."""
    return _eer_from_roc(*roc_curve(labels, scores))


def tpr_at_fpr(labels, scores, fpr: float) -> float:
    """TPR at the given FPR, linearly interpolated on the ROC."""
    return _tpr_at_fpr_from_roc(*roc_curve(labels, scores), target_fpr=fpr)


def _eer_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    # gap = FPR - FNR = fpr + tpr - 1 never decreases along the ROC and runs
    # from -1 at (0, 0) to +1 at (1, 1): find the segment where it crosses 0.
    gap = fpr + tpr - 1.0
    i = int(np.searchsorted(gap, 0.0, side="left"))
    if gap[i] == 0.0 or i == 0:
        return float(fpr[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def _tpr_at_fpr_from_roc(fpr: np.ndarray, tpr: np.ndarray, target_fpr: float) -> float:
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {target_fpr}")
    # The last ROC point with fpr <= target has the highest TPR reachable there
    # (a vertical ROC segment at exactly the target counts at its top).
    j = int(np.searchsorted(fpr, target_fpr, side="right")) - 1
    if fpr[j] == target_fpr or j == len(fpr) - 1:
        return float(tpr[j])
    t = (target_fpr - fpr[j]) / (fpr[j + 1] - fpr[j])
    return float(tpr[j] + t * (tpr[j + 1] - tpr[j]))


def _auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def _binary_inputs(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {labels.shape} and {scores.shape}")
    n_fake = int(np.count_nonzero(labels == 1))
    n_real = int(np.count_nonzero(labels == 0))
    if n_fake + n_real != labels.size:
        raise ValueError(f"labels must be 0 (real) or 1 (fake); got values {np.unique(labels)[:10]}")
    if n_fake == 0 or n_real == 0:
        raise ValueError(f"AUC is undefined with one class: {n_real} real and {n_fake} fake samples")
    return labels, scores


# ------------------------------------------------------------------- the registry

VIDEO_AGGREGATIONS = ("mean", "median")


class Scored:
    """Labels and scores of one level (frames/clips or videos); the ROC is computed once."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        self.labels, self.scores = labels, scores

    @functools.cached_property
    def roc(self) -> Tuple[np.ndarray, np.ndarray]:
        return roc_curve(self.labels, self.scores)


@dataclass(frozen=True)
class Metric:
    """One entry of ``metrics.json``.

    ``level``: ``frame`` (one predictions row: a frame, or a clip for clip models),
    ``video`` (per-video aggregate) or ``count``. ``kind`` is the short name of what
    is measured (tables drop it from the headers when every column shares it);
    ``title`` the column title. ``compute`` maps the :class:`Scored` of its level to
    the value (None: filled in by :func:`compute_metrics` itself). ``selectable``:
    may be ``train.val_metric``. ``extra``: a column of ``--extra_metrics`` tables.
    """

    name: str
    level: str
    kind: str
    title: str
    higher_is_better: bool = True
    compute: Optional[Callable[[Scored], float]] = None
    selectable: bool = True
    extra: bool = False

    @property
    def is_count(self) -> bool:
        return self.level == "count"

    def better(self, value: float, than: Optional[float]) -> bool:
        """Whether ``value`` improves on ``than`` (None: nothing to beat yet)."""
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than


def average_precision(labels, scores, positive: int = 1) -> float:
    """AP of class ``positive``: fake (1) ranked by P(fake), real (0) by 1 - P(fake)."""
    from sklearn.metrics import average_precision_score

    labels, scores = _binary_inputs(labels, scores)
    if positive == 1:
        return float(average_precision_score(labels, scores))
    if positive == 0:
        return float(average_precision_score(labels == 0, 1.0 - scores))
    raise ValueError(f"positive must be 0 (real) or 1 (fake), got {positive!r}")


def macro_average_precision(labels, scores) -> float:
    """Mean of the fake-class and the real-class AP: LN-CLIP's / GenD's ``mAP``."""
    return 0.5 * (average_precision(labels, scores, 1) + average_precision(labels, scores, 0))


# TPR@FPR targets GenD reports (src/model/base.py: selected_fprs = [0.001, 0.01, 0.05]).
TPR_FPR_TARGETS = ((0.001, "0.1"), (0.01, "1"), (0.05, "5"))


def _level_metrics(level: str) -> List[Metric]:
    capital = level.capitalize()
    metrics = [
        Metric(f"{level}_auc", level, "AUC", f"{capital} AUC", compute=lambda s: _auc_from_roc(*s.roc)),
        Metric(f"{level}_eer", level, "EER", f"{capital} EER", higher_is_better=False,
               compute=lambda s: _eer_from_roc(*s.roc), extra=True),
        Metric(f"{level}_ap", level, "AP", f"{capital} AP",
               compute=lambda s: average_precision(s.labels, s.scores, 1), extra=True),
        Metric(f"{level}_ap_real", level, "AP real", f"{capital} AP real",
               compute=lambda s: average_precision(s.labels, s.scores, 0)),
        Metric(f"{level}_map", level, "mAP", f"{capital} mAP",
               compute=lambda s: macro_average_precision(s.labels, s.scores), extra=True),
    ]
    for target, percent in TPR_FPR_TARGETS:
        metrics.append(Metric(f"{level}_tpr_at_fpr_{percent}pct", level, f"TPR@{percent}%FPR",
                              f"{capital} TPR@{percent}%FPR",
                              compute=lambda s, target=target: _tpr_at_fpr_from_roc(*s.roc, target_fpr=target),
                              extra=percent == "1" and level == "frame"))
    return metrics


def _build_registry() -> Dict[str, Metric]:
    frame, video = _level_metrics("frame"), _level_metrics("video")
    entries = [
        *[m for pair in zip(frame[:5], video[:5]) for m in pair],  # frame_auc, video_auc, frame_eer, ...
        # clip models: frame_auc is the clip AUC, also reported under this name (same value, so not
        # a separate selection metric).
        Metric("clip_auc", "frame", "AUC", "Clip AUC", selectable=False),
        Metric("acc", "frame", "acc", "Acc"),
        Metric("balanced_acc", "frame", "bal. acc", "Bal. acc"),
        *frame[5:], *video[5:],
        Metric("n_frames", "count", "#frames", "#frames", selectable=False),
        Metric("n_clips", "count", "#clips", "#clips", selectable=False),
        Metric("n_videos", "count", "#videos", "#videos", selectable=False),
    ]
    return {metric.name: metric for metric in entries}


METRICS: Dict[str, Metric] = _build_registry()
SELECTABLE_METRICS: Tuple[str, ...] = tuple(name for name, m in METRICS.items() if m.selectable)
EXTRA_METRICS: Tuple[str, ...] = tuple(name for name, m in METRICS.items() if m.extra)


def get_metric(name: str) -> Metric:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; metrics (training/metrics.py METRICS): "
                       f"{', '.join(METRICS)}") from None


# ------------------------------------------------------------------ the protocol

def compute_metrics(predictions: Union[PathLike, Mapping[str, Any]],
                    video_aggregation: str = "mean") -> Dict[str, Dict[str, Any]]:
    """The ``metrics.json`` dict: ``{dataset: {metric: value}}``, metrics in :data:`METRICS` order.

    ``predictions`` is a path to ``predictions.csv`` or a mapping of columns.
    Datasets appear in order of first appearance. With a ``clip_index`` column
    the ``frame_*`` metrics, ``acc`` and ``balanced_acc`` are computed on clips
    (also reported as ``clip_auc``; the row count is then ``n_clips``, and there is no
    ``n_frames``: rows are clips, which may overlap); ``video_*`` metrics are always
    per-video aggregates of the rows, by ``video_aggregation`` (mean | median).
    """
    if video_aggregation not in VIDEO_AGGREGATIONS:
        raise ValueError(f"video_aggregation must be one of {VIDEO_AGGREGATIONS}, got {video_aggregation!r} "
                         f"(test.video_aggregation / train.val_video_aggregation)")
    if isinstance(predictions, (str, os.PathLike)):
        source = str(predictions)
        columns = read_predictions(predictions)
    else:
        source = "predictions"
        columns = _as_columns(predictions)
    columns = _typed_columns(columns)
    if columns["label"].size == 0:
        raise ValueError(f"{source}: no prediction rows; nothing to evaluate")

    dataset_names, dataset_codes = _factorize(columns["dataset"])
    results: Dict[str, Dict[str, Any]] = {}
    for code, name in enumerate(dataset_names):
        rows = np.flatnonzero(dataset_codes == code)
        subset = {column: values[rows] for column, values in columns.items()}
        results[name] = _dataset_metrics(f"{source}, dataset {name!r}", subset, rows, video_aggregation)
    return results


def _typed_columns(columns: Mapping[str, Any]) -> Columns:
    typed = {}
    for name in _header_for(columns):
        if name in _STRING_COLUMNS:
            typed[name] = np.asarray(columns[name], dtype=object)
        elif name == "prob":
            typed[name] = np.asarray(columns[name], dtype=np.float64)
        else:
            typed[name] = np.asarray(columns[name]).astype(np.int64, casting="same_kind")
    return typed


def _dataset_metrics(where: str, columns: Columns, row_numbers: np.ndarray,
                     video_aggregation: str = "mean") -> Dict[str, Any]:
    labels, probs = columns["label"], columns["prob"]
    _check_finite(where, probs, columns, row_numbers)
    _check_labels(where, labels)
    video_names, video_codes = _factorize(columns["video_key"])
    _check_unique_samples(where, columns, video_names, video_codes)

    video_labels, video_probs = _video_scores(where, labels, probs, video_names, video_codes, video_aggregation)
    scored = {"frame": Scored(labels, probs), "video": Scored(video_labels, video_probs)}
    metrics = {name: metric.compute(scored[metric.level]) for name, metric in METRICS.items()
               if metric.compute is not None}
    metrics.update(_threshold_metrics(labels, probs))
    if CLIP_COLUMN in columns:
        metrics["clip_auc"] = metrics["frame_auc"]
        metrics["n_clips"] = int(labels.size)
    else:
        metrics["n_frames"] = int(labels.size)
    metrics["n_videos"] = int(video_names.size)
    return {name: metrics[name] for name in METRICS if name in metrics}


def _threshold_metrics(labels: np.ndarray, probs: np.ndarray) -> Dict[str, float]:
    predicted_fake = probs > 0.5
    is_fake = labels == 1
    true_positive_rate = np.count_nonzero(predicted_fake & is_fake) / np.count_nonzero(is_fake)
    true_negative_rate = np.count_nonzero(~predicted_fake & ~is_fake) / np.count_nonzero(~is_fake)
    return {
        "acc": float(np.count_nonzero(predicted_fake == is_fake) / labels.size),
        "balanced_acc": float((true_positive_rate + true_negative_rate) / 2.0),
    }


def _video_scores(where: str, labels: np.ndarray, probs: np.ndarray, video_names: np.ndarray,
                  video_codes: np.ndarray, aggregation: str = "mean") -> Tuple[np.ndarray, np.ndarray]:
    """Per-video label and mean (or median) probability (each video weighted once)."""
    n_videos = video_names.size
    counts = np.bincount(video_codes, minlength=n_videos)
    fake_counts = np.bincount(video_codes, weights=labels, minlength=n_videos)
    mixed = np.flatnonzero((fake_counts > 0) & (fake_counts < counts))
    if mixed.size:
        video = video_names[mixed[0]]
        raise ValueError(f"{where}: video {video!r} has rows labelled both real and fake "
                         f"({int(fake_counts[mixed[0]])} of {int(counts[mixed[0]])} rows fake); "
                         f"{mixed.size} video(s) affected. Every row of a video must share its label.")
    video_labels = (fake_counts > 0).astype(np.int64)
    if aggregation == "mean":
        return video_labels, np.bincount(video_codes, weights=probs, minlength=n_videos) / counts
    return video_labels, _median_per_group(probs, video_codes, counts)


def _median_per_group(values: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """np.median of each group (mean of the two middle values for an even count), vectorised."""
    order = np.lexsort((values, codes))  # by group, then by value
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ordered = values[order]
    low = ordered[starts + (counts - 1) // 2]
    high = ordered[starts + counts // 2]
    return 0.5 * (low + high)


def _check_finite(where: str, probs: np.ndarray, columns: Columns, row_numbers: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(probs))
    if bad.size:
        i = bad[0]
        raise ValueError(f"{where}: prob is {probs[i]} at row {int(row_numbers[i])} "
                         f"(video {columns['video_key'][i]!r}, frame {int(columns['frame_index'][i])}); "
                         f"{bad.size} non-finite prob(s) in total. Check the model output for NaN/inf.")


def _check_labels(where: str, labels: np.ndarray) -> None:
    n_fake = int(np.count_nonzero(labels == 1))
    n_real = int(np.count_nonzero(labels == 0))
    if n_fake + n_real != labels.size:
        raise ValueError(f"{where}: labels must be 0 (real) or 1 (fake); found {np.unique(labels)[:10].tolist()}")
    if n_fake == 0 or n_real == 0:
        raise ValueError(f"{where}: AUC is undefined with only one class "
                         f"({n_real} real and {n_fake} fake rows). Evaluate on a split with both classes.")


def _check_unique_samples(where: str, columns: Columns, video_names: np.ndarray, video_codes: np.ndarray) -> None:
    keys = [video_codes, columns["frame_index"]]
    if CLIP_COLUMN in columns:
        keys.append(columns[CLIP_COLUMN])
    order = np.lexsort(keys[::-1])
    sorted_keys = [key[order] for key in keys]
    same_as_previous = np.logical_and.reduce([key[1:] == key[:-1] for key in sorted_keys])
    duplicates = np.flatnonzero(same_as_previous)
    if duplicates.size:
        i = order[duplicates[0]]
        sample = f"video {video_names[video_codes[i]]!r}, frame {int(columns['frame_index'][i])}"
        if CLIP_COLUMN in columns:
            sample += f", clip {int(columns[CLIP_COLUMN][i])}"
        raise ValueError(f"{where}: {duplicates.size} duplicate row(s), first: {sample}. Each "
                         f"(video_key, frame_index{', clip_index' if CLIP_COLUMN in columns else ''}) "
                         f"must appear once; the evaluator removes DistributedSampler padding before writing.")


def _factorize(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(unique values in order of first appearance, int64 code per element)."""
    index: Dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    uniques = np.empty(len(index), dtype=object)
    uniques[:] = list(index)
    return uniques, codes
