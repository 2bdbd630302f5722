"""Dataset adapters: one module per dataset layout. Importing this package
registers every adapter in ``training.registry.DATASET_ADAPTERS``."""
from . import (celebdf, celebdf_pp, deeperforensics, deepfakedetection, deepspeak,  # noqa: F401
               deepspeak_versions, demo_raw, df40, dfdc, dfdcp, dfdm, fakeavceleb, faceforensics, faceshifter, ffiw,
               idforge, kodf, polyglotfake, uadfv)
