import json

import pytest

from training.data.catalog import (CatalogError, build_records, build_records_with_report,
                                   frame_index_of, load_dataset_json, load_label_dict, referenced_paths)
from tests.data.synthetic import LABEL_DICT, write_json


def by_key(records):
    return {record.key: record for record in records}


def test_ff_nesting_selects_compression(tiny_root):
    c23 = by_key(build_records("TinyFF", "train", data_root=tiny_root, label_dict=LABEL_DICT))
    assert set(c23) == {"TinyFF/FF-real/000", "TinyFF/FF-real/001", "TinyFF/FF-DF/000"}
    assert all(record.compression == "c23" and record.split == "train" for record in c23.values())
    assert c23["TinyFF/FF-DF/000"].label == 1 and c23["TinyFF/FF-real/000"].label == 0
    c40 = build_records("TinyFF", "train", data_root=tiny_root, label_dict=LABEL_DICT, compression="c40")
    assert {record.key for record in c40} == {"TinyFF/FF-real/000", "TinyFF/FF-DF/000"}
    assert all("/c40/" in record.frames[0] for record in c40)


def test_flat_nesting_loads_with_identity(tiny_root):
    records = by_key(build_records("TinyFlat", "train", data_root=tiny_root, label_dict=LABEL_DICT))
    real = records["TinyFlat/CelebDFv2_real/id0_0000"]
    assert real.compression is None and real.identity == "id0" and real.masks is None
    test = build_records("TinyFlat", "test", data_root=tiny_root, label_dict=LABEL_DICT)
    assert {r.identity for r in test} == {None}


def test_frames_sorted_by_integer_stem_and_lists_stay_aligned(tiny_root):
    records = by_key(build_records("TinyFF", "train", data_root=tiny_root, label_dict=LABEL_DICT))
    unpadded = records["TinyFF/FF-real/000"]  # listed as 100, 5, 10; lexical order would be 10, 100, 5
    assert [frame_index_of(path) for path in unpadded.frames] == [5, 10, 100]
    assert [frame_index_of(path) for path in unpadded.landmarks] == [5, 10, 100]
    fake = records["TinyFF/FF-DF/000"]  # listed back to front
    assert [frame_index_of(p) for p in fake.frames] == [0, 1, 2, 3]
    assert [frame_index_of(p) for p in fake.masks] == [0, 1, 2, 3]
    assert all("/masks/" in p for p in fake.masks) and all("/landmarks/" in p for p in fake.landmarks)


def test_same_folder_name_under_two_labels_gets_two_keys(tiny_root):
    records = build_records("TinyFF", "train", data_root=tiny_root, label_dict=LABEL_DICT)
    folder_000 = [record for record in records if record.video == "000"]
    assert len(folder_000) == 2 and len({record.key for record in folder_000}) == 2


def test_referenced_paths_cover_every_split_and_level(tiny_root):
    paths = referenced_paths(load_dataset_json(tiny_root, "TinyFF"))
    kinds = {kind for kind, _ in paths}
    assert kinds == {"frames", "masks", "landmarks"}
    assert any("/c40/" in path for _, path in paths) and len({p for _, p in paths}) == len(paths)


def test_repo_label_map_loads():
    from pathlib import Path

    label_dict = load_label_dict(Path(__file__).resolve().parents[2] / "configs/_base_/datasets.yaml")
    assert label_dict["FF-real"] == 0 and label_dict["FF-DF"] == 1


# --------------------------------------------------------------------------- errors


def test_missing_json_names_path_and_how_to_create_it(tmp_path):
    with pytest.raises(CatalogError) as info:
        build_records("Nope", "train", data_root=tmp_path, label_dict=LABEL_DICT)
    message = str(info.value)
    assert str(tmp_path / "json" / "Nope.json") in message
    assert "python -m preprocessing.rearrange" in message
    assert f"python -m preprocessing.demo.generate --root {tmp_path}" in message


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "json" / "Bad.json"
    path.parent.mkdir()
    path.write_text('{"Bad": {\n  "FF-real": {,}\n}}')
    with pytest.raises(CatalogError, match=r"Bad\.json is not valid JSON: .* line 2, column 15"):
        load_dataset_json(tmp_path, "Bad")


def test_duplicate_json_key_is_an_error(tmp_path):
    path = tmp_path / "json" / "Dup.json"
    path.parent.mkdir()
    path.write_text('{"Dup": {"FF-real": {"train": {"v": {"frames": ["a/1.png"]}, "v": {"frames": ["a/2.png"]}}}}}')
    with pytest.raises(CatalogError, match=r"duplicate key 'v'"):
        load_dataset_json(tmp_path, "Dup")


