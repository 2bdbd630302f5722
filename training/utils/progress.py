"""Progress of long loops, the same way in every tool: a tqdm bar (rate, ETA) on a terminal; without one
(a log file, a job scheduler, CI) a line with done/total, rate and ETA every ``every_seconds`` and one when the
loop ends, so a log shows a run is alive and when it will finish.

Lines go to the ``logging`` tree when it is configured (train.py: stderr and train.log), to stderr otherwise.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a log line, exact enough for an ETA."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def rate_and_eta(done: int, total: Optional[int], elapsed: float, unit: str = "it") -> str:
    """``2.50 it/s, ETA 40s`` (``s/it`` below one per second; no ETA without a total)."""
    if done <= 0 or elapsed <= 0:
        return f"? {unit}/s"
    per_second = done / elapsed
    rate = f"{per_second:.2f} {unit}/s" if per_second >= 1 else f"{1 / per_second:.2f} s/{unit}"
    if total is None:
        return rate
    return f"{rate}, ETA {format_duration(max(total - done, 0) / per_second)}"


def is_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """``update()`` once per item; ``close()`` at the end (or use :func:`track`)."""

    def __init__(self, total: Optional[int], description: str, unit: str = "it", every_seconds: float = 30.0,
                 enabled: bool = True, logger: Optional[logging.Logger] = None, initial: int = 0,
                 terminal: Optional[bool] = None):
        self.total, self.description, self.unit = total, description, unit
        self.every_seconds, self.enabled = every_seconds, enabled
        self.logger = logger or logging.getLogger("training.progress")
        self.done, self.initial = initial, initial
        self.start = self.last_line = time.monotonic()
        self.bar = None
        if enabled and (is_terminal() if terminal is None else terminal):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=description, unit=unit, initial=initial, leave=False,
                            file=sys.stderr, dynamic_ncols=True)

    def _emit(self, message: str) -> None:
        if logging.getLogger().hasHandlers() and self.logger.isEnabledFor(logging.INFO):
            self.logger.info(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def line(self) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = None if self.total is None else self.total - self.initial  # a resumed loop's rate: this session's
        timing = rate_and_eta(self.done - self.initial, left, time.monotonic() - self.start, self.unit)
        return f"{self.description}: {self.done}{total} {self.unit}{share}, {timing}"

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(**postfix, refresh=False)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every_seconds and (self.total is None or self.done < self.total):
            self.last_line = now
            self._emit(self.line())

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.done > self.initial:
            self._emit(f"{self.description}: {self.done - self.initial} {self.unit} in "
                       f"{format_duration(time.monotonic() - self.start)}")


def track(iterable: Iterable[T], total: Optional[int] = None, description: str = "", unit: str = "it",
          **options) -> Iterator[T]:
    """Iterate ``iterable`` under a :class:`Progress` (``total`` defaults to ``len(iterable)``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    progress = Progress(total, description, unit, **options)
    try:
        for item in iterable:
            yield item
            progress.update()
    finally:
        progress.close()
