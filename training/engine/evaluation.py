"""Run a detector over loaders and evaluate: shared by validation, train.py and test.py."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional

import torch
from torch import nn

from training.engine.distributed import is_main_process
from training.engine.precision import autocast_context
from training.utils.progress import track


def move_batch(batch: Dict, device: torch.device) -> Dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def predict_loader(model: nn.Module, loader: Iterable, evaluator, device: torch.device, amp: str = "auto",
                   description: Optional[str] = None) -> None:
    """Feed every batch of ``loader`` through ``model`` into ``evaluator.process``."""
    model.eval()
    # A bar on a terminal, else a line with the ETA every 30 s: a long test set is not silent.
    progress = track(loader, description=description or "", unit="batches",
                     enabled=is_main_process() and description is not None)
    for batch in progress:
        batch = move_batch(batch, device)
        with autocast_context(device, amp):
            out = model(batch)
        evaluator.process(batch, {k: v.float() if torch.is_tensor(v) else v for k, v in out.items()})


def evaluate_datasets(model: nn.Module, loaders: Dict[str, Iterable], out_dir: Path, device: torch.device,
                      amp: str = "auto", save_features: bool = False,
                      video_aggregation: str = "mean") -> Dict[str, Dict]:
    """Evaluate each named loader; writes ``out_dir/<dataset>/{predictions.csv,metrics.json}``.

    ``video_aggregation`` (mean | median) turns a video's frame scores into its score."""
    from training.engine.evaluator import Evaluator

    results = {}
    for name, loader in loaders.items():
        evaluator = Evaluator(name, Path(out_dir) / name, save_features=save_features,
                              video_aggregation=video_aggregation)
        evaluator.reset()
        predict_loader(model, loader, evaluator, device, amp, description=f"eval {name}")
        results[name] = evaluator.evaluate()
    return results
