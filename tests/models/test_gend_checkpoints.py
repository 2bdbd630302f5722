"""GenD / LN-CLIP checkpoints load with the reference's P(fake) (training/models/gend.py, convert.py).

The checkpoints are written here by a small generator of GenD's file layout, built from reading
github yermandy/GenD: the Lightning module (``src/model/GenD.py``) and the ``save_pretrained``
model (``src/hf/modeling_gend.py``) both hold ``feature_extractor`` (the encoder wrapper of
``src/encoders/``) and ``model`` (``LinearProbe`` with ``.linear``, ``src/heads/head.py``). The
encoders are tiny random models built with the reference libraries (transformers CLIP and DINOv3,
timm PE), and the expected P(fake) is the library model's own forward + GenD's head, computed
here without our code.
"""
from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.engine.checkpoint import CheckpointError, load_checkpoint, load_detector_weights
from training.models import gend
from training.models.convert import hf_dinov3_to_timm, hf_vision_to_open_clip, timm_tower_keys

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

WIDTH, DEPTH, HEADS = 64, 2, 4
CLIP_SIZE, DINO_SIZE = 32, 64
PE_NATIVE, PE_RUN = 56, 42  # GenD builds PE at its pretrained size and runs it at 224 (dynamic size)
PE_KWARGS = dict(embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, img_size=PE_NATIVE, ref_feat_shape=(4, 4))
DINO_KWARGS = dict(embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, img_size=DINO_SIZE)
# Names GenD's encoder dispatch accepts (substrings clip / vit_pe / dino, src/model/GenD.py); not the real
# models' names, whose run sizes (224) our loader checks against the tower.
BACKBONE_NAMES = {"clip": "tiny/clip-vit-test", "dinov3": "tiny/dinov3-vit-test", "pe": "vit_pe_core_tiny_test"}


# -- the reference encoders, as GenD's src/encoders/ wrap them -------------------------------------
def _as_if_ln_tuned(module: nn.Module, seed: int) -> None:
    """GenD trains the LayerNorms: move them away from their (1, 0) init so a loader that kept the
    pretrained ones, or swapped two, would be caught."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.LayerNorm):
                sub.weight.add_(0.3 * torch.randn(sub.weight.shape, generator=generator))
                sub.bias.add_(0.3 * torch.randn(sub.bias.shape, generator=generator))


class CLIPEncoder(nn.Module):  # GenD: CLIPModel's vision_model and visual_projection (unused)
    def __init__(self):
        super().__init__()
        config = transformers.CLIPConfig(
            vision_config=dict(hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=DEPTH,
                               num_attention_heads=HEADS, image_size=CLIP_SIZE, patch_size=8),
            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
            projection_dim=48)
        clip = transformers.CLIPModel(config)
        self.vision_model, self.visual_projection = clip.vision_model, clip.visual_projection

    def forward(self, images):
        return self.vision_model(pixel_values=images).pooler_output


class DINOEncoder(nn.Module):  # GenD: AutoModel DINOv3ViTModel, feature last_hidden_state[:, 0]
    def __init__(self):
        super().__init__()
        config = transformers.DINOv3ViTConfig(
            hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
            patch_size=16, image_size=DINO_SIZE, num_register_tokens=4, rope_theta=100.0, layerscale_value=0.3)
        self.backbone = transformers.DINOv3ViTModel(config)

    def forward(self, images):
        return self.backbone(pixel_values=images).last_hidden_state[:, 0]


class PerceptionEncoder(nn.Module):  # GenD: timm Eva with dynamic_img_size and head = Identity
    def __init__(self):
        super().__init__()
        self.backbone = timm.create_model("vit_pe_core_large_patch14_336", pretrained=False,
                                          dynamic_img_size=True, **PE_KWARGS)
        self.backbone.head = nn.Identity()

    def forward(self, images):
        return self.backbone(images)


ENCODERS = {"clip": CLIPEncoder, "dinov3": DINOEncoder, "pe": PerceptionEncoder}
INPUT_SIZE = {"clip": CLIP_SIZE, "dinov3": DINO_SIZE, "pe": PE_RUN}


class LinearProbe(nn.Module):  # src/heads/head.py: normalize_inputs for "LinearNorm"
    def __init__(self, normalize: bool, seed: int):
        super().__init__()
        self.linear = nn.Linear(WIDTH, 2)
        self.normalize = normalize
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # large enough that the two heads give clearly different P(fake)
            self.linear.weight.copy_(torch.randn(2, WIDTH, generator=generator) * (2.0 if normalize else 0.5))
            self.linear.bias.copy_(torch.randn(2, generator=generator) * 0.1)

    def forward(self, feature):
        return self.linear(F.normalize(feature, p=2, dim=1) if self.normalize else feature)


class GenDModule(nn.Module):  # attribute names of GenD's Lightning module and HF model
    def __init__(self, variant: str, head: str, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.feature_extractor = ENCODERS[variant]()
        _as_if_ln_tuned(self.feature_extractor, seed + 1)
        self.model = LinearProbe(gend.HEAD_NORMALIZES[head], seed + 2)
        self.variant, self.head = variant, head
        self.eval()

    def p_fake(self, images):
        with torch.no_grad():
            return self.model(self.feature_extractor(images)).softmax(dim=1)[:, 1]


# -- GenD's two file layouts ---------------------------------------------------------------------
def gend_state_dict(module: GenDModule):
    """As GenD's pinned transformers 4.56.2 names it: DINOv3ViTModel keeps its blocks at ``layer.{i}``
    (transformers 5 moved them to ``model.layer.{i}``)."""
    return {re.sub(r"^feature_extractor\.backbone\.model\.layer\.", "feature_extractor.backbone.layer.", k): v
            for k, v in module.state_dict().items()}


def save_lightning(module: GenDModule, path, without=(), **hyper_parameters):
    """What Lightning's ModelCheckpoint writes: state_dict and save_hyperparameters(config.model_dump())."""
    config = {"backbone": BACKBONE_NAMES[module.variant], "head": module.head, "num_classes": 2,
              "backbone_args": {"img_size": PE_RUN, "merge_cls_token_with_patches": None},
              "unfreeze_layers": ["norm1", "norm2", "norm"], "precision": "bf16-mixed", **hyper_parameters}
    for key in without:
        del config[key]
    torch.save({"epoch": 3, "global_step": 100, "pytorch-lightning_version": "2.5.5",
                "state_dict": gend_state_dict(module), "hyper_parameters": config,
                "optimizer_states": [], "lr_schedulers": []}, path)
    return path


