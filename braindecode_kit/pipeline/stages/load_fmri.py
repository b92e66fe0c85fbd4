"""The ``load_fmri`` stage: single-trial betas of every subject of a BIDS dataset (the
simulated one, or ``fmri.bids_root``), one TrialSet per subject in the run folder."""

from __future__ import annotations

from typing import Any

from .._base import RunContext, stage
from ._common import load_subjects, n_test_stimuli
from .simulate_fmri import BIDS_DIR

KIND = "fmri"


@stage("load_fmri", after=("simulate_fmri",), enabled=lambda c: c.fmri is not None,
       priority=30)
def stage_load_fmri(ctx: RunContext) -> dict[str, Any]:
    """Estimate single-trial betas from the BIDS dataset into one TrialSet per subject."""
    from ...io import load_fmri_bids

    kwargs = ctx.config.fmri.load.kwargs(load_fmri_bids)
    return load_subjects(
        ctx, KIND, BIDS_DIR, lambda root, sub: load_fmri_bids(root, sub, **kwargs),
        lambda ts: {"n_trials": ts.n_trials, "n_voxels": ts.n_features,
                    "n_test_stimuli": n_test_stimuli(ts)})
