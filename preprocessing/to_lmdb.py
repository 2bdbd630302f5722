"""Copy a dataset's frames, masks and landmarks into one LMDB, or validate a dataset.

    python -m preprocessing.to_lmdb --data_root datasets --dataset DemoFF [--map_size_gb N]
    python -m preprocessing.to_lmdb validate --data_root datasets --dataset DemoFF [--storage rgb|lmdb]

Conversion copies every file that ``<Dataset>.json`` references (all splits, all
compression levels; the JSON is found as training/data/catalog.py finds it, or in
``--json_dir``) into ``<data_root>/lmdb/<Dataset>.lmdb``, keyed
and encoded as training/data/storage.py reads them (see its docstring). Every
file is decoded once on the way in, so a corrupt source file stops the
conversion with its name instead of surfacing mid-training. The database is
written into a temporary folder next to the target and renamed into place only
when complete; commits are batched so memory stays bounded.

Validation reads every frame (and mask and landmark file) of every split
through the chosen storage (``--lmdb_dir``: a folder of LMDBs, DeepfakeBench's
``<Dataset>_lmdb`` ones included, read unchanged) and prints missing/unreadable files, empty videos
and per-split label counts; the exit code is 1 when it finds a problem.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from training.cli import EXIT_OK, EXIT_PARTIAL, cli_parser, invocation, run_cli
from training.data.catalog import (LABEL_MAP_FILE, CatalogError, SkipReport, available_compressions,
                                   available_splits, build_records_with_report, load_dataset_json,
                                   load_label_dict, referenced_paths)
from training.data.records import VideoRecord
from training.data.storage import (LMDB_META_KEY, RgbStorage, UnreadableFileError, build_storage,
                                   decode_image, decode_landmarks, decode_mask, lmdb_key, lmdb_path)
from training.errors import UserError
from training.utils.atomic import new_directory_mode

log = logging.getLogger(__name__)


class LmdbSizeError(UserError, RuntimeError):
    """The LMDB map size is too small for the dataset (the fix: a larger --map_size_gb)."""

REPO_ROOT = Path(__file__).resolve().parents[1]
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- conversion


def encode_for_lmdb(kind: str, data: bytes, where: str) -> bytes:
    """Validate one source file (``kind``: frames | masks | landmarks); return the value to store."""
    if kind == "landmarks":
        buffer = io.BytesIO()
        np.save(buffer, decode_landmarks(data, where), allow_pickle=False)  # header keeps dtype and shape
        return buffer.getvalue()
    (decode_mask if kind == "masks" else decode_image)(data, where)
    return data  # images and masks: the original bytes; re-encoding could change pixels


def _default_map_size(data_root: Path, paths: Sequence[Tuple[str, str]]) -> int:
    # LMDB files are sparse on Linux: a generous map costs address space, not disk.
    storage = RgbStorage(data_root)
    total = 0
    for _, path in paths:
        try:
            total += storage.resolve(path).stat().st_size
        except OSError:
            pass  # reported properly when the file is read
    return int(total * 2 + (1 << 30))


def _unique_by_key(paths: Sequence[Tuple[str, str]], data_root: Path) -> List[Tuple[str, str, str]]:
    """``(kind, path, key)``, one per key: two JSON spellings of one file ("./a", "a") are stored once."""
    unique: Dict[str, Tuple[str, str, str]] = {}
    for kind, path in paths:
        key = lmdb_key(path, data_root)
        unique.setdefault(key, (kind, path, key))
    return list(unique.values())


def _write_entries(env, jobs: Sequence[Tuple[str, str, str]], storage: RgbStorage, dataset: str,
                   commit_every: int, workers: int) -> List[str]:
    """Read, check and store every file, one transaction per ``commit_every`` files.

    Returns the problems found; after the first one nothing more is written
    (the partial database is thrown away) but every file is still checked, so
    the user gets the complete list in one run.
    """
    def load(job: Tuple[str, str, str]) -> Tuple[str, Optional[bytes], Optional[str]]:
        kind, path, key = job
        try:
            data, where = storage.read_bytes(path)
            return key, encode_for_lmdb(kind, data, where), None
        except UnreadableFileError as error:
            return key, None, str(error)

    problems: List[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(jobs), commit_every):
            with env.begin(write=True) as txn:
                for key, value, problem in pool.map(load, jobs[start:start + commit_every]):
                    if problem is not None:
                        problems.append(problem)
                    elif not problems:
                        txn.put(key.encode("utf-8"), value)
            log.info("%s: %d/%d files", dataset, min(start + commit_every, len(jobs)), len(jobs))
    return problems


def convert(data_root: Path, dataset: str, map_size_gb: Optional[float] = None,
            commit_every: int = 500, workers: int = 2, json_dir: Optional[Path] = None) -> Path:
    """Write ``<data_root>/lmdb/<dataset>.lmdb``; raise with every bad file listed on failure."""
    import lmdb

    paths = referenced_paths(load_dataset_json(data_root, dataset, json_dir))
    if not paths:
        raise CatalogError(f"json/{dataset}.json references no files; nothing to convert")
    jobs = _unique_by_key(paths, data_root)
    target = lmdb_path(data_root, dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    map_size = int(map_size_gb * (1 << 30)) if map_size_gb else _default_map_size(data_root, paths)
    # A crash leaves only this hidden ".partial-" folder behind, never a half-written <dataset>.lmdb.
    temporary = Path(tempfile.mkdtemp(prefix=f".{dataset}.lmdb.partial-", dir=target.parent))
    _chmod_like_a_new_directory(temporary)
    started = time.time()
    try:
        env = lmdb.open(str(temporary), map_size=map_size, subdir=True, meminit=False, map_async=True)
        try:
            problems = _write_entries(env, jobs, RgbStorage(data_root), dataset, commit_every, workers)
            if problems:
                raise CatalogError(
                    f"{len(problems)} file(s) referenced by json/{dataset}.json cannot be read; no LMDB was "
                    f"written. Fix or re-preprocess them (see `python -m preprocessing.to_lmdb validate "
                    f"--data_root {data_root} --dataset {dataset}`):\n  " + "\n  ".join(problems[:20])
                    + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""))
            meta = {"format": FORMAT_VERSION, "dataset": dataset, "files": len(jobs),
                    "key_rule": "JSON path relative to the data root, '/' separators"}
            with env.begin(write=True) as txn:
                txn.put(LMDB_META_KEY, json.dumps(meta).encode("utf-8"))
            env.sync(True)
        finally:
            env.close()
        _replace_directory(temporary, target)
    except lmdb.MapFullError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise LmdbSizeError(f"LMDB map size {map_size / (1 << 30):.1f} GiB is too small for {dataset}; "
                            f"pass a larger --map_size_gb") from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    log.info("wrote %s (%d files) in %.1fs", target, len(jobs), time.time() - started)
    return target


def _chmod_like_a_new_directory(path: Path) -> None:
    # mkdtemp creates 0700; the finished LMDB should be as readable as any folder mkdir makes.
    os.chmod(path, new_directory_mode())


def _replace_directory(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target``; an existing target is moved aside first, then deleted.

    Directories cannot be swapped in one rename, so a reader starting in the
    instant between the two renames sees no LMDB (and gets a clear error), never a partial one.
    """
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, backup)
    os.replace(source, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


# --------------------------------------------------------------------------- validation


def validate(data_root: Path, dataset: str, storage_kind: str, label_dict: Dict[str, int],
             out=None, workers: int = 2, json_dir: Optional[Path] = None,
             lmdb_dir: Optional[Path] = None) -> int:
    """Print a report (to ``out``, default stdout); return the number of problems found (0 = clean)."""
    out = out if out is not None else sys.stdout
    tree = load_dataset_json(data_root, dataset, json_dir)
    storage = build_storage(storage_kind, data_root, lmdb_dir)
    problems = 0
    for split in available_splits(tree):
        for compression in available_compressions(tree, split) or [None]:
            title = split if compression is None else f"{split}/{compression}"
            try:
                records, report = build_records_with_report(
                    dataset, split, data_root=data_root, label_dict=label_dict,
                    compression=compression or "c23", strict=False, json_dir=json_dir)
            except CatalogError as error:  # e.g. one label lacks this compression level
                print(f"[{title}] ERROR {error}", file=out)
                problems += 1
                continue
            problems += _print_split(out, title, records, report, storage, workers)
    print(f"{dataset}: {'OK' if problems == 0 else f'{problems} problem(s)'} ({storage_kind} storage)", file=out)
    return problems


def _print_split(out, title: str, records: Sequence[VideoRecord], report: SkipReport, storage,
                 workers: int) -> int:
    counts = Counter(record.label_name for record in records)
    frames = sum(len(record.frames) for record in records)
    print(f"[{title}] {len(records)} videos, {frames} frames; per label: "
          + ", ".join(f"{name}={count}" for name, count in sorted(counts.items())), file=out)
    for item in report.skipped:  # empty videos, misaligned lists, duplicates ...
        print(f"  BAD VIDEO {item.what}: {item.reason}", file=out)

    jobs = [(kind, path, record.dataset) for record in records
            for kind in ("frames", "masks", "landmarks") for path in (getattr(record, kind) or ())]

    def check(job: Tuple[str, str, str]) -> Optional[str]:
        kind, path, dataset = job
        try:
            storage.read(kind, path, dataset)
        except UnreadableFileError as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        failures = [problem for problem in pool.map(check, jobs) if problem is not None]
    for problem in failures:
        print(f"  UNREADABLE {problem}", file=out)
    return len(report) + len(failures)


# --------------------------------------------------------------------------- CLI


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data_root", default="datasets", help="data root (default: datasets)")
    parser.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                        help="dataset name(s): <dataset>.json, each handled in turn")
    parser.add_argument("--json_dir", default=None,
                        help="folder of <dataset>.json (default: <data_root>/json, then "
                             "<data_root>/preprocessing/dataset_json, DeepfakeBench's)")
    parser.add_argument("--workers", type=int, default=2, help="reader threads (default: 2)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["validate"]:
        parser = cli_parser(__file__, "Check that every file of a dataset can be read (exit status 1 when a "
                                      "problem is found).", prog=invocation(__file__) + " validate")
        _common_arguments(parser)
        parser.add_argument("--storage", choices=("rgb", "lmdb"), default="rgb",
                            help="read the frame files (rgb) or the LMDB written by this tool (lmdb)")
        parser.add_argument("--lmdb_dir", default=None,
                            help="folder of the LMDBs (default: <data_root>/lmdb, then <data_root>/datasets/lmdb)")
        parser.add_argument("--label_config", default=str(REPO_ROOT / LABEL_MAP_FILE),
                            help=f"YAML with data.label_dict (default: {LABEL_MAP_FILE})")
        args = parser.parse_args(argv[1:])
        label_dict = load_label_dict(args.label_config)
        problems = sum(validate(Path(args.data_root), dataset, args.storage, label_dict, workers=args.workers,
                                json_dir=args.json_dir, lmdb_dir=args.lmdb_dir) for dataset in args.dataset)
        return EXIT_PARTIAL if problems else EXIT_OK

    parser = cli_parser(__file__, "Copy a dataset's frames, masks and landmarks into an LMDB "
                                  "(subcommand `validate` checks a dataset instead).")
    _common_arguments(parser)
    parser.add_argument("--map_size_gb", type=float, default=None,
                        help="LMDB map size in GiB (default: twice the source size plus 1 GiB)")
    parser.add_argument("--commit_every", type=int, default=500,
                        help="files per write transaction (bounds memory; default: 500)")
    args = parser.parse_args(argv[1:] if argv[:1] == ["convert"] else argv)
    for dataset in args.dataset:  # a bad source raises CatalogError (a user error: exit 2, nothing replaced)
        convert(Path(args.data_root), dataset, args.map_size_gb, args.commit_every, args.workers,
                json_dir=args.json_dir)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
