"""Kill -9 mid-epoch then --resume gives bit-identical results; SIGTERM/SIGINT save and exit 128+signal."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training.engine.checkpoint import load_checkpoint

RUNNER = Path(__file__).with_name("train_with_fault.py")
PYTHON = sys.executable


def train_args(tiny_config, demo_root, run_dir):
    return ["--detector_path", str(tiny_config), "--run_dir", str(run_dir), "--device", "cpu", "--opts",
            f"data.root={demo_root}", "train.epochs=2", "train.checkpoint_every_steps=2"]


def run(args, **kwargs):
    return subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=300, **kwargs)


def model_tensors(path):
    return load_checkpoint(path)["model"]["state_dict"]


def test_kill_9_mid_epoch_then_resume_equals_uninterrupted_run(tiny_config, demo_root, tmp_path):
    reference = tmp_path / "reference"
    done = run(["training/train.py", *train_args(tiny_config, demo_root, reference)])
    assert done.returncode == 0, done.stderr[-2000:]

    killed = tmp_path / "killed"
    # Steps per epoch is > 3 here, so step 3 is inside epoch 1, after the step-2 checkpoint.
    crash = run([str(RUNNER), "--kill-at", "3", *train_args(tiny_config, demo_root, killed)])
    assert crash.returncode == -signal.SIGKILL
    interrupted = load_checkpoint(killed / "checkpoints" / "last.pt")["loop"]
    assert interrupted["epoch"] == 0 and interrupted["step_in_epoch"] == 2  # mid-epoch checkpoint

    resumed = run(["training/train.py", "--resume", str(killed), "--device", "cpu"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in ("last.pt", "best.pt"):
        expected, actual = model_tensors(reference / "checkpoints" / name), model_tensors(killed / "checkpoints" / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}:{key} differs after resume"
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_and_exit_128_plus_signal_within_seconds(tiny_config, demo_root, tmp_path, sig):
    run_dir = tmp_path / "run"
    args = [PYTHON, str(RUNNER), "--slow-after", "3", *train_args(tiny_config, demo_root, run_dir)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "checkpoints" / "last.pt").exists():
        time.sleep(0.2)
    assert (run_dir / "checkpoints" / "last.pt").exists(), "training never reached its first checkpoint"
    sent = time.time()
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, stderr[-2000:]  # 130 / 143: a stopped run is not a success
    # ~2 s on an idle 2-core machine; the bound leaves room for a loaded CI box.
    assert time.time() - sent < 20
    assert f"Stopped by {sig.name}" in stderr
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")["loop"]
    assert state["global_step"] >= 2
    resumed = run(["training/train.py", "--resume", str(run_dir), "--device", "cpu"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run_dir / "metrics.json").is_file()
