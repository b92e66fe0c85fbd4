"""Single-trial GLM betas, vectorised over voxels: LSA and LSS by rank updates.

Two single-trial estimators are standard in the field:

- **LSA** (least squares - all): one general linear model whose design has one
  regressor per trial plus the nuisance regressors (drifts, constant, confounds).
- **LSS** (least squares - separate; Mumford et al., 2012, NeuroImage 59:2636): one
  model *per trial*, with that trial's regressor, one regressor for all the other
  trials, and the nuisance regressors; the trial's beta is kept.

The design matrices are built with nilearn's own tools
(:func:`nilearn.glm.first_level.make_first_level_design_matrix`: HRF convolution,
cosine/polynomial drifts, confounds), so the regressors are exactly those of a
:class:`nilearn.glm.first_level.FirstLevelModel` given the same events.

Both estimators solve all voxels at once. LSS does not refit one model per trial: by
the Frisch-Waugh-Lovell theorem the trial regressors ``X`` are residualised against the
nuisance design ``N`` once (``Xr = X - N pinv(N) X``); the model of trial ``i`` then
reduces to the two regressors ``xr_i`` and ``or_i = s - xr_i`` with ``s = Xr 1``, and
its 2 x 2 normal equations are read off one product ``Xr' Y`` (``n_trials x
n_voxels``) and the small Gram terms ``xr_i' xr_i``, ``xr_i' s`` and ``s' s``. The
residualised data are never needed because ``Xr`` is orthogonal to ``N``.

Only ordinary least squares (``noise_model="ols"``) is implemented; the results match
a loop of ``FirstLevelModel(noise_model="ols")`` fits to floating-point precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import check_option

__all__ = [
    "frame_times",
    "trial_design",
    "percent_signal_change",
    "fit_lsa",
    "fit_lss",
    "fit_single_trial",
]

_TRIAL_PREFIX = "trial_"


def frame_times(n_scans: int, tr: float, slice_time_ref: float = 0.0) -> np.ndarray:
    """Acquisition times of the scans, as :class:`~nilearn.glm.first_level.FirstLevelModel`
    computes them.

    Parameters
    ----------
    n_scans : int
        Number of volumes in the run.
    tr : float
        Repetition time in seconds.
    slice_time_ref : float
        Fraction of the TR at which the reference slice was acquired (0 = start).

    Returns
    -------
    times : ndarray, shape (n_scans,)
        Seconds.
    """
    start = slice_time_ref * tr
    end = (n_scans - 1 + slice_time_ref) * tr
    return np.linspace(start, end, n_scans)


def trial_design(
    times: np.ndarray,
    onsets: Sequence[float],
    durations: Sequence[float],
    *,
    hrf_model: str | None = "glover",
    drift_model: str | None = "cosine",
    high_pass: float = 0.01,
    drift_order: int = 1,
    confounds: np.ndarray | pd.DataFrame | None = None,
    min_onset: float = -24,
    other_events: pd.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Trial regressors and nuisance regressors of one run, with nilearn.

    Each trial becomes its own condition of
    :func:`nilearn.glm.first_level.make_first_level_design_matrix`; every other column
    (drifts, the constant, confounds) is nuisance.

    Parameters
    ----------
    times : ndarray, shape (n_scans,)
        Frame times in seconds (see :func:`frame_times`).
    onsets, durations : sequence of float
        One entry per trial, in seconds.
    hrf_model, drift_model, high_pass, drift_order, min_onset
        Passed to :func:`~nilearn.glm.first_level.make_first_level_design_matrix`.
        HRF models with derivatives are refused: a single-trial beta needs one
        regressor per trial.
    confounds : ndarray or DataFrame, shape (n_scans, n_confounds) | None
        Extra nuisance regressors (e.g. motion parameters).
    other_events : DataFrame | None
        Events that are not trials (``onset``, ``duration``, ``trial_type``; e.g.
        fixation or button presses): one nuisance regressor per ``trial_type``.

    Returns
    -------
    X : ndarray, shape (n_scans, n_trials)
        One HRF-convolved regressor per trial, in the order of ``onsets``.
    N : ndarray, shape (n_scans, n_nuisance)
        Drift, constant and confound regressors.
    nuisance_names : list of str
        Column names of ``N``.
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    if hrf_model is not None and (
        not isinstance(hrf_model, str) or "derivative" in hrf_model or hrf_model == "fir"
    ):
        raise ValueError(
            "Invalid value for the 'hrf_model' parameter. Single-trial betas need one "
            "regressor per trial: allowed values are 'glover', 'spm' or None, but got "
            f"{hrf_model!r} instead."
        )
    onsets = np.asarray(onsets, float)
    durations = np.asarray(durations, float)
    n_trials = onsets.size
    times = np.asarray(times, float)
    conf_arr, conf_names = None, None
    if confounds is not None:
        if isinstance(confounds, pd.DataFrame):
            conf_names = [str(c) for c in confounds.columns]
            conf_arr = confounds.to_numpy(dtype=float)
        else:
            conf_arr = np.asarray(confounds, float)
            if conf_arr.ndim == 1:
                conf_arr = conf_arr[:, None]
            conf_names = [f"confound_{i}" for i in range(conf_arr.shape[1])]
        if conf_arr.shape[0] != len(times):
            raise ValueError(
                f"confounds must have one row per scan ({len(times)}), but got "
                f"{conf_arr.shape[0]} rows."
            )
    other = None
    if other_events is not None and len(other_events):
        other = pd.DataFrame(
            {
                "onset": np.asarray(other_events["onset"], float),
                "duration": np.asarray(other_events["duration"], float),
                "trial_type": [f"nuisance_{t}" for t in other_events["trial_type"]],
            }
        )
    kw = dict(hrf_model=hrf_model, drift_model=drift_model, high_pass=high_pass,
              drift_order=drift_order, min_onset=min_onset)
    X = _fast_trial_regressors(times, onsets, durations, hrf_model, min_onset) if (
        n_trials
    ) else np.zeros((len(times), 0))
    if X is None:  # nilearn's private helpers moved: build the trial columns the long way
        names = [f"{_TRIAL_PREFIX}{i:06d}" for i in range(n_trials)]
        events = pd.DataFrame({"onset": onsets, "duration": durations, "trial_type": names})
        design = make_first_level_design_matrix(times, events, **kw)
        X = design[names].to_numpy(dtype=np.float64)
    nuisance = make_first_level_design_matrix(
        times, other, add_regs=conf_arr, add_reg_names=conf_names, **kw
    )
    return X, nuisance.to_numpy(dtype=np.float64), [str(c) for c in nuisance.columns]


def _fast_trial_regressors(times, onsets, durations, hrf_model, min_onset, oversampling=50):
    """One regressor per trial exactly as nilearn's ``compute_regressor`` builds it
    (its own high-resolution sampling, HRF kernel and resampling), with one FFT
    convolution for all trials instead of one ``np.convolve`` per trial. Returns None
    when nilearn's helpers are not available (then the caller uses the public path)."""
    try:
        from nilearn.glm.first_level import hemodynamic_models as hm

        sample, kernel, resample = hm._sample_condition, hm._hrf_kernel, hm._resample_regressor
    except (ImportError, AttributeError):  # pragma: no cover - other nilearn versions
        return None
    from scipy.signal import fftconvolve

    hr = []
    for onset, duration in zip(onsets, durations):
        reg, hr_times = sample(np.array([[onset], [duration], [1.0]]), times, oversampling,
                               min_onset)
        hr.append(reg)
    H = np.stack(hr, axis=1)
    tr = float(times[1] - times[0])
    (h,) = kernel(hrf_model, tr, oversampling, None)
    conv = fftconvolve(H, np.asarray(h, float)[:, None], axes=0)[: H.shape[0]]
    return np.asarray(resample(conv.T, hr_times, times)).reshape(len(times), len(onsets))


