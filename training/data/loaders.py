"""DataLoaders built from a config: records → dataset → sharded sampler → batches.

Sampling is a pure function of (seed, epoch, rank, world size), and each
sample's augmentation is seeded from (seed, epoch, index). So a run resumed in
the middle of an epoch sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import logging
import math
import random
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training.config import Config, as_list
from training.errors import ConfigError
from training.models.input_spec import InputSpec

log = logging.getLogger(__name__)


class ShardedSampler(Sampler):
    """Deterministic, resumable sampler that shards indices over DDP ranks.

    Like ``DistributedSampler`` with ``drop_last=False`` it pads the index list
    by repeating its start so every rank gets the same number of samples; the
    evaluator removes the padded duplicates by (video_key, frame_index).
    """

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip = 0
        self.per_rank = math.ceil(size / world_size) if size else 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order; ``skip`` drops this rank's first samples (mid-epoch resume)."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        # Repeat the order as often as needed (as DistributedSampler does): with fewer samples
        # than ranks one repeat is not enough, and a rank short of batches would hang DDP.
        while len(order) < total:
            order += order[: total - len(order)]
        return iter(order[self.rank:total:self.world_size][self.skip:])

    def __len__(self) -> int:
        return max(self.per_rank - self.skip, 0)


class EpochSeededDataset(Dataset):
    """Seeds python/numpy/torch RNGs from (seed, epoch, index) before each sample.

    Augmentations then depend on the sample and epoch only, not on which worker
    loads it or on what was loaded before (a requirement for exact resume).
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed
        # Shared memory: persistent DataLoader workers hold their own copy of this
        # object, and must still see the epoch the main process sets.
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample_seed = (self.seed * 1_000_003 + self.epoch * 7_919 + index) % (2 ** 31)
        random.seed(sample_seed)
        np.random.seed(sample_seed)
        # The CPU generator only: torch.manual_seed also seeds CUDA/XPU lazily, recording a
        # stack trace on every call (~1 ms per sample in CPU-only workers).
        torch.random.default_generator.manual_seed(sample_seed)
        if hasattr(self.dataset, "reseed"):
            self.dataset.reseed(sample_seed)
        return self.dataset[index]

    def __getattr__(self, name):  # records, report ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def load_records(config: Config, names: Sequence[str], split: str):
    from training.data.catalog import build_records

    data = config["data"]
    records = []
    for name in names:
        records.extend(build_records(name, split, data_root=data["root"], label_dict=data["label_dict"],
                                     compression=data["compression"], strict=data["strict"],
                                     json_dir=data["json_dir"]))
    if split == "train" and data.get("pairing", "all") != "all":  # paired/unpaired subsets (data/pairing.py)
        from training.data.pairing import apply_pairing

        records = apply_pairing(config, names, records)
    return records


def capped_by_label(records, cap: int):
    """At most ``cap`` videos, taken round-robin over the labels (real, then each fake
    label) so a capped validation set keeps both classes; deterministic."""
    groups: Dict[str, list] = {}
    for record in records:
        groups.setdefault(record.label_name, []).append(record)
    queues = [groups[name] for name in sorted(groups)]
    chosen, i = [], 0
    while len(chosen) < cap and any(i < len(q) for q in queues):
        chosen.extend(q[i] for q in queues if i < len(q))
        i += 1
    return chosen[:cap]


def identity_index(records) -> Dict[str, int]:
    return {identity: i for i, identity in enumerate(sorted({r.identity for r in records if r.identity}))}


def build_dataset(config: Config, names: Sequence[str], split: str, spec: InputSpec, train: bool,
                  records=None, identity_to_index: Optional[Dict[str, int]] = None,
                  perturbation=None) -> Dataset:
    """One dataset over all videos of ``names``/``split`` (frames or clips, per the input spec).

    ``perturbation`` (a :class:`training.data.perturbations.Perturbation`) degrades every
    frame as it is read (robustness tests); masks and landmarks are read unchanged."""
    from training.data.datasets import ClipDataset, FrameDataset
    from training.data.storage import build_storage
    from training.data.transforms import build_transform

    data = config["data"]
    records = records if records is not None else load_records(config, names, split)
    if not records:
        raise ValueError(f"No videos in split '{split}' of datasets {list(names)}; check data.root "
                         f"({data['root']}) and the dataset JSON files.")
    stage = "train" if train else ("val" if split == "val" else "test")
    storage = build_storage(data["storage"], data["root"], data["lmdb_dir"])
    check_cache_geometry(storage, names, spec, train, (config["augment"] or {}).get("order", "reference"))
    if perturbation is not None:
        from training.data.perturbations import PerturbedStorage

        storage = PerturbedStorage(storage, perturbation)
    transform = build_transform(config["augment"] if train else {}, spec, train)
    # Masks supervise training losses only; test sets (e.g. Celeb-DF) often have none.
    with_mask = spec.with_mask and train
    self_blend = data.get("self_blend") or {}
    if train and self_blend.get("enabled"):
        if spec.frames_per_sample > 1:
            raise ConfigError("data.self_blend blends single frames; this detector takes clips of "
                             f"{spec.frames_per_sample} frames. Disable data.self_blend for it.")
        from training.data.self_blend import build_self_blend_dataset

        return build_self_blend_dataset(records, storage, transform, self_blend,
                                        frame_num=data["frame_num"][stage], with_mask=with_mask,
                                        with_landmarks=spec.with_landmarks,
                                        identity_to_index=identity_to_index, strict=data["strict"])
    if spec.frames_per_sample > 1:
        # Clips are T consecutive frames of the preprocessed video (all its frames are used).
        return ClipDataset(records, storage, transform, clip_len=spec.frames_per_sample,
                           clips_per_video=data["clips_per_video"][stage], train=train,
                           frame_num=0, with_mask=with_mask,
                           with_landmarks=spec.with_landmarks, identity_to_index=identity_to_index,
                           strict=data["strict"], seed=config["train"]["seed"])
    return FrameDataset(records, storage, transform, frame_num=data["frame_num"][stage],
                        with_mask=with_mask, with_landmarks=spec.with_landmarks,
                        identity_to_index=identity_to_index, strict=data["strict"])


