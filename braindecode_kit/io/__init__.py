"""Reading recordings into :class:`~braindecode_kit.trialset.TrialSet` objects.

Names are imported lazily (nilearn, nibabel and h5py load on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# public name -> module that defines it
_LAZY = {
    "load_fmri": "braindecode_kit.io.fmri",
    "load_fmri_bids": "braindecode_kit.io.fmri",
    "load_betas": "braindecode_kit.io.fmri",
    "resolve_mask": "braindecode_kit.io.fmri",
    "find_fmri_runs": "braindecode_kit.io.bids",
    "fit_lss": "braindecode_kit.io.glm",
    "fit_lsa": "braindecode_kit.io.glm",
    "Int16OverflowError": "braindecode_kit.io.fmri",
    "to_int16": "braindecode_kit.io.fmri",
    "zscore_sessions": "braindecode_kit.io.fmri",
    "load_meg": "braindecode_kit.io.meg",
    "load_seeg": "braindecode_kit.io.seeg",
    "read_electrodes": "braindecode_kit.io.seeg",
    "channel_regions": "braindecode_kit.io.seeg",
}
_SUBMODULES = {"fmri", "glm", "bids", "meg", "seeg"}

__all__ = [
    "Int16OverflowError",
    "channel_regions",
    "find_fmri_runs",
    "fit_lsa",
    "fit_lss",
    "load_betas",
    "load_fmri",
    "load_fmri_bids",
    "load_meg",
    "load_seeg",
    "read_electrodes",
    "resolve_mask",
    "to_int16",
    "zscore_sessions",
]

if TYPE_CHECKING:  # pragma: no cover
    from .bids import find_fmri_runs
    from .fmri import (
        Int16OverflowError,
        load_betas,
        load_fmri,
        load_fmri_bids,
        resolve_mask,
        to_int16,
        zscore_sessions,
    )
    from .glm import fit_lsa, fit_lss
    from .meg import load_meg
    from .seeg import channel_regions, load_seeg, read_electrodes


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
