"""Testing a trained detector on the official *test* split of each dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import torch
from torch import nn

from training.config import Config
from training.data.loaders import build_dataset, build_loader, data_report, log_data_report
from training.engine import distributed as dist_utils
from training.engine.evaluation import evaluate_datasets
from training.engine.run_dir import METRICS_FILE
from training.utils.atomic import atomic_write_json

DATA_REPORT_FILE = "data_report.json"


def test_loaders(config: Config, names: Sequence[str], spec, device: torch.device,
                 perturbation=None) -> Dict[str, object]:
    loaders = {}
    for name in names:
        dataset = build_dataset(config, [name], "test", spec, train=False, perturbation=perturbation)
        loaders[name] = build_loader(config, dataset, config["test"]["batch_size"], train=False,
                                     rank=dist_utils.rank(), world_size=dist_utils.world_size(), device=device)
    return loaders


def test_detector(config: Config, model: nn.Module, names: Sequence[str], out_dir: Path,
                  device: torch.device, perturbation=None) -> Dict[str, Dict]:
    """Write ``out_dir/<dataset>/predictions.csv`` + ``metrics.json`` per dataset and
    ``out_dir/metrics.json`` for all; return ``{dataset: metrics}``.

    ``perturbation`` (training/data/perturbations.py) degrades every test frame as it is read."""
    detector = dist_utils.unwrap(model)
    loaders = test_loaders(config, names, detector.input_spec, device, perturbation=perturbation)
    for name, loader in loaders.items():  # padded/skipped videos are reported next to the predictions
        report = data_report(loader.dataset, name, "test")
        log_data_report(report)
        if dist_utils.is_main_process():
            atomic_write_json(Path(out_dir) / name / DATA_REPORT_FILE, report)
    results = evaluate_datasets(model, loaders, Path(out_dir), device, config["train"]["amp"],
                                save_features=config["test"]["save_features"],
                                video_aggregation=config["test"]["video_aggregation"])
    if dist_utils.is_main_process():
        atomic_write_json(Path(out_dir) / METRICS_FILE, results)
    return results


def table_footnote(config: Config, clip_len: int = 1) -> str:
    if clip_len == 1:
        frames = config["data"]["frame_num"]["test"]
        sampling = f"{frames if frames > 0 else 'all'} frames per video sampled evenly over the whole video"
        scored = "frame AUC over all frames"
    else:  # clip datasets cut clips of consecutive frames from all frames (data/loaders.py)
        clips = config["data"]["clips_per_video"]["test"]
        sampling = (f"{clips if clips > 0 else 'all non-overlapping'} clips of {clip_len} consecutive frames per "
                    f"video, evenly spaced over the whole video")
        scored = f"frame AUC = clip AUC over all clips of {clip_len} frames"
    return (f"Official test splits; {sampling}; {scored}; video AUC over per-video mean P(fake) "
            f"(videos keyed by full dataset/label/video path). Checkpoints selected on the training data's "
            f"validation split.")


def metric_columns(extra: bool) -> List[str]:
    from training.metrics import EXTRA_METRICS

    return list(EXTRA_METRICS) if extra else []
