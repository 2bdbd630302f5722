"""Identity and source-video leakage between the splits of dataset JSONs.

Two videos *leak* when the same person (``identity``) or the same source recording
appears on both sides of a train/val/test boundary: a real video counts as its own
source, a fake as the real video it was made from (``source``, written by the
adapters). Checked:

* within one dataset JSON: train vs val, train vs test, val vs test;
* across datasets whose identities are comparable (the same *namespace*: FF++ and
  every set built on its YouTube videos, e.g. FaceShifter and DF40's ``*_ff``;
  Celeb-DF v1/v2/++, DFDM and DF40's ``*_cdf``; the demo benchmark): a training
  dataset's train and val splits vs another dataset's test split. DFD's paid actors,
  although distributed inside FF++, are other people than FF++'s YouTube subjects, so
  DFD has a namespace of its own.

Any overlap is an error unless its kind is allowed explicitly (``--allow_overlap
identity`` or ``source``): Celeb-DF's official test list, for instance, shares
celebrities with its training videos, and that is the protocol everybody reports.

    python -m preprocessing.rearrange check --data_root datasets --dataset FaceForensics++ FaceShifter
    python -m preprocessing.leakage --data_root datasets --dataset Celeb-DF-v2 --allow_overlap identity
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from training.cli import cli_parser, invocation, run_cli
from training.errors import UserError

KINDS = ("identity", "source")
WITHIN_PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))
TRAINING_SPLITS = ("train", "val")


class LeakageError(UserError, ValueError):
    """Splits share identities or source videos and the overlap was not allowed."""


@dataclass(frozen=True)
class Overlap:
    kind: str  # identity | source
    left: str  # "<dataset>/<split>"
    right: str
    shared: Tuple[str, ...]  # sorted, namespaced values

    def line(self, shown: int = 5) -> str:
        sample = ", ".join(self.shared[:shown]) + (f" and {len(self.shared) - shown} more"
                                                   if len(self.shared) > shown else "")
        return f"{self.left} and {self.right} share {len(self.shared)} {self.kind}(s): {sample}"


def namespace(dataset: str) -> str:
    """The pool a dataset's identities and source names are drawn from."""
    if dataset in ("FaceForensics++", "FF-DF", "FF-F2F", "FF-FS", "FF-NT", "FaceShifter") or dataset.endswith("_ff"):
        return "FF++"
    if dataset.startswith(("Celeb-DF", "DFDM")) or dataset.endswith("_cdf"):
        return "Celeb-DF"
    if dataset.startswith("Demo"):
        return "Demo"  # one pool on purpose: the generator keeps identities disjoint across demo sets
    return dataset


LABEL_MAP = Path(__file__).resolve().parents[1] / "configs" / "_base_" / "datasets.yaml"


def label_map() -> Dict[str, int]:
    from training.data.catalog import load_label_dict

    return load_label_dict(LABEL_MAP)


def split_keys(tree: Mapping, dataset: str, labels: Mapping[str, int]) -> Dict[str, Dict[str, Set[str]]]:
    """``{split: {kind: {namespaced value}}}`` of one dataset tree ``{label: {split: ...}}``."""
    pool = namespace(dataset)
    found: Dict[str, Dict[str, Set[str]]] = {}
    for group, splits in tree.items():
        if not isinstance(splits, dict):
            continue
        for split, node in splits.items():
            keys = found.setdefault(split, {kind: set() for kind in KINDS})
            for video, record in _videos(node):
                if record.get("identity") is not None:
                    keys["identity"].add(f"{pool}:{record['identity']}")
                # A real video is its own source; a fake without 'source' names no recording.
                source = record.get("source")
                label = str(record.get("label", group))
                if label not in labels:
                    raise LeakageError(f"{dataset}: label {label!r} is not in {LABEL_MAP}; add it (0 real, 1 fake).")
                if source is None and labels[label] == 0:
                    source = video
                if source is not None:
                    keys["source"].add(f"{pool}:{source}")
    return found


