"""load_fmri / load_fmri_bids / load_betas: results, masks and every refused input."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from _fmri_fixtures import AFFINE, SHAPE, make_run, write_bids

from braindecode_kit.io import (
    Int16OverflowError,
    load_betas,
    load_fmri,
    load_fmri_bids,
    to_int16,
    zscore_sessions,
)
from braindecode_kit.splits import SplitLeakError
from braindecode_kit.trialset import TrialSet

NIBABEL = Path(__file__).parents[1] / "data" / "nibabel"


@pytest.fixture(scope="module")
def run0():
    return make_run(seed=0)


@pytest.fixture
def caplog_bk(caplog):
    logger = logging.getLogger("braindecode_kit")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


# --------------------------------------------------------------------------- load_fmri
def test_load_fmri_single_run_recovers_betas(run0):
    img, ev, betas, _ = run0
    ts = load_fmri(img, ev)
    assert isinstance(ts, TrialSet)
    assert ts.data.shape == (len(ev), int(np.prod(SHAPE)))
    assert ts.data.dtype == np.float32
    order = np.argsort(ev["onset"].to_numpy(), kind="stable")
    r = [np.corrcoef(ts.data[:, v], betas[order, v])[0, 1] for v in range(betas.shape[1])]
    assert np.median(r) > 0.9
    t = ts.trials
    assert list(t["stimulus_id"]) == list(ev["stimulus_id"].iloc[order])
    assert set(t["split"]) == {"train", "test"}
    assert t["repetition"].max() >= 1  # stimuli repeat within the run
    # to_nifti puts voxel values back where they came from
    vol = ts.info.to_nifti(ts.data[0])
    np.testing.assert_allclose(vol.get_fdata()[tuple(ts.info.ijk.T)], ts.data[0], rtol=1e-6)
    np.testing.assert_allclose(vol.affine, AFFINE)


def test_load_fmri_lsa_and_lss_differ_and_multi_run(run0):
    img, ev, _, _ = run0
    img1, ev1, _, _ = make_run(seed=1)
    lss = load_fmri([img, img1], [ev, ev1], session="02", subject="07")
    lsa = load_fmri([img, img1], [ev, ev1], method="lsa", subject="07")
    assert lss.n_trials == len(ev) + len(ev1)
    assert list(pd.unique(lss.trials["run"])) == ["1", "2"]
    assert set(lss.trials["session"]) == {"02"}
    assert lss.subject == "07"
    assert not np.allclose(lss.data, lsa.data)
    assert lss.trials.index.is_unique


def test_load_fmri_events_from_tsv_with_fixation_rows(tmp_path, run0):
    img, ev, _, _ = run0
    fix = pd.DataFrame({"onset": [1.0], "duration": [1.0], "trial_type": ["fixation"],
                        "stimulus_id": ["n/a"]})
    both = pd.concat([ev, fix], ignore_index=True)
    path = tmp_path / "x_events.tsv"
    both.to_csv(path, sep="\t", index=False)
    ts = load_fmri(img, path)
    assert ts.n_trials == len(ev)  # the fixation row is nuisance, not a trial


def test_load_fmri_masks(run0, tmp_path):
    from nilearn.maskers import NiftiMasker

    img, ev, _, _ = run0
    m = np.zeros(SHAPE, np.uint8)
    m[1:3, 1:3, :] = 1
    mask = nib.Nifti1Image(m, AFFINE)
    nib.save(mask, tmp_path / "mask.nii.gz")
    a = load_fmri(img, ev, mask=tmp_path / "mask.nii.gz")
    assert a.n_features == int(m.sum())
    assert a.info.mask_array().sum() == m.sum()
    # fitted and unfitted nilearn maskers give the same voxels and betas
    b = load_fmri(img, ev, mask=NiftiMasker(mask_img=mask, standardize=None).fit())
    np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-5)
    c = load_fmri(img, ev, mask=NiftiMasker(mask_img=mask, standardize=None))
    np.testing.assert_allclose(a.data, c.data, rtol=1e-5, atol=1e-5)
    # atlas + label names
    atlas = np.full(SHAPE, 2, np.int16)
    atlas[:2] = 1
    d = load_fmri(img, ev, atlas=nib.Nifti1Image(atlas, AFFINE),
                  atlas_labels={1: "early", 2: "late"}, rois=["early"])
    assert d.n_features == 2 * SHAPE[1] * SHAPE[2]
    assert set(d.info.roi) == {1} and d.info.roi_names == {1: "early", 2: "late"}
    with pytest.raises(ValueError, match="'rois' parameter"):
        load_fmri(img, ev, atlas=nib.Nifti1Image(atlas, AFFINE),
                  atlas_labels={1: "early"}, rois=["V9"])


def test_mask_grid_mismatch_refused(run0):
    img, ev, _, _ = run0
    wrong_shape = nib.Nifti1Image(np.ones((5, 4, 2), np.uint8), AFFINE)
    with pytest.raises(ValueError, match="does not match the BOLD image's grid|grid"):
        load_fmri(img, ev, mask=wrong_shape)
    wrong_affine = nib.Nifti1Image(np.ones(SHAPE, np.uint8), np.diag([2.0, 2, 2, 1]))
    with pytest.raises(ValueError, match="affine"):
        load_fmri(img, ev, mask=wrong_affine)


def test_tr_disagreeing_with_header_refused(run0):
    img, ev, _, _ = run0
    with pytest.raises(ValueError, match=r"repetition time 1.5 s .*zooms\[3\] says 2.0 s"):
        load_fmri(img, ev, tr=1.5)
    assert load_fmri(img, ev, tr=2.0).n_trials == len(ev)
    with pytest.raises(ValueError, match="'tr' must be a positive"):
        load_fmri(img, ev, tr=-2)


def test_events_problems_refused(run0):
    img, ev, _, _ = run0
    with pytest.raises(ValueError, match=r"missing the required column\(s\) \['stimulus_id'\]"):
        load_fmri(img, ev.drop(columns="stimulus_id"))
    late = ev.copy()
    late.loc[0, "onset"] = 179.0  # 90 scans x 2 s = 180 s
    with pytest.raises(ValueError, match="end after the run"):
        load_fmri(img, late)
    overlap = ev.copy()
    overlap.loc[1, "onset"] = overlap.loc[0, "onset"] + 1.0
    with pytest.raises(ValueError, match="overlap"):
        load_fmri(img, overlap)
    empty = ev.iloc[:0]
    with pytest.raises(ValueError, match="has no trials"):
        load_fmri(img, empty)
    with pytest.raises(ValueError, match="one table per BOLD run"):
        load_fmri([img, img], [ev])
    neg = ev.copy()
    neg.loc[0, "onset"] = -1
    with pytest.raises(ValueError, match="start before the run"):
        load_fmri(img, neg)


def test_nan_and_constant_voxels(run0, caplog_bk):
    img, ev, _, _ = run0
    data = img.get_fdata().astype(np.float32)
    data[0, 0, 0, 5] = np.nan
    data[1, 0, 0, :] = 7.0
    bad = nib.Nifti1Image(data, AFFINE, img.header)
    with caplog_bk.at_level(logging.WARNING, logger="braindecode_kit"):
        ts = load_fmri(bad, ev, mask=nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE))
    assert ts.n_features == int(np.prod(SHAPE)) - 2
    assert "Dropped 2 of 60 voxels" in caplog_bk.text
    assert np.isfinite(ts.data).all()
    with pytest.raises(ValueError, match=r"2 voxel\(s\) .* NaN"):
        load_fmri(bad, ev, mask=nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE),
                  bad_voxels="raise")


def test_leaking_split_refused(run0):
    img, ev, _, _ = run0
    leak = ev.copy()
    sid = leak["stimulus_id"].iloc[0]
    idx = leak.index[leak["stimulus_id"] == sid]
    leak.loc[idx, "split"] = ["train", "test"][: len(idx)] + ["test"] * (len(idx) - 2)
    if len(idx) < 2:
        leak.loc[leak.index[1], "stimulus_id"] = sid
        leak.loc[leak.index[:2], "split"] = ["train", "test"]
    with pytest.raises(SplitLeakError, match=sid):
        load_fmri(img, leak)


def test_bad_options(run0):
    img, ev, _, _ = run0
    with pytest.raises(ValueError, match="'method' parameter"):
        load_fmri(img, ev, method="glmsingle")
    with pytest.raises(ValueError, match="'noise_model' parameter"):
        load_fmri(img, ev, noise_model="ar1")
    with pytest.raises(ValueError, match="'bad_voxels' parameter"):
        load_fmri(img, ev, bad_voxels="keep")


# --------------------------------------------------------------------------- nibabel files
def test_nibabel_functional_as_bold():
    """NiBabel's real 4-D functional.nii (TR 2 s, 20 volumes) through a tiny GLM."""
    bold = NIBABEL / "functional.nii"
    ev = pd.DataFrame({"onset": [4.0, 14.0, 26.0], "duration": 2.0,
                       "stimulus_id": ["a", "b", "c"]})
    ts = load_fmri(bold, ev)
    img = nib.load(bold)
    assert ts.data.shape == (3, int(np.prod(img.shape[:3])))
    assert np.isfinite(ts.data).all()
    np.testing.assert_allclose(ts.info.affine, img.affine)
    with pytest.raises(ValueError, match="disagrees"):
        load_fmri(bold, ev, tr=2.5)


