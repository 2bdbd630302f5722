"""Train a detector from a YAML config, then test its best (validation-selected) checkpoint.

    python training/train.py --detector_path configs/detector/demo_clip_tiny.yaml \
        [--train_dataset DemoFF] [--test_dataset DemoCDF DemoDFDC] [--opts train.epochs=5 ...]
    python training/train.py --resume runs/<run>          # continue an interrupted run
    torchrun --nproc_per_node 4 training/train.py ...       # DDP (see scripts/train.sh)

The last line printed is the path of the run's metrics.json.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

if __package__ in (None, ""):
    # `python training/train.py` puts training/ first on sys.path, which would expose our
    # modules (config, metrics, data ...) as top-level names; use the repo root instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from training.config import Config, as_list, load_config, save_config  # noqa: E402

log = logging.getLogger("training")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector_path", help="detector YAML config (configs/detector/*.yaml)")
    parser.add_argument("--train_dataset", nargs="+", help="override data.train_dataset")
    parser.add_argument("--val_dataset", nargs="+", help="override data.val_dataset (their val split is used)")
    parser.add_argument("--test_dataset", nargs="+", help="override data.test_dataset")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--run_dir", help="run directory (default runs/<timestamp>_<name>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="resume an interrupted run from RUN_DIR/checkpoints/last.pt")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no_test", action="store_true", help="skip testing after training")
    return parser


def dataset_overrides(args) -> List[str]:
    overrides = []
    for flag, key in (("train_dataset", "train_dataset"), ("val_dataset", "val_dataset"),
                      ("test_dataset", "test_dataset")):
        values = getattr(args, flag)
        if values:
            overrides.append(f"data.{key}=[{','.join(values)}]")
    return overrides


def resolve_config_and_run_dir(args) -> tuple:
    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.name == "last.pt":
            run_dir = run_dir.parent.parent
        config_path = run_dir / "config.yaml"
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise SystemExit(f"--resume {args.resume}: no checkpoints/last.pt in {run_dir}; nothing to resume.")
        return load_config(config_path, args.opts + dataset_overrides(args)), run_dir
    if not args.detector_path:
        raise SystemExit("--detector_path is required (or --resume RUN_DIR).")
    config = load_config(args.detector_path, args.opts + dataset_overrides(args))
    run_dir = Path(args.run_dir) if args.run_dir else (
        Path(config["output"]["root"]) / f"{time.strftime('%Y%m%d-%H%M%S')}_{config['name']}")
    return config, run_dir


def setup_logging(run_dir: Path, main_process: bool) -> None:
    handlers: List[logging.Handler] = []
    if main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(run_dir / "train.log"), logging.StreamHandler(sys.stderr)]
    else:
        handlers = [logging.NullHandler()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def resolve_identity_count(config: Config) -> None:
    """An identity-adversarial detector (model.identity.enabled) needs the number of training
    identities before it is built: fill in (null) or check model.identity.num_identities against
    the training data's identity index, before config.yaml is saved, so the saved config
    rebuilds the same detector for testing and resuming."""
    identity = config["model"].get("identity")
    if not isinstance(identity, dict) or not identity.get("enabled"):
        return
    if not config["data"]["identity_labels"]:
        raise SystemExit("model.identity.enabled needs identity ids in the batch: set data.identity_labels: true "
                         "(and 'identity' fields in the training datasets' JSON).")
    from training.data.loaders import dataset_names, identity_index, load_records
    from training.models.modules.identity import check_identity_count

    names = dataset_names(config, "train_dataset")
    if names:  # (a missing training dataset is reported by build_training_loaders)
        found = len(identity_index(load_records(config, names, "train")))
        identity["num_identities"] = check_identity_count(identity.get("num_identities"), found)


def build_training_loaders(config: Config, detector, device):
    from training.data.loaders import (build_dataset, build_loader, capped_by_label, data_report, dataset_names,
                                       identity_index, load_records, log_data_report)
    from training.engine import distributed as dist_utils

    train_names = dataset_names(config, "train_dataset")
    if not train_names:
        raise SystemExit("No training dataset: set data.train_dataset in the config or pass --train_dataset.")
    spec = detector.input_spec
    records = load_records(config, train_names, "train")
    identities = identity_index(records) if config["data"]["identity_labels"] else None
    train_set = build_dataset(config, train_names, "train", spec, train=True, records=records,
                              identity_to_index=identities)
    log_data_report(data_report(train_set, "+".join(train_names), "train"))
    rank, world = dist_utils.rank(), dist_utils.world_size()
    train_loader = build_loader(config, train_set, config["train"]["batch_size"], train=True, rank=rank,
                                world_size=world, device=device)
    val_loaders = {}
    if config["train"]["val_every_epochs"]:
        for name in as_list(config["data"]["val_dataset"]) or train_names:
            val_records = load_records(config, [name], "val")
            cap = config["train"]["val_max_videos"]
            if cap:
                val_records = capped_by_label(val_records, int(cap))
            val_set = build_dataset(config, [name], "val", spec, train=False, records=val_records)
            log_data_report(data_report(val_set, name, "val"))
            val_loaders[name] = build_loader(config, val_set, config["test"]["batch_size"], train=False,
                                             rank=rank, world_size=world, device=device)
    return train_loader, val_loaders


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from training.engine import distributed as dist_utils
    from training.engine.checkpoint import load_detector_weights
    from training.engine.hooks import LoggingHook, TensorboardHook, ValidationCheckpointHook
    from training.engine.performance import wrap_for_training
    from training.engine.testing import table_footnote, test_detector
    from training.engine.trainer import Trainer, seed_everything
    from training.models import build_detector, count_parameters

    config, run_dir = resolve_config_and_run_dir(args)
    device = dist_utils.select_device(args.device)
    distributed = dist_utils.init_from_environment(device)
    run_dir = Path(dist_utils.broadcast_object(str(run_dir)))
    setup_logging(run_dir, dist_utils.is_main_process())
    resolve_identity_count(config)
    if dist_utils.is_main_process():
        save_config(config, run_dir / "config.yaml")
    seed_everything(config["train"]["seed"], config["train"]["deterministic"])

    detector = build_detector(config).to(device)
    counts = count_parameters(detector)
    log.info("Detector %s: %d parameters, %d trainable (%.4f%%)", config["model"]["name"], counts["total"],
             counts["trainable"], counts["trainable_pct"])
    if hasattr(detector, "parameter_report"):  # per-part breakdown (e.g. clip_stan: tower/temporal/spatial/head)
        log.info("Trainable parameters by part: %s", detector.parameter_report())
    train_loader, val_loaders = build_training_loaders(config, detector, device)
    log.info("Training on %s: %d samples per epoch, %d steps per epoch; validating on %s (val split)",
             config["data"]["train_dataset"], len(train_loader.dataset), len(train_loader),
             list(val_loaders) or "nothing")
    model = wrap_for_training(detector, config["train"], device, distributed)
    hooks = [ValidationCheckpointHook(val_loaders, config["train"]["val_every_epochs"], config["train"]["val_metric"]),
             TensorboardHook(run_dir / "tb", config["train"]["log_every"]), LoggingHook(config["train"]["log_every"])]
    trainer = Trainer(config, model, train_loader, run_dir, device, hooks)
    if args.resume:
        trainer.resume(run_dir / "checkpoints" / "last.pt")
    start = time.time()
    trainer.train()
    if trainer.stop_requested:
        dist_utils.shutdown()
        return 0
    log.info("Training finished in %.1fs; best epoch %s (val %s %s)", time.time() - start, trainer.best_epoch,
             config["train"]["val_metric"], trainer.best_metric)

    test_names = [str(n) for n in as_list(config["data"]["test_dataset"])]
    if args.no_test or not test_names:
        dist_utils.shutdown()
        return 0
    load_detector_weights(detector, run_dir / "checkpoints" / "best.pt")
    results = test_detector(config, model, test_names, run_dir / "test", device)
    if dist_utils.is_main_process():
        from analysis.tables import write_tables
        from training.utils.atomic import atomic_write_json

        atomic_write_json(run_dir / "metrics.json", results)
        table = write_tables({config["name"]: results}, run_dir / "table",
                             footnote=table_footnote(config, detector.input_spec.frames_per_sample))
        print(table)
        print(run_dir / "metrics.json")
    dist_utils.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
