"""Protocol presets (configs/_base_/protocol_*.yaml) and ``training/test.py --preset``."""
from __future__ import annotations

import json

import pytest

from training.config import ConfigError, load_config
from training.presets import available_presets, preset_overrides

DEEPFAKEBENCH = ["Celeb-DF-v1", "Celeb-DF-v2", "DeeperForensics-1.0", "DeepFakeDetection-all", "DFDC", "DFDCP",
                 "FaceShifter", "UADFV"]


def test_the_published_protocols_resolve_to_their_test_sets():
    assert {"deepfakebench", "gend", "demo"} <= set(available_presets())
    assert preset_overrides("deepfakebench") == [f"data.test_dataset=[{','.join(DEEPFAKEBENCH)}]",
                                                 "data.compression=c23"]
    gend = preset_overrides("gend")[0]
    assert gend.count(",") + 1 == 14  # GenD's 14 benchmark sets
    for name in ("DFDM", "KoDF", "FakeAVCeleb-all", "PolyGlotFake", "IDForge-v1", "Celeb-DF++", "DeepSpeak-v2.0"):
        assert name in gend
    config = load_config("configs/detector/demo_clip_tiny.yaml", preset_overrides("demo"))
    assert config["data"]["test_dataset"] == ["DemoFF", "DemoCDF", "DemoDFDC"]


def test_unknown_preset_lists_the_available_ones(tmp_path):
    with pytest.raises(ConfigError, match="choose from .*deepfakebench.*gend"):
        preset_overrides("gen-d")
    empty = tmp_path / "p.yaml"
    empty.write_text("data: {compression: c23}\n")
    with pytest.raises(ConfigError, match="needs data.test_dataset"):
        preset_overrides(str(empty))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    from tests.analysis.test_plots import build_tiny_runs

    return build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")


def test_test_py_preset_gives_the_whole_table_in_one_command(tiny_runs, tmp_path, capsys):
    from tests.analysis.test_plots import TEST_SETS
    from training.test import main

    preset = tmp_path / "protocol_tiny.yaml"
    preset.write_text(f"data:\n  test_dataset: [{', '.join(TEST_SETS)}]\n")
    out = tmp_path / "table"
    assert main(["--weights_path", str(tiny_runs["a"]), "--preset", str(preset), "--out", str(out),
                 "--device", "cpu"]) == 0
    assert list(json.loads((out / "metrics.json").read_text())["tiny_a"]) == list(TEST_SETS)
    header = (out / "table.md").read_text().splitlines()[0]
    for name in TEST_SETS:  # frame and video AUC side by side, then the means
        assert header.index(f"{name} Frame") < header.index(f"{name} Video")
    assert "(AUC, %)" in header and header.index("Mean Frame") < header.index("Mean Video")
    with pytest.raises(SystemExit, match="--preset or --test_dataset"):
        main(["--weights_path", str(tiny_runs["a"]), "--preset", str(preset), "--test_dataset", TEST_SETS[0],
              "--out", str(out)])
