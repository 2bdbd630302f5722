"""Testing a trained detector on the official *test* split of each dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

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


def frames_per_video(results: Mapping[str, Mapping[str, Any]]) -> str:
    """What was scored, from metrics.json's counts: ``4`` when every test set had that many frames per
    video, else ``4 in DemoFF, 3.9 (mean) in DemoCDF`` (a video may hold fewer frames than data.frame_num)."""
    counts = {name: m["n_frames"] / m["n_videos"] for name, m in results.items()
              if m.get("n_frames") and m.get("n_videos")}
    if not counts:
        return ""
    shown = {name: f"{value:.0f}" if float(value).is_integer() else f"{value:.1f} (mean)"
             for name, value in counts.items()}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{value} in {name}" for name, value in shown.items())


def table_footnote(config: Config, clip_len: int = 1, results: Optional[Mapping[str, Mapping[str, Any]]] = None) -> str:
    """The table's protocol line. With ``results`` (metrics.json) the frames per video are the ones actually
    scored, not the configured maximum (a demo set with 4 frames per video said 8)."""
    if clip_len == 1:
        frames = config["data"]["frame_num"]["test"]
        actual = frames_per_video(results or {})
        cap = f"(data.frame_num.test={frames if frames > 0 else 'all'})"
        if actual and " in " in actual:  # test sets differ: name each
            sampling = f"frames per video: {actual}, sampled evenly over the whole video {cap}"
        elif actual:
            sampling = f"{actual} frames per video sampled evenly over the whole video {cap}"
        else:
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
