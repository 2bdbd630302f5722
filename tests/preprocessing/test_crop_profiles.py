"""Crop-geometry profiles (ours | deepfakebench | gend): each profile's transform against a
hand-computed one, its crops against independent re-implementations of the reference code,
and the profile in the manifest (resuming with another profile is refused)."""
import json
import warnings

import cv2
import numpy as np
import pytest

from preprocessing import faces
from preprocessing import preprocess as pp

# The templates as the reference files write them, typed in again here (not imported from faces.py).
# DeepfakeBench preprocessing/preprocess.py img_align_crop: the 96-wide ArcFace points, x + 8 for 112.
DFB_DST_96 = [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]]
# GenD detector.py align_face: in units of the crop side.
GEND_DST = [[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]]
SIZE, SCALE = 256, 1.3


def hand_template(profile: str) -> np.ndarray:
    """The target points for a 256 crop with margin 1.3, step by step as the references do."""
    if profile == "gend":
        dst = np.array(GEND_DST) * SIZE
    else:
        dst = (np.array(DFB_DST_96) + [8.0, 0.0]) * SIZE / 112
    margin = SIZE * (SCALE - 1) / 2
    return (dst + margin) * SIZE / (SIZE + 2 * margin)


def source_indices(profile: str):
    """Which landmarks each profile reads for its 5 points (eye centres are 6-point means)."""
    if profile == "deepfakebench":
        return [[37], [44], [30], [49], [55]]
    return [list(range(36, 42)), list(range(42, 48)), [30], [48], [54]]


def similarity(angle_deg: float, scale: float, shift) -> np.ndarray:
    angle = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                     [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def least_squares_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Closed-form least-squares similarity: target ~ a*x - b*y + tx, b*x + a*y + ty."""
    x, y = source[:, 0], source[:, 1]
    rows = np.concatenate([np.stack([x, -y, np.ones_like(x), np.zeros_like(x)], 1),
                           np.stack([y, x, np.zeros_like(x), np.ones_like(x)], 1)])
    a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def landmarks_with_points(profile: str, points: np.ndarray, seed: int = 0) -> np.ndarray:
    """68 random landmarks whose ``profile`` source points are exactly ``points``."""
    landmarks = np.random.default_rng(seed).uniform(100, 400, (68, 2))
    for indices, point in zip(source_indices(profile), points):
        landmarks[indices] = point
    return landmarks


@pytest.mark.parametrize("profile", list(faces.CROP_PROFILES))
def test_template_is_the_reference_arithmetic(profile):
    np.testing.assert_allclose(faces.crop_profile(profile).target(SIZE, SCALE), hand_template(profile), atol=1e-9)


@pytest.mark.parametrize("profile", list(faces.CROP_PROFILES))
def test_transform_maps_a_similar_face_onto_the_template_exactly(profile):
    # A face that is the template moved by a known similarity: the crop transform is its inverse.
    face_pose = similarity(-17, 2.3, (140, 95))
    template = hand_template(profile)
    landmarks = landmarks_with_points(profile, apply(face_pose, template))
    expected = cv2.invertAffineTransform(face_pose)
    matrix = faces.crop_profile(profile).matrix(landmarks, SIZE, SCALE)
    np.testing.assert_allclose(matrix, expected, atol=1e-4)


@pytest.mark.parametrize("profile", ["ours", "deepfakebench"])
def test_least_squares_profiles_fit_noisy_points_like_the_closed_form(profile):
    rng = np.random.default_rng(3)
    template = hand_template(profile)
    source = apply(similarity(8, 1.6, (60, 40)), template) + rng.normal(0, 4, (5, 2))
    landmarks = landmarks_with_points(profile, source, seed=1)
    matrix = faces.crop_profile(profile).matrix(landmarks, SIZE, SCALE)
    np.testing.assert_allclose(matrix, least_squares_similarity(source, template), atol=1e-4)


def test_profiles_read_different_landmarks():
    landmarks = np.random.default_rng(5).uniform(100, 400, (68, 2))
    ours = faces.crop_profile("ours").matrix(landmarks, SIZE, SCALE)
    assert not np.allclose(ours, faces.crop_profile("deepfakebench").matrix(landmarks, SIZE, SCALE), atol=1e-3)
    assert not np.allclose(ours, faces.crop_profile("gend").matrix(landmarks, SIZE, SCALE), atol=1e-3)


# --------------------------------------------------------------------------- against the references


@pytest.fixture(scope="module")
def astronaut_landmarks():
    from skimage.data import astronaut

    photo = astronaut()
    # DeepfakeBench: HOG detector with upsample 1 on the full-resolution RGB frame, largest face.
    box = max(faces.FaceDetector(detect_width=10_000, upsample_levels=(1,)).detect(photo), key=lambda b: b.area)
    return photo, faces.LandmarkPredictor().predict(photo, box)


def deepfakebench_crop(rgb: np.ndarray, landmarks: np.ndarray, res: int = 256, scale: float = 1.3) -> np.ndarray:
    """DeepfakeBench's get_keypts + img_align_crop arithmetic, re-written from reading it."""
    from skimage import transform as trans

    src = np.array([landmarks[i] for i in (37, 44, 30, 49, 55)]).astype(np.float32)
    dst = np.array(DFB_DST_96, dtype=np.float32)
    dst[:, 0] += 8.0
    dst[:, 0] = dst[:, 0] * res / 112
    dst[:, 1] = dst[:, 1] * res / 112
    x_margin = y_margin = res * (scale - 1) / 2.0
    dst[:, 0] += x_margin
    dst[:, 1] += y_margin
    dst[:, 0] *= res / (res + 2 * x_margin)
    dst[:, 1] *= res / (res + 2 * y_margin)
    tform = trans.SimilarityTransform()
    with warnings.catch_warnings():  # its call; deprecated in skimage 0.26, same result
        warnings.simplefilter("ignore", FutureWarning)
        tform.estimate(src, dst)
    crop = cv2.warpAffine(rgb, tform.params[0:2, :], (res, res))
    return cv2.resize(crop, (res, res))


def gend_crop(image: np.ndarray, five_points: np.ndarray, size: int = 256, scale: float = 1.3) -> np.ndarray:
    """GenD's align_face with a fixed target size, re-written from reading detector.py."""
    dst = np.array(GEND_DST, dtype=np.float32) * size
    margin = size * (scale - 1) / 2.0
    dst = (dst + margin) * (size / (size + 2 * margin))
    matrix = cv2.estimateAffinePartial2D(five_points.astype(np.float32), dst.astype(np.float32),
                                         method=cv2.LMEDS)[0]
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)


