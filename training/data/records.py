"""The plain record every dataset is reduced to (see DESIGN.md, Interfaces)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class VideoRecord:
    """One video of one dataset split, as listed in the dataset JSON.

    ``key`` is ``dataset/label_name/video`` and is unique across everything the
    framework loads: video-level metrics group frames by it, never by the
    folder name alone (FF++ methods reuse folder names such as ``000_003``).
    Paths are as stored in the JSON: relative to the data root (``/``-separated)
    or absolute.
    """

    dataset: str
    label_name: str
    label: int  # 0 real, 1 fake
    split: str  # train | val | test
    video: str
    frames: Tuple[str, ...]  # sorted by integer frame index (file stem)
    masks: Optional[Tuple[str, ...]] = None  # aligned with frames
    landmarks: Optional[Tuple[str, ...]] = None  # aligned with frames
    identity: Optional[str] = None
    compression: Optional[str] = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.label_name}/{self.video}"
