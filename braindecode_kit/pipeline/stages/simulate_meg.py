"""The ``simulate_meg`` stage: simulated MEG subjects on the run's stimuli, written as
BIDS in the run folder (``meg/bids/``), and the simulator's ground truth for the oracle."""

from __future__ import annotations

from typing import Any

from .._base import RunContext, stage
from ._common import get_stimuli, kind_path, register_oracle

KIND = "meg"
BIDS_DIR = kind_path(KIND, "bids")


def _simulating(config) -> bool:
    return config.meg is not None and config.meg.source == "simulate"


@register_oracle(KIND)
def meg_oracle(ctx: RunContext):
    """The simulated experiment (its oracle), or None when the MEG data are real."""
    if not _simulating(ctx.config):
        return None
    from ...simulate import SimulatedMEG

    return SimulatedMEG.load(ctx.run_dir / BIDS_DIR)


@stage("simulate_meg", requires=("stimuli",), enabled=_simulating, priority=21)
def stage_simulate_meg(ctx: RunContext) -> dict[str, Any]:
    """Simulate MEG subjects on the stimuli and write them as BIDS (FIF)."""
    from ...simulate import simulate_meg

    sc = ctx.config.meg.simulate
    sim = simulate_meg(get_stimuli(ctx), ctx.run_dir / BIDS_DIR, seed=ctx.seed,
                       **sc.kwargs(simulate_meg))
    summary = {**sim.info["parameters"], "n_train": len(sim.train_ids),
               "n_test": len(sim.test_ids),
               "subjects": dict(sim.info.get("subject_info") or dict.fromkeys(sim.subjects))}
    return {"metrics": {KIND: {"simulation": summary}}, "outputs": [BIDS_DIR]}
