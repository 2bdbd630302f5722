"""Every plot command makes a non-empty PNG from a small real run; the numbers behind the plots are right.

The tiny runs (:func:`build_tiny_runs`) are shared with test_report.py,
test_robustness.py and tests/test_test_cli.py: the synthetic TinyFF/TinyFlat
data of tests/data/synthetic.py, a 1-layer 32-pixel ViT of the CLIP detector
family trained for 2 steps through ``training.train.main``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
TINY_VIT = "{image_size: 32, patch_size: 8, width: 32, layers: 1, head_width: 16}"
TEST_SETS = ("TinyFF", "TinyFlat")
_RUNS: Dict[str, Dict[str, Path]] = {}


def tiny_run_options(data_root: Path, seed: int):
    return ["--detector_path", str(REPO / "configs/detector/demo_clip_tiny.yaml"), "--opts",
            f"data.root={data_root}", "data.train_dataset=[TinyFF]", f"data.test_dataset=[{','.join(TEST_SETS)}]",
            f"model.backbone.vision_cfg={TINY_VIT}", "model.backbone.conv_stem=false", "train.max_steps=2", "train.epochs=1", "train.batch_size=4",
            "data.frame_num={train: 2, val: 2, test: 4}", "data.num_workers=0", "test.batch_size=16",
            "train.val_every_epochs=0", "test.save_features=true", f"train.seed={seed}", "train.log_every=1"]


def build_tiny_runs(base: Path) -> Dict[str, Path]:
    """``{"data": root, "a": run, "b": run}``, built once per test session (cached by ``base``)."""
    if str(base) in _RUNS:
        return _RUNS[str(base)]
    from tests.data.synthetic import build_all
    from training.train import main as train_main

    data_root = build_all(base / "data")
    runs = {"data": data_root}
    for name, seed in (("a", 1), ("b", 2)):
        runs[name] = base / "runs" / f"tiny_{name}"
        assert train_main(["--run_dir", str(runs[name])] + tiny_run_options(data_root, seed)) == 0
    _RUNS[str(base)] = runs
    return runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")


def assert_png(path: Path, min_size=(200, 200)) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 5_000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    assert image.std() > 10  # something is drawn
    return image


# ----------------------------------------------------------------------------- roc

def test_roc_png_and_its_aucs_equal_metrics_json(tiny_runs, tmp_path):
    from analysis.roc import level_scores, load_dataset_scores, main, roc_with_auc
    from analysis.plotting import find_result_files

    run = tiny_runs["a"]
    assert main(["--run", str(run)]) == 0
    assert_png(run / "plots" / "roc.png")
    metrics = json.loads((run / "metrics.json").read_text())
    scores = load_dataset_scores(find_result_files(run))[run.name]
    assert set(scores) == set(TEST_SETS)
    for dataset in TEST_SETS:
        for level in ("frame", "video"):
            _, _, auc = roc_with_auc(*level_scores(scores[dataset], level))
            assert auc == pytest.approx(metrics[dataset][f"{level}_auc"], abs=1e-12)
    # Two detectors in one figure, from a predictions file and a run.
    out = tmp_path / "compare.png"
    csv = tiny_runs["b"] / "test" / "TinyFF" / "predictions.csv"
    assert main(["--run", str(run), str(tiny_runs["b"]), "--names", "A", "B", "--out", str(out)]) == 0
    assert_png(out)
    assert main(["--predictions", str(csv), "--out", str(tmp_path / "one.png")]) == 0
    assert_png(tmp_path / "one.png")


def test_histograms_png(tiny_runs, tmp_path):
    from analysis.histograms import main

    out = tmp_path / "hist.png"
    assert main(["--run", str(tiny_runs["a"]), "--out", str(out), "--bins", "10"]) == 0
    assert_png(out)


def test_tsne_png_coloured_by_label_and_method(tiny_runs, tmp_path):
    from analysis.plotting import find_result_files, method_names
    from analysis.tsne import load_features, main

    out = tmp_path / "tsne.png"
    assert main(["--run", str(tiny_runs["a"]), "--out", str(out)]) == 0
    assert_png(out)
    data = load_features(find_result_files(tiny_runs["a"], "features.npz")[tiny_runs["a"].name])
    assert set(data["method"]) == {"FF-real", "FF-DF", "CelebDFv2_real", "CelebDFv2_fake"}
    assert data["feat"].shape == (len(data["label"]), 32)
    assert list(method_names(["DemoFF/DemoFF_swap/000_003"])) == ["DemoFF_swap"]


def test_tsne_without_features_says_how_to_make_them(tmp_path):
    from analysis.tsne import main

    (tmp_path / "run" / "test" / "X").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="test.save_features=true"):
        main(["--run", str(tmp_path / "run")])


# ----------------------------------------------------------------------------- cam

def test_cam_png_for_the_vit_detector(tiny_runs, tmp_path):
    from analysis.cam import attention_rollout, gradcam, load_images, load_run_detector, main

    out = tmp_path / "cam.png"
    assert main(["--run", str(tiny_runs["a"]), "--dataset", "TinyFlat", "--num_images", "2", "--out", str(out)]) == 0
    assert_png(out)
    config, detector = load_run_detector(tiny_runs["a"])
    batch, pictures = load_images(config, detector, "TinyFF", 2)
    assert sorted(batch["label"].tolist()) == [0, 1]  # one real, one fake
    assert pictures.shape == (2, 32, 32, 3) and 0 <= pictures.min() and pictures.max() <= 1
    for maps in (gradcam(detector, batch["image"]), attention_rollout(detector, batch["image"])):
        assert maps.shape == (2, 32, 32)
        assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
        assert all(m.std() > 0.01 for m in maps)  # not empty: the ViT map must see patch gradients


class RedMinusGreenCNN(nn.Module):
    """Feature map channel 0 = red, channel 1 = green; fake score = mean red - mean green
    (globally pooled, like a real CNN head)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU())
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))

    def forward(self, batch):
        pooled = self.features(batch["image"]).mean(dim=(2, 3))
        score = pooled[:, 0] - pooled[:, 1]
        return {"logits": torch.stack([torch.zeros_like(score), score], dim=1)}


