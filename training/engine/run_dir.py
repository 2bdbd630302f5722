"""The run directory's layout, defined once; every tool asks a ``RunDir`` for its paths.

    runs/<timestamp>_<name>/
        config.yaml                    resolved config (rebuilds the detector for testing and resuming)
        command.json                   the train.py arguments of the original command (``--resume`` reuses them)
        provenance.json                git commit, package versions, command line, host, wall time
        train.log                      the log of every start and resume
        tb/                            TensorBoard event files
        checkpoints/{last,best}.pt
        val/<dataset>/...              latest validation predictions
        val_history.json               one entry per validation
        test/<dataset>/{predictions.csv,metrics.json}
        metrics.json                   {dataset: metrics} of the test sets
        table.{md,csv,tex}
        plots/, report.html            written by analysis/
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Union

from training.errors import UserError
from training.utils.atomic import atomic_write_json

PathLike = Union[str, os.PathLike]

CONFIG_FILE = "config.yaml"
COMMAND_FILE = "command.json"
PROVENANCE_FILE = "provenance.json"
LOG_FILE = "train.log"
TENSORBOARD_DIR = "tb"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_SUFFIX = ".pt"
VAL_DIR = "val"
VAL_HISTORY_FILE = "val_history.json"
TEST_DIR = "test"
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
FEATURES_FILE = "features.npz"
TABLE_PREFIX = "table"
PLOTS_DIR = "plots"
REPORT_FILE = "report.html"

# Any of these marks a directory as holding (the start of) a run.
_RUN_MARKERS = (CONFIG_FILE, COMMAND_FILE, LOG_FILE, CHECKPOINTS_DIR, VAL_HISTORY_FILE, METRICS_FILE, TEST_DIR,
                TENSORBOARD_DIR)


class RunDirError(UserError):
    """A run directory that cannot be used as asked (holds another run, nothing to resume ...)."""


class RunDir:
    """Paths inside one run directory (nothing is created until a writer asks for it)."""

    def __init__(self, root: PathLike):
        self.root = Path(root)

    def __fspath__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    @classmethod
    def of(cls, path: PathLike) -> "RunDir":
        """The run that ``path`` points into: the directory itself or one of its checkpoint files."""
        path = Path(path)
        if path.suffix == CHECKPOINT_SUFFIX and path.parent.name == CHECKPOINTS_DIR:
            return cls(path.parent.parent)
        return cls(path)

    # -- files ---------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def command(self) -> Path:
        return self.root / COMMAND_FILE

    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    def checkpoint(self, name: str) -> Path:
        """``last`` or ``best`` (or any name a tool saved)."""
        return self.checkpoints / f"{name}{CHECKPOINT_SUFFIX}"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def val(self) -> Path:
        return self.root / VAL_DIR

    @property
    def val_history(self) -> Path:
        return self.root / VAL_HISTORY_FILE

    @property
    def test(self) -> Path:
        return self.root / TEST_DIR

    def predictions(self, dataset: str) -> Path:
        return self.test / dataset / PREDICTIONS_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def table(self) -> Path:
        """Prefix of table.md / table.csv / table.tex."""
        return self.root / TABLE_PREFIX

    @property
    def plots(self) -> Path:
        return self.root / PLOTS_DIR

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    # -- state ---------------------------------------------------------------------------
    def holds_run(self) -> bool:
        return any((self.root / name).exists() for name in _RUN_MARKERS)

    def is_empty(self) -> bool:
        return not self.root.exists() or (self.root.is_dir() and not any(self.root.iterdir()))

    def check_new(self, overwrite: bool = False) -> None:
        """Raise unless a new run may start here: the directory is absent or empty, or holds a
        run and ``overwrite`` is set (a directory holding anything else is never cleared)."""
        if self.is_empty():
            return
        if not self.root.is_dir():
            raise RunDirError(f"--run_dir {self.root} is a file, not a directory; choose another --run_dir.")
        if not self.holds_run():
            raise RunDirError(f"--run_dir {self.root} is not empty and does not hold a run; refusing to write a "
                              f"run into it. Choose a new or empty --run_dir.")
        if not overwrite:
            raise RunDirError(f"--run_dir {self.root} already holds a run. Continue it with "
                              f"`--resume {self.root}`, delete it first with `--overwrite`, or choose another "
                              f"--run_dir.")

    def prepare_new(self, overwrite: bool = False) -> None:
        """``check_new``, then clear the old run (``overwrite``) and create the directory."""
        self.check_new(overwrite)
        if overwrite and self.holds_run():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def check_resumable(self) -> None:
        if not self.last.is_file():
            raise RunDirError(f"--resume {self.root}: no {self.last.relative_to(self.root)} in {self.root}; nothing "
                              f"to resume. Pass the run directory of an interrupted run (runs/<run>).")
        if not self.config.is_file():
            raise RunDirError(f"--resume {self.root}: {CONFIG_FILE} is missing, so the run cannot be rebuilt.")

    # -- the original command ------------------------------------------------------------
    def save_command(self, arguments: Dict[str, Any]) -> None:
        atomic_write_json(self.command, arguments)

    def load_command(self) -> Dict[str, Any]:
        """The saved arguments of the original command; {} for runs made before they were saved."""
        if not self.command.is_file():
            return {}
        try:
            return json.loads(self.command.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RunDirError(f"{self.command} is not valid JSON ({error}); delete it to resume with the saved "
                              f"config and this command's flags only.") from error
