"""ROC curves per test dataset, frame and video level, one colour per detector.

    python -m analysis.roc --run runs/<run> [runs/<other> ...] [--names A B] [--out roc.png]
    python -m analysis.roc --predictions runs/<run>/test/DemoCDF/predictions.csv

Frame level: every scored frame (or clip). Video level: the mean P(fake) per
video (the protocol of training/metrics.py), so the AUCs in the legend are the
``frame_auc`` / ``video_auc`` of metrics.json. Each dataset gets the curve on
linear axes and again with a log-scale FPR axis (the low-FPR region). Datasets
are in the order of the tables (metrics.json). Default output:
``<first run>/plots/roc.png``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from analysis.plotting import add_source_arguments, collect_sources, colours, default_output, new_figure, \
    panel_axes, save_png, video_scores
from training.cli import cli_parser, run_cli

ScoreColumns = Dict[str, np.ndarray]


def load_dataset_scores(files: Mapping[str, Mapping[str, Path]]) -> Dict[str, Dict[str, ScoreColumns]]:
    """``{detector: {dataset: columns}}`` from predictions files (a file may hold several datasets)."""
    from training.metrics import read_predictions

    scores: Dict[str, Dict[str, ScoreColumns]] = {}
    for detector, per_dataset in files.items():
        for path in per_dataset.values():
            columns = read_predictions(path)
            for dataset in dict.fromkeys(columns["dataset"]):
                rows = columns["dataset"] == dataset
                scores.setdefault(detector, {})[str(dataset)] = {k: v[rows] for k, v in columns.items()}
    return scores


def level_scores(columns: ScoreColumns, level: str):
    """(labels, scores) at ``frame`` or ``video`` level."""
    if level == "frame":
        return columns["label"], columns["prob"]
    return video_scores(columns["video_key"], columns["label"], columns["prob"])


def roc_with_auc(labels: np.ndarray, scores: np.ndarray):
    """(fpr, tpr, auc) exactly as training/metrics.py computes them."""
    from training.metrics import roc_curve

    fpr, tpr = roc_curve(labels, scores)
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def plot_roc(scores: Mapping[str, Mapping[str, ScoreColumns]], path, title: Optional[str] = None) -> Path:
    """One column per dataset: the ROC on linear axes (top) and with a log-scale FPR axis (bottom), where
    the low false-positive rates a deployed detector runs at are readable."""
    from matplotlib.ticker import NullFormatter

    datasets = list(dict.fromkeys(d for per in scores.values() for d in per))
    figure, axes = new_figure(len(datasets), max_columns=3, panel_size=(4.4, 4.2), rows_per_panel=2)
    palette = colours(len(scores))
    for (linear, log), dataset in zip(panel_axes(axes, len(datasets), rows_per_panel=2), datasets):
        lowest = 1.0
        for colour, (detector, per_dataset) in zip(palette, scores.items()):
            if dataset not in per_dataset:
                continue
            for level, style in (("video", "-"), ("frame", "--")):
                labels, level_probs = level_scores(per_dataset[dataset], level)
                fpr, tpr, auc = roc_with_auc(labels, level_probs)
                lowest = min(lowest, 1.0 / max(int(np.sum(labels == 0)), 1))
                for ax in (linear, log):
                    ax.plot(fpr, tpr, linestyle=style, color=colour, linewidth=1.6,
                            label=f"{detector} {level} (AUC {100 * auc:.1f})")
        chance = np.logspace(-4, 0, 200)
        for ax in (linear, log):
            ax.plot(chance, chance, color="grey", linestyle=":", linewidth=1, label="chance")
            ax.set_ylim(-0.01, 1.01)
            ax.set_ylabel("true positive rate (fake detected)")
            ax.grid(True, alpha=0.3, which="both")
        linear.set_xlim(-0.01, 1.01)
        linear.set_xlabel("false positive rate (real called fake)")
        linear.set_title(dataset)
        linear.set_aspect("equal")
        linear.legend(loc="lower right", fontsize=7, framealpha=0.9)
        # log axis down to one real sample's share: below that the curve holds no information
        log.set_xscale("log", nonpositive="clip")
        log.set_xlim(10.0 ** np.floor(np.log10(min(lowest, 0.1))), 1.0)  # whole decades: clean tick labels
        log.xaxis.set_minor_formatter(NullFormatter())
        log.set_xlabel("false positive rate, log scale")
        log.set_title(f"{dataset}: low-FPR region", fontsize=9)
    figure.suptitle(title or "ROC curves (solid: video level, dashed: frame level)", fontsize=11)
    return save_png(figure, path)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    add_source_arguments(parser, "predictions")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    sources = args.run or args.predictions
    files = collect_sources(sources, args.names)
    out = Path(args.out) if args.out else default_output(sources, "roc.png")
    print(plot_roc(load_dataset_scores(files), out))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
