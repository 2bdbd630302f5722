"""DeepfakeBench's rearranged JSON and LMDB, as its own tools write them, read unchanged
(tests/data/deepfakebench_layout.py makes them)."""
from __future__ import annotations

import numpy as np
import pytest

from preprocessing import to_lmdb
from training.data.catalog import CatalogError, build_records, find_dataset_json, referenced_paths
from training.data.catalog import load_dataset_json
from training.data.datasets import FrameDataset
from training.data.storage import (LmdbStorage, RgbStorage, UnreadableFileError, build_storage,
                                   deepfakebench_lmdb_keys)
from tests.data import deepfakebench_layout as layout

LABELS = {"FF-real": 0, "FF-DF": 1, "CelebDFv2_real": 0, "CelebDFv2_fake": 1}


def make_checkout(root, *, windows=True, lmdb_windows=True, json_root=""):
    ff, celeb = layout.faceforensics_videos(), layout.celebdf_videos()
    layout.write_checkout(root, "FaceForensics++", "FaceForensics++", ff, windows=windows, json_root=json_root)
    layout.write_checkout(root, "Celeb-DF-v2", "Celeb-DF-v2", celeb, windows=windows, json_root=json_root)
    for folder in ("FaceForensics++", "Celeb-DF-v2"):
        layout.write_lmdb(root, folder, windows=lmdb_windows)
    return {video.name: video for video in ff + celeb}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = tmp_path_factory.mktemp("DeepfakeBench")
    return root, make_checkout(root)


def test_generated_files_have_deepfakebench_names(checkout):
    root, _ = checkout
    text = (root / "preprocessing/dataset_json/FaceForensics++.json").read_text()
    assert "FaceForensics++\\\\original_sequences\\\\youtube\\\\c23\\\\frames\\\\000\\\\" in text  # JSON-escaped \
    keys = layout.lmdb_keys(root / "datasets/lmdb/FaceForensics++_lmdb")
    assert "FaceForensics++\\manipulated_sequences\\Deepfakes\\c23\\frames\\000_001\\010.png" in keys
    assert "FaceForensics++\\manipulated_sequences\\Deepfakes\\c23\\masks\\000_001\\010.png" in keys
    assert "FaceForensics++\\original_sequences\\youtube\\c23\\landmarks\\000\\020.npy" in keys
    assert (root / "preprocessing/dataset_json/FF-DF.json").is_file()


def test_json_found_where_deepfakebench_writes_it_or_in_json_dir(checkout, tmp_path):
    root, _ = checkout
    assert find_dataset_json(root, "Celeb-DF-v2") == root / "preprocessing/dataset_json/Celeb-DF-v2.json"
    json_dir = root / "preprocessing/dataset_json"
    assert find_dataset_json(tmp_path, "FF-DF", json_dir=json_dir) == json_dir / "FF-DF.json"
    with pytest.raises(CatalogError) as error:
        find_dataset_json(tmp_path, "Nope")
    message = str(error.value)
    assert str(tmp_path / "json" / "Nope.json") in message
    assert str(tmp_path / "preprocessing" / "dataset_json" / "Nope.json") in message and "data.json_dir" in message
    with pytest.raises(CatalogError, match=f"Looked for: {tmp_path / 'elsewhere' / 'Nope.json'}"):
        find_dataset_json(root, "Nope", json_dir=tmp_path / "elsewhere")


def test_records_from_deepfakebench_json(checkout):
    root, videos = checkout
    train = {r.key: r for r in build_records("FaceForensics++", "train", data_root=root, label_dict=LABELS)}
    assert set(train) == {"FaceForensics++/FF-real/000", "FaceForensics++/FF-real/001",
                          "FaceForensics++/FF-DF/000_001"}
    fake = train["FaceForensics++/FF-DF/000_001"]
    assert fake.label == 1 and fake.compression == "c23"
    assert [p.rsplit("\\", 1)[1] for p in fake.frames] == ["000.png", "010.png", "020.png"]  # sorted by index
    assert [p.rsplit("\\", 1)[1] for p in fake.masks] == ["000.png", "010.png", "020.png"]
    per_method = build_records("FF-DF", "test", data_root=root, label_dict=LABELS)
    assert {r.key for r in per_method} == {"FF-DF/FF-real/002", "FF-DF/FF-DF/002_003"}
    celeb = {r.key for r in build_records("Celeb-DF-v2", "test", data_root=root, label_dict=LABELS)}
    assert celeb == {"Celeb-DF-v2/CelebDFv2_real/id0_0000", "Celeb-DF-v2/CelebDFv2_fake/id0_id1_0000"}


