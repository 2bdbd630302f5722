"""Training curves of a run: the loss parts over the global step and the validation metric over the epochs.

    python -m analysis.curves --run runs/<run> [--out curves.png]

Losses come from the run's TensorBoard scalars (``tb/``, ``train/loss_<part>``, written every
``train.log_every`` steps), or from the step lines of ``train.log`` when there is no ``tb/``; the
validation curve from ``val_history.json`` (the mean selection metric and each validation set). Epochs are
numbered from 1, as in the log. Default output: ``<run>/plots/curves.png``.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from analysis.plotting import PLOTS_DIR, colours, new_figure, save_png
from training.engine.run_dir import RunDir

Series = Dict[str, Tuple[List[int], List[float]]]  # name -> (steps, values)
_LOSS_IN_LOG = re.compile(r"(\w+)=(-?\d+(?:\.\d+)?(?:e-?\d+)?)")


def losses_from_tensorboard(tb_dir: Path) -> Series:
    """``{part: (steps, values)}`` of the ``train/loss_<part>`` scalars in ``tb_dir`` (every event file)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    series: Series = {}
    for tag in accumulator.Tags().get("scalars", []):
        if tag.startswith("train/loss_"):
            events = accumulator.Scalars(tag)
            series[tag[len("train/loss_"):]] = ([e.step for e in events], [e.value for e in events])
    return series


def losses_from_log(log_path: Path) -> Series:
    """The same from train.log's step lines (``... global 20/120 ... ce=0.6931 total=0.6931``)."""
    series: Series = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        step = re.search(r" step \d+/\d+ global (\d+)", line)
        if not step:
            continue
        tail = line[step.end():]
        for name, value in _LOSS_IN_LOG.findall(tail):
            steps, values = series.setdefault(name, ([], []))
            steps.append(int(step.group(1)))
            values.append(float(value))
    return series


def training_losses(run: Path) -> Series:
    tb_dir = RunDir(run).tensorboard
    if tb_dir.is_dir() and any(tb_dir.iterdir()):
        found = losses_from_tensorboard(tb_dir)
        if found:
            return found
    log_path = RunDir(run).log
    return losses_from_log(log_path) if log_path.is_file() else {}


def validation_curves(run: Path) -> Tuple[Optional[str], Series]:
    """(selection metric, ``{"mean" | dataset: (epochs, values)}``) from val_history.json."""
    path = RunDir(run).val_history
    if not path.is_file():
        return None, {}
    history = json.loads(path.read_text(encoding="utf-8"))
    metric = next((k[len("mean_"):] for entry in history for k in entry if k.startswith("mean_")), None)
    if metric is None:
        return None, {}
    series: Series = {"mean": ([e["epoch"] for e in history], [e[f"mean_{metric}"] for e in history])}
    for entry in history:
        for dataset, values in (entry.get("metrics") or {}).items():
            if metric in values:
                epochs, numbers = series.setdefault(dataset, ([], []))
                epochs.append(entry["epoch"])
                numbers.append(values[metric])
    if len(series) == 2:  # one validation set: its curve is the mean
        series = {"mean": series["mean"]}
    return metric, series


def plot_curves(run: Path, path: Path) -> Optional[Path]:
    """Write the curves of ``run`` to ``path``; None when the run has neither losses nor validation."""
    losses = training_losses(run)
    metric, validation = validation_curves(run)
    if not losses and not validation:
        return None
    panels = [kind for kind, present in (("loss", losses), ("val", validation)) if present]
    figure, axes = new_figure(len(panels), max_columns=2, panel_size=(5.6, 3.6))
    for ax, kind in zip(axes.ravel(), panels):
        if kind == "loss":
            for colour, (name, (steps, values)) in zip(colours(len(losses)), sorted(losses.items())):
                ax.plot(steps, values, color=colour, linewidth=1.8 if name == "total" else 1.1, label=name)
            ax.set_xlabel("global step")
            ax.set_ylabel("training loss")
            ax.set_title("Training losses (parts weighted != 0)")
        else:
            for colour, (name, (epochs, values)) in zip(colours(len(validation)), validation.items()):
                ax.plot(epochs, [100 * v for v in values], marker="o", color=colour,
                        linewidth=1.8 if name == "mean" else 1.0, label=name)
            ax.set_xlabel("epoch (1 = after the first)")
            ax.set_ylabel(f"validation {metric} (%)")
            ax.set_title("Validation (the training data's val split)")
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(f"{run.name}: training curves", fontsize=11)
    return save_png(figure, path)


def build_parser() -> argparse.ArgumentParser:
    from training.cli import cli_parser

    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--run", required=True, help="training run directory (runs/<run>)")
    parser.add_argument("--out", help="output PNG (default: <run>/plots/curves.png)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    run = Path(args.run)
    out = Path(args.out) if args.out else run / PLOTS_DIR / "curves.png"
    written = plot_curves(run, out)
    if written is None:
        raise SystemExit(f"{run}: no tb/, train.log step lines or val_history.json: nothing to plot "
                         f"(is it a training run directory?).")
    print(written)
    return 0


if __name__ == "__main__":
    import sys

    from training.cli import run_cli

    sys.exit(run_cli(main))
