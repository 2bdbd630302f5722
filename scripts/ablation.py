r"""Component-wise ablation: train every variant of one detector config, test each, tabulate.

    python -m scripts.ablation --detector_path configs/detector/demo_clip_tiny.yaml \
        --out docs/ablation_run [--runs_dir runs/ablation_demo] [--variants configs/ablation/clip_modules.yaml] \
        [--only baseline +freq] [--seeds 1024 0 7] [--opts data.root=/tmp/e2e_data train.epochs=5 ...]
        [--device auto] [--force]

A variant is a set of config overrides (``--variants``: a YAML mapping of variant
name → {dotted.key: value}); the default file defines baseline, +freq, +boundary,
+identity and all. Every variant runs ``training/train.py`` with the same detector
config, seed and data plus its overrides, into ``<runs_dir>/<variant>/`` (default
``<out>/runs``), and is tested on every ``data.test_dataset``. With ``--seeds`` every
variant trains once per seed (``train.seed``), into ``<runs_dir>/<variant>/seed_<S>/``;
the table then shows the mean over seeds and the seed-to-seed spread next to the test-set
noise. A run already trained with exactly the same resolved config is not retrained (so an
interrupted ablation continues where it stopped); a changed config or ``--force`` retrains it.

Writes ``<out>/ablation.{md,csv,tex}`` (video AUC per test set, mean, its change
against the first variant with its test-set standard error (and, with several seeds, the
seed standard deviations), trainable parameters (all / in the variant's modules),
inference ms per image at batch 1 and at ``--latency_batch``, wall time) and
``<out>/ablation.json`` with everything, including the command line.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from training.cli import cli_parser, run_cli  # noqa: E402
from training.config import load_yaml  # noqa: E402
from training.engine.run_dir import RunDir  # noqa: E402
from training.metrics import get_metric  # noqa: E402

DEFAULT_VARIANTS = Path(__file__).resolve().parent.parent / "configs" / "ablation" / "clip_modules.yaml"
BACKBONE_AND_HEAD = ("backbone", "head")
STAMP = "ablation_variant.json"  # in each run directory: the config it was trained with, its wall time

log = logging.getLogger("ablation")


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--detector_path", required=True, help="detector YAML config shared by all variants")
    parser.add_argument("--out", required=True, help="output directory of ablation.{md,csv,tex,json}")
    parser.add_argument("--runs_dir", help="where the variants' run directories go (default <out>/runs); "
                                           "checkpoints are large, so keep them out of docs/ (e.g. runs/ablation)")
    parser.add_argument("--variants", default=str(DEFAULT_VARIANTS),
                        help="YAML: variant name -> {dotted.key: value} overrides (default: %(default)s)")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants (in file order)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                        help="train every variant once per seed (train.seed) and report the mean and the "
                             "seed spread (default: one run with the config's train.seed)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every variant (before the variant's own)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--force", action="store_true", help="retrain variants that already have metrics.json")
    parser.add_argument("--latency_batch", type=int, default=32, help="batch size of the batched latency")
    parser.add_argument("--latency_repeats", type=int, default=10, help="timed forward passes per latency")
    return parser


# ------------------------------------------------------------------------------ variants

def load_variants(path) -> Dict[str, Dict[str, Any]]:
    """Read a variants YAML: ``{name: {dotted.key: value}}`` (an empty mapping is the baseline)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"--variants {path}: file not found (see configs/ablation/clip_modules.yaml).")
    raw = load_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not raw:
        raise SystemExit(f"{path}: expected a mapping of variant name -> overrides, got {type(raw).__name__}.")
    variants = {}
    for name, overrides in raw.items():
        overrides = overrides or {}
        if not isinstance(overrides, dict):
            raise SystemExit(f"{path}: variant '{name}' must map dotted config keys to values "
                             f"(e.g. model.freq.enabled: true), got {overrides!r}.")
        variants[str(name)] = overrides
    return variants


