"""Vision towers (training/models/backbones/tower.py): GenD's tuned sets and counts, features equal
to each library's own forward, gradients only in the LayerNorms and head, every detector and
module on a timm tower, compact checkpoints, config errors."""
from __future__ import annotations

import copy

import pytest
import torch

from training.models.backbones.open_clip_vit import default_quick_gelu
from training.models.backbones.tower import build_tower
from training.models.detectors.clip_detector import ClipDetector
from training.models.detectors.clip_stan import ClipStanDetector

TINY_VIT = {"depth": 2, "embed_dim": 32, "num_heads": 4, "img_size": 32, "patch_size": 8}
TINY_CLIP = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16}
# One tiny tower per timm family shape: PE (attention pool, RoPE), DINOv3 (4 registers, RoPE), DINOv2.
TIMM_ARCHS = ["vit_pe_core_large_patch14_336", "vit_large_patch16_dinov3.lvd1689m", "vit_large_patch14_dinov2.lvd142m"]
# GenD's unfreeze_layers (src/exp/wacv_rebuttal.py): PE and DINO on timm/HF names, matched by substring.
GEND_SUBSTRINGS = {"vit_pe_core": ("norm_pre", "norm1", "norm2", "norm"),
                   "dinov3": ("norm1", "norm2", "norm"), "dinov2": ("norm1", "norm2", "norm")}


def detector_cfg(cls=ClipDetector, **backbone):
    cfg = cls.default_config()
    cfg["name"] = "clip"
    cfg["backbone"].update(backbone)
    return cfg


def tiny_timm(arch, **extra):
    return {"tower": "timm", "arch": arch, "pretrained": None, "model_kwargs": dict(TINY_VIT), **extra}


def tiny_clip(**extra):
    return {"tower": "open_clip", "arch": "custom", "pretrained": None, "vision_cfg": dict(TINY_CLIP), **extra}


def perturb_layernorms(tower):
    """LayerNorms away from (1, 0), so their gradients and outputs are not special."""
    with torch.no_grad():
        for norm in tower.layernorms():
            for param in norm.parameters():
                param.add_(0.1 * torch.randn_like(param))


# ---------------------------------------------------------------- full-size counts (meta device)

@pytest.mark.parametrize("backbone, expected", [
    ({"arch": "ViT-L-14", "pretrained": None}, 104_450),
    ({"arch": "ViT-B-16", "pretrained": None}, 41_474),
    ({"tower": "timm", "arch": "vit_pe_core_large_patch14_336", "pretrained": None, "image_size": 224}, 106_498),
    ({"tower": "timm", "arch": "vit_large_patch16_dinov3", "pretrained": None, "image_size": 224}, 102_402),
    ({"tower": "timm", "arch": "vit_large_patch14_dinov2", "pretrained": None, "image_size": 224}, 102_402),
])
def test_ln_tuning_trains_gends_parameter_count(backbone, expected):
    with torch.device("meta"):  # full size, no memory, no forward
        detector = ClipDetector(detector_cfg(**backbone))
    trainable = {name for name, p in detector.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in detector.parameters() if p.requires_grad) == expected
    assert {"head.weight", "head.bias"} <= trainable
    tower = [name[len("backbone."):] for name in trainable if name.startswith("backbone.")]
    arch = backbone["arch"]
    if backbone.get("tower") == "timm":
        # Exactly GenD's name-substring selection on the same timm model.
        substrings = next(s for key, s in GEND_SUBSTRINGS.items() if key in arch)
        gend = {f"model.{n}" for n, _ in detector.backbone.model.named_parameters() if any(s in n for s in substrings)}
        assert set(tower) == gend
    else:  # HF's pre_layrnorm / layer_norm{1,2} / post_layernorm are open_clip's ln_pre / ln_{1,2} / ln_post
        assert all(name.split(".")[-2] in ("ln_pre", "ln_1", "ln_2", "ln_post") for name in tower)
        assert len(tower) == 2 * (2 * len(detector.backbone.blocks) + 2)


