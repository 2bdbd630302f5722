"""Dataset JSON (DeepfakeBench schema) → list of :class:`VideoRecord`.

The JSON is read from ``<data.json_dir>/<Dataset>.json`` when ``data.json_dir`` is
set, else from the first of ``<data_root>/json/<Dataset>.json`` (ours) and
``<data_root>/preprocessing/dataset_json/<Dataset>.json`` (where DeepfakeBench's
rearrange.py writes it, for a data root that is a DeepfakeBench checkout); see
datasets/README.md. The schema is DeepfakeBench's::

    {Dataset: {label_name: {split: {video: record}}}}                 # most datasets
    {Dataset: {label_name: {split: {compression: {video: record}}}}}  # FF++ family

A *record* is a dict with a ``"frames"`` key. Whether a split has the
compression level is detected from its values (records or not), so no list of
"FF++-like" dataset names is needed.

Errors come in two kinds:

* structural / configuration errors (missing or invalid JSON, unknown dataset,
  split or compression, a label name absent from ``data.label_dict``) always
  raise :class:`CatalogError`: nothing can be trained from a wrong config;
* per-video problems (no frames, unparsable frame names, misaligned masks or
  landmarks, duplicate keys, malformed record) raise in ``strict`` mode and are
  skipped *and counted* in a :class:`SkipReport` in lenient mode.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from training.errors import UserError

from .records import VideoRecord

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
LABEL_MAP_FILE = "configs/_base_/datasets.yaml"


class CatalogError(UserError, ValueError):
    """The dataset JSON (or the label map) cannot be turned into records."""


@dataclass(frozen=True)
class SkippedItem:
    what: str  # video key or file path
    reason: str


@dataclass
class SkipReport:
    """What lenient mode dropped, and why. Callers log :meth:`summary`."""

    skipped: List[SkippedItem] = field(default_factory=list)

    def add(self, what: str, reason: str) -> None:
        self.skipped.append(SkippedItem(what, reason))

    def extend(self, other: "SkipReport") -> None:
        self.skipped.extend(other.skipped)

    def __len__(self) -> int:
        return len(self.skipped)

    def __bool__(self) -> bool:  # a report object is "truthy" only when something was skipped
        return bool(self.skipped)

    def summary(self, limit: int = 10) -> str:
        if not self.skipped:
            return "nothing skipped"
        lines = [f"{len(self.skipped)} item(s) skipped:"]
        lines += [f"  {item.what}: {item.reason}" for item in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


CatalogReport = SkipReport


class _VideoProblem(Exception):
    """Internal: a per-video problem (strict → CatalogError, lenient → skipped)."""


# --------------------------------------------------------------------------- JSON loading


# Where DeepfakeBench's rearrange.py and loader keep the JSON, relative to its checkout
# (README "dataset_json_folder"; training/config/train_config.yaml there).
DEEPFAKEBENCH_JSON_DIR = Path("preprocessing") / "dataset_json"


def dataset_json_path(data_root: PathLike, name: str) -> Path:
    """Where this framework writes a dataset's JSON (preprocessing.rearrange, the demo)."""
    return Path(data_root) / "json" / f"{name}.json"


def json_candidates(data_root: PathLike, name: str, json_dir: Optional[PathLike] = None) -> List[Path]:
    """The files :func:`find_dataset_json` tries, in order."""
    if json_dir:
        return [Path(json_dir) / f"{name}.json"]
    return [dataset_json_path(data_root, name), Path(data_root) / DEEPFAKEBENCH_JSON_DIR / f"{name}.json"]


def find_dataset_json(data_root: PathLike, name: str, json_dir: Optional[PathLike] = None) -> Path:
    """The dataset JSON to read; :class:`CatalogError` listing every place tried when none exists."""
    candidates = json_candidates(data_root, name, json_dir)
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(path) for path in candidates)
    available = sorted({p.stem for folder in {c.parent for c in candidates} if folder.is_dir()
                        for p in folder.glob("*.json") if not p.name.startswith(".")})
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    suggestion = (f"Did you mean {close[0]!r}? " if close else "") + (
        f"Datasets there: {', '.join(available)}. " if available else "")
    where = (f"data.json_dir={json_dir}" if json_dir else
             f"data root {data_root}; set data.json_dir to read it from elsewhere")
    raise CatalogError(
        f"Dataset JSON {name}.json not found (dataset {name!r}, {where}). Looked for: {looked}. {suggestion}"
        f"Otherwise create it with `python -m preprocessing.rearrange ...` for a real dataset, or "
        f"`python -m preprocessing.demo.generate --root {data_root}` for the demo benchmark; "
        f"a JSON from DeepfakeBench's rearrange.py is read unchanged from its "
        f"preprocessing/dataset_json folder (data.json_dir).")


