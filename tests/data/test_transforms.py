import cv2
import numpy as np
import pytest
import torch

from training.data.transforms import IBUG68_MIRROR, build_transform
from training.models.input_spec import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, InputSpec
from tests.data.synthetic import frame_image, symmetric_landmarks

LN_CLIP_AUG = {"hflip": 0.5, "affine": {"degrees": 10, "translate": 0.1, "scale": [0.9, 1.1]},
               "blur": {"sigma": [0.1, 2.0]}, "color_jitter": {"brightness": 0.1, "contrast": 0.1},
               "jpeg": {"quality": [40, 100]}}
DEEPFAKEBENCH_AUG = {"hflip": 0.5, "rotate": {"p": 0.5, "degrees": 10}, "blur": {"p": 0.5, "kernel": [3, 7]},
                     "one_of": {"p": 0.5, "brightness_contrast": {"brightness": 0.1, "contrast": 0.1},
                                "fancy_pca": {}, "hue_saturation": {}},
                     "jpeg": {"p": 0.5, "quality": [40, 100]}}
SPECS = [InputSpec(224, resize_mode="resize_center_crop"), InputSpec(224, resize_mode="resize"),
         InputSpec(224, resize_mode="resize_center_crop", interpolation="pil_bicubic")]


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


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.resize_mode}-{s.interpolation}")
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


# --------------------------------------------------------------------------- reference resize


@pytest.fixture(scope="module")
def astronaut_crop():
    """A real 256 px face crop: skimage's astronaut through our detector and alignment."""
    from skimage.data import astronaut

    from preprocessing import faces

    photo = astronaut()
    box = max(faces.FaceDetector().detect(photo), key=lambda b: b.area)
    return faces.align_face(photo, faces.LandmarkPredictor().predict(photo, box)).image


def grey_levels(normalised: torch.Tensor, mean, std) -> torch.Tensor:
    return (normalised * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)) * 255


def hf_pixels(processor, image: np.ndarray) -> torch.Tensor:
    from PIL import Image

    return torch.as_tensor(np.asarray(processor(images=Image.fromarray(image), return_tensors="np")
                                      ["pixel_values"][0]))


def test_pil_bicubic_equals_hf_clip_image_processor(astronaut_crop):
    # The PIL CLIPImageProcessor is the one LN-CLIP and GenD run (transformers 4.50 / 4.56 pick the
    # slow processor a CLIP checkpoint was saved with); transformers 5 names it CLIPImageProcessorPil.
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    reference = grey_levels(hf_pixels(CLIPImageProcessorPil(), astronaut_crop), CLIP_MEAN, CLIP_STD)
    ours = build_transform(None, InputSpec(224, interpolation="pil_bicubic"), train=False)(astronaut_crop)
    assert (grey_levels(ours["image"], CLIP_MEAN, CLIP_STD) - reference).abs().max() <= 1.0
    old = build_transform(None, InputSpec(224, interpolation="cv2_cubic"), train=False)(astronaut_crop)
    assert (grey_levels(old["image"], CLIP_MEAN, CLIP_STD) - reference).abs().max() > 5  # what was fixed


def test_pil_bicubic_matches_timm_eval_transform_with_crop_pct(astronaut_crop):
    # timm's eval transform: Resize(floor(size / crop_pct)) on the PIL image, CenterCrop(size).
    import timm.data
    from PIL import Image

    spec = InputSpec(224, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="pil_bicubic", crop_pct=0.875)
    timm_transform = timm.data.create_transform(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875,
                                                crop_mode="center", mean=spec.mean, std=spec.std)
    # Non-square, shorter than the 256 resize target; an even crop margin (320 - 224), since for odd
    # margins torchvision rounds the offset and HF/albumentations floor it (face crops are square).
    upscaled = cv2.resize(astronaut_crop, (200, 250))
    reference = grey_levels(timm_transform(Image.fromarray(upscaled)), spec.mean, spec.std)
    ours = grey_levels(build_transform(None, spec, train=False)(upscaled)["image"], spec.mean, spec.std)
    assert ours.shape == reference.shape == (3, 224, 224)
    assert (ours - reference).abs().max() <= 1.0


def test_pil_bilinear_matches_hf_dinov3_processor(astronaut_crop):
    # HF's DINOv3 processor rescales to float, then resizes (torchvision bilinear, antialiased) to
    # 224 x 224 without a crop. Ours rounds the PIL result to uint8 (up to 0.5 of the difference).
    from transformers.models.dinov3_vit.image_processing_dinov3_vit import DINOv3ViTImageProcessor

    spec = InputSpec(224, IMAGENET_MEAN, IMAGENET_STD, resize_mode="resize", interpolation="pil_bilinear")
    reference = grey_levels(hf_pixels(DINOv3ViTImageProcessor(), astronaut_crop), spec.mean, spec.std)
    ours = grey_levels(build_transform(None, spec, train=False)(astronaut_crop)["image"], spec.mean, spec.std)
    difference = (ours - reference).abs()
    assert difference.max() <= 1.0 + 1e-2 and difference.mean() < 0.5


def test_augmentations_run_on_the_stored_crop_before_a_pil_resize(astronaut_crop):
    """LN-CLIP/GenD order: augment the 256 px crop, then the processor; DeepfakeBench: resize first."""
    import albumentations as A

    blur = {"blur": {"p": 1.0, "kernel": 7, "sigma": [2.0, 2.0]}}  # deterministic, size-dependent
    blur_op = A.GaussianBlur(blur_limit=(7, 7), sigma_limit=(2.0, 2.0), p=1.0)
    pil, cv2_spec = (InputSpec(224, interpolation="pil_bicubic"), InputSpec(224, interpolation="cv2_cubic"))
    resize_pil = build_transform(None, pil, train=False)
    resize_cv2 = build_transform(None, cv2_spec, train=False)

    augment_first = resize_pil(blur_op(image=astronaut_crop)["image"])["image"]
    assert torch.equal(build_transform(blur, pil, train=True)(astronaut_crop)["image"], augment_first)
    resized = np.ascontiguousarray(cv2.resize(astronaut_crop, (224, 224), interpolation=cv2.INTER_CUBIC))
    resize_first = build_transform(None, InputSpec(224, resize_mode="resize"), train=False)(
        blur_op(image=resized)["image"])["image"]
    assert torch.equal(build_transform(blur, cv2_spec, train=True)(astronaut_crop)["image"], resize_first)
    assert not torch.equal(augment_first, resize_first)
    # the switch: either order for either resize
    old_order = build_transform({**blur, "order": "resize_first"}, pil, train=True)(astronaut_crop)["image"]
    assert not torch.equal(old_order, augment_first)
    assert torch.equal(build_transform({**blur, "order": "augment_first"}, cv2_spec, train=True)(astronaut_crop)
                       ["image"], resize_cv2(blur_op(image=astronaut_crop)["image"])["image"])
    with pytest.raises(ValueError, match="augment.order 'late' is not one of"):
        build_transform({"order": "late"}, pil, train=True)
