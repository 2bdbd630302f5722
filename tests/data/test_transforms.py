import numpy as np
import pytest
import torch

from training.data.transforms import IBUG68_MIRROR, build_transform
from training.models.input_spec import CLIP_MEAN, CLIP_STD, InputSpec
from tests.data.synthetic import frame_image, symmetric_landmarks

LN_CLIP_AUG = {"hflip": 0.5, "affine": {"degrees": 10, "translate": 0.1, "scale": [0.9, 1.1]},
               "blur": {"sigma": [0.1, 2.0]}, "color_jitter": {"brightness": 0.1, "contrast": 0.1},
               "jpeg": {"quality": [40, 100]}}
DEEPFAKEBENCH_AUG = {"hflip": 0.5, "rotate": {"p": 0.5, "degrees": 10}, "blur": {"p": 0.5, "kernel": [3, 7]},
                     "one_of": {"p": 0.5, "brightness_contrast": {"brightness": 0.1, "contrast": 0.1},
                                "fancy_pca": {}, "hue_saturation": {}},
                     "jpeg": {"p": 0.5, "quality": [40, 100]}}
SPECS = [InputSpec(224, resize_mode="resize_center_crop"), InputSpec(224, resize_mode="resize")]


def random_landmarks(seed=0, k=68):
    # Integer positions so a 3x3 dot is centred exactly on the landmark.
    return np.random.default_rng(seed).integers(70, 186, (k, 2)).astype(np.float32)


def dot_image(point):
    image = np.zeros((256, 256, 3), np.uint8)
    x, y = int(point[0]), int(point[1])
    image[y - 1:y + 2, x - 1:x + 2] = 255
    return image


def dot_centre(channel_first: torch.Tensor) -> np.ndarray:
    """Intensity-weighted centre (x, y) of the bright pixels of a (C, H, W) tensor."""
    plane = channel_first.float().mean(0).numpy()
    plane = plane - plane.min()
    weights = np.where(plane > 0.3 * plane.max(), plane, 0)
    ys, xs = np.indices(plane.shape)
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.resize_mode)
@pytest.mark.parametrize("aug, mirrored", [
    ({"hflip": 1.0}, True),
    ({"affine": {"degrees": 10, "translate": 0.1, "scale": [0.9, 1.1]}}, False),
    ({"hflip": 1.0, "affine": {"degrees": 10, "translate": 0.1, "scale": [0.9, 1.1]}}, True),
    ({"rotate": {"degrees": 10}}, False),
])
def test_landmarks_and_mask_move_with_the_image(spec, aug, mirrored):
    transform = build_transform(aug, spec, train=True)
    landmarks = random_landmarks(1)
    index = 36  # right-eye outer corner; a mirror maps it to 45
    for seed in range(4):
        transform.reseed(seed)
        image = dot_image(landmarks[index])
        out = transform(image, mask=image[..., 0].copy(), landmarks=landmarks)
        expected = out["landmarks"][IBUG68_MIRROR[index] if mirrored else index].numpy()
        image_centre = dot_centre(out["image"] * torch.tensor(CLIP_STD).view(3, 1, 1))
        assert np.abs(image_centre - expected).max() < 1.5, (seed, image_centre, expected)
        assert np.abs(dot_centre(out["mask"]) - expected).max() < 1.5


def test_hflip_mirrors_ibug68_indices():
    spec = InputSpec(224, resize_mode="resize")
    landmarks = symmetric_landmarks(seed=3)  # point MIRROR[i] is the mirror image of point i
    image = frame_image(0, 0)
    plain = build_transform({}, spec, train=True)(image, landmarks=landmarks)["landmarks"]
    flipped = build_transform({"hflip": 1.0}, spec, train=True)(image, landmarks=landmarks)["landmarks"]
    # Mirroring a symmetric face with correct index swaps reproduces it (0.125 px: resize convention).
    assert torch.allclose(flipped, plain, atol=0.2)
    left_eye, right_eye = flipped[36:42, 0].mean(), flipped[42:48, 0].mean()
    assert left_eye < right_eye  # index 36-41 stays the eye on the image's left side


