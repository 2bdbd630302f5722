r"""Train a detector from a YAML config, then test its best (validation-selected) checkpoint.

    python training/train.py --detector_path configs/detector/demo_clip_tiny.yaml \
        [--train_dataset DemoFF] [--test_dataset DemoCDF DemoDFDC] [--opts train.epochs=5 ...]
    python training/train.py --resume runs/<run>          # continue an interrupted run, same flags
    torchrun --nproc_per_node 4 training/train.py ...       # DDP (see scripts/train.sh)

A --run_dir that already holds a run is refused: continue it with --resume, or replace it
with --overwrite. The run directory is created only once set-up (config, datasets, weights)
has succeeded. The last line printed is the path of the run's metrics.json.
Exit status: 0 done, 2 user error, 130/143 stopped by SIGINT/SIGTERM after saving last.pt.
"""
from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):
    # `python training/train.py` puts training/ first on sys.path, which would expose our
    # modules (config, metrics, data ...) as top-level names; use the repo root instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from training.cli import cli_parser, exit_for_signal, run_cli  # noqa: E402
from training.config import Config, as_list, load_config, save_config  # noqa: E402
from training.engine.run_dir import RunDir  # noqa: E402

log = logging.getLogger("training")

# Flags that describe where/how this invocation runs, not the run itself: never restored on --resume.
_NOT_RESTORED = ("resume", "run_dir", "overwrite", "debug", "opts")


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--detector_path", metavar="YAML", help="detector config (configs/detector/*.yaml)")
    parser.add_argument("--train_dataset", nargs="+", metavar="NAME", help="override data.train_dataset")
    parser.add_argument("--val_dataset", nargs="+", metavar="NAME",
                        help="override data.val_dataset (their val split is used)")
    parser.add_argument("--test_dataset", nargs="+", metavar="NAME", help="override data.test_dataset")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides, values in YAML (e.g. train.epochs=5 data.root=/data)")
    parser.add_argument("--run_dir", help="run directory to create (default: <output.root>/<timestamp>_<name>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in --run_dir before starting (otherwise it is refused)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run from RUN_DIR/checkpoints/last.pt with the flags of its "
                             "original command (flags given now override them)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--no_test", action="store_true", help="skip testing after training")
    return parser


def restore_original_command(args: argparse.Namespace, parser: argparse.ArgumentParser,
                             saved: Dict[str, Any]) -> None:
    """--resume: every flag of the original command applies again unless given on this command line."""
    for key, value in saved.items():
        if key in _NOT_RESTORED or not hasattr(args, key):
            continue
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)


def command_to_save(args: argparse.Namespace) -> Dict[str, Any]:
    return {key: value for key, value in vars(args).items()
            if key not in ("resume", "overwrite", "debug") and not key.startswith("_")}


def dataset_overrides(args) -> List[str]:
    overrides = []
    for flag, key in (("train_dataset", "train_dataset"), ("val_dataset", "val_dataset"),
                      ("test_dataset", "test_dataset")):
        values = getattr(args, flag)
        if values:
            overrides.append(f"data.{key}=[{','.join(values)}]")
    return overrides


def resolve_config_and_run_dir(args, parser: argparse.ArgumentParser) -> tuple:
    """(config, RunDir). Checks the run directory before any work: a new run never lands in a
    directory that holds one (unless --overwrite), a resume needs last.pt and config.yaml."""
    if args.resume:
        run = RunDir.of(args.resume)
        run.check_resumable()
        restore_original_command(args, parser, run.load_command())
        return load_config(run.config, args.opts + dataset_overrides(args)), run
    if not args.detector_path:
        parser.error("--detector_path is required (or --resume RUN_DIR)")
    config = load_config(args.detector_path, args.opts + dataset_overrides(args))
    run = RunDir(args.run_dir if args.run_dir else
                 Path(config["output"]["root"]) / f"{time.strftime('%Y%m%d-%H%M%S')}_{config['name']}")
    if _is_main_rank():
        run.check_new(args.overwrite)  # refused before the (slow) set-up; the old run is cleared only later
    return config, run


def check_datasets_exist(config: Config, no_test: bool) -> None:
    """A typo in any dataset name fails now (with "did you mean"), not after hours of training."""
    from training.data.catalog import find_dataset_json

    data = config["data"]
    names = as_list(data["train_dataset"]) + as_list(data["val_dataset"])
    names += [] if no_test else as_list(data["test_dataset"])
    for name in dict.fromkeys(str(n) for n in names):
        find_dataset_json(data["root"], name, data["json_dir"])


def _is_main_rank() -> bool:
    # Before the process group exists (torchrun sets RANK): only rank 0 judges and creates the directory.
    return int(os.environ.get("RANK", "0")) == 0


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(main_process: bool) -> Optional[logging.handlers.MemoryHandler]:
    """Log to stderr now; on the main process also keep the records in memory until the run
    directory exists (``attach_run_log``), so a start that fails leaves no directory behind."""
    if not main_process:
        logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()], force=True)
        return None
    buffer = logging.handlers.MemoryHandler(capacity=1 << 30, flushLevel=logging.CRITICAL + 1)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=[logging.StreamHandler(sys.stderr), buffer],
                        force=True)
    return buffer


def attach_run_log(run: RunDir, buffer: Optional[logging.handlers.MemoryHandler]) -> None:
    """Append the records logged so far, and all later ones, to the run's train.log."""
    if buffer is None:
        return
    file_handler = logging.FileHandler(run.log)
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    buffer.setTarget(file_handler)
    buffer.flush()
    root = logging.getLogger()
    root.removeHandler(buffer)
    buffer.close()
    root.addHandler(file_handler)


def create_run_dir(run: RunDir, config: Config, args, buffer) -> None:
    """Set-up succeeded: now (and only now) the run directory is made and filled."""
    if args.resume:
        return  # its log was attached at the start
    run.prepare_new(args.overwrite)
    attach_run_log(run, buffer)
    args._log_attached = True
    run.save_command(command_to_save(args))
    save_config(config, run.config)


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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return train_from_args(args, parser, argv)
    except BaseException as error:
        if getattr(args, "_log_attached", False):  # this attempt writes the run's train.log: say why it ended
            log.error("Run ended by %s: %s", type(error).__name__, error)
        raise


def train_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> int:
    from training.engine import distributed as dist_utils
    from training.engine.checkpoint import load_detector_weights
    from training.engine.hooks import LoggingHook, TensorboardHook, ValidationCheckpointHook
    from training.engine.performance import wrap_for_training
    from training.engine.provenance import write_end as finish_provenance, write_start as write_provenance
    from training.engine.testing import table_footnote, test_detector
    from training.engine.trainer import Trainer, seed_everything
    from training.models import build_detector, count_parameters

    config, run = resolve_config_and_run_dir(args, parser)
    device = dist_utils.select_device(args.device)
    distributed = dist_utils.init_from_environment(device)
    run = RunDir(dist_utils.broadcast_object(str(run.root)))
    run_dir = run.root
    log_buffer = setup_logging(dist_utils.is_main_process())
    if args.resume and dist_utils.is_main_process():  # the directory exists: its log records this attempt too
        attach_run_log(run, log_buffer)
        log_buffer, args._log_attached = None, True
        log.info("Resuming with: %s", " ".join(sys.argv[1:] if argv is None else argv))
    check_datasets_exist(config, args.no_test)
    resolve_identity_count(config)
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
             TensorboardHook(run.tensorboard, config["train"]["log_every"]), LoggingHook(config["train"]["log_every"])]
    trainer = Trainer(config, model, train_loader, run_dir, device, hooks)
    provenance = None  # git commit, packages, command, host, wall time: runs/<run>/provenance.json
    if dist_utils.is_main_process():
        create_run_dir(run, config, args, log_buffer)
        provenance = write_provenance(run.provenance, ["training/train.py", *(sys.argv[1:] if argv is None else argv)],
                                      str(device))
    dist_utils.barrier()
    if args.resume:
        trainer.resume(run.last)
    start = time.time()
    try:
        trainer.train()
    except BaseException as error:  # main() logs it to train.log
        if provenance:
            finish_provenance(run.provenance, provenance, f"failed: {type(error).__name__}")
        raise
    if provenance:
        finish_provenance(run.provenance, provenance, f"stopped by {trainer.stop_requested}"
                          if trainer.stop_requested else "trained")
    if trainer.stop_requested:
        dist_utils.shutdown()
        return exit_for_signal(trainer.stop_requested)
    log.info("Training finished in %.1fs; best epoch %s (val %s %s)", time.time() - start, trainer.best_epoch,
             config["train"]["val_metric"], trainer.best_metric)

    test_names = [str(n) for n in as_list(config["data"]["test_dataset"])]
    if args.no_test or not test_names:
        dist_utils.shutdown()
        return 0
    load_detector_weights(detector, run.best)
    results = test_detector(config, model, test_names, run.test, device)
    if dist_utils.is_main_process():
        from analysis.tables import write_tables
        from training.utils.atomic import atomic_write_json

        atomic_write_json(run.metrics, results)
        # The row is the run directory's name, as test.py and the report name it.
        table = write_tables({run.root.name: results}, run.table,
                             footnote=table_footnote(config, detector.input_spec.frames_per_sample, results))
        finish_provenance(run.provenance, provenance, "trained and tested")
        print(table)
        print(run.metrics)
    dist_utils.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
