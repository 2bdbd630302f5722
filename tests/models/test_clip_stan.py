"""CLIP-STAN: equivalence with the frame-averaged CLIP detector at initialisation, token layouts,
order sensitivity once trained, trainable parts, configs and compact checkpoints."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.config import load_config
from training.engine.checkpoint import CheckpointError
from training.models import build_detector, count_parameters
from training.models.detectors.clip_detector import ClipDetector
from training.models.detectors.clip_stan import ClipStanDetector
from training.models.modules.temporal import (TemporalAttention, frames_to_patch_sequences,
                                              patch_sequences_to_frames)

TINY = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 3, "head_width": 8}  # 16 patches


def make_stan(frames=4, depth=2, seed=0, **overrides) -> ClipStanDetector:
    cfg = ClipStanDetector.default_config()
    cfg["name"] = "clip_stan"
    cfg["backbone"].update({"arch": "custom", "pretrained": None, "vision_cfg": TINY, **overrides.pop("backbone", {})})
    cfg.update({"frames": frames, "branch_depth": depth, **overrides})
    torch.manual_seed(seed)
    return ClipStanDetector(cfg)


def clip_detector_sharing(stan: ClipStanDetector) -> ClipDetector:
    """The frame-level CLIP detector with STAN's tower, pooling, normalisation and head."""
    cfg = ClipDetector.default_config()
    cfg["name"] = "clip"
    cfg["backbone"].update(stan.cfg["backbone"])
    cfg["normalize_feature"] = stan.cfg["normalize_feature"]
    clip = ClipDetector(cfg)
    clip.backbone.load_state_dict(stan.backbone.state_dict())
    clip.head.load_state_dict(stan.head.state_dict())
    return clip.eval()


