"""DDP on CPU (gloo): metrics do not depend on the number of processes, each test sample is
scored exactly once, only rank 0 writes, and checkpoints move between 1 and N processes.

The multi-process runs go through the real entry points (scripts/train.sh → torchrun →
training/train.py, and torchrun → training/test.py) on a tiny timm CNN and a toy dataset
whose test split (27 frames) is not divisible by the world size.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.data.synthetic import write_json, write_video
from training.config import load_config
from training.data.loaders import ShardedSampler

REPO = Path(__file__).resolve().parents[2]
N_TEST_FRAMES = 27  # 5 fake + 4 real videos x 3 frames: odd, so 2 ranks need one padded sample

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is needed")


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    tree, seed = {}, 0
    for label, n_test in (("CelebDFv2_real", 4), ("CelebDFv2_fake", 5)):
        tree[label] = {}
        for split, count in (("train", 4), ("val", 2), ("test", n_test)):
            tree[label][split] = {}
            for v in range(count):
                seed += 1
                tree[label][split][f"{split}{v}"] = write_video(root, f"Toy/{label}", f"{split}{v}", range(3),
                                                                label=label, seed=seed, landmarks=False)
    write_json(root, "Toy", tree)
    return root


def write_config(directory: Path, data_root: Path) -> Path:
    path = directory / "toy.yaml"
    path.write_text(f"""
_base_: {REPO / 'configs' / '_base_' / 'datasets.yaml'}
name: ddp_toy
model:
  name: timm_cnn
  backbone: {{model_name: test_efficientnet, pretrained: null}}
  resolution: 32
data:
  root: {data_root}
  train_dataset: [Toy]
  test_dataset: [Toy]
  num_workers: 0
