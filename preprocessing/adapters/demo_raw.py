"""DemoRaw: the raw-video demo of preprocessing/demo/raw_videos.py.

Layout (after ``python -m preprocessing.preprocess --input <root>``)::

    <root>/metadata.json                   {"videos": {"<vid>": {"label": "real"|"fake", "split": ..., "identity": ...}}}
    <root>/<real|fake>/frames/<vid>/       (+ landmarks/, masks/ for fakes from the mask videos)
"""
from __future__ import annotations

import json

from training.registry import DATASET_ADAPTERS

from .common import SPLITS, AdapterContext, AdapterError, AdapterResult, IndexBuilder, require_file

LABELS = {"real": "DemoRaw_real", "fake": "DemoRaw_fake"}


@DATASET_ADAPTERS.register("DemoRaw")
def demo_raw(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    path = require_file(root / "metadata.json", "DemoRaw metadata",
                        f"Generate the demo with `python -m preprocessing.demo.raw_videos --out {root}`.")
    videos = json.loads(path.read_text(encoding="utf-8")).get("videos", {})
    builder = IndexBuilder(context, "DemoRaw", list(LABELS.values()))
    for video, info in sorted(videos.items()):
        if info.get("label") not in LABELS or info.get("split") not in SPLITS:
            raise AdapterError(f"{path}: video {video!r} needs label real|fake and split train|val|test, got "
                               f"{info.get('label')!r} / {info.get('split')!r}. Regenerate the demo.")
        builder.add(LABELS[info["label"]], info["split"], root / info["label"], video, identity=info.get("identity"))
    builder.check_labels({label: root / folder / "frames" for folder, label in LABELS.items()})
    return AdapterResult({"DemoRaw": builder.json()}, builder.notes())
