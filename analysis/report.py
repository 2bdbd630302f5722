"""One self-contained HTML report per run: config, metrics, validation history, every plot.

    python -m analysis.report --run runs/<run> [--out report.html] [--no_plots]

Regenerates the standard plots from the run's files into ``<run>/plots/``
(training curves from ``tb/`` or ``train.log`` and ``val_history.json``; ROC, also
with a log-scale FPR axis, and score histograms from ``test/*/predictions.csv``; t-SNE when
``features.npz`` exist; the robustness plot when a ``robustness.json`` from
``training/test.py --perturb --out <run>/...`` is inside the run), then embeds
every PNG of ``<run>/plots/`` (also those of ``analysis.cam``) as base64.
Adds ``model_card.json`` (``analysis.model_card``) when present, and the run's
provenance (``provenance.json``: git commit, packages, command, host, wall time);
the resolved config is folded away. The page has
no external CSS, JavaScript or fonts: it opens offline and can be mailed.
Default output: ``<run>/report.html``.
"""
from __future__ import annotations

import argparse
import sys
import base64
import html
import json
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from analysis.plotting import FEATURES_FILE, PLOTS_DIR, PREDICTIONS_FILE
from training.cli import cli_parser, run_cli
from training.engine.run_dir import RunDir
from training.metrics import METRICS, get_metric
from training.utils.atomic import atomic_write_text

