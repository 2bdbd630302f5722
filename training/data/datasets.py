"""Torch datasets over :class:`VideoRecord` lists: single frames or clips.

Every sample carries ``video_key`` (``dataset/label/video``) and
``frame_index`` (the original frame number, from the file name) so the
evaluator can aggregate per video and drop duplicates without guessing.

Bad data is never papered over. ``strict=True`` (default): a bad frame raises
at ``__getitem__`` with the file name. ``strict=False``: a validation pass at
construction reads every sample once and drops the bad ones — counted in
``dataset.report`` and logged — so ``__getitem__`` never substitutes another
sample.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from training.errors import UserError

from .catalog import SkipReport, frame_index_of
from .records import VideoRecord
from .sampling import clip_positions, clip_starts, even_frame_positions, num_clips_for
from .storage import Storage, UnreadableFileError

log = logging.getLogger(__name__)

Transform = Callable[..., Dict[str, Optional[torch.Tensor]]]


class DataRequirementError(UserError, ValueError):
    """A record lacks data the dataset was asked for (masks, landmarks)."""


def build_identity_index(records: Iterable[VideoRecord]) -> Dict[str, int]:
    """Identity name → contiguous index (sorted, so stable across runs)."""
    return {name: index for index, name in
            enumerate(sorted({r.identity for r in records if r.identity is not None}))}


class _VideoSampleDataset(Dataset):
    """Shared reading, requirement checks and lenient validation."""

    def __init__(self, records: Sequence[VideoRecord], storage: Storage, transform: Transform, *,
                 with_mask: bool, with_landmarks: bool,
                 identity_to_index: Optional[Mapping[str, int]], strict: bool):
        self.records = list(records)
        self.storage = storage
        self.transform = transform
        self.with_mask = with_mask
        self.with_landmarks = with_landmarks
        self.identity_to_index = dict(identity_to_index or {})
        self.strict = strict
        self.report = SkipReport()

    # -- checks ---------------------------------------------------------------------------

    def _missing_requirement(self, record: VideoRecord) -> Optional[str]:
        if self.with_landmarks and record.landmarks is None:
            return "no landmarks listed in the dataset JSON, but the detector needs them"
        if self.with_mask and record.masks is None and record.label != 0:
            # Reals get an all-zero mask; a fake without one has no supervision to give.
            return "a fake video without masks, but the detector needs forgery masks"
        return None

    def _usable_records(self) -> List[int]:
        usable = []
        for index, record in enumerate(self.records):
            problem = self._missing_requirement(record)
            if problem is None:
                usable.append(index)
            elif self.strict:
                raise DataRequirementError(
                    f"{record.key}: {problem}. Use datasets that provide them, turn the requirement off "
                    f"in the detector's input spec, or use lenient mode (strict=False) to skip such videos.")
            else:
                self.report.add(record.key, problem)
        return usable

    def _problem_at(self, record: VideoRecord, position: int) -> Optional[str]:
        """Read one frame (and its mask/landmarks when needed); describe the first failure."""
        try:
            image = self.storage.read_image(record.frames[position], record.dataset)
            if self.with_mask and record.masks is not None:
                mask = self.storage.read_mask(record.masks[position], record.dataset)
                if mask.shape != image.shape[:2]:
                    return f"mask {record.masks[position]} is {mask.shape}, frame is {image.shape[:2]}"
            if self.with_landmarks:
                self.storage.read_landmarks(record.landmarks[position], record.dataset)
        except UnreadableFileError as error:
            return str(error)
        return None

    def _validate(self, jobs: Sequence[Tuple[VideoRecord, int]]) -> List[Optional[str]]:
        # Decoding releases the GIL, so a few threads speed this one-off pass up.
        workers = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda job: self._problem_at(*job), jobs))

    def reseed(self, seed: int) -> None:
        """Seed the transform's augmentations (called per sample by an epoch-seeding wrapper)."""
        if hasattr(self.transform, "reseed"):
            self.transform.reseed(seed)

    def _log_report(self) -> None:
        if self.report:
            log.warning("%s: %s", type(self).__name__, self.report.summary())

    # -- reading --------------------------------------------------------------------------

    def _identity(self, record: VideoRecord) -> int:
        return self.identity_to_index.get(record.identity, -1) if record.identity is not None else -1

    def _read_frame(self, record: VideoRecord, position: int
                    ) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        image = self.storage.read_image(record.frames[position], record.dataset)
        mask = landmarks = None
        if self.with_mask:
            if record.masks is not None:
                mask = self.storage.read_mask(record.masks[position], record.dataset)
            else:
                mask = np.zeros(image.shape[:2], np.uint8)  # a real video: nothing is manipulated
        if self.with_landmarks:
            landmarks = self.storage.read_landmarks(record.landmarks[position], record.dataset)
        return image, mask, landmarks

    def _apply_transform(self, record: VideoRecord, first_frame: str, image: Any, mask: Any,
                         landmarks: Any) -> Dict[str, Optional[torch.Tensor]]:
        try:
            return self.transform(image, mask=mask, landmarks=landmarks)
        except ValueError as error:
            raise ValueError(f"{record.key}, frame {first_frame}: {error}") from error

    def _base_sample(self, record: VideoRecord, out: Mapping[str, Optional[torch.Tensor]],
                     frame_index: int) -> Dict[str, Any]:
        sample: Dict[str, Any] = {
            "image": out["image"], "label": record.label, "video_key": record.key,
            "frame_index": frame_index, "dataset": record.dataset, "identity": self._identity(record),
        }
        if self.with_mask:
            sample["mask"] = out["mask"]
        if self.with_landmarks:
            sample["landmarks"] = out["landmarks"]
        return sample


