"""The loaders on the team simulator's own output (BIDS + NSD layout), when available."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.io import load_fmri_bids
from braindecode_kit.recipes.nsd import load_nsd


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from braindecode_kit.simulate import make_world, simulate_fmri

    world = make_world(80, seed=0)
    return simulate_fmri(world, tmp_path_factory.mktemp("sim") / "bids", n_subjects=1, seed=0,
                         n_shared_test=12, n_test_reps=2, n_voxels=150, n_sessions=2,
                         trials_per_run=24)


def test_bids_betas_track_truth(sim):
    ts = load_fmri_bids(sim.root, "01", method="lsa", zscore=None)
    paths = sim.paths("01")
    with np.load(paths["trialbetas"], allow_pickle=False) as z:
        amp, ses, run, onset = z["betas"], z["session"], z["run"], z["onset"]
        ijk = z["ijk"]
    # voxel order: the simulator's C order over its brain mask, the same as ours
    np.testing.assert_array_equal(ts.info.ijk, ijk)
    key = {(int(s), int(r), round(float(o), 3)): i for i, (s, r, o) in enumerate(
        zip(ses, run, onset))}
    t = ts.trials
    rows = [key[(int(s), int(r), round(float(o), 3))]
            for s, r, o in zip(t["session"], t["run"], t["onset"])]
    true = amp[rows]
    visual = np.isin(ts.info.roi, [1, 2])
    r = [np.corrcoef(ts.data[:, v], true[:, v])[0, 1] for v in np.flatnonzero(visual)]
    assert np.median(r) > 0.8
    assert set(ts.trials["split"]) == {"train", "test"}
    assert ts.info.roi_names[1] == "early_visual"


def test_nsd_layout_of_the_simulator(sim):
    ts = load_nsd(sim.root / "derivatives" / "nsd", 1)
    test_ids = set(sim.test_ids("01"))
    t = ts.trials
    assert set(t.loc[t["split"] == "test", "stimulus_id"]) <= test_ids
    assert not set(t.loc[t["split"] == "train", "stimulus_id"]) & test_ids
    assert ts.n_features == int(ts.info.mask_array().sum())
