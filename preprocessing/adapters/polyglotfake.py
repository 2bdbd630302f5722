"""PolyGlotFake (Hou et al. 2024, arXiv:2405.08838; tobuta/PolyGlotFake), a multilingual lip-sync benchmark.

766 real and 14,472 fake videos in seven languages (ar, en, es, fr, ja, ru, zh): a
real video is translated to another language (TTS / voice cloning) and its lips
re-synced by Wav2Lip or VideoRetalking. The release publishes no folder layout
or split; this adapter reads the layout below, named like GenD's file lists
(config/datasets/PolyGlotFake/real-<lang>.txt and <src>2<tgt>_<method>.txt)::

    <root>/real/<lang>/frames/<video>/
    <root>/fake/<src>2<tgt>_<method>/frames/<video>/     e.g. en2fr_Wav2Lip, en2fr_video_retalking

Folders may also nest (``fake/<src>2<tgt>/<method>/``): every folder below ``real``
and ``fake`` that holds videos is indexed. PolyGlotFake is a test set (GenD tests on
all of it): everything goes to ``test``. No identity or source information ships.
"""
from __future__ import annotations

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder
from .scan import listed_videos, video_folders

LABELS = {"real": "PolyGlotFake_real", "fake": "PolyGlotFake_fake"}


@DATASET_ADAPTERS.register("PolyGlotFake")
def polyglotfake(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    if not all((root / side).is_dir() for side in LABELS):
        raise AdapterError(f"PolyGlotFake: expected {root}/real/<lang>/ and {root}/fake/<src>2<tgt>_<method>/ "
                           f"(see the adapter docstring); arrange the release that way and preprocess it.")
    builder = IndexBuilder(context, "PolyGlotFake", list(LABELS.values()))
    for side, label in LABELS.items():
        for folder in video_folders(root / side):
            prefix = folder.relative_to(root).as_posix()
            for video in listed_videos(folder):
                builder.add(label, "test", folder, video, video=f"{prefix}/{video}")
    builder.check_labels({label: root / side for side, label in LABELS.items()})
    return AdapterResult({"PolyGlotFake": builder.json()}, builder.notes())