def test_openai_archs_use_quickgelu_also_without_pretrained_weights():
    from open_clip.transformer import QuickGELU

    with torch.device("meta"):
        tower = build_tower({"arch": "ViT-L-14", "pretrained": None})
    assert tower.quick_gelu and all(isinstance(block.mlp.gelu, QuickGELU) for block in tower.blocks)
    assert default_quick_gelu("ViT-B-16", None) and default_quick_gelu("ViT-B-16", "openai")
    assert not default_quick_gelu("ViT-B-16", "laion2b_s34b_b88k")  # that tag was trained with GELU
    assert not default_quick_gelu("custom", None)
    with torch.device("meta"):
        assert not build_tower({"arch": "ViT-L-14", "pretrained": None, "quick_gelu": False}).quick_gelu


# ---------------------------------------------------------------- features equal the library's

def test_open_clip_feature_equals_open_clips_forward():
    from open_clip.model import _build_vision_tower

    torch.manual_seed(0)
    tower = build_tower(tiny_clip()).eval()
    perturb_layernorms(tower)
    reference = _build_vision_tower(embed_dim=16, vision_cfg=dict(TINY_CLIP), quick_gelu=False).eval()
    reference.proj = None
    reference.load_state_dict(tower.visual.state_dict())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tower.feature(images), reference(images), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(tower.pooled(tower(images)), reference(images), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", TIMM_ARCHS + ["eva02_tiny_patch14_224.mim_in22k", "vit_base_patch16_siglip_224.webli"])
@pytest.mark.parametrize("image_size", [None, 24])  # 24: dynamic_img_size, as GenD runs PE at 224
def test_timm_feature_equals_timms_forward(arch, image_size):
    import timm

    torch.manual_seed(0)
    tower = build_tower(tiny_timm(arch, image_size=image_size)).eval()
    perturb_layernorms(tower)
    kwargs = dict(TINY_VIT, dynamic_img_size=image_size is not None)
    reference = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs).eval()
    reference.load_state_dict(tower.model.state_dict())
    size = image_size or TINY_VIT["img_size"]
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        tokens = reference.forward_features(images)
        # GenD: DINO = CLS of last_hidden_state; PE = backbone(x) with head = Identity. EVA02 (avg pool +
        # fc_norm) and SigLIP (attention pool) have no GenD recipe: timm's own pre-logits feature.
        expected = tokens[:, 0] if "dino" in arch else reference.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(tower(images), tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(tower.feature(images), expected, atol=1e-5, rtol=1e-5)
    assert tower.grid_size == (size // 8, size // 8)
    assert tower.patch_tokens(tokens).shape[1] == (size // 8) ** 2
    assert tower.num_prefix_tokens == (5 if "dinov3" in arch else 0 if "siglip" in arch else 1)  # CLS + 4 registers


def test_input_spec_comes_from_the_towers_pretrained_config():
    with torch.device("meta"):
        pe = build_tower({"tower": "timm", "arch": "vit_pe_core_large_patch14_336", "pretrained": None,
                          "image_size": 224})
        dino = build_tower({"tower": "timm", "arch": "vit_large_patch16_dinov3", "pretrained": None})
        clip = build_tower({"arch": "ViT-L-14", "pretrained": None})
    assert (pe.input_spec.mean, pe.input_spec.std, pe.input_spec.resolution) == ((0.5,) * 3, (0.5,) * 3, 224)
    assert pe.model.dynamic_img_size and pe.model.patch_embed.img_size == (336, 336)  # GenD's shapes
    assert dino.input_spec.mean == (0.485, 0.456, 0.406) and dino.input_spec.resolution == 256
    assert clip.input_spec.mean[0] == pytest.approx(0.48145466) and clip.input_spec.interpolation == "pil_bicubic"
    cfg = detector_cfg(**tiny_clip())
    cfg["mean"], cfg["interpolation"] = [0.5, 0.5, 0.5], "cv2_cubic"  # detector overrides win
    spec = ClipDetector(cfg).input_spec
    assert spec.mean == (0.5, 0.5, 0.5) and spec.interpolation == "cv2_cubic" and spec.std == clip.input_spec.std


# ---------------------------------------------------------------- every detector and module on timm

TOWERS = [tiny_clip()] + [tiny_timm(arch) for arch in TIMM_ARCHS]


@pytest.mark.parametrize("backbone", TOWERS, ids=["open_clip"] + TIMM_ARCHS)
def test_ln_tuning_gradients_reach_only_layernorms_and_head(backbone):
    torch.manual_seed(0)
    detector = ClipDetector(detector_cfg(**backbone))
    perturb_layernorms(detector.backbone)
    out = detector({"image": torch.randn(4, 3, 32, 32)})
    detector.losses({"label": torch.tensor([0, 1, 0, 1])}, out)["total"].backward()
    with_grad = {name for name, p in detector.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    norms = {f"backbone.{prefix}{name}" for prefix, module in
             [("visual." if backbone["tower"] == "open_clip" else "model.", detector.backbone.library_module)]
             for name, p in module.named_parameters()
             if any(p is q for norm in detector.backbone.layernorms() for q in norm.parameters())}
    assert with_grad == norms | {"head.weight", "head.bias"}
    assert all(p.grad is None for name, p in detector.named_parameters() if name not in with_grad)


@pytest.mark.parametrize("arch", TIMM_ARCHS)
def test_every_module_runs_forward_and_backward_on_a_timm_tower(arch):
    torch.manual_seed(0)
    cfg = detector_cfg(**tiny_timm(arch))
    cfg["freq"].update(enabled=True, fusion="both", blocks=[0, -1], channels=8, dim=16)
    cfg["boundary"].update(enabled=True, mask_supervision=True)
    cfg["identity"].update(enabled=True, num_identities=3)
    detector = ClipDetector(cfg)
    plain = ClipDetector(detector_cfg(**tiny_timm(arch)))
    plain.backbone.load_state_dict(detector.backbone.state_dict())
    plain.head.load_state_dict(detector.head.state_dict())
    images = torch.randn(4, 3, 32, 32)
    batch = {"image": images, "label": torch.tensor([0, 1, 0, 1]), "identity": torch.tensor([0, 1, 2, 0]),
             "mask": (torch.rand(4, 32, 32) > 0.5).float()}
    out = detector(batch)
    # Every fusion is zero-initialised: at step 0 the detector equals plain LN-tuning on the same tower.
    torch.testing.assert_close(out["logits"], plain({"image": images})["logits"], atol=1e-5, rtol=1e-5)
    losses = detector.losses(batch, out)
    assert {"freq_ce", "boundary", "identity"} <= set(losses)
    losses["total"].backward()
    for part in ("freq", "boundary", "identity"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(detector, part).parameters()), part


@pytest.mark.parametrize("arch", TIMM_ARCHS)
def test_clip_stan_on_a_timm_tower_starts_as_the_frame_averaged_detector(arch):
    torch.manual_seed(0)
    cfg = detector_cfg(ClipStanDetector, **tiny_timm(arch))
    cfg.update(frames=2, branch_depth=2)
    stan = ClipStanDetector(cfg)
    perturb_layernorms(stan.backbone)
    for layer, j in zip(stan.branch, range(2)):  # the copies follow the perturbed tower
        layer.spatial.load_state_dict(stan.backbone.blocks[stan.first_branch_block + j].state_dict())
    clips = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        expected = stan.backbone.feature(clips.flatten(0, 1)).reshape(2, 2, -1).mean(1)
        torch.testing.assert_close(stan.encode(clips), expected, atol=1e-5, rtol=1e-5)
    out = stan({"image": clips})
    stan.losses({"label": torch.tensor([0, 1])}, out)["total"].backward()
    # The zero-initialised temporal output projection learns first (the time embedding behind it has none yet).
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for layer in stan.branch
               for p in layer.temporal.parameters())
    tower_grads = {n for n, p in stan.backbone.named_parameters() if p.grad is not None}
    norm_ids = {id(p) for norm in stan.backbone.layernorms() for p in norm.parameters()}
    assert tower_grads and all(id(dict(stan.backbone.named_parameters())[n]) in norm_ids for n in tower_grads)


# ---------------------------------------------------------------- checkpoints and weights

def _timm_weights_file(tmp_path, arch, seed=0):
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    donor = build_tower(tiny_timm(arch))
    path = tmp_path / f"tiny_{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in donor.model.state_dict().items()}, str(path))
    return path, donor


def test_compact_checkpoint_of_a_timm_tower_round_trips_and_checks_the_hash(tmp_path):
    from training.engine.checkpoint import CheckpointError

    arch = "vit_large_patch16_dinov3.lvd1689m"
    weights, donor = _timm_weights_file(tmp_path, arch)
    trained = ClipDetector(detector_cfg(**tiny_timm(arch, pretrained=str(weights))))
    loaded = trained.backbone.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in donor.model.state_dict().items())  # the file's weights
    assert trained.backbone.weights_file == str(weights)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    state = trained.checkpoint_state()
    assert state["format"] == "compact"
    assert state["backbone"]["tower"] == "timm" and state["backbone"]["arch"] == arch
    assert set(state["state_dict"]) == {n for n, p in trained.named_parameters() if p.requires_grad}
    fresh = ClipDetector(detector_cfg(**tiny_timm(arch, pretrained=str(weights))))
    fresh.load_checkpoint_state(copy.deepcopy(state))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh({"image": images})["logits"], trained({"image": images})["logits"])
    other, _ = _timm_weights_file(tmp_path, arch, seed=1)
    with pytest.raises(CheckpointError, match="frozen-weight hash"):
        ClipDetector(detector_cfg(**tiny_timm(arch, pretrained=str(other)))).load_checkpoint_state(state)
    clip = ClipDetector(detector_cfg(**tiny_clip()))
    with pytest.raises(CheckpointError, match="'timm' tower.*model.backbone.tower: timm"):
        clip.load_checkpoint_state(state)


def test_load_tower_state_dict_names_the_mismatching_keys():
    tower = build_tower(tiny_timm("vit_large_patch14_dinov2.lvd142m"))
    state = dict(tower.model.state_dict())
    state["head.weight"] = torch.zeros(2, 32)
    del state["norm.weight"]
    with pytest.raises(ValueError, match=r"GenD file.*missing keys \['norm.weight'\].*unexpected keys \['head.weight'\]"):
        tower.load_tower_state_dict(state, "GenD file x.ckpt")


def test_missing_timm_weights_say_which_file_to_fetch_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"huggingface.co/timm/vit_large_patch16_dinov3.lvd1689m.*"
                                                r"vit_large_patch16_dinov3/lvd1689m/model.safetensors"):
        build_tower({"tower": "timm", "arch": "vit_large_patch16_dinov3", "pretrained": "lvd1689m",
                     "weights_dir": str(tmp_path), "model_kwargs": dict(TINY_VIT)})
    with pytest.raises(ValueError, match="names timm tag 'lvd1689m'.*pretrained: lvd1689m"):
        build_tower({"tower": "timm", "arch": "vit_large_patch16_dinov3.lvd1689m", "pretrained": "sat493m"})


