"""Score histograms, real vs fake, per test dataset (top: frames, bottom: videos).

    python -m analysis.histograms --run runs/<run> [--out hist.png] [--bins 25]
    python -m analysis.histograms --predictions runs/<run>/test/DemoCDF/predictions.csv

Histograms are normalised per class (density), so a class with many more
samples does not hide the other; the legend gives the counts. The dotted line
is the 0.5 threshold that ``acc`` uses. Default output:
``<run>/plots/histograms.png``. With several detectors, one figure each:
``histograms_<detector>.png``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Mapping, Optional

import numpy as np

from analysis.plotting import FAKE_COLOUR, REAL_COLOUR, add_source_arguments, collect_sources, default_output, \
    new_figure, panel_axes, save_png
from analysis.roc import ScoreColumns, level_scores, load_dataset_scores
from training.cli import cli_parser, run_cli


def plot_histograms(per_dataset: Mapping[str, ScoreColumns], path, title: str, bins: int = 25) -> Path:
    datasets = list(per_dataset)
    figure, axes = new_figure(len(datasets), max_columns=3, panel_size=(4.4, 3.0), rows_per_panel=2)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for cells, dataset in zip(panel_axes(axes, len(datasets), rows_per_panel=2), datasets):
        for ax, level in zip(cells, ("frame", "video")):
            labels, scores = level_scores(per_dataset[dataset], level)
            for value, name, colour in ((0, "real", REAL_COLOUR), (1, "fake", FAKE_COLOUR)):
                chosen = scores[labels == value]
                ax.hist(chosen, bins=edges, density=True, alpha=0.55, color=colour, edgecolor=colour,
                        label=f"{name} (n={chosen.size})")
            ax.axvline(0.5, color="black", linestyle=":", linewidth=1)
            ax.set_xlim(0, 1)
            ax.set_xlabel(f"P(fake), {'mean per video' if level == 'video' else 'per frame'}")
            ax.set_ylabel("density")
            ax.set_title(f"{dataset}: {level} level")
            ax.legend(loc="upper center", fontsize=8, framealpha=0.9)
    figure.suptitle(title, fontsize=11)
    return save_png(figure, path)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    add_source_arguments(parser, "predictions")
    parser.add_argument("--bins", type=int, default=25, help="histogram bins over [0, 1]")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    sources = args.run or args.predictions
    scores = load_dataset_scores(collect_sources(sources, args.names))
    out = Path(args.out) if args.out else default_output(sources, "histograms.png")
    for detector, per_dataset in scores.items():
        path = out if len(scores) == 1 else out.with_name(f"{out.stem}_{detector}{out.suffix}")
        print(plot_histograms(per_dataset, path, title=f"{detector}: score distributions, real vs fake",
                              bins=args.bins))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
