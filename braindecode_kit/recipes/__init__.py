"""Readers for public datasets' own layouts (NSD, ...) on top of :mod:`braindecode_kit.io`.

Names are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_LAZY = {
    "load_nsd": "braindecode_kit.recipes.nsd",
    "nsd_trials": "braindecode_kit.recipes.nsd",
}
_SUBMODULES = {"nsd"}

__all__ = ["load_nsd", "nsd_trials"]

if TYPE_CHECKING:  # pragma: no cover
    from .nsd import load_nsd, nsd_trials


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"braindecode_kit.recipes.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'braindecode_kit.recipes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
