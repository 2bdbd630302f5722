"""Evaluator: one predictions.csv per dataset whatever the number of processes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.engine.evaluator import Evaluator
from training.metrics import compute_metrics, read_predictions

DATASET = "DemoCDF"


def sample_rows(n_videos=8, frames=4, seed=0):
    """(video_key, frame_index, label, prob, feat) for a small two-class test set."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_videos):
        label = v % 2
        key = f"{DATASET}/{'fake' if label else 'real'}/{v:03d}"
        for f in range(frames):
            prob = float(np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0, 1))
            rows.append((key, 10 * f, label, prob, rng.normal(size=3).astype(np.float32)))
    return rows


def as_batch(rows):
    batch = {"video_key": [r[0] for r in rows], "frame_index": torch.tensor([r[1] for r in rows]),
             "label": torch.tensor([r[2] for r in rows])}
    out = {"prob": torch.tensor([r[3] for r in rows], dtype=torch.float32),
           "feat": torch.from_numpy(np.stack([r[4] for r in rows]))}
    return batch, out


def run_evaluator(rows, output_dir, batch_size=5, save_features=False):
    evaluator = Evaluator(DATASET, output_dir, save_features=save_features)
    evaluator.reset()
    for start in range(0, len(rows), batch_size):
        evaluator.process(*as_batch(rows[start:start + batch_size]))
    return evaluator.evaluate()


def test_single_process_round_trip(tmp_path):
    rows = sample_rows()
    metrics = run_evaluator(rows, tmp_path)
    assert metrics == compute_metrics(tmp_path / "predictions.csv")[DATASET]
    assert json.loads((tmp_path / "metrics.json").read_text()) == {DATASET: metrics}
    written = read_predictions(tmp_path / "predictions.csv")
    assert metrics["n_frames"] == len(rows) == len(written["prob"])
    assert set(written["dataset"]) == {DATASET}
    expected = {(r[0], r[1]): np.float32(r[3]) for r in rows}
    for key, frame, prob in zip(written["video_key"], written["frame_index"], written["prob"]):
        assert np.float32(prob) == expected[(key, frame)]


def test_padded_duplicate_is_removed_and_order_does_not_matter(tmp_path):
    rows = sample_rows()
    reference = run_evaluator(rows, tmp_path / "reference")
    shuffled = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    padded = shuffled + shuffled[:1]  # what DistributedSampler appends to even out ranks
    metrics = run_evaluator(padded, tmp_path / "padded", batch_size=3)
    assert metrics == reference
    assert ((tmp_path / "padded" / "predictions.csv").read_bytes()
            == (tmp_path / "reference" / "predictions.csv").read_bytes())


def test_same_sample_with_two_labels_is_an_error(tmp_path):
    rows = sample_rows()
    key, frame, label, prob, feat = rows[0]
    with pytest.raises(ValueError, match="both labels"):
        run_evaluator(rows + [(key, frame, 1 - label, prob, feat)], tmp_path)


def test_features_are_saved_in_prediction_order(tmp_path):
    rows = sample_rows(n_videos=4, frames=2)
    run_evaluator(rows[::-1], tmp_path, save_features=True)
    features = np.load(tmp_path / "features.npz")
    written = read_predictions(tmp_path / "predictions.csv")
    assert list(features["video_key"]) == list(written["video_key"])
    np.testing.assert_array_equal(features["frame_index"], written["frame_index"])
    by_key = {(r[0], r[1]): r[4] for r in rows}
    for key, frame, feat in zip(features["video_key"], features["frame_index"], features["feat"]):
        np.testing.assert_array_equal(feat, by_key[(str(key), int(frame))])


def test_half_precision_probs_and_clip_batches(tmp_path):
    evaluator = Evaluator(DATASET, tmp_path)
    batch = {"video_key": ["D/r/a", "D/r/a", "D/f/b", "D/f/b"], "label": torch.tensor([0, 0, 1, 1]),
             "frame_index": torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]]), "clip_index": torch.tensor([0, 1, 0, 1])}
    evaluator.process(batch, {"prob": torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.bfloat16)})
    metrics = evaluator.evaluate()
    assert metrics["clip_auc"] == 1.0 and metrics["n_videos"] == 2
    assert list(read_predictions(tmp_path / "predictions.csv")["frame_index"]) == [0, 2, 0, 2]


def test_batch_size_mismatch_is_reported(tmp_path):
    evaluator = Evaluator(DATASET, tmp_path)
    batch, out = as_batch(sample_rows()[:4])
    with pytest.raises(ValueError, match="batch size"):
        evaluator.process(batch, {"prob": out["prob"][:3]})


def test_evaluate_without_predictions_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no predictions"):
        Evaluator(DATASET, tmp_path).evaluate()


# ----------------------------------------------------------------- two processes

def _distributed_worker(rank, world_size, init_file, output_dir, result_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        rows = sample_rows()
        half = len(rows) // 2
        # Rank 1 also gets rank 0's first row again, as DistributedSampler padding would.
        shard = rows[:half] if rank == 0 else rows[half:] + rows[:1]
        metrics = run_evaluator(shard, output_dir, batch_size=3)
        (result_dir / f"rank{rank}.json").write_text(json.dumps(metrics))

        # A failure on rank 0 (one class only) must reach rank 1 instead of hanging it.
        one_class = [row for row in rows if row[2] == 1]
        try:
            run_evaluator(one_class[rank::2], result_dir / "one_class")
        except (ValueError, RuntimeError) as error:
            (result_dir / f"error{rank}.txt").write_text(f"{type(error).__name__}: {error}")
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process(tmp_path):
    single_dir, multi_dir, result_dir = tmp_path / "single", tmp_path / "multi", tmp_path / "results"
    result_dir.mkdir()
    single = run_evaluator(sample_rows(), single_dir)

    mp.spawn(_distributed_worker, args=(2, tmp_path / "init", multi_dir, result_dir), nprocs=2, join=True)

    assert (multi_dir / "predictions.csv").read_bytes() == (single_dir / "predictions.csv").read_bytes()
    for rank in (0, 1):
        assert json.loads((result_dir / f"rank{rank}.json").read_text()) == single
    assert json.loads((multi_dir / "metrics.json").read_text()) == {DATASET: single}
    assert "AUC is undefined" in (result_dir / "error0.txt").read_text()
    assert (result_dir / "error1.txt").read_text().startswith("RuntimeError: Evaluator: rank 0 failed")