def save_hf(module: GenDModule, directory, head=True, backbone=None):
    """What GenD.save_pretrained writes: config.json of GenDConfig and model.safetensors."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["GenD"], "backbone": backbone or BACKBONE_NAMES[module.variant], "head": module.head,
              "model_type": "GenD", "torch_dtype": "float32", "transformers_version": "4.56.2"}
    if not head:
        del config["head"]
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in gend_state_dict(module).items()}, str(directory / "model.safetensors"),
              metadata={"format": "pt"})
    return directory


# -- converters against the target libraries (open_clip, timm) -----------------------------------
def encoder_part(module: GenDModule, prefix: str):
    return {k[len(prefix):]: v for k, v in gend_state_dict(module).items() if k.startswith(prefix)}


def test_clip_converter_matches_open_clip():
    from open_clip.model import _build_vision_tower

    reference = GenDModule("clip", "LinearNorm")
    visual = _build_vision_tower(embed_dim=48, quick_gelu=True, vision_cfg=dict(
        image_size=CLIP_SIZE, patch_size=8, width=WIDTH, layers=DEPTH, head_width=WIDTH // HEADS))
    visual.proj = None
    visual.load_state_dict(hf_vision_to_open_clip(encoder_part(reference, "feature_extractor.")), strict=True)
    images = torch.randn(3, 3, CLIP_SIZE, CLIP_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(visual.eval()(images), reference.feature_extractor(images), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [DINO_SIZE, 48, 96])  # RoPE has no weights: any grid must agree
def test_dinov3_converter_matches_timm(size):
    reference = GenDModule("dinov3", "LinearNorm")
    model = timm.create_model("vit_large_patch16_dinov3", pretrained=False, **DINO_KWARGS).eval()
    model.load_state_dict(hf_dinov3_to_timm(encoder_part(reference, "feature_extractor.backbone."),
                                            set(model.state_dict())), strict=True)
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference.feature_extractor(images)
        actual = model.forward_features(images)[:, 0]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_dinov3_converter_reads_the_transformers5_layout_too():
    reference = GenDModule("dinov3", "LinearNorm")
    new_layout = reference.feature_extractor.backbone.state_dict()
    assert any(k.startswith("model.layer.") for k in new_layout)
    old_layout = encoder_part(reference, "feature_extractor.backbone.")
    assert any(k.startswith("layer.0.") for k in old_layout)
    converted_new, converted_old = hf_dinov3_to_timm(new_layout), hf_dinov3_to_timm(old_layout)
    assert converted_new.keys() == converted_old.keys()
    assert all(torch.equal(converted_new[k], converted_old[k]) for k in converted_new)


def test_dinov3_query_value_biases():
    """Non-zero q/v biases load into timm's _qkvb variant exactly, and are refused by the bias-free one."""
    reference = GenDModule("dinov3", "LinearNorm")
    with torch.no_grad():
        for name, param in reference.feature_extractor.named_parameters():
            if re.search(r"attention\.[qv]_proj\.bias", name):
                param.normal_(0, 0.2)
    state = encoder_part(reference, "feature_extractor.backbone.")
    plain = timm.create_model("vit_large_patch16_dinov3", pretrained=False, **DINO_KWARGS)
    with pytest.raises(ValueError, match="_qkvb"):
        hf_dinov3_to_timm(state, set(plain.state_dict()))
    model = timm.create_model("vit_large_patch16_dinov3_qkvb", pretrained=False, **DINO_KWARGS).eval()
    model.load_state_dict(hf_dinov3_to_timm(state, set(model.state_dict())), strict=True)
    images = torch.randn(2, 3, DINO_SIZE, DINO_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images)[:, 0], reference.feature_extractor(images),
                                   atol=1e-5, rtol=0)


