"""The built-in world: procedural stimuli with captions and simulated subjects.

Names are imported on first use (``import braindecode_kit.simulate`` stays light).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_LAZY = {
    "make_world": "braindecode_kit.simulate.world",
    "TRAINING_SEED_START": "braindecode_kit.simulate.world",
    "simulate_fmri": "braindecode_kit.simulate.fmri",
}

__all__ = ["TRAINING_SEED_START", "make_world", "simulate_fmri"]

if TYPE_CHECKING:  # pragma: no cover
    from .fmri import simulate_fmri
    from .world import TRAINING_SEED_START, make_world


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'braindecode_kit.simulate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
