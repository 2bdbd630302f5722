r"""Official dataset layout + split files -> ``<data_root>/json/<Name>.json``.

Usage::

    python -m preprocessing.rearrange --dataset FaceForensics++ --source_dir datasets/FaceForensics++ \
        --data_root datasets [--compression c23] [--perturbation end_to_end] [--option split_seed=0] \
        [--allow_overlap identity]
    python -m preprocessing.rearrange check --data_root datasets --dataset FaceForensics++ FaceShifter

Run it after ``preprocessing.preprocess``: it indexes the frames, landmarks and
masks that preprocessing wrote, by the dataset's official splits (one adapter
per dataset in ``preprocessing/adapters``). The JSON schema is DeepfakeBench's
(datasets/README.md). Paths are relative to ``--data_root`` when the dataset
lives inside it, absolute otherwise.

Before anything is written, the JSONs are checked for identity and source-video
overlap between their splits (preprocessing/leakage.py); an overlap is an error
unless ``--allow_overlap`` names its kind. ``check`` runs the same check, and the
cross-dataset one, on JSONs already in ``<data_root>/json``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from training.cli import cli_parser, invocation, run_cli
from training.registry import DATASET_ADAPTERS, import_builtin_components
from training.utils.atomic import atomic_write_json


def rearrange(dataset: str, dataset_root: Path, data_root: Path, compression: Optional[str] = None,
              options: Optional[Dict[str, str]] = None, allow_overlap: Sequence[str] = ()):
    """Build the dataset JSON(s) with the registered adapter, check them for split leakage
    and write them; return the result (its notes include the allowed overlaps)."""
    from preprocessing.adapters.common import AdapterContext, AdapterError
    from preprocessing.leakage import check_trees, raise_on

    import_builtin_components("dataset adapter")
    adapter = DATASET_ADAPTERS.get(dataset)
    dataset_root, data_root = Path(dataset_root), Path(data_root)
    if not dataset_root.is_dir():
        raise AdapterError(f"--source_dir {dataset_root} is not a folder; point it at the {dataset} "
                           f"folder that holds the official layout.")
    context = AdapterContext(dataset_root, data_root, compression, dict(options or {}))
    result = adapter(context)
    trees = {name: index[name] for name, index in result.indexes.items()}
    # The JSONs of one adapter run are views of one dataset: each is checked on its own
    # (``check`` compares different datasets).
    errors, allowed = check_trees(trees, allow_overlap, across_datasets=False)
    raise_on(errors)
    result.notes.extend(f"allowed overlap: {overlap.line()}" for overlap in allowed)
    for name, index in result.indexes.items():
        atomic_write_json(data_root / "json" / f"{name}.json", index)
    return result


def count_videos(index: dict) -> Dict[str, Dict[str, int]]:
    """{label: {split: videos}} (summed over compression levels)."""
    (tree,) = index.values()
    counts: Dict[str, Dict[str, int]] = {}
    for label, splits in tree.items():
        for split, node in splits.items():
            nested = node and all(isinstance(value, dict) and "frames" not in value for value in node.values())
            counts.setdefault(label, {})[split] = (sum(len(videos) for videos in node.values())
                                                   if nested else len(node))
    return counts


def parse_options(pairs: Sequence[str]) -> Dict[str, str]:
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise SystemExit(f"--option {pair!r} must look like KEY=VALUE (e.g. split_seed=0).")
        options[key] = value
    return options


def main(argv: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        from preprocessing.leakage import main as check_main

        return check_main(argv[1:], prog=invocation(__file__) + " check")
    import_builtin_components("dataset adapter")  # to list the adapters in --help
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--dataset", required=True, metavar="NAME", help=f"one of: {', '.join(DATASET_ADAPTERS.names())}")
    parser.add_argument("--source_dir", required=True,
                        help="read: the dataset's own folder in its official layout (videos, split files, and "
                             "the frames/ landmarks/ masks/ preprocessing wrote there)")
    parser.add_argument("--data_root", default="datasets",
                        help="written: this framework's data root (data.root of the configs); the JSON goes to "
                             "<data_root>/json/<Name>.json")
    parser.add_argument("--compression", choices=["c23", "c40", "raw"],
                        help="FF++ family: index only this level (default: every level found)")
    parser.add_argument("--perturbation", help="DeeperForensics-1.0: folder of manipulated_videos (end_to_end)")
    parser.add_argument("--option", nargs="+", default=[], metavar="KEY=VALUE",
                        help="adapter settings named in its docstring (split_seed=0, real_root=...)")
    parser.add_argument("--allow_overlap", nargs="+", default=[], choices=("identity", "source"),
                        help="accept identity / source-video overlap between splits (reported, not an error)")
    args = parser.parse_args(argv)
    options = parse_options(args.option)
    if args.perturbation:
        options["perturbation"] = args.perturbation
    result = rearrange(args.dataset, Path(args.source_dir), Path(args.data_root), args.compression, options,
                       args.allow_overlap)
    for name, index in result.indexes.items():
        print(f"{Path(args.data_root) / 'json' / (name + '.json')}:")
        for label, splits in count_videos(index).items():
            print(f"  {label}: " + ", ".join(f"{split} {count}" for split, count in splits.items()))
    for note in result.notes:
        print(f"note: {note}")
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main))  # main returns the result (Python API), or check's exit status
