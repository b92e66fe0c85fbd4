"""The ``load_meg`` stage: epochs of every subject of a MEG BIDS dataset (the simulated
one, or ``meg.bids_root``), one TrialSet per subject under ``meg/trials/``."""

from __future__ import annotations

from typing import Any

from .._base import RunContext, stage
from ._common import load_subjects, n_test_stimuli
from .simulate_meg import BIDS_DIR

KIND = "meg"


@stage("load_meg", after=("simulate_meg",), enabled=lambda c: c.meg is not None,
       priority=31)
def stage_load_meg(ctx: RunContext) -> dict[str, Any]:
    """Cut the MEG recordings into preprocessed epochs, one TrialSet per subject."""
    from ...io import load_meg

    kwargs = ctx.config.meg.load.kwargs(load_meg)
    return load_subjects(
        ctx, KIND, BIDS_DIR, lambda root, sub: load_meg(root, subject=sub, **kwargs),
        lambda ts: {"n_trials": ts.n_trials, "feature_shape": list(ts.feature_shape),
                    "n_test_stimuli": n_test_stimuli(ts)})