def percent_signal_change(Y: np.ndarray) -> np.ndarray:
    """Scale each voxel's time series to percent signal change around its mean.

    This is nilearn's :func:`~nilearn.glm.first_level.mean_scaling` (what
    ``FirstLevelModel(signal_scaling=0)`` does): ``100 * (Y / max(mean, 1) - 1)``.
    """
    from nilearn.glm.first_level import mean_scaling

    scaled, _ = mean_scaling(np.asarray(Y, np.float64), axis=0)
    return scaled


def fit_lsa(Y: np.ndarray, X: np.ndarray, N: np.ndarray) -> np.ndarray:
    """LSA betas: one least-squares solve of ``Y ~ [X, N]`` for all voxels.

    Parameters
    ----------
    Y : ndarray, shape (n_scans, n_voxels)
    X : ndarray, shape (n_scans, n_trials)
    N : ndarray, shape (n_scans, n_nuisance)

    Returns
    -------
    betas : ndarray, shape (n_trials, n_voxels)
    """
    Y, X, N = _check_shapes(Y, X, N)
    D = np.hstack([X, N])
    _check_rank(D, "LSA design (trial + nuisance regressors)")
    pinv = np.linalg.pinv(D)[: X.shape[1]]
    return pinv @ Y


def fit_lss(Y: np.ndarray, X: np.ndarray, N: np.ndarray) -> np.ndarray:
    """LSS betas (Mumford et al. 2012) for all trials and voxels, without refitting.

    For trial ``i`` the model is ``Y ~ x_i + (sum_{j != i} x_j) + N``. With ``Xr`` the
    trial regressors residualised against ``N`` and ``s = Xr 1``, trial ``i``'s normal
    equations are the 2 x 2 system ``G_i [b_i, c_i]' = [xr_i' Y, (s - xr_i)' Y]'`` with
    ``G_i = [[a, c - a], [c - a, s's - 2c + a]]``, ``a = xr_i' xr_i``, ``c = xr_i' s``.
    One ``(n_trials, n_scans) @ (n_scans, n_voxels)`` product gives every right-hand
    side.

    Parameters
    ----------
    Y : ndarray, shape (n_scans, n_voxels)
    X : ndarray, shape (n_scans, n_trials)
    N : ndarray, shape (n_scans, n_nuisance)

    Returns
    -------
    betas : ndarray, shape (n_trials, n_voxels)
    """
    Y, X, N = _check_shapes(Y, X, N)
    n_trials = X.shape[1]
    if n_trials == 1:  # no "other trials" regressor: LSS is LSA
        return fit_lsa(Y, X, N)
    _check_rank(np.hstack([X.sum(1, keepdims=True), N]), "LSS design (all trials + nuisance)")
    Xr = X - N @ (np.linalg.pinv(N) @ X)
    s = Xr.sum(axis=1)
    a = np.einsum("ti,ti->i", Xr, Xr)
    c = Xr.T @ s
    ss = float(s @ s)
    g11, g12, g22 = a, c - a, ss - 2.0 * c + a
    det = g11 * g22 - g12**2
    scale = np.maximum(g11 * g22, np.finfo(float).tiny)
    bad = det <= 1e-10 * scale
    if bad.any():
        raise ValueError(
            f"The LSS model is singular for {int(bad.sum())} trial(s) (first: trial index "
            f"{int(np.flatnonzero(bad)[0])}): the trial's regressor is collinear with the "
            "sum of the other trials' after removing drifts/confounds. Check the events "
            "(identical or empty trials) or use method='lsa'."
        )
    XtY = Xr.T @ Y  # (n_trials, n_voxels): xr_i' Y
    sY = XtY.sum(axis=0)  # s' Y
    betas = g22[:, None] * XtY - g12[:, None] * (sY[None, :] - XtY)
    betas /= det[:, None]
    return betas


