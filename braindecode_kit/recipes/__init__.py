"""Readers for public datasets' own layouts (NSD, ...) on top of :mod:`braindecode_kit.io`.

Names are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# public name -> module that defines it
_LAZY = {
    "load_nsd": "braindecode_kit.recipes.nsd",
    "nsd_trials": "braindecode_kit.recipes.nsd",
}
_SUBMODULES = {"nsd"}

__all__ = ["load_nsd", "nsd_trials"]

if TYPE_CHECKING:  # pragma: no cover
    from .nsd import load_nsd, nsd_trials


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
