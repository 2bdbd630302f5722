"""The CLIP detector's module switches: off = LN-CLIP exactly, on = LN-CLIP at step 0,
each switch trains and survives a checkpoint round trip; the extra losses; the ablation runner."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from training.engine.checkpoint import load_detector_weights, save_checkpoint
from training.losses.arc_margin import arc_margin_loss, cosine_logits
from training.losses.consistency import prediction_consistency
from training.models.detectors.clip_detector import ClipDetector

TINY = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16}

SWITCHES = {
    "freq_cls": {"freq": {"enabled": True, "fusion": "cls", "fusion_rank": None}},  # full-rank fusion
    "freq_blocks": {"freq": {"enabled": True, "fusion": "blocks", "blocks": [0, -1], "branches": ["dwt"]}},
    "boundary": {"boundary": {"enabled": True, "mask_supervision": True}},
    "identity": {"identity": {"enabled": True, "num_identities": 3}},
    "arc_margin": {"loss": {"classification": "arc_margin"}},
    "all": {"freq": {"enabled": True, "fusion": "both", "blocks": [0]},
            "boundary": {"enabled": True, "mask_supervision": True},
            "identity": {"enabled": True, "num_identities": 3}},
}


def make_detector(pretrained=None, tuning="ln", **sections):
    cfg = ClipDetector.default_config()
    cfg["name"] = "clip"
    cfg["backbone"].update(arch="custom", pretrained=pretrained, vision_cfg=TINY)
    cfg["tuning"] = tuning
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return ClipDetector(cfg)


def make_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(4, 1, 32, 32)
    mask[1, :, 10:22, 10:22] = 1.0
    mask[3, :, 4:20, 8:28] = 1.0
    return {"image": torch.randn(4, 3, 32, 32, generator=generator), "label": torch.tensor([0, 1, 0, 1]),
            "identity": torch.tensor([0, 2, -1, 1]), "mask": mask}


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory):
    """A local 'pretrained' weights file for the tiny ViT (compact LN-tuning checkpoints need one)."""
    from safetensors.torch import save_file

    torch.manual_seed(123)
    visual = make_detector().backbone.visual.state_dict()
    path = tmp_path_factory.mktemp("weights") / "tiny_clip.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in visual.items()}, str(path))
    return str(path)


def test_all_switches_off_is_plain_ln_clip():
    torch.manual_seed(0)
    detector = make_detector().eval()
    assert all(key.startswith(("backbone.", "head.")) for key in detector.state_dict())
    assert set(detector.parameter_report()) == {"backbone", "head"}
    assert not detector.input_spec.with_mask
    batch = make_batch()
    with torch.no_grad():
        out = detector(batch)
        expected_feat = F.normalize(detector.backbone.feature(batch["image"]), dim=-1)
        torch.testing.assert_close(out["feat"], expected_feat, atol=0, rtol=0)
        torch.testing.assert_close(out["logits"], detector.head(expected_feat), atol=0, rtol=0)
        # feature() runs the last block for the CLS token alone: the all-token CLS up to fp32 rounding
        all_tokens_feat = F.normalize(detector.backbone(batch["image"])[:, 0], dim=-1)
        torch.testing.assert_close(out["feat"], all_tokens_feat, atol=1e-6, rtol=0)
    assert set(out) == {"logits", "prob", "feat"}
    assert set(detector.losses(batch, out)) == {"ce", "total"}  # alignment, uniformity weighted 0: not reported


@pytest.mark.parametrize("training", [False, True])
def test_zero_initialised_fusion_equals_ln_clip_at_step_0(training):
    torch.manual_seed(0)
    plain = make_detector()
    full = make_detector(**SWITCHES["all"])
    result = full.load_state_dict(plain.state_dict(), strict=False)  # the same backbone and head weights
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith(("freq.", "boundary.", "identity.")) for k in result.missing_keys)
    plain.train(training)
    full.train(training)
    batch = make_batch()
    with torch.no_grad():
        a, b = plain(batch), full(batch)
        # The modules need every token of the last block, so ``full`` runs the all-token path; its
        # output must be *exactly* plain LN-CLIP's all-token output (zero fusion adds nothing) ...
        plain_feat = F.normalize(plain.backbone(batch["image"])[:, 0], dim=-1)
        assert torch.equal(b["feat"], plain_feat)
        assert torch.equal(b["logits"], plain.head(plain_feat))
    # ... and plain's CLS-only last block equals that up to fp32 rounding.
    for key in ("logits", "prob", "feat"):
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)
    assert {"freq_logits", "boundary_logits", "identity_logits"} <= set(b)
    assert full.input_spec.with_mask


def _outputs(detector, batch):
    detector.eval()
    with torch.no_grad():
        return detector(batch)


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_each_switch_trains_one_step_and_round_trips_through_a_checkpoint(switch, pretrained_file, tmp_path):
    torch.manual_seed(0)
    detector = make_detector(pretrained=pretrained_file, **SWITCHES[switch])
    module_names = set(detector.parameter_report()) - {"backbone", "head"}
    detector.train()
    detector.set_training_progress(0.5)
    optimizer = torch.optim.AdamW(detector.trainable_parameters(), lr=1e-2)
    before = {name: p.detach().clone() for name, p in detector.named_parameters()}
    batch = make_batch()
    losses = detector.losses(batch, detector(batch))
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    optimizer.step()
    changed = {name for name, p in detector.named_parameters() if not torch.equal(p, before[name])}
    for module in module_names:  # every module's zero-initialised projection left zero after one step
        assert any(name.startswith(f"{module}.") for name in changed), module
    assert not any(name.startswith("backbone.visual.conv1") for name in changed)  # LN-tuning: frozen
    if switch in ("identity", "all"):
        assert detector.identity.lambda_ == pytest.approx(2 / (1 + torch.exp(torch.tensor(-5.0)).item()) - 1)

    path = tmp_path / "last.pt"
    state = detector.checkpoint_state()
    assert state["format"] == "compact"  # LN-tuned pretrained: only what trains is stored
    save_checkpoint(path, {"model": state})
    torch.manual_seed(99)  # different random init of the modules: the checkpoint must override it
    restored = make_detector(pretrained=pretrained_file, **SWITCHES[switch])
    load_detector_weights(restored, path)
    evaluation = make_batch(seed=1)
    a, b = _outputs(detector, evaluation), _outputs(restored, evaluation)
    for key in ("logits", "prob", "feat"):
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_full_tuning_checkpoint_round_trip_with_every_module(tmp_path):
    torch.manual_seed(0)
    detector = make_detector(tuning="full", **SWITCHES["all"])
    assert detector.checkpoint_state()["format"] == "full"
    save_checkpoint(tmp_path / "best.pt", {"model": detector.checkpoint_state()})
    restored = make_detector(tuning="full", **SWITCHES["all"])
    load_detector_weights(restored, tmp_path / "best.pt")
    batch = make_batch()
    torch.testing.assert_close(_outputs(detector, batch)["logits"], _outputs(restored, batch)["logits"],
                               atol=0, rtol=0)


def test_missing_masks_or_identities_are_clear_errors():
    detector = make_detector(**SWITCHES["all"])
    batch = make_batch()
    out = detector(batch)
    with pytest.raises(KeyError, match="mask_supervision needs forgery masks"):
        detector.losses({k: v for k, v in batch.items() if k != "mask"}, out)
    with pytest.raises(ValueError, match="num_identities is null"):
        make_detector(identity={"enabled": True})


def test_per_module_parameter_report_adds_up():
    detector = make_detector(**SWITCHES["all"])
    report = detector.parameter_report()
    assert set(report) == {"backbone", "head", "freq", "boundary", "identity"}
    assert sum(r["trainable"] for r in report.values()) == sum(
        p.numel() for p in detector.parameters() if p.requires_grad)
    assert report["backbone"]["trainable"] == 2 * 32 * (2 * TINY["layers"] + 2)  # LayerNorms only


# --------------------------------------------------------------------------- losses

def test_arc_margin_without_margin_is_scaled_cosine_cross_entropy_and_the_margin_costs():
    torch.manual_seed(0)
    feat, weight = torch.randn(6, 8), torch.randn(2, 8)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    cosine = cosine_logits(feat, weight)
    plain = F.cross_entropy(16.0 * cosine, labels)
    torch.testing.assert_close(arc_margin_loss(cosine, labels, s=16.0, m=0.0), plain)
    assert arc_margin_loss(cosine, labels, s=16.0, m=0.3) > plain
    with pytest.raises(ValueError, match="arc_m"):
        arc_margin_loss(cosine, labels, m=2.0)


def test_arc_margin_detector_predicts_with_scaled_cosines():
    detector = make_detector(**SWITCHES["arc_margin"]).eval()
    assert not detector.head.bias.requires_grad and detector.head.bias.abs().sum() == 0
    out = detector(make_batch())
    torch.testing.assert_close(out["logits"], 16.0 * out["cosine"])
    assert out["cosine"].abs().max() <= 1.0
    with pytest.raises(ValueError, match="needs model.head: linear"):
        make_detector(head="ln_mlp", loss={"classification": "arc_margin"})


@pytest.mark.parametrize("kind", ["sym_kl", "mse"])
def test_consistency_is_zero_for_agreeing_predictions_and_symmetric(kind):
    torch.manual_seed(0)
    a, b = torch.randn(5, 2), torch.randn(5, 2)
    assert float(prediction_consistency(a, a + 3.0, kind)) == pytest.approx(0.0, abs=1e-7)  # same softmax
    assert float(prediction_consistency(a, b, kind)) > 0
    torch.testing.assert_close(prediction_consistency(a, b, kind), prediction_consistency(b, a, kind))
    with pytest.raises(ValueError, match="model.loss.consistency"):
        prediction_consistency(a, b, "l1")


# --------------------------------------------------------------------------- train.py + runner

def write_tiny_config(tmp_path, data_root):
    config = {
        "name": "tiny_ablation",
        "model": {"name": "clip", "tuning": "full", "resize_mode": "resize",
                  "backbone": {"arch": "custom", "pretrained": None, "vision_cfg": TINY}},
        "data": {"root": str(data_root), "train_dataset": ["TinyFlat"], "test_dataset": ["TinyFlat"],
                 "frame_num": {"train": 2, "val": 2, "test": 2}, "num_workers": 0,
                 "label_dict": {"CelebDFv2_real": 0, "CelebDFv2_fake": 1}},
        "train": {"epochs": 1, "batch_size": 4, "val_every_epochs": 0, "log_every": 1},
        "test": {"batch_size": 8},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tests.data.synthetic import build_tiny_flat

    root = tmp_path_factory.mktemp("datasets")
    build_tiny_flat(root)  # TinyFlat: 2 training identities, masks on the fake video
    return root


def test_train_sets_the_identity_count_from_the_data(tmp_path, tiny_data):
    from training.config import load_config
    from training.train import resolve_identity_count

    path = write_tiny_config(tmp_path, tiny_data)
    config = load_config(path, ["model.identity.enabled=true", "data.identity_labels=true"])
    resolve_identity_count(config)
    assert config["model"]["identity"]["num_identities"] == 2
    config = load_config(path, ["model.identity.enabled=true"])
    with pytest.raises(SystemExit, match="data.identity_labels: true"):
        resolve_identity_count(config)


def test_ablation_runner_trains_every_variant_and_writes_the_table(tmp_path, tiny_data):
    from scripts.ablation import main

    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump(sort_keys=False, data={
        "baseline": {},
        "all": {"model.freq.enabled": True, "model.freq.fusion": "both", "model.freq.blocks": [0],
                "model.boundary.enabled": True, "model.boundary.mask_supervision": True,
                "model.identity.enabled": True, "data.identity_labels": True},
    }))
    out, runs = tmp_path / "ablation", tmp_path / "runs"
    argv = ["--detector_path", str(write_tiny_config(tmp_path, tiny_data)), "--out", str(out),
            "--runs_dir", str(runs), "--variants", str(variants), "--device", "cpu",
            "--latency_batch", "2", "--latency_repeats", "1", "--opts", "train.max_steps=1"]
    assert main(argv) == 0
    summary = json.loads((out / "ablation.json").read_text())
    assert list(summary["variants"]) == ["baseline", "all"]
    full = summary["variants"]["all"]
    assert set(full["parameters_by_module"]) == {"backbone", "head", "freq", "boundary", "identity"}
    assert full["module_trainable"] > 0 and summary["variants"]["baseline"]["module_trainable"] == 0
    run_config = yaml.safe_load((runs / "all" / "config.yaml").read_text())
    assert run_config["model"]["identity"]["num_identities"] == 2
    markdown = (out / "ablation.md").read_text()
    assert "TinyFlat Video AUC" in markdown and "| all |" in markdown and "ms/img (b=1)" in markdown
    assert (out / "ablation.csv").read_text().startswith("Variant,TinyFlat Video AUC,Mean")
    assert r"\toprule" in (out / "ablation.tex").read_text()
    # A second call reuses the finished runs instead of retraining them.
    mtime = (runs / "all" / "metrics.json").stat().st_mtime
    assert main(argv + ["--only", "all"]) == 0
    assert (runs / "all" / "metrics.json").stat().st_mtime == mtime
    assert list(json.loads((out / "ablation.json").read_text())["variants"]) == ["all"]
    # A changed config is retrained, not silently reused.
    mtime = (runs / "baseline" / "metrics.json").stat().st_mtime
    assert main(argv + ["train.seed=7", "--only", "baseline"]) == 0
    assert (runs / "baseline" / "metrics.json").stat().st_mtime != mtime


def test_ablation_runner_with_seeds_trains_each_seed_and_averages(tmp_path, tiny_data):
    from scripts.ablation import main, mean_video_auc

    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump(sort_keys=False, data={
        "baseline": {}, "+freq": {"model.freq.enabled": True, "model.freq.blocks": [0]}}))
    out, runs = tmp_path / "ablation", tmp_path / "runs"
    argv = ["--detector_path", str(write_tiny_config(tmp_path, tiny_data)), "--out", str(out),
            "--runs_dir", str(runs), "--variants", str(variants), "--device", "cpu", "--seeds", "3", "5",
            "--latency_batch", "2", "--latency_repeats", "1", "--opts", "train.max_steps=1"]
    assert main(argv) == 0
    for variant in ("baseline", "+freq"):
        for seed in (3, 5):
            config = yaml.safe_load((runs / variant / f"seed_{seed}" / "config.yaml").read_text())
            assert config["train"]["seed"] == seed
    summary = json.loads((out / "ablation.json").read_text())["variants"]
    per_seed = {v: [summary[v]["seeds"][s]["metrics"] for s in ("3", "5")] for v in summary}
    means = {variant: [mean_video_auc(m) for m in metrics] for variant, metrics in per_seed.items()}
    assert mean_video_auc(summary["+freq"]["metrics"]) == pytest.approx(sum(means["+freq"]) / 2)
    deltas = [f - b for f, b in zip(means["+freq"], means["baseline"])]
    assert summary["+freq"]["delta_seed_sd"] == pytest.approx(abs(deltas[0] - deltas[1]) / 2 ** 0.5)
    assert summary["baseline"]["wall_s"] == pytest.approx(
        sum(summary["baseline"]["seeds"][s]["wall_s"] for s in ("3", "5")))
    markdown = (out / "ablation.md").read_text()
    assert "| seed SD | Δ Mean | Δ seed SD |" in markdown and "once per seed (3, 5)" in markdown


def test_example_config_and_default_variants_are_valid():
    from pathlib import Path

    from scripts.ablation import DEFAULT_VARIANTS, load_variants, override_strings
    from training.config import load_config
    from training.models import build_detector

    repo = Path(__file__).resolve().parents[2]
    config = load_config(repo / "configs/detector/clip_vitb16_freq_boundary_id.yaml",
                         ["model.backbone.pretrained=null", "model.identity.num_identities=720"])
    with torch.device("meta"):  # sizes only
        report = build_detector(config).parameter_report()
    assert report["backbone"]["trainable"] == 39_936 and report["head"]["trainable"] == 1_538
    assert all(report[m]["trainable"] > 0 for m in ("freq", "boundary", "identity"))
    variants = load_variants(DEFAULT_VARIANTS)
    assert list(variants) == ["baseline", "+freq", "+boundary", "+identity", "all"]
    for overrides in variants.values():  # every override names a real config key
        load_config(repo / "configs/detector/demo_clip_tiny.yaml", override_strings(overrides))


def test_paired_bootstrap_se_of_the_mean_auc_difference(tmp_path):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from scripts.ablation import _rank_auc, paired_bootstrap_se
    from training.metrics import write_predictions

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    scores = {"a": rng.random(40) + 0.3 * labels, "b": rng.random(40) + 0.6 * labels}
    assert _rank_auc(labels[None], scores["a"][None])[0] == pytest.approx(roc_auc_score(labels, scores["a"]))
    for run, score in scores.items():
        rows = [{"dataset": "D", "video_key": f"D/v{i}", "frame_index": f, "label": int(labels[i]),
                 "prob": float(score[i])} for i in range(40) for f in (0, 1)]
        write_predictions(tmp_path / run / "test" / "D" / "predictions.csv", rows)
    a, b = tmp_path / "a", tmp_path / "b"
    assert paired_bootstrap_se([a], [a], ["D"]) == 0.0  # a run against itself
    se = paired_bootstrap_se([a], [b], ["D"])
    assert 0.01 < se < 0.2
    # Seed pairs are averaged: two copies of the same pair give the same SE, and a pair whose
    # difference is zero halves every resampled difference.
    assert paired_bootstrap_se([a, a], [b, b], ["D"]) == pytest.approx(se)
    assert paired_bootstrap_se([a, a], [b, a], ["D"]) == pytest.approx(se / 2)
    with pytest.raises(ValueError, match="one reference run per run"):
        paired_bootstrap_se([a], [a, b], ["D"])


def test_seed_statistics_of_the_ablation_table():
    from scripts.ablation import ablation_rows, average_metrics, check_seeds, seed_differences, seed_sd

    assert check_seeds(None) == [None] and check_seeds([3, 1]) == [3, 1]
    with pytest.raises(SystemExit, match=r"--seeds: \[1\] given more than once"):
        check_seeds([1, 2, 1])
    runs = [{"D": {"video_auc": 0.6, "frame_auc": None}}, {"D": {"video_auc": 0.8, "frame_auc": 0.7}}]
    assert average_metrics(runs) == {"D": {"video_auc": pytest.approx(0.7), "frame_auc": None}}
    assert seed_sd([0.6]) is None and seed_sd([0.6, None]) is None
    assert seed_sd([0.6, 0.8]) == pytest.approx(0.1414213562)
    assert seed_differences([0.7, None], [0.5, 0.5]) == [pytest.approx(0.2), None]
    common = {"trainable": 10, "module_trainable": 0, "ms_per_image_b1": 1.0, "ms_per_image_b2": 0.5}
    described = {"base": {"metrics": {"D": {"video_auc": 0.7}}, "mean_seed_sd": 0.1, **common},
                 "+m": {"metrics": {"D": {"video_auc": 0.75}}, "mean_seed_sd": 0.2, "delta_seed_sd": 0.05,
                        "delta_se": 0.03, **common}}
    header, rows, _ = ablation_rows(described, latency_batch=2, with_seeds=True)
    assert header[:6] == ["D Video AUC", "Mean", "seed SD", "Δ Mean", "Δ seed SD", "± SE"]
    assert rows[1][1][:6] == [0.75, 0.75, 0.2, pytest.approx(0.05), 0.05, 0.03]
    header, rows, _ = ablation_rows(described, latency_batch=2)
    assert header[:4] == ["D Video AUC", "Mean", "Δ Mean", "± SE"]