def fit_single_trial(
    Y: np.ndarray, X: np.ndarray, N: np.ndarray, method: str = "lss"
) -> np.ndarray:
    """Single-trial betas by ``method`` ('lss' or 'lsa'); see :func:`fit_lss`, :func:`fit_lsa`."""
    check_option("method", method, ("lss", "lsa"))
    return fit_lss(Y, X, N) if method == "lss" else fit_lsa(Y, X, N)


def _check_shapes(Y, X, N):
    Y = np.asarray(Y, np.float64)
    X = np.asarray(X, np.float64)
    N = np.asarray(N, np.float64)
    if Y.ndim != 2 or X.ndim != 2 or N.ndim != 2:
        raise ValueError(
            f"Y, X and N must be 2D (n_scans, ...), got {Y.ndim}D, {X.ndim}D and {N.ndim}D."
        )
    if not (Y.shape[0] == X.shape[0] == N.shape[0]):
        raise ValueError(
            "Y, X and N must have the same number of scans (rows), got "
            f"{Y.shape[0]}, {X.shape[0]} and {N.shape[0]}."
        )
    if X.shape[1] == 0:
        raise ValueError("The design has no trial regressor (X has 0 columns).")
    return Y, X, N


def _check_rank(D: np.ndarray, what: str) -> None:
    rank = np.linalg.matrix_rank(D)
    if rank < D.shape[1]:
        raise ValueError(
            f"The {what} is rank-deficient: rank {rank} for {D.shape[1]} columns and "
            f"{D.shape[0]} scans. Too many trials for the run length, trials too close "
            "together, or collinear confounds."
        )