def test_wrong_top_level_name(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "Mine.json").write_text(json.dumps({"Other": {}}))
    with pytest.raises(CatalogError, match=r"no top-level key 'Mine' \(found: \['Other'\]\)"):
        load_dataset_json(tmp_path, "Mine")


def test_missing_split_lists_available(tiny_root):
    with pytest.raises(CatalogError, match=r"no split 'val' \(available: test, train\)"):
        build_records("TinyFF", "val", data_root=tiny_root, label_dict=LABEL_DICT)


def test_missing_compression_lists_levels(tiny_root):
    with pytest.raises(CatalogError, match=r"no compression level 'raw' \(available: c23, c40\).*data\.compression"):
        build_records("TinyFF", "train", data_root=tiny_root, label_dict=LABEL_DICT, compression="raw")


def test_label_missing_from_label_dict_names_label_dataset_and_fix(tiny_root):
    label_dict = {"FF-real": 0}
    with pytest.raises(CatalogError) as info:
        build_records("TinyFF", "train", data_root=tiny_root, label_dict=label_dict, strict=False)
    message = str(info.value)
    assert "'FF-DF'" in message and "'TinyFF'" in message
    assert "data.label_dict" in message and "configs/_base_/datasets.yaml" in message


def _tree_with(videos):
    return {"FF-real": {"train": videos}}


def test_video_without_frames_strict_and_lenient(tmp_path):
    write_json(tmp_path, "Empty", _tree_with({"ok": {"label": "FF-real", "frames": ["x/0.png"]},
                                              "empty": {"label": "FF-real", "frames": []}}))
    with pytest.raises(CatalogError, match=r"'Empty/FF-real/empty': video has no frames"):
        build_records("Empty", "train", data_root=tmp_path, label_dict=LABEL_DICT)
    records, report = build_records_with_report("Empty", "train", data_root=tmp_path,
                                                label_dict=LABEL_DICT, strict=False)
    assert [r.video for r in records] == ["ok"]
    assert len(report) == 1 and report.skipped[0].what == "Empty/FF-real/empty"
    assert "no frames" in report.summary()


def test_duplicate_video_key_across_label_groups(tmp_path):
    # A video filed under group FF-DF but labelled FF-real collides with FF-real/000.
    write_json(tmp_path, "Dup", {"FF-real": {"train": {"000": {"label": "FF-real", "frames": ["r/0.png"]}}},
                                 "FF-DF": {"train": {"000": {"label": "FF-real", "frames": ["f/0.png"]}}}})
    with pytest.raises(CatalogError, match=r"duplicate video key 'Dup/FF-real/000'"):
        build_records("Dup", "train", data_root=tmp_path, label_dict=LABEL_DICT)
    records, report = build_records_with_report("Dup", "train", data_root=tmp_path,
                                                label_dict=LABEL_DICT, strict=False)
    assert len(records) == 1 and len(report) == 1


def test_misaligned_masks_and_bad_frame_names(tmp_path):
    write_json(tmp_path, "Mis", _tree_with({
        "short": {"label": "FF-real", "frames": ["a/0.png", "a/1.png"], "masks": ["m/0.png"]},
        "named": {"label": "FF-real", "frames": ["a/frame_x.png"]},
        "swapped": {"label": "FF-real", "frames": ["a/0.png", "a/1.png"], "landmarks": ["l/1.npy", "l/0.npy"]},
    }))
    records, report = build_records_with_report("Mis", "train", data_root=tmp_path,
                                                label_dict=LABEL_DICT, strict=False)
    assert records == []
    reasons = {item.what.split("/")[-1]: item.reason for item in report.skipped}
    assert "'masks' has 1 paths but 'frames' has 2" in reasons["short"]
    assert "'a/frame_x.png' is not an integer frame index" in reasons["named"]
    assert "does not match frame index" in reasons["swapped"]


def test_split_value_mixing_records_and_levels_is_an_error(tmp_path):
    write_json(tmp_path, "Mixed", _tree_with({"v": {"label": "FF-real", "frames": ["a/0.png"]},
                                              "c23": {"w": {"frames": ["a/1.png"]}}}))
    with pytest.raises(CatalogError, match="not both"):
        build_records("Mixed", "train", data_root=tmp_path, label_dict=LABEL_DICT)
