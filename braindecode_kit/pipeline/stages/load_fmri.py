"""The ``load_fmri`` stage: single-trial betas of every subject of a BIDS dataset (the
simulated one, or ``fmri.bids_root``), one TrialSet per subject in the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._utils import write_json_atomic
from .._base import RunContext, stage
from ._common import kind_path
from .simulate_fmri import BIDS_DIR

KIND = "fmri"


@stage("load_fmri", after=("simulate_fmri",), enabled=lambda c: c.fmri is not None,
       priority=30)
def stage_load_fmri(ctx: RunContext) -> dict[str, Any]:
    """Estimate single-trial betas from the BIDS dataset into one TrialSet per subject."""
    from mne_bids import get_entity_vals

    from ...io import load_fmri_bids

    fc = ctx.config.fmri
    root = Path(fc.bids_root) if fc.source == "bids" else ctx.run_dir / BIDS_DIR
    subjects = fc.subjects or sorted(get_entity_vals(root, "subject",
                                                     ignore_dirs=("derivatives", "sourcedata")))
    if not subjects:
        raise ValueError(f"No subjects (sub-*/ folders) found in the BIDS dataset {root}.")
    per_subject = {}
    for sub in subjects:
        ts = load_fmri_bids(root, sub, **fc.load.kwargs(load_fmri_bids))
        ts.save(ctx.path(kind_path(KIND, "trials", f"sub-{sub}")))
        per_subject[sub] = {"n_trials": ts.n_trials, "n_voxels": ts.n_features,
                            "n_test_stimuli": int(ts.select(split="test").trials["stimulus_id"].nunique())}
    write_json_atomic(ctx.path(kind_path(KIND, "trials", "subjects.json")), list(subjects))
    return {"metrics": {KIND: {"subjects": per_subject}},
            "outputs": [kind_path(KIND, "trials", "subjects.json")]
            + [kind_path(KIND, "trials", f"sub-{s}") for s in subjects]}
