"""Clip models end to end: clip sampling from a real demo dataset, per-epoch offsets through the
loader, shared augmentation across a clip, the padded-video report, and video-level metrics that
mean the same thing for clip and frame models."""
from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import roc_auc_score

from training.config import load_config
from training.data.catalog import frame_index_of
from training.data.datasets import ClipDataset, FrameDataset
from training.data.loaders import build_dataset, build_loader, data_report
from training.engine.testing import test_detector as run_test_detector  # not a test itself
from training.metrics import read_predictions
from training.models import build_detector

STAN_CONFIG = "configs/detector/demo_clip_stan_tiny.yaml"
FRAME_CONFIG = "configs/detector/demo_clip_tiny.yaml"
TINY_VIT = "model.backbone.vision_cfg={image_size: 32, patch_size: 8, width: 32, layers: 2, head_width: 8}"


@pytest.fixture(scope="module")
def demo_temporal(tmp_path_factory):
    from preprocessing.demo.generate import generate_demo

    root = tmp_path_factory.mktemp("demo")
    generate_demo(root, seed=0, scale=0.1, datasets=["DemoTemporal"], workers=1)
    return root


def stan_config(root, *extra):
    return load_config(STAN_CONFIG, [f"data.root={root}", TINY_VIT, "model.branch_depth=1",
                                     "data.num_workers=0", *extra])


def per_video_mean_auc(predictions):
    keys = predictions["video_key"]
    videos = sorted(set(keys))
    means = [predictions["prob"][keys == v].mean() for v in videos]
    labels = [predictions["label"][keys == v][0] for v in videos]
    return roc_auc_score(labels, means), len(videos)


def test_demo_temporal_gives_consecutive_clips_spanning_each_video(demo_temporal):
    config = stan_config(demo_temporal)
    spec = build_detector(config).input_spec
    dataset = build_dataset(config, ["DemoTemporal"], "test", spec, train=False)
    assert isinstance(dataset, ClipDataset) and dataset.clip_len == spec.frames_per_sample == 8
    assert all(len(record.frames) == 16 for record in dataset.records)  # the generator's 16 frames
    assert len(dataset) == 2 * len(dataset.records)  # data.clips_per_video.test = 2
    for index in range(len(dataset)):
        positions, padded = dataset.clip_window(index)
        clip = dataset.samples[index][1]
        assert not padded and positions == list(range(8 * clip, 8 * clip + 8))  # evenly spaced: 0-7, 8-15
    sample = dataset[1]
    assert sample["image"].shape == (8, 3, 32, 32) and sample["clip_index"] == 1
    record = dataset.records[dataset.samples[1][0]]
    assert sample["frame_index"] == frame_index_of(record.frames[8])


def clip_starts_of_first_batch(loader):
    batch = next(iter(loader))
    return tuple(sorted(zip(batch["video_key"], batch["frame_index"].tolist())))


def test_training_offsets_change_per_epoch_through_the_loader(demo_temporal):
    config = stan_config(demo_temporal)
    spec = build_detector(config).input_spec
    loader = build_loader(config, build_dataset(config, ["DemoTemporal"], "train", spec, train=True),
                          batch_size=8, train=True)
    starts = []
    for epoch in range(6):
        loader.dataset.set_epoch(epoch)  # what the trainer calls
        starts.append(clip_starts_of_first_batch(loader))
    assert len(set(starts)) > 1
    loader.dataset.set_epoch(2)
    assert clip_starts_of_first_batch(loader) == starts[2]


def test_one_augmentation_is_shared_by_the_frames_of_a_clip(demo_temporal):
    config = stan_config(demo_temporal, "augment={hflip: 0.5}")
    spec = build_detector(config).input_spec
    augmented = build_dataset(config, ["DemoTemporal"], "train", spec, train=True)
    plain = build_dataset(config, ["DemoTemporal"], "train", spec, train=False)  # its transform: no augmentation
    flips = set()
    for seed in range(6):
        augmented.reseed(seed)
        image = augmented[0]["image"]
        positions = augmented.clip_window(0)[0]
        record = augmented.records[augmented.samples[0][0]]
        reference = torch.stack([plain.transform(plain.storage.read_image(record.frames[p], record.dataset))["image"]
                                 for p in positions])
        flipped = [torch.allclose(image[t], reference[t].flip(-1), atol=1e-6) for t in range(8)]
        unflipped = [torch.allclose(image[t], reference[t], atol=1e-6) for t in range(8)]
        assert all(flipped) or all(unflipped)  # never a mix within one clip
        flips.add(all(flipped))
    assert flips == {True, False}


