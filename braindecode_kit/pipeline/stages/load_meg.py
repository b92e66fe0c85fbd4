"""The ``load_meg`` stage: epochs of every subject of a MEG BIDS dataset (the simulated
one, or ``meg.bids_root``), one TrialSet per subject under ``meg/trials/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._utils import write_json_atomic
from .._base import RunContext, stage
from ._common import kind_path
from .simulate_meg import BIDS_DIR

KIND = "meg"


@stage("load_meg", after=("simulate_meg",), enabled=lambda c: c.meg is not None,
       priority=31)
def stage_load_meg(ctx: RunContext) -> dict[str, Any]:
    """Cut the MEG recordings into preprocessed epochs, one TrialSet per subject."""
    from mne_bids import get_entity_vals

    from ...io import load_meg

    mc = ctx.config.meg
    root = Path(mc.bids_root) if mc.source == "bids" else ctx.run_dir / BIDS_DIR
    subjects = mc.subjects or sorted(get_entity_vals(root, "subject",
                                                     ignore_dirs=("derivatives", "sourcedata")))
    if not subjects:
        raise ValueError(f"No subjects (sub-*/ folders) found in the BIDS dataset {root}.")
    per_subject = {}
    for sub in subjects:
        ts = load_meg(root, subject=sub, **mc.load.kwargs(load_meg))
        ts.save(ctx.path(kind_path(KIND, "trials", f"sub-{sub}")))
        test = ts.select(split="test")
        per_subject[sub] = {"n_trials": ts.n_trials, "feature_shape": list(ts.feature_shape),
                            "n_test_stimuli": int(test.trials["stimulus_id"].nunique())}
    write_json_atomic(ctx.path(kind_path(KIND, "trials", "subjects.json")), list(subjects))
    return {"metrics": {KIND: {"subjects": per_subject}},
            "outputs": [kind_path(KIND, "trials", "subjects.json")]
            + [kind_path(KIND, "trials", f"sub-{s}") for s in subjects]}
