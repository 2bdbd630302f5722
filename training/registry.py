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
import pkgutil
from typing import Callable, Dict, Iterable, TypeVar

from training.errors import UserError

T = TypeVar("T")


class UnknownNameError(UserError, KeyError):
    """A config or flag names a component that is not registered (a typo, usually)."""

    def __str__(self) -> str:  # KeyError's own str() would quote the whole message
        return str(self.args[0]) if self.args else ""


class Registry:
    """A mapping from names to classes or functions, with helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Callable] = {}
        # module name -> import error, for components whose optional dependency is missing
        self.failed_imports: Dict[str, str] = {}

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
            failed = "".join(f" Module {m} failed to import ({e})." for m, e in self.failed_imports.items())
            raise UnknownNameError(f"Unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: "
                           f"{', '.join(sorted(self._entries)) or '(none)'}.{failed}")
        return self._entries[name]

    def names(self) -> Iterable[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


DETECTORS = Registry("detector")
BACKBONES = Registry("backbone")
LOSSES = Registry("loss")
DATASET_ADAPTERS = Registry("dataset adapter")

# Packages whose modules register the built-in components. Every module in them is
# imported, so adding a detector is one file in training/models/detectors/ plus one YAML.
BUILTIN_PACKAGES = {
    "detector": ("training.models.detectors", DETECTORS),
    "backbone": ("training.models.backbones", BACKBONES),
    "loss": ("training.losses", LOSSES),
    "dataset adapter": ("preprocessing.adapters", DATASET_ADAPTERS),
}


def import_builtin_components(kind: str) -> None:
    """Import every module of the component package. A module whose optional
    dependency is missing is recorded (and named in lookup errors) instead of
    breaking every other component, unlike DeepfakeBench's eager imports."""
    package_name, registry = BUILTIN_PACKAGES[kind]
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        module = f"{package_name}.{info.name}"
        try:
            importlib.import_module(module)
        except ImportError as error:
            registry.failed_imports[module] = str(error)