def override_strings(overrides: Mapping[str, Any]) -> List[str]:
    """``{key: value}`` → ``key=value`` strings as on the command line (JSON is valid YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def run_dir_name(variant: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", variant)
    if name in ("", ".", ".."):
        raise SystemExit(f"Variant name {variant!r} cannot be a directory name; rename it.")
    return name


def run_dir_for(runs: Path, variant: str, seed: Optional[int]) -> Path:
    """``<runs>/<variant>`` for the config's own seed, ``<runs>/<variant>/seed_<S>`` with --seeds."""
    directory = runs / run_dir_name(variant)
    return directory if seed is None else directory / f"seed_{seed}"


def check_seeds(seeds: Optional[Sequence[int]]) -> List[Optional[int]]:
    """The training seeds to run; ``[None]`` means one run with the config's ``train.seed``."""
    if not seeds:
        return [None]
    repeated = sorted({seed for seed in seeds if list(seeds).count(seed) > 1})
    if repeated:
        raise SystemExit(f"--seeds: {repeated} given more than once; each seed is one training run.")
    return list(seeds)


def select_variants(variants: Dict[str, Dict[str, Any]], only: Optional[Sequence[str]]) -> Dict[str, Dict]:
    if not only:
        return variants
    unknown = [name for name in only if name not in variants]
    if unknown:
        raise SystemExit(f"--only: unknown variants {unknown}; the variants file defines {list(variants)}.")
    return {name: overrides for name, overrides in variants.items() if name in only}


# ------------------------------------------------------------------------------ running

def resolved_config(detector_path: str, opts: List[str]) -> Dict[str, Any]:
    """The variant's full config as train.py will resolve it (minus bookkeeping keys)."""
    from training.config import load_config

    config = load_config(detector_path, opts)
    return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))


def reusable_wall_time(run_dir: Path, expected: Dict[str, Any]) -> Optional[float]:
    """Wall time of a finished run of exactly this config, or None when it must be (re)trained:
    no metrics.json, or the detector config / overrides changed since it ran."""
    stamp = run_dir / STAMP
    if not RunDir(run_dir).metrics.is_file() or not stamp.is_file():
        return None
    previous = json.loads(stamp.read_text(encoding="utf-8"))
    if previous.get("config") != expected:
        log.info("%s was trained with a different config; retraining it", run_dir)
        return None
    return float(previous["wall_s"])


def train_or_reuse(detector_path: str, run_dir: Path, opts: List[str], device: str, force: bool,
                   train_main: Callable[[List[str]], int]) -> float:
    """Train + test one run unless the same config already finished there; its wall time."""
    from training.utils.atomic import atomic_write_json

    expected = resolved_config(detector_path, opts)
    wall = None if force else reusable_wall_time(run_dir, expected)
    if wall is not None:
        log.info("%s: reusing it (same config; trained in %.0fs)", run_dir, wall)
        return wall
    log.info("%s: training with %s", run_dir, " ".join(opts) or "(no overrides)")
    wall = train_variant(detector_path, run_dir, opts, device, train_main)
    atomic_write_json(run_dir / STAMP, {"config": expected, "wall_s": wall})
    _console_logger()
    log.info("%s: done in %.0fs", run_dir, wall)
    return wall


def train_variant(detector_path: str, run_dir: Path, overrides: List[str], device: str,
                  train_main: Callable[[List[str]], int]) -> float:
    """Train + test one variant into ``run_dir``; return the wall time in seconds."""
    if run_dir.exists():  # a partial run (no metrics.json): start it clean
        shutil.rmtree(run_dir)
    start = time.time()
    argv = ["--detector_path", detector_path, "--run_dir", str(run_dir), "--device", device]
    if overrides:
        argv += ["--opts", *overrides]
    code = train_main(argv)
    if code != 0 or not RunDir(run_dir).metrics.is_file():
        raise SystemExit(f"Training variant in {run_dir} did not finish (exit code {code}, no metrics.json); "
                         f"see {RunDir(run_dir).log}.")
    return time.time() - start


