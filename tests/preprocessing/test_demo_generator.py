"""The demo benchmark generator: layout, JSON schema, determinism, caching, crash safety.

Everything runs on a reduced benchmark (``scale=SMALL``: one to two
identities per split) so the whole module takes seconds.
"""
import hashlib
import json
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing.demo import generate
from preprocessing.demo.benchmark import DATASETS, DATASET_NAMES, SPLITS
from preprocessing.demo.clips import FRAME_INDICES
from preprocessing.demo.generate import generate_demo, main
from training.data.catalog import build_records, load_label_dict

REPO = Path(__file__).resolve().parents[2]
SMALL = 0.1
SMALL_TIME_LIMIT_S = 30.0  # ~6 s on an idle 2-core machine; generous for a shared one


@pytest.fixture(scope="module")
def label_dict():
    return load_label_dict(REPO / "configs" / "_base_" / "datasets.yaml")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    paths = generate_demo(root, seed=0, scale=SMALL, workers=1)
    return root, paths, time.perf_counter() - start


def _videos(split_node):
    """{video: record} of one split, through the FF++ compression level if present."""
    if "c23" in split_node:
        return split_node["c23"]
    return split_node


def _tree_hashes(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_small_generation_is_fast_and_returns_every_json(small_demo):
    root, paths, seconds = small_demo
    assert list(paths) == list(DATASET_NAMES)
    assert all(path == root / "json" / f"{name}.json" and path.is_file() for name, path in paths.items())
    assert seconds < SMALL_TIME_LIMIT_S, f"small demo took {seconds:.1f}s"


def test_every_label_is_in_the_label_map(label_dict):
    for spec in DATASETS:
        for label in spec.labels:
            assert label_dict[label.name] == (1 if label.is_fake else 0), label.name


def test_json_schema_files_and_splits(small_demo, label_dict):
    root, paths, _ = small_demo
    for spec in DATASETS:
        tree = json.loads(paths[spec.name].read_text())
        assert list(tree) == [spec.name]
        assert sorted(tree[spec.name]) == sorted(label.name for label in spec.labels)
        identities = {split: set() for split in SPLITS}
        for label_name, splits in tree[spec.name].items():
            assert list(splits) == list(SPLITS)
            for split, node in splits.items():
                # FF++ nesting for DemoFF only, flat elsewhere.
                assert (list(node) == ["c23"]) == (spec.name == "DemoFF")
                assert _videos(node), f"{spec.name}/{label_name}/{split} is empty"
                for video, record in _videos(node).items():
                    _check_record(root, spec.name, label_name, record, label_dict)
                    identities[split].add(record["identity"])
        assert not identities["train"] & identities["val"]
        assert not identities["train"] & identities["test"]
        assert not identities["val"] & identities["test"]


def _check_record(root, dataset, label_name, record, label_dict):
    is_fake = label_dict[label_name] == 1
    assert record["label"] == label_name
    assert re.fullmatch(r"id_\d{3}", record["identity"])
    assert ("masks" in record) == is_fake
    kinds = ["frames", "landmarks"] + (["masks"] if is_fake else [])
    for kind in kinds:
        stems = [Path(p).stem for p in record[kind]]
        assert stems == [f"{i:03d}" for i in FRAME_INDICES]
        for rel in record[kind]:
            assert rel.startswith(f"demo/{dataset}/") and "\\" not in rel and not Path(rel).is_absolute()
            assert f"/{kind}/" in rel and (root / rel).is_file(), rel
    frame = cv2.imread(str(root / record["frames"][0]), cv2.IMREAD_UNCHANGED)
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    landmarks = np.load(root / record["landmarks"][0])
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    assert (landmarks > 0).all() and (landmarks < 256).all()
    # iBUG order: eyes above the nose tip above the mouth above the chin; 36 is image-left.
    eyes_y, nose_y, mouth_y = landmarks[36:48, 1].mean(), landmarks[33, 1], landmarks[48:68, 1].mean()
    assert eyes_y < nose_y < mouth_y < landmarks[8, 1] and landmarks[36, 0] < landmarks[45, 0]
    if is_fake:
        mask = cv2.imread(str(root / record["masks"][0]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (256, 256) and mask.dtype == np.uint8
        x, y = np.round(landmarks[66]).astype(int)  # every method manipulates the mouth
        assert mask[y, x] > 64 and (mask == 0).mean() > 0.3


def test_layout_mirrors_the_real_datasets(small_demo):
    root, _, _ = small_demo
    ff = root / "demo" / "DemoFF"
    assert (ff / "original_sequences" / "c23" / "frames").is_dir()
    for method in ("Swap", "Reenact", "Texture", "SelfBlend"):
        for kind in ("frames", "landmarks", "masks"):
            assert (ff / "manipulated_sequences" / method / "c23" / kind).is_dir()
    assert (root / "demo" / "DemoCDF" / "Celeb-real" / "frames").is_dir()
    assert not (ff / "original_sequences" / "c23" / "masks").exists()


def test_catalog_reads_every_split(small_demo, label_dict):
    root, _, _ = small_demo
    for name in DATASET_NAMES:
        for split in SPLITS:
            records = build_records(name, split, data_root=root, label_dict=label_dict)
            assert {r.label for r in records} == {0, 1}
            assert all(len(r.frames) == len(FRAME_INDICES) and r.identity for r in records)


def test_same_seed_same_bytes_in_and_out_of_process_other_seed_differs(small_demo, tmp_path):
    root, paths, _ = small_demo
    reference = _tree_hashes(root / "demo" / "DemoTemporal")
    again = generate_demo(tmp_path, seed=0, scale=SMALL, datasets=["DemoTemporal"], workers=2)
    assert _tree_hashes(tmp_path / "demo" / "DemoTemporal") == reference and len(reference) > 100
    assert again["DemoTemporal"].read_bytes() == paths["DemoTemporal"].read_bytes()

    generate_demo(tmp_path, seed=1, scale=SMALL, datasets=["DemoTemporal"], workers=1)  # seed changed: redone
    other = _tree_hashes(tmp_path / "demo" / "DemoTemporal")
    frames = [k for k in reference if "/frames/" in k]
    assert other.keys() == reference.keys()  # same layout ...
    assert all(other[k] != reference[k] for k in frames)  # ... different pictures


def test_up_to_date_output_is_kept_force_redoes_it_and_a_crash_leaves_no_json(tmp_path, monkeypatch):
    index = tmp_path / "json" / "DemoTemporal.json"
    manifest_file = tmp_path / "demo" / ".demo_manifest.json"
    assert main(["--root", str(tmp_path), "--seed", "0", "--small", "--dataset", "DemoTemporal",
                 "--workers", "1"]) == 0
    manifest = json.loads(manifest_file.read_text())
    assert manifest["generator_version"] == generate.GENERATOR_VERSION
    assert manifest["datasets"]["DemoTemporal"]["seed"] == 0
    written = index.stat().st_mtime_ns
    generate_demo(tmp_path, seed=0, scale=SMALL, datasets=["DemoTemporal"], workers=1)
    assert index.stat().st_mtime_ns == written  # up to date: nothing rewritten

    real_run_job, calls = generate.run_job, []

    def crash_on_second_job(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return real_run_job(*args)

    monkeypatch.setattr(generate, "run_job", crash_on_second_job)
    with pytest.raises(KeyboardInterrupt):
        generate_demo(tmp_path, seed=0, scale=SMALL, datasets=["DemoTemporal"], force=True, workers=1)
    assert calls  # force redid the up-to-date dataset
    assert not index.exists()  # no index over half-written frames ...
    assert "DemoTemporal" not in json.loads(manifest_file.read_text())["datasets"]  # ... nor a stale entry
    monkeypatch.setattr(generate, "run_job", real_run_job)
    paths = generate_demo(tmp_path, seed=0, scale=SMALL, datasets=["DemoTemporal"], workers=1)
    assert paths["DemoTemporal"].is_file()


def test_unknown_dataset_and_bad_scale_are_rejected(tmp_path):
    with pytest.raises(KeyError, match="DemoFF"):
        generate_demo(tmp_path, datasets=["DemoNope"])
    with pytest.raises(ValueError, match="scale"):
        generate_demo(tmp_path, scale=0)
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "--dataset", "DemoNope"])
