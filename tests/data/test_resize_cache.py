"""The decoded (pre-resized) LMDB cache serves the same samples as the PNG files."""
from __future__ import annotations

import pytest
import torch

from preprocessing.resize_cache import CacheGeometryError, build_cache
from preprocessing.resize_cache import main as cache_main
from tests.data.synthetic import LABEL_DICT
from training.data.catalog import build_records
from training.data.datasets import FrameDataset
from training.data.storage import LmdbStorage, RgbStorage, UnreadableFileError, decode_image
from training.data.transforms import build_transform
from training.models.input_spec import InputSpec

AUG = {"hflip": 0.5, "rotate": {"p": 0.5, "degrees": 10}, "blur": {"p": 0.5, "kernel": [3, 7]},
       "one_of": {"p": 0.5, "brightness_contrast": {}, "fancy_pca": {}, "hue_saturation": {}},
       "jpeg": {"p": 0.5, "quality": [40, 100]}}


def samples(root, storage, spec, train, order="reference"):
    records = build_records("TinyFF", "train", data_root=root, label_dict=LABEL_DICT)
    dataset = FrameDataset(records, storage, build_transform({**AUG, "order": order}, spec, train), frame_num=3,
                           with_mask=True, with_landmarks=True)
    out = []
    for index in range(len(dataset)):
        dataset.reseed(index)
        out.append(dataset[index])
    return out


def assert_same_samples(root, cache, spec, order="reference"):
    for train in (False, True):
        reference = samples(root, RgbStorage(root), spec, train, order)
        cached = samples(cache, LmdbStorage(cache), spec, train, order)
        for a, b in zip(reference, cached):
            assert torch.equal(a["image"], b["image"]), (a["video_key"], a["frame_index"], train)
            assert torch.equal(a["mask"], b["mask"])
            torch.testing.assert_close(a["landmarks"], b["landmarks"], rtol=0, atol=1e-4)


def test_cache_at_the_stored_size_equals_the_files(tiny_root, tmp_path):
    out = tmp_path / "cache"
    assert cache_main(["--data_root", str(tiny_root), "--dataset", "TinyFF", "--out", str(out)]) == 0
    assert_same_samples(tiny_root, out, InputSpec(224, resize_mode="resize"))


@pytest.mark.parametrize("spec, order", [
    (InputSpec(128, resize_mode="resize"), "reference"),  # DeepfakeBench's cv2 resize, then augment
    (InputSpec(112, resize_mode="resize_center_crop", crop_pct=0.875), "reference"),  # crop left to the loader
    (InputSpec(112, resize_mode="resize_center_crop", interpolation="pil_bicubic"), "resize_first"),
], ids=["cv2-resize", "cv2-crop_pct", "pil-resize_first"])
def test_cache_resized_through_the_detectors_geometry_equals_resizing_on_the_fly(tiny_root, tmp_path, spec, order):
    out = tmp_path / "cache"
    build_cache(tiny_root, "TinyFF", out, spec, order)
    first = build_records("TinyFF", "train", data_root=out, label_dict=LABEL_DICT)[0].frames[0]
    assert min(LmdbStorage(out).read_image(first, "TinyFF").shape[:2]) == int(spec.resolution / spec.crop_pct)
    assert_same_samples(tiny_root, out, spec, order)


def test_cache_refuses_a_detector_that_augments_before_its_resize(tiny_root, tmp_path):
    pil = InputSpec(112, resize_mode="resize_center_crop", interpolation="pil_bicubic")  # reference: augment first
    for order in ("reference", "augment_first"):
        with pytest.raises(CacheGeometryError, match="without --detector_path"):
            build_cache(tiny_root, "TinyFF", tmp_path / "cache", pil, order)
    with pytest.raises(CacheGeometryError, match="augment_first"):
        build_cache(tiny_root, "TinyFF", tmp_path / "cache", InputSpec(112, resize_mode="resize"), "augment_first")
    assert not (tmp_path / "cache").exists()


def test_cli_takes_the_geometry_from_the_detector_config(tiny_root, tmp_path):
    out = tmp_path / "cache"
    assert cache_main(["--data_root", str(tiny_root), "--dataset", "TinyFF", "--out", str(out),
                       "--detector_path", "configs/detector/xception.yaml", "--opts", "model.resolution=96",
                       "model.backbone.pretrained=null"]) == 0
    assert LmdbStorage(out).cache_geometry("TinyFF") == {"resolution": 96, "resize_mode": "resize",
                                                         "interpolation": "cv2_cubic", "crop_pct": 1.0}
    assert_same_samples(tiny_root, out, InputSpec(96, resize_mode="resize", mean=(0.5,) * 3, std=(0.5,) * 3))


def test_loader_warns_when_the_cache_was_resized_for_another_geometry(tiny_root, tmp_path, monkeypatch):
    from training.data import loaders

    out = tmp_path / "cache"
    build_cache(tiny_root, "TinyFF", out, InputSpec(128, resize_mode="resize"))
    storage = LmdbStorage(out)
    warnings = []  # captured here: other tests may stop the training loggers propagating to caplog
    monkeypatch.setattr(loaders.log, "warning", lambda message, *args: warnings.append(message % args))
    loaders.check_cache_geometry(storage, ["TinyFF"], InputSpec(128, resize_mode="resize"), True, "reference")
    assert not warnings
    loaders.check_cache_geometry(storage, ["TinyFF"], InputSpec(128, resize_mode="resize"), True, "augment_first")
    loaders.check_cache_geometry(storage, ["TinyFF"], InputSpec(224, interpolation="pil_bicubic"), False, "reference")
    assert [("augments before" in w, "pre-resized for" in w) for w in warnings] == [(True, False), (False, True)]


def test_cache_refuses_to_overwrite_its_source_and_rejects_bad_arrays(tiny_root):
    from training.cli import EXIT_USAGE, run_cli

    assert run_cli(cache_main, ["--data_root", str(tiny_root), "--dataset", "TinyFF", "--out", str(tiny_root)]) \
        == EXIT_USAGE
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 4), np.float32))
    with pytest.raises(UnreadableFileError, match="expected uint8"):
        decode_image(buffer.getvalue(), "x.png")
