"""Paired and unpaired training subsets (GenD's first finding, WACV 2026).

A *pair* is a fake and the real video it was made from (its ``source``, written into
the dataset JSON by the adapters: FF++ ``000_003`` from ``000``, its target; Celeb-DF
``id0_id1_0000`` from ``id0_0000``; FakeAVCeleb from ``meta_data.csv``).

``data.pairing`` selects the training records:

* ``all``: every training video (default; nothing changes).
* ``paired``: the source videos that have fakes are shuffled (``data.pairing_seed``,
  default ``train.seed``) and cut into halves A and B. Training keeps the reals of A
  and fakes made from A: every fake's source real is present, and every kept real
  has one of its fakes whenever the fake budget allows.
* ``unpaired``: the same reals of A, but fakes made from B: no kept fake has its
  source among the kept reals.

Both keep the same reals and the same number of fakes (the smaller of the two halves'
fake counts, taken round-robin over source videos), so the two settings differ only
in the pairing. GenD builds the same two conditions as file lists per seed
(``src/exp/wacv_rebuttal_paired_unpaired.py``: ``subset/paired-unpaired/split-{seed}/
{paired,unpaired}``, 20 seeds, FF++, Celeb-DF-v2 and FakeAVCeleb); its lists are not
published, so the halving rule above is ours. Reals with no fake (Celeb-DF's
YouTube-real, absent from GenD's Celeb-DF lists too) and fakes whose source is not a
training real are left out of both settings and counted.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

PAIRINGS = ("all", "paired", "unpaired")


class PairingError(ValueError):
    """The training data cannot be paired (no source information, too few source videos)."""


@dataclass
class PairingSummary:
    mode: str
    seed: int
    reals: int = 0
    fakes: int = 0
    dropped_reals: int = 0  # reals with no fake made from them
    dropped_fakes: int = 0  # fakes whose source is not a training real
    unused_fakes: int = 0  # fakes beyond the shared budget (or of the other half)

    def line(self) -> str:
        return (f"data.pairing={self.mode} (seed {self.seed}): {self.reals} reals + {self.fakes} fakes kept; "
                f"left out: {self.dropped_reals} reals without fakes, {self.dropped_fakes} fakes without their "
                f"source real, {self.unused_fakes} fakes of the other half or beyond the shared count")


def source_index(data_root, names: Sequence[str], split: str, compression: Optional[str],
                 json_dir=None) -> Dict[str, str]:
    """``{record key: source video}`` for every fake of ``split`` whose JSON record has ``source``.

    Read from the JSON (not from :class:`VideoRecord`) so only this module knows the field."""
    from training.data.catalog import iter_raw_videos, load_dataset_json

    found: Dict[str, str] = {}
    for name in names:
        tree = load_dataset_json(data_root, name, json_dir) if json_dir else load_dataset_json(data_root, name)
        for group, video, entry, _ in iter_raw_videos(tree, name, split, compression):
            if isinstance(entry, dict) and entry.get("source") is not None:
                found[f"{name}/{entry.get('label', group)}/{video}"] = str(entry["source"])
    return found


def _round_robin(fakes_by_source: Mapping[str, List], sources: Sequence[str], budget: int,
                 rng: random.Random) -> List:
    """``budget`` fakes, one per source in turn (shuffled order), so each source keeps one if it can."""
    queues = []
    for source in sources:
        queue = sorted(fakes_by_source[source], key=lambda record: record.key)
        rng.shuffle(queue)
        queues.append(queue)
    chosen, layer = [], 0
    while len(chosen) < budget and any(layer < len(queue) for queue in queues):
        chosen.extend(queue[layer] for queue in queues if layer < len(queue))
        layer += 1
    return chosen[:budget]


def _select_one(dataset: str, records: Sequence, sources: Mapping[str, str], mode: str,
                rng: random.Random, summary: PairingSummary) -> set:
    reals = {record.video: record for record in records if record.label == 0}
    fakes_by_source: Dict[str, List] = defaultdict(list)
    unknown = [record.key for record in records if record.label == 1 and record.key not in sources]
    if unknown:
        raise PairingError(
            f"data.pairing={mode}: {len(unknown)} training fake(s) of {dataset} have no 'source' in "
            f"json/{dataset}.json (e.g. {unknown[0]}). Regenerate the JSON with `python -m "
            f"preprocessing.rearrange` (the adapters of FF++, FaceShifter, Celeb-DF, Celeb-DF++, DFDC, UADFV, "
            f"DFD and FakeAVCeleb write it), or set data.pairing=all.")
    for record in records:
        if record.label == 1:
            source = sources[record.key]
            if source in reals:
                fakes_by_source[source].append(record)
            else:
                summary.dropped_fakes += 1
    groups = sorted(fakes_by_source)
    summary.dropped_reals += len(reals) - len(groups)
    if len(groups) < 2:
        raise PairingError(f"data.pairing={mode}: {dataset} has {len(groups)} training real video(s) with fakes "
                           f"made from them; splitting into paired and unpaired halves needs at least 2.")
    rng.shuffle(groups)
    half = math.ceil(len(groups) / 2)
    kept_sources, other_sources = groups[:half], groups[half:]
    budget = min(sum(len(fakes_by_source[s]) for s in kept_sources),
                 sum(len(fakes_by_source[s]) for s in other_sources))
    fake_sources = kept_sources if mode == "paired" else other_sources
    chosen_fakes = _round_robin(fakes_by_source, fake_sources, budget, rng)
    total_matched = sum(len(v) for v in fakes_by_source.values())
    summary.reals += len(kept_sources)
    summary.fakes += len(chosen_fakes)
    summary.unused_fakes += total_matched - len(chosen_fakes)
    return {reals[source].key for source in kept_sources} | {record.key for record in chosen_fakes}


def select_pairing(records: Sequence, sources: Mapping[str, str], mode: str,
                   seed: int) -> Tuple[List, PairingSummary]:
    """The training records of ``mode`` (see the module docstring), in their original order."""
    if mode not in PAIRINGS:
        raise PairingError(f"data.pairing must be one of {', '.join(PAIRINGS)}, got {mode!r}.")
    summary = PairingSummary(mode, int(seed))
    if mode == "all":
        summary.reals = sum(1 for r in records if r.label == 0)
        summary.fakes = len(records) - summary.reals
        return list(records), summary
    by_dataset: Dict[str, List] = defaultdict(list)
    for record in records:
        by_dataset[record.dataset].append(record)
    keep = set()
    for dataset in sorted(by_dataset):  # one halving per dataset, each from its own seeded stream
        rng = random.Random(f"pairing/{seed}/{dataset}")
        keep |= _select_one(dataset, by_dataset[dataset], sources, mode, rng, summary)
    return [record for record in records if record.key in keep], summary


def apply_pairing(config, names: Sequence[str], records: Sequence) -> List:
    """The config's ``data.pairing`` applied to the training ``records`` of datasets ``names``."""
    import logging

    data = config["data"]
    mode = data.get("pairing", "all")
    if mode == "all":
        return list(records)
    seed = data.get("pairing_seed")
    seed = config["train"]["seed"] if seed is None else seed
    sources = source_index(data["root"], names, "train", data["compression"], data.get("json_dir"))
    chosen, summary = select_pairing(records, sources, mode, seed)
    logging.getLogger(__name__).info(summary.line())
    return chosen