def test_hflip_of_other_landmark_counts_flips_coordinates_only():
    spec = InputSpec(256, resize_mode="resize")
    landmarks = random_landmarks(2, k=81)
    out = build_transform({"hflip": 1.0}, spec, train=True)(frame_image(0, 0), landmarks=landmarks)
    assert torch.allclose(out["landmarks"][:, 0], torch.from_numpy(255 - landmarks[:, 0]))
    assert torch.allclose(out["landmarks"][:, 1], torch.from_numpy(landmarks[:, 1]))


def test_clip_frames_share_one_augmentation():
    transform = build_transform({**LN_CLIP_AUG, "hflip": 1.0}, SPECS[0], train=True)
    reference = build_transform({}, SPECS[0], train=False)
    image, landmarks = frame_image(5, 3), random_landmarks(4)
    mask = np.zeros((256, 256), np.uint8)
    mask[100:150, 90:170] = 255
    for seed in range(3):
        transform.reseed(seed)
        out = transform([image] * 4, mask=[mask] * 4, landmarks=[landmarks] * 4)
        assert out["image"].shape == (4, 3, 224, 224) and out["mask"].shape == (4, 1, 224, 224)
        assert out["landmarks"].shape == (4, 68, 2)
        for t in range(1, 4):
            assert torch.equal(out["image"][t], out["image"][0])
            assert torch.equal(out["mask"][t], out["mask"][0])
            assert torch.equal(out["landmarks"][t], out["landmarks"][0])
        assert not torch.equal(out["image"][0], reference(image)["image"])  # something was applied


def test_test_mode_applies_no_augmentation_and_normalises():
    spec = InputSpec(224, resize_mode="resize")
    test = build_transform(LN_CLIP_AUG, spec, train=False)
    image = np.full((256, 256, 3), 128, np.uint8)
    first, second = test(image), test(image)
    assert torch.equal(first["image"], second["image"])
    expected = (128 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(first["image"][:, 100, 100], expected, atol=1e-5)
    assert first["mask"] is None and first["landmarks"] is None


@pytest.mark.parametrize("aug", [LN_CLIP_AUG, DEEPFAKEBENCH_AUG], ids=["ln_clip", "deepfakebench"])
def test_paper_augmentation_sets_build_and_are_reproducible(aug):
    image, landmarks = frame_image(1, 1), random_landmarks(5)
    a, b = build_transform(aug, SPECS[0], True), build_transform(aug, SPECS[0], True)
    a.reseed(11), b.reseed(11)
    out_a, out_b = a(image, landmarks=landmarks), b(image, landmarks=landmarks)
    assert torch.equal(out_a["image"], out_b["image"]) and torch.equal(out_a["landmarks"], out_b["landmarks"])
    always = build_transform({key: ({**value, "p": 1.0} if isinstance(value, dict) else 1.0)
                              for key, value in aug.items()}, SPECS[0], True)
    for seed in range(3):
        always.reseed(seed)
        assert torch.isfinite(always(image)["image"]).all()


def test_mask_is_scaled_to_unit_range():
    mask = np.zeros((256, 256), np.uint8)
    mask[:, :128] = 255
    out = build_transform({}, SPECS[1], train=False)(frame_image(0, 0), mask=mask)
    assert out["mask"].shape == (1, 224, 224)
    assert set(torch.unique(out["mask"]).tolist()) == {0.0, 1.0}


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"Unknown augmentation key\(s\) \['flip'\].*hflip"):
        build_transform({"flip": 0.5}, SPECS[0], train=True)
    with pytest.raises(ValueError, match=r"augment\.jpeg\.p must lie in \[0, 1\]"):
        build_transform({"jpeg": {"p": 2}}, SPECS[0], train=True)
    with pytest.raises(ValueError, match="resize_mode"):
        build_transform({}, InputSpec(224, resize_mode="squash"), train=False)
    with pytest.raises(ValueError, match="mask shape"):
        build_transform({}, SPECS[0], train=False)(frame_image(0, 0), mask=np.zeros((10, 10), np.uint8))
