"""Experiment configuration: YAML files with ``_base_`` includes, overrides, validation.

A config is a plain nested ``dict``. Loading one:

1. reads the YAML file with a ``yaml.SafeLoader`` that also takes ``2e-3`` as a float;
2. resolves ``_base_`` (a path or list of paths relative to the including file),
   deep-merging the bases first and the including file on top;
3. lays the result over :data:`DEFAULTS`, so every key has a value;
4. applies command-line overrides ``section.key=value`` (values parsed as YAML);
5. validates: every key must exist in :data:`DEFAULTS` (or in the detector's own
   defaults under ``model:``), with a "did you mean" suggestion otherwise, and
   enumerated values must be one of their choices.

The resolved config is saved into the run directory, so a run can always be
reproduced from ``runs/<run>/config.yaml`` alone.
"""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import yaml

from training.engine.schedule import SCHEDULES, WARMUP_STARTS
from training.metrics import SELECTABLE_METRICS, VIDEO_AGGREGATIONS
from training.utils.atomic import atomic_write_text
from training.errors import ConfigError  # noqa: F401 - training.config.ConfigError, as always

Config = Dict[str, Any]


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``2e-3`` and ``1e5`` as floats.

    PyYAML follows YAML 1.1, where a float needs a dot (``2.0e-3``), so ``lr: 2e-3`` or
    ``--opts train.optimizer.lr=2e-3`` would arrive as the *string* "2e-3" and fail deep
    inside the optimizer. YAML 1.2 (and every other config tool) reads them as numbers."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))

# YAML 1.1 also reads on/off/yes/no as booleans, so `amp: off` or `--opts train.amp=off` arrived as
# False and failed the choice check (auto | bf16 | off). Booleans are true/false only, as in YAML 1.2.
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in ConfigLoader.yaml_implicit_resolvers.items()}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader: no arbitrary objects

# Every key a config may contain, with its default. Keys under ``model`` are
# validated against the chosen detector's own DEFAULTS (see training/models).
DEFAULTS: Config = {
    "name": "experiment",
    "model": {"name": "clip"},
    "data": {
        "root": "datasets",  # data root; relative paths resolve against the working directory
        "storage": "rgb",  # rgb: PNG files under the data root | lmdb: <root>/lmdb/<Dataset>.lmdb
        "json_dir": None,  # folder of <Dataset>.json; null: <root>/json, then <root>/preprocessing/dataset_json
        "lmdb_dir": None,  # folder of the LMDBs (ours or DeepfakeBench's); null: <root>/lmdb, <root>/datasets/lmdb
        "compression": "c23",  # FF++-family compression level (c23 | c40 | raw)
        "train_dataset": [],
        "val_dataset": None,  # null: the *val* split of the training datasets (never a test set)
        "test_dataset": [],
        "frame_num": {"train": 8, "val": 8, "test": 8},  # frames per video, sampled evenly over the video
        "clips_per_video": {"train": 1, "val": 2, "test": 4},  # temporal detectors only
        "label_dict": {},
        "strict": True,  # bad data raises; False skips it and reports what was skipped
        "num_workers": 2,  # loader processes per training process, or auto (engine/performance.py)
        "identity_labels": False,  # load identity ids from the JSON for identity-aware losses
        # all | paired | unpaired training subsets (training/data/pairing.py); seed null = train.seed
        "pairing": "all",
        "pairing_seed": None,
        # SBI-style online self-blending of real training frames (training/data/self_blend.py)
        "self_blend": {"enabled": False, "p": 0.5, "reals_only": False,
                       "blend_ratios": [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]},
    },
    "augment": {},  # train-time augmentations, see training/data/transforms.py
    "train": {
        "epochs": 10,
        "batch_size": 32,
        "max_steps": None,  # stop after this many optimizer steps (smoke tests)
        "optimizer": {"name": "adamw", "lr": 8e-5, "weight_decay": 0.0, "betas": [0.9, 0.999]},
        # training/engine/schedule.py: cosine | cyclic (warm restarts every cycle_epochs) | constant
        "scheduler": {"name": "cosine", "warmup_epochs": 0.0, "warmup_start": "zero", "min_lr": 0.0,
                      "cycle_epochs": None},
        "amp": "auto",  # auto: bf16 autocast on CUDA and on CPUs with bf16 units, else fp32 | bf16 | off (engine/precision.py)
        "grad_clip": 1.0,  # max gradient norm; null disables clipping
        "seed": 1024,
        "max_consecutive_nan": 5,  # non-finite losses in a row before the run stops
        "val_every_epochs": 1,
        "checkpoint_every_steps": 500,  # also write last.pt mid-epoch (resume loses at most this many steps)
        "val_metric": "video_auc",  # checkpoint selection metric on the validation split (training/metrics.py)
        "val_video_aggregation": "mean",  # mean | median of a video's frame scores, for validation
        "val_max_videos": None,  # cap validation videos per dataset (deterministic subset)
        "log_every": 20,
        "deterministic": False,
        "compile": False,  # torch.compile the detector: false | true | reduce-overhead | max-autotune
        "channels_last": "auto",  # NHWC memory format: auto = CNN detectors on CUDA (engine/performance.py)
    },
    "test": {"batch_size": 64, "save_features": False,
             "video_aggregation": "mean"},  # mean | median of a video's frame scores (GenD has both)
    "output": {"root": "runs"},
}