def _videos(node) -> Iterator[Tuple[str, dict]]:
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if isinstance(value, dict) and "frames" in value:
            yield key, value
        else:
            yield from _videos(value)


def within(dataset: str, tree: Mapping, labels: Mapping[str, int]) -> List[Overlap]:
    keys = split_keys(tree, dataset, labels)
    overlaps = []
    for left, right in WITHIN_PAIRS:
        if left in keys and right in keys:
            for kind in KINDS:
                shared = keys[left][kind] & keys[right][kind]
                if shared:
                    overlaps.append(Overlap(kind, f"{dataset}/{left}", f"{dataset}/{right}", tuple(sorted(shared))))
    return overlaps


def across(train_name: str, train_tree: Mapping, test_name: str, test_tree: Mapping,
           labels: Mapping[str, int]) -> List[Overlap]:
    """A training dataset's train+val against another dataset's test split (same namespace only)."""
    if train_name == test_name or namespace(train_name) != namespace(test_name):
        return []
    train_keys = split_keys(train_tree, train_name, labels)
    test_keys = split_keys(test_tree, test_name, labels)
    if "test" not in test_keys:
        return []
    overlaps = []
    for split in TRAINING_SPLITS:
        if split not in train_keys:
            continue
        for kind in KINDS:
            shared = train_keys[split][kind] & test_keys["test"][kind]
            if shared:
                overlaps.append(Overlap(kind, f"{train_name}/{split}", f"{test_name}/test", tuple(sorted(shared))))
    return overlaps


def check_trees(trees: Mapping[str, Mapping], allow: Iterable[str] = (),
                labels: Optional[Mapping[str, int]] = None,
                across_datasets: bool = True) -> Tuple[List[Overlap], List[Overlap]]:
    """(errors, allowed) over every tree and (``across_datasets``) every ordered pair of comparable trees."""
    labels = label_map() if labels is None else labels
    allow = set(allow)
    unknown = allow - set(KINDS)
    if unknown:
        raise ValueError(f"--allow_overlap {', '.join(sorted(unknown))}: choose from {', '.join(KINDS)}")
    found: List[Overlap] = []
    for name, tree in trees.items():
        found += within(name, tree, labels)
    for train_name, train_tree in (trees.items() if across_datasets else ()):
        for test_name, test_tree in trees.items():
            found += across(train_name, train_tree, test_name, test_tree, labels)
    errors = [overlap for overlap in found if overlap.kind not in allow]
    return errors, [overlap for overlap in found if overlap.kind in allow]


def raise_on(errors: Sequence[Overlap]) -> None:
    if errors:
        kinds = sorted({overlap.kind for overlap in errors})
        raise LeakageError("Split leakage:\n  " + "\n  ".join(overlap.line() for overlap in errors)
                           + f"\nFix the split files, or accept it explicitly with --allow_overlap "
                             f"{' '.join(kinds)} (e.g. for an official protocol that is not identity-disjoint).")


def load_trees(data_root, names: Sequence[str]) -> Dict[str, Mapping]:
    from training.data.catalog import load_dataset_json

    return {name: load_dataset_json(data_root, name) for name in names}


def check_jsons(data_root, names: Sequence[str], allow: Iterable[str] = ()) -> List[Overlap]:
    """Raise :class:`LeakageError` on a disallowed overlap; return the allowed ones."""
    errors, allowed = check_trees(load_trees(data_root, names), allow)
    raise_on(errors)
    return allowed


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__, prog=prog or invocation(__file__))
    parser.add_argument("--data_root", default="datasets", help="data root holding json/<Name>.json (datasets)")
    parser.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                        help="dataset JSON names to check together")
    parser.add_argument("--allow_overlap", nargs="+", default=[], choices=KINDS,
                        help="overlap kinds reported but not treated as an error")
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    allowed = check_jsons(Path(args.data_root), args.dataset, args.allow_overlap)  # LeakageError: a user error
    for overlap in allowed:
        print(f"allowed: {overlap.line()}")
    print(f"leakage check passed: {', '.join(args.dataset)} ({len(allowed)} allowed overlap(s))")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
