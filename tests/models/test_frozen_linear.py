"""training/models/backbones/frozen_linear.py: same numbers as F.linear, only where it is safe,
through the GEMM library measured faster for each shape."""
import pytest
import torch
import torch.nn.functional as F

from training.models.backbones import frozen_linear as frozen_linear_module
from training.models.backbones.frozen_linear import (BACKEND_ENV, FrozenAwareLinear, frozen_linear, measured_choices,
                                                     onednn_linear_available, use_frozen_aware_linears)

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="this torch build has no oneDNN linear")


@pytest.mark.parametrize("backend", ["onednn", "mkl", "auto"])
def test_frozen_weights_give_f_linear_outputs_and_input_gradients(backend, monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, backend)
    torch.manual_seed(0)
    weight, bias = torch.randn(48, 32) / 6, torch.randn(48)
    x = torch.randn(2, 7, 32, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = frozen_linear(x, weight, bias)
    ref = F.linear(x_ref, weight, bias)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    assert out.grad_fn.next_functions[0][0].name().endswith("_FrozenLinearBackward")  # the frozen path


def test_auto_measures_each_shape_once_and_records_the_choice(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "auto")
    monkeypatch.setattr(frozen_linear_module, "_CHOICES", {})
    weight = torch.randn(24, 16)
    x = torch.randn(5, 16, requires_grad=True)
    frozen_linear(x, weight, None).sum().backward()
    frozen_linear(torch.randn(5, 16), weight, None)  # same shape: no second measurement
    choices = measured_choices()
    # forward (5x16 by 16->24) and input-gradient backward (5x24 by the transposed weight)
    assert set(choices) == {(5, 16, 24, False, False), (5, 24, 16, True, False)}
    assert set(choices.values()) <= {"mkl", "onednn"}


def test_deterministic_mode_uses_mkl_without_timing(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "auto")
    monkeypatch.setattr(frozen_linear_module, "_CHOICES", {})
    monkeypatch.setattr(frozen_linear_module, "_typical_seconds", lambda *_: pytest.fail("timed in deterministic mode"))
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        weight, x = torch.randn(24, 16), torch.randn(5, 16)
        out = frozen_linear(x, weight, None)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    assert torch.equal(out, F.linear(x, weight)) and measured_choices() == {}


def test_unknown_backend_setting_is_named(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "blas")
    with pytest.raises(ValueError, match=f"{BACKEND_ENV}='blas'.*auto, mkl, onednn"):
        frozen_linear(torch.randn(2, 4), torch.randn(3, 4), None)


def test_trainable_weights_and_autocast_keep_f_linear():
    weight = torch.randn(8, 4, requires_grad=True)
    out = frozen_linear(torch.randn(3, 4), weight, None)
    assert "FrozenLinear" not in out.grad_fn.name()
    out.sum().backward()
    assert weight.grad is not None  # a trainable weight still gets its gradient
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert frozen_linear(torch.randn(3, 4), weight.detach(), None).dtype == torch.bfloat16


def test_conversion_keeps_parameters_and_state_dict_keys():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    keys, first_weight = list(model.state_dict()), model[0].weight
    assert use_frozen_aware_linears(model) == 2
    assert isinstance(model[0], FrozenAwareLinear) and model[0].weight is first_weight
    assert list(model.state_dict()) == keys
