"""DeepfakeBench's released detector checkpoints (xception_best.pth, effnb4_best.pth) load
into our baselines and give its logits; unsafe pickles are refused with a recipe.

The checkpoints are made here the way its trainer saves them (``torch.save(model.state_dict())``
of its detector) from stand-ins with its parameter names (tests/models/deepfakebench_networks.py).
"""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from training.engine.checkpoint import CheckpointError, load_detector_weights
from training.models import detector_class
from tests.models.deepfakebench_networks import (DeepfakeBenchEfficientNetB4, DeepfakeBenchXception, Detector,
                                                  randomised)

SIZE = 64


def ours(name: str, **cfg):
    config = detector_class(name).default_config()
    config["name"] = name
    config["backbone"]["pretrained"] = None
    config.update(cfg)
    return detector_class(name)(config).eval()


def images(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def xception_checkpoint(tmp_path_factory):
    theirs = randomised(Detector(DeepfakeBenchXception()), seed=1)
    path = tmp_path_factory.mktemp("dfb") / "xception_best.pth"
    torch.save(theirs.state_dict(), path)
    return theirs, path


def test_xception_checkpoint_gives_their_logits(xception_checkpoint, tmp_path):
    theirs, path = xception_checkpoint
    detector = ours("xception")
    load_detector_weights(detector, path)
    x = images()
    with torch.no_grad():
        expected, got = theirs.logits(x), detector({"image": x})["logits"]
    assert (expected[0] - expected[1]).abs().max() > 1e-2  # inputs tell apart: a real check
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # Saved under DDP (module. prefix): the same weights.
    ddp = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in theirs.state_dict().items()}, ddp)
    with torch.no_grad():
        for parameter in detector.parameters():
            parameter.zero_()
    load_detector_weights(detector, ddp)
    with torch.no_grad():
        torch.testing.assert_close(detector({"image": x})["logits"], expected, rtol=1e-4, atol=1e-5)


def test_efficientnet_checkpoint_gives_their_logits(tmp_path):
    pytest.importorskip("efficientnet_pytorch")  # their network, for the reference forward
    theirs = randomised(Detector(DeepfakeBenchEfficientNetB4()), seed=2)
    path = tmp_path / "effnb4_best.pth"
    torch.save(theirs.state_dict(), path)
    detector = ours("efficientnet_b4")
    load_detector_weights(detector, path)
    x = images(1)
    with torch.no_grad():
        expected, got = theirs.logits(x), detector({"image": x})["logits"]
        their_maps = theirs.backbone.efficientnet.extract_features(x)
        our_maps = detector.backbone.model.forward_features(x)
    assert (their_maps[0] - their_maps[1]).abs().max() > 1e-3  # 100x the tolerance below: a real check
    torch.testing.assert_close(our_maps, their_maps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # timm's own TF-same padding (computed on the real 64 px input) is another network.
    timm_padding = ours("efficientnet_b4", padding="timm")
    load_detector_weights(timm_padding, path)
    with torch.no_grad():
        maps = timm_padding.backbone.model.forward_features(x)
    assert maps.shape != their_maps.shape or (maps - their_maps).abs().max() > 1e-3


def test_whole_model_pickle_is_refused_with_a_working_recipe(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    path = tmp_path / "effnb4_best.pth"
    torch.save(model, path)  # a whole pickled module, as some released checkpoints are
    with pytest.raises(CheckpointError) as error:
        load_detector_weights(torch.nn.Sequential(torch.nn.Linear(3, 2)), path)
    message = str(error.value)
    assert "weights_only=True rejected it" in message and "torch.save(model.state_dict()" in message
    script = "\n".join(line.strip() for line in message.splitlines() if line.startswith("    "))
    exec(compile(script, "recipe", "exec"), {})  # the three lines it prints work as printed
    converted = tmp_path / "effnb4_best.state_dict.pth"
    assert converted.is_file()
    target = torch.nn.Sequential(torch.nn.Linear(3, 2))
    load_detector_weights(target, converted)
    assert torch.equal(target[0].weight, model[0].weight)


def test_a_checkpoint_of_another_network_names_its_keys(xception_checkpoint):
    _, path = xception_checkpoint
    other = ours("timm_cnn", backbone=dict(detector_class("timm_cnn").default_config()["backbone"],
                                           model_name="test_efficientnet", pretrained=None))
    with pytest.raises(CheckpointError, match=r"missing keys .*unexpected keys \['backbone\.adjust_channel"):
        load_detector_weights(other, path)


# --------------------------------------------------------------------------- end to end


def test_cli_gives_their_cross_dataset_table_with_full_video_keys(demo_root, xception_checkpoint, tmp_path):
    """test.py on DeepfakeBench-layout demo data (JSON in preprocessing/dataset_json with
    Windows paths, <Dataset>_lmdb with backslash keys) and a DeepfakeBench checkpoint."""
    from tests.data.deepfakebench_layout import as_deepfakebench_checkout
    from training import test as test_cli

    theirs, weights = xception_checkpoint
    checkout = as_deepfakebench_checkout(demo_root, tmp_path / "DeepfakeBench", ["DemoFF", "DemoCDF"], frames=2)
    out = tmp_path / "results"
    assert test_cli.main(["--weights_path", str(weights), "--detector_path", "configs/detector/xception.yaml",
                          "--test_dataset", "DemoFF", "DemoCDF", "--out", str(out), "--device", "cpu", "--opts",
                          "model.backbone.pretrained=null", f"data.root={checkout}", "data.storage=lmdb",
                          f"model.resolution={SIZE}", "data.frame_num.test=2", "data.num_workers=0",
                          "test.batch_size=8"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    row = next(iter(metrics.values()))
    assert set(row) == {"DemoFF", "DemoCDF"}
    with open(out / "xception_best" / "DemoFF" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = {r["video_key"] for r in rows}
    assert all(key.count("/") == 2 and key.startswith("DemoFF/DemoFF_") for key in keys)
    # The demo's methods reuse folder names (003_006 under swap and reenact), as FF++'s do:
    # DeepfakeBench's parent-folder key would merge these videos; ours keeps them apart.
    assert len(keys) > len({key.split("/")[-1] for key in keys})
    # Each frame's score is their network's on the frame as their loader prepares it
    # (cv2 read, RGB, INTER_CUBIC resize, (x - 0.5) / 0.5).
    frames = _frames_by_key(checkout, "DemoFF")
    for r in rows[:6]:
        image = cv2.cvtColor(cv2.imread(frames[(r["video_key"], int(r["frame_index"]))]), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        x = (torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255 - 0.5) / 0.5
        with torch.no_grad():
            prob = torch.softmax(theirs.logits(x), 1)[0, 1].item()
        assert abs(prob - float(r["prob"])) < 1e-4, r


def _frames_by_key(checkout, name):
    from training.data.catalog import build_records, load_label_dict

    labels = load_label_dict("configs/_base_/datasets.yaml")
    out = {}
    for record in build_records(name, "test", data_root=checkout, label_dict=labels):
        for path in record.frames:
            index = int(path.replace("\\", "/").rsplit("/", 1)[1].split(".")[0])
            out[(record.key, index)] = str(checkout / "datasets" / "rgb" / path.replace("\\", "/"))
    return out
