"""Robustness results: the degradation table and the AUC-vs-severity plot.

``training/test.py --perturb`` writes ``<out>/robustness.json``::

    {"seed": 0, "datasets": [...], "footnote": "...",
     "results": {detector: {condition: {dataset: metrics}}}}

where ``condition`` is ``clean`` or a perturbation name (``jpeg=50``, see
training/data/perturbations.py) and ``metrics`` is that dataset's entry of a
``metrics.json``. This module renders it; re-render (another metric, after
editing names) with::

    python -m analysis.robustness --results <out>/robustness.json [--metric frame_auc]
"""
from __future__ import annotations

import argparse
import sys
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from analysis.tables import write_tables
from training.cli import cli_parser, run_cli
from training.data.perturbations import SEVERITIES, Perturbation, perturbation_from_name
from training.metrics import SELECTABLE_METRICS, get_metric

CLEAN = "clean"
ROW_LABEL = "Detector / perturbation"
RESULTS_FILE = "robustness.json"

PathLike = Union[str, os.PathLike]
Results = Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]

PANEL_TITLES = {"jpeg": "JPEG compression", "noise": "Gaussian noise", "blur": "Gaussian blur",
                "resize": "Downscale + upscale", "chain": "Chained (DeeperForensics-style)"}
AXIS_LABELS = {"jpeg": "JPEG quality", "noise": "noise sigma (0-255 units)", "blur": "blur sigma (pixels)",
               "resize": "downscale factor", "chain": "chain level"}


def ordered_conditions(conditions: Sequence[str]) -> List[str]:
    """``clean`` first, then kinds in the order of SEVERITIES, mildest level first."""
    perturbations = [perturbation_from_name(c) for c in conditions if c != CLEAN]
    kinds = list(SEVERITIES)
    perturbations.sort(key=lambda p: (kinds.index(p.kind), p.severity_rank))
    return ([CLEAN] if CLEAN in conditions else []) + [p.name for p in perturbations]


def condition_label(condition: str) -> str:
    return "clean" if condition == CLEAN else perturbation_from_name(condition).label


def degradation_rows(results: Results) -> Dict[str, Dict[str, Mapping[str, float]]]:
    """``{"<detector> / <condition label>": {dataset: metrics}}`` in table order."""
    rows: Dict[str, Dict[str, Mapping[str, float]]] = {}
    for detector, per_condition in results.items():
        for condition in ordered_conditions(list(per_condition)):
            rows[f"{detector} / {condition_label(condition)}"] = dict(per_condition[condition])
    return rows


def write_robustness_tables(results: Results, out_prefix: PathLike, footnote: Optional[str] = None,
                            extra: Sequence[str] = ()) -> str:
    """``<prefix>.{md,csv,tex}``: rows detector x perturbation/severity, AUC columns + Mean."""
    return write_tables(degradation_rows(results), out_prefix, footnote=footnote, extra=extra, row_label=ROW_LABEL)


def mean_metric(per_dataset: Mapping[str, Mapping[str, float]], metric: str) -> float:
    values = [float(metrics[metric]) for metrics in per_dataset.values()]
    return sum(values) / len(values)


def plot_robustness(results: Results, path: PathLike, metric: str = "video_auc") -> Path:
    """One panel per perturbation kind: mean ``metric`` over the test datasets (y) against
    severity (x, ``clean`` at 0), one line per detector."""
    from analysis.plotting import colours, new_figure, panel_axes, save_png

    kinds = [kind for kind in SEVERITIES
             if any(c != CLEAN and perturbation_from_name(c).kind == kind
                    for per_condition in results.values() for c in per_condition)]
    if not kinds:
        raise ValueError("robustness results hold no perturbed condition; run training/test.py with --perturb")
    datasets = list(dict.fromkeys(d for per_condition in results.values() for r in per_condition.values() for d in r))
    figure, axes = new_figure(len(kinds), max_columns=3, panel_size=(4.4, 3.7))
    panels = panel_axes(axes, len(kinds))
    palette = colours(len(results))
    metric_text = get_metric(metric).title
    for (ax,), kind in zip(panels, kinds):
        levels: List[Perturbation] = []
        for per_condition in results.values():
            levels += [perturbation_from_name(c) for c in per_condition
                       if c != CLEAN and perturbation_from_name(c).kind == kind]
        parameters = sorted({p.parameter for p in levels}, key=lambda v: Perturbation(kind, v).severity_rank)
        ticks = ["clean"] + [f"{v:g}" for v in parameters]
        for colour, (detector, per_condition) in zip(palette, results.items()):
            xs, ys = [], []
            for x, condition in enumerate([CLEAN] + [Perturbation(kind, v).name for v in parameters]):
                if condition in per_condition:
                    xs.append(x)
                    ys.append(100.0 * mean_metric(per_condition[condition], metric))
            ax.plot(xs, ys, marker="o", color=colour, label=detector, linewidth=1.8)
        ax.axhline(50.0, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_xticks(range(len(ticks)), ticks)
        ax.set_xlabel(AXIS_LABELS[kind] + " (stronger to the right)")
        ax.set_ylabel(f"mean {metric_text} (%)")
        ax.set_title(PANEL_TITLES[kind])
        ax.set_ylim(0, 102)
        ax.grid(True, alpha=0.3)
    handles, labels = panels[0][0].get_legend_handles_labels()
    spare = [ax for ax in axes.ravel() if not ax.get_visible()]
    if spare:  # an empty grid cell: the legend covers no curve there
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles, labels, loc="center", fontsize=9, title="detector")
    else:
        panels[0][0].legend(handles, labels, loc="lower left", fontsize=8, framealpha=0.9)
    figure.suptitle(f"Robustness: mean {metric_text} over {', '.join(datasets)}", fontsize=11)
    return save_png(figure, path)


def read_results(path: PathLike) -> Dict:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; it is written by `python training/test.py ... --perturb "
                                f"--out <dir>` as <dir>/{RESULTS_FILE}")
    payload = json.loads(path.read_text(encoding="utf-8"))
    if "results" not in payload:
        raise ValueError(f"{path} has no 'results' key; was it written by training/test.py --perturb?")
    return payload


def write_robustness(payload: Mapping, out_prefix: PathLike, extra: Sequence[str] = (),
                     metric: str = "video_auc") -> str:
    """Tables and ``<prefix>.png`` from a robustness.json payload; returns the markdown."""
    markdown = write_robustness_tables(payload["results"], out_prefix, footnote=payload.get("footnote"),
                                       extra=extra)
    plot_robustness(payload["results"], f"{os.fspath(out_prefix)}.png", metric=metric)
    return markdown


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--results", required=True, help=f"{RESULTS_FILE} (or the directory holding it)")
    parser.add_argument("--out", help="output prefix (default: robustness next to the results file)")
    parser.add_argument("--metric", default="video_auc", choices=SELECTABLE_METRICS,
                        help="metric of the plot, a training/metrics.py name (default video_auc)")
    parser.add_argument("--extra_metrics", action="store_true", help="add the EXTRA_METRICS columns of training/metrics.py")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from training.engine.testing import metric_columns

    payload = read_results(args.results)
    results_path = Path(args.results)
    folder = results_path if results_path.is_dir() else results_path.parent
    prefix = Path(args.out) if args.out else folder / "robustness"
    print(write_robustness(payload, prefix, extra=metric_columns(args.extra_metrics), metric=args.metric))
    print(f"{prefix}.png")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
