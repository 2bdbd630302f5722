"""Which numeric precision a run computes in, decided once from ``train.amp`` and the device.

LN-CLIP and GenD train with Lightning's ``bf16-mixed`` (autocast to bfloat16, fp32 master
weights), so ``amp: auto`` does the same wherever the hardware has bf16 arithmetic units:

* CUDA: bf16 autocast when the GPU supports bf16 (``torch.cuda.is_bf16_supported()``), else fp32;
* CPU: bf16 autocast only when the processor has native bf16 instructions (``avx512_bf16`` or
  Intel AMX ``amx_bf16``). Without them PyTorch emulates bf16 matrix products through fp32 and
  the run gets slower and less exact at once, so ``auto`` stays fp32 there;
* ``bf16`` forces bf16 autocast, ``off`` forces fp32.

The choice and its reason are logged once per process, so a results table can say what ran.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, Optional

import torch

from training.errors import ConfigError

log = logging.getLogger(__name__)

AMP_MODES = ("auto", "bf16", "off")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    dtype: Optional[torch.dtype]  # autocast dtype, None for plain fp32
    reason: str

    @property
    def name(self) -> str:
        return "bf16-mixed" if self.dtype is torch.bfloat16 else "fp32"


@lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """The processor's feature flags (Linux ``/proc/cpuinfo``; empty where that file is absent)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return frozenset()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16_units() -> bool:
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def resolve_precision(amp: str, device: torch.device) -> Precision:
    if amp not in AMP_MODES:
        raise ConfigError(f"train.amp '{amp}' is not one of {', '.join(AMP_MODES)}.")
    device = torch.device(device)
    if amp == "off":
        return Precision(None, "train.amp=off")
    if amp == "bf16":
        return Precision(torch.bfloat16, "train.amp=bf16 (forced)")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision(torch.bfloat16, f"train.amp=auto on CUDA ({torch.cuda.get_device_name(device)})")
        return Precision(None, "train.amp=auto on a CUDA GPU without bf16 support")
    if device.type == "cpu":
        if cpu_has_bf16_units():
            found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
            return Precision(torch.bfloat16, f"train.amp=auto on a CPU with bf16 units ({', '.join(found)})")
        return Precision(None, "train.amp=auto on a CPU without bf16 units (no avx512_bf16/amx_bf16)")
    return Precision(None, f"train.amp=auto on device type {device.type} (fp32)")


_announced: set = set()


def autocast_context(device: torch.device, amp: str):
    """The autocast context of ``resolve_precision`` (a no-op context for fp32)."""
    precision = resolve_precision(amp, device)
    key = (str(device), amp)
    if key not in _announced:
        _announced.add(key)
        log.info("Precision: %s (%s)", precision.name, precision.reason)
    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=precision.dtype)
