"""recipes.nsd on a tiny NSD-layout folder (the real layout, 3 sessions of 20 trials)."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

from braindecode_kit.io import to_int16
from braindecode_kit.recipes.nsd import load_nsd, nsd_trials

SHAPE = (6, 5, 4)
AFFINE = np.diag([1.8, 1.8, 1.8, 1.0])
N_PER_SESSION = 20


def write_nsd(root, n_sessions=3, subject=2, seed=0, stim_ids=True):
    """NSD layout: 2 subjects x 30 images each (10 shared first), 60 trials for subj02."""
    rng = np.random.default_rng(seed)
    n_img = 30
    shared = np.arange(1, 11)  # nsdIds (1-based) of the shared images
    subjectim = np.stack([
        np.concatenate([shared, 100 + s * 50 + np.arange(1, n_img - 9)]) for s in range(2)
    ])
    n_trials = n_sessions * N_PER_SESSION
    masterordering = rng.integers(1, n_img + 1, size=n_trials)[None, :]  # 1-based columns
    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True)
    savemat(exp / "nsd_expdesign.mat", {"masterordering": masterordering,
                                        "subjectim": subjectim, "sharedix": shared[None, :]})
    nsd_ids = np.unique(subjectim) - 1
    info = pd.DataFrame({"nsdId": nsd_ids, "cocoId": nsd_ids + 5000})
    if stim_ids:
        info["stimulus_id"] = [f"img{i}" for i in nsd_ids]
    info.to_csv(exp / "nsd_stim_info_merged.csv")
    subj = f"subj{subject:02d}"
    roi_dir = root / "nsddata" / "ppdata" / subj / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True)
    roi = -np.ones(SHAPE, np.int16)
    roi[1:5, 1:4, 1:3] = 0
    roi[2:4, 1:4, 1:3] = 1
    nib.save(nib.Nifti1Image(roi, AFFINE), roi_dir / "nsdgeneral.nii.gz")
    bdir = root / "nsddata_betas" / "ppdata" / subj / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    bdir.mkdir(parents=True)
    vols = []
    for s in range(1, n_sessions + 1):
        v = rng.normal(size=(N_PER_SESSION,) + SHAPE) * 2 + s  # session offset
        vols.append(v)
        with h5py.File(bdir / f"betas_session{s:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=to_int16(v).transpose(0, 3, 2, 1),
                             chunks=(N_PER_SESSION, 1, 1, 1))
    return subjectim, masterordering.ravel(), vols, roi


def test_nsd_trials_mapping(tmp_path):
    subjectim, order, _, _ = write_nsd(tmp_path)
    t = nsd_trials(tmp_path, 2, {1: 20, 2: 20, 3: 20})
    assert len(t) == 60
    expect = subjectim[1, order - 1] - 1
    np.testing.assert_array_equal(t["nsd_id"], expect)
    assert (t["split"] == np.where(expect < 10, "test", "train")).all()
    assert list(t["stimulus_id"][:3]) == [f"img{i}" for i in expect[:3]]
    assert (t["coco_id"] == t["nsd_id"] + 5000).all()


def test_load_nsd(tmp_path):
    subjectim, order, vols, roi = write_nsd(tmp_path)
    ts = load_nsd(tmp_path, "subj02", zscore=None, cache_dir=tmp_path / "cache")
    assert ts.subject == "subj02"
    assert isinstance(ts.data, np.memmap)
    m = roi > 0
    assert ts.n_features == int(m.sum())
    want = np.concatenate([to_int16(v)[:, m] / 300.0 for v in vols])
    np.testing.assert_allclose(np.asarray(ts.data), want, rtol=1e-6, atol=1e-6)
    assert set(ts.trials["split"]) <= {"train", "test"}
    assert ts.info.roi_names == {1: "nsdgeneral"}
    # z-scored per session from training trials; a subset of sessions
    z = load_nsd(tmp_path, 2, sessions=[2, 3])
    assert z.n_trials == 40 and set(z.trials["session"]) == {"02", "03"}
    t = z.trials
    rows = ((t["session"] == "02") & (t["split"] == "train")).to_numpy()
    np.testing.assert_allclose(np.asarray(z.data)[rows].mean(0), 0, atol=1e-4)
    # session 2 starts at trial 20 of masterordering
    np.testing.assert_array_equal(t["nsd_id"][:20], subjectim[1, order[20:40] - 1] - 1)
    avg = load_nsd(tmp_path, 2, average_repetitions=True, cache_dir=tmp_path / "cache")
    assert avg.n_trials == ts.trials["stimulus_id"].nunique()


def test_load_nsd_without_stimulus_column_and_errors(tmp_path):
    write_nsd(tmp_path, stim_ids=False)
    ts = load_nsd(tmp_path, 2, sessions=[1])
    assert ts.trials["stimulus_id"].str.fullmatch(r"nsd\d{5}").all()
    with pytest.raises(FileNotFoundError, match=r"Session\(s\) \[7\]"):
        load_nsd(tmp_path, 2, sessions=[7])
    with pytest.raises(FileNotFoundError, match="ROI not found"):
        load_nsd(tmp_path, 1)
    with pytest.raises(ValueError, match="'subject' parameter"):
        load_nsd(tmp_path, "alice")
