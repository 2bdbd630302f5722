"""Testing a trained detector on the official *test* split of each dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import torch
from torch import nn

from training.config import Config
from training.data.loaders import build_dataset, build_loader
from training.engine import distributed as dist_utils
from training.engine.evaluation import evaluate_datasets
from training.utils.atomic import atomic_write_json


def test_loaders(config: Config, names: Sequence[str], spec, device: torch.device) -> Dict[str, object]:
    loaders = {}
    for name in names:
        dataset = build_dataset(config, [name], "test", spec, train=False)
        loaders[name] = build_loader(config, dataset, config["test"]["batch_size"], train=False,
                                     rank=dist_utils.rank(), world_size=dist_utils.world_size(), device=device)
    return loaders


def test_detector(config: Config, model: nn.Module, names: Sequence[str], out_dir: Path,
                  device: torch.device) -> Dict[str, Dict]:
    """Write ``out_dir/<dataset>/predictions.csv`` + ``metrics.json`` per dataset and
    ``out_dir/metrics.json`` for all; return ``{dataset: metrics}``."""
    detector = dist_utils.unwrap(model)
    loaders = test_loaders(config, names, detector.input_spec, device)
    results = evaluate_datasets(model, loaders, Path(out_dir), device, config["train"]["amp"],
                                save_features=config["test"]["save_features"])
    if dist_utils.is_main_process():
        atomic_write_json(Path(out_dir) / "metrics.json", results)
    return results


def table_footnote(config: Config, clip_len: int = 1) -> str:
    frames = config["data"]["frame_num"]["test"]
    unit = "frames" if clip_len == 1 else f"clips of {clip_len} frames"
    return (f"Official test splits; {frames if frames > 0 else 'all'} frames per video sampled evenly over the "
            f"whole video; frame AUC over all {unit}; video AUC over per-video mean P(fake) "
            f"(videos keyed by full dataset/label/video path). Checkpoints selected on the training data's "
            f"validation split.")


def metric_columns(extra: bool) -> List[str]:
    return ["frame_eer", "video_eer", "video_ap", "tpr_at_fpr_1pct"] if extra else []
