"""The preprocessing pipeline on real faces: tracking, landmarks, alignment, failures,
resuming after a kill, sharding and worker crashes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing import faces
from preprocessing import preprocess as pp
from tests.preprocessing.video_fixtures import (ASTRONAUT_FACE, cut_file, film_photo, project_box, write_avi,
                                                write_faceless_video)

REPO = Path(__file__).resolve().parents[2]


def read_all_frames(path):
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_astronaut_face_is_tracked_past_the_false_detection_on_the_suit(tmp_path):
    size, count = (512, 512), 8
    photo, poses = film_photo(tmp_path / "videos" / "astronaut.mp4", "astronaut", count, size)
    # upsample 1 is where dlib also fires on the suit; a detect width below the frame
    # width exercises mapping the boxes back to full resolution.
    options = pp.PreprocessOptions(num_frames=count, detect_width=400, upsample_levels=(1,))
    [job] = pp.discover_jobs(tmp_path / "videos", tmp_path / "out")
    [result] = pp.run_jobs([job], options, workers=0, progress=False)
    assert result["status"] == "done" and result["frames_kept"] == count
    manifest = json.loads(job.manifest.read_text())

    detector, predictor = faces.FaceDetector(10_000, (1,)), faces.LandmarkPredictor()
    template = faces.crop_template()
    frames = read_all_frames(tmp_path / "videos" / "astronaut.mp4")
    with_false_detection, on_true_face = 0, 0
    for key, info in manifest["per_frame"].items():
        index = int(key)
        true_face = faces.Box(*project_box(ASTRONAUT_FACE, photo, size, poses[index]))
        with_false_detection += any(faces.Box(*d[:4]).iou(true_face) < 0.1 for d in info["detections"])
        on_true_face += faces.Box(*info["chosen"]).iou(true_face) > 0.5

        # landmarks, mapped back to the frame, match dlib run directly on the full-resolution frame
        rgb = cv2.cvtColor(frames[index], cv2.COLOR_BGR2RGB)
        direct_box = max(detector.detect(rgb), key=true_face.iou)
        direct = predictor.predict(rgb, direct_box)
        crop_landmarks = np.load(tmp_path / "out" / "landmarks" / "astronaut" / f"{index:03d}.npy")
        assert crop_landmarks.dtype == np.float32 and crop_landmarks.shape == (68, 2)
        inverse = cv2.invertAffineTransform(np.array(info["matrix"]))
        on_frame = faces.transform_points(crop_landmarks.astype(np.float64), inverse)
        assert np.abs(on_frame - direct).max() <= 3.0

        # eye centres land on the template (the 5-point fit spreads the residual of the smile)
        eyes = faces.alignment_points(crop_landmarks.astype(np.float64))[:2]
        assert np.linalg.norm(eyes - template[:2], axis=1).max() < 8.0
        crop = cv2.imread(str(tmp_path / "out" / "frames" / "astronaut" / f"{index:03d}.png"))
        assert crop.shape == (256, 256, 3)
    assert with_false_detection >= 1, "the test video no longer provokes the false detection it is about"
    assert on_true_face >= 0.95 * count


def test_bad_videos_are_reported_with_a_reason_and_the_run_continues(tmp_path):
    videos = tmp_path / "videos"
    film_photo(videos / "good.mp4", "grace_hopper", 6, (320, 240))
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "corrupt.mp4").write_bytes(os.urandom(4000))
    write_avi(videos / "truncated.avi", 40)
    cut_file(videos / "truncated.avi", 0.5)
    write_faceless_video(videos / "noface.mp4")
    report = pp.main(["--input", str(videos), "--output", str(tmp_path / "out"), "--num_frames", "4",
                      "--workers", "2", "--no_progress"])
    reasons = {Path(item["video"]).stem: item["reason"] for item in report["failed"]}
    assert reasons == {"empty": "zero-byte", "corrupt": "unreadable", "truncated": "truncated",
                       "noface": "no face"}
    assert report["videos_done"] == 1 and report["frames_without_face"] == 4
    assert len(list((tmp_path / "out" / "frames" / "good").glob("*.png"))) == 4
    saved = json.loads((tmp_path / "out" / "preprocess_report.json").read_text())
    assert saved["failed_by_reason"] == {"zero-byte": 1, "unreadable": 1, "truncated": 1, "no face": 1}
    noface = json.loads((tmp_path / "out" / "manifests" / "noface.json").read_text())
    assert noface["status"] == "failed" and len(noface["dropped"]) == 4


def output_files(root):
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for kind in pp.OUTPUT_KINDS for path in sorted((root / kind).rglob("*")) if path.is_file()}


def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    videos = tmp_path / "videos"
    for number in range(5):
        film_photo(videos / f"clip{number}.mp4", "grace_hopper", 8, (384, 288), seed=number)
    arguments = ["--input", str(videos), "--num_frames", "6", "--no_progress", "--hull_masks"]

    pp.main(arguments + ["--output", str(tmp_path / "reference"), "--workers", "0"])

    resumed = tmp_path / "resumed"
    process = subprocess.Popen([sys.executable, "-m", "preprocessing.preprocess", *arguments,
                                "--output", str(resumed), "--workers", "1"],
                               cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((resumed / "manifests").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the run and its worker, mid-way
    process.wait()
    finished = len(list((resumed / "manifests").glob("*.json")))
    assert 1 <= finished < 5, "the kill did not land mid-run"

    report = pp.main(arguments + ["--output", str(resumed), "--workers", "0"])
    assert report["videos_skipped_already_done"] == finished
    assert report["videos_done"] == 5 - finished and report["videos_failed"] == 0
    assert output_files(resumed) == output_files(tmp_path / "reference")
    assert not (resumed / pp.PARTIAL_DIR).exists()  # the killed run's temporary folder is gone


def test_shards_cover_every_video_exactly_once(tmp_path):
    for relative in ["a/videos/3.mp4", "a/videos/1.mp4", "b/2.avi", "b/c/videos/9.mp4", "4.mp4", "5.mov",
                     "a/videos/7.mp4"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    jobs = pp.discover_jobs(tmp_path, tmp_path)
    shards = [pp.select_shard(jobs, index, 3) for index in range(3)]
    names = [job.relative for shard in shards for job in shard]
    assert sorted(names) == sorted(job.relative for job in jobs) and len(names) == len(set(names)) == 7
    assert shards == [pp.select_shard(list(reversed(jobs)), index, 3) for index in range(3)]  # deterministic
    assert {job.output_dir for job in jobs if job.relative.startswith("a/")} == {str(tmp_path / "a")}
    with pytest.raises(ValueError, match="0 <= i < n"):
        pp.parse_shard("3/3")


def crash_on_bad_video(job):
    """Runs in a worker process: dies hard (as on a segfault) for one video."""
    if job.name == "bad":
        os._exit(9)
    return {"name": job.name, "video": job.relative, "status": "done", "reason": None, "frames_kept": 1}


def test_a_dying_worker_fails_its_video_only(tmp_path):
    jobs = [pp.VideoJob(str(tmp_path / f"{name}.mp4"), f"{name}.mp4", str(tmp_path), name)
            for name in ("a", "bad", "c", "d", "e")]
    results = pp.run_jobs(jobs, pp.PreprocessOptions(), workers=2, runner=crash_on_bad_video, progress=False)
    status = {result["name"]: (result["status"], result["reason"]) for result in results}
    assert status == {"a": ("done", None), "bad": ("failed", "worker died"), "c": ("done", None),
                      "d": ("done", None), "e": ("done", None)}
