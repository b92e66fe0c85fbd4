"""The ``load_seeg`` stage: epochs of every subject of a sEEG BIDS dataset (the simulated
one, or ``seeg.bids_root``), one TrialSet per subject under ``seeg/trials/``."""

from __future__ import annotations

from typing import Any

from .._base import RunContext, stage
from ._common import load_subjects, n_test_stimuli
from .simulate_seeg import BIDS_DIR

KIND = "seeg"


@stage("load_seeg", after=("simulate_seeg",), enabled=lambda c: c.seeg is not None,
       priority=32)
def stage_load_seeg(ctx: RunContext) -> dict[str, Any]:
    """Cut the sEEG recordings into preprocessed epochs, one TrialSet per subject."""
    from ...io import load_seeg

    kwargs = ctx.config.seeg.load.kwargs(load_seeg)
    return load_subjects(
        ctx, KIND, BIDS_DIR, lambda root, sub: load_seeg(root, subject=sub, **kwargs),
        lambda ts: {"n_trials": ts.n_trials, "feature_shape": list(ts.feature_shape),
                    "n_test_stimuli": n_test_stimuli(ts)})
