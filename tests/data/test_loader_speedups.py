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


def _png(image) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_png_decoding_by_libspng_gives_opencvs_pixels_and_leaves_other_files_to_it():
    import cv2
    from PIL import Image

    from training.data import storage

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cases = {  # name: (bytes, decoded by libspng as an image, as a mask)
        "rgb": (_png(rgb), True, False), "rgb by cv2": (cv2.imencode(".png", rgb)[1].tobytes(), True, False),
        "grey": (_png(rgb[..., 0]), False, True), "rgba": (_png(np.dstack([rgb, rgb[..., :1]])), False, False),
        "palette": (_png(Image.fromarray(rgb).quantize(8)), False, False),
        "rgb16": (cv2.imencode(".png", rgb.astype(np.uint16) * 257)[1].tobytes(), False, False),
        "jpeg": (cv2.imencode(".jpg", rgb)[1].tobytes(), False, False),
    }
    for name, (data, as_image, as_mask) in cases.items():
        assert (storage._spng_decode(data, storage.PNG_RGB) is not None) == as_image, name
        assert (storage._spng_decode(data, storage.PNG_GREY) is not None) == as_mask, name
        by_cv2 = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(storage.decode_image(data, name), by_cv2), name
        grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(storage.decode_mask(data, name), grey), name


def test_damaged_pngs_still_raise_although_libspng_would_decode_them():
    import pytest

    from training.data.storage import UnreadableFileError, decode_image

    data = _png(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the pixel data: its chunk CRC no longer matches
    for name, damaged in {"bit flip": bytes(flipped), "no IEND": data[:-12], "cut": data[:len(data) // 2]}.items():
        with pytest.raises(UnreadableFileError, match="frame.png"):
            decode_image(damaged, "frame.png")


def test_a_single_frame_is_augmented_exactly_like_a_clip_of_one():
    from tests.data.synthetic import symmetric_landmarks

    aug = {"hflip": 0.5, "rotate": {"p": 0.5}, "blur": {"p": 0.5, "kernel": [3, 7]},
           "one_of": {"p": 0.5, "brightness_contrast": {}, "fancy_pca": {}, "hue_saturation": {}},
           "jpeg": {"p": 0.5}}
    for spec in (InputSpec(224, resize_mode="resize"),
                 InputSpec(224, resize_mode="resize_center_crop", interpolation="pil_bicubic")):
        transform = build_transform(aug, spec, train=True)
        image, points = frame_image(2, 4), symmetric_landmarks(3)
        mask = (image[..., 0] > 120).astype(np.uint8) * 255
        for seed in range(12):
            transform.reseed(seed)
            single = transform(image, mask=mask, landmarks=points)
            transform.reseed(seed)
            clip = transform([image], mask=[mask], landmarks=[points])
            for key in ("image", "mask", "landmarks"):
                assert torch.equal(single[key], clip[key][0]), (spec.interpolation, seed, key)
