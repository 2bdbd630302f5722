"""DF40 (Yan et al., NeurIPS 2024; YZY-stack/DF40), as it ships for DeepfakeBench.

DF40 is distributed already preprocessed (frames and face crops), fake videos
only, one folder per method and source domain (FF++ or Celeb-DF)::

    <root>/train/<method>/ff/frames/<video>/       DF40 training data (FF++ domain)
    <root>/test/<method>/<ff|cdf>/frames/<video>/  DF40 testing data

The reals are the originals of each domain: FF++'s youtube videos and Celeb-DF's
reals, read from ``<data_root>/json/FaceForensics++.json`` (FF-real, level
``--compression``, default c23) and ``Celeb-DF-v2.json`` (CelebDFv2_real), made
with this repository's adapters, with their splits. DF40's fakes keep the split
of their folder (train or test).

Writes DeepfakeBench's JSON names and labels (DF40's training/config/test_config.yaml):
``<method>_ff`` and ``<method>_cdf`` with labels ``<method>_Fake`` / ``<method>_Real``,
and per forgery type ``FSAll_ff``, ``FRAll_ff``, ``FSAll_cdf``, ``FRAll_cdf``
(``FSAll_Fake`` / ``FSAll_Real`` ...). Face-swap (FS) and face-reenactment (FR)
methods are the video methods; entire-face-synthesis and editing methods are image
sets and are not indexed (reported). Names: FF++ fakes ``<t>_<s>`` (identity and
source ``<t>``), Celeb-DF fakes ``id<t>_id<s>_<nnnn>`` (source ``id<t>_<nnnn>``).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Tuple

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder
from .scan import celeb_source, listed_videos

FS_METHODS = ("fsgan", "faceswap", "simswap", "inswap", "blendface", "uniface", "mobileswap", "e4s", "facedancer")
FR_METHODS = ("fomm", "facevid2vid", "wav2lip", "MRAA", "one_shot_free", "pirender", "tpsm", "lia", "danet",
              "sadtalker", "mcnet", "hyperreenact")
DOMAINS = {"ff": ("FaceForensics++", "FF-real"), "cdf": ("Celeb-DF-v2", "CelebDFv2_real")}
FOLDER_SPLITS = ("train", "test")


def domain_reals(context: AdapterContext, domain: str) -> Dict[str, Dict[str, dict]]:
    """``{split: {video: record}}`` of the real videos of one domain, from our JSON of its dataset."""
    from training.data.catalog import CatalogError, load_dataset_json

    dataset, label = DOMAINS[domain]
    try:
        tree = load_dataset_json(context.data_root, dataset)
    except CatalogError as error:
        raise AdapterError(f"DF40 ({domain} domain) takes its reals from json/{dataset}.json: {error}") from None
    level = context.compression or "c23"
    reals: Dict[str, Dict[str, dict]] = {}
    for split, node in tree.get(label, {}).items():
        videos = node.get(level, {}) if node and not any("frames" in v for v in node.values()) else node
        reals[split] = dict(videos)
    if not any(reals.values()):
        raise AdapterError(f"DF40: json/{dataset}.json has no {label} videos"
                           + (f" at level {level}" if domain == "ff" else "") + ".")
    return reals


def fake_names(domain: str, video: str) -> Tuple[Optional[str], Optional[str]]:
    """(identity, source) of a DF40 fake from its name."""
    if domain == "ff":
        target = video.split("_")[0]
        return target, target
    return video.split("_")[0], celeb_source(video)


def group_of(method: str) -> Optional[str]:
    return "FS" if method in FS_METHODS else "FR" if method in FR_METHODS else None


@DATASET_ADAPTERS.register("DF40")
def df40(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    found: Dict[Tuple[str, str], List[str]] = {}  # (method, domain) -> folder splits
    for split in FOLDER_SPLITS:
        for method_dir in sorted((root / split).iterdir()) if (root / split).is_dir() else []:
            for domain in DOMAINS:
                if (method_dir / domain).is_dir():
                    found.setdefault((method_dir.name, domain), []).append(split)
    if not found:
        raise AdapterError(f"DF40: no {root}/<train|test>/<method>/<ff|cdf>/ folder. Extract DF40's training and "
                           f"testing archives there (they ship preprocessed).")
    skipped = sorted({method for method, _ in found if group_of(method) is None})
    reals = {domain: domain_reals(context, domain) for domain in sorted({d for _, d in found})}
    indexes: Dict[str, dict] = {}
    notes: List[str] = []
    aggregates: Dict[Tuple[str, str], dict] = {}
    for (method, domain), splits in sorted(found.items()):
        group = group_of(method)
        if group is None:
            continue
        name = f"{method}_{domain}"
        real_label, fake_label = f"{method}_Real", f"{method}_Fake"
        builder = IndexBuilder(context, name, [real_label, fake_label])
        for split in splits:
            folder = root / split / method / domain
            for video in listed_videos(folder):
                identity, source = fake_names(domain, video)
                builder.add(fake_label, split, folder, video, identity=identity, source=source)
        builder.tree[real_label] = relabelled(reals[domain], real_label)
        builder.check_labels({fake_label: root / splits[0] / method / domain / "frames"})
        indexes[name] = builder.json()
        notes += builder.notes()
        total = aggregates.setdefault((group, domain), {
            f"{group}All_Real": relabelled(reals[domain], f"{group}All_Real"),
            f"{group}All_Fake": {split: {} for split in ("train", "val", "test")}})
        for split, videos in builder.tree[fake_label].items():
            for video, record in videos.items():
                total[f"{group}All_Fake"][split][f"{method}/{video}"] = dict(record, label=f"{group}All_Fake")
    for (group, domain), tree in aggregates.items():
        indexes[f"{group}All_{domain}"] = {f"{group}All_{domain}": tree}
    if skipped:
        notes.append(f"DF40: {', '.join(skipped)} are not face-swap or face-reenactment video methods "
                     f"(image sets); not indexed")
    return AdapterResult(indexes, notes)


def relabelled(reals: Dict[str, Dict[str, dict]], label: str) -> Dict[str, Dict[str, dict]]:
    tree = {split: {} for split in ("train", "val", "test")}
    for split, videos in reals.items():
        tree[split] = {video: dict(copy.deepcopy(record), label=label) for video, record in videos.items()}
    return tree
