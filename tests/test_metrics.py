"""The evaluation protocol in training/metrics.py, against sklearn and hand-worked cases."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.metrics import (METRICS, PREDICTION_COLUMNS, SELECTABLE_METRICS, compute_metrics, eer, get_metric,
                              macro_average_precision, read_predictions, tpr_at_fpr, write_predictions)


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
    assert result["frame_tpr_at_fpr_1pct"] == 1.0 and result["video_tpr_at_fpr_0.1pct"] == 1.0
    assert result["frame_map"] == 1.0 and result["video_ap_real"] == 1.0
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


# ------------------------------------------------------------- papers' metrics

def test_macro_map_by_hand():
    # Fake-class AP, scores P(fake) 0.9 F, 0.7 F, 0.6 R, 0.4 F, 0.2 R: precision at the
    # fakes 1, 1, 3/4 -> 11/12. Real-class AP, scores 1 - P(fake) 0.8 R, 0.6 F, 0.4 R,
    # 0.3 F, 0.1 F: precision at the reals 1, 2/3 -> 5/6. mAP = (11/12 + 5/6) / 2 = 7/8.
    labels, probs = [1, 1, 0, 0, 1], [0.9, 0.4, 0.6, 0.2, 0.7]
    result = compute_metrics(one_frame_per_video(labels, probs))["D"]
    assert result["frame_ap"] == pytest.approx(11 / 12, abs=1e-12)
    assert result["frame_ap_real"] == pytest.approx(5 / 6, abs=1e-12)
    assert result["frame_map"] == pytest.approx(7 / 8, abs=1e-12)
    assert result["video_map"] == result["frame_map"]  # one frame per video
    assert macro_average_precision(labels, probs) == pytest.approx(7 / 8, abs=1e-12)


def test_macro_map_equals_sklearn_macro_over_two_softmax_columns():
    # What LN-CLIP / GenD compute (src/metrics.py ovr_prc): macro AP over one-hot labels and
    # the (P(real), P(fake)) columns, at frame level and over per-video mean probabilities.
    columns = random_predictions(seed=3)
    result = compute_metrics(columns)["D"]

    def sklearn_map(labels, probs):
        return average_precision_score(np.eye(2)[labels], np.stack([1 - probs, probs], axis=1), average="macro")

    assert result["frame_map"] == pytest.approx(sklearn_map(columns["label"], columns["prob"]), abs=1e-12)
    video_labels, video_probs = columns["label"][::5], columns["prob"].reshape(-1, 5).mean(axis=1)
    assert result["video_map"] == pytest.approx(sklearn_map(video_labels, video_probs), abs=1e-12)
    assert result["video_ap_real"] == pytest.approx(average_precision_score(1 - video_labels, 1 - video_probs),
                                                    abs=1e-12)
    assert result["video_map"] != result["video_ap"]  # the fake-class AP is another number


def test_tpr_at_fpr_by_hand():
    # 20 reals (one at 0.9, the rest below 0.2) and fakes 0.99, 0.9, 0.5, 0.3. ROC:
    # (0,0) (0,1/4), the 0.9 tie (0.05,1/2), then (0.05,3/4) (0.05,1). On the tie segment
    # TPR = 1/4 + FPR/0.05 * 1/4; at FPR 5% the vertical step counts at its top.
    reals = [0.9] + [0.01 * i for i in range(19)]
    labels = [1, 1, 1, 1] + [0] * 20
    probs = [0.99, 0.9, 0.5, 0.3] + reals
    result = compute_metrics(one_frame_per_video(labels, probs))["D"]
    assert result["frame_tpr_at_fpr_0.1pct"] == pytest.approx(0.255, abs=1e-12)
    assert result["frame_tpr_at_fpr_1pct"] == pytest.approx(0.30, abs=1e-12)
    assert result["frame_tpr_at_fpr_5pct"] == pytest.approx(1.0, abs=1e-12)
    assert result["video_tpr_at_fpr_1pct"] == result["frame_tpr_at_fpr_1pct"]


def test_tpr_at_fpr_equals_gend_interpolation_on_random_data():
    # GenD (src/metrics.py calculate_tpr_at_fpr): np.interp on sklearn's default ROC.
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 3000)
    probs = np.round(np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1), 2)  # many ties
    fpr, tpr, _ = roc_curve(labels, probs)
    result = compute_metrics(one_frame_per_video(labels, probs))["D"]
    for target, name in ((0.001, "0.1"), (0.01, "1"), (0.05, "5")):
        assert result[f"frame_tpr_at_fpr_{name}pct"] == pytest.approx(np.interp(target, fpr, tpr), abs=1e-12)


def test_median_video_aggregation():
    # Video a (fake): 0.1, 0.2, 0.9 -> mean 0.4, median 0.2; video b (real): 0.3, 0.3, 0.35, 0.4
    # -> mean 0.3375, median 0.325 (even count: mean of the two middle values).
    keys = ["D/fake/a"] * 3 + ["D/real/b"] * 4 + ["D/real/c"]
    labels = [1] * 3 + [0] * 5
    probs = [0.1, 0.9, 0.2, 0.3, 0.4, 0.3, 0.35, 0.15]
    columns = make_columns(keys, labels, probs)
    mean = compute_metrics(columns)["D"]
    median = compute_metrics(columns, video_aggregation="median")["D"]
    assert mean["video_auc"] == 1.0  # 0.4 above both reals (0.3375, 0.15)
    assert median["video_auc"] == 0.5  # 0.2 below 0.325, above 0.15
    assert median["frame_auc"] == mean["frame_auc"]
    rng = np.random.default_rng(1)
    columns = make_columns(np.repeat([f"D/{'fake' if i % 2 else 'real'}/v{i}" for i in range(40)], 6),
                           np.repeat(np.arange(40) % 2, 6), rng.random(240))
    median = compute_metrics(columns, video_aggregation="median")["D"]
    video_labels, video_probs = np.arange(40) % 2, np.median(columns["prob"].reshape(40, 6), axis=1)
    assert median["video_auc"] == pytest.approx(roc_auc_score(video_labels, video_probs), abs=1e-12)


def test_unknown_video_aggregation_names_the_keys():
    with pytest.raises(ValueError, match="test.video_aggregation"):
        compute_metrics(one_frame_per_video([0, 1], [0.2, 0.8]), video_aggregation="max")


def test_registry_names_every_metrics_json_entry():
    frame_model = compute_metrics(random_predictions())["D"]
    assert list(frame_model) == [m for m in METRICS if m not in ("clip_auc", "n_clips")]
    assert all(get_metric(m).selectable for m in ("video_map", "frame_ap_real", "video_tpr_at_fpr_5pct", "acc"))
    assert not any(get_metric(m).selectable for m in ("n_videos", "n_frames", "clip_auc"))
    assert get_metric("video_eer").better(0.1, 0.2) and not get_metric("video_map").better(0.1, 0.2)
    assert set(SELECTABLE_METRICS) <= set(frame_model)
    with pytest.raises(KeyError, match="video_map"):
        get_metric("video_mAP")


# ------------------------------------------------------------ checkpoint selection

@pytest.mark.parametrize("name", SELECTABLE_METRICS)
def test_every_selectable_metric_is_a_valid_val_metric(name):
    from training.config import load_config

    config = load_config("configs/detector/timm_cnn_tiny.yaml", [f"train.val_metric={name}"])
    assert config["train"]["val_metric"] == name


def test_count_metrics_are_refused_as_val_metric():
    from training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="train.val_metric.*video_map"):
        load_config("configs/detector/timm_cnn_tiny.yaml", ["train.val_metric=n_videos"])


class _FakeTrainer:
    def __init__(self, tmp_path, aggregation):
        self.config = {"train": {"epochs": 9, "amp": "off", "val_video_aggregation": aggregation}}
        self.epoch, self.best_metric, self.best_epoch = 0, None, None
        self.run_dir, self.device, self.model, self.hooks = tmp_path, "cpu", None, []
        self.run = SimpleNamespace(val=tmp_path / "val", val_history=tmp_path / "val_history.json")
        self.global_step = 0
        self.saved = []

    def _reached_max_steps(self):
        return False

    def save(self, tag):
        self.saved.append((self.epoch, tag))


@pytest.mark.parametrize("name, best_epoch", [("video_map", 2), ("video_eer", 1), ("frame_tpr_at_fpr_0.1pct", 3)])
def test_validation_hook_selects_on_the_chosen_metric_in_its_direction(monkeypatch, tmp_path, name, best_epoch):
    import training.engine.evaluation as evaluation
    from training.engine.hooks import ValidationCheckpointHook

    per_epoch = {1: {"video_map": 0.6, "video_eer": 0.1, "frame_tpr_at_fpr_0.1pct": 0.1},
                 2: {"video_map": 0.9, "video_eer": 0.3, "frame_tpr_at_fpr_0.1pct": 0.2},
                 3: {"video_map": 0.7, "video_eer": 0.2, "frame_tpr_at_fpr_0.1pct": 0.3}}
    seen = []

    def fake_evaluate(model, loaders, out_dir, device, amp, video_aggregation="mean"):
        seen.append(video_aggregation)
        return {"D": {**per_epoch[trainer.epoch], "n_videos": 4}}

    monkeypatch.setattr(evaluation, "evaluate_datasets", fake_evaluate)
    trainer = _FakeTrainer(tmp_path, "median")
    hook = ValidationCheckpointHook({"D": object()}, 1, name)
    for epoch in (1, 2, 3):
        trainer.epoch = epoch
        hook.after_epoch(trainer)
    assert trainer.best_epoch == best_epoch and trainer.best_metric == per_epoch[best_epoch][name]
    assert (best_epoch, "best") in trainer.saved and seen == ["median"] * 3