def test_nibabel_anatomical_refused_as_bold():
    ev = pd.DataFrame({"onset": [1.0], "duration": 1.0, "stimulus_id": ["a"]})
    with pytest.raises(ValueError, match="must be a 4-D image.*3-D"):
        load_fmri(NIBABEL / "anatomical.nii", ev)


def test_nibabel_nifti2_header_tr_2000s_refused():
    """example_nifti2.nii.gz's header stores the TR in ms but labels it seconds."""
    ev = pd.DataFrame({"onset": [0.0], "duration": 1.0, "stimulus_id": ["a"]})
    with pytest.raises(ValueError, match="2000.0 s"):
        load_fmri(NIBABEL / "example_nifti2.nii.gz", ev, tr=2.0)


# --------------------------------------------------------------------------- BIDS
@pytest.fixture(scope="module")
def bids_root(tmp_path_factory):
    return write_bids(tmp_path_factory.mktemp("bids"))


def test_load_fmri_bids(bids_root):
    ts = load_fmri_bids(bids_root, "sub-01")
    assert ts.n_trials == 4 * 14
    assert ts.n_features == int(np.prod(SHAPE)) - 1  # brain mask drops one voxel
    assert set(ts.trials["session"]) == {"01", "02"}
    assert ts.info.roi_names == {1: "early_visual", 2: "higher_visual", 3: "non_visual"}
    # z-scored per session with training-trial statistics: train rows mean 0, std 1
    t = ts.trials
    for ses in ("01", "02"):
        rows = ((t["session"] == ses) & (t["split"] == "train")).to_numpy()
        np.testing.assert_allclose(ts.data[rows].mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(ts.data[rows].std(0), 1, atol=1e-3)
        test_rows = ((t["session"] == ses) & (t["split"] == "test")).to_numpy()
        assert np.abs(ts.data[test_rows].mean(0)).max() > 1e-3  # stats not from test trials
    early = load_fmri_bids(bids_root, 1, sessions=[2], rois=["early_visual"],
                           average_repetitions=True)
    assert set(early.info.roi) == {1}
    assert early.n_trials == early.trials["stimulus_id"].nunique()
    assert (early.trials["repetition"] >= 1).all()


def test_bids_sidecar_tr_disagreeing(bids_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(bids_root, root)
    side = next(root.rglob("*run-01_bold.json"))
    side.write_text(json.dumps({"RepetitionTime": 1.0}))
    with pytest.raises(ValueError, match="sidecar.*disagrees|disagrees.*header"):
        load_fmri_bids(root, "01")


def test_bids_missing_subject_and_session(bids_root):
    with pytest.raises(FileNotFoundError, match="sub-09"):
        load_fmri_bids(bids_root, "09")
    with pytest.raises(FileNotFoundError, match="Session"):
        load_fmri_bids(bids_root, "01", sessions=["05"])


# --------------------------------------------------------------------------- zscore
def test_zscore_sessions_excludes_test_trials():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 3)).astype(np.float32)
    data[:5] += 100  # test trials far away: would shift an all-trial mean
    trials = pd.DataFrame({"session": "01", "split": ["test"] * 5 + ["train"] * 15})
    z = zscore_sessions(data.copy(), trials)
    np.testing.assert_allclose(z[5:].mean(0), 0, atol=1e-5)
    z_all = zscore_sessions(data.copy(), trials, train_only_stats=False)
    assert np.abs(z_all[5:].mean(0)).min() > 0.3