def check_cache_geometry(storage, names: Sequence[str], spec: InputSpec, train: bool, order: str) -> None:
    """Warn when a pre-resized cache (preprocessing/resize_cache.py) was made for another geometry,
    or training augments before the resize: its samples then differ from the stored crops'."""
    from training.data.storage import LmdbStorage
    from training.data.transforms import geometry_record, reference_order

    if not isinstance(storage, LmdbStorage):
        return
    for name in names:
        cached = storage.cache_geometry(name)
        if cached is None:
            continue
        if cached != geometry_record(spec):
            log.warning("%s: the decoded cache at %s was pre-resized for %s, this detector resizes for %s; "
                        "its samples differ from resizing the stored crops. Rebuild it with "
                        "preprocessing.resize_cache --detector_path <this detector's YAML>, or without it.",
                        name, storage.data_root, cached, geometry_record(spec))
        elif train and (reference_order(spec) if order == "reference" else order) == "augment_first":
            log.warning("%s: the decoded cache at %s is pre-resized, but this detector augments before "
                        "its resize (augment.order %s): training augments at the cached size. Rebuild "
                        "the cache without --detector_path.", name, storage.data_root, order)


def build_loader(config: Config, dataset: Dataset, batch_size: int, train: bool, rank: int = 0,
                 world_size: int = 1, device: torch.device = torch.device("cpu")) -> DataLoader:
    from training.data.datasets import collate_samples
    from training.engine.performance import loader_workers

    seed = config["train"]["seed"]
    seeded = EpochSeededDataset(dataset, seed)
    sampler = ShardedSampler(len(seeded), shuffle=train, seed=seed, rank=rank, world_size=world_size)
    workers = loader_workers(config["data"]["num_workers"])
    return DataLoader(seeded, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_samples, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                      drop_last=False)


def dataset_names(config: Config, key: str) -> List[str]:
    return [str(n) for n in as_list(config["data"][key])]


def data_report(dataset: Dataset, name: str, split: str) -> Dict[str, object]:
    """What a built dataset holds and what it had to change: videos, samples, the videos
    padded to one clip (clip datasets) and what lenient mode skipped. Written next to the
    test predictions (``data_report.json``) and logged, so nothing is altered unseen."""
    from training.data.datasets import ClipDataset

    inner = getattr(dataset, "dataset", dataset)  # unwrap EpochSeededDataset
    report: Dict[str, object] = {"dataset": name, "split": split,
                                 "n_videos": len({record for record, _ in inner.samples}),
                                 "n_samples": len(inner)}
    if isinstance(inner, ClipDataset):
        padded = list(inner.padded_videos)
        report.update(sample="clip", clip_len=inner.clip_len, clips_per_video=inner.clips_per_video,
                      n_padded_videos=len(padded), padded_videos=padded)
    else:
        report.update(sample="frame", frame_num=inner.frame_num)
    report["n_skipped"] = len(inner.report)
    report["skipped"] = [f"{item.what}: {item.reason}" for item in inner.report.skipped]
    return report


def log_data_report(report: Dict[str, object]) -> None:
    unit = f"clips of {report['clip_len']} frames" if report["sample"] == "clip" else "frames"
    line = (f"{report['dataset']} {report['split']}: {report['n_videos']} videos, "
            f"{report['n_samples']} {unit}")
    if report["sample"] == "clip":
        line += (f"; {report['n_padded_videos']} video(s) shorter than a clip padded by repeating "
                 f"their last frame")
    if report["n_skipped"]:
        line += f"; {report['n_skipped']} item(s) skipped (lenient mode)"
    (log.warning if report.get("n_padded_videos") or report["n_skipped"] else log.info)(line)
