"""Test checkpoints on datasets' official test splits and write one cross-dataset table.

    python training/test.py --detector_path configs/detector/demo_clip_tiny.yaml \
        --weights_path runs/<run>/checkpoints/best.pt --test_dataset DemoFF DemoCDF --out results/demo
    python training/test.py --weights_path runs/<runA> runs/<runB> --test_dataset DemoCDF --out results/cmp

A run directory as --weights_path means its checkpoints/best.pt and its config.yaml.
Writes <out>/<row>/<dataset>/{predictions.csv,metrics.json}, <out>/metrics.json and
<out>/table.{md,csv,tex}; prints the markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

if __package__ in (None, ""):
    # See train.py: keep training/ itself off sys.path.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from training.config import as_list, load_config  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector_path", help="detector YAML (default: config.yaml of each run directory)")
    parser.add_argument("--weights_path", nargs="+", required=True, help="checkpoint files or run directories")
    parser.add_argument("--test_dataset", nargs="+", help="datasets to test on (default: data.test_dataset)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--names", nargs="+", help="table row names, one per --weights_path")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--extra_metrics", action="store_true", help="add EER/AP/TPR@1%%FPR columns")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    return parser


def resolve_weights(entry: str, detector_path: Optional[str]) -> Tuple[Path, Path, str]:
    """(checkpoint file, config file, row name) for one --weights_path entry."""
    path = Path(entry)
    if path.is_dir():
        checkpoint, config = path / "checkpoints" / "best.pt", path / "config.yaml"
        name = path.name
    else:
        checkpoint, name = path, path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
        config = path.parent.parent / "config.yaml"
    if detector_path:
        config = Path(detector_path)
    if not config.is_file():
        raise SystemExit(f"No config for {entry}: pass --detector_path (looked for {config}).")
    return checkpoint, config, name


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from analysis.tables import write_tables
    from training.engine import distributed as dist_utils
    from training.engine.checkpoint import load_detector_weights
    from training.engine.testing import metric_columns, table_footnote, test_detector
    from training.models import build_detector
    from training.utils.atomic import atomic_write_json

    if args.names and len(args.names) != len(args.weights_path):
        raise SystemExit(f"--names has {len(args.names)} entries but --weights_path has {len(args.weights_path)}.")
    device = dist_utils.select_device(args.device)
    dist_utils.init_from_environment(device)
    out = Path(args.out)
    results: Dict[str, Dict] = {}
    footnote = ""
    for i, entry in enumerate(args.weights_path):
        checkpoint, config_path, name = resolve_weights(entry, args.detector_path)
        name = args.names[i] if args.names else name
        overrides = list(args.opts)
        if args.test_dataset:
            overrides.append(f"data.test_dataset=[{','.join(args.test_dataset)}]")
        config = load_config(config_path, overrides)
        names = [str(n) for n in as_list(config["data"]["test_dataset"])]
        if not names:
            raise SystemExit("No test dataset: pass --test_dataset or set data.test_dataset.")
        detector = build_detector(config).to(device)
        load_detector_weights(detector, checkpoint)
        results[name] = test_detector(config, detector, names, out / name, device)
        footnote = table_footnote(config, detector.input_spec.frames_per_sample)
    if dist_utils.is_main_process():
        atomic_write_json(out / "metrics.json", results)
        print(write_tables(results, out / "table", footnote=footnote, extra=metric_columns(args.extra_metrics)))
        print(out / "metrics.json")
    dist_utils.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