def measure_latency(detector, resolution: int, batch_size: int, repeats: int, device) -> float:
    """Median milliseconds per image of an inference forward pass at ``batch_size``."""
    import torch

    detector.eval()
    images = torch.randn(batch_size, 3, resolution, resolution, device=device,
                         generator=torch.Generator(device=device).manual_seed(0))
    timings = []
    with torch.no_grad():
        for step in range(repeats + 2):  # two warm-up passes, not timed
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            detector({"image": images})
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= 2:
                timings.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(timings) / batch_size


def describe_variant(run_dir: Path, latency_batch: int, repeats: int, device) -> Dict[str, Any]:
    """Test metrics, parameter counts and latency of a trained variant (from its run directory)."""
    from training.config import load_config
    from training.engine.checkpoint import load_detector_weights
    from training.models import build_detector, count_parameters

    config = load_config(RunDir(run_dir).config)
    detector = build_detector(config).to(device)
    load_detector_weights(detector, RunDir(run_dir).best)
    counts = count_parameters(detector)
    by_module = detector.parameter_report() if hasattr(detector, "parameter_report") else {}
    module_trainable = sum(c["trainable"] for name, c in by_module.items() if name not in BACKBONE_AND_HEAD)
    resolution = detector.input_spec.resolution
    return {
        "metrics": json.loads(RunDir(run_dir).metrics.read_text(encoding="utf-8")),
        "trainable": counts["trainable"], "total": counts["total"], "module_trainable": module_trainable,
        "parameters_by_module": by_module,
        "ms_per_image_b1": measure_latency(detector, resolution, 1, repeats, device),
        f"ms_per_image_b{latency_batch}": measure_latency(detector, resolution, latency_batch, repeats, device),
        "config": config,
    }


# ------------------------------------------------------------------------------ test-set noise

def video_level(predictions_csv: Path) -> Dict[str, tuple]:
    """{video_key: (label, mean P(fake))} from a predictions.csv (as training/metrics.py scores videos)."""
    import numpy as np

    from training.metrics import read_predictions

    columns = read_predictions(predictions_csv)
    keys, codes = np.unique(columns["video_key"], return_inverse=True)
    counts = np.bincount(codes)
    probs = np.bincount(codes, weights=columns["prob"]) / counts
    labels = np.bincount(codes, weights=columns["label"]) / counts
    return {str(key): (int(round(label)), float(prob)) for key, label, prob in zip(keys, labels, probs)}


def _rank_auc(labels, scores):
    """ROC AUC per row of (R, V) score matrices (Mann-Whitney U with average ranks for ties)."""
    import numpy as np
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=-1)
    positives = labels.sum(-1)
    negatives = labels.shape[-1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(-1) - positives * (positives + 1) / 2) / (positives * negatives)


def paired_bootstrap_se(reference_dirs: Sequence[Path], run_dirs: Sequence[Path], datasets: Sequence[str],
                        resamples: int = 1000, seed: int = 0) -> Optional[float]:
    """Standard error of Δ mean video AUC (runs − references, averaged over the pairs; run i
    was trained with the same seed as reference i) from resampling the *test videos* (the same
    resample for every run, per dataset). It measures how much the finite test sets alone move
    the difference; seed-to-seed training noise comes on top."""
    import numpy as np

    if len(reference_dirs) != len(run_dirs) or not run_dirs:
        raise ValueError(f"paired_bootstrap_se needs one reference run per run, got {len(reference_dirs)} "
                         f"references for {len(run_dirs)} runs")
    rng = np.random.default_rng(seed)
    deltas = np.zeros(resamples)
    for dataset in datasets:
        references = [video_level(RunDir(d).predictions(dataset)) for d in reference_dirs]
        currents = [video_level(RunDir(d).predictions(dataset)) for d in run_dirs]
        keys = sorted(references[0])
        if any(set(videos) != set(keys) for videos in references + currents):
            return None  # different test videos: no paired comparison
        labels = np.array([references[0][k][0] for k in keys])
        index = rng.integers(0, len(keys), size=(resamples, len(keys)))
        sampled = labels[index]
        for reference, current in zip(references, currents):
            a = _rank_auc(sampled, np.array([current[k][1] for k in keys])[index])
            b = _rank_auc(sampled, np.array([reference[k][1] for k in keys])[index])
            deltas += (a - b) / (len(datasets) * len(run_dirs))
    deltas = deltas[np.isfinite(deltas)]  # resamples with a single class have no AUC
    return float(deltas.std(ddof=1)) if deltas.size > 1 else None


