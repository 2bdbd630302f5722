"""The decoded (pre-resized) LMDB cache serves the same samples as the PNG files."""
from __future__ import annotations


import pytest
import torch

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


def samples(root, storage, spec, train):
    records = build_records("TinyFF", "train", data_root=root, label_dict=LABEL_DICT)
    dataset = FrameDataset(records, storage, build_transform(AUG, spec, train), frame_num=3,
                           with_mask=True, with_landmarks=True)
    out = []
    for index in range(len(dataset)):
        dataset.reseed(index)
        out.append(dataset[index])
    return out


@pytest.mark.parametrize("size", [None, 128])
def test_cached_samples_equal_on_the_fly_ones(tiny_root, tmp_path, size):
    out = tmp_path / "cache"
    assert cache_main(["--data_root", str(tiny_root), "--dataset", "TinyFF", "--out", str(out)]
                      + (["--size", str(size)] if size else [])) == 0
    spec = InputSpec(size or 256, resize_mode="resize")
    for train in (False, True):
        reference = samples(tiny_root, RgbStorage(tiny_root), spec, train)
        cached = samples(out, LmdbStorage(out), spec, train)
        for a, b in zip(reference, cached):
            assert torch.equal(a["image"], b["image"]), (a["video_key"], a["frame_index"], train)
            assert torch.equal(a["mask"], b["mask"])
            torch.testing.assert_close(a["landmarks"], b["landmarks"], rtol=0, atol=1e-4)


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