PLOT_ORDER = ("curves", "roc", "histograms", "tsne", "robustness", "cam")  # file-name prefixes, in page order
PLOT_CAPTIONS = {
    "curves": "Training losses over the global step (tb/ or train.log) and the validation metric per epoch "
              "(val_history.json).",
    "roc": "ROC curves per test dataset (solid: video level, dashed: frame level), on linear axes and with a "
           "log-scale false-positive-rate axis.",
    "histograms": "P(fake) distributions of real and fake samples, per frame and per video.",
    "tsne": "t-SNE of the detector's features, coloured by label, manipulation method and dataset.",
    "robustness": "Mean AUC under test-time degradations of increasing strength (docs/ROBUSTNESS.md).",
    "cam": "Grad-CAM / attention rollout on test faces (analysis.cam).",
}

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
summary { cursor: pointer; color: #245; }
table.keyvalue td { text-align: left; }
.note { color: #555; font-size: .9em; }
"""


# ----------------------------------------------------------------------- html bits

def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _format(metric: str, value: Optional[float]) -> str:
    if value is None:
        return "–"
    if get_metric(metric).is_count:
        return f"{value:,.0f}"
    return f"{100.0 * value:.2f}"


def metric_label(metric: str) -> str:
    """The registry title: frame_auc -> Frame AUC (%); n_videos -> #videos."""
    entry = get_metric(metric)
    return entry.title if entry.is_count else f"{entry.title} (%)"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_esc(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def results_table(results: Mapping[str, Mapping[str, Mapping[str, float]]], extra: Sequence[str] = ()) -> str:
    """The cross-dataset table (analysis.tables layout) as HTML, values in %."""
    from analysis.tables import build_table

    table = build_table(results, extra=extra)
    header = ["Detector"] + [f"{dataset} {metric_label(metric)}" for dataset, metric in table.columns]
    rows = [[name] + [_format(metric, value) for (_, metric), value in zip(table.columns, cells)]
            for name, cells in zip(table.row_names, table.values)]
    return html_table(header, rows)


def detail_table(results: Mapping[str, Mapping[str, float]]) -> str:
    metrics = [m for m in METRICS if any(m in r for r in results.values())]
    header = ["Dataset"] + [metric_label(m) for m in metrics]
    rows = [[dataset] + [_format(m, values.get(m)) for m in metrics] for dataset, values in results.items()]
    return html_table(header, rows)


def embedded_png(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


# ------------------------------------------------------------------------- content

def regenerate_plots(run: Path) -> List[str]:
    """Write the standard plots into ``<run>/plots``; return notes on what was skipped."""
    from analysis.histograms import plot_histograms
    from analysis.plotting import find_result_files
    from analysis.roc import load_dataset_scores, plot_roc

    notes = []
    plots = run / PLOTS_DIR
    if list(RunDir(run).test.glob(f"*/{PREDICTIONS_FILE}")):
        scores = load_dataset_scores(find_result_files(run))
        plot_roc(scores, plots / "roc.png")
        for per_dataset in scores.values():
            plot_histograms(per_dataset, plots / "histograms.png", title=f"{run.name}: score distributions")
    else:
        notes.append(f"No test predictions in {run}/test/: the run was not tested (train.py --no_test?).")
    if list(RunDir(run).test.glob(f"*/{FEATURES_FILE}")):
        from analysis.tsne import load_features, plot_tsne

        files = find_result_files(run, FEATURES_FILE)
        for per_dataset in files.values():
            plot_tsne(load_features(per_dataset), plots / "tsne.png", title=f"{run.name} features")
    else:
        notes.append("No t-SNE: features are saved only when testing with test.save_features=true.")
    for results_file in robustness_files(run):
        from analysis.robustness import plot_robustness, read_results

        folder = results_file.parent.name
        suffix = "" if results_file.parent == run or folder == "robustness" else f"_{folder}"
        plot_robustness(read_results(results_file)["results"], plots / f"robustness{suffix}.png")
    if not (plots / "cam.png").is_file():
        notes.append(f"No Grad-CAM: run `python -m analysis.cam --run {run}` first to include it.")
    return notes


def robustness_files(run: Path) -> List[Path]:
    """robustness.json files inside the run (training/test.py --perturb --out <run>/<dir>)."""
    return sorted(p for p in run.glob("*/robustness.json")) + sorted(run.glob("robustness.json"))


def caption(path: Path) -> str:
    prefix = next((p for p in PLOT_ORDER if path.stem.startswith(p)), None)
    return f"{path.name}: {PLOT_CAPTIONS[prefix]}" if prefix else path.name


def regenerate_curves(run: Path) -> List[str]:
    """``<run>/plots/curves.png`` (losses and validation over training); a note when there is nothing to plot."""
    from analysis.curves import plot_curves

    if plot_curves(run, run / PLOTS_DIR / "curves.png") is None:
        return [f"No training curves: {run} has no tb/, train.log step lines or val_history.json."]
    return []


def plot_files(run: Path) -> List[Path]:
    def rank(path: Path) -> int:
        return next((i for i, prefix in enumerate(PLOT_ORDER) if path.stem.startswith(prefix)), len(PLOT_ORDER))

    return sorted((run / PLOTS_DIR).glob("*.png"), key=lambda path: (rank(path), path.name))


def validation_section(run: Path) -> str:
    path = RunDir(run).val_history
    if not path.is_file():
        return '<p class="note">No validation history (train.val_every_epochs: 0).</p>'
    history = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for entry in history:
        metric = next((k for k in entry if k.startswith("mean_")), None)
        rows.append([entry.get("epoch"), entry.get("global_step"),
                     f"{100.0 * entry[metric]:.2f}" if metric else "–", "yes" if entry.get("improved") else ""])
    key = next((k for k in history[0] if k.startswith("mean_")), None) if history else None
    title = f"mean {metric_label(key[len('mean_'):])}" if key and key[len("mean_"):] in METRICS else "metric (%)"
    return html_table(["Epoch", "Step", title, "Best so far"], rows)


def provenance_section(run: Path) -> str:
    """Where the numbers came from (provenance.json, written by train.py)."""
    from training.engine.run_dir import PROVENANCE_FILE

    path = Path(run) / PROVENANCE_FILE
    if not path.is_file():
        return (f'<p class="note">No {_esc(path.name)}: the run was made before train.py recorded its git commit, '
                "packages, command, host and wall time.</p>")
    record = json.loads(path.read_text(encoding="utf-8"))
    git = record.get("git") or {}
    commit = git.get("commit") or git.get("note") or "unknown"
    if git.get("dirty"):
        commit += f" (uncommitted changes in {len(git.get('changed_files', []))} file(s))"
    wall = record.get("wall_time_s")
    rows = [["Git commit", commit], ["Command", " ".join(map(str, record.get("command", [])))],
            ["Host", f"{record.get('host')} ({record.get('platform')})"],
            ["Device", ", ".join([str(record.get("device"))] + list(record.get("gpus") or []))],
            ["Started", record.get("started", "")], ["Ended", record.get("ended", "(still running or killed)")],
            ["Status", record.get("status", "running")],
            ["Wall time", f"{wall:.0f} s ({wall / 60:.1f} min)" if wall is not None else "–"],
            ["Python", record.get("python", "")]]
    rows += [[f"{name}", version or "not installed"] for name, version in (record.get("packages") or {}).items()]
    return html_table(["", "Value"], rows).replace("<table>", '<table class="keyvalue">', 1)


def model_card_section(run: Path) -> str:
    path = run / "model_card.json"
    if not path.is_file():
        return (f'<p class="note">No model card: run <code>python -m analysis.model_card --run {_esc(run)}</code> '
                f"to add parameter counts, GFLOPs and throughput.</p>")
    card = json.loads(path.read_text(encoding="utf-8"))
    params = card["parameters"]
    rows = [["Parameters (total)", f"{params['total']:,}"],
            ["Parameters (trainable)", f"{params['trainable']:,} ({params['trainable_pct']:.4f} %)"],
            ["GFLOPs per image", f"{card['gflops_per_image']:.4g}"]]
    if "throughput" in card:
        speed = card["throughput"]
        rows.append(["Throughput (images/s)", f"{speed['images_per_s']:.1f} (batch {speed['batch_size']}, "
                                              f"{speed['device']})"])
    return html_table(["Property", "Value"], rows)


def robustness_section(run: Path) -> str:
    from analysis.robustness import degradation_rows, read_results

    parts = []
    for path in robustness_files(run):
        payload = read_results(path)
        parts.append(f"<p class=\"note\">From {_esc(path.relative_to(run))}. {_esc(payload.get('footnote', ''))}</p>")
        parts.append(results_table(degradation_rows(payload["results"])))
    return "".join(parts)


def build_report(run: Path, make_plots: bool = True) -> str:
    import yaml

    run = Path(run)
    config_path = RunDir(run).config
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: --run must be a training run directory (runs/<run>)")
    config_text = config_path.read_text(encoding="utf-8")
    config = yaml.safe_load(config_text)
    notes = regenerate_plots(run) + regenerate_curves(run) if make_plots else []
    sections: List[Tuple[str, str]] = []

    metrics_path = RunDir(run).metrics
    if metrics_path.is_file():
        results = json.loads(metrics_path.read_text(encoding="utf-8"))
        name = run.name  # the run directory's name, as in table.md and test.py's tables
        sections.append(("Test results (official test splits)",
                         results_table({name: results}) + "<h3>All metrics per dataset</h3>" + detail_table(results)
                         + '<p class="note">All but counts in %; AP is the fake class, mAP the mean of the '
                           "fake- and real-class AP; video level aggregates P(fake) per video (training/metrics.py)."
                           "</p>"))
    else:
        sections.append(("Test results", f'<p class="note">No metrics.json in {_esc(run)} (not tested yet).</p>'))
    sections.append(("Validation history", validation_section(run)))
    sections.append(("Model card", model_card_section(run)))
    robustness = robustness_section(run)
    if robustness:
        sections.append(("Robustness", robustness))
    figures = "".join(embedded_png(path, caption(path)) for path in plot_files(run))
    note_html = "".join(f'<p class="note">{_esc(note)}</p>' for note in notes)
    sections.append(("Plots", (figures or '<p class="note">No plots.</p>') + note_html))
    sections.append(("Provenance", provenance_section(run)))
    # Folded: the resolved config is long and read only when needed.
    sections.append(("Configuration", f"<details><summary>Resolved config.yaml ({len(config_text.splitlines())} "
                                      f"lines)</summary><pre>{_esc(config_text)}</pre></details>"))

    data = config.get("data", {})
    summary = (f"Detector <b>{_esc(config.get('model', {}).get('name'))}</b>; trained on "
               f"{_esc(', '.join(map(str, data.get('train_dataset') or [])))}; tested on "
               f"{_esc(', '.join(map(str, data.get('test_dataset') or [])))}.")
    body = "".join(f"<h2>{_esc(title)}</h2>{content}" for title, content in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{_esc(run.name)} report</title><style>{STYLE}</style></head><body>"
            f"<h1>Run {_esc(run.name)}</h1><p>{summary}</p>{body}</body></html>\n")


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--run", required=True, help="training run directory (runs/<run>)")
    parser.add_argument("--out", help="output HTML (default: <run>/report.html)")
    parser.add_argument("--no_plots", action="store_true", help="embed existing plots only, do not regenerate")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    run = Path(args.run)
    out = Path(args.out) if args.out else RunDir(run).report
    atomic_write_text(out, build_report(run, make_plots=not args.no_plots))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