@pytest.mark.parametrize("name", ["FaceForensics++", "FF-DF", "Celeb-DF-v2"])
def test_rgb_and_lmdb_read_the_frames_deepfakebench_wrote(checkout, name):
    root, videos = checkout
    rgb, lmdb = RgbStorage(root), LmdbStorage(root)  # a checkout as data root: datasets/rgb, datasets/lmdb
    records = [r for split in ("train", "test") for r in build_records(name, split, data_root=root,
                                                                          label_dict=LABELS)]
    assert records
    for record in records:
        video = videos[record.video]
        for path in record.frames:
            index = int(path.rsplit("\\", 1)[1][:3])
            expected = video.frames[index]
            assert np.array_equal(rgb.read_image(path, name), expected), path
            assert np.array_equal(lmdb.read_image(path, name), expected), path
        for path in record.masks or ():
            assert np.array_equal(rgb.read_mask(path, name), lmdb.read_mask(path, name))
            assert lmdb.read_mask(path, name).max() == 255
    # FF-DF.json has no FF-DF_lmdb: its frames come from the shared FaceForensics++_lmdb.
    assert lmdb._opened(name, records[0].frames[0]).path.name == (
        "Celeb-DF-v2_lmdb" if name == "Celeb-DF-v2" else "FaceForensics++_lmdb")


@pytest.mark.parametrize("windows_json,windows_lmdb,json_root", [
    (True, False, ""),  # Windows JSON, LMDB written on Linux (mixed keys)
    (False, True, "./datasets"),  # Linux JSON with a relative root, Windows LMDB
    (False, False, "ABSOLUTE"),  # Linux JSON with an absolute root, Linux LMDB
])
def test_every_separator_combination_reads(tmp_path, windows_json, windows_lmdb, json_root):
    root = tmp_path / "checkout"
    json_root = str(root / "datasets" / "rgb") if json_root == "ABSOLUTE" else json_root
    videos = make_checkout(root, windows=windows_json, lmdb_windows=windows_lmdb, json_root=json_root)
    storage = build_storage("lmdb", tmp_path / "unused_root", lmdb_dir=root / "datasets" / "lmdb")
    for record in build_records("Celeb-DF-v2", "train", data_root=root, label_dict=LABELS):
        for path in record.frames:
            index = int(path.replace("\\", "/").rsplit("/", 1)[1][:3])
            assert np.array_equal(storage.read_image(path, "Celeb-DF-v2"), videos[record.video].frames[index])


def test_headerless_landmarks_decode(checkout):
    root, _ = checkout
    path = "FaceForensics++\\original_sequences\\youtube\\c23\\landmarks\\000\\020.npy"
    points = LmdbStorage(root).read_landmarks(path, "FaceForensics++")
    on_disk = np.load(root / "datasets/rgb/FaceForensics++/original_sequences/youtube/c23/landmarks/000/020.npy")
    assert on_disk.dtype == np.int64 and points.dtype == np.float32 and np.array_equal(points, on_disk)


def test_lmdb_errors_name_candidates_and_keys(checkout, tmp_path):
    root, _ = checkout
    storage = LmdbStorage(root)
    with pytest.raises(UnreadableFileError) as error:
        storage.read_image("FaceForensics++\\original_sequences\\youtube\\c23\\frames\\000\\999.png", "FF-DF")
    message = str(error.value)
    assert "FaceForensics++_lmdb" in message and "frames\\000\\999.png" in message and "DeepfakeBench" in message
    with pytest.raises(FileNotFoundError) as missing:
        LmdbStorage(tmp_path).read_image("UADFV\\fake\\frames\\0\\000.png", "UADFV")
    assert str(tmp_path / "lmdb" / "UADFV_lmdb") in str(missing.value) and "data.lmdb_dir" in str(missing.value)


def test_key_candidates():
    keys = deepfakebench_lmdb_keys("./datasets\\Celeb-DF-v2\\Celeb-real\\frames\\v\\000.png", "Celeb-DF-v2")
    assert keys[:2] == ["Celeb-DF-v2\\Celeb-real\\frames\\v\\000.png", "Celeb-DF-v2\\Celeb-real/frames/v/000.png"]
    linux = deepfakebench_lmdb_keys("/d/rgb/Celeb-DF-v2/Celeb-real/frames/v/000.png", "Celeb-DF-v2", linux_first=True)
    assert linux[0] == "Celeb-DF-v2\\Celeb-real/frames/v/000.png"


def test_frame_dataset_and_validate_over_deepfakebench_lmdb(checkout, capsys):
    root, videos = checkout
    records = build_records("FaceForensics++", "test", data_root=root, label_dict=LABELS)
    dataset = FrameDataset(records, LmdbStorage(root), lambda image, **_: {"image": image}, frame_num=3)
    sample = dataset[0]
    assert sample["video_key"].startswith("FaceForensics++/") and sample["image"].shape == (24, 24, 3)
    assert to_lmdb.main(["validate", "--data_root", str(root), "--dataset", "FaceForensics++",
                         "--storage", "lmdb", "--label_config", _label_config(root)]) == 0
    assert "FaceForensics++: OK (lmdb storage)" in capsys.readouterr().out
    assert referenced_paths(load_dataset_json(root, "Celeb-DF-v2"))


def _label_config(root) -> str:
    path = root / "labels.yaml"
    path.write_text("data:\n  label_dict:\n" + "".join(f"    {k}: {v}\n" for k, v in LABELS.items()))
    return str(path)
