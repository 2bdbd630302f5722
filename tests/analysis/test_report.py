"""analysis.report: one offline HTML page with the run's config, numbers and plots."""
from __future__ import annotations

import base64
import json
import re

import pytest

from tests.analysis.test_plots import build_tiny_runs

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")


def test_report_is_self_contained_and_holds_metrics_config_and_plots(tiny_runs, tmp_path):
    from analysis.report import main

    run = tiny_runs["b"]
    out = tmp_path / "report.html"
    assert main(["--run", str(run), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")

    images = DATA_URI.findall(page)
    assert len(images) >= 3  # ROC, histograms, t-SNE (the tiny runs save features)
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    assert {p.name for p in (run / "plots").glob("*.png")} >= {"roc.png", "histograms.png", "tsne.png"}

    text = DATA_URI.sub("", page)
    for external in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert external not in text, external
    assert text.count("<img") == len(images)  # every image is embedded

    metrics = json.loads((run / "metrics.json").read_text())
    for dataset, values in metrics.items():
        assert f"<td>{dataset}</td>" in text
        assert f"<td>{100 * values['video_auc']:.2f}</td>" in text
    assert "name: demo_clip_tiny" in text  # the resolved config
    assert "No Grad-CAM" in text and "python -m analysis.cam" in text  # says how to add what is missing


def test_report_of_a_missing_run_names_the_file(tmp_path):
    from analysis.report import main

    with pytest.raises(FileNotFoundError, match="config.yaml"):
        main(["--run", str(tmp_path / "nope")])
