"""How much of a dataset's forgery signal is temporal? Hand-made statistics, no learning.

    .venv/bin/python scripts/temporal_cues.py --data_root datasets [--dataset DemoTemporal] [--split test]

Each statistic is computed on the centre half (128x128 of the 256 px crops: the face) of
every stored frame and scored with ROC AUC against the fake label:

* frame level: centre brightness minus whole-frame brightness, per frame (what a single
  image shows of a brightness offset on the face);
* video level: mean absolute second temporal difference of the centre brightness (how much
  the face flickers from frame to frame);
* video level: fraction of sign changes between consecutive first differences (how often
  the face alternates between brighter and darker).

A dataset whose forgery is purely temporal gives ~0.5 on the first and high AUCs on the
others (docs/TEMPORAL.md, section 4).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
from training.cli import cli_parser, run_cli  # noqa: E402

import numpy as np  # noqa: E402


def brightness_series(frames: List[np.ndarray]) -> np.ndarray:
    """(T, 2): per frame, mean grey level of the centre half and of the whole crop."""
    series = []
    for frame in frames:
        grey = frame.astype(np.float32).mean(axis=2)
        h, w = grey.shape
        centre = grey[h // 4: h - h // 4, w // 4: w - w // 4]
        series.append((centre.mean(), grey.mean()))
    return np.asarray(series)


def video_statistics(series: np.ndarray) -> Dict[str, float]:
    centre = series[:, 0]
    first = np.diff(centre)
    second = np.diff(centre, n=2)
    flips = np.sign(first[1:]) != np.sign(first[:-1])
    return {"second_difference": float(np.abs(second).mean()) if second.size else 0.0,
            "sign_change_fraction": float(flips.mean()) if flips.size else 0.0}


def measure(data_root: Path, dataset: str, split: str) -> Dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from training.config import load_config
    from training.data.catalog import build_records
    from training.data.storage import build_storage

    repo = Path(__file__).resolve().parent.parent
    label_dict = load_config(repo / "configs" / "detector" / "demo_clip_tiny.yaml")["data"]["label_dict"]
    records = build_records(dataset, split, data_root=data_root, label_dict=label_dict)
    storage = build_storage("rgb", data_root)
    frame_labels, frame_offsets, video_labels = [], [], []
    per_video: Dict[str, List[float]] = {"second_difference": [], "sign_change_fraction": []}
    for record in records:
        series = brightness_series([storage.read_image(path, dataset) for path in record.frames])
        frame_offsets += list(series[:, 0] - series[:, 1])
        frame_labels += [record.label] * len(series)
        video_labels.append(record.label)
        for name, value in video_statistics(series).items():
            per_video[name].append(value)
    return {
        "videos": len(records), "frames": len(frame_labels),
        "frame_centre_minus_frame_brightness": roc_auc_score(frame_labels, frame_offsets),
        "video_second_difference": roc_auc_score(video_labels, per_video["second_difference"]),
        "video_sign_change_fraction": roc_auc_score(video_labels, per_video["sign_change_fraction"]),
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--data_root", default="datasets", help="data root holding json/<dataset>.json")
    parser.add_argument("--dataset", nargs="+", default=["DemoTemporal"], help="datasets to analyse")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to analyse")
    args = parser.parse_args(argv)
    results = {}
    for dataset in args.dataset:
        result = results[dataset] = measure(Path(args.data_root), dataset, args.split)
        print(f"{dataset} {args.split}: {result['videos']} videos, {result['frames']} frames")
        print("| Statistic | AUC |\n|---|---|")
        print(f"| centre brightness minus frame brightness, per frame (frame-level cue) | "
              f"{result['frame_centre_minus_frame_brightness']:.2f} |")
        print(f"| mean absolute second temporal difference of the centre brightness, per video | "
              f"{result['video_second_difference']:.2f} |")
        print(f"| fraction of sign changes between consecutive first differences, per video | "
              f"{result['video_sign_change_fraction']:.2f} |")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