def test_family_keys_are_checked_against_the_tower_family():
    with pytest.raises(ValueError, match="model.backbone.vision_cfg applies to tower 'open_clip' only.*model_kwargs"):
        build_tower({**tiny_timm("vit_large_patch14_dinov2.lvd142m"), "vision_cfg": dict(TINY_CLIP)})
    with pytest.raises(ValueError, match="model.backbone.model_kwargs applies to tower 'timm' only"):
        build_tower({**tiny_clip(), "model_kwargs": {"depth": 2}})
    with pytest.raises(ValueError, match="not a vision tower.*open_clip, timm"):
        build_tower({"tower": "timm_cnn"})
    with pytest.raises(KeyError, match="Unknown backbone 'timmm'.*Did you mean 'timm'"):
        build_tower({"tower": "timmm"})
    with pytest.raises(ValueError, match="timm's vit_pe_core_large_patch14_336 inside open_clip.*tower: timm"):
        build_tower({"arch": "PE-Core-L-14-336", "pretrained": None})


def test_open_clip_image_size_resamples_pretrained_position_embeddings(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    donor = build_tower(tiny_clip())
    path = tmp_path / "tiny.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in donor.visual.state_dict().items()}, str(path))
    tower = build_tower(tiny_clip(pretrained=str(path), image_size=48))
    assert tower.image_size == 48 and tower.grid_size == (6, 6) and tower.input_spec.resolution == 48
    assert tower.visual.positional_embedding.shape == (1 + 36, TINY_CLIP["width"])
    torch.testing.assert_close(tower.visual.positional_embedding[0], donor.visual.positional_embedding[0])
    assert tower.feature(torch.randn(1, 3, 48, 48)).shape == (1, TINY_CLIP["width"])
