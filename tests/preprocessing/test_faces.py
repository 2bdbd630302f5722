"""Tracking, alignment geometry and landmark-model lookup (no video decoding)."""
import importlib.util

import numpy as np
import pytest

from preprocessing import faces
from preprocessing.faces import Box


def test_crop_template_is_deepfakebench_geometry():
    # DeepfakeBench img_align_crop: dst*size/112, + margin, * size/(size + 2*margin), margin = size*0.15
    size, margin = 256, 256 * 0.3 / 2
    expected = (faces.ARCFACE_TEMPLATE_112 * size / 112 + margin) * size / (size + 2 * margin)
    np.testing.assert_allclose(faces.crop_template(256, 1.3), expected, atol=1e-9)


def test_alignment_points_use_eye_centres_and_mouth_corners():
    landmarks = np.arange(136, dtype=np.float64).reshape(68, 2)
    points = faces.alignment_points(landmarks)
    np.testing.assert_allclose(points[0], landmarks[36:42].mean(axis=0))
    np.testing.assert_allclose(points[1], landmarks[42:48].mean(axis=0))
    np.testing.assert_allclose(points[2:], landmarks[[30, 48, 54]])


def test_alignment_maps_template_points_exactly_and_moves_landmarks_along():
    template = faces.crop_template()
    # a face whose alignment points are the template rotated, scaled and shifted
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = np.random.default_rng(0).uniform(0, 256, (68, 2))
    source = template @ rotation.T * 1.7 + [40, 25]
    landmarks[36:42], landmarks[42:48] = source[0], source[1]
    landmarks[[30, 48, 54]] = source[2:]
    aligned = faces.align_face(np.zeros((600, 600, 3), np.uint8), landmarks)
    assert aligned.image.shape == (256, 256, 3) and aligned.landmarks.dtype == np.float32
    np.testing.assert_allclose(faces.alignment_points(aligned.landmarks.astype(np.float64)), template, atol=1e-3)


def test_track_prefers_the_consistent_face_over_a_larger_one_frame_false_positive():
    face = [Box(100 + 2 * i, 50, 180 + 2 * i, 130) for i in range(6)]
    suit = Box(90, 300, 200, 410)  # larger, but only in frame 2
    detections = [[face[0]], [face[1]], [suit, face[2]], [face[3]], [], [face[5]]]
    tracked = faces.track_subject(detections, max_fallback_frames=1)
    assert [t.box for t in tracked] == [face[0], face[1], face[2], face[3], face[3], face[5]]
    assert [t.source for t in tracked] == ["detected"] * 4 + ["fallback", "detected"]


def test_fallback_is_limited_then_frames_have_no_face():
    box = Box(0, 0, 100, 100)
    tracked = faces.track_subject([[box], [], [], [], [box]], max_fallback_frames=2)
    assert [t.source for t in tracked] == ["detected", "fallback", "fallback", "none", "detected"]
    assert faces.track_subject([[], []])[0].source == "none"


def test_mask_chooses_the_manipulated_face():
    big, small = Box(0, 0, 120, 120), Box(200, 0, 260, 60)
    mask = np.zeros((300, 300), np.uint8)
    mask[10:50, 210:250] = 255  # only the small face is manipulated
    tracked = faces.track_subject([[big, small], [big, small]], masks=[mask, None])
    assert all(t.box == small for t in tracked)
    assert all(t.box == big for t in faces.track_subject([[big, small], [big, small]]))


def test_default_landmark_model_is_found_without_importing_the_package():
    path = faces.default_landmark_model()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.is_file()


def test_missing_landmark_model_names_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="face_recognition_models.*--landmark_model"):
        faces.default_landmark_model()
