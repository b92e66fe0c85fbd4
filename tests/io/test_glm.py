"""The vectorised single-trial GLM against nilearn's own per-trial FirstLevelModel loop."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from braindecode_kit.io import glm


def _data(seed=0, n_scans=80, n_trials=12, n_vox=30, tr=2.0):
    rng = np.random.default_rng(seed)
    onsets = 4.0 + np.arange(n_trials) * 12.0 + rng.uniform(0, 2, n_trials)
    times = glm.frame_times(n_scans, tr)
    X, N, names = glm.trial_design(times, onsets, np.full(n_trials, 3.0))
    B = rng.normal(size=(n_trials, n_vox))
    Y = 800 + X @ B * 8 + N @ rng.normal(size=(N.shape[1], n_vox)) + rng.normal(
        size=(n_scans, n_vox)) * 3
    return Y, X, N, onsets, B, names


def _nilearn_betas(Y, onsets, tr, lss: bool):
    from nilearn.glm.first_level import FirstLevelModel

    n_scans, n_vox = Y.shape
    img = nib.Nifti1Image(Y.T.reshape(n_vox, 1, 1, n_scans), np.eye(4))
    mask = nib.Nifti1Image(np.ones((n_vox, 1, 1), np.uint8), np.eye(4))
    ev = pd.DataFrame({"onset": onsets, "duration": 3.0})
    kw = dict(t_r=tr, mask_img=mask, noise_model="ols", hrf_model="glover",
              drift_model="cosine", high_pass=0.01, slice_time_ref=0.0, minimize_memory=True)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if lss:
            for i in range(len(onsets)):
                e = ev.copy()
                e["trial_type"] = ["trial" if j == i else "other" for j in range(len(onsets))]
                m = FirstLevelModel(**kw).fit(img, events=e)
                out.append(m.compute_contrast("trial", output_type="effect_size").get_fdata()
                           .ravel())
        else:
            e = ev.copy()
            e["trial_type"] = [f"t{j:03d}" for j in range(len(onsets))]
            m = FirstLevelModel(**kw).fit(img, events=e)
            out = [m.compute_contrast(f"t{j:03d}", output_type="effect_size").get_fdata().ravel()
                   for j in range(len(onsets))]
    return np.array(out)


def test_design_columns_one_per_trial():
    Y, X, N, onsets, _, names = _data()
    assert X.shape == (80, 12)
    assert "constant" in names
    # each trial regressor peaks ~5 s after its onset (glover HRF)
    peaks = glm.frame_times(80, 2.0)[X.argmax(axis=0)]
    assert np.all((peaks - onsets > 2) & (peaks - onsets < 10))


@pytest.mark.parametrize("hrf", ["glover", "spm"])
def test_fast_regressors_equal_nilearn_design(hrf):
    from nilearn.glm.first_level import make_first_level_design_matrix

    times = glm.frame_times(70, 1.3)
    onsets = np.array([3.1, 10.0, 17.77, 30.2, 55.5])
    durs = np.array([3.0, 3.0, 0.0, 2.5, 3.0])
    X, N, names = glm.trial_design(times, onsets, durs, hrf_model=hrf)
    ev = pd.DataFrame({"onset": onsets, "duration": durs,
                       "trial_type": [f"t{i}" for i in range(5)]})
    ref = make_first_level_design_matrix(times, ev, hrf_model=hrf, drift_model="cosine",
                                         high_pass=0.01)
    np.testing.assert_allclose(X, ref[[f"t{i}" for i in range(5)]].to_numpy(), atol=1e-10)
    np.testing.assert_allclose(N, ref[names].to_numpy(), atol=1e-12)


@pytest.mark.parametrize("method", ["lss", "lsa"])
def test_matches_nilearn_loop(method):
    Y, X, N, onsets, _, _ = _data(seed=1)
    ours = glm.fit_single_trial(glm.percent_signal_change(Y), X, N, method=method)
    ref = _nilearn_betas(Y, onsets, 2.0, lss=method == "lss")
    r = [np.corrcoef(ours[:, v], ref[:, v])[0, 1] for v in range(Y.shape[1])]
    assert min(r) > 0.999
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_lss_differs_from_lsa_and_recovers_truth():
    Y, X, N, _, B, _ = _data(seed=2)
    lss = glm.fit_lss(Y, X, N)
    lsa = glm.fit_lsa(Y, X, N)
    assert not np.allclose(lss, lsa)
    r = np.corrcoef(lss.ravel(), B.ravel())[0, 1]
    assert r > 0.9


def test_single_trial_lss_is_lsa():
    Y, X, N, *_ = _data(n_trials=1, n_scans=30)
    np.testing.assert_allclose(glm.fit_lss(Y, X, N), glm.fit_lsa(Y, X, N))


def test_rank_deficient_and_bad_hrf():
    Y, X, N, *_ = _data()
    X2 = np.hstack([X, X[:, :1]])  # a duplicated trial
    with pytest.raises(ValueError, match="rank-deficient"):
        glm.fit_lsa(Y, X2, N)
    with pytest.raises(ValueError, match="singular"):
        glm.fit_lss(Y, np.hstack([X[:, :1], X[:, :1]]), N)  # two identical trials
    with pytest.raises(ValueError, match="hrf_model"):
        glm.trial_design(glm.frame_times(20, 2.0), [2.0], [1.0], hrf_model="glover + derivative")
    with pytest.raises(ValueError, match="same number of scans"):
        glm.fit_lss(Y[:-1], X, N)
    with pytest.raises(ValueError, match="method"):
        glm.fit_single_trial(Y, X, N, method="lsx")
