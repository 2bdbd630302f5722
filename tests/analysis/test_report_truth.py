"""Tables and report tell the truth about the run: provenance.json written at train time and shown, one run name
in every table, frames per video from what was scored, datasets in one order, training curves, a log-FPR ROC,
the config folded away."""
from __future__ import annotations

import json
import re

import cv2
import pytest

from tests.analysis.test_plots import build_tiny_runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")


def test_train_writes_provenance_and_the_report_shows_it_with_curves_and_a_folded_config(tiny_runs, tmp_path):
    from analysis.report import main
    from training.engine.provenance import git_state

    run = tiny_runs["a"]
    record = json.loads((run / "provenance.json").read_text())
    assert record["status"] == "trained and tested" and record["wall_time_s"] > 0
    assert "--run_dir" in record["command"] and str(run) in record["command"]
    assert record["packages"]["torch"] and record["host"] and record["started"] <= record["ended"]
    assert record["git"]["commit"] == git_state()["commit"]

    out = tmp_path / "report.html"
    assert main(["--run", str(run), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    text = re.sub(r'src="data:image/png;base64,[^"]+"', "", page)
    assert "<h2>Provenance</h2>" in text and (record["git"]["commit"] or "not a git checkout") in text
    assert f"{record['wall_time_s']:.0f} s" in text
    config_at = text.index("<h2>Configuration</h2>")
    assert "<details><summary>Resolved config.yaml" in text[config_at:]
    assert text.index("name: demo_clip_tiny") > text.index("<details>", config_at)  # folded away
    assert (run / "plots" / "curves.png").is_file() and "Training losses over the global step" in text
    # One run name: the report's row, train.py's table.md and test.py's tables all say the directory name.
    assert f"<td>{run.name}</td>" in text
    assert f"| {run.name} |" in (run / "table.md").read_text()


def test_footnote_says_the_frames_per_video_that_were_scored(tiny_runs):
    run = tiny_runs["a"]
    metrics = json.loads((run / "metrics.json").read_text())
    per_video = {m["n_frames"] / m["n_videos"] for m in metrics.values()}
    footnote = (run / "table.md").read_text()
    if len(per_video) == 1:
        value = per_video.pop()
        shown = f"{value:.0f}" if value.is_integer() else f"{value:.1f} (mean)"
        assert f"; {shown} frames per video sampled evenly" in footnote
    assert "(data.frame_num.test=4)" in footnote  # the configured cap, named as such


def test_footnote_lists_each_dataset_when_they_differ():
    from training.config import load_config
    from training.engine.testing import table_footnote
    from tests.conftest import TINY_CONFIG

    config = load_config(TINY_CONFIG, ["data.frame_num.test=8"])
    results = {"DemoFF": {"n_frames": 40, "n_videos": 10}, "DemoCDF": {"n_frames": 35, "n_videos": 10}}
    note = table_footnote(config, 1, results)
    assert "frames per video: 4 in DemoFF, 3.5 (mean) in DemoCDF, sampled evenly" in note
    assert "(data.frame_num.test=8)" in note
    assert "8 frames per video" in table_footnote(config, 1)  # without results: the configured number


def test_plots_list_datasets_in_the_order_of_the_tables(tmp_path):
    from analysis.plotting import find_result_files

    test_dir = tmp_path / "run" / "test"
    for dataset in ("Zeta", "Alpha", "Mid"):
        (test_dir / dataset).mkdir(parents=True)
        (test_dir / dataset / "predictions.csv").write_text("x\n")
    (test_dir / "metrics.json").write_text(json.dumps({"Zeta": {}, "Mid": {}, "Alpha": {}}))
    assert list(find_result_files(tmp_path / "run")["run"]) == ["Zeta", "Mid", "Alpha"]


def test_roc_has_a_log_fpr_row_under_the_linear_one(tiny_runs, tmp_path):
    from analysis.roc import main

    out = tmp_path / "roc.png"
    assert main(["--run", str(tiny_runs["a"]), "--out", str(out)]) == 0
    height, width = cv2.imread(str(out)).shape[:2]
    assert height > 1.6 * width / 2  # two datasets side by side, two rows each (linear, then log FPR)
