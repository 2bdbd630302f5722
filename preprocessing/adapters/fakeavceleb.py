"""FakeAVCeleb v1.2 (Khalid et al., NeurIPS 2021 datasets track; DASH-Lab/FakeAVCeleb), video track only.

Layout (the release, after preprocessing every identity folder)::

    <root>/meta_data.csv
    <root>/<category>/<race>/<gender>/<id>/<file>.mp4   ->  .../<id>/frames/<file stem>/

``<category>`` is one of the four audio-video categories: ``RealVideo-RealAudio``
(A), ``RealVideo-FakeAudio`` (B), ``FakeVideo-RealAudio`` (C), ``FakeVideo-FakeAudio``
(D). meta_data.csv has the columns ``source, target1, target2, method, category,
type, race, gender`` then the file name and its folder (the header names the file
column ``path`` and leaves the folder column unnamed; both are read by position).

Labels come from the *video track*: RV-RA is real, FV-RA and FV-FA are fake. RV-FA
(real video, cloned voice) shows exactly the frames of a real video and is left out,
as in GenD's lists (config/datasets/FakeAVCeleb/*.txt: RV-RA real, FV-RA and FV-FA
fakes). A fake ``<id>/<nnnnn>_...`` is a manipulated copy of the real video
``RealVideo-RealAudio/<race>/<gender>/<id>/<nnnnn>`` (``source`` = that video's key;
identity = ``source`` column). There is no official split:

* ``FakeAVCeleb.json``: train/val/test by identity, seeded (``--option split_seed=N``,
  default 0; 80/10/10 of the ``source`` identities). A face-swap fake also shows its
  ``target1`` face, so it is kept only when both identities fall in one split
  (reported otherwise): no face is shared between splits.
* ``FakeAVCeleb-all.json``: every video in ``test``, GenD's cross-dataset protocol,
  and its subsets ``FakeAVCeleb-FV-RA-WL``, ``-FV-FA-FS``, ``-FV-FA-GAN``, ``-FV-FA-WL``
  (GenD's FAVC columns; each with all RV-RA reals).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, require_file, split_of_group
from .scan import int_option, seeded_split, split_note

REAL_LABEL, FAKE_LABEL = "FakeAVCeleb_real", "FakeAVCeleb_fake"
REAL_TYPE, SKIPPED_TYPE = "RealVideo-RealAudio", "RealVideo-FakeAudio"
TYPES = (REAL_TYPE, SKIPPED_TYPE, "FakeVideo-RealAudio", "FakeVideo-FakeAudio")
SWAP_METHODS = ("faceswap", "fsgan")  # methods that paste target1's face into the video
# GenD's per-category test sets: (name, type, method)
SUBSETS = (("FV-RA-WL", "FakeVideo-RealAudio", "wav2lip"), ("FV-FA-FS", "FakeVideo-FakeAudio", "faceswap-wav2lip"),
           ("FV-FA-GAN", "FakeVideo-FakeAudio", "fsgan-wav2lip"), ("FV-FA-WL", "FakeVideo-FakeAudio", "wav2lip"))


@dataclass(frozen=True)
class Row:
    source: str
    target1: str
    method: str
    type: str
    race: str
    gender: str
    filename: str

    @property
    def folder(self) -> str:
        return f"{self.type}/{self.race}/{self.gender}/{self.source}"

    @property
    def key(self) -> str:
        return f"{self.folder}/{Path(self.filename).stem}"

    @property
    def is_fake(self) -> bool:
        return self.type.startswith("FakeVideo")

    def source_video(self) -> Optional[str]:
        if not self.is_fake:
            return None
        return f"{REAL_TYPE}/{self.race}/{self.gender}/{self.source}/{Path(self.filename).stem.split('_')[0]}"

    def identities(self) -> List[str]:
        swapped = any(m in self.method for m in SWAP_METHODS) and self.target1.startswith("id")
        return [self.source, self.target1] if swapped else [self.source]


def read_metadata(path: Path) -> List[Row]:
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or [h.strip() for h in header[:6]] != ["source", "target1", "target2", "method", "category",
                                                             "type"]:
            raise AdapterError(f"{path}: expected the header 'source,target1,target2,method,category,type,race,"
                               f"gender,...' of FakeAVCeleb's meta_data.csv, got {header}. Use the release's file.")
        for number, fields in enumerate(reader, start=2):
            fields = [f.strip() for f in fields]
            while fields and not fields[-1]:
                fields.pop()  # the trailing comma of every line
            if not fields:
                continue
            if len(fields) < 9 or fields[5] not in TYPES:
                raise AdapterError(f"{path}, line {number}: expected source, target1, target2, method, category, "
                                   f"type (one of {', '.join(TYPES)}), race, gender, file name[, folder]; "
                                   f"got {fields}.")
            rows.append(Row(fields[0], fields[1], fields[3], fields[5], fields[6], fields[7], fields[8]))
    return rows


@DATASET_ADAPTERS.register("FakeAVCeleb")
def fakeavceleb(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    rows = read_metadata(require_file(root / "meta_data.csv", "FakeAVCeleb metadata",
                                      f"It ships at the top of the FakeAVCeleb_v1.2 release; place it in {root}."))
    kept = [row for row in rows if row.type != SKIPPED_TYPE]
    seed = int_option(context.options, "split_seed", 0)
    assignment = seeded_split({identity for row in kept for identity in row.identities()}, seed)
    split_builder = IndexBuilder(context, "FakeAVCeleb", [REAL_LABEL, FAKE_LABEL])
    all_builder = IndexBuilder(context, "FakeAVCeleb-all", [REAL_LABEL, FAKE_LABEL])
    crossing = 0
    for row in kept:
        label = FAKE_LABEL if row.is_fake else REAL_LABEL
        common = dict(video=row.key, identity=row.source, source=row.source_video())
        name = Path(row.filename).stem
        if not all_builder.add(label, "test", root / row.folder, name, **common):
            continue
        split = split_of_group(row.identities(), assignment)
        if split is None:
            crossing += 1
        else:
            split_builder.add(label, split, root / row.folder, name, **common)
    hints = {REAL_LABEL: root / REAL_TYPE, FAKE_LABEL: root / "FakeVideo-FakeAudio"}
    all_builder.check_labels(hints)
    notes = all_builder.notes() + [split_note("FakeAVCeleb", assignment, seed)]
    skipped = len(rows) - len(kept)
    if skipped:
        notes.append(f"FakeAVCeleb: {skipped} {SKIPPED_TYPE} video(s) left out (their video track is real)")
    if crossing:
        notes.append(f"FakeAVCeleb: {crossing} face-swap fake(s) show faces of two splits; left out of "
                     f"FakeAVCeleb.json (they are in FakeAVCeleb-all.json)")
    indexes: Dict[str, dict] = {"FakeAVCeleb": split_builder.json(), "FakeAVCeleb-all": all_builder.json()}
    by_key = {row.key: row for row in kept}
    for suffix, kind, method in SUBSETS:
        name = f"FakeAVCeleb-{suffix}"
        fakes = {video: record for video, record in all_builder.tree[FAKE_LABEL]["test"].items()
                 if by_key[video].type == kind and by_key[video].method == method}
        indexes[name] = {name: {REAL_LABEL: all_builder.tree[REAL_LABEL],
                                FAKE_LABEL: {"train": {}, "val": {}, "test": fakes}}}
    return AdapterResult(indexes, notes)