class FrameDataset(_VideoSampleDataset):
    """One sample per (video, frame); ``frame_num`` frames spread evenly over each video."""

    def __init__(self, records: Sequence[VideoRecord], storage: Storage, transform: Transform,
                 frame_num: int, with_mask: bool = False, with_landmarks: bool = False,
                 identity_to_index: Optional[Mapping[str, int]] = None, strict: bool = True):
        super().__init__(records, storage, transform, with_mask=with_mask, with_landmarks=with_landmarks,
                         identity_to_index=identity_to_index, strict=strict)
        self.frame_num = frame_num
        samples = [(index, position) for index in self._usable_records()
                   for position in even_frame_positions(len(self.records[index].frames), frame_num)]
        if not strict:
            problems = self._validate([(self.records[i], p) for i, p in samples])
            for (index, position), problem in zip(samples, problems):
                if problem is not None:
                    self.report.add(self.records[index].frames[position], problem)
            samples = [sample for sample, problem in zip(samples, problems) if problem is None]
        self.samples: List[Tuple[int, int]] = samples
        self._log_report()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        record_index, position = self.samples[index]
        record = self.records[record_index]
        image, mask, landmarks = self._read_frame(record, position)
        out = self._apply_transform(record, record.frames[position], image, mask, landmarks)
        return self._base_sample(record, out, frame_index_of(record.frames[position]))


