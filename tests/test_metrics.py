"""The evaluation protocol in training/metrics.py, against sklearn and hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.metrics import (PREDICTION_COLUMNS, compute_metrics, eer, read_predictions, tpr_at_fpr,
                              write_predictions)


def frames_counted_per_video(video_keys):
    counts, indices = {}, []
    for key in video_keys:
        indices.append(counts.get(key, 0))
        counts[key] = indices[-1] + 1
    return indices


def make_columns(video_keys, labels, probs, dataset="D", frame_index=None, clip_index=None):
    """Prediction columns; frame_index counts up within each video unless given."""
    if frame_index is None:
        frame_index = frames_counted_per_video(video_keys)
    columns = {"dataset": [dataset] * len(labels), "video_key": list(video_keys),
               "frame_index": np.asarray(frame_index), "label": np.asarray(labels), "prob": np.asarray(probs)}
    if clip_index is not None:
        columns["clip_index"] = np.asarray(clip_index)
    return columns


def one_frame_per_video(labels, probs, dataset="D"):
    return make_columns([f"{dataset}/v{i}" for i in range(len(labels))], labels, probs, dataset=dataset)


def random_predictions(n_videos=60, frames=5, seed=0):
    rng = np.random.default_rng(seed)
    video_labels = rng.integers(0, 2, n_videos)
    labels = np.repeat(video_labels, frames)
    probs = np.clip(rng.normal(0.4 + 0.2 * labels, 0.25), 0, 1)
    keys = np.repeat([f"D/{'fake' if l else 'real'}/v{i}" for i, l in enumerate(video_labels)], frames)
    return make_columns(keys, labels, probs, frame_index=np.tile(np.arange(frames), n_videos))


def test_auc_and_ap_match_sklearn_on_random_data():
    columns = random_predictions()
    result = compute_metrics(columns)["D"]
    assert result["frame_auc"] == pytest.approx(roc_auc_score(columns["label"], columns["prob"]), abs=1e-12)
    assert result["frame_ap"] == pytest.approx(average_precision_score(columns["label"], columns["prob"]), abs=1e-12)
    video_labels, video_probs = columns["label"][::5], columns["prob"].reshape(-1, 5).mean(axis=1)
    assert result["video_auc"] == pytest.approx(roc_auc_score(video_labels, video_probs), abs=1e-12)
    assert result["video_ap"] == pytest.approx(average_precision_score(video_labels, video_probs), abs=1e-12)
    assert result["n_frames"] == 300 and result["n_videos"] == 60


def test_all_equal_scores_give_chance_level():
    result = compute_metrics(one_frame_per_video([0, 1, 0, 1, 1], [0.3] * 5))["D"]
    assert result["frame_auc"] == 0.5
    assert result["frame_eer"] == 0.5
    assert result["acc"] == 0.4 and result["balanced_acc"] == 0.5


def test_perfect_separation():
    result = compute_metrics(one_frame_per_video([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]))["D"]
    assert result["frame_auc"] == 1.0 and result["video_auc"] == 1.0
    assert result["frame_eer"] == 0.0 and result["video_eer"] == 0.0
    assert result["tpr_at_fpr_1pct"] == 1.0
    assert result["acc"] == 1.0 and result["balanced_acc"] == 1.0


def test_eer_is_interpolated_on_the_roc():
    # Fakes 0.9, 0.5, 0.5, 0.2; reals 0.5, 0.1, 0.05. ROC points (FPR, TPR):
    # (0,0) (0,1/4) (1/3,3/4) (1/3,1) (1,1). FPR - FNR goes -3/4 -> +1/12 on the
    # second segment, so it is zero 9/10 of the way along: FPR = 0.3, TPR = 0.7.
    labels = [1, 1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.5, 0.5, 0.2, 0.5, 0.1, 0.05]
    assert eer(labels, scores) == pytest.approx(0.3, abs=1e-12)


def test_eer_differs_from_nearest_roc_point():
    # ROC (0,0) (0,.5) (.5,1) (1,1): the two nearest points tie with FPR 0 and .5;
    # the crossing lies halfway along the tied segment, at FPR = FNR = 0.25.
    labels, scores = [1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]
    assert eer(labels, scores) == pytest.approx(0.25, abs=1e-12)
    assert tpr_at_fpr(labels, scores, 0.01) == pytest.approx(0.51, abs=1e-12)
    assert tpr_at_fpr(labels, scores, 0.0) == 0.5  # top of the vertical segment at FPR 0


def test_video_score_is_the_unweighted_mean_per_video():
    keys = ["D/real/a", "D/fake/b", "D/fake/b", "D/fake/b", "D/real/c", "D/real/c", "D/fake/d"]
    labels = [0, 1, 1, 1, 0, 0, 1]
    probs = [0.6, 0.1, 0.1, 0.9, 0.2, 0.2, 0.8]
    result = compute_metrics(make_columns(keys, labels, probs))["D"]
    # Video scores a .6 (real), b .367 (fake), c .2 (real), d .8 (fake): b loses to a only.
    assert result["video_auc"] == pytest.approx(0.75, abs=1e-12)
    assert result["n_videos"] == 4 and result["n_frames"] == 7


def test_videos_sharing_a_folder_name_stay_separate():
    # FF++ methods reuse folder names: grouping by "000_003" alone would merge
    # a real and two fake videos (and then fail on mixed labels).
    keys = ["FF/youtube/000_003", "FF/Deepfakes/000_003", "FF/Face2Face/000_003", "FF/youtube/001_870"]
    result = compute_metrics(make_columns(keys, [0, 1, 1, 0], [0.2, 0.9, 0.7, 0.4]))["D"]
    assert result["n_videos"] == 4
    assert result["video_auc"] == 1.0


def test_one_class_is_an_error_naming_dataset_and_counts():
    with pytest.raises(ValueError, match=r"AUC is undefined.*0 real and 3 fake") as error:
        compute_metrics(one_frame_per_video([1, 1, 1], [0.2, 0.5, 0.9], dataset="CelebDF"))
    assert "CelebDF" in str(error.value)


def test_mixed_labels_within_a_video_is_an_error():
    columns = make_columns(["D/x/v1", "D/x/v1", "D/x/v2"], [0, 1, 0], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="'D/x/v1'.*both real and fake"):
        compute_metrics(columns)


def test_duplicate_samples_are_an_error():
    columns = make_columns(["D/a", "D/a", "D/b"], [0, 0, 1], [0.2, 0.2, 0.7], frame_index=[3, 3, 0])
    with pytest.raises(ValueError, match="duplicate.*'D/a', frame 3"):
        compute_metrics(columns)


def test_non_finite_prob_is_an_error_naming_the_row():
    columns = one_frame_per_video([0, 1, 0, 1], [0.2, np.nan, 0.3, 0.8], dataset="DFDC")
    with pytest.raises(ValueError, match=r"DFDC.*nan at row 1 \(video 'DFDC/v1'"):
        compute_metrics(columns)


def test_labels_other_than_zero_and_one_are_rejected():
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        compute_metrics(one_frame_per_video([0, 2, 1], [0.1, 0.5, 0.9]))


def test_datasets_are_scored_separately_in_order_of_appearance():
    first = one_frame_per_video([0, 1], [0.1, 0.9], dataset="B")
    second = one_frame_per_video([0, 1, 1], [0.8, 0.2, 0.9], dataset="A")
    merged = {name: np.concatenate([np.asarray(first[name]), np.asarray(second[name])]) for name in first}
    result = compute_metrics(merged)
    assert list(result) == ["B", "A"]
    assert result["B"]["frame_auc"] == 1.0 and result["A"]["frame_auc"] == 0.5


def test_clip_predictions_report_clip_auc_and_aggregate_videos():
    keys = ["D/r/a", "D/r/a", "D/f/b", "D/f/b"]
    columns = make_columns(keys, [0, 0, 1, 1], [0.3, 0.6, 0.5, 0.9], frame_index=[0, 8, 0, 8],
                           clip_index=[0, 1, 0, 1])
    result = compute_metrics(columns)["D"]
    assert result["clip_auc"] == result["frame_auc"] == 0.75
    assert result["video_auc"] == 1.0
    assert result["n_clips"] == 4 and result["n_videos"] == 2
    assert "n_frames" not in result  # the rows are clips; their frame count is not in predictions.csv


def test_csv_round_trip_is_exact(tmp_path):
    columns = random_predictions(seed=3)
    path = tmp_path / "predictions.csv"
    write_predictions(path, columns)
    back = read_predictions(path)
    assert tuple(back) == PREDICTION_COLUMNS
    for name in PREDICTION_COLUMNS:
        np.testing.assert_array_equal(back[name], np.asarray(columns[name]))
    assert compute_metrics(path) == compute_metrics(columns)


def test_float32_probs_round_trip_within_1e_9(tmp_path):
    columns = random_predictions(seed=4)
    columns["prob"] = columns["prob"].astype(np.float32)
    path = tmp_path / "predictions.csv"
    write_predictions(path, columns)
    np.testing.assert_array_equal(read_predictions(path)["prob"].astype(np.float32), columns["prob"])
    from_file, from_memory = compute_metrics(path)["D"], compute_metrics(columns)["D"]
    for name, value in from_memory.items():
        assert from_file[name] == pytest.approx(value, abs=1e-9), name


def test_rows_form_and_clip_column_round_trip(tmp_path):
    rows = [{"dataset": "D", "video_key": "D/r/a,odd", "frame_index": 0, "label": 0, "prob": 0.25, "clip_index": 0},
            {"dataset": "D", "video_key": "D/f/b", "frame_index": 4, "label": 1, "prob": 0.75, "clip_index": 1}]
    path = tmp_path / "predictions.csv"
    write_predictions(path, rows)
    back = read_predictions(path)
    assert list(back["video_key"]) == ["D/r/a,odd", "D/f/b"]
    assert list(back["clip_index"]) == [0, 1]


def test_malformed_file_names_file_and_missing_column(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("dataset,video_key,frame_index,label\nD,D/a,0,1\n")
    with pytest.raises(ValueError, match=r"predictions\.csv.*missing column.*'prob'"):
        read_predictions(path)
    path.write_text("dataset,video_key,frame_index,label,prob\nD,D/a,0,1,high\n")
    with pytest.raises(ValueError, match=r"predictions\.csv: line 2, column 'prob'"):
        read_predictions(path)
    path.write_text("dataset,video_key,frame_index,label,prob\n")
    with pytest.raises(ValueError, match=r"predictions\.csv: no prediction rows"):
        compute_metrics(path)