CHOICES = {
    "data.storage": ("rgb", "lmdb"),
    "data.compression": ("c23", "c40", "raw"),
    "data.pairing": ("all", "paired", "unpaired"),
    "train.optimizer.name": ("adamw", "adam", "sgd"),
    "train.scheduler.name": SCHEDULES,
    "train.scheduler.warmup_start": WARMUP_STARTS,
    "train.amp": ("auto", "bf16", "off"),
    "train.compile": (False, True, "default", "reduce-overhead", "max-autotune"),
    "train.channels_last": ("auto", True, False),
    "train.val_metric": SELECTABLE_METRICS,
    "train.val_video_aggregation": VIDEO_AGGREGATIONS,
    "test.video_aggregation": VIDEO_AGGREGATIONS,
}

# Free-form mappings: any key allowed below these paths.
OPEN_SECTIONS = ("data.label_dict", "augment")


def deep_merge(base: Mapping, override: Mapping) -> Config:
    """Recursively merge ``override`` onto a copy of ``base`` (dicts merge, the rest replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml_with_bases(path: Path, _seen: Optional[List[Path]] = None) -> Config:
    path = Path(path)
    seen = list(_seen or [])
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}. Check --detector_path "
                          f"(configs live in configs/detector/*.yaml).")
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in seen + [path.resolve()])
        raise ConfigError(f"Circular _base_ include: {chain}")
    seen.append(path.resolve())
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must contain a mapping at top level, got {type(raw).__name__}.")
    bases = raw.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: Config = {}
    for base in bases:
        merged = deep_merge(merged, read_yaml_with_bases(path.parent / base, seen))
    return deep_merge(merged, raw)


def parse_override(text: str) -> tuple:
    if "=" not in text:
        raise ConfigError(f"Override '{text}' must look like section.key=value "
                          f"(e.g. train.epochs=5 or data.test_dataset=[DemoCDF,DemoDFDC]).")
    key, value = text.split("=", 1)
    try:
        parsed = load_yaml(value) if value != "" else None
    except yaml.YAMLError as error:
        raise ConfigError(f"Override '{text}': value is not valid YAML ({error}).") from error
    return key.strip(), parsed


def set_by_path(config: Config, dotted: str, value: Any) -> None:
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def get_by_path(config: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _check_keys(config: Mapping, schema: Mapping, prefix: str, source: str) -> None:
    for key, value in config.items():
        path = f"{prefix}{key}"
        if path in OPEN_SECTIONS or str(key).startswith("_"):  # _source etc. are bookkeeping
            continue
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            valid = ", ".join(sorted(f"{prefix}{k}" for k in schema))
            raise ConfigError(f"Unknown config key '{path}' in {source}.{hint} Valid keys here: {valid}.")
        if isinstance(schema[key], Mapping) and schema[key] and isinstance(value, Mapping):
            _check_keys(value, schema[key], f"{path}.", source)
        choices = CHOICES.get(path)
        if choices is not None and value not in choices:
            raise ConfigError(f"Config key '{path}' = {value!r} in {source} is not one of "
                              f"{', '.join(map(str, choices))}.")


def validate(config: Config, source: str = "config") -> None:
    top = {k: v for k, v in config.items() if k != "model"}
    _check_keys(top, {k: v for k, v in DEFAULTS.items() if k != "model"}, "", source)
    for key in ("train_dataset", "test_dataset"):
        value = config["data"][key]
        if isinstance(value, str):
            config["data"][key] = [value]
    if not isinstance(config.get("model"), dict) or "name" not in config["model"]:
        raise ConfigError(f"{source}: 'model.name' is required (the registered detector name).")
    # The detector validates its own section (unknown keys, choices) when it is built.
    from training.models import detector_defaults  # local import: models import torch

    try:
        model_schema = detector_defaults(config["model"]["name"])
    except KeyError as error:  # unknown detector: the registry's message lists the registered names
        raise ConfigError(f"{source}: model.name: {error.args[0]}") from None
    _check_keys(config["model"], model_schema, "model.", source)
    config["model"] = deep_merge(model_schema, config["model"])


def load_config(path, overrides: Optional[Sequence[str]] = None) -> Config:
    """Load, merge, override and validate a detector config (see module docstring)."""
    path = Path(path)
    config = deep_merge(DEFAULTS, read_yaml_with_bases(path))
    for text in overrides or []:
        key, value = parse_override(text)
        set_by_path(config, key, value)
    source = f"{path}" + (f" (with overrides {' '.join(overrides)})" if overrides else "")
    validate(config, source)
    config["_source"] = str(path)
    return config


def save_config(config: Config, path) -> None:
    """Write the resolved config (atomically) so the run can be reproduced from it."""
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))


def as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def iter_keys(config: Mapping, prefix: str = "") -> Iterable[str]:
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            yield from iter_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
