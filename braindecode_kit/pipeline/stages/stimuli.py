"""The ``stimuli`` stage: draw (or read) the stimuli, write their table and captions."""

from __future__ import annotations

from typing import Any

from ..._utils import atomic_path, write_json_atomic
from .._base import RunContext, stage
from ._common import get_stimuli


@stage("stimuli", priority=0)
def stage_stimuli(ctx: RunContext) -> dict[str, Any]:
    """Draw (or read) the stimuli and write their attribute table and captions."""
    from ...simulate.world import TRAINING_SEED_START

    sc = ctx.config.stimuli
    if sc.kind == "world" and ctx.seed >= TRAINING_SEED_START:
        raise ValueError(
            f"Invalid value for the 'seed' parameter: world seeds >= {TRAINING_SEED_START} are "
            f"reserved for training the built-in models, so a run with seed {ctx.seed} would "
            "evaluate on training images. Use a seed below that."
        )
    stimuli = get_stimuli(ctx)
    table = stimuli.attributes.copy()
    table.index.name = "stimulus_id"
    out = ctx.path("stimuli", "attributes.tsv")
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t")
    write_json_atomic(ctx.path("stimuli", "captions.json"),
                      {i: stimuli.captions(i) for i in stimuli.ids})
    return {"metrics": {"stimuli": {"n": len(stimuli), "kind": sc.kind}},
            "outputs": ["stimuli/attributes.tsv", "stimuli/captions.json"]}
