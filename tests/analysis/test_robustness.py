"""training/test.py --perturb: degraded test frames, the degradation table and its plot."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.analysis.test_plots import assert_png, build_tiny_runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")


def test_perturb_writes_a_degradation_table_that_parses_back_and_a_plot(tiny_runs, tmp_path):
    from analysis.tables import read_table_csv
    from training.metrics import read_predictions
    from training.test import main

    out = tmp_path / "robust"
    assert main(["--weights_path", str(tiny_runs["a"]), "--test_dataset", "TinyFlat", "TinyFF", "--out", str(out),
                 "--perturb", "jpeg=30", "noise=20", "--perturb_seed", "3", "--device", "cpu"]) == 0
    payload = json.loads((out / "robustness.json").read_text())
    results = payload["results"]["tiny_a"]
    assert list(results) == ["clean", "jpeg=30", "noise=20"] and payload["seed"] == 3
    assert results["clean"] == json.loads((out / "metrics.json").read_text())["tiny_a"]

    table = read_table_csv(out / "robustness.csv")
    assert list(table) == ["tiny_a / clean", "tiny_a / JPEG quality 30", "tiny_a / Noise sigma 20"]
    for row, condition in zip(table, results):
        assert table[row] == {dataset: {m: results[condition][dataset][m] for m in ("frame_auc", "video_auc")}
                              for dataset in ("TinyFlat", "TinyFF")}
    assert "Degradations applied to every test frame" in (out / "robustness.md").read_text()
    assert_png(out / "robustness.png")

    # The degradations reached the model: same frames, different scores.
    clean = read_predictions(out / "tiny_a" / "TinyFF" / "predictions.csv")
    noisy = read_predictions(out / "perturbed" / "tiny_a" / "noise_20" / "TinyFF" / "predictions.csv")
    assert list(clean["video_key"]) == list(noisy["video_key"])
    assert np.abs(clean["prob"] - noisy["prob"]).max() > 1e-6


def test_robustness_cli_rerenders_with_another_metric(tmp_path):
    from analysis.robustness import main
    from analysis.tables import read_table_csv

    results = {"det": {"clean": {"X": {"frame_auc": 0.9, "video_auc": 0.95}},
                       "blur=3": {"X": {"frame_auc": 0.7, "video_auc": 0.75}},
                       "blur=1": {"X": {"frame_auc": 0.8, "video_auc": 0.85}}}}
    (tmp_path / "robustness.json").write_text(json.dumps({"seed": 0, "results": results}))
    assert main(["--results", str(tmp_path), "--metric", "frame_auc"]) == 0
    assert_png(tmp_path / "robustness.png")
    # Mildest first, whatever order the results came in.
    assert list(read_table_csv(tmp_path / "robustness.csv")) == [
        "det / clean", "det / Blur sigma 1", "det / Blur sigma 3"]


def test_perturbed_dataset_is_deterministic_across_workers_and_order(tiny_runs):
    from training.config import load_config
    from training.data.loaders import build_dataset, build_loader
    from training.data.perturbations import Perturbation
    from training.models.input_spec import InputSpec

    config = load_config(tiny_runs["a"] / "config.yaml")
    spec = InputSpec(resolution=32)
    noise = Perturbation("noise", 20, seed=5)
    dataset = build_dataset(config, ["TinyFF"], "test", spec, train=False, perturbation=noise)
    clean = build_dataset(config, ["TinyFF"], "test", spec, train=False)
    forward = [dataset[i]["image"] for i in range(len(dataset))]
    backward = [dataset[i]["image"] for i in reversed(range(len(dataset)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    assert not torch.equal(forward[0], clean[0]["image"])
    config["data"]["num_workers"] = 2
    loaded = torch.cat([batch["image"] for batch in build_loader(config, dataset, 2, train=False)])
    assert torch.equal(loaded, torch.stack(forward))
