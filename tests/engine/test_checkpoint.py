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
