"""Paired / unpaired training subsets (training/data/pairing.py)."""
import json
from pathlib import Path

import pytest

from training.config import DEFAULTS, deep_merge
from training.data.catalog import load_label_dict
from training.data.loaders import load_records
from training.data.pairing import PairingError, apply_pairing, select_pairing, source_index

REPO = Path(__file__).resolve().parents[2]
LABELS = load_label_dict(REPO / "configs" / "_base_" / "datasets.yaml")
REALS = [f"{n:03d}" for n in range(10)]


def entry(label, video, source=None):
    record = {"label": label, "frames": [f"FF/{label}/{video}/000.png", f"FF/{label}/{video}/008.png"]}
    if source is not None:
        record["source"] = source
    return record


def write_ff(root: Path, with_sources=True, extra_real=True):
    """10 reals, two methods with one fake each per real (target = source), one real without fakes."""
    train = {"FF-real": {v: entry("FF-real", v) for v in REALS}}
    if extra_real:
        train["FF-real"]["999"] = entry("FF-real", "999")
    for label in ("FF-DF", "FF-F2F"):
        train[label] = {f"{a}_{b}": entry(label, f"{a}_{b}", a if with_sources else None)
                        for a, b in zip(REALS, REALS[1:] + REALS[:1])}
    tree = {label: {"train": {"c23": videos}, "val": {"c23": {}}, "test": {"c23": {}}}
            for label, videos in train.items()}
    (root / "json").mkdir(parents=True, exist_ok=True)
    (root / "json" / "FaceForensics++.json").write_text(json.dumps({"FaceForensics++": tree}))


def config_for(root, pairing, seed=None):
    data = {"root": str(root), "label_dict": LABELS, "pairing": pairing, "pairing_seed": seed}
    return deep_merge(DEFAULTS, {"data": data})


def selection(root, pairing, seed=0):
    return load_records(config_for(root, pairing, seed), ["FaceForensics++"], "train")


def test_paired_keeps_every_fakes_source_and_a_fake_of_every_real(tmp_path):
    write_ff(tmp_path)
    chosen = selection(tmp_path, "paired")
    reals = {r.video for r in chosen if r.label == 0}
    fakes = [r for r in chosen if r.label == 1]
    sources = source_index(tmp_path, ["FaceForensics++"], "train", "c23")
    assert len(reals) == 5 and "999" not in reals  # half the sources; the real without fakes is out
    assert all(sources[f.key] in reals for f in fakes)
    assert {sources[f.key] for f in fakes} == reals
    assert len(fakes) == 10


def test_unpaired_breaks_every_pair_with_the_same_counts(tmp_path):
    write_ff(tmp_path)
    paired, unpaired = selection(tmp_path, "paired"), selection(tmp_path, "unpaired")
    sources = source_index(tmp_path, ["FaceForensics++"], "train", "c23")
    reals = {r.video for r in unpaired if r.label == 0}
    fakes = [r for r in unpaired if r.label == 1]
    assert reals == {r.video for r in paired if r.label == 0}  # the same reals
    assert len(fakes) == sum(r.label == 1 for r in paired)  # the same number of fakes
    assert not any(sources[f.key] in reals for f in fakes)


def test_seeded_and_different_across_seeds(tmp_path):
    write_ff(tmp_path)
    keys = lambda seed: [r.key for r in selection(tmp_path, "paired", seed)]  # noqa: E731
    assert keys(3) == keys(3)
    assert len({tuple(keys(seed)) for seed in range(6)}) > 1
    # null pairing_seed follows train.seed
    config = config_for(tmp_path, "paired")
    config["train"]["seed"] = 3
    assert [r.key for r in load_records(config, ["FaceForensics++"], "train")] == keys(3)


def test_all_and_val_are_untouched(tmp_path):
    write_ff(tmp_path)
    assert len(selection(tmp_path, "all")) == 11 + 20
    assert load_records(config_for(tmp_path, "paired"), ["FaceForensics++"], "val") == []


def test_fakes_without_source_are_an_error_that_names_the_fix(tmp_path):
    write_ff(tmp_path, with_sources=False)
    with pytest.raises(PairingError, match=r"no 'source' in json/FaceForensics\+\+\.json.*rearrange"):
        selection(tmp_path, "unpaired")


def test_uneven_halves_share_the_smaller_fake_count(tmp_path):
    write_ff(tmp_path, extra_real=False)
    records = selection(tmp_path, "all")
    sources = source_index(tmp_path, ["FaceForensics++"], "train", "c23")
    few = [r for r in records if not (r.label == 1 and sources[r.key] in {"000", "001", "002"}
                                      and r.label_name == "FF-F2F")]
    for mode in ("paired", "unpaired"):
        chosen, summary = select_pairing(few, sources, mode, seed=1)
        assert summary.fakes == sum(r.label == 1 for r in chosen) and summary.reals == 5
    assert select_pairing(few, sources, "paired", 1)[1].fakes == select_pairing(few, sources, "unpaired", 1)[1].fakes


def test_unknown_mode_is_rejected():
    with pytest.raises(PairingError, match="all, paired, unpaired"):
        select_pairing([], {}, "half", 0)


def test_apply_pairing_all_is_identity(tmp_path):
    write_ff(tmp_path)
    records = selection(tmp_path, "all")
    assert apply_pairing(config_for(tmp_path, "all"), ["FaceForensics++"], records) == records


def test_demo_benchmark_pairs_its_fakes(demo_root):
    """DemoFF's fakes carry their source real (preprocessing/demo); both settings work on it."""
    counts = {}
    for mode in ("paired", "unpaired"):
        chosen = load_records(config_for(demo_root, mode, seed=0), ["DemoFF"], "train")
        sources = source_index(demo_root, ["DemoFF"], "train", "c23")
        reals = {r.video for r in chosen if r.label == 0}
        fakes = [r for r in chosen if r.label == 1]
        assert all((sources[f.key] in reals) == (mode == "paired") for f in fakes)
        counts[mode] = (len(reals), len(fakes))
    assert counts["paired"] == counts["unpaired"] and counts["paired"][1] > 0