def test_pe_keys_are_timms_own():
    reference = GenDModule("pe", "LinearNorm")
    model = timm.create_model("vit_pe_core_large_patch14_336", pretrained=False, num_classes=0,
                              dynamic_img_size=True, **PE_KWARGS).eval()
    model.load_state_dict(timm_tower_keys(encoder_part(reference, "feature_extractor.backbone.")), strict=True)
    images = torch.randn(2, 3, PE_RUN, PE_RUN)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference.feature_extractor(images), atol=1e-5, rtol=0)


# -- reading GenD files: the head is read, never guessed -----------------------------------------
@pytest.mark.parametrize("layout", ["lightning", "hf"])
@pytest.mark.parametrize("head", ["linear", "LinearNorm"])
def test_head_and_backbone_are_read_from_the_file(tmp_path, layout, head):
    module = GenDModule("pe", head)
    path = (save_lightning(module, tmp_path / "model.ckpt") if layout == "lightning"
            else save_hf(module, tmp_path / "GenD_PE_L"))
    checkpoint = gend.read_published(path, None)
    assert (checkpoint.head, checkpoint.backbone) == (head, BACKBONE_NAMES["pe"])
    assert gend.head_normalizes(checkpoint) is (head == "LinearNorm")
    assert gend.encoder_layout(checkpoint) == "timm"


@pytest.mark.parametrize("layout", ["lightning", "hf", "bare"])
def test_checkpoint_without_head_is_refused(tmp_path, layout):
    module = GenDModule("clip", "linear")
    if layout == "lightning":
        path = save_lightning(module, tmp_path / "model.ckpt", without=("head",))
    elif layout == "hf":
        path = save_hf(module, tmp_path / "GenD", head=False)
    else:
        path = tmp_path / "state.pt"
        torch.save({"state_dict": gend_state_dict(module)}, path)
    with pytest.raises(CheckpointError, match="model.normalize_feature") as error:
        load_detector_weights(nn.Linear(1, 1), path)  # refused before the detector is looked at
    assert "config.json" in str(error.value) and "hyper_parameters" in str(error.value)


