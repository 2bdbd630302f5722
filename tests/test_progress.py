"""Progress: log lines with rate and ETA where there is no terminal, one epoch numbering (1-based) in every line,
and only the losses that count (weight != 0) in the log."""
from __future__ import annotations

import json
import re

import pytest


def test_progress_lines_without_a_terminal_say_done_total_rate_and_eta(caplog):
    import logging

    from training.utils.progress import Progress, format_duration

    with caplog.at_level(logging.INFO, logger="training.progress"):  # the logging tree is configured here
        progress = Progress(10, "eval DemoFF", unit="batches", every_seconds=0.0, terminal=False)
        for _ in range(3):
            progress.update()
        progress.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "training.progress"]
    assert lines[0].startswith("eval DemoFF: 1/10 batches (10%), ") and "ETA" in lines[0]
    assert lines[2].startswith("eval DemoFF: 3/10 batches (30%)")
    assert re.fullmatch(r"eval DemoFF: 3 batches in \d+s", lines[-1])
    assert [format_duration(s) for s in (4.4, 185, 3725)] == ["4s", "3m05s", "1h02m"]


def test_without_logging_set_up_the_lines_go_to_stderr_and_a_disabled_progress_prints_nothing(capsys,
                                                                                              monkeypatch):
    import logging

    from training.utils.progress import track

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in test.py, which configures no logging
    assert list(track(range(2), description="scan", every_seconds=0.0, terminal=False)) == [0, 1]
    assert capsys.readouterr().err.splitlines()[0].startswith("scan: 1/2 it (50%)")
    assert list(track(range(4), description="x", enabled=False, every_seconds=0.0, terminal=False)) == [0, 1, 2, 3]
    assert capsys.readouterr().err == ""


def test_train_log_numbers_epochs_from_1_with_eta_and_only_weighted_losses(tiny_config, demo_root, tmp_path):
    from training import train as train_cli

    run_dir = tmp_path / "run"
    # uniformity counts (0.5), alignment does not (0, the default): only the first may appear in the log.
    assert train_cli.main(["--detector_path", str(tiny_config), "--run_dir", str(run_dir), "--device", "cpu",
                           "--no_test", "--opts", f"data.root={demo_root}", "model.loss.uniformity=0.5",
                           "model.loss.alignment=0.0"]) == 0
    log = (run_dir / "train.log").read_text()
    steps = re.findall(r"epoch (\d+)/2 step (\d+)/(\d+) global (\d+)/(\d+) .*", log)
    assert steps, log
    epochs_seen = sorted({int(epoch) for epoch, *_ in steps})
    assert epochs_seen == [1, 2]
    validations = [int(e) for e in re.findall(r"epoch (\d+) validation", log)]
    assert validations == [1, 2]
    # The last step line before "epoch N validation" belongs to epoch N (not N-1).
    for number in validations:
        before = log[:log.index(f"epoch {number} validation")]
        last_step = re.findall(r"epoch (\d+)/2 step (\d+)/(\d+)", before)[-1]
        assert int(last_step[0]) == number and last_step[1] == last_step[2]
    assert [e["epoch"] for e in json.loads((run_dir / "val_history.json").read_text())] == validations
    step_lines = [line for line in log.splitlines() if re.search(r"epoch \d+/2 step", line)]
    assert any("s/step ETA " in line for line in step_lines)
    assert all("ce=" in line and "uniformity=" in line and "total=" in line for line in step_lines)
    assert not any("alignment=" in line for line in step_lines)


def test_zero_weight_terms_are_not_reported_by_the_detector(tiny_config):
    import torch

    from training.config import load_config
    from training.models import build_detector

    torch.manual_seed(0)
    batch = {"image": torch.rand(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    for weights, expected in ((["model.loss.alignment=0.0", "model.loss.uniformity=0.0"], {"ce", "total"}),
                              (["model.loss.alignment=0.1", "model.loss.uniformity=0.0"], {"ce", "alignment", "total"})):
        detector = build_detector(load_config(tiny_config, weights))
        losses = detector.losses(batch, detector(batch))
        assert set(losses) == expected
        if "alignment" in losses:
            assert float(losses["total"]) == pytest.approx(float(losses["ce"] + 0.1 * losses["alignment"]), rel=1e-6)
