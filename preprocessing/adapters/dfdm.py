"""DFDM, DeepFakes from Different Models (Jia et al. 2022, arXiv:2202.12951).

Face swaps of Celeb-DF's celebrity videos by five autoencoder models of the
Faceswap tool. Layout (after preprocessing each model folder)::

    <root>/<model>/frames/<video>/            model: dfaker, dfl, iae, lightweight, faceswap
    <real_root>/Celeb-real/frames/<video>/    the reals: Celeb-DF-v2's Celeb-real

``real_root`` defaults to the ``Celeb-DF-v2`` folder next to ``<root>``
(``--option real_root=PATH`` to change it). DFDM ships no split and is a test set:
everything goes to ``test``. Like GenD (src/utils/files.py, ``DFDM.test``: dfaker,
dfl, iae, lightweight fakes with *all* Celeb-real videos) the ``faceswap`` model is
left out unless ``--option models=dfaker,dfl,iae,lightweight,faceswap``.
Names follow Celeb-DF (``id<t>_id<s>_<nnnn>``): identity ``id<t>``, source ``id<t>_<nnnn>``.
"""
from __future__ import annotations

from pathlib import Path

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterError, AdapterResult, IndexBuilder, require_dir
from .scan import celeb_source, listed_videos

REAL_LABEL, FAKE_LABEL = "DFDM_real", "DFDM_fake"
GEND_MODELS = ("dfaker", "dfl", "iae", "lightweight")
ALL_MODELS = GEND_MODELS + ("faceswap",)


@DATASET_ADAPTERS.register("DFDM")
def dfdm(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    models = [m for m in context.options.get("models", ",".join(GEND_MODELS)).split(",") if m]
    unknown = sorted(set(models) - set(ALL_MODELS))
    if unknown:
        raise AdapterError(f"DFDM: --option models has {', '.join(unknown)}; choose from {', '.join(ALL_MODELS)}.")
    real_root = Path(context.options.get("real_root", root.parent / "Celeb-DF-v2"))
    reals = require_dir(real_root / "Celeb-real", "Celeb-DF-v2's Celeb-real (DFDM's real videos)",
                        "Pass --option real_root=<the Celeb-DF-v2 folder> (preprocessed).")
    builder = IndexBuilder(context, "DFDM", [REAL_LABEL, FAKE_LABEL])
    for video in listed_videos(reals):
        builder.add(REAL_LABEL, "test", reals, video, identity=video.split("_")[0])
    missing_models = []
    for model in models:
        folder = root / model
        if not folder.is_dir():
            missing_models.append(model)
            continue
        for video in listed_videos(folder):
            builder.add(FAKE_LABEL, "test", folder, video, video=f"{model}/{video}", identity=video.split("_")[0],
                        source=celeb_source(video))
    builder.check_labels({REAL_LABEL: reals / "frames", FAKE_LABEL: root / models[0] / "frames"})
    notes = builder.notes()
    if missing_models:
        notes.append(f"DFDM: no folder for model(s) {', '.join(missing_models)} under {root}")
    return AdapterResult({"DFDM": builder.json()}, notes)