def test_clip_and_frame_models_report_the_same_video_level_auc(demo_temporal, tmp_path):
    """video_auc = AUC of per-video mean probabilities, over the same videos, for both kinds of
    model; clip models add clip_auc over clips (what the thesis called its video AUC)."""
    results = {}
    for kind, path, extra in (("clip", STAN_CONFIG, ["model.branch_depth=1"]),
                              ("frame", FRAME_CONFIG, ["data.frame_num={train: 8, val: 16, test: 16}"])):
        config = load_config(path, [f"data.root={demo_temporal}", TINY_VIT, "data.num_workers=0", *extra])
        torch.manual_seed(0)
        detector = build_detector(config).eval()
        run_test_detector(config, detector, ["DemoTemporal"], tmp_path / kind, torch.device("cpu"))
        out = tmp_path / kind / "DemoTemporal"
        metrics = json.loads((out / "metrics.json").read_text())["DemoTemporal"]
        predictions = read_predictions(out / "predictions.csv")
        results[kind] = (metrics, predictions, json.loads((out / "data_report.json").read_text()))
    (clip_metrics, clip_rows, clip_report), (frame_metrics, frame_rows, frame_report) = results["clip"], results["frame"]
    from preprocessing.demo.benchmark import dataset_spec

    test_videos = 2 * dataset_spec("DemoTemporal").identity_counts(0.1)[2]  # a real and a fake per identity
    assert "clip_index" in clip_rows and "clip_index" not in frame_rows
    for metrics, rows in ((clip_metrics, clip_rows), (frame_metrics, frame_rows)):
        auc, n_videos = per_video_mean_auc(rows)
        assert metrics["video_auc"] == pytest.approx(auc, abs=1e-12)
        assert metrics["n_videos"] == n_videos == test_videos
    assert "n_frames" not in clip_metrics and "n_clips" not in frame_metrics
    assert clip_metrics["n_clips"] == 2 * test_videos and clip_metrics["clip_auc"] == pytest.approx(
        roc_auc_score(clip_rows["label"], clip_rows["prob"]), abs=1e-12)
    assert "clip_auc" not in frame_metrics and frame_metrics["n_frames"] == test_videos * 16
    assert clip_report["sample"] == "clip" and clip_report["n_padded_videos"] == 0
    assert frame_report["sample"] == "frame" and frame_report["n_samples"] == test_videos * 16


def test_padded_short_video_is_counted_in_the_report(tiny_root, tmp_path, caplog):
    """TinyFF has videos of 3 frames: with 4-frame clips they are padded, logged by train and
    test, and listed in the test output's data_report.json."""
    from training.train import main

    run = tmp_path / "run"
    code = main(["--detector_path", STAN_CONFIG, "--train_dataset", "TinyFF", "--test_dataset", "TinyFF",
                 "--run_dir", str(run), "--device", "cpu", "--opts", f"data.root={tiny_root}", TINY_VIT,
                 "model.frames=4", "model.branch_depth=1", "data.num_workers=0", "train.epochs=1",
                 "train.batch_size=2", "train.val_every_epochs=0", "test.batch_size=4",
                 "data.clips_per_video={train: 1, val: 1, test: 2}"])
    assert code == 0
    report = json.loads((run / "test" / "TinyFF" / "data_report.json").read_text())
    assert report["n_padded_videos"] == 1 and report["padded_videos"] == ["TinyFF/FF-DF/002_001"]
    assert report["n_videos"] == 2 and report["n_samples"] == 3  # 6-frame real: 2 clips; 3-frame fake: 1
    log = (run / "train.log").read_text()
    assert "TinyFF train: 3 videos, 3 clips of 4 frames; 1 video(s) shorter than a clip padded" in log
    assert "TinyFF test: 2 videos, 3 clips of 4 frames; 1 video(s) shorter than a clip padded" in log
    metrics = json.loads((run / "metrics.json").read_text())["TinyFF"]
    assert metrics["n_clips"] == 3 and metrics["n_videos"] == 2


def test_frame_dataset_report_has_no_padding_fields(tiny_root):
    from training.data.storage import RgbStorage
    from training.data.transforms import build_transform
    from training.models.input_spec import InputSpec
    from training.data.catalog import build_records
    from tests.data.synthetic import LABEL_DICT

    records = build_records("TinyFF", "train", data_root=tiny_root, label_dict=LABEL_DICT)
    dataset = FrameDataset(records, RgbStorage(tiny_root), build_transform({}, InputSpec(32), False), frame_num=2)
    report = data_report(dataset, "TinyFF", "train")
    assert report["sample"] == "frame" and "n_padded_videos" not in report
    assert report["n_videos"] == 3 and report["n_samples"] == 6 and report["n_skipped"] == 0
