"""A crash or a full disk while writing results leaves the previous version intact."""
from __future__ import annotations

import errno
import json

import pytest

from training.metrics import compute_metrics, read_predictions, write_predictions
from training.utils import atomic
from training.utils.atomic import atomic_write_json

ROWS = {"dataset": ["D"] * 4, "video_key": ["D/r/a", "D/r/a", "D/f/b", "D/f/b"], "frame_index": [0, 5, 0, 5],
        "label": [0, 0, 1, 1], "prob": [0.1, 0.2, 0.8, 0.7]}


def fail_fsync(exc):
    def fsync(_fd):
        raise exc
    return fsync


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_predictions_and_metrics_survive_a_failed_rewrite(tmp_path, monkeypatch, error):
    predictions = tmp_path / "predictions.csv"
    metrics = tmp_path / "metrics.json"
    write_predictions(predictions, ROWS)
    atomic_write_json(metrics, compute_metrics(predictions))
    before = (predictions.read_bytes(), metrics.read_bytes())

    monkeypatch.setattr(atomic.os, "fsync", fail_fsync(error))  # the write "crashes" before the rename
    changed = dict(ROWS, prob=[0.9, 0.9, 0.1, 0.1])
    with pytest.raises(type(error)) as raised:
        write_predictions(predictions, changed)
    with pytest.raises(type(error)):
        atomic_write_json(metrics, {"other": 1})
    if isinstance(error, OSError):
        assert "previous version of this file" in str(raised.value) and "Free disk space" in str(raised.value)
    monkeypatch.undo()

    assert (predictions.read_bytes(), metrics.read_bytes()) == before  # nothing lost, nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "predictions.csv"]  # no temp files
    assert json.loads(metrics.read_text())["D"]["video_auc"] == 1.0
    assert list(read_predictions(predictions)["prob"]) == ROWS["prob"]
