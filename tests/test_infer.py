"""training/infer.py: raw videos and images in, the same scores as preprocess -> test out."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.preprocessing.video_fixtures import film_photo, write_faceless_video

TINY_STAN = ["model.name=clip_stan", "model.frames=4", "model.branch_depth=1"]


@pytest.fixture(scope="module")
def astronaut_video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("infer_videos")
    film_photo(folder / "astronaut.mp4", "astronaut", num_frames=10, size=(320, 320))
    return folder / "astronaut.mp4"


def save_random_detector(tmp_path: Path, tiny_config: Path, overrides) -> Path:
    from training.config import load_config
    from training.engine.checkpoint import save_checkpoint
    from training.models import build_detector

    torch.manual_seed(0)
    detector = build_detector(load_config(tiny_config, overrides))
    for parameter in detector.parameters():  # non-zero temporal weights, so clip order matters too
        torch.nn.init.normal_(parameter, std=0.2)
    path = tmp_path / "weights.pt"
    save_checkpoint(path, {"model": detector.checkpoint_state()})
    return path


def read_rows(path: Path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def scores_through_preprocessing(video: Path, tiny_config: Path, overrides, weights: Path, work: Path):
    """The long way: preprocess.py writes PNG crops, the test data layer reads them back."""
    from preprocessing import preprocess as pp
    from training.config import load_config
    from training.data.datasets import ClipDataset, FrameDataset
    from training.data.records import VideoRecord
    from training.data.storage import RgbStorage
    from training.data.transforms import build_transform
    from training.engine.checkpoint import load_detector_weights
    from training.models import build_detector

    shutil.copy(video, work / video.name)
    [job] = pp.discover_jobs(work, work / "out")
    [result] = pp.run_jobs([job], pp.PreprocessOptions(num_frames=10), workers=0, progress=False)
    assert result["status"] == "done"
    frames = tuple(sorted(f"frames/{video.stem}/{p.name}" for p in (work / "out" / "frames" / video.stem).iterdir()))
    record = VideoRecord("Raw", "real", 0, "test", video.stem, frames)
    config = load_config(tiny_config, overrides)
    detector = build_detector(config).eval()
    load_detector_weights(detector, weights)
    transform = build_transform(None, detector.input_spec, train=False)
    storage = RgbStorage(work / "out")
    clip_len = detector.input_spec.frames_per_sample
    if clip_len == 1:
        dataset = FrameDataset([record], storage, transform, frame_num=config["data"]["frame_num"]["test"])
    else:
        dataset = ClipDataset([record], storage, transform, clip_len=clip_len, train=False,
                              clips_per_video=config["data"]["clips_per_video"]["test"])
    with torch.no_grad():
        return [(int(s["frame_index"]), float(detector({"image": s["image"][None]})["prob"][0])) for s in dataset]


@pytest.mark.parametrize("overrides", [[], TINY_STAN], ids=["frame_detector", "clip_detector"])
def test_inference_equals_preprocess_then_test(astronaut_video, tiny_config, tmp_path, capsys, overrides):
    from training.infer import main

    weights = save_random_detector(tmp_path, tiny_config, overrides)
    (tmp_path / "long").mkdir()
    expected = scores_through_preprocessing(astronaut_video, tiny_config, overrides, weights, tmp_path / "long")

    out = tmp_path / "infer"
    assert main([str(astronaut_video), "--detector_path", str(tiny_config), "--weights_path", str(weights),
                 "--num_frames", "10", "--out", str(out), "--no_progress"]
                + (["--opts", *overrides] if overrides else [])) == 0
    rows = read_rows(out / "frames.csv")
    assert [int(r["frame_index"]) for r in rows] == [index for index, _ in expected]
    np.testing.assert_allclose([float(r["prob"]) for r in rows], [p for _, p in expected], atol=1e-5)
    assert len({round(p, 6) for _, p in expected}) > 1 or len(expected) == 1  # distinct inputs, distinct scores

    [summary] = read_rows(out / "inputs.csv")
    assert summary["status"] == "done" and int(summary["n_faces"]) == 10
    assert float(summary["prob"]) == pytest.approx(np.mean([p for _, p in expected]), abs=1e-5)
    printed = capsys.readouterr().out.strip().splitlines()
    unit = "frames" if not overrides else "clips"
    assert printed[0].startswith(f"P(fake)={float(summary['prob']):.4f}") and unit in printed[0]
    assert printed[-1] == str(out / "inputs.csv")


def test_a_folder_of_mixed_inputs_scores_what_it_can_and_reports_the_rest(astronaut_video, tiny_config, tmp_path,
                                                                          capsys):
    import matplotlib.cbook

    from training.infer import main

    weights = save_random_detector(tmp_path, tiny_config, [])
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(astronaut_video, folder / "a_astronaut.mp4")
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder / "b_hopper.jpg")
    write_faceless_video(folder / "c_faceless.mp4")
    (folder / "d_empty.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not media: ignored inside a folder")

    out = tmp_path / "out"
    code = main([str(folder), "--detector_path", str(tiny_config), "--weights_path", str(weights),
                 "--out", str(out), "--no_progress"])
    assert code == 1  # some inputs could not be scored; the others were
    summary = {Path(r["input"]).name: r for r in read_rows(out / "inputs.csv")}
    assert list(summary) == ["a_astronaut.mp4", "b_hopper.jpg", "c_faceless.mp4", "d_empty.mp4"]
    assert summary["a_astronaut.mp4"]["status"] == "done"
    assert summary["b_hopper.jpg"]["status"] == "done" and summary["b_hopper.jpg"]["n_scored"] == "1"
    assert summary["c_faceless.mp4"]["status"] == "failed" and summary["c_faceless.mp4"]["reason"].startswith("no face")
    assert summary["d_empty.mp4"]["status"] == "failed" and summary["d_empty.mp4"]["reason"].startswith("zero-byte")
    frames = read_rows(out / "frames.csv")
    assert {Path(r["input"]).name for r in frames} == {"a_astronaut.mp4", "b_hopper.jpg"}
    printed = capsys.readouterr().out
    assert "FAILED (no face" in printed and "c_faceless.mp4" in printed


def test_bad_paths_are_named(tiny_config, tmp_path):
    import matplotlib.cbook

    from training.infer import main

    weights = save_random_detector(tmp_path, tiny_config, [])
    common = ["--detector_path", str(tiny_config), "--weights_path", str(weights), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match="missing.mp4: no such file"):
        main([str(tmp_path / "missing.mp4"), *common])
    (tmp_path / "table.csv").write_text("x")
    with pytest.raises(SystemExit, match="table.csv: not a video or image"):
        main([str(tmp_path / "table.csv"), *common])
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    from training.engine.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="No config"):  # a bare checkpoint file has no run directory around it
        main([str(photo), "--weights_path", str(weights)])
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are known to be good
