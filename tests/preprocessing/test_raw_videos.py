"""Raw demo videos -> preprocess -> rearrange -> training catalog, end to end."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing import preprocess, rearrange
from preprocessing.demo import raw_videos
from preprocessing.leakage import LeakageError
from training.data.catalog import build_records, load_label_dict

REPO = Path(__file__).resolve().parents[2]


def test_raw_demo_runs_through_preprocess_and_rearrange(tmp_path):
    root = tmp_path / "DemoRaw"
    metadata = raw_videos.main(["--out", str(root), "--seed", "0", "--num_frames", "6", "--videos", "1", "1", "1"])
    assert len(metadata["videos"]) == 6
    assert sorted(p.name for p in (root / "fake" / "masks" / "videos").iterdir()) == \
        ["fake_000.mp4", "fake_001.mp4", "fake_002.mp4"]
    capture = cv2.VideoCapture(str(root / "real" / "videos" / "real_000.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 512

    report = preprocess.main(["--input", str(root), "--num_frames", "4", "--workers", "0", "--no_progress"])
    assert report["videos_done"] == 6 and report["frames_without_face"] == 0
    assert json.loads((root / "fake" / "manifests" / "fake_000.json").read_text())["mask_video"] == "fake_000.mp4"

    with pytest.raises(LeakageError, match="share 1 identity"):  # two photos, each in every split
        rearrange.main(["--dataset", "DemoRaw", "--source_dir", str(root), "--data_root", str(tmp_path)])
    assert not (tmp_path / "json" / "DemoRaw.json").exists()  # refused before anything is written
    rearrange.main(["--dataset", "DemoRaw", "--source_dir", str(root), "--data_root", str(tmp_path),
                    "--allow_overlap", "identity"])
    labels = load_label_dict(REPO / "configs" / "_base_" / "datasets.yaml")
    for split in ("train", "val", "test"):
        records = build_records("DemoRaw", split, data_root=tmp_path, label_dict=labels)
        assert sorted(r.label for r in records) == [0, 1]
        for record in records:
            assert len(record.frames) == 4 and record.landmarks and record.identity in raw_videos.PHOTOS
            if record.label == 1:  # the swapped region, from the mask video
                mask = cv2.imread(str(tmp_path / record.masks[0]), cv2.IMREAD_GRAYSCALE)
                assert set(np.unique(mask)) <= {0, 255} and 0.05 < (mask > 0).mean() < 0.6
                assert mask[128, 128] == 255  # the face centre of the aligned crop is manipulated
            else:
                assert record.masks is None
