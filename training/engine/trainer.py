"""The training loop: AdamW + per-iteration cosine schedule with warm-up, AMP,
gradient clipping, non-finite-loss guard, validation-based checkpointing, resume.

Checkpoints are chosen on the *validation split of the training data*; test
sets are never looked at during training.
"""
from __future__ import annotations

import logging
import random
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training.config import Config
from training.engine import distributed as dist_utils
from training.engine.checkpoint import load_checkpoint, save_checkpoint
from training.engine.evaluation import move_batch
from training.engine.precision import autocast_context
from training.engine.hooks import Hook
from training.engine.performance import optimizer_options
from training.engine.run_dir import RunDir
from training.engine.schedule import build_scheduler
from training.errors import UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    pass


def build_optimizer(params: List[nn.Parameter], cfg: Dict[str, Any]) -> torch.optim.Optimizer:
    name = cfg["name"]
    # Biases and norm parameters get no weight decay (as in the LN-CLIP reference code).
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg["lr"], betas=tuple(cfg["betas"]), **optimizer_options(params))
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg["lr"], betas=tuple(cfg["betas"]), **optimizer_options(params))
    return torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9)


class Trainer:
    """Owns the model, optimizer, schedule and loop state; hooks do the rest."""

    def __init__(self, config: Config, model: nn.Module, train_loader, run_dir: Path, device: torch.device,
                 hooks: Optional[List[Hook]] = None):
        self.config = config
        self.cfg = config["train"]
        self.model = model
        self.train_loader = train_loader
        self.run_dir = Path(run_dir)
        self.run = RunDir(run_dir)
        self.device = device
        self.hooks = hooks or []
        self.detector = dist_utils.unwrap(model)
        self.optimizer = build_optimizer(self.detector.trainable_parameters(), self.cfg["optimizer"])
        self.steps_per_epoch = max(len(train_loader), 1)
        self.total_steps = self.steps_per_epoch * self.cfg["epochs"]
        if self.cfg["max_steps"]:
            self.total_steps = min(self.total_steps, int(self.cfg["max_steps"]))
        self.scheduler = build_scheduler(self.optimizer, self.cfg["scheduler"], self.cfg["optimizer"]["lr"],
                                         self.steps_per_epoch, self.total_steps)
        # Loop state (all of it goes into checkpoints).
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.nan_steps_total = 0
        self.nan_steps_in_row = 0
        self.best_metric: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.stop_requested: Optional[str] = None
        self.last_losses: Dict[str, float] = {}

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "model": self.detector.checkpoint_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loop": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                     "nan_steps_total": self.nan_steps_total, "nan_steps_in_row": self.nan_steps_in_row,
                     "best_metric": self.best_metric, "best_epoch": self.best_epoch},
            # Tensors only, so the checkpoint loads with weights_only=True.
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state_to_tensor(),
                    "python": torch.tensor(list(random.getstate()[1]), dtype=torch.int64),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def save(self, name: str) -> Path:
        path = self.run.checkpoint(name)
        if dist_utils.is_main_process():
            save_checkpoint(path, self.state_dict())
        dist_utils.barrier()
        return path

    def resume(self, path: Path) -> None:
        payload = load_checkpoint(path)
        self.detector.load_checkpoint_state(payload["model"], source=str(path))
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        loop = payload["loop"]
        self.epoch, self.step_in_epoch, self.global_step = loop["epoch"], loop["step_in_epoch"], loop["global_step"]
        self.nan_steps_total, self.nan_steps_in_row = loop["nan_steps_total"], loop["nan_steps_in_row"]
        self.best_metric, self.best_epoch = loop["best_metric"], loop["best_epoch"]
        _restore_rng(payload["rng"])
        log.info("Resumed from %s at epoch %d, step %d (global %d)", path, self.epoch + 1, self.step_in_epoch,
                 self.global_step)

    # -- loop --------------------------------------------------------------------------
    def train(self) -> None:
        previous_handlers = self._install_signal_handlers()
        try:
            for hook in self.hooks:
                hook.before_train(self)
            while self.epoch < self.cfg["epochs"] and not self._reached_max_steps():
                self._train_one_epoch()
                if self.stop_requested:
                    break
                self.epoch += 1
                self.step_in_epoch = 0
                for hook in self.hooks:
                    hook.after_epoch(self)
            for hook in self.hooks:  # also on a requested stop: flush logs, close writers
                hook.after_train(self)
        finally:
            self._restore_signal_handlers(previous_handlers)

    def _reached_max_steps(self) -> bool:
        return bool(self.cfg["max_steps"]) and self.global_step >= int(self.cfg["max_steps"])

    def _train_one_epoch(self) -> None:
        loader = self.train_loader
        loader.sampler.set_epoch(self.epoch, skip=self.step_in_epoch * loader.batch_size)
        loader.dataset.set_epoch(self.epoch)
        self.model.train()
        progress = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.cfg['epochs']}", leave=False,
                        disable=None if dist_utils.is_main_process() else True,  # None: off without a TTY
                        initial=self.step_in_epoch,
                        total=self.steps_per_epoch)
        for batch in progress:
            self.run_step(batch)
            self.step_in_epoch += 1
            self.global_step += 1
            for hook in self.hooks:
                hook.after_step(self)
            if self.last_losses:
                progress.set_postfix(loss=f"{self.last_losses.get('total', float('nan')):.4f}")
            every = self.cfg["checkpoint_every_steps"]
            if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                self.save("last")  # mid-epoch: a killed run resumes from here, skipping the batches done
            if self.stop_requested:
                self.save("last")
                log.warning("Stopped by %s at epoch %d step %d; saved %s. Resume with --resume.",
                            self.stop_requested, self.epoch + 1, self.step_in_epoch,  # 1-based, as in the log
                            self.run.last)
                return
            if self._reached_max_steps():
                return

    def run_step(self, batch: Dict[str, Any]) -> None:
        batch = move_batch(batch, self.device)
        progress = self.global_step / max(self.total_steps, 1)
        self.detector.set_training_progress(progress)
        with autocast_context(self.device, self.cfg["amp"]):
            out = self.model(batch)
            losses = self.detector.losses(batch, out)
        total = losses["total"]
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(total).all():
            self._skip_non_finite("loss", float(total.detach()))
            return
        total.backward()
        if self.cfg["grad_clip"]:
            norm = torch.nn.utils.clip_grad_norm_(self.detector.trainable_parameters(), self.cfg["grad_clip"])
            if not torch.isfinite(norm):
                self.optimizer.zero_grad(set_to_none=True)
                self._skip_non_finite("gradient norm", float(norm))
                return
        self.optimizer.step()
        self.scheduler.step()
        self.nan_steps_in_row = 0
        self.last_losses = {k: float(v.detach()) for k, v in losses.items()}

    def _skip_non_finite(self, what: str, value: float) -> None:
        """Skip the update; stop the run when it keeps happening (the last good checkpoint stays intact)."""
        self.nan_steps_total += 1
        self.nan_steps_in_row += 1
        log.warning("Non-finite %s (%s) at step %d: update skipped (%d in a row, %d in total).",
                    what, value, self.global_step, self.nan_steps_in_row, self.nan_steps_total)
        limit = int(self.cfg["max_consecutive_nan"])
        if self.nan_steps_in_row >= limit:
            raise NonFiniteLossError(
                f"Non-finite {what} for {self.nan_steps_in_row} steps in a row (limit "
                f"train.max_consecutive_nan={limit}), last at global step {self.global_step}. The last good "
                f"checkpoints in {self.run.checkpoints} are intact. Lower the learning rate, check "
                f"the data, or raise the limit.")

    # -- signals -----------------------------------------------------------------------
    def _install_signal_handlers(self):
        def request_stop(signum, _frame):
            self.stop_requested = signal.Signals(signum).name

        previous = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, request_stop)
        except ValueError:  # not in the main thread (e.g. some notebook runners)
            pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _numpy_state_to_tensor() -> torch.Tensor:
    """MT19937 keys followed by the position (np.random.get_state()[1:3]) as one int64 tensor."""
    _, keys, position, _, _ = np.random.get_state()
    return torch.from_numpy(np.append(np.asarray(keys, dtype=np.int64), position))


def _restore_rng(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"].numpy()
    np.random.set_state(("MT19937", numpy_state[:-1].astype(np.uint32), int(numpy_state[-1]), 0, 0.0))
    python_state = tuple(int(v) for v in state["python"].tolist())
    random.setstate((3, python_state, None))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def elapsed(start: float) -> str:
    return f"{time.time() - start:.1f}s"
