"""training/test.py: several runs x several test sets -> one table that parses back to metrics.json."""
from __future__ import annotations

import json

import pytest

from tests.analysis.test_plots import TEST_SETS, build_tiny_runs

EXTRA = ("frame_eer", "video_eer", "frame_ap", "video_ap", "frame_map", "video_map", "frame_tpr_at_fpr_1pct")


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")


def test_two_runs_give_one_table_with_the_numbers_of_metrics_json(tiny_runs, tmp_path, capsys):
    from analysis.tables import read_table_csv
    from training.metrics import compute_metrics
    from training.test import main

    out = tmp_path / "cmp"
    assert main(["--weights_path", str(tiny_runs["a"]), str(tiny_runs["b"] / "checkpoints" / "best.pt"),
                 "--test_dataset", *TEST_SETS, "--out", str(out), "--extra_metrics", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(out / "metrics.json")

    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["tiny_a", "tiny_b"]  # row names: run directory names
    table = read_table_csv(out / "table.csv")
    expected = {row: {dataset: {m: values[m] for m in ("frame_auc", "video_auc", *EXTRA)}
                      for dataset, values in per_dataset.items()} for row, per_dataset in metrics.items()}
    assert table == expected  # exact floats, not rounded
    for row in metrics:
        for dataset in TEST_SETS:
            # Every number is recomputable from the predictions file alone.
            predictions = out / row / dataset / "predictions.csv"
            assert compute_metrics(predictions)[dataset] == metrics[row][dataset]
    # The two runs differ (different seeds), so the table is not one row copied.
    assert metrics["tiny_a"] != metrics["tiny_b"]

    markdown = (out / "table.md").read_text()
    header = markdown.splitlines()[0]
    assert header.index("TinyFF Frame AUC") < header.index("TinyFF Video AUC") < header.index("TinyFlat Frame AUC")
    assert header.rstrip(" |").endswith("Mean Frame TPR@1%FPR") and "TinyFF Video mAP" in header
    # the frames actually scored per video (the tiny sets hold fewer than the configured 4), and the cap
    assert "frames per video: 3.5 (mean) in TinyFF, 2 in TinyFlat" in markdown and "(data.frame_num.test=4)" in markdown
    assert "per-video mean P(fake)" in markdown
    assert "TPR@1%FPR is frame-level" in markdown
    assert (out / "table.tex").read_text().count(r"\\") >= 4


def test_only_the_test_split_is_scored(tiny_runs, tmp_path):
    from training.metrics import read_predictions
    from training.test import main

    out = tmp_path / "split"
    assert main(["--weights_path", str(tiny_runs["a"]), "--test_dataset", "TinyFF", "--out", str(out)]) == 0
    keys = set(read_predictions(out / "tiny_a" / "TinyFF" / "predictions.csv")["video_key"])
    # tests/data/synthetic.py: TinyFF's test split holds exactly these two videos.
    assert keys == {"TinyFF/FF-real/002", "TinyFF/FF-DF/002_001"}


def test_rows_with_the_same_name_are_rejected(tiny_runs, tmp_path):
    from training.test import main

    with pytest.raises(SystemExit, match="--names"):
        main(["--weights_path", str(tiny_runs["a"]), str(tiny_runs["a"]), "--test_dataset", "TinyFlat",
              "--out", str(tmp_path / "dup")])


def test_different_protocols_get_one_footnote_per_row():
    from training.test import combined_footnote

    assert combined_footnote({"a": "8 frames.", "b": "8 frames."}) == "8 frames."
    assert combined_footnote({"a": "8 frames.", "b": "32 frames."}) == "a: 8 frames. b: 32 frames."