def perturb_temporal_weights(stan: ClipStanDetector) -> None:
    """What training does first: the zero-initialised output projections become non-zero."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in stan.branch:
            out = layer.temporal.attn.out_proj
            out.weight.copy_(torch.randn(out.weight.shape, generator=generator) * 0.3)
        stan.time_embed.copy_(torch.randn(stan.time_embed.shape, generator=generator))


def clips(batch=3, frames=4, seed=2):
    return torch.randn(batch, frames, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ equivalence

DEMO_TOWER = {"backbone": {"arch": "custom", "pretrained": None, "conv_stem": True,
                           "vision_cfg": {**TINY, "pool_type": "avg"}},
              "normalize_feature": False}  # the demo configs' tower: conv stem, mean patch pooling


@pytest.mark.parametrize("depth,tower", [(1, {}), (3, {}), (2, DEMO_TOWER)])  # 3: a branch layer per block
def test_initial_output_is_the_frame_averaged_clip_detector(depth, tower):
    """Frame-averaged CLIP output := head(normalize(mean_t pool(ln_post(tokens_t)))), see clip_stan.py."""
    stan = make_stan(depth=depth, **tower).eval()
    clip = clip_detector_sharing(stan)
    images = clips()
    with torch.no_grad():
        out = stan({"image": images})
        per_frame = clip.encode(images.flatten(0, 1)).reshape(3, 4, -1)  # (B, T, D) before normalisation
        expected_feat = per_frame.mean(dim=1)
        if stan.cfg["normalize_feature"]:
            expected_feat = F.normalize(expected_feat, dim=-1)
        expected_logits = clip.head(expected_feat)
    torch.testing.assert_close(out["feat"], expected_feat, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["logits"], expected_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["prob"], torch.softmax(expected_logits, -1)[:, 1], atol=1e-5, rtol=0)
    if stan.cfg["normalize_feature"]:  # then it is not the mean of per-frame probabilities (documented choice)
        frame_probs = clip({"image": images.flatten(0, 1)})["prob"].reshape(3, 4).mean(dim=1)
        assert not torch.allclose(out["prob"], frame_probs, atol=1e-6)


def test_spatial_blocks_are_independent_copies_of_the_last_clip_blocks():
    stan = make_stan(depth=2)
    for j, layer in enumerate(stan.branch):
        block = stan.backbone.blocks[1 + j]  # 3 blocks, depth 2: blocks 1 and 2
        own, reference = layer.spatial.state_dict(), block.state_dict()
        assert own.keys() == reference.keys()
        for key in own:
            assert torch.equal(own[key], reference[key]), key
            assert own[key].data_ptr() != reference[key].data_ptr(), f"{key} is shared, not copied"


# --------------------------------------------------------------------------------- layouts

def test_layout_round_trip_and_patch_major_order():
    batch, frames, n_patches, dim = 2, 3, 5, 4
    # token value = 100*b + 10*t + n in every channel: its position is readable from its value
    b = torch.arange(batch).view(batch, 1, 1)
    t = torch.arange(frames).view(1, frames, 1)
    n = torch.arange(n_patches).view(1, 1, n_patches)
    tokens = (100 * b + 10 * t + n).float().reshape(batch * frames, n_patches, 1).expand(-1, -1, dim)
    sequences = frames_to_patch_sequences(tokens, frames)
    assert sequences.shape == (batch * n_patches, frames, dim)
    for bi in range(batch):
        for ni in range(n_patches):
            row = sequences[bi * n_patches + ni, :, 0]
            assert row.tolist() == [100 * bi + 10 * ti + ni for ti in range(frames)]
    assert torch.equal(patch_sequences_to_frames(sequences, n_patches), tokens)


def test_temporal_attention_mixes_one_patch_across_frames_only():
    """Changing patch n of frame t changes exactly patch n of the same clip, in every frame
    (the public port's plain reshape mixed different patches of one frame instead)."""
    stan = make_stan(frames=4, depth=1)
    perturb_temporal_weights(stan)
    layer = stan.branch[0]
    tokens = torch.randn(2 * 4, 1 + 16, 32)
    changed = tokens.clone()
    changed[1 * 4 + 2, 1 + 5] += torch.randn(32)  # clip 1, frame 2, patch 5 (not a constant: LN removes those)
    with torch.no_grad():
        def temporal(x):
            sequences = layer.temporal(frames_to_patch_sequences(x[:, 1:], 4), stan.time_embed)
            return patch_sequences_to_frames(sequences, 16).reshape(2, 4, 16, 32)
        moved = (temporal(changed) - temporal(tokens)).abs().amax(dim=-1) > 1e-6  # (B, T, N)
    expected = torch.zeros(2, 4, 16, dtype=torch.bool)
    expected[1, :, 5] = True
    assert torch.equal(moved, expected)


def test_fresh_temporal_layer_is_the_identity():
    layer = TemporalAttention(32, 4)
    sequences = torch.randn(6, 4, 32)
    assert torch.equal(layer(sequences, torch.randn(4, 32)), sequences)


# ------------------------------------------------------------------------ temporal behaviour

def test_frame_order_matters_only_once_temporal_weights_are_trained():
    stan = make_stan(frames=4).eval()
    images = clips()
    reversed_order = images.flip(1)
    with torch.no_grad():
        before = stan({"image": images})["logits"], stan({"image": reversed_order})["logits"]
        perturb_temporal_weights(stan)
        after = stan({"image": images})["logits"], stan({"image": reversed_order})["logits"]
    torch.testing.assert_close(*before, atol=1e-5, rtol=0)  # at init: a per-frame average
    assert (after[0] - after[1]).abs().max() > 1e-3


@pytest.mark.parametrize("frames", [4, 8, 16])
def test_clip_lengths_run_forward_and_backward(frames):
    stan = make_stan(frames=frames).train()
    assert stan.input_spec.frames_per_sample == frames
    batch = {"image": clips(batch=2, frames=frames), "label": torch.tensor([0, 1])}
    out = stan(batch)
    assert out["prob"].shape == (2,) and out["feat"].shape == (2, 32)
    stan.losses(batch, out)["total"].backward()
    for layer in stan.branch:  # the zero-initialised projections get the first gradient
        grad = layer.temporal.attn.out_proj.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_wrong_clip_length_is_a_clear_error():
    stan = make_stan(frames=4)
    with pytest.raises(ValueError, match=r"T=4.*got \(2, 8, 3, 32, 32\).*model.frames"):
        stan({"image": clips(batch=2, frames=8)})
    with pytest.raises(ValueError, match="T=4"):
        stan({"image": torch.randn(2, 3, 32, 32)})


# ------------------------------------------------------------------------- trainable parts

@pytest.mark.parametrize("tuning,branch", [("ln", "all"), ("frozen", "temporal_only"), ("ln", "temporal_only"),
                                           ("full", "all")])
def test_trainable_parts_follow_the_config_and_get_gradients(tuning, branch):
    stan = make_stan(tuning=tuning, branch_trainable=branch).train()
    batch = {"image": clips(batch=2), "label": torch.tensor([0, 1])}
    perturb_temporal_weights(stan)  # so that gradients reach every temporal parameter
    stan.losses(batch, stan(batch))["total"].backward()
    spatial_mode = "full" if branch == "all" else tuning
    for name, param in stan.named_parameters():
        is_norm = ".ln_" in name or name.startswith("backbone.visual.ln_")
        if name.startswith("backbone."):
            expected = tuning == "full" or (tuning == "ln" and is_norm)
        elif ".spatial." in name:
            expected = spatial_mode == "full" or (spatial_mode == "ln" and is_norm)
        else:  # temporal layers, time embedding, head
            expected = True
        assert param.requires_grad == expected, name
        if expected:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    report = stan.parameter_report()
    counts = count_parameters(stan)
    assert sum(part["trainable"] for part in report.values()) == counts["trainable"]
    assert sum(part["total"] for part in report.values()) == counts["total"]


def test_vitb16_config_sizes():
    with torch.device("meta"):
        config = load_config("configs/detector/clip_stan_vitb16.yaml", ["model.backbone.pretrained=null"])
        stan = build_detector(config)
    report = stan.parameter_report()
    assert stan.input_spec.frames_per_sample == 8 and stan.input_spec.resolution == 224
    per_temporal_layer = 2 * 768 + (3 * 768 * 768 + 3 * 768) + (768 * 768 + 768)
    assert report["temporal"]["total"] == 4 * per_temporal_layer + 8 * 768  # + time embedding
    assert report["tower"] == {"trainable": 39_936, "total": 85_799_424}  # LN-tuned ViT-B/16 without proj
    assert report["spatial"]["total"] == 4 * 7_087_872  # four ViT-B/16 blocks


def test_demo_config_builds_a_clip_detector_for_the_data_layer():
    config = load_config("configs/detector/demo_clip_stan_tiny.yaml",
                         ["model.backbone.vision_cfg={image_size: 32, patch_size: 8, width: 32, layers: 2, "
                          "head_width: 8}"])
    stan = build_detector(config)
    assert stan.input_spec.frames_per_sample == config["model"]["frames"] == 8
    assert config["data"]["train_dataset"] == ["DemoTemporal"]


@pytest.mark.parametrize("key,value", [("tuning", "linear_probe"), ("branch_trainable", "spatial"),
                                       ("frames", 1), ("branch_depth", 4)])
def test_bad_config_values_are_named(key, value):
    with pytest.raises(ValueError, match=f"model.{key}"):
        make_stan(**{key: value})


# ------------------------------------------------------------------------------ checkpoints

def test_compact_checkpoint_round_trip(tmp_path):
    """A pretrained, LN-tuned tower: only trainable parameters are stored; the frozen spatial copies
    are rebuilt from the same weights file."""
    from safetensors.torch import save_file

    source = make_stan(seed=3)
    weights = tmp_path / "tower.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in source.backbone.visual.state_dict().items()}, str(weights))
    trained = make_stan(seed=4, tuning="ln", branch_trainable="temporal_only",
                        backbone={"pretrained": str(weights)})
    perturb_temporal_weights(trained)
    with torch.no_grad():
        trained.head.weight.add_(1.0)
        trained.backbone.visual.ln_post.weight.mul_(1.5)
    state = trained.checkpoint_state()
    assert state["format"] == "compact"
    assert set(state["state_dict"]) == {n for n, p in trained.named_parameters() if p.requires_grad}
    assert not any(".spatial.attn" in key or ".spatial.mlp" in key for key in state["state_dict"])
    fresh = make_stan(seed=5, tuning="ln", branch_trainable="temporal_only",
                      backbone={"pretrained": str(weights)})
    fresh.load_checkpoint_state(state, "ckpt")
    images = clips()
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()({"image": images})["logits"],
                                   trained.eval()({"image": images})["logits"], atol=0, rtol=0)
    other = make_stan(seed=6, tuning="ln", branch_trainable="all",
                      backbone={"pretrained": str(weights)})
    with pytest.raises(CheckpointError, match="lacks trainable parameter"):
        other.load_checkpoint_state(state, "ckpt")


