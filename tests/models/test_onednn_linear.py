"""training/models/backbones/onednn_linear.py: same numbers as F.linear, only where it is safe."""
import pytest
import torch
import torch.nn.functional as F

from training.models.backbones.onednn_linear import (FrozenAwareLinear, frozen_linear, onednn_linear_available,
                                                     use_frozen_aware_linears)

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="this torch build has no oneDNN linear")


def test_frozen_weights_give_f_linear_outputs_and_input_gradients():
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
    assert out.grad_fn.next_functions[0][0].name().endswith("_FrozenLinearBackward")  # the oneDNN path


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
