"""The data path's speed-ups change nothing but speed (and per-sample reseeding keeps
augmentations independent of each other)."""
from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader

from training.data.datasets import collate_samples
from training.data.transforms import FastFancyPCA, build_transform
from training.models.input_spec import InputSpec
from tests.data.synthetic import frame_image


def test_fast_fancy_pca_matches_albumentations():
    rng = np.random.default_rng(0)
    images = [frame_image(seed, 3) for seed in range(4)] + [rng.integers(0, 256, (57, 83, 3), dtype=np.uint8)]
    for seed, image in enumerate(images):
        stock, fast = A.FancyPCA(alpha=0.1, p=1.0), FastFancyPCA(alpha=0.1, p=1.0)
        stock.set_random_seed(seed)
        fast.set_random_seed(seed)
        difference = np.abs(stock(image=image)["image"].astype(int) - fast(image=image)["image"].astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3  # float rounding only


def test_normalisation_is_exactly_the_formula():
    transform = build_transform({}, InputSpec(32, mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4),
                                              resize_mode="resize"), train=False)
    frames = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    expected = np.stack([(frames[..., c].astype(np.float32) / np.float32(255) - np.float32(m)) / np.float32(s)
                         for c, (m, s) in enumerate([(0.1, 0.2), (0.5, 0.3), (0.9, 0.4)])], axis=1)
    assert torch.equal(transform._normalise(frames), torch.from_numpy(expected))


def test_reseeded_augmentations_fire_independently():
    aug = {"hflip": 0.5, "rotate": {"p": 0.5}, "blur": {"p": 0.5, "kernel": [3, 7]}, "jpeg": {"p": 0.5}}
    transform = build_transform(aug, InputSpec(32, resize_mode="resize"), train=True)
    transform.pipeline.save_applied_params = True
    image = frame_image(0, 0)[:32, :32]
    counts = []
    for seed in range(200):
        transform.reseed(seed)
        applied = transform.pipeline(images=image[None], keypoints=np.zeros((0, 2), np.float32))["applied_transforms"]
        counts.append(len(applied) - 1)  # minus the resize
    # Four independent p=0.5 ops: 0-4 applied with binomial frequencies, not all-or-nothing.
    histogram = np.bincount(counts, minlength=5)
    assert histogram[1] + histogram[2] + histogram[3] > 0.7 * len(counts), histogram


def test_worker_batches_are_collated_into_shared_memory():
    samples = [{"image": torch.full((3, 4, 4), float(i)), "label": i % 2, "video_key": f"v{i}"} for i in range(6)]
    batches = list(DataLoader(samples, batch_size=4, num_workers=1, collate_fn=collate_samples))
    assert batches[0]["image"].is_shared()
    assert torch.equal(batches[1]["image"][:, 0, 0, 0], torch.tensor([4.0, 5.0]))
    assert batches[1]["video_key"] == ["v4", "v5"]
