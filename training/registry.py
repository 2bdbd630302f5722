"""Name → builder registries, one instance per component kind.

A component registers itself with a decorator in the module that defines it::

    @DETECTORS.register("clip")
    class ClipDetector(nn.Module): ...

Registration happens when the defining module is imported. The registries are
filled lazily by :func:`import_builtin_components` (called by the builders),
so importing this module has no side effects and one broken optional
component cannot break the import of another.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, Iterable, TypeVar

T = TypeVar("T")


class Registry:
    """A mapping from names to classes or functions, with helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise KeyError(f"{self.kind} '{name}' is registered twice "
                               f"({self._entries[name]} and {obj}); pick another name.")
            self._entries[name] = obj
            return obj
        return decorator

    def get(self, name: str) -> Callable:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise KeyError(f"Unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: "
                           f"{', '.join(sorted(self._entries)) or '(none)'}.")
        return self._entries[name]

    def names(self) -> Iterable[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


DETECTORS = Registry("detector")
BACKBONES = Registry("backbone")
LOSSES = Registry("loss")
DATASET_ADAPTERS = Registry("dataset adapter")

# Modules whose import registers the built-in components. Adding a detector =
# one file in training/models/detectors/ plus one line here plus one YAML.
BUILTIN_MODULES = {
    "detector": ["training.models.detectors"],
    "backbone": ["training.models.backbones"],
    "loss": ["training.losses"],
    "dataset adapter": ["preprocessing.adapters"],
}


def import_builtin_components(kind: str) -> None:
    for module in BUILTIN_MODULES[kind]:
        importlib.import_module(module)
