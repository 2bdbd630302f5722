"""Split leakage: planted identity / source-video overlaps are found, clean splits pass."""
import json

import pytest

from preprocessing.leakage import LeakageError, check_jsons, check_trees, main as leakage_main
from preprocessing.rearrange import main as rearrange_main
from tests.preprocessing.test_adapters import make_ffpp


def record(label, identity, source=None):
    entry = {"label": label, "frames": [f"x/{identity}/000.png"], "identity": identity}
    if source:
        entry["source"] = source
    return entry


def ff_tree(test_real="006"):
    """A FaceForensics++-shaped tree: reals 000-003 train, 004 val, ``test_real`` test."""
    tree = {"FF-real": {"train": {"c23": {v: record("FF-real", v) for v in ("000", "001", "002", "003")}},
                        "val": {"c23": {"004": record("FF-real", "004")}},
                        "test": {"c23": {test_real: record("FF-real", test_real)}}},
            "FF-DF": {"train": {"c23": {"000_001": record("FF-DF", "000", "000")}},
                      "val": {"c23": {}}, "test": {"c23": {"006_007": record("FF-DF", "006", "006")}}}}
    return tree


def test_clean_splits_pass():
    errors, allowed = check_trees({"FaceForensics++": ff_tree()})
    assert errors == [] and allowed == []


def test_planted_identity_and_source_overlap_within_a_dataset():
    errors, _ = check_trees({"FaceForensics++": ff_tree(test_real="002")})
    found = {(e.kind, e.left, e.right) for e in errors}
    assert ("identity", "FaceForensics++/train", "FaceForensics++/test") in found
    assert ("source", "FaceForensics++/train", "FaceForensics++/test") in found
    assert any("FF++:002" in e.shared for e in errors)


def test_a_fake_in_test_made_from_a_training_real_is_a_source_leak():
    tree = ff_tree()
    tree["FF-DF"]["test"]["c23"]["006_007"] = record("FF-DF", "006", source="001")
    errors, _ = check_trees({"FaceForensics++": tree})
    assert [(e.kind, e.shared) for e in errors] == [("source", ("FF++:001",))]


def test_across_comparable_datasets_only():
    shifter = {"FF-real": {"train": {}, "val": {}, "test": {"c23": {"003": record("FF-real", "003")}}},
               "FF-FH": {"train": {}, "val": {}, "test": {}}}
    errors, _ = check_trees({"FaceForensics++": ff_tree(), "FaceShifter": shifter})
    assert {(e.left, e.right) for e in errors} == {("FaceForensics++/train", "FaceShifter/test")}
    # DFD's actors are other people: names that happen to match are not compared.
    dfd = {"DFD_real": {"test": {"c23": {"003": record("DFD_real", "003")}}}, "DFD_fake": {"test": {}}}
    assert check_trees({"FaceForensics++": ff_tree(), "DeepFakeDetection-all": dfd})[0] == []


def test_allowed_overlap_is_reported_not_raised(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "FaceForensics++.json").write_text(
        json.dumps({"FaceForensics++": ff_tree(test_real="002")}))
    with pytest.raises(LeakageError, match="--allow_overlap identity source"):
        check_jsons(tmp_path, ["FaceForensics++"])
    allowed = check_jsons(tmp_path, ["FaceForensics++"], allow=["identity", "source"])
    assert {overlap.kind for overlap in allowed} == {"identity", "source"}
    from training.cli import EXIT_USAGE, run_cli

    assert run_cli(leakage_main, ["--data_root", str(tmp_path), "--dataset", "FaceForensics++"]) == EXIT_USAGE
    assert rearrange_main(["check", "--data_root", str(tmp_path), "--dataset", "FaceForensics++",
                           "--allow_overlap", "identity", "source"]) == 0


def test_rearrange_refuses_a_leaking_split_file(tmp_path):
    root = tmp_path / "FaceForensics++"
    make_ffpp(root, methods=("FaceShifter",))
    pairs = json.loads((root / "splits" / "test.json").read_text())
    (root / "splits" / "test.json").write_text(json.dumps(pairs + [["000", "001"]]))  # a train pair again
    with pytest.raises(LeakageError, match="FaceShifter/train and FaceShifter/test share 2 identity"):
        rearrange_main(["--dataset", "FaceShifter", "--source_dir", str(root), "--data_root", str(tmp_path)])
    assert not (tmp_path / "json" / "FaceShifter.json").exists()


def test_demo_jsons_are_clean_and_a_planted_overlap_is_found(demo_root):
    from preprocessing.leakage import load_trees

    # The session's small demo (tests/conftest.py); generate_demo has checked its JSONs already.
    trees = load_trees(demo_root, ["DemoFF", "DemoCDF"])
    assert check_trees(trees) == ([], [])
    trees = {"DemoFF": trees["DemoFF"]}
    fakes = trees["DemoFF"]["DemoFF_swap"]["train"]["c23"]
    assert fakes and all("source" in record for record in fakes.values())  # fakes name their real video
    video, record = next(iter(trees["DemoFF"]["DemoFF_real"]["train"]["c23"].items()))
    other = {"DemoCDF_real": {"train": {}, "val": {}, "test": {video: dict(record, label="DemoCDF_real")}},
             "DemoCDF_fake": {"train": {}, "val": {}, "test": {}}}
    errors, _ = check_trees({**trees, "DemoCDF": other})
    assert {(e.left, e.right) for e in errors} == {("DemoFF/train", "DemoCDF/test")}
