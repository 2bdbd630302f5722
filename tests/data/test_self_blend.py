"""SBI self-blending: where the blend happens, labels and masks, determinism under epoch seeding."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.data.synthetic import LABEL_DICT, frame_image, symmetric_landmarks
from training.config import DEFAULTS, deep_merge
from training.data.datasets import DataRequirementError
from training.data.loaders import build_dataset, build_loader, load_records
from training.data.self_blend import SelfBlendConfig, SelfBlender, SelfBlendFrameDataset
from training.models.input_spec import InputSpec

SPEC = InputSpec(64, resize_mode="resize")


def config(root, workers=0, **blend):
    return deep_merge(DEFAULTS, {
        "data": {"root": str(root), "train_dataset": ["TinyFF"], "label_dict": LABEL_DICT, "num_workers": workers,
                 "frame_num": {"train": 3}, "self_blend": {"enabled": True, **blend}},
        "augment": {"hflip": 0.5, "jpeg": {"p": 0.5, "quality": [60, 100]}},
    })


def train_set(cfg, spec=SPEC):
    return build_dataset(cfg, ["TinyFF"], "train", spec, train=True)


def test_blend_changes_only_the_face_region_and_is_seeded():
    image = frame_image(3, 0)
    landmarks = symmetric_landmarks(0)
    blender = SelfBlender(SelfBlendConfig())
    blended, mask = blender.blend(image, landmarks, np.random.default_rng(1))
    assert blended.dtype == np.uint8 and blended.shape == image.shape
    assert mask.shape == image.shape[:2] and 0 <= mask.min() and 0 < mask.max() <= 1.0 + 1e-6
    # The blend weight lives inside the (shifted, deformed, blurred) landmark hull.
    x0, y0 = landmarks.min(0) - 30
    x1, y1 = landmarks.max(0) + 30
    outside = np.ones(mask.shape, bool)
    outside[int(y0):int(y1), int(x0):int(x1)] = False
    assert mask[outside].max() < 1e-3
    assert mask[int(landmarks[:, 1].mean()), int(landmarks[:, 0].mean())] > 0.2
    # Same generator state, same blend; another, another.
    again, mask_again = blender.blend(image, landmarks, np.random.default_rng(1))
    other, _ = blender.blend(image, landmarks, np.random.default_rng(2))
    assert np.array_equal(blended, again) and np.array_equal(mask, mask_again)
    assert not np.array_equal(blended, other)


def test_p1_turns_every_real_frame_into_a_labelled_fake_with_its_mask(tiny_root):
    cfg = config(tiny_root, p=1.0)
    dataset = train_set(cfg, dataclasses.replace(SPEC, with_mask=True))
    assert isinstance(dataset, SelfBlendFrameDataset)
    samples = [dataset[i] for i in range(len(dataset))]
    reals = [s for s in samples if "FF-real" in s["video_key"]]
    fakes = [s for s in samples if "FF-DF" in s["video_key"]]
    assert reals and fakes
    assert all(s["label"] == 1 and s["self_blended"] for s in reals)
    assert all(s["mask"].max() > 0.2 for s in reals)  # the blend mask, not the all-zero real mask
    assert all(s["label"] == 1 and not s["self_blended"] for s in fakes)

    unblended = train_set(config(tiny_root, p=0.0))
    assert all(unblended[i]["label"] == (1 if "FF-DF" in unblended[i]["video_key"] else 0)
               for i in range(len(unblended)))
    reals_only = train_set(config(tiny_root, p=0.5, reals_only=True))
    assert {r.label for r in reals_only.records} == {0}
    half = [reals_only[i]["self_blended"] for i in range(len(reals_only))]
    assert any(half) and not all(half)


def test_blends_follow_the_epoch_seed_not_the_worker(tiny_root):
    def epoch_images(workers, epoch):
        cfg = config(tiny_root, workers=workers, p=0.5)
        loader = build_loader(cfg, train_set(cfg), batch_size=4, train=True)
        loader.sampler.set_epoch(epoch)
        loader.dataset.set_epoch(epoch)
        batches = list(loader)
        return torch.cat([b["image"] for b in batches]), torch.cat([b["label"] for b in batches])

    images_0, labels_0 = epoch_images(0, epoch=1)
    images_2, labels_2 = epoch_images(2, epoch=1)
    assert torch.equal(images_0, images_2) and torch.equal(labels_0, labels_2)
    images_next, _ = epoch_images(0, epoch=2)
    assert not torch.equal(images_0, images_next)


def test_real_videos_without_landmarks_are_an_error_or_reported(tiny_root):
    records = load_records(config(tiny_root), ["TinyFF"], "train")
    stripped = [dataclasses.replace(r, landmarks=None) if r.label == 0 else r for r in records]
    with pytest.raises(DataRequirementError, match="needs landmarks for real videos"):
        build_dataset(config(tiny_root), ["TinyFF"], "train", SPEC, train=True, records=stripped)
    lenient = deep_merge(config(tiny_root, p=1.0), {"data": {"strict": False}})
    dataset = build_dataset(lenient, ["TinyFF"], "train", SPEC, train=True, records=stripped)
    assert len(dataset.report) == sum(1 for r in stripped if r.label == 0)
    assert not any(dataset[i]["self_blended"] for i in range(len(dataset)))


def test_invalid_options_and_clip_detectors_are_refused(tiny_root):
    with pytest.raises(ValueError, match="self_blend.p"):
        train_set(config(tiny_root, p=1.5))
    with pytest.raises(ValueError, match="blends single frames"):
        train_set(config(tiny_root), dataclasses.replace(SPEC, frames_per_sample=4))
