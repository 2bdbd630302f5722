"""Results, checkpoints, plots, CSVs and JSONs get the mode the user's umask gives (issue 17 item 2).

The atomic-write helper writes through mkstemp (0600); before the fix every output was private.
"""
from __future__ import annotations

import os
import stat

import pytest
import torch

from training.utils.atomic import atomic_write_json, current_umask


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_every_kind_of_output_gets_the_umask_mode(tmp_path, umask):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from analysis.plotting import save_png
    from analysis.tables import write_tables
    from training.config import save_config
    from training.engine.checkpoint import save_checkpoint
    from training.metrics import write_predictions

    expected = 0o666 & ~umask
    atomic_write_json(tmp_path / "metrics.json", {"a": 1})
    save_checkpoint(tmp_path / "checkpoints" / "best.pt", {"model": {"w": torch.zeros(2)}})
    save_config({"name": "x"}, tmp_path / "config.yaml")
    write_predictions(tmp_path / "predictions.csv", {"dataset": ["D"], "video_key": ["D/r/a"], "frame_index": [0],
                                                     "label": [0], "prob": [0.5]})
    write_tables({"row": {"D": {"frame_auc": 0.5, "video_auc": 0.5}}}, tmp_path / "table")
    figure = plt.figure()
    save_png(figure, tmp_path / "roc.png")
    plt.close(figure)
    written = ["metrics.json", "checkpoints/best.pt", "config.yaml", "predictions.csv", "table.md", "table.csv",
               "table.tex", "roc.png"]
    assert {name: oct(mode(tmp_path / name)) for name in written} == {name: oct(expected) for name in written}
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary file left behind
