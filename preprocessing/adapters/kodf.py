"""KoDF, the Korean DeepFake Detection Dataset (Kwon et al., ICCV 2021; deepbrainai-research/kodf).

Layout (the release's three parts, after preprocessing every video folder)::

    <root>/original_videos/<subject>/.../frames/<clip>/             real
    <root>/synthesized_videos/<method>/<subject>/.../frames/<clip>/  fake; <method> one of
                                                                    audio_driven, dffs, dfl, fo, fsgan
    <root>/adversarial_examples/<real|fake>/.../frames/<clip>/       the adversarially attacked clips

Every folder holding clips (``.mp4`` files or a ``frames/`` folder) is indexed,
at any depth. KoDF has no official train/test split and GenD uses all of it as a
test set (src/utils/files.py, ``KoDF.test`` and ``KoDF.adversarial``), so
everything goes to ``test``: ``KoDF.json`` (real + the five methods) and
``KoDF-adv.json`` (the adversarial subset). Identity: the subject folder (the
first folder below ``original_videos`` / below the method).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder
from .scan import listed_videos, video_folders

REAL_LABEL, FAKE_LABEL = "KoDF_real", "KoDF_fake"
METHODS = ("audio_driven", "dffs", "dfl", "fo", "fsgan")


def index_tree(builder: IndexBuilder, root: Path, top: Path, label: str) -> None:
    """Index every clip below ``top`` into ``test``; identity = the first folder below ``top``."""
    for folder in video_folders(top):
        relative = folder.relative_to(root).as_posix()
        parts = folder.relative_to(top).parts
        subject: Optional[str] = parts[0] if parts else None
        for clip in listed_videos(folder):
            builder.add(label, "test", folder, clip, video=f"{relative}/{clip}", identity=subject)


@DATASET_ADAPTERS.register("KoDF")
def kodf(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    originals, synthesized = root / "original_videos", root / "synthesized_videos"
    if not originals.is_dir() or not synthesized.is_dir():
        raise AdapterError(f"KoDF: expected {originals} and {synthesized} (the release's real and synthesized "
                           f"parts). Extract them there and preprocess each clip folder.")
    main = IndexBuilder(context, "KoDF", [REAL_LABEL, FAKE_LABEL])
    index_tree(main, root, originals, REAL_LABEL)
    methods: List[str] = sorted(p.name for p in synthesized.iterdir() if p.is_dir())
    for method in methods:
        index_tree(main, root, synthesized / method, FAKE_LABEL)
    main.check_labels({REAL_LABEL: originals, FAKE_LABEL: synthesized})
    indexes, notes = {"KoDF": main.json()}, main.notes()
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        notes.append(f"KoDF: method folders {', '.join(unknown)} are not among {', '.join(METHODS)}; indexed as fakes")
    adversarial = root / "adversarial_examples"
    if adversarial.is_dir():
        adv = IndexBuilder(context, "KoDF-adv", [REAL_LABEL, FAKE_LABEL])
        for side, label in (("real", REAL_LABEL), ("fake", FAKE_LABEL)):
            index_tree(adv, root, adversarial / side, label)
        adv.check_labels({REAL_LABEL: adversarial / "real", FAKE_LABEL: adversarial / "fake"})
        indexes["KoDF-adv"] = adv.json()
        notes += adv.notes()
    else:
        notes.append(f"KoDF: no {adversarial}; KoDF-adv.json is not written")
    return AdapterResult(indexes, notes)
