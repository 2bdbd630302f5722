"""train.py → test.py end to end on the small demo benchmark, and the run directory contract."""
from __future__ import annotations

import json

import pytest
import torch

from training import test as test_cli
from training import train as train_cli
from training.engine.checkpoint import load_checkpoint
from training.metrics import compute_metrics


def run_args(tiny_config, demo_root, run_dir, *extra):
    return ["--detector_path", str(tiny_config), "--run_dir", str(run_dir), "--device", "cpu",
            "--opts", f"data.root={demo_root}", *extra]


def test_train_then_test_writes_the_documented_run_directory(tiny_config, demo_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train_cli.main(run_args(tiny_config, demo_root, run_dir)) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(run_dir / "metrics.json")  # last line: the metrics path
    for name in ("config.yaml", "train.log", "val_history.json", "checkpoints/best.pt", "checkpoints/last.pt",
                 "test/DemoFF/predictions.csv", "test/DemoCDF/predictions.csv", "metrics.json",
                 "table.md", "table.csv", "table.tex"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tb").iterdir())

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"DemoFF", "DemoCDF"}
    for dataset, values in metrics.items():
        # metrics.json is exactly what predictions.csv gives
        recomputed = compute_metrics(run_dir / "test" / dataset / "predictions.csv")[dataset]
        assert recomputed == pytest.approx(values)
        assert values["n_videos"] > 0 and values["n_frames"] == 2 * values["n_videos"]

    history = json.loads((run_dir / "val_history.json").read_text())
    assert [entry["epoch"] for entry in history] == [1, 2]
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert best["loop"]["best_epoch"] in (1, 2)  # selected on validation, saved at that epoch

    # test.py on the run directory reproduces the numbers
    out = tmp_path / "results"
    assert test_cli.main(["--weights_path", str(run_dir), "--test_dataset", "DemoFF", "DemoCDF", "--out", str(out),
                          "--device", "cpu", "--opts", f"data.root={demo_root}"]) == 0
    again = json.loads((out / "metrics.json").read_text())[run_dir.name]
    for dataset in metrics:
        assert again[dataset]["video_auc"] == pytest.approx(metrics[dataset]["video_auc"], abs=1e-12)


def test_video_keys_are_full_paths(tiny_config, demo_root, tmp_path):
    run_dir = tmp_path / "run"
    train_cli.main(run_args(tiny_config, demo_root, run_dir, "train.max_steps=1", "train.epochs=1"))
    rows = (run_dir / "test" / "DemoFF" / "predictions.csv").read_text().splitlines()
    header = rows[0].split(",")
    key = rows[1].split(",")[header.index("video_key")]
    dataset, label, video = key.split("/")
    assert dataset == "DemoFF" and label.startswith("DemoFF_") and video


def test_missing_dataset_json_says_where_and_how(tiny_config, tmp_path):
    with pytest.raises(Exception, match=r"(?s)DemoFF\.json.*preprocessing\.demo\.generate"):
        train_cli.main(run_args(tiny_config, tmp_path / "empty_root", tmp_path / "run"))


def test_nan_losses_are_skipped_counted_and_stop_the_run(tiny_config, demo_root, tmp_path, monkeypatch):
    from training.engine.trainer import NonFiniteLossError
    from training.models.detectors.clip_detector import ClipDetector

    original = ClipDetector.losses
    calls = {"n": 0}

    def sometimes_nan(self, batch, out):
        parts = original(self, batch, out)
        calls["n"] += 1
        if calls["n"] >= 3:  # from the third step on, every loss is NaN
            parts["total"] = parts["total"] * float("nan")
        return parts

    monkeypatch.setattr(ClipDetector, "losses", sometimes_nan)
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"4 steps in a row.*global step 5"):
        train_cli.main(run_args(tiny_config, demo_root, run_dir, "train.max_consecutive_nan=4",
                                "train.epochs=5"))
    assert not (run_dir / "checkpoints" / "best.pt").exists() or load_checkpoint(run_dir / "checkpoints" / "best.pt")


def test_nan_step_leaves_weights_untouched():
    from training.engine.trainer import Trainer

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def trainable_parameters(self):
            return [self.w]

        def set_training_progress(self, p):
            pass

        def forward(self, batch):
            return {"x": self.w * batch["x"]}

        def losses(self, batch, out):
            return {"total": out["x"].sum()}

    class Loader(list):
        batch_size = 1

    config = {"train": {"optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0, "betas": [0.9, 0.999]},
                        "scheduler": {"name": "constant", "warmup_epochs": 0, "min_lr": 0}, "epochs": 1,
                        "max_steps": None, "amp": "off", "grad_clip": 1.0, "max_consecutive_nan": 3,
                        "checkpoint_every_steps": 0}}
    trainer = Trainer(config, Constant(), Loader([{"x": torch.ones(1)}]), "unused", torch.device("cpu"))
    trainer.run_step({"x": torch.tensor([float("nan")])})
    assert trainer.detector.w.item() == 1.0 and trainer.nan_steps_total == 1
    trainer.run_step({"x": torch.ones(1)})
    assert trainer.detector.w.item() < 1.0 and trainer.nan_steps_in_row == 0


def test_capped_validation_keeps_both_classes(tiny_config, demo_root, tmp_path):
    """train.val_max_videos takes videos round-robin over labels, so validation AUC stays defined."""
    run_dir = tmp_path / "run"
    assert train_cli.main(run_args(tiny_config, demo_root, run_dir, "train.val_max_videos=2", "train.epochs=1",
                                   "train.max_steps=1")) == 0
    history = json.loads((run_dir / "val_history.json").read_text())
    assert history[0]["metrics"]["DemoFF"]["n_videos"] == 2
