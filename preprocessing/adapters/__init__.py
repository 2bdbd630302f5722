"""Dataset adapters register themselves on import; training.registry imports every module here."""
