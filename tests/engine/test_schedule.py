"""training/engine/schedule.py against the torch schedulers LN-CLIP and GenD build."""
from __future__ import annotations

import pytest
import torch

from training.engine.schedule import build_scheduler

STEPS_PER_EPOCH = 7


def lrs_of(scheduler, optimizer, steps):
    """The lr each of ``steps`` optimizer steps runs with."""
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def optimizer_with(lr):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def ours(cfg, lr, epochs):
    optimizer = optimizer_with(lr)
    total = epochs * STEPS_PER_EPOCH
    return lrs_of(build_scheduler(optimizer, cfg, lr, STEPS_PER_EPOCH, total), optimizer, total)


def test_cyclic_with_min_lr_warmup_equals_gend():
    # GenD src/model/GenD.py: SequentialLR([LinearLR(min_lr/lr, W), CosineAnnealingWarmRestarts(T_0, 1, min_lr)], [W])
    # with its published settings: lr 3e-4, min_lr 1e-5, 1 warm-up epoch, 10-epoch cycles, 30 epochs.
    lr, min_lr, epochs = 3e-4, 1e-5, 30
    optimizer = optimizer_with(lr)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=min_lr / lr, total_iters=STEPS_PER_EPOCH)
    cyclic = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=10 * STEPS_PER_EPOCH, T_mult=1,
                                                                  eta_min=min_lr)
    reference = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cyclic], milestones=[STEPS_PER_EPOCH])
    expected = lrs_of(reference, optimizer, epochs * STEPS_PER_EPOCH)
    got = ours({"name": "cyclic", "warmup_epochs": 1, "warmup_start": "min_lr", "min_lr": min_lr,
                "cycle_epochs": 10}, lr, epochs)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)
    # The restarts are there: back to the base lr at the start of each cycle after the warm-up.
    assert got[0] == pytest.approx(min_lr) and got[STEPS_PER_EPOCH] == pytest.approx(lr)
    assert got[11 * STEPS_PER_EPOCH] == pytest.approx(lr) and got[11 * STEPS_PER_EPOCH - 1] < 1.1 * min_lr


def test_cosine_without_warmup_equals_ln_clip():
    # LN-CLIP src/model/dfdet.py: CosineAnnealingLR(T_max = max_epochs * steps, eta_min = min_lr), per step.
    lr, min_lr, epochs = 8e-5, 5e-5, 10
    optimizer = optimizer_with(lr)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * STEPS_PER_EPOCH, eta_min=min_lr)
    expected = lrs_of(reference, optimizer, epochs * STEPS_PER_EPOCH)
    got = ours({"name": "cosine", "warmup_epochs": 0, "min_lr": min_lr}, lr, epochs)
    assert got == pytest.approx(expected, rel=1e-9)


def test_cyclic_needs_a_cycle_length():
    with pytest.raises(ValueError, match="cycle_epochs"):
        build_scheduler(optimizer_with(1e-3), {"name": "cyclic", "warmup_epochs": 0, "min_lr": 0.0}, 1e-3, 5, 50)


def test_zero_start_warmup_is_unchanged():
    got = ours({"name": "constant", "warmup_epochs": 1, "min_lr": 0.0}, 1e-3, 2)
    assert got[:STEPS_PER_EPOCH] == pytest.approx([1e-3 * (s + 1) / STEPS_PER_EPOCH for s in range(STEPS_PER_EPOCH)])
    assert got[STEPS_PER_EPOCH:] == pytest.approx([1e-3] * STEPS_PER_EPOCH)
