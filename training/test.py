r"""Test checkpoints on datasets' official test splits and write one cross-dataset table.

    python training/test.py --detector_path configs/detector/demo_clip_tiny.yaml \
        --weights_path runs/<run>/checkpoints/best.pt --test_dataset DemoFF DemoCDF --out results/demo
    python training/test.py --weights_path runs/<runA> runs/<runB> --test_dataset DemoCDF --out results/cmp
    python training/test.py --weights_path runs/<run> --preset gend --out results/gend   # a protocol's table
    python training/test.py --weights_path runs/<run> --out results/robust --perturb            # all degradations
    python training/test.py --weights_path runs/<run> --out results/robust --perturb jpeg=90,50 blur

A run directory as --weights_path means its checkpoints/best.pt and its config.yaml.
Writes <out>/<row>/<dataset>/{predictions.csv,metrics.json}, <out>/metrics.json and
<out>/table.{md,csv,tex}; prints the markdown table. Test sets are always their *test* split.

--perturb degrades every test frame (training/data/perturbations.py; docs/ROBUSTNESS.md) and
also writes <out>/perturbed/<row>/<perturbation>/<dataset>/..., <out>/robustness.json,
<out>/robustness.{md,csv,tex} (rows: detector x perturbation/severity) and <out>/robustness.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):
    # See train.py: keep training/ itself off sys.path.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from training.cli import cli_parser, run_cli  # noqa: E402
from training.config import as_list, load_config  # noqa: E402
from training.engine.run_dir import METRICS_FILE, TABLE_PREFIX  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--detector_path", help="detector YAML (default: config.yaml of each run directory)")
    parser.add_argument("--weights_path", nargs="+", required=True, help="checkpoint files or run directories")
    parser.add_argument("--test_dataset", nargs="+", metavar="NAME", help="datasets to test on (default: data.test_dataset)")
    parser.add_argument("--preset", help="a protocol's test sets: deepfakebench | gend | demo "
                                         "(configs/_base_/protocol_<name>.yaml) or a YAML path")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--names", nargs="+", help="table row names, one per --weights_path")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--extra_metrics", action="store_true", help="add EER/AP/TPR@1%%FPR columns")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--perturb", nargs="*", metavar="KIND[=S1,S2]",
                        help="also test on degraded frames: no value = every kind at its default severities "
                             "(jpeg noise blur resize chain); or e.g. jpeg=90,50 blur")
    parser.add_argument("--perturb_seed", type=int, default=0, help="seed of the random degradations (noise)")
    return parser


def combined_footnote(footnotes: Dict[str, str]) -> str:
    """One footnote when all rows share it, otherwise one per row (e.g. different frame counts)."""
    distinct = list(dict.fromkeys(footnotes.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    return " ".join(f"{name}: {text}" for name, text in footnotes.items())


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from analysis.tables import write_tables
    from training.engine import distributed as dist_utils
    from training.engine.checkpoint import build_detector_with_weights, resolve_weights
    from training.engine.testing import metric_columns, table_footnote, test_detector
    from training.presets import preset_overrides
    from training.utils.atomic import atomic_write_json

    if args.preset and args.test_dataset:
        raise SystemExit("Give --preset or --test_dataset, not both (a preset is a list of test datasets).")
    if args.names and len(args.names) != len(args.weights_path):
        raise SystemExit(f"--names has {len(args.names)} entries but --weights_path has {len(args.weights_path)}.")
    perturbations = []
    if args.perturb is not None:
        from training.data.perturbations import parse_perturbations

        try:
            perturbations = parse_perturbations(args.perturb, seed=args.perturb_seed)
        except ValueError as error:
            raise SystemExit(str(error)) from None
    rows = [resolve_weights(entry, args.detector_path) for entry in args.weights_path]
    if args.names:
        rows = [(checkpoint, config_path, name) for (checkpoint, config_path, _), name in zip(rows, args.names)]
    row_names = [name for _, _, name in rows]
    repeated = sorted({name for name in row_names if row_names.count(name) > 1})
    if repeated:
        raise SystemExit(f"Several --weights_path entries are named {', '.join(repeated)} (rows are named after "
                         f"their run directory); give --names to tell them apart.")
    device = dist_utils.select_device(args.device)
    dist_utils.init_from_environment(device)
    out = Path(args.out)
    results: Dict[str, Dict] = {}
    robustness: Dict[str, Dict[str, Dict]] = {}
    footnotes: Dict[str, str] = {}
    for checkpoint, config_path, name in rows:
        overrides = preset_overrides(args.preset) if args.preset else []
        overrides += list(args.opts)
        if args.test_dataset:
            overrides.append(f"data.test_dataset=[{','.join(args.test_dataset)}]")
        config = load_config(config_path, overrides)
        names = [str(n) for n in as_list(config["data"]["test_dataset"])]
        if not names:
            raise SystemExit("No test dataset: pass --test_dataset or set data.test_dataset.")
        detector, config = build_detector_with_weights(config, checkpoint, device)
        results[name] = test_detector(config, detector, names, out / name, device)
        footnotes[name] = table_footnote(config, detector.input_spec.frames_per_sample, results[name])
        if perturbations:
            robustness[name] = {"clean": results[name]}
            for perturbation in perturbations:
                robustness[name][perturbation.name] = test_detector(
                    config, detector, names, out / "perturbed" / name / perturbation.slug, device,
                    perturbation=perturbation)
    footnote = combined_footnote(footnotes)
    if args.extra_metrics:
        footnote += " TPR@1%FPR is frame-level."
    if dist_utils.is_main_process():
        atomic_write_json(out / METRICS_FILE, results)
        if perturbations:
            write_robustness_outputs(out, robustness, footnote, args)
        print(write_tables(results, out / TABLE_PREFIX, footnote=footnote, extra=metric_columns(args.extra_metrics)))
        print(out / METRICS_FILE)
    dist_utils.shutdown()
    return 0


def write_robustness_outputs(out: Path, robustness: Dict[str, Dict[str, Dict]], footnote: str, args) -> None:
    from analysis.robustness import RESULTS_FILE, write_robustness
    from training.engine.testing import metric_columns
    from training.utils.atomic import atomic_write_json

    note = (f"{footnote} Degradations applied to every test frame (the stored face crop, before the detector's "
            f"resize and normalisation); random ones seeded from (seed {args.perturb_seed}, perturbation, "
            f"frame path); see docs/ROBUSTNESS.md.")
    datasets = list(dict.fromkeys(d for per in robustness.values() for r in per.values() for d in r))
    payload = {"seed": args.perturb_seed, "datasets": datasets, "footnote": note, "results": robustness}
    atomic_write_json(out / RESULTS_FILE, payload)
    print(write_robustness(payload, out / "robustness", extra=metric_columns(args.extra_metrics)))
    print(out / "robustness.png")


if __name__ == "__main__":
    sys.exit(run_cli(main))