# ------------------------------------------------------------------------------ learning

def flicker_clips(n, frames, amp, generator):
    """Synthetic clips whose forgery no single frame shows: a static random scene + per-frame noise,
    and every video's centre gets a random brightness level (std 1); fakes add ±amp to the centre
    with the sign alternating from frame to frame (as DemoTemporal's flicker, much stronger)."""
    mask = torch.zeros(1, 1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    x = torch.randn(n, 1, 3, 32, 32, generator=generator) + 0.3 * torch.randn(n, frames, 3, 32, 32, generator=generator)
    x = x + torch.randn(n, 1, 1, 1, 1, generator=generator) * mask
    y = torch.randint(0, 2, (n,), generator=generator)
    phase = torch.randint(0, 2, (n, 1, 1, 1, 1), generator=generator) * 2 - 1
    sign = torch.tensor([(-1.0) ** t for t in range(frames)]).view(1, frames, 1, 1, 1) * phase
    return x + amp * y.view(-1, 1, 1, 1, 1) * sign * mask, y


def test_learns_a_flicker_that_single_frames_do_not_show():
    """Same tower, same initial weights, same frames and steps: CLIP-STAN learns the temporal cue,
    the frame-level CLIP detector (scored like a video: mean of its frame probabilities) does not."""
    from sklearn.metrics import roc_auc_score

    frames, amp = 4, 1.5
    stan = make_stan(frames=frames, depth=1)
    frame_model = clip_detector_sharing(stan)
    test_x, test_y = flicker_clips(200, frames, amp, torch.Generator().manual_seed(1))
    aucs = {}
    for name, model in (("stan", stan), ("frame", frame_model)):
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(40):
            x, y = flicker_clips(16, frames, amp, generator)
            if name == "frame":
                x, y = x.flatten(0, 1), y.repeat_interleave(frames)
            loss = model.losses({"label": y}, model({"image": x}))["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            if name == "stan":
                prob = model({"image": test_x})["prob"]
            else:
                prob = model({"image": test_x.flatten(0, 1)})["prob"].view(-1, frames).mean(dim=1)
        aucs[name] = roc_auc_score(test_y.numpy(), prob.numpy())
    assert aucs["stan"] > 0.9 and aucs["frame"] < 0.75, aucs