def _reject_duplicate_keys(pairs: Sequence[Tuple[str, Any]]) -> Dict[str, Any]:
    # json.load keeps the last of two equal keys without a word; a video listed
    # twice in one split would silently lose one entry.
    result = dict(pairs)  # C speed; the slow search below runs only when there is a duplicate
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise CatalogError(f"duplicate key {key!r} in the same JSON object")
            seen.add(key)
    return result


def load_dataset_json(data_root: PathLike, name: str, json_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Return the tree under the top-level dataset name: ``{label_name: {split: ...}}``."""
    path = find_dataset_json(data_root, name, json_dir)
    text = path.read_text(encoding="utf-8")
    try:
        tree = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise CatalogError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}. "
            f"Fix the file or regenerate it with preprocessing.rearrange.") from error
    except CatalogError as error:
        raise CatalogError(f"{path}: {error}. Each video may appear once per split; "
                           f"fix the file or regenerate it.") from error
    if not isinstance(tree, dict) or name not in tree:
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise CatalogError(
            f"{path} has no top-level key {name!r} (found: {found}). The file must be "
            f"{{\"{name}\": {{label_name: {{split: ...}}}}}}; rename the key or the file.")
    labels = tree[name]
    if not isinstance(labels, dict):
        raise CatalogError(f"{path}: [{name!r}] must map label names to splits, "
                           f"got {type(labels).__name__}")
    return labels


def load_label_dict(config_path: PathLike) -> Dict[str, int]:
    """Read ``data.label_dict`` from a YAML file (the repo's configs/_base_/datasets.yaml)."""
    import yaml  # local import: only CLIs need it

    with open(config_path, "r", encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    try:
        return dict(config["data"]["label_dict"])
    except (KeyError, TypeError) as error:
        raise CatalogError(f"{config_path} has no data.label_dict mapping") from error


# --------------------------------------------------------------------------- tree walking


def is_record(node: Any) -> bool:
    return isinstance(node, dict) and "frames" in node


def _is_compression_nested(split_node: Mapping[str, Any], where: str) -> bool:
    """True when the split's values are compression levels rather than records."""
    kinds = {is_record(value) for value in split_node.values()}
    if kinds == {True, False}:
        raise CatalogError(
            f"{where}: some values are video records (dicts with 'frames') and some are not; "
            f"a split holds either videos or compression levels ({{'c23': {{video: record}}}}), "
            f"not both. Regenerate the JSON.")
    return kinds == {False}


def available_splits(tree: Mapping[str, Any]) -> List[str]:
    return sorted({split for splits in tree.values() if isinstance(splits, dict) for split in splits})


def available_compressions(tree: Mapping[str, Any], split: str) -> List[str]:
    """Compression levels under ``split`` (empty for datasets without that nesting)."""
    levels = set()
    for label_name, splits in tree.items():
        node = splits.get(split) if isinstance(splits, dict) else None
        if isinstance(node, dict) and node and _is_compression_nested(node, f"{label_name}/{split}"):
            levels.update(node)
    return sorted(levels)


def iter_raw_videos(tree: Mapping[str, Any], name: str, split: str, compression: Optional[str],
                    report: Optional[SkipReport] = None) -> Iterator[Tuple[str, str, Any, Optional[str]]]:
    """Yield ``(label_group, video, entry, compression_or_None)`` for one split.

    Raises :class:`CatalogError` when the split (or, for nested datasets, the
    compression level) is absent. A label group lacking the split while others
    have it raises too unless ``report`` is given (lenient mode), which records it.
    """
    splits_found = available_splits(tree)
    if split not in splits_found:
        raise CatalogError(
            f"Dataset {name!r} has no split {split!r} (available: {', '.join(splits_found) or 'none'}). "
            f"Fix the split name in the config, or regenerate {name}.json with that split.")
    for label_group, splits in tree.items():
        where = f"{name}.json [{name!r}][{label_group!r}]"
        if not isinstance(splits, dict):
            raise CatalogError(f"{where} must map split names to videos, got {type(splits).__name__}")
        if split not in splits:
            message = (f"{where} has no split {split!r} (it has: {', '.join(sorted(splits)) or 'none'}) "
                       f"while other labels do")
            if report is None:
                raise CatalogError(message + "; regenerate the JSON, or use lenient mode (strict=False) "
                                   "to skip this label for this split.")
            report.add(f"{name}/{label_group}", message)
            continue
        node = splits[split]
        where = f"{where}[{split!r}]"
        if not isinstance(node, dict):
            raise CatalogError(f"{where} must be an object of videos, got {type(node).__name__}. "
                               f"Regenerate the JSON (DeepfakeBench's DFDC 'val' has this bug).")
        if node and _is_compression_nested(node, where):
            if compression not in node:
                raise CatalogError(
                    f"{where} has no compression level {compression!r} (available: "
                    f"{', '.join(sorted(node))}). Set data.compression to one of them.")
            videos = node[compression]
            if not isinstance(videos, dict):
                raise CatalogError(f"{where}[{compression!r}] must be an object of videos")
            level: Optional[str] = compression
        else:
            videos, level = node, None
        for video, entry in videos.items():
            yield label_group, video, entry, level


def referenced_paths(tree: Any) -> List[Tuple[str, str]]:
    """``(field, path)`` for every frame, mask and landmark file of every record in the tree.

    ``field`` is ``frames``, ``masks`` or ``landmarks``. Nesting-agnostic (any
    dict with ``frames`` is a record), unique by path in first-seen order; used
    by the LMDB converter, which copies all splits and compression levels.
    """
    found: Dict[str, str] = {}

    def walk(node: Any) -> None:
        if is_record(node):
            for field_name in ("frames", "masks", "landmarks"):
                for value in node.get(field_name) or []:
                    if isinstance(value, str):
                        found.setdefault(value, field_name)
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)

    walk(tree)
    return [(field_name, path) for path, field_name in found.items()]


# --------------------------------------------------------------------------- records


def frame_index_of(path: str) -> int:
    """The original frame index encoded in a frame file name (``.../012.png`` → 12)."""
    # Plain string slicing: this runs for every frame, mask and landmark path of a dataset
    # (12 M times for DFDC), where posixpath.basename/splitext cost ~10x more.
    name = path[max(path.rfind("/"), path.rfind("\\")) + 1:]
    dot = name.rfind(".")
    if dot <= 0 or name[0] == ".":  # no extension, or a dot-file: posixpath's rules apply
        return int(posixpath.splitext(name)[0])
    return int(name[:dot])


def frame_indices_of(paths: Sequence[str]) -> List[int]:
    """``[frame_index_of(p) for p in paths]`` (same results, same ValueError), ~2x faster:
    building the index of a DFDC-sized JSON parses 12 M paths."""
    if "\\" not in "".join(paths):
        try:
            # rpartition: basename, then the stem before the last dot ("" when there is none,
            # which int() rejects, so odd names take the exact path below).
            return [int(path.rpartition("/")[2].rpartition(".")[0]) for path in paths]
        except ValueError:
            pass
    return [frame_index_of(path) for path in paths]


def _path_list(entry: Mapping[str, Any], field_name: str) -> Optional[List[str]]:
    values = entry.get(field_name)
    if values is None or (isinstance(values, list) and not values):
        return None  # DeepfakeBench writes [] for "no masks"
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise _VideoProblem(f"'{field_name}' must be a list of path strings")
    return values


def _record_from_entry(name: str, split: str, label_group: str, video: str, entry: Any,
                       compression: Optional[str], label_dict: Mapping[str, int]) -> VideoRecord:
    if not is_record(entry):
        raise _VideoProblem("entry is not a record (a dict with a 'frames' list)")
    # The entry's own "label" wins, as in DeepfakeBench; the group key is the fallback.
    label_name = entry.get("label", label_group)
    if not isinstance(label_name, str):
        raise _VideoProblem(f"'label' must be a label name string, got {label_name!r}")
    if label_name not in label_dict:
        # A configuration error, not a bad video: never skipped.
        raise CatalogError(
            f"Label name {label_name!r} (dataset {name!r}, video {video!r}) is not in the label map. "
            f"Pass `--opts data.label_dict.{label_name}=0` (real) or `=1` (fake): that works for train.py, "
            f"test.py and infer.py, also with a run directory, which uses its own saved config.yaml. To "
            f"make it permanent for new runs, add `{label_name}: 0|1` under data.label_dict in "
            f"{LABEL_MAP_FILE}.")
    frames = _path_list(entry, "frames")
    if not frames:
        raise _VideoProblem("video has no frames (empty 'frames' list); re-run preprocessing for it "
                            "or remove it from the JSON")
    try:
        indices = frame_indices_of(frames)
    except ValueError:
        bad = next(path for path in frames if not _has_integer_stem(path))
        raise _VideoProblem(f"frame file name {bad!r} is not an integer frame index (NNN.png)") from None
    if len(set(indices)) != len(indices):
        raise _VideoProblem("two frames share one frame index")
    order = sorted(range(len(frames)), key=indices.__getitem__)
    in_order = order == list(range(len(frames)))  # the usual case: nothing to permute
    sorted_indices = indices if in_order else [indices[i] for i in order]
    aligned = {}
    for field_name in ("masks", "landmarks"):
        values = _path_list(entry, field_name)
        if values is not None:
            if len(values) != len(frames):
                raise _VideoProblem(f"'{field_name}' has {len(values)} paths but 'frames' has "
                                    f"{len(frames)}; the lists must be aligned")
            aligned[field_name] = tuple(values) if in_order else tuple(values[i] for i in order)
            _check_stems_match(field_name, aligned[field_name], sorted_indices)
    identity = entry.get("identity")
    return VideoRecord(
        dataset=name, label_name=label_name, label=int(label_dict[label_name]), split=split,
        video=video, frames=tuple(frames) if in_order else tuple(frames[i] for i in order),
        masks=aligned.get("masks"),
        landmarks=aligned.get("landmarks"), identity=None if identity is None else str(identity),
        compression=compression)


def _has_integer_stem(path: str) -> bool:
    try:
        frame_index_of(path)
        return True
    except ValueError:
        return False


def _check_stems_match(field_name: str, paths: Sequence[str], frame_indices: Sequence[int]) -> None:
    # After reordering, mask/landmark i must belong to frame i; equal stems prove it.
    try:
        if frame_indices_of(paths) == list(frame_indices):
            return
    except ValueError:
        pass  # the loop below names the first bad entry
    for path, index in zip(paths, frame_indices):
        try:
            matches = frame_index_of(path) == index
        except ValueError:
            matches = False
        if not matches:
            raise _VideoProblem(f"'{field_name}' entry {path!r} does not match frame index {index}; "
                                f"the lists must be aligned with 'frames'")


def build_records_with_report(name: str, split: str, *, data_root: PathLike,
                              label_dict: Mapping[str, int], compression: str = "c23",
                              strict: bool = True, json_dir: Optional[PathLike] = None,
                              ) -> Tuple[List[VideoRecord], SkipReport]:
    """Records of one split plus what lenient mode skipped (empty report when strict)."""
    tree = load_dataset_json(data_root, name, json_dir)
    report = SkipReport()
    records: List[VideoRecord] = []
    seen: Dict[str, str] = {}
    raw = iter_raw_videos(tree, name, split, compression, report=None if strict else report)
    for label_group, video, entry, level in raw:
        where = f"{name}/{label_group}/{video}"
        try:
            record = _record_from_entry(name, split, label_group, video, entry, level, label_dict)
            if record.key in seen:
                raise _VideoProblem(f"duplicate video key {record.key!r} (also listed under label group "
                                    f"{seen[record.key]!r}); each video may appear once per split")
        except _VideoProblem as problem:
            if strict:
                raise CatalogError(f"{name}.json, split {split!r}, video {where!r}: {problem}. "
                                   f"(Use lenient mode, strict=False, to skip and count such videos.)"
                                   ) from None
            report.add(where, str(problem))
            continue
        seen[record.key] = label_group
        records.append(record)
    return records, report


def build_records(name: str, split: str, *, data_root: PathLike, label_dict: Mapping[str, int],
                  compression: str = "c23", strict: bool = True,
                  json_dir: Optional[PathLike] = None) -> List[VideoRecord]:
    """Records of one split, sorted as in the JSON; frames sorted by integer index.

    Lenient mode logs a warning with what it skipped; use
    :func:`build_records_with_report` to get the counts programmatically.
    """
    records, report = build_records_with_report(name, split, data_root=data_root,
                                                label_dict=label_dict, compression=compression,
                                                strict=strict, json_dir=json_dir)
    if report:
        log.warning("%s/%s: %s", name, split, report.summary())
    return records
