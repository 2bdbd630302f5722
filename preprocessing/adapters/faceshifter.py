"""FaceShifter (the FaceForensics++ extension), with the FF++ originals as reals.

Layout: ``<root>/manipulated_sequences/FaceShifter/<comp>/frames/<tgt>_<src>/`` and
``<root>/original_sequences/youtube/<comp>/frames/<vid>/`` in the FaceForensics++
root, split by the official FF++ pair lists (``<root>/{train,val,test}.json``).
Labels FF-FH (fake) and FF-real, as DeepfakeBench.
"""
from __future__ import annotations

from training.registry import DATASET_ADAPTERS

from .common import AdapterContext, AdapterResult, IndexBuilder
from .faceforensics import REAL_LABEL, add_pair_split, compression_levels, method_dir, read_pair_splits, real_dir

FAKE_LABEL = "FF-FH"


@DATASET_ADAPTERS.register("FaceShifter")
def faceshifter(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    pairs = read_pair_splits(root)
    fakes = method_dir(root, "FaceShifter")
    levels = compression_levels(context, [fakes, real_dir(root)])
    builder = IndexBuilder(context, "FaceShifter", [REAL_LABEL, FAKE_LABEL], levels)
    add_pair_split(builder, pairs, REAL_LABEL, real_dir(root), levels, fake=False)
    add_pair_split(builder, pairs, FAKE_LABEL, fakes, levels, fake=True)
    builder.check_labels({REAL_LABEL: real_dir(root) / levels[0] / "frames",
                          FAKE_LABEL: fakes / levels[0] / "frames"})
    return AdapterResult({"FaceShifter": builder.json()}, builder.notes())
