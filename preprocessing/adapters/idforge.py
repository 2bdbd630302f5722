"""IDForge v1 (Xu et al. 2024, arXiv:2401.11764): identity-driven multimedia forgeries.

Its official split is the folder split of the release; the classes are the real
videos and three face-swap + TTS forgeries (GenD's lists config/datasets/IDForge-v1/
<split>/<split>-<class>.txt). Layout (after preprocessing each class folder)::

    <root>/<train|val|test>/real/frames/<video>/
    <root>/<train|val|test>/face_tts_infoswap/frames/<video>/
    <root>/<train|val|test>/face_tts_roop/frames/<video>/
    <root>/<train|val|test>/face_tts_simswap/frames/<video>/

train, val and test are the release's folders. A fake's key carries its class
(classes reuse file names). No identity or source information is read.
"""
from __future__ import annotations

from training.registry import DATASET_ADAPTERS

from .common import SPLITS, AdapterContext, AdapterError, AdapterResult, IndexBuilder
from .scan import listed_videos

REAL_LABEL, FAKE_LABEL = "IDForge_real", "IDForge_fake"
CLASSES = ("real", "face_tts_infoswap", "face_tts_roop", "face_tts_simswap")


@DATASET_ADAPTERS.register("IDForge-v1")
def idforge(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    present = [split for split in SPLITS if (root / split).is_dir()]
    if not present:
        raise AdapterError(f"IDForge-v1: no {root}/<train|val|test>/ folder; extract the release there "
                           f"(classes {', '.join(CLASSES)}) and preprocess each class folder.")
    builder = IndexBuilder(context, "IDForge-v1", [REAL_LABEL, FAKE_LABEL])
    notes = []
    for split in present:
        for name in CLASSES:
            folder = root / split / name
            if not folder.is_dir():
                notes.append(f"IDForge-v1: no {folder}")
                continue
            fake = name != "real"
            for video in listed_videos(folder):
                builder.add(FAKE_LABEL if fake else REAL_LABEL, split, folder, video,
                            video=f"{name}/{video}" if fake else video)
    builder.check_labels({REAL_LABEL: root / "test" / "real" / "frames",
                          FAKE_LABEL: root / "test" / CLASSES[1] / "frames"})
    missing = [split for split in SPLITS if split not in present]
    if missing:
        notes.append(f"IDForge-v1: split folder(s) {', '.join(missing)} not found (those splits are empty)")
    return AdapterResult({"IDForge-v1": builder.json()}, builder.notes() + notes)
