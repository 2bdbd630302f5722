"""Trainer hooks (detectron2 style): validation + checkpoints, TensorBoard, logging."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

from training.engine import distributed as dist_utils
from training.metrics import get_metric
from training.utils.atomic import atomic_write_json

log = logging.getLogger(__name__)


class Hook:
    def before_train(self, trainer) -> None:
        pass

    def after_step(self, trainer) -> None:
        pass

    def after_epoch(self, trainer) -> None:
        pass

    def after_train(self, trainer) -> None:
        pass


class ValidationCheckpointHook(Hook):
    """After every ``val_every_epochs`` epochs: evaluate the *validation* split,
    save ``best.pt`` when the mean selection metric improves (higher, or lower for EER:
    the direction is the metric's entry in training/metrics.py), and always ``last.pt``.

    With ``val_every_epochs: 0`` there is no validation and best.pt is the final model.
    """

    def __init__(self, val_loaders: Dict[str, Iterable], every_epochs: int, metric: str):
        self.val_loaders, self.every_epochs, self.metric = val_loaders, every_epochs, metric

    def after_epoch(self, trainer) -> None:
        from training.engine.evaluation import evaluate_datasets

        finished = trainer.epoch >= trainer.config["train"]["epochs"] or trainer._reached_max_steps()
        due = self.every_epochs and (trainer.epoch % self.every_epochs == 0 or finished)
        if due and self.val_loaders:
            start = time.time()
            results = evaluate_datasets(trainer.model, self.val_loaders, trainer.run.val, trainer.device,
                                        trainer.config["train"]["amp"],
                                        video_aggregation=trainer.config["train"]["val_video_aggregation"])
            score = sum(r[self.metric] for r in results.values()) / len(results)
            improved = get_metric(self.metric).better(score, trainer.best_metric)
            if improved:
                trainer.best_metric, trainer.best_epoch = score, trainer.epoch
            entry = {"epoch": trainer.epoch, "global_step": trainer.global_step, f"mean_{self.metric}": score,
                     "improved": improved, "metrics": results}
            self._append_history(trainer.run.val_history, entry)
            log.info("epoch %d validation: mean %s %.4f%s (%.1fs)", trainer.epoch, self.metric, score,
                     " (best)" if improved else "", time.time() - start)
            for hook in trainer.hooks:
                if isinstance(hook, TensorboardHook):
                    hook.log_validation(trainer, results, score, self.metric)
            if improved:
                trainer.save("best")
        elif not self.every_epochs:
            trainer.best_epoch = trainer.epoch
            trainer.save("best")
        trainer.save("last")

    @staticmethod
    def _append_history(path: Path, entry: Dict) -> None:
        if not dist_utils.is_main_process():
            return
        history = json.loads(path.read_text()) if path.exists() else []
        history.append(entry)
        atomic_write_json(path, history)


class TensorboardHook(Hook):
    """Scalars under ``runs/<run>/tb``: train/loss parts and lr every ``log_every`` steps, val metrics."""

    def __init__(self, log_dir: Path, log_every: int):
        self.log_dir, self.log_every = Path(log_dir), max(int(log_every), 1)
        self.writer = None

    def before_train(self, trainer) -> None:
        if dist_utils.is_main_process():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def after_step(self, trainer) -> None:
        if self.writer is None or trainer.global_step % self.log_every:
            return
        for name, value in trainer.last_losses.items():
            self.writer.add_scalar(f"train/loss_{name}", value, trainer.global_step)
        self.writer.add_scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], trainer.global_step)
        self.writer.add_scalar("train/non_finite_steps", trainer.nan_steps_total, trainer.global_step)

    def log_validation(self, trainer, results: Dict[str, Dict], score: float, metric: str) -> None:
        if self.writer is None:
            return
        for dataset, metrics in results.items():
            for name, value in metrics.items():
                if not get_metric(name).is_count:
                    self.writer.add_scalar(f"val/{dataset}/{name}", value, trainer.global_step)
        self.writer.add_scalar(f"val/mean_{metric}", score, trainer.global_step)
        self.writer.flush()

    def after_train(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()


class LoggingHook(Hook):
    """A line in train.log every ``log_every`` steps (losses that count, time per step, ETA) and a summary per
    epoch. Epochs are numbered from 1 here, on the progress bar and in val_history.json alike."""

    def __init__(self, log_every: int):
        self.log_every = max(int(log_every), 1)
        self.epoch_start: Optional[float] = None
        self.session_start: Optional[Tuple[float, int]] = None  # (time, global step) of this process's first step

    def after_step(self, trainer) -> None:
        from training.utils.progress import format_duration

        now = time.time()
        if self.epoch_start is None:
            self.epoch_start = now
        if self.session_start is None:  # rates count this process's steps only (a resumed run starts late)
            self.session_start = (now, trainer.global_step - 1)
        if trainer.global_step % self.log_every == 0 and trainer.last_losses:
            parts = " ".join(f"{k}={v:.4f}" for k, v in trainer.last_losses.items())
            started, first_step = self.session_start
            done = trainer.global_step - first_step
            per_step = (now - started) / (done - 1) if done > 1 else float("nan")  # steps since the first
            timing = "" if per_step != per_step else \
                f" {per_step:.2f}s/step ETA {format_duration(per_step * (trainer.total_steps - trainer.global_step))}"
            log.info("epoch %d/%d step %d/%d global %d/%d lr %.3g%s %s", trainer.epoch + 1,
                     trainer.cfg["epochs"], trainer.step_in_epoch, trainer.steps_per_epoch, trainer.global_step,
                     trainer.total_steps, trainer.optimizer.param_groups[0]["lr"], timing, parts)

    def after_epoch(self, trainer) -> None:
        # after_epoch runs once trainer.epoch counts the finished epoch: it is that epoch's 1-based number
        took = time.time() - self.epoch_start if self.epoch_start else 0.0
        log.info("epoch %d/%d done in %.1fs (non-finite steps skipped so far: %d)", trainer.epoch,
                 trainer.cfg["epochs"], took, trainer.nan_steps_total)
        self.epoch_start = None
