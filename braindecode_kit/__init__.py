"""braindecode_kit: decode what a person saw from fMRI, MEG and sEEG recordings.

The public API is lazy: ``import braindecode_kit`` imports neither torch nor MNE;
each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "TrialSet": "braindecode_kit.trialset",
    "StimulusSet": "braindecode_kit.stimuli",
    "ContrastiveDecoder": "braindecode_kit.estimators",
    "RidgeDecoder": "braindecode_kit.baselines",
    "set_log_level": "braindecode_kit._logging",
}
_SUBMODULES = {
    "io", "embed", "models", "evaluate", "simulate", "recipes", "reconstruct", "caption",
    "baselines", "train", "stimuli", "trialset", "pipeline", "config", "cli", "estimators",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from ._logging import set_log_level
    from .baselines import RidgeDecoder
    from .estimators import ContrastiveDecoder
    from .stimuli import StimulusSet
    from .trialset import TrialSet


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"braindecode_kit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'braindecode_kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
