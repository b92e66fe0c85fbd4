"""The built-in world: procedural stimuli with captions and simulated subjects.

Names are imported on first use (``import braindecode_kit.simulate`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# public name -> module that defines it
_LAZY = {
    "make_world": "braindecode_kit.simulate.world",
    "TRAINING_SEED_START": "braindecode_kit.simulate.world",
    "simulate_fmri": "braindecode_kit.simulate.fmri",
    "SimulatedFMRI": "braindecode_kit.simulate.fmri",
    "simulate_meg": "braindecode_kit.simulate.meg",
    "SimulatedMEG": "braindecode_kit.simulate.meg",
    "simulate_seeg": "braindecode_kit.simulate.seeg",
    "SimulatedSEEG": "braindecode_kit.simulate.seeg",
}

__all__ = ["TRAINING_SEED_START", "SimulatedFMRI", "SimulatedMEG", "SimulatedSEEG", "make_world",
           "simulate_fmri", "simulate_meg", "simulate_seeg"]

if TYPE_CHECKING:  # pragma: no cover
    from .fmri import SimulatedFMRI, simulate_fmri
    from .meg import SimulatedMEG, simulate_meg
    from .seeg import SimulatedSEEG, simulate_seeg
    from .world import TRAINING_SEED_START, make_world


__getattr__, __dir__ = attach(__name__, _LAZY, ())