# --------------------------------------------------------------------------- int16
def test_to_int16_overflow():
    np.testing.assert_array_equal(to_int16(np.array([0.0, 1.0, -2.5])), [0, 300, -750])
    with pytest.raises(Int16OverflowError, match=r"1 value\(s\) do not fit in int16.*109.2"):
        to_int16(np.array([0.0, 120.0]))
    with pytest.raises(Int16OverflowError):
        to_int16(np.array([np.nan]))


# --------------------------------------------------------------------------- load_betas
def _write_nsd_h5(path, vols, chunks=True):
    """vols: (n, X, Y, Z) float PSC -> NSD HDF5 (n, Z, Y, X) int16 x 300."""
    with h5py.File(path, "w") as f:
        arr = to_int16(vols).transpose(0, 3, 2, 1)
        f.create_dataset("betas", data=arr,
                         chunks=(arr.shape[0], 1, 1, 1) if chunks else None)


@pytest.fixture(scope="module")
def nsd_like(tmp_path_factory):
    d = tmp_path_factory.mktemp("betas")
    rng = np.random.default_rng(3)
    n = 12
    vols = [rng.normal(size=(n,) + SHAPE) * 2 for _ in range(2)]
    paths = []
    for i, v in enumerate(vols):
        p = d / f"betas_session{i + 1:02d}.hdf5"
        _write_nsd_h5(p, v)
        paths.append(p)
    m = np.zeros(SHAPE, np.int16)
    m[1:4, 1:3, :] = 1
    m[0, 0, 0] = -1
    mask = nib.Nifti1Image(m, AFFINE)
    stim = [f"s{i % 8:02d}" for i in range(2 * n)]
    trials = pd.DataFrame({"stimulus_id": stim,
                           "split": ["test" if s in ("s00", "s01") else "train" for s in stim]})
    return d, paths, vols, mask, trials


