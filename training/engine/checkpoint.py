"""Checkpoint files: safe loading, atomic saving, clear errors.

Every load uses ``torch.load(weights_only=True)``: a checkpoint that carries
code (an arbitrary pickle) is refused. Keys saved under DDP (``module.``) or
by wrappers are normalised, so a checkpoint loads the same with one or N
processes. A missing file is an error, never random weights.
"""
from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from training.engine.run_dir import CONFIG_FILE, RunDir
from training.errors import UserError
from training.utils.atomic import atomic_path

CHECKPOINT_VERSION = 1
log = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    pass


def save_checkpoint(path, payload: Dict[str, Any]) -> None:
    """Write ``payload`` atomically: a crash mid-write leaves the previous file intact."""
    payload = {"version": CHECKPOINT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, safe_globals: Sequence[type] = ()) -> Dict[str, Any]:
    """``safe_globals``: plain-data classes the file may name besides tensors (torch's allow-list)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}. Pass an existing file with --weights_path "
                              f"(training writes runs/<run>/checkpoints/best.pt and last.pt).")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"Refusing to load {path}: it is not a plain tensor checkpoint (torch.load with "
            f"weights_only=True rejected it: {str(error).splitlines()[0]}). It may carry code (a whole "
            f"pickled model, e.g. torch.save(model)); only load checkpoints from sources you trust. To "
            f"convert a trusted one, run this where its classes import (for a DeepfakeBench checkpoint: "
            f"its environment, inside DeepfakeBench/training), then pass the new file:\n"
            f"    import torch\n"
            f"    model = torch.load({str(path)!r}, map_location='cpu', weights_only=False)\n"
            f"    torch.save(model.state_dict(), {str(path.with_suffix('.state_dict.pth'))!r})\n"
            f"(for a dict holding a model, save that entry's state_dict()).") from error
    except Exception as error:  # noqa: BLE001 - random bytes fail anywhere in the unpickler (IndexError ...)
        raise _unreadable(path, error) from error
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{path} does not hold a dict (got {type(payload).__name__}).")
    return dict(payload)


def _unreadable(path: Path, error: BaseException) -> CheckpointError:
    detail = str(error).strip().splitlines()[-1] if str(error).strip() else ""
    return CheckpointError(f"Cannot read checkpoint {path} ({type(error).__name__}: {detail}): the file is truncated "
                           f"or not a PyTorch checkpoint. Pass a file written by torch.save (training writes "
                           f"runs/<run>/checkpoints/best.pt).")


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove DDP/DataParallel ``module.`` prefixes (and torch.compile's ``_orig_mod.``)."""
    cleaned = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    return cleaned


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                            partial: bool = False) -> None:
    """Load with clear errors: missing/unexpected keys listed, shape mismatches named.

    ``partial``: the state holds only a subset (compact checkpoints); unexpected
    keys are still an error, missing ones are expected.
    """
    state = strip_prefixes(state)
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = [] if partial else sorted(set(own) - set(state))
    if unexpected or missing:
        raise CheckpointError(
            f"{source} does not match this detector ({type(model).__name__}): "
            f"{len(missing)} missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
            f"{len(unexpected)} unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}. "
            f"Was it trained with another detector config? Pass the matching --detector_path.")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(f"{source}: parameter '{key}' has shape {tuple(value.shape)} in the "
                                  f"checkpoint but {tuple(own[key].shape)} in this detector. "
                                  f"Check the config the checkpoint was trained with.")
    model.load_state_dict(state, strict=not partial)


