"""Device-side speed settings of a training run, in one place (issue: GPU training path).

* ``wrap_for_training``: channels-last memory format for CNN detectors on CUDA, the optional
  ``torch.compile`` of the detector, and the DDP wrapper with its gradient buckets;
* ``optimizer_options``: the fused AdamW/Adam kernels where every parameter is on CUDA;
* ``loader_workers``: ``data.num_workers: auto`` sized to this process's share of the CPUs.

Every choice here changes speed only: results equal the plain path up to floating-point
reordering (tests/engine/test_performance.py checks each on CPU).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Union

import torch
from torch import nn

from training.errors import ConfigError

log = logging.getLogger(__name__)

COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune")
CHANNELS_LAST_MODES = ("auto", True, False)
MAX_AUTO_WORKERS = 16


def use_channels_last(detector: nn.Module, setting: Union[str, bool], device: torch.device) -> bool:
    """``auto``: on CUDA for detectors that declare ``prefers_channels_last`` (convolutional
    backbones, whose cuDNN kernels run faster in NHWC); never for ViTs, which gain nothing."""
    if setting not in CHANNELS_LAST_MODES:
        raise ConfigError(f"train.channels_last '{setting}' is not one of auto, true, false.")
    if setting == "auto":
        return device.type == "cuda" and bool(getattr(detector, "prefers_channels_last", False))
    return bool(setting)


def compile_mode(setting: Union[str, bool]) -> Union[str, None]:
    if setting not in COMPILE_MODES:
        raise ConfigError(f"train.compile '{setting}' is not one of false, true, default, reduce-overhead, "
                         f"max-autotune.")
    if setting is False:
        return None
    return "default" if setting is True else str(setting)


def wrap_for_training(detector: nn.Module, train_cfg: Dict[str, Any], device: torch.device,
                      distributed: bool) -> nn.Module:
    """The module the training loop calls: the detector, possibly compiled, possibly in DDP.

    The detector itself stays reachable (``training.engine.distributed.unwrap``) for its losses,
    checkpoints and parameter lists, so compiling or wrapping changes no checkpoint key."""
    if use_channels_last(detector, train_cfg.get("channels_last", "auto"), device):
        detector.to(memory_format=torch.channels_last)
        log.info("Channels-last memory format for %s", type(detector).__name__)
    model: nn.Module = detector
    mode = compile_mode(train_cfg.get("compile", False))
    if mode is not None:
        log.info("torch.compile(mode=%s): the first steps include compilation time", mode)
        model = torch.compile(detector, mode=mode)
    if distributed:
        # Gradients as views into the buckets: no copy per step. LN-tuning trains ~10^5
        # parameters (< 1 MB), which fit one 25 MB bucket, so there is one all-reduce per step.
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    return model


def optimizer_options(params: List[nn.Parameter]) -> Dict[str, Any]:
    """``fused=True`` (one kernel for the whole update) when every parameter is on CUDA; the
    CPU keeps the default implementation, so CPU runs stay bitwise repeatable across versions."""
    if params and all(p.is_cuda for p in params):
        return {"fused": True}
    return {}


def loader_workers(setting: Union[str, int]) -> int:
    """``data.num_workers``: an integer, or ``auto`` = the CPUs this process may use divided by the
    processes on this node (torchrun's LOCAL_WORLD_SIZE), at most 16."""
    if setting != "auto":
        workers = int(setting)
        if workers < 0:
            raise ConfigError(f"data.num_workers {workers} is negative; use 0 (load in the main process), "
                             f"a positive number, or auto.")
        return workers
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cpus // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(1, min(per_process, MAX_AUTO_WORKERS))
