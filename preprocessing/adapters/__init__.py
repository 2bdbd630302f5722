"""Dataset adapters: one module per dataset layout. Importing this package
registers every adapter in ``training.registry.DATASET_ADAPTERS``."""
from . import (celebdf, deeperforensics, deepfakedetection, deepspeak, demo_raw, dfdc, dfdcp,  # noqa: F401
               faceforensics, faceshifter, ffiw, uadfv)