def mean_grey_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_deepfakebench_profile_equals_deepfakebench_crop(astronaut_landmarks):
    photo, landmarks = astronaut_landmarks
    ours = faces.align_face(photo, landmarks, profile="deepfakebench").image
    reference = deepfakebench_crop(photo, landmarks.astype(int))  # dlib parts are integer pixels
    assert ours.shape == reference.shape == (256, 256, 3)
    assert mean_grey_difference(ours, reference) <= 1.0
    # ... while today's default geometry differs from it (docs/PREPROCESSING.md gives the numbers).
    default = faces.align_face(photo, landmarks).image
    assert mean_grey_difference(default, reference) > 3.0


def test_gend_profile_equals_gend_crop_from_the_same_five_points(astronaut_landmarks):
    photo, landmarks = astronaut_landmarks
    five = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])
    ours = faces.align_face(photo, landmarks, profile="gend").image
    assert mean_grey_difference(ours, gend_crop(photo, five)) <= 1.0


# --------------------------------------------------------------------------- manifest and resume


def write_manifest(job: pp.VideoJob, settings) -> None:
    job.manifest.parent.mkdir(parents=True, exist_ok=True)
    job.manifest.write_text(json.dumps({"status": "done", "settings": settings, "files": {}}))


def test_profile_is_in_the_settings_and_another_profile_is_refused(tmp_path):
    job = pp.VideoJob(str(tmp_path / "v.mp4"), "v.mp4", str(tmp_path / "out"), "v")
    gend = pp.PreprocessOptions(crop_profile="gend")
    assert gend.fingerprint()["crop_profile"] == "gend"
    write_manifest(job, gend.fingerprint())
    assert pp.is_complete(job, gend)
    with pytest.raises(pp.CropProfileMismatch, match=r"--crop_profile gend.*--crop_profile ours.*--output"):
        pp.is_complete(job, pp.PreprocessOptions())


def test_manifests_from_before_profiles_resume_as_ours(tmp_path):
    job = pp.VideoJob(str(tmp_path / "v.mp4"), "v.mp4", str(tmp_path / "out"), "v")
    old = pp.PreprocessOptions().fingerprint()
    del old["crop_profile"]
    write_manifest(job, old)
    assert pp.is_complete(job, pp.PreprocessOptions())
    with pytest.raises(pp.CropProfileMismatch, match="made with --crop_profile ours"):
        pp.is_complete(job, pp.PreprocessOptions(crop_profile="deepfakebench"))


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="ours, deepfakebench, gend"):
        pp.PreprocessOptions(crop_profile="arcface")
    with pytest.raises(SystemExit):
        pp.build_parser().parse_args(["--input", "x", "--crop_profile", "arcface"])


def test_preprocessing_writes_the_profile_crop_and_records_it(tmp_path):
    from tests.preprocessing.video_fixtures import film_photo

    film_photo(tmp_path / "videos" / "astronaut.mp4", "astronaut", 3, (320, 320))
    [job] = pp.discover_jobs(tmp_path / "videos", tmp_path / "out")
    options = pp.PreprocessOptions(num_frames=2, crop_profile="deepfakebench")
    [result] = pp.run_jobs([job], options, workers=0, progress=False)
    assert result["status"] == "done"
    manifest = json.loads(job.manifest.read_text())
    assert manifest["settings"]["crop_profile"] == "deepfakebench"
    for key, info in manifest["per_frame"].items():
        # the crop matrix is the deepfakebench one for the frame's landmarks (moved back from the crop)
        crop_landmarks = np.load(job.output("landmarks") / f"{int(key):03d}.npy").astype(np.float64)
        frame_landmarks = faces.transform_points(crop_landmarks, cv2.invertAffineTransform(np.array(info["matrix"])))
        expected = faces.crop_profile("deepfakebench").matrix(frame_landmarks, SIZE, SCALE)
        np.testing.assert_allclose(np.array(info["matrix"]), expected, atol=1e-3)
    assert pp.is_complete(job, options)
    with pytest.raises(pp.CropProfileMismatch):
        pp.is_complete(job, pp.PreprocessOptions(num_frames=2))
    assert pp.build_parser().parse_args(["--input", "x", "--crop_profile", "gend"]).crop_profile == "gend"