class ClipDataset(_VideoSampleDataset):
    """One sample per clip of ``clip_len`` consecutive frames; ``clips_per_video`` per video.

    ``frame_num > 0`` first reduces each video to that many frames spread
    evenly over it (as :class:`FrameDataset` does) and cuts clips from those;
    ``0`` (default) cuts clips from all listed frames. ``clips_per_video <= 0``
    takes every non-overlapping clip.

    Test clips are evenly spaced (deterministic). Train clips start at random
    offsets drawn from ``(seed, epoch, video)``; call :meth:`set_epoch` before
    each epoch. The epoch lives in shared memory so persistent DataLoader
    workers see it too. Videos shorter than ``clip_len`` yield one clip that
    repeats the last frame, flagged ``padded=True``. In lenient mode a video
    with any unreadable frame is dropped whole (a clip with a hole would fake a
    temporal discontinuity).
    """

    def __init__(self, records: Sequence[VideoRecord], storage: Storage, transform: Transform,
                 clip_len: int, clips_per_video: int, train: bool, with_mask: bool = False,
                 with_landmarks: bool = False, identity_to_index: Optional[Mapping[str, int]] = None,
                 strict: bool = True, seed: int = 0, frame_num: int = 0):
        super().__init__(records, storage, transform, with_mask=with_mask, with_landmarks=with_landmarks,
                         identity_to_index=identity_to_index, strict=strict)
        self.frame_num = frame_num
        # Per record: positions (into record.frames) the clips are cut from.
        self.frame_subsets = [even_frame_positions(len(r.frames), frame_num) for r in self.records]
        self.clip_len = clip_len
        self.clips_per_video = clips_per_video
        self.train = train
        self.seed = seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        usable = self._usable_records()
        if not strict:
            usable = self._drop_videos_with_bad_frames(usable)
        self.samples: List[Tuple[int, int]] = [
            (index, clip) for index in usable
            for clip in range(num_clips_for(len(self.frame_subsets[index]), clip_len, clips_per_video))]
        # Keys of videos shorter than one clip (their clip repeats the last frame): reported, never hidden.
        self.padded_videos: List[str] = [self.records[index].key for index in usable
                                         if len(self.frame_subsets[index]) < clip_len]
        if self.padded_videos:
            log.warning("ClipDataset: %d of %d video(s) are shorter than a %d-frame clip and were padded by "
                        "repeating their last frame, e.g. %s", len(self.padded_videos), len(usable), clip_len,
                        ", ".join(self.padded_videos[:3]))
        self._log_report()

    def _drop_videos_with_bad_frames(self, usable: List[int]) -> List[int]:
        jobs = [(self.records[index], position) for index in usable
                for position in self.frame_subsets[index]]
        problems = self._validate(jobs)
        kept, offset = [], 0
        for index in usable:
            n_frames = len(self.frame_subsets[index])
            bad = [problem for problem in problems[offset:offset + n_frames] if problem is not None]
            offset += n_frames
            if bad:
                self.report.add(self.records[index].key,
                                f"{len(bad)} unreadable frame(s), first: {bad[0]}")
            else:
                kept.append(index)
        return kept

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def clip_window(self, index: int) -> Tuple[List[int], bool]:
        """Frame positions of sample ``index`` this epoch, and whether it is padded."""
        record_index, clip = self.samples[index]
        subset = self.frame_subsets[record_index]
        # Seeded per (seed, epoch, video): workers agree without any shared state but the epoch.
        rng = np.random.default_rng([self.seed, self.epoch, record_index])
        plan = clip_starts(len(subset), self.clip_len, self.clips_per_video, self.train, rng)
        window = clip_positions(plan.starts[clip], self.clip_len, len(subset))
        return [subset[i] for i in window], plan.padded

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        record_index, clip = self.samples[index]
        record = self.records[record_index]
        positions, padded = self.clip_window(index)
        frames = [self._read_frame(record, position) for position in positions]
        images, masks, landmarks = (list(parts) for parts in zip(*frames))
        out = self._apply_transform(record, record.frames[positions[0]], images,
                                    masks if self.with_mask else None,
                                    landmarks if self.with_landmarks else None)
        sample = self._base_sample(record, out, frame_index_of(record.frames[positions[0]]))
        sample["clip_index"] = clip
        sample["padded"] = padded
        return sample


def _shared_batch_buffer(values: Sequence[torch.Tensor]) -> Optional[torch.Tensor]:
    """In a DataLoader worker, stack straight into shared memory (as torch's default_collate
    does): the batch then reaches the main process without one more full copy."""
    if torch.utils.data.get_worker_info() is None:
        return None
    first = values[0]
    storage = first._typed_storage()._new_shared(len(values) * first.numel(), device=first.device)
    return first.new(storage).resize_(len(values), *first.shape)


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Stack tensors, turn ints/bools into tensors, keep strings as lists."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    batch: Dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            shapes = {tuple(value.shape) for value in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch '{key}': samples have shapes {sorted(shapes)} "
                                 f"(e.g. 68- and 81-point landmarks mixed in one batch)")
            batch[key] = torch.stack(values, out=_shared_batch_buffer(values))
        elif isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, int):
            batch[key] = torch.tensor(values, dtype=torch.long)
        else:
            batch[key] = list(values)
    return batch
