"""training/infer.py --frames_as_video (a folder of frames is one video) and --save_crops (the crops scored)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.test_infer import astronaut_video, read_rows, save_random_detector  # noqa: F401 (fixture)


def split_into_frames(video: Path, folder: Path, pattern: str = "frame_{:04d}.png") -> int:
    folder.mkdir(parents=True)
    capture = cv2.VideoCapture(str(video))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / pattern.format(count)), frame)  # PNG: the same pixels as the decoded video
        count += 1
    capture.release()
    return count


def test_a_folder_of_frames_scores_as_the_video_and_saved_crops_score_the_same(astronaut_video, tiny_config,
                                                                              tmp_path):
    from training.config import load_config
    from training.engine.checkpoint import load_detector_weights
    from training.inference import Scorer
    from training.infer import main
    from training.models import build_detector

    weights = save_random_detector(tmp_path, tiny_config, [])
    frames = tmp_path / "astronaut_frames"
    assert split_into_frames(astronaut_video, frames) == 10
    crops = tmp_path / "crops"
    # One run for both inputs (the face models load once): the video file, and its frames as one video.
    assert main([str(astronaut_video), str(frames), "--frames_as_video", "--detector_path", str(tiny_config),
                 "--weights_path", str(weights), "--num_frames", "10", "--out", str(tmp_path / "out"),
                 "--save_crops", str(crops), "--no_progress"]) == 0

    rows = read_rows(tmp_path / "out" / "frames.csv")
    from_video = [r for r in rows if r["input"] == str(astronaut_video)]
    from_folder = [r for r in rows if r["input"] == str(frames)]
    summary = {r["input"]: r for r in read_rows(tmp_path / "out" / "inputs.csv")}[str(frames)]
    assert summary["n_sampled"] == "10" and summary["n_faces"] == "10"
    assert len(from_video) == 2  # data.frame_num.test of the tiny config
    assert [r["frame_index"] for r in from_folder] == [r["frame_index"] for r in from_video]
    np.testing.assert_allclose([float(r["prob"]) for r in from_folder], [float(r["prob"]) for r in from_video],
                               atol=1e-6)
    assert all(int(r["right"]) > int(r["left"]) >= 0 and int(r["bottom"]) > int(r["top"]) >= 0 for r in from_folder)

    # The saved crops are exactly what was scored: scoring them again gives the CSV's numbers.
    assert sorted(p.name for p in crops.iterdir()) == [astronaut_video.stem, frames.name]
    saved = sorted((crops / frames.name).iterdir())
    assert [p.name for p in saved] == [f"{int(r['frame_index']):03d}.png" for r in from_folder]
    config = load_config(tiny_config)
    detector = build_detector(config).eval()
    load_detector_weights(detector, weights)
    scorer = Scorer(config, detector, torch.device("cpu"), batch_size=4)
    images = {int(p.stem): cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in saved}
    rescored = [prob for _, prob, _ in scorer.score(images)]
    np.testing.assert_allclose(rescored, [float(r["prob"]) for r in from_folder], atol=1e-5)


def test_a_folder_of_frames_needs_a_frame_index_in_every_name(tiny_config, tmp_path):
    from training.infer import main

    weights = save_random_detector(tmp_path, tiny_config, [])
    folder = tmp_path / "frames"
    folder.mkdir()
    image = np.zeros((32, 32, 3), np.uint8)
    cv2.imwrite(str(folder / "0001.png"), image)
    cv2.imwrite(str(folder / "cover.png"), image)
    with pytest.raises(SystemExit, match="cover.png: a folder of frames needs the frame index"):
        main([str(folder), "--frames_as_video", "--detector_path", str(tiny_config), "--weights_path", str(weights)])
    (folder / "cover.png").rename(folder / "frame_1.png")
    with pytest.raises(SystemExit, match="both carry frame index 1"):
        main([str(folder), "--frames_as_video", "--detector_path", str(tiny_config), "--weights_path", str(weights)])
