"""Config loading: _base_ includes, overrides, validation messages, resolved copy."""
from __future__ import annotations

import pytest
import yaml

from training.config import ConfigError, load_config, save_config

DEMO = "configs/detector/demo_clip_tiny.yaml"


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_base_include_and_override_order(tmp_path):
    write(tmp_path / "base.yaml", {"train": {"epochs": 3, "batch_size": 8}, "data": {"label_dict": {"a": 0}}})
    child = write(tmp_path / "child.yaml", {"_base_": "base.yaml", "train": {"epochs": 5}})
    config = load_config(child, ["train.batch_size=16", "data.test_dataset=[X,Y]"])
    assert config["train"]["epochs"] == 5  # child wins over base
    assert config["train"]["batch_size"] == 16  # override wins over both
    assert config["data"]["test_dataset"] == ["X", "Y"]
    assert config["data"]["label_dict"] == {"a": 0}
    assert config["train"]["optimizer"]["name"] == "adamw"  # defaults fill the rest
    assert config["model"]["tuning"] == "ln"  # detector defaults too


def test_unknown_key_suggests_the_right_one(tmp_path):
    bad = write(tmp_path / "bad.yaml", {"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.epoch'.*Did you mean 'train.epochs'"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"model.tunning.*Did you mean 'model.tuning'"):
        load_config(DEMO, ["model.tunning=ln"])


def test_invalid_choice_lists_choices():
    with pytest.raises(ConfigError, match="data.storage.*not one of rgb, lmdb"):
        load_config(DEMO, ["data.storage=hdf5"])


def test_unknown_detector_lists_registered_names():
    with pytest.raises(ConfigError, match=r"Unknown detector 'clpi'.*Did you mean 'clip'.*Registered detectors: .*clip"):
        load_config(DEMO, ["model.name=clpi"])


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)


def test_missing_file_and_circular_base(tmp_path):
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError, match="Circular"):
        load_config(tmp_path / "a.yaml")


def test_resolved_config_round_trips(tmp_path):
    config = load_config(DEMO, ["train.epochs=2"])
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    again.pop("_source"), config.pop("_source")
    assert again == config


def test_exponent_floats_are_numbers_in_files_and_overrides(tmp_path, tiny_config):
    """PyYAML (YAML 1.1) reads `2e-3` as a string; the config loader reads it as YAML 1.2 does."""
    from training.config import load_config

    config_file = tmp_path / "exp.yaml"
    config_file.write_text("_base_: " + str(tiny_config.resolve()) + "\ntrain:\n  optimizer: {lr: 3e-4}\n")
    config = load_config(config_file, ["train.optimizer.weight_decay=5e-2", "train.epochs=3"])
    assert config["train"]["optimizer"]["lr"] == 3e-4
    assert config["train"]["optimizer"]["weight_decay"] == 0.05
    assert config["train"]["epochs"] == 3 and isinstance(config["train"]["epochs"], int)