def load_detector_weights(detector: nn.Module, path, payload: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Load model weights from a training checkpoint, a plain state dict file, or a published
    LN-CLIP / GenD checkpoint (Lightning ``.ckpt`` or ``save_pretrained`` directory; models/gend.py).
    ``payload``: the file's contents when the caller has read them already (read_weights)."""
    from training.models.gend import is_published_path, is_published_state_dict, load_published_weights

    if is_published_path(path):
        load_published_weights(detector, path)
        return {}
    if payload is None:
        payload = read_weights(path)
    if "model" in payload and isinstance(payload["model"], Mapping) and "format" in payload["model"]:
        detector.load_checkpoint_state(payload["model"], source=str(path))
    elif "format" in payload:
        detector.load_checkpoint_state(payload, source=str(path))
    else:
        # A bare state dict (e.g. from another framework): possibly wrapped in "state_dict".
        state = payload.get("state_dict", payload)
        if is_published_state_dict(state):
            load_published_weights(detector, path, payload)
        else:
            # DeepfakeBench's *_best.pth come in its key layout (models/detectors/deepfakebench_compat.py).
            convert = getattr(detector, "convert_external_state", None)
            state = (convert(strip_prefixes(state)) if convert else None) or state
            load_state_dict_checked(detector, state, str(path))
    return payload


def read_weights(path) -> Dict[str, Any]:
    """The contents of a weights file as load_detector_weights reads them (not for directories)."""
    from training.models.gend import PUBLISHED_CONFIG_CLASSES

    return load_checkpoint(path, PUBLISHED_CONFIG_CLASSES)


def _is_compact(payload: Mapping[str, Any]) -> bool:
    model = payload.get("model")
    state = model if isinstance(model, Mapping) and "format" in model else payload
    return state.get("format") == "compact"


def build_detector_with_weights(config, path, device=None) -> Tuple[nn.Module, Dict[str, Any]]:
    """(detector, config used) with the weights of ``path`` loaded.

    A file that holds every weight of the detector (a full training checkpoint, another framework's
    state dict, a published GenD / LN-CLIP checkpoint) overwrites the backbone's pretrained weights,
    so the detector is built with ``model.backbone.pretrained: null``: testing a DeepfakeBench
    ``xception_best.pth`` or a GenD checkpoint does not need the ImageNet / CLIP weights on disk.
    A compact checkpoint (LayerNorms + head) needs the pretrained backbone and keeps it."""
    from training.models import build_detector
    from training.models.gend import is_published_path

    payload = None if is_published_path(path) else read_weights(path)
    backbone = config.get("model", {}).get("backbone")
    if (isinstance(backbone, dict) and backbone.get("pretrained") and (payload is None or not _is_compact(payload))):
        log.info("%s holds every weight of the detector: building it with "
                                         "model.backbone.pretrained=null (was %r)", path, backbone["pretrained"])
        config = copy.deepcopy(config)
        config["model"]["backbone"]["pretrained"] = None
    detector = build_detector(config)
    if device is not None:
        detector = detector.to(device)
    load_detector_weights(detector, path, payload)
    return detector, config


def resolve_weights(entry: str, detector_path: Optional[str]) -> Tuple[Path, Path, str]:
    """(checkpoint file, config file, row name) for one ``--weights_path`` entry of the CLIs:
    a run directory (its checkpoints/best.pt and config.yaml) or a checkpoint file."""
    path = Path(entry)
    if not path.exists():
        raise CheckpointError(f"--weights_path {entry} does not exist. Pass a run directory (runs/<run>) or a "
                              f"checkpoint file (runs/<run>/checkpoints/best.pt).")
    from training.models.gend import is_hf_directory

    if path.is_dir() and not is_hf_directory(path):  # a GenD save_pretrained directory is one checkpoint
        run = RunDir(path)
        checkpoint, config, name = run.best, run.config, path.name
    else:
        run = RunDir.of(path)
        in_run = run.root != path
        checkpoint, name = path, run.root.name if in_run else path.stem
        config = run.config if in_run else path.parent.parent / CONFIG_FILE
    if detector_path:
        config = Path(detector_path)
    if not config.is_file():
        raise CheckpointError(f"No config for {entry}: it is not inside a run directory (looked for {config}); "
                              f"pass the detector YAML it was trained with as --detector_path.")
    return checkpoint, config, name