# ------------------------------------------------------------------------------ seeds

# The table's metric (a training/metrics.py METRICS name); the paired bootstrap recomputes it as a rank AUC.
ABLATION_METRIC = "video_auc"

def mean_video_auc(metrics: Mapping[str, Mapping[str, Any]]) -> Optional[float]:
    """A run's mean video AUC over its test sets, as the table's Mean column computes it."""
    from analysis.tables import build_table

    return build_table({"run": metrics}, metrics=(ABLATION_METRIC,)).values[0][-1]


def average_metrics(per_seed: Sequence[Mapping[str, Mapping[str, Any]]]) -> Dict[str, Dict[str, Optional[float]]]:
    """``{dataset: {metric: mean over the seeds' metrics.json}}``; None where any seed lacks it."""
    averaged: Dict[str, Dict[str, Optional[float]]] = {}
    for dataset, metrics in per_seed[0].items():
        averaged[dataset] = {}
        for metric in metrics:
            values = [run.get(dataset, {}).get(metric) for run in per_seed]
            averaged[dataset][metric] = None if None in values else statistics.fmean(values)
    return averaged


def seed_sd(values: Sequence[Optional[float]]) -> Optional[float]:
    """Sample standard deviation over seeds; None with one seed or a missing value."""
    if len(values) < 2 or None in values:
        return None
    return statistics.stdev(values)


def seed_differences(runs: Sequence[Optional[float]], references: Sequence[Optional[float]]):
    """Per-seed run − reference (None where either is missing)."""
    return [None if a is None or b is None else a - b for a, b in zip(runs, references)]


# ------------------------------------------------------------------------------ tables

def ablation_rows(described: Mapping[str, Mapping[str, Any]], latency_batch: int, with_seeds: bool = False):
    """(header, rows of (name, [value or None ...]), kinds) for the renderers. Kinds: auc | delta |
    se | count | ms | seconds. AUC values come from analysis.tables.build_table (video AUC + mean);
    ``with_seeds`` adds the seed standard deviations of the Mean and of Δ Mean."""
    from analysis.tables import build_table

    table = build_table({name: d["metrics"] for name, d in described.items()}, metrics=(ABLATION_METRIC,))
    # (title, kind, key of the variant's description) after the AUC columns
    columns = [("seed SD", "se", "mean_seed_sd"), ("Δ Mean", "delta", "delta"),
               ("Δ seed SD", "se", "delta_seed_sd"), ("± SE", "se", "delta_se"),
               ("Trainable", "count", "trainable"), ("Module params", "count", "module_trainable"),
               ("ms/img (b=1)", "ms", "ms_per_image_b1"),
               (f"ms/img (b={latency_batch})", "ms", f"ms_per_image_b{latency_batch}"),
               ("Wall (s)", "seconds", "wall_s")]
    if not with_seeds:  # one run per variant: no seed spread
        columns = [column for column in columns if column[2] not in ("mean_seed_sd", "delta_seed_sd")]
    title = get_metric(ABLATION_METRIC).title
    header = [f"{dataset} {title}" for dataset, _ in table.columns[:-1]] + ["Mean"]
    header += [title for title, _, _ in columns]
    kinds = ["auc"] * len(table.columns) + [kind for _, kind, _ in columns]
    reference = table.values[0][-1] if table.values else None
    rows = []
    for name, cells in zip(table.row_names, table.values):
        mean = cells[-1]
        delta = None if mean is None or reference is None else mean - reference
        description = {**described[name], "delta": delta}
        rows.append((name, list(cells) + [description.get(key) for _, _, key in columns]))
    return header, rows, kinds


