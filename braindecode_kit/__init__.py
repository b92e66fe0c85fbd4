"""braindecode_kit: decode what a person saw from fMRI, MEG and sEEG recordings.

The public API is lazy: ``import braindecode_kit`` imports neither torch nor MNE;
each name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import attach
from ._version import __version__

# public name -> module that defines it
_LAZY = {
    "TrialSet": "braindecode_kit.trialset",
    "StimulusSet": "braindecode_kit.stimuli",
    "ContrastiveDecoder": "braindecode_kit.estimators",
    "RidgeDecoder": "braindecode_kit.baselines",
    "set_log_level": "braindecode_kit._logging",
}
# subpackages and modules reachable as attributes (only those that exist)
_SUBMODULES = {
    "io", "embed", "models", "evaluate", "simulate", "recipes", "baselines", "train",
    "stimuli", "trialset", "info", "splits", "pipeline", "cli", "estimators",
}

__all__ = ["ContrastiveDecoder", "RidgeDecoder", "StimulusSet", "TrialSet", "__version__",
           "set_log_level"]

if TYPE_CHECKING:  # pragma: no cover
    from ._logging import set_log_level
    from .baselines import RidgeDecoder
    from .estimators import ContrastiveDecoder
    from .stimuli import StimulusSet
    from .trialset import TrialSet


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
