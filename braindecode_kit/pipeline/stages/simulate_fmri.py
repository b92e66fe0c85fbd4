"""The ``simulate_fmri`` stage: simulated fMRI subjects on the run's stimuli, written as
BIDS in the run folder (``bids/``), and the simulator's ground truth for the oracle."""

from __future__ import annotations

from typing import Any

from .._base import RunContext, stage
from ._common import get_stimuli, register_oracle

BIDS_DIR = "bids"


def _simulating(config) -> bool:
    return config.fmri is not None and config.fmri.source == "simulate"


@register_oracle("fmri")
def fmri_oracle(ctx: RunContext):
    """The simulated experiment (its oracle), or None when the fMRI data are real."""
    if not _simulating(ctx.config):
        return None
    from ...simulate import SimulatedFMRI

    return SimulatedFMRI.load(ctx.run_dir / BIDS_DIR)


@stage("simulate_fmri", requires=("stimuli",), enabled=_simulating, priority=20)
def stage_simulate_fmri(ctx: RunContext) -> dict[str, Any]:
    """Simulate fMRI subjects on the stimuli and write them as BIDS (+ NSD layout)."""
    from ...simulate import simulate_fmri

    sc = ctx.config.fmri.simulate
    sim = simulate_fmri(get_stimuli(ctx), ctx.run_dir / BIDS_DIR, seed=ctx.seed,
                        **sc.kwargs(simulate_fmri))
    return {"metrics": {"fmri": {"simulation": sim.summary()}}, "outputs": [BIDS_DIR]}
