"""Precision choice (train.amp), bf16 tolerances, torch.compile, channels-last, fused optimizer, workers."""
from __future__ import annotations

import copy
import shutil

import pytest
import torch
from torch import nn

from training.config import load_config
from training.engine import precision as precision_mod
from training.engine.distributed import unwrap
from training.engine.performance import (compile_mode, loader_workers, optimizer_options, use_channels_last,
                                         wrap_for_training)
from training.engine.precision import autocast_context, resolve_precision
from training.models import build_detector

CPU = torch.device("cpu")


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU has the given feature flags."""
    def set_flags(*names):
        monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset(names))
    return set_flags


def test_auto_is_fp32_on_a_cpu_without_bf16_units(flags):
    flags("avx2", "fma", "avx512f")  # AVX-512 alone emulates bf16 through fp32: not worth it
    choice = resolve_precision("auto", CPU)
    assert choice.dtype is None and choice.name == "fp32"
    assert "without bf16 units" in choice.reason


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_is_bf16_on_a_cpu_with_bf16_units(flags, flag):
    flags("avx2", flag)
    choice = resolve_precision("auto", CPU)
    assert choice.dtype is torch.bfloat16 and choice.name == "bf16-mixed"
    assert flag in choice.reason


def test_forced_and_disabled_precision_ignore_the_hardware(flags):
    flags("amx_bf16")
    assert resolve_precision("off", CPU).dtype is None
    flags()
    assert resolve_precision("bf16", CPU).dtype is torch.bfloat16
    with pytest.raises(ValueError, match="train.amp 'fp16'"):
        resolve_precision("fp16", CPU)


def test_auto_on_cuda_follows_the_gpus_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda", 0)).dtype is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", torch.device("cuda", 0)).dtype is None


def test_autocast_context_really_computes_in_bf16(flags):
    flags("amx_bf16")
    layer = nn.Linear(8, 8)
    with autocast_context(CPU, "auto"):
        assert layer(torch.randn(2, 8)).dtype is torch.bfloat16
    flags()
    with autocast_context(CPU, "auto"):
        assert layer(torch.randn(2, 8)).dtype is torch.float32


def _tiny_detector(tiny_config, *overrides):
    torch.manual_seed(0)
    return build_detector(load_config(tiny_config, list(overrides))).eval()


def _batch(seed=1, n=6):
    generator = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, 32, 32, generator=generator), "label": torch.tensor([0, 1] * (n // 2))}


def test_bf16_forward_and_loss_stay_close_to_fp32(tiny_config):
    """bf16 autocast keeps P(fake) within 0.02 and the loss within 2 % (bf16 has 8 mantissa bits)."""
    detector = _tiny_detector(tiny_config)
    batch = _batch()
    with torch.no_grad():
        reference = detector(batch)
        reference_loss = detector.losses(batch, reference)["total"]
        with autocast_context(CPU, "bf16"):
            mixed = detector(batch)
            mixed_loss = detector.losses(batch, mixed)["total"]
    assert (mixed["prob"].float() - reference["prob"]).abs().max() < 0.02
    assert abs(float(mixed_loss) - float(reference_loss)) < 0.02 * abs(float(reference_loss)) + 1e-3


def test_bf16_gradients_point_the_same_way_as_fp32(tiny_config):
    detector = _tiny_detector(tiny_config, "model.tuning=ln")
    batch = _batch()
    grads = []
    for amp in ("off", "bf16"):
        detector.zero_grad(set_to_none=True)
        with autocast_context(CPU, amp):
            loss = detector.losses(batch, detector(batch))["total"]
        loss.backward()
        grads.append(torch.cat([p.grad.flatten().float() for p in detector.parameters() if p.grad is not None]))
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cosine > 0.99


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("gcc") is None,
                    reason="torch.compile's CPU backend needs a C/C++ compiler")
def test_compiled_detector_equals_eager_and_keeps_checkpoint_keys(tiny_config):
    detector = _tiny_detector(tiny_config)
    eager = copy.deepcopy(detector)
    model = wrap_for_training(detector, {"compile": True, "channels_last": "auto"}, CPU, distributed=False)
    assert model is not detector and unwrap(model) is detector
    batch = _batch()
    with torch.no_grad():
        compiled_prob = model(batch)["prob"]
        eager_prob = eager(batch)["prob"]
    torch.testing.assert_close(compiled_prob, eager_prob, atol=1e-5, rtol=1e-5)
    assert list(unwrap(model).state_dict()) == list(eager.state_dict())


def test_compile_setting_is_validated():
    assert compile_mode(False) is None and compile_mode(True) == "default"
    assert compile_mode("max-autotune") == "max-autotune"
    with pytest.raises(ValueError, match="train.compile 'fast'"):
        compile_mode("fast")


class _Cnn(nn.Module):
    prefers_channels_last = True

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


def test_channels_last_only_where_it_helps_and_with_the_same_output():
    cnn = _Cnn()
    assert not use_channels_last(cnn, "auto", CPU)  # CPU: no gain measured, keep NCHW
    assert use_channels_last(cnn, "auto", torch.device("cuda", 0))
    assert not use_channels_last(nn.Linear(2, 2), "auto", torch.device("cuda", 0))  # ViTs: nothing to gain
    images = torch.randn(2, 3, 8, 8)
    expected = cnn(images)
    model = wrap_for_training(cnn, {"channels_last": True}, CPU, distributed=False)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(images), expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="train.channels_last"):
        use_channels_last(cnn, "yes", CPU)


def test_fused_optimizer_only_for_cuda_parameters():
    assert optimizer_options([nn.Parameter(torch.zeros(2))]) == {}
    assert optimizer_options([]) == {}


def test_training_config_accepts_the_speed_settings(tiny_config):
    config = load_config(tiny_config, ["train.compile=reduce-overhead", "train.channels_last=false",
                                       "data.num_workers=auto"])
    assert config["train"]["compile"] == "reduce-overhead"
    with pytest.raises(ValueError, match="train.compile"):
        load_config(tiny_config, ["train.compile=turbo"])


def test_auto_workers_share_the_cpus_among_local_processes(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert loader_workers("auto") == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert loader_workers("auto") == 16  # capped
    assert loader_workers(3) == 3
    with pytest.raises(ValueError, match="data.num_workers"):
        loader_workers(-1)
