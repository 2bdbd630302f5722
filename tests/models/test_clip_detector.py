"""LN-CLIP detector: trainable counts, gradient flow, equivalence with open_clip, checkpoints."""
from __future__ import annotations

import pytest
import torch

from training.engine.checkpoint import CheckpointError, load_detector_weights, save_checkpoint
from training.models.detectors.clip_detector import ClipDetector

TINY = {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 16}


def make_detector(arch="custom", pretrained=None, vision_cfg=TINY, **overrides):
    cfg = ClipDetector.default_config()
    cfg["name"] = "clip"
    cfg["backbone"].update(arch=arch, pretrained=pretrained, vision_cfg=vision_cfg)
    cfg["backbone"].update(overrides.pop("backbone", {}))
    cfg.update(overrides)
    return ClipDetector(cfg)


@pytest.mark.parametrize("arch,expected", [("ViT-B-16", 41_474), ("ViT-L-14", 104_450)])
def test_trainable_parameter_counts_match_the_reference(arch, expected):
    with torch.device("meta"):  # counts only: no memory, no init time
        detector = make_detector(arch=arch, vision_cfg=None)
    trainable = sum(p.numel() for p in detector.parameters() if p.requires_grad)
    assert trainable == expected
    assert detector.backbone.width == {"ViT-B-16": 768, "ViT-L-14": 1024}[arch]


def test_ln_mlp_head_has_the_thesis_shape():
    with torch.device("meta"):
        detector = make_detector(arch="ViT-B-16", vision_cfg=None, head="ln_mlp")
    head = sum(p.numel() for p in detector.head.parameters())
    assert head == 768 * 512 + 512 + 512 * 2 + 2


def test_gradients_reach_only_layernorms_and_head():
    detector = make_detector(tuning="ln")
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    out = detector(batch)
    detector.losses(batch, out)["total"].backward()
    norm_ids = {id(p) for ln in detector.backbone.layernorms() for p in ln.parameters()}
    for name, param in detector.named_parameters():
        is_trainable = id(param) in norm_ids or name.startswith("head.")
        assert param.requires_grad == is_trainable, name
        if is_trainable:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    # ln_pre, ln_1/ln_2 of each block and ln_post
    assert len(detector.backbone.layernorms()) == 2 * TINY["layers"] + 2


def test_feature_equals_open_clip_vision_forward(tmp_path):
    """With untouched LayerNorms the detector's CLS feature is open_clip's pre-projection output,
    and weights load from a local open_clip checkpoint file. ViT-B-16 is an OpenAI arch, so the
    tower is QuickGELU also for a local file (docs/ARCHITECTURE.md): the reference must be too."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True)
    reference.eval()
    weights = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(weights))
    detector = make_detector(arch="ViT-B-16", pretrained=str(weights), vision_cfg=None).eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference.visual.proj = None
        expected = reference.visual(images)
        actual = detector.encode(images)
    assert actual.shape == (2, 768)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_missing_pretrained_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not available offline.*Download.*put it at"):
        make_detector(arch="ViT-B-16", pretrained="openai", vision_cfg=None,
                      backbone={"arch": "ViT-B-16", "pretrained": "openai", "vision_cfg": None, "quick_gelu": None,
                                "weights_dir": str(tmp_path), "allow_download": False})


def _pretrained_tiny(tmp_path, seed=0):
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    donor = make_detector()
    path = tmp_path / f"tiny_{seed}.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in donor.backbone.visual.state_dict().items()}, str(path))
    return path


def test_compact_checkpoint_round_trip_and_hash_check(tmp_path):
    weights = _pretrained_tiny(tmp_path)
    trained = make_detector(pretrained=str(weights))
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    state = trained.checkpoint_state()
    assert state["format"] == "compact"
    stored = sum(v.numel() for v in state["state_dict"].values())
    assert stored == sum(p.numel() for p in trained.parameters() if p.requires_grad)
    save_checkpoint(tmp_path / "ckpt.pt", {"model": state})

    fresh = make_detector(pretrained=str(weights)).eval()
    load_detector_weights(fresh, tmp_path / "ckpt.pt")
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh({"image": images})["logits"], trained.eval()({"image": images})["logits"])

    other_backbone = make_detector(pretrained=str(_pretrained_tiny(tmp_path, seed=1)))
    with pytest.raises(CheckpointError, match="frozen-weight hash"):
        load_detector_weights(other_backbone, tmp_path / "ckpt.pt")
