"""Learning-rate schedules: a factor of the base lr for every optimizer step (``LambdaLR``).

``train.scheduler``::

    name: cosine | cyclic | constant
    warmup_epochs: 0.0     # linear warm-up over round(warmup_epochs * steps_per_epoch) steps
    warmup_start: zero     # zero: from ~0 ((s + 1) / W) | min_lr: from min_lr (GenD)
    min_lr: 0.0            # floor of the cosine (eta_min)
    cycle_epochs: null     # cyclic only: epochs per cosine cycle

* ``cosine``: after the warm-up, one cosine from the base lr to ``min_lr`` over the remaining
  steps. Without warm-up this is LN-CLIP's ``CosineAnnealingLR(T_max = max_epochs * steps,
  eta_min = min_lr)`` stepped every iteration (github yermandy/deepfake-detection,
  ``src/model/dfdet.py`` ``configure_optimizers``).
* ``cyclic``: after the warm-up, cosine with warm restarts every ``cycle_epochs`` epochs: GenD's
  ``cyclic`` = ``CosineAnnealingWarmRestarts(T_0 = int(num_epochs_in_cycle * steps), T_mult=1,
  eta_min = min_lr)`` behind ``SequentialLR`` (github yermandy/GenD, ``src/model/GenD.py``
  ``configure_optimizers``): the first cycle starts when the warm-up ends; the last one may be
  cut off by the end of training.
* ``constant``: the base lr after the warm-up.

With a warm-up, ``cosine`` spans the steps after it (reaching ``min_lr`` at the last step); GenD's
``cosine`` + warm-up keeps ``T_max`` = all steps, so it ends above ``min_lr``. No published GenD
run uses that combination (they use ``cyclic``), and LN-CLIP has no warm-up.

``warmup_start: min_lr`` is GenD's warm-up, ``LinearLR(start_factor = min_lr / lr, total_iters =
W)``: min_lr at step 0, rising linearly to the base lr at step W. The warm-up length is rounded
(GenD truncates; equal for the whole-epoch warm-ups its experiments use).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from training.errors import ConfigError

SCHEDULES = ("cosine", "cyclic", "constant")
WARMUP_STARTS = ("zero", "min_lr")


def _cosine(position: float, min_ratio: float) -> float:
    """Cosine from 1 (position 0) to ``min_ratio`` (position 1)."""
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * position))


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float, kind: str,
              cycle_steps: Optional[int] = None, warmup_start: str = "zero") -> float:
    """The lr of optimizer step ``step`` (0-based) as a fraction of the base lr."""
    if warmup_steps > 0 and step < warmup_steps:
        if warmup_start == "min_lr":
            return min_ratio + (1.0 - min_ratio) * step / warmup_steps
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    after = step - warmup_steps
    if kind == "cyclic":
        if not cycle_steps or cycle_steps < 1:
            raise ConfigError(f"train.scheduler.name: cyclic needs a cycle of at least one step "
                             f"(train.scheduler.cycle_epochs), got {cycle_steps} steps")
        return _cosine((after % cycle_steps) / cycle_steps, min_ratio)
    progress = min(max(after / max(1, total_steps - warmup_steps), 0.0), 1.0)
    return _cosine(progress, min_ratio)


def build_scheduler(optimizer, cfg: Mapping[str, Any], base_lr: float, steps_per_epoch: int, total_steps: int):
    """The ``torch.optim.lr_scheduler.LambdaLR`` of ``train.scheduler`` (see the module docstring)."""
    import torch  # local: training.config reads SCHEDULES without importing torch

    kind = cfg["name"]
    if kind not in SCHEDULES:
        raise ConfigError(f"train.scheduler.name: {kind!r} is not one of {', '.join(SCHEDULES)}")
    warmup_start = cfg.get("warmup_start", "zero")
    if warmup_start not in WARMUP_STARTS:
        raise ConfigError(f"train.scheduler.warmup_start: {warmup_start!r} is not one of {', '.join(WARMUP_STARTS)}")
    warmup = int(round(cfg["warmup_epochs"] * steps_per_epoch))
    min_ratio = cfg["min_lr"] / base_lr if base_lr else 0.0
    cycle_steps = None
    if kind == "cyclic":
        cycle_epochs = cfg.get("cycle_epochs")
        if not cycle_epochs or cycle_epochs <= 0:
            raise ConfigError("train.scheduler.name is cyclic: set train.scheduler.cycle_epochs > 0 "
                             "(epochs per cosine cycle; GenD uses 10)")
        cycle_steps = max(1, int(cycle_epochs * steps_per_epoch))  # int() as GenD's T_0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup, min_ratio, kind, cycle_steps, warmup_start))