def test_load_betas_hdf5_matches_nifti_and_caches(nsd_like, tmp_path):
    d, paths, vols, mask, trials = nsd_like
    m = mask.get_fdata() > 0
    raw = load_betas(paths, trials, mask=mask, zscore=None)
    want = np.concatenate([to_int16(v)[:, m] / 300.0 for v in vols])
    np.testing.assert_allclose(raw.data, want, rtol=1e-6, atol=1e-6)
    # the same betas as 4-D NIfTI (int16, x300) give the same numbers
    niis = [nib.Nifti1Image(np.moveaxis(to_int16(v), 0, -1), AFFINE) for v in vols]
    from_nii = load_betas(niis, trials, mask=mask, zscore=None)
    np.testing.assert_allclose(from_nii.data, raw.data, rtol=1e-6)
    # cached: memory-mapped, and reused
    cache = tmp_path / "cache"
    a = load_betas(paths, trials, mask=mask, cache_dir=cache)
    assert isinstance(a.data, np.memmap)
    files = sorted(os.listdir(cache))
    assert len([f for f in files if f.endswith(".npy")]) == 1
    assert not [f for f in files if f.startswith(".")]  # no temp left behind
    b = load_betas(paths, trials, mask=mask, cache_dir=cache)
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    assert sorted(os.listdir(cache)) == files
    z = a.trials
    train = (z["split"] == "train").to_numpy() & (z["session"] == "01").to_numpy()
    np.testing.assert_allclose(np.asarray(a.data)[train].mean(0), 0, atol=1e-4)
    assert list(a.trials["source_file"].unique()) == [0, 1]


def test_load_betas_average_repetitions(nsd_like, tmp_path):
    _, paths, _, mask, trials = nsd_like
    per_trial = load_betas(paths, trials, mask=mask)
    avg = load_betas(paths, trials, mask=mask, average_repetitions=True, cache_dir=tmp_path)
    ref = per_trial.average_repetitions()
    assert list(avg.trials.index) == list(ref.trials.index)
    np.testing.assert_allclose(np.asarray(avg.data), ref.data, rtol=1e-5, atol=1e-5)
    assert isinstance(avg.data, np.memmap)