train: {{epochs: 2, batch_size: 4, log_every: 1, seed: 7}}
test: {{batch_size: 4}}
""")
    return path


def run(command, timeout: int = 240) -> subprocess.CompletedProcess:
    # One thread per process: the CI machine has two cores for both ranks.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    result = subprocess.run([str(c) for c in command], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def torchrun(nproc: int, script: str, *args) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", nproc,
                REPO / script, *args])


def read_predictions(path: Path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [(r["video_key"], int(r["frame_index"]), int(r["label"])) for r in rows]
    return keys, np.array([float(r["prob"]) for r in rows])


def test_sharded_sampler_covers_every_index_and_pads_equal_shards():
    for size in range(0, 12):
        for world in (1, 2, 3, 4):
            for shuffle in (False, True):
                shards = []
                for rank in range(world):
                    sampler = ShardedSampler(size, shuffle=shuffle, seed=3, rank=rank, world_size=world)
                    sampler.set_epoch(1)
                    shards.append(list(sampler))
                    assert len(shards[-1]) == len(sampler)
                assert len({len(shard) for shard in shards}) == 1, (size, world)  # same batch count everywhere
                assert set().union(*map(set, shards)) == set(range(size)), (size, world)
    epochs = []
    for epoch in (0, 1, 0):
        sampler = ShardedSampler(50, shuffle=True, seed=3)
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    assert epochs[0] == epochs[2] != epochs[1]  # set_epoch selects a fresh, reproducible order


def _evaluate_shard(rank: int, world: int, init_file: str, out_dir: str, size: int) -> None:
    from training.engine.evaluator import Evaluator

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        evaluator = Evaluator("Toy", out_dir)
        indices = list(ShardedSampler(size, shuffle=False, seed=0, rank=rank, world_size=world))
        for start in range(0, len(indices), 2):  # batches of 2
            batch = indices[start:start + 2]
            evaluator.process({"video_key": [f"Toy/x/v{i // 3}" for i in batch],
                               "frame_index": torch.tensor([i % 3 for i in batch]),
                               "label": torch.tensor([(i // 3) % 2 for i in batch])},
                              {"prob": torch.tensor([i / size for i in batch])})
        evaluator.evaluate()
    finally:
        dist.destroy_process_group()


def test_three_gloo_ranks_score_each_sample_of_an_odd_sized_set_once(tmp_path):
    size = 13  # 13 = 3 x 5 - 2: two padded duplicates
    # fork: the children need no fresh interpreter (spawn would re-import torch three times).
    mp.start_processes(_evaluate_shard, args=(3, str(tmp_path / "init"), str(tmp_path / "out"), size),
                       nprocs=3, start_method="fork")
    keys, probs = read_predictions(tmp_path / "out" / "predictions.csv")
    assert len(keys) == len(set(keys)) == size
    assert sorted(np.round(probs * size).astype(int)) == list(range(size))


def test_evaluation_does_not_depend_on_the_number_of_processes(tmp_path, toy_root):
    """A checkpoint saved by one process, tested by 1 and by 2 processes: same rows, same metrics."""
    from training.engine.checkpoint import save_checkpoint
    from training.models import build_detector
    from training.test import main as test_main

    config_path = write_config(tmp_path, toy_root)
    torch.manual_seed(0)
    detector = build_detector(load_config(config_path))
    checkpoint = tmp_path / "single.pt"
    save_checkpoint(checkpoint, {"model": detector.checkpoint_state()})

    common = ["--detector_path", config_path, "--weights_path", checkpoint, "--device", "cpu", "--names", "m"]
    assert test_main([str(a) for a in common + ["--out", tmp_path / "one"]]) == 0
    torchrun(2, "training/test.py", *common, "--out", tmp_path / "two")

    keys_1, probs_1 = read_predictions(tmp_path / "one" / "m" / "Toy" / "predictions.csv")
    keys_2, probs_2 = read_predictions(tmp_path / "two" / "m" / "Toy" / "predictions.csv")
    assert keys_1 == keys_2 and len(set(keys_2)) == N_TEST_FRAMES  # each sample once, same order
    np.testing.assert_allclose(probs_1, probs_2, rtol=0, atol=1e-6)
    metrics_1 = json.loads((tmp_path / "one" / "metrics.json").read_text())["m"]["Toy"]
    metrics_2 = json.loads((tmp_path / "two" / "metrics.json").read_text())["m"]["Toy"]
    for name in ("frame_auc", "video_auc", "frame_eer", "video_ap"):
        assert metrics_1[name] == pytest.approx(metrics_2[name], abs=1e-6), name


def test_two_process_training_writes_once_and_its_checkpoint_loads_in_one_process(tmp_path, toy_root):
    from training.engine.checkpoint import load_checkpoint
    from training.test import main as test_main

    config_path = write_config(tmp_path, toy_root)
    run_dir = tmp_path / "run"
    run(["bash", REPO / "scripts" / "train.sh", 2, "--detector_path", config_path, "--device", "cpu",
         "--run_dir", run_dir])

    assert (run_dir / "checkpoints" / "best.pt").is_file() and (run_dir / "checkpoints" / "last.pt").is_file()
    payload = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert payload["loop"]["epoch"] == 2
    assert payload["loop"]["global_step"] == 2 * 3  # 24 frames / 2 ranks / batch 4, per epoch
    assert not any(k.startswith("module.") for k in payload["model"]["state_dict"])
    # Rank 0 alone logs: every step line appears once, one validation entry per epoch, one event file.
    log_text = (run_dir / "train.log").read_text()
    assert log_text.count("epoch 1/2 step 1/3 ") == 1 and log_text.count("epoch 2/2 step 3/3 ") == 1  # 1-based
    assert [entry["epoch"] for entry in json.loads((run_dir / "val_history.json").read_text())] == [1, 2]
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1
    keys_ddp, probs_ddp = read_predictions(run_dir / "test" / "Toy" / "predictions.csv")
    assert len(keys_ddp) == len(set(keys_ddp)) == N_TEST_FRAMES

    # The DDP checkpoint, tested by one process, gives the predictions the 2-process run wrote.
    assert test_main([str(a) for a in ["--weights_path", run_dir, "--device", "cpu", "--out", tmp_path / "one",
                                       "--names", "m"]]) == 0
    keys_1, probs_1 = read_predictions(tmp_path / "one" / "m" / "Toy" / "predictions.csv")
    assert keys_1 == keys_ddp
    np.testing.assert_allclose(probs_1, probs_ddp, rtol=0, atol=1e-6)
