"""Checkpoint safety: weights_only loading, code-carrying pickles refused, clear mismatch errors."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from torch import nn

from training.engine.checkpoint import (CheckpointError, load_checkpoint, load_state_dict_checked,
                                        save_checkpoint)


class CodeCarrier:
    def __reduce__(self):
        return (os.system, ("echo this should never run > /dev/null",))


def test_pickle_carrying_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": CodeCarrier()}, handle)
    with pytest.raises(CheckpointError, match="Refusing to load"):
        load_checkpoint(path)
    torch.save({"payload": CodeCarrier()}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="Refusing to load"):
        load_checkpoint(tmp_path / "evil2.pt")


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(100)})
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_ddp_prefix_is_stripped_and_mismatches_are_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    load_state_dict_checked(model, state, "ddp.pt")  # loads in one process
    with pytest.raises(CheckpointError, match=r"1 missing keys \['1.bias'\].*1 unexpected keys \['2.bias'\]"):
        broken = dict(model.state_dict())
        broken["2.bias"] = broken.pop("1.bias")
        load_state_dict_checked(model, broken, "other.pt")
    wrong = dict(model.state_dict())
    wrong["0.weight"] = torch.zeros(5, 3)
    with pytest.raises(CheckpointError, match=r"'0.weight' has shape \(5, 3\).*but \(4, 3\)"):
        load_state_dict_checked(model, wrong, "shape.pt")


def test_atomic_save_keeps_previous_version_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": torch.tensor(1)})

    def exploding_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="No space left.*previous version of this file .* is intact"):
        save_checkpoint(path, {"step": torch.tensor(2)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_a_file_with_every_weight_needs_no_pretrained_backbone(tmp_path, tiny_config):
    """DeepfakeBench's xception_best.pth or a full training checkpoint replaces the ImageNet/CLIP
    weights, so testing it must not ask for them; a compact checkpoint still needs the backbone."""
    from training.config import load_config
    from training.engine.checkpoint import build_detector_with_weights
    from training.models import build_detector
    from training.models.backbones.open_clip_vit import PretrainedWeightsMissing

    config = load_config(tiny_config)
    torch.manual_seed(0)
    trained = build_detector(config)
    path = tmp_path / "full.pt"
    save_checkpoint(path, {"model": trained.checkpoint_state()})
    wants_weights = load_config(tiny_config, ["model.backbone.pretrained=openai", "model.backbone.weights_dir=" +
                                              str(tmp_path / "no_weights")])
    with pytest.raises(PretrainedWeightsMissing):  # built the ordinary way, it asks for the weights file
        build_detector(wants_weights)
    detector, used = build_detector_with_weights(wants_weights, path)
    assert used["model"]["backbone"]["pretrained"] is None
    assert wants_weights["model"]["backbone"]["pretrained"] == "openai"  # the caller's config is unchanged
    for key, value in trained.state_dict().items():
        assert torch.equal(detector.state_dict()[key], value), key

    compact = tmp_path / "compact.pt"
    save_checkpoint(compact, {"model": {"format": "compact", "state_dict": {}, "backbone": {}}})
    with pytest.raises(PretrainedWeightsMissing):
        build_detector_with_weights(wants_weights, compact)