def test_load_betas_refusals(nsd_like, tmp_path, caplog_bk):
    d, paths, vols, mask, trials = nsd_like
    with pytest.raises(ValueError, match="'mask' is required for HDF5"):
        load_betas(paths, trials)
    with pytest.raises(ValueError, match="24 trials"):
        load_betas(paths, trials.iloc[:-1], mask=mask)
    leak = trials.copy()
    leak.loc[0, "split"] = "train"  # s00 is test elsewhere
    with pytest.raises(SplitLeakError):
        load_betas(paths, leak, mask=mask, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
    wrong = nib.Nifti1Image(np.ones((4, 4, 3), np.uint8), AFFINE)
    with pytest.raises(ValueError, match="grid"):
        load_betas(paths, trials, mask=wrong)
    # saturated int16 values: flagged, or refused with nothing written
    sat = tmp_path / "sat.hdf5"
    with h5py.File(sat, "w") as f:
        arr = to_int16(vols[0]).transpose(0, 3, 2, 1)
        arr[0, 0, 1, 1] = 32767
        f.create_dataset("betas", data=arr)
    with caplog_bk.at_level(logging.WARNING, logger="braindecode_kit"):
        load_betas(sat, trials.iloc[:12], mask=mask)
    assert "1 int16 value(s) of sat.hdf5 sit at the type's limit" in caplog_bk.text
    with pytest.raises(Int16OverflowError, match="limit"):
        load_betas(sat, trials.iloc[:12], mask=mask, saturation="raise",
                   cache_dir=tmp_path / "s")
    assert not list((tmp_path / "s").iterdir())
    # constant voxel: dropped or refused
    const = tmp_path / "const.hdf5"
    v = vols[0].copy()
    v[:, 1, 1, 0] = 0.5
    _write_nsd_h5(const, v, chunks=False)
    ts = load_betas(const, trials.iloc[:12], mask=mask, cache_dir=tmp_path / "k")
    assert ts.n_features == int((mask.get_fdata() > 0).sum()) - 1
    assert not ts.info.mask_array()[1, 1, 0]
    with pytest.raises(ValueError, match="constant"):
        load_betas(const, trials.iloc[:12], mask=mask, bad_voxels="raise")
    with pytest.raises(ValueError, match="'scale' must be"):
        load_betas(paths, trials, mask=mask, scale=-1)


def test_confounds_match_nilearn(run0):
    import warnings

    from nilearn.glm.first_level import FirstLevelModel

    img, ev, _, mask = run0
    rng = np.random.default_rng(5)
    conf = pd.DataFrame({"tx": rng.normal(size=img.shape[3]).cumsum(),
                         "ry": rng.normal(size=img.shape[3])})
    ts = load_fmri(img, ev, mask=mask, confounds=conf, method="lsa")
    e = ev.sort_values("onset").reset_index(drop=True)
    e["trial_type"] = [f"t{i:03d}" for i in range(len(e))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FirstLevelModel(t_r=2.0, mask_img=mask, noise_model="ols", slice_time_ref=0.0,
                            minimize_memory=True).fit(img, events=e[["onset", "duration",
                                                                     "trial_type"]],
                                                      confounds=conf)
        ref = np.array([m.masker_.transform(m.compute_contrast(f"t{i:03d}",
                                                               output_type="effect_size"))
                        .ravel() for i in range(len(e))])
    np.testing.assert_allclose(ts.data, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    without = load_fmri(img, ev, mask=mask, method="lsa")
    assert not np.allclose(without.data, ts.data)
    with pytest.raises(ValueError, match="one row per scan"):
        load_fmri(img, ev, confounds=conf.iloc[:-3])


def test_load_betas_with_masker(nsd_like):
    from nilearn.maskers import NiftiMasker

    _, paths, _, mask, trials = nsd_like
    a = load_betas(paths, trials, mask=mask)
    binary = nib.Nifti1Image((mask.get_fdata() > 0).astype(np.uint8), mask.affine)
    b = load_betas(paths, trials, mask=NiftiMasker(mask_img=binary, standardize=None))
    np.testing.assert_array_equal(a.data, b.data)
    assert a.info.same_space(b.info)
