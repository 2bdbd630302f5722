"""timm CNN baselines: configs, offline pretrained weights, forward/backward, checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import load_config
from training.engine.checkpoint import load_detector_weights, save_checkpoint
from training.models import build_detector, detector_class
from training.models.backbones.timm_backbone import PretrainedWeightsMissing

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "detector"


def tiny_cfg(**backbone):
    cfg = detector_class("timm_cnn").default_config()
    cfg["name"] = "timm_cnn"
    cfg["backbone"].update({"model_name": "test_efficientnet", "pretrained": None, **backbone})
    cfg["resolution"] = 64
    return cfg


@pytest.mark.parametrize("name,model_name,mean,width", [
    ("xception", "legacy_xception", (0.5, 0.5, 0.5), 2048),
    ("efficientnet_b4", "tf_efficientnet_b4", (0.5, 0.5, 0.5), 1792),  # DeepfakeBench's padding: test_deepfakebench_checkpoints
])
def test_baseline_configs_build_the_deepfakebench_models(name, model_name, mean, width):
    config = load_config(CONFIGS / f"{name}.yaml", ["model.backbone.pretrained=null"])
    assert config["model"]["name"] == name
    assert config["model"]["backbone"]["model_name"] == model_name
    assert config["train"]["optimizer"] == {"name": "adam", "lr": 2e-4, "weight_decay": 5e-4, "betas": [0.9, 0.999]}
    with torch.device("meta"):  # structure only: no memory, no init time
        detector = build_detector(config)
    spec = detector.input_spec
    assert (spec.resolution, spec.resize_mode, spec.mean) == (256, "resize", mean)
    assert detector.head.in_features == width
    assert all(p.requires_grad for p in detector.parameters())


def test_imagenet_is_the_default_and_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    config = load_config(CONFIGS / "efficientnet_b4.yaml", [f"model.backbone.weights_dir={tmp_path / 'w'}"])
    assert config["model"]["backbone"]["pretrained"] == "aa_in1k"
    with pytest.raises(PretrainedWeightsMissing) as error:
        build_detector(config)
    message = str(error.value)
    assert str(tmp_path / "w" / "tf_efficientnet_b4" / "aa_in1k" / "model.safetensors") in message
    assert "huggingface.co/timm/tf_efficientnet_b4.aa_in1k" in message
    with pytest.raises(PretrainedWeightsMissing, match="Tags: r160_in1k"):
        detector_class("timm_cnn")(tiny_cfg(pretrained="no_such_tag"))


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_local_weights_are_loaded_without_the_classifier(tmp_path, file_name):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("test_efficientnet", pretrained=False)  # with its 1000-class classifier
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / "test_efficientnet" / "r160_in1k" / file_name
    path.parent.mkdir(parents=True)
    if file_name.endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)

    detector = detector_class("timm_cnn")(tiny_cfg(pretrained="imagenet", weights_dir=str(tmp_path)))
    assert detector.backbone.weights_file == str(path)
    loaded = detector.backbone.model.state_dict()
    assert "classifier.weight" not in loaded
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    # A path works too, and random init differs from the file.
    by_path = detector_class("timm_cnn")(tiny_cfg(pretrained=str(path)))
    assert torch.equal(by_path.backbone.model.conv_stem.weight, state["conv_stem.weight"])
    torch.manual_seed(0)
    random_init = detector_class("timm_cnn")(tiny_cfg())
    assert not torch.equal(random_init.backbone.model.conv_stem.weight, state["conv_stem.weight"])


def test_forward_losses_and_ddp_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    detector = detector_class("timm_cnn")(tiny_cfg())
    batch = {"image": torch.randn(4, 3, 64, 64), "label": torch.tensor([0, 1, 0, 1])}
    out = detector(batch)
    assert out["logits"].shape == (4, 2) and out["feat"].shape == (4, detector.backbone.num_features)
    assert ((out["prob"] >= 0) & (out["prob"] <= 1)).all()
    losses = detector.losses(batch, out)
    losses["total"].backward()
    assert torch.equal(losses["total"], losses["ce"])
    assert all(p.grad is not None for p in detector.parameters())

    # Saved as DDP would name the keys: loads into a plain detector.
    state = {f"module.{k}": v for k, v in detector.state_dict().items()}
    save_checkpoint(tmp_path / "ddp.pt", {"model": {"format": "full", "state_dict": state}})
    fresh = detector_class("timm_cnn")(tiny_cfg())
    load_detector_weights(fresh, tmp_path / "ddp.pt")
    detector.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(detector(batch)["logits"], fresh(batch)["logits"])


def test_tiny_config_is_valid_and_cpu_sized():
    config = load_config(CONFIGS / "timm_cnn_tiny.yaml")
    detector = build_detector(config)
    assert sum(p.numel() for p in detector.parameters()) < 500_000
    assert detector.input_spec.resolution == 64