def format_cell(kind: str, value: Optional[float]) -> str:
    if value is None:
        return "–"
    if kind == "auc":
        return f"{100 * value:.2f}"
    if kind == "delta":
        return f"{100 * value:+.2f}"
    if kind == "se":
        return f"{100 * value:.2f}"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "ms":
        return f"{value:.2f}"
    return f"{value:.0f}"


def to_markdown(header, rows, kinds, footnote: str = "") -> str:
    lines = ["| Variant | " + " | ".join(header) + " |", "|:---|" + "---:|" * len(header)]
    for name, values in rows:
        lines.append("| " + " | ".join([name] + [format_cell(k, v) for k, v in zip(kinds, values)]) + " |")
    return "\n".join(lines) + "\n" + (f"\n{footnote}\n" if footnote else "")


def to_csv(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Variant"] + header)
    for name, values in rows:
        writer.writerow([name] + ["" if v is None else repr(v) for v in values])
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                          ("#", r"\#"), ("$", r"\$"), ("Δ", r"$\Delta$"), ("–", "--")):
        text = text.replace(char, escaped)
    return text


def to_latex(header, rows, kinds, footnote: str = "") -> str:
    best = {}
    for c, kind in enumerate(kinds):  # bold the best AUC per column
        column = [values[c] for _, values in rows if values[c] is not None]
        if kind == "auc" and len(column) > 1:
            best[c] = max(round(100 * v, 2) for v in column)
    lines = [r"% Requires \usepackage{booktabs} and \usepackage{threeparttable}.", r"\begin{table}[t]",
             r"\centering", r"\begin{threeparttable}", r"\begin{tabular}{l " + "r" * len(header) + "}",
             r"\toprule", " & ".join(["Variant"] + [_latex_escape(h) for h in header]) + r" \\", r"\midrule"]
    for name, values in rows:
        cells = []
        for c, (kind, value) in enumerate(zip(kinds, values)):
            text = _latex_escape(format_cell(kind, value))
            bold = c in best and value is not None and round(100 * value, 2) == best[c]
            cells.append(rf"\textbf{{{text}}}" if bold else text)
        lines.append(" & ".join([_latex_escape(name)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if footnote:
        lines += [r"\begin{tablenotes}\footnotesize", rf"\item {_latex_escape(footnote)}", r"\end{tablenotes}"]
    lines += [r"\end{threeparttable}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_ablation_tables(described, out_prefix: Path, latency_batch: int, footnote: str = "",
                          with_seeds: bool = False) -> str:
    from training.utils.atomic import atomic_write_text

    header, rows, kinds = ablation_rows(described, latency_batch, with_seeds)
    markdown = to_markdown(header, rows, kinds, footnote)
    atomic_write_text(f"{out_prefix}.md", markdown)
    atomic_write_text(f"{out_prefix}.csv", to_csv(header, rows))
    atomic_write_text(f"{out_prefix}.tex", to_latex(header, rows, kinds, footnote))
    return markdown


# ------------------------------------------------------------------------------ CLI

def _console_logger() -> None:
    # train.py reconfigures the root logger per run (its train.log); keep ours on the console.
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s ablation: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def describe_seeds(described: Dict[str, Any], seeds: Sequence[int], run_dirs: Sequence[Path],
                   walls: Sequence[float]) -> List[Optional[float]]:
    """Replace a variant's metrics by their mean over its seed runs; keep each run's own.
    Returns each seed's mean video AUC (in ``seeds`` order)."""
    per_seed = [json.loads(RunDir(d).metrics.read_text(encoding="utf-8")) for d in run_dirs]
    means = [mean_video_auc(m) for m in per_seed]
    described["metrics"] = average_metrics(per_seed)
    described["seeds"] = {str(seed): {"run_dir": str(d), "metrics": m, "wall_s": w}
                          for seed, d, m, w in zip(seeds, run_dirs, per_seed, walls)}
    described["mean_seed_sd"] = seed_sd(means)
    return means


def main(argv: Optional[List[str]] = None, train_main: Optional[Callable[[List[str]], int]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from training.engine import distributed as dist_utils
    from training.engine.testing import table_footnote
    from training.utils.atomic import atomic_write_json

    if train_main is None:
        from training.train import main as train_main
    _console_logger()
    variants = select_variants(load_variants(args.variants), args.only)
    seeds = check_seeds(args.seeds)
    with_seeds = seeds != [None]
    out = Path(args.out)
    runs = Path(args.runs_dir) if args.runs_dir else out / "runs"
    device = dist_utils.select_device(args.device)
    start = time.time()
    described: Dict[str, Dict[str, Any]] = {}
    per_seed_means: Dict[str, List[Optional[float]]] = {}  # variant -> mean video AUC of each seed's run
    for name, overrides in variants.items():
        opts = list(args.opts) + override_strings(overrides)
        run_dirs = [run_dir_for(runs, name, seed) for seed in seeds]
        walls = [train_or_reuse(args.detector_path, run_dir, opts + ([] if seed is None else [f"train.seed={seed}"]),
                                args.device, args.force, train_main)
                 for seed, run_dir in zip(seeds, run_dirs)]
        # Parameters and latency do not depend on the seed: measured on the first seed's run.
        described[name] = describe_variant(run_dirs[0], args.latency_batch, args.latency_repeats, device)
        described[name]["wall_s"] = sum(walls)
        described[name]["overrides"] = opts
        if with_seeds:
            per_seed_means[name] = describe_seeds(described[name], seeds, run_dirs, walls)
        reference = next(iter(described))
        if name != reference:
            reference_dirs = [run_dir_for(runs, reference, seed) for seed in seeds]
            described[name]["delta_se"] = paired_bootstrap_se(reference_dirs, run_dirs,
                                                              list(described[name]["metrics"]))
            if with_seeds:
                described[name]["delta_seed_sd"] = seed_sd(
                    seed_differences(per_seed_means[name], per_seed_means[reference]))
    first = next(iter(described.values()))["config"]
    footnote = table_footnote(first)
    if with_seeds:
        footnote += (f" Every variant trained once per seed ({', '.join(map(str, seeds))}); each AUC is the mean "
                     f"over those runs. seed SD: sample standard deviation of the row's Mean over the seeds; "
                     f"Δ seed SD: of its Δ Mean, each seed paired with the first row's run of the same seed "
                     f"(training noise).")
    footnote += (f" Δ Mean: against the first row; ± SE: its standard error from a "
                 f"paired bootstrap over the test videos (1000 resamples; test-set noise only, not seed noise). "
                 f"Latency: median inference forward "
                 f"time per image on {device.type} (random input at the model resolution, batch 1 and "
                 f"{args.latency_batch}); Wall: training + testing time of the variant"
                 f"{' (all seeds)' if with_seeds else ''}.")
    markdown = write_ablation_tables(described, out / "ablation", args.latency_batch, footnote, with_seeds)
    summary = {"command": "python -m scripts.ablation " + shlex.join(argv), "total_wall_s": time.time() - start,
               "variants": {name: {k: v for k, v in d.items() if k != "config"} for name, d in described.items()}}
    atomic_write_json(out / "ablation.json", summary)
    print(markdown)
    print(out / "ablation.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
