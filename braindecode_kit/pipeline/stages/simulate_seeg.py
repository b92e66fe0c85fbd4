"""The ``simulate_seeg`` stage: simulated sEEG subjects on the run's stimuli, written as
BIDS in the run folder (``seeg/bids/``), and the simulator's ground truth for the oracle."""

from __future__ import annotations

from typing import Any

from .._base import RunContext, stage
from ._common import get_stimuli, kind_path, register_oracle

KIND = "seeg"
BIDS_DIR = kind_path(KIND, "bids")


def _simulating(config) -> bool:
    return config.seeg is not None and config.seeg.source == "simulate"


@register_oracle(KIND)
def seeg_oracle(ctx: RunContext):
    """The simulated experiment (its oracle), or None when the sEEG data are real."""
    if not _simulating(ctx.config):
        return None
    from ...simulate import SimulatedSEEG

    return SimulatedSEEG.load(ctx.run_dir / BIDS_DIR)


@stage("simulate_seeg", requires=("stimuli",), enabled=_simulating, priority=22)
def stage_simulate_seeg(ctx: RunContext) -> dict[str, Any]:
    """Simulate sEEG subjects on the stimuli and write them as BIDS (EDF)."""
    from ...simulate import simulate_seeg

    sc = ctx.config.seeg.simulate
    sim = simulate_seeg(get_stimuli(ctx), ctx.run_dir / BIDS_DIR, seed=ctx.seed,
                       **sc.kwargs(simulate_seeg))
    summary = {**sim.info["parameters"], "n_train": len(sim.train_ids),
               "n_test": len(sim.test_ids),
               "subjects": dict(sim.info.get("subject_info") or dict.fromkeys(sim.subjects))}
    return {"metrics": {KIND: {"simulation": summary}}, "outputs": [BIDS_DIR]}
