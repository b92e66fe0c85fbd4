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
    "load_things_meg": "braindecode_kit.recipes.things_meg",
    "things_meg_runs": "braindecode_kit.recipes.things_meg",
    "things_meg_events": "braindecode_kit.recipes.things_meg",
}
_SUBMODULES = {"nsd", "things_meg"}

__all__ = ["load_nsd", "load_things_meg", "nsd_trials", "things_meg_events", "things_meg_runs"]

if TYPE_CHECKING:  # pragma: no cover
    from .nsd import load_nsd, nsd_trials
    from .things_meg import load_things_meg, things_meg_events, things_meg_runs


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