def test_gradcam_on_a_cnn_highlights_evidence_for_fake_only():
    from analysis.cam import gradcam

    images = torch.zeros(2, 3, 16, 16)
    images[:, 0, :, :8] = 1.0  # red left half: evidence for "fake"
    images[:, 1, :, 8:] = 1.0  # green right half: evidence against
    maps = gradcam(RedMinusGreenCNN(), images)
    assert maps.shape == (2, 16, 16)
    assert maps[:, :, :7].min() > 0.9 and maps[:, :, 9:].max() < 1e-6


def test_timm_models_cnn_gradcam_and_vit_rollout():
    import timm

    from analysis.cam import attention_rollout, gradcam, is_vit, last_spatial_module

    cnn = timm.create_model("test_resnet", pretrained=False, num_classes=2).eval()
    images = torch.rand(1, 3, 64, 64)  # layer4 is 2x2 here (at 32 px it is 1x1: no map, layer3 is chosen)
    assert not is_vit(cnn)
    assert last_spatial_module(cnn, lambda: cnn(images))[0] == "layer4"
    maps = gradcam(cnn, images, forward=lambda x: {"logits": cnn(x)})
    assert maps.shape == (1, 64, 64) and np.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1

    vit = timm.create_model("test_vit", pretrained=False, num_classes=2).eval()
    images = torch.rand(1, 3, *vit.default_cfg["input_size"][1:])
    rollout = attention_rollout(vit, images, forward=lambda x: {"logits": vit(x)})
    assert rollout.shape == (1, *images.shape[-2:]) and rollout.std() > 0.01
    assert all(module.fused_attn for module in vit.modules() if hasattr(module, "fused_attn"))  # restored


# ------------------------------------------------------------------------ model card

def test_model_card_counts_parameters_and_the_exact_vit_flops(tiny_runs, tmp_path):
    from analysis.model_card import main

    run = tiny_runs["a"]
    assert main(["--run", str(run), "--iters", "1", "--warmup", "0", "--batch_size", "4", "--device", "cpu"]) == 0
    card = json.loads((run / "model_card.json").read_text())
    # 1-layer ViT, width 32, 2 heads of 16, 4x4 patches of 8 px + CLS = 17 tokens; 2 FLOPs per multiply-add.
    # The one block is the last: it runs for the CLS query alone (keys and values from all tokens).
    tokens, width = 17, 32
    patch_embed = 2 * 16 * width * (3 * 8 * 8)
    projections = 2 * tokens * width * 2 * width + 2 * width * (width + width + 4 * width + 4 * width)
    attention = 2 * (2 * 1 * tokens * width)  # q k^T and attn v for the CLS query, all heads together
    head = 2 * width * 2
    assert card["gflops_per_image"] * 1e9 == pytest.approx(patch_embed + projections + attention + head, rel=1e-9)
    params = card["parameters"]
    assert params["trainable"] == params["total"] > 19_000  # tuning: full
    assert params["trainable_pct"] == pytest.approx(100.0)
    assert card["throughput"]["images_per_s"] > 0
    assert "GFLOPs per image" in (run / "model_card.md").read_text()