def test_other_safetensors_are_not_taken_for_gend(tmp_path):
    from safetensors.torch import save_file

    save_file(timm.create_model("vit_pe_core_large_patch14_336", pretrained=False, **PE_KWARGS).state_dict(),
              str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.backbone.pretrained"):
        load_detector_weights(nn.Linear(1, 1), tmp_path / "model.safetensors")


def test_merged_cls_feature_is_refused(tmp_path):
    module = GenDModule("dinov3", "LinearNorm")
    path = save_lightning(module, tmp_path / "model.ckpt",
                          backbone_args={"img_size": PE_RUN, "merge_cls_token_with_patches": "cat"})
    with pytest.raises(CheckpointError, match="merge_cls_token_with_patches"):
        load_detector_weights(nn.Linear(1, 1), path)


# -- into our detector: P(fake) as GenD computes it ----------------------------------------------
TOWERS = {
    "clip": {"tower": "open_clip", "arch": "custom", "pretrained": None, "quick_gelu": True,
             "vision_cfg": {"image_size": CLIP_SIZE, "patch_size": 8, "width": WIDTH, "layers": DEPTH,
                            "head_width": WIDTH // HEADS}},
    "dinov3": {"tower": "timm", "arch": "vit_large_patch16_dinov3", "pretrained": None,
               "model_kwargs": DINO_KWARGS},
    "pe": {"tower": "timm", "arch": "vit_pe_core_large_patch14_336", "pretrained": None, "image_size": PE_RUN,
           "model_kwargs": PE_KWARGS},
}


def make_detector(variant: str, normalize_feature: bool = True):
    from training.models import build_detector, detector_defaults

    cfg = detector_defaults("clip")
    cfg.update(name="clip", normalize_feature=normalize_feature)
    cfg["backbone"] = {**cfg["backbone"], **TOWERS[variant]}
    return build_detector({"model": cfg}).eval()


@pytest.mark.parametrize("layout", ["lightning", "hf"])
@pytest.mark.parametrize("head", ["linear", "LinearNorm"])
@pytest.mark.parametrize("variant", ["clip", "dinov3", "pe"])
def test_published_checkpoint_gives_the_reference_p_fake(tmp_path, variant, head, layout):
    reference = GenDModule(variant, head)
    path = (save_lightning(reference, tmp_path / "model.ckpt") if layout == "lightning"
            else save_hf(reference, tmp_path / f"GenD_{variant}"))
    size = INPUT_SIZE[variant]
    images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(7))
    expected = reference.p_fake(images)
    # The config says the other head: the checkpoint's decides.
    detector = make_detector(variant, normalize_feature=head != "LinearNorm")
    load_detector_weights(detector, path)
    assert detector.cfg["normalize_feature"] is (head == "LinearNorm")
    with torch.no_grad():
        actual = detector({"image": images})["prob"]
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)
    reference.model.normalize = not reference.model.normalize  # the other head on the same weights
    assert (reference.p_fake(images) - expected).abs().max() > 1e-2  # the head matters: a guess would show


@pytest.mark.filterwarnings("ignore:Unsupported layer type")  # peft's LNTuning on nn.LayerNorm, as LN-CLIP ran it
def test_lnclip_peft_lightning_checkpoint(tmp_path):
    """LN-CLIP (yermandy/deepfake-detection): PEFT LNTuning wraps the CLIP encoder, so the trained
    LayerNorms are ``…ln_tuning_layers.default.*`` next to the frozen ``…base_layer.*``."""
    peft = pytest.importorskip("peft")
    reference = GenDModule("clip", "LinearNorm")
    encoder = reference.feature_extractor
    tuned = peft.get_peft_model(encoder, peft.LNTuningConfig(
        target_modules=["pre_layrnorm", "layer_norm1", "layer_norm2", "post_layernorm"]))
    with torch.no_grad():  # the trained copies differ from the frozen originals
        for name, param in tuned.named_parameters():
            if "ln_tuning_layers" in name:
                param.add_(torch.randn_like(param) * 0.2)
    reference.feature_extractor = tuned
    keys = list(reference.state_dict())
    assert any(k.startswith("feature_extractor.base_model.model.vision_model.") for k in keys)
    assert any(".base_layer." in k for k in keys) and any("ln_tuning_layers.default" in k for k in keys)
    path = save_lightning(reference, tmp_path / "model.ckpt")
    images = torch.randn(2, 3, CLIP_SIZE, CLIP_SIZE)
    detector = make_detector("clip")
    load_detector_weights(detector, path)
    with torch.no_grad():
        torch.testing.assert_close(detector({"image": images})["prob"], reference.eval().p_fake(images),
                                   atol=1e-4, rtol=0)


def test_encoder_into_the_wrong_tower_is_refused(tmp_path):
    path = save_hf(GenDModule("pe", "LinearNorm"), tmp_path / "GenD_PE", backbone="vit_pe_core_large_patch14_336")
    with pytest.raises(CheckpointError, match="tower: timm, arch: vit_pe_core_large_patch14_336"):
        load_detector_weights(make_detector("clip"), path)


@pytest.mark.parametrize("variant,backbone", [("pe", None), ("dinov3", "facebook/dinov3-vitl16-pretrain-lvd1689m")])
def test_run_size_other_than_gends_is_refused(tmp_path, variant, backbone):
    """timm towers take any size (dynamic position embeddings): a size GenD did not run at would
    load silently and give other P(fake). PE: backbone_args.img_size; DINOv3: its processor's 224."""
    options = {"backbone_args": {"img_size": 224, "merge_cls_token_with_patches": None}} if backbone is None \
        else {"backbone": backbone}
    path = save_lightning(GenDModule(variant, "LinearNorm"), tmp_path / "model.ckpt", **options)
    with pytest.raises(CheckpointError, match="model.backbone.image_size=224"):
        load_detector_weights(make_detector(variant), path)


def test_hf_directory_is_a_weights_path(tmp_path):
    from training.engine.checkpoint import resolve_weights

    directory = save_hf(GenDModule("clip", "LinearNorm"), tmp_path / "GenD_CLIP_L_14")
    config = tmp_path / "gend.yaml"
    config.write_text("model: {name: clip}\n")
    checkpoint, config_path, name = resolve_weights(str(directory), str(config))
    assert (checkpoint, config_path, name) == (directory, config, "GenD_CLIP_L_14")


def test_lightning_file_with_a_default_head_enum_loads(tmp_path, monkeypatch):
    """A GenD run that kept ``head`` at its default stores the enum member ``src.config.Head.Linear``
    in hyper_parameters (pydantic leaves defaults unvalidated); weights_only loading must still work."""
    import enum
    import sys
    import types

    package, module = types.ModuleType("src"), types.ModuleType("src.config")

    class Head(str, enum.Enum):  # src/config.py (ValidateEnum is a str Enum)
        Linear = "linear"
        NLinear = "LinearNorm"

    Head.__module__, Head.__qualname__ = "src.config", "Head"
    module.Head, package.config = Head, module
    monkeypatch.setitem(sys.modules, "src", package)
    monkeypatch.setitem(sys.modules, "src.config", module)
    reference = GenDModule("clip", "linear")
    path = save_lightning(reference, tmp_path / "model.ckpt", head=Head.Linear)
    with pytest.raises(CheckpointError, match="weights_only"):  # what torch alone makes of it
        load_checkpoint(path)
    monkeypatch.delitem(sys.modules, "src.config")  # loading happens without GenD's code
    monkeypatch.delitem(sys.modules, "src")
    detector = make_detector("clip")
    load_detector_weights(detector, path)
    assert detector.cfg["normalize_feature"] is False
    images = torch.randn(2, 3, CLIP_SIZE, CLIP_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(detector({"image": images})["prob"], reference.p_fake(images), atol=1e-4, rtol=0)


# -- the released sizes: GenD's full-size layouts fit our towers key for key (meta tensors) ------
def _full_size_gend_encoder(variant: str):
    """GenD's encoder state dict at the published size, as its code builds it (configs of
    openai/clip-vit-large-patch14, facebook/dinov3-vitl16-pretrain-lvd1689m, timm PE-Core-L)."""
    with torch.device("meta"):
        if variant == "clip":
            config = transformers.CLIPConfig(
                vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                   num_attention_heads=16, image_size=224, patch_size=14),
                text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))
            return hf_vision_to_open_clip(transformers.CLIPModel(config).vision_model.state_dict())
        if variant == "dinov3":
            config = transformers.DINOv3ViTConfig(
                hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=16,
                image_size=224, num_register_tokens=4, layerscale_value=1e-5, rope_theta=100.0, query_bias=True,
                key_bias=False, value_bias=True)
            state = hf_dinov3_to_timm(transformers.DINOv3ViTModel(config).state_dict())
            return {k: v for k, v in state.items() if not k.endswith((".q_bias", ".v_bias"))}  # zero: dropped
        model = timm.create_model("vit_pe_core_large_patch14_336", pretrained=False, dynamic_img_size=True)
        model.head = nn.Identity()
        return timm_tower_keys(model.state_dict())


@pytest.mark.parametrize("variant,backbone", [
    ("clip", {"tower": "open_clip", "arch": "ViT-L-14"}),
    ("dinov3", {"tower": "timm", "arch": "vit_large_patch16_dinov3", "image_size": 224}),
    ("pe", {"tower": "timm", "arch": "vit_pe_core_large_patch14_336", "image_size": 224})])
def test_full_size_layouts_fit_our_towers(variant, backbone):
    from training.models import build_detector, detector_defaults

    cfg = detector_defaults("clip")
    cfg.update(name="clip")
    cfg["backbone"] = {**cfg["backbone"], **backbone, "pretrained": None}
    with torch.device("meta"):
        ours = build_detector({"model": cfg}).backbone.library_module.state_dict()
    theirs = _full_size_gend_encoder(variant)
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in ours.items()}
