"""Run training/train.py with a fault injected at a given global step (used by the fault tests).

    python tests/faults/train_with_fault.py --kill-at STEP  <train.py args>   # SIGKILL itself
    python tests/faults/train_with_fault.py --signal-at STEP <train.py args>  # SIGTERM itself, keeps running
    python tests/faults/train_with_fault.py --slow-after STEP <train.py args> # sleep 0.5 s per step after STEP
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[2])

from training import train  # noqa: E402
from training.engine.trainer import Trainer  # noqa: E402


def main() -> int:
    mode, step = sys.argv[1], int(sys.argv[2])
    original = Trainer.run_step

    def run_step(self, batch):
        original(self, batch)
        if self.global_step + 1 == step:  # global_step is incremented right after run_step
            if mode == "--kill-at":
                os.kill(os.getpid(), signal.SIGKILL)
            elif mode == "--signal-at":
                os.kill(os.getpid(), signal.SIGTERM)
        if mode == "--slow-after" and self.global_step + 1 >= step:
            time.sleep(0.5)

    Trainer.run_step = run_step
    return train.main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
