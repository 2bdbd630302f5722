"""What every benchmark reports besides its own timing: the host, the precision, the FLOPs the
model really runs, and the ceiling this machine reaches on the model's own matrix products.

* ``host_description`` names the CPU (model, the ISA flags that decide GEMM speed: AVX2,
  AVX-512, avx512_bf16, AMX) or the GPU, the cores this process may use and the library builds.
* ``count_flops`` runs a callable under ``torch.utils.flop_counter.FlopCounterMode``: FLOPs
  counted from the operations executed (matmuls, convolutions, attention), not assumed.
* ``record_gemms`` records the shape and dtype of every matrix product the callable runs;
  ``gemm_ceiling`` times exactly those products in isolation, in the same precision, in the same
  process, and returns their FLOP-weighted rate. A model step divided by that rate reads as a
  fraction of what this machine can do for this model, whatever the host.
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections import Counter
from typing import Callable, Dict, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "sve", "asimd")
GemmKey = Tuple[int, int, int, int, str]  # (batch, m, k, n, dtype)


def host_description(device: torch.device) -> Dict[str, object]:
    from training.engine.precision import cpu_flags

    flags = cpu_flags()
    cpu_model = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    host = {"cpu": cpu_model, "isa": [f for f in ISA_FLAGS if f in flags], "cores": cores,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if torch.device(device).type == "cuda":
        host["gpu"] = torch.cuda.get_device_name(device)
        host["cuda"] = torch.version.cuda
    return host


def host_line(host: Dict[str, object]) -> str:
    gpu = f"; GPU {host['gpu']} (CUDA {host['cuda']})" if "gpu" in host else ""
    return (f"host: {host['cpu']} [{' '.join(host['isa']) or 'no AVX2'}], {host['cores']} cores, "
            f"{host['torch_threads']} torch threads, torch {host['torch']}{gpu}")


@contextlib.contextmanager
def standard_products():
    """Route our frozen CPU linears through ``F.linear`` while counting: the oneDNN primitive they
    may use (training/models/backbones/frozen_linear.py) is invisible to FlopCounterMode and to
    the GEMM recorder. The FLOPs are the same whichever library multiplies."""
    from training.models.backbones.frozen_linear import BACKEND_ENV

    previous = os.environ.get(BACKEND_ENV)
    os.environ[BACKEND_ENV] = "mkl"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[BACKEND_ENV]
        else:
            os.environ[BACKEND_ENV] = previous


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with standard_products(), counter:
        fn()
    return int(counter.get_total_flops())


class _GemmRecorder(TorchDispatchMode):
    """Counts (batch, m, k, n, dtype) of every mm / addmm / bmm / baddbmm dispatched."""

    def __init__(self):
        super().__init__()
        self.gemms: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        aten = torch.ops.aten
        packet = getattr(func, "overloadpacket", None)
        if packet in (aten.mm, aten.addmm, aten.bmm, aten.baddbmm):
            a, b = (args[0], args[1]) if packet in (aten.mm, aten.bmm) else (args[1], args[2])
            if a.dim() == 2:
                key = (1, a.shape[0], a.shape[1], b.shape[1], str(a.dtype))
            else:
                key = (a.shape[0], a.shape[1], a.shape[2], b.shape[2], str(a.dtype))
            self.gemms[key] += 1
        return func(*args, **(kwargs or {}))


def record_gemms(fn: Callable[[], object]) -> Counter:
    recorder = _GemmRecorder()
    with standard_products(), recorder:
        fn()
    return recorder.gemms


def _time_gemm(key: GemmKey, device: torch.device, repeats: int) -> float:
    batch, m, k, n, dtype_name = key
    dtype = getattr(torch, dtype_name.replace("torch.", ""))
    a = torch.randn(batch, m, k, device=device).to(dtype)
    b = torch.randn(batch, k, n, device=device).to(dtype)
    run = (lambda: torch.mm(a[0], b[0])) if batch == 1 else (lambda: torch.bmm(a, b))
    times = []
    for index in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index:  # the first call warms caches and kernel selection
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_ceiling(gemms: Counter, device: torch.device, repeats: int = 5) -> Dict[str, float]:
    """FLOP-weighted rate of the recorded products run in isolation (same shapes, same dtype).

    Only shapes that carry at least 0.5 % of the FLOPs are timed (the many tiny products of a
    step would otherwise take longer to time than the step); they are still counted in the FLOPs."""
    flops = {key: 2 * key[0] * key[1] * key[2] * key[3] * count for key, count in gemms.items()}
    total = sum(flops.values())
    timed_flops, timed_seconds = 0, 0.0
    for key, key_flops in sorted(flops.items(), key=lambda item: -item[1]):
        if key_flops < 0.005 * total:
            break
        timed_seconds += _time_gemm(key, torch.device(device), repeats) * gemms[key]
        timed_flops += key_flops
    rate = timed_flops / timed_seconds if timed_seconds else float("nan")
    return {"gemm_gflop": total / 1e9, "ceiling_gflops": rate / 1e9, "timed_fraction": timed_flops / max(total, 1)}
