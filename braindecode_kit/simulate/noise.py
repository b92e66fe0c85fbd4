"""The noise model of the simulated fMRI subjects, and its calibration to NSD.

Noise enters at two levels, as in real data:

Trial level (in the response amplitude)
    Each trial's response is the noise-free response to its image plus trial-to-trial
    variability: an independent part per voxel and a part (35 %) shared across voxels
    through 12 spatially smooth factors (noise correlations between voxels, of the kind
    GLMdenoise was made to remove with 5-15 components: Kay et al. 2013, Front. Neurosci.).
Time-series level (in the BOLD signal)
    AR(1) noise per voxel (coefficient 0.15-0.45 at TR 1.5 s; Purdon & Weisskoff 1998;
    Woolrich et al. 2001), slow drift (a random low-order cosine basis, periods >= 128 s,
    plus a linear trend), a per-voxel baseline intensity of a few hundred to a few
    thousand (a smooth coil-sensitivity field) so percent signal change is meaningful.

Calibration (``snr``)
    NSD reports noise-ceiling SNRs (ncsnr: the standard deviation across images of the
    true response over the standard deviation of the single-trial beta noise) mostly
    between 0.1 and 0.6 in nsdgeneral (Allen et al. 2022, Fig. 2). Each visual voxel draws
    a target ncsnr ``snr_subject * LogNormal(0, 0.45)`` (5-95 % range 0.48-2.1 x the
    median), with ``snr_subject = snr * LogNormal(0, 0.15)`` (subjects differ, as NSD's
    do; early visual x 1.15, higher visual x 0.85). The voxel's beta-level noise standard
    deviation is drawn (median 2 % signal change, smooth over cortex) and its
    stimulus-driven amplitude is set to ``target_ncsnr x noise_sd``. The beta-level noise
    variance is split: ``1 - glm_fraction`` trial-level variability and ``glm_fraction``
    measurement noise, i.e. the variance that the time-series noise leaves in the best
    linear unbiased (GLS) single-trial estimate for this design. So the time-series noise
    level follows from the design: ``ts_sd**2 = glm_fraction * beta_sd**2 / g`` with ``g``
    the GLS variance factor of a single-trial beta at the voxel's AR(1) coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseModel", "make_noise_model", "gls_variance_factor", "cosine_drift"]

#: Median target ncsnr of responsive voxels when ``snr=None`` (NSD nsdgeneral).
NSD_MEDIAN_NCSNR = 0.3
#: Share of the trial-level noise variance carried by shared, spatially smooth factors.
SHARED_FRACTION = 0.35
#: Number of shared noise factors (GLMdenoise typically removes 5-15 noise components).
N_FACTORS = 12


def cosine_drift(frame_times: np.ndarray, high_pass: float = 1.0 / 128) -> np.ndarray:
    """A discrete cosine drift basis (periods >= 1 / high_pass) without the constant.

    The same family as nilearn's ``drift_model="cosine"`` design columns.
    """
    n = len(frame_times)
    dt = (frame_times[-1] - frame_times[0]) / max(n - 1, 1)
    order = int(np.floor(2 * n * high_pass * dt))
    t = np.arange(n)
    cols = [np.sqrt(2.0 / n) * np.cos(np.pi / n * (t + 0.5) * k) for k in range(1, max(order, 1))]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def _whiten(X: np.ndarray, rho: float) -> np.ndarray:
    out = np.empty_like(X)
    out[0] = X[0]
    out[1:] = (X[1:] - rho * X[:-1]) / np.sqrt(1.0 - rho**2)
    return out


def gls_variance_factor(X: np.ndarray, n_trials: int, rho: float) -> np.ndarray:
    """Variance of each single-trial GLS beta for unit-variance stationary AR(1) noise.

    Parameters
    ----------
    X : np.ndarray
        ``(n_scans, n_regressors)`` design whose first ``n_trials`` columns are the trials
        (the rest: nuisance, drift, constant).
    n_trials : int
        Number of trial columns.
    rho : float
        AR(1) coefficient.
    """
    Xw = _whiten(np.asarray(X, np.float64), rho)
    cov = np.linalg.inv(Xw.T @ Xw)
    return np.diag(cov)[:n_trials].copy()


@dataclass
class NoiseModel:
    """One subject's noise model (all arrays per voxel, percent signal change units).

    ``beta_sd``: total beta-level noise sd; ``trial_sd``: independent trial-level sd;
    ``loadings`` ``(V, K)``: shared trial-level noise factors; ``ts_sd``: time-series
    noise sd; ``ar1``: AR(1) coefficient; ``glm_factor``: GLS variance factor ``g``;
    ``baseline``: raw intensity; ``drift_sd``: sd of each drift-basis coefficient.
    """

    beta_sd: np.ndarray
    trial_sd: np.ndarray
    loadings: np.ndarray
    ts_sd: np.ndarray
    ar1: np.ndarray
    glm_factor: np.ndarray
    baseline: np.ndarray
    drift_sd: float

    @property
    def beta_diag(self) -> np.ndarray:
        """The diagonal (independent) part of the beta-level noise variance."""
        return (self.trial_sd**2 + self.ts_sd**2 * self.glm_factor).astype(np.float64)

    def sample_trial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Trial-level noise ``(n, V)`` (independent + shared factors)."""
        V, K = self.loadings.shape
        e = rng.standard_normal((n, V), dtype=np.float32) * self.trial_sd
        if K:
            e += rng.standard_normal((n, K), dtype=np.float32) @ self.loadings.T
        return e.astype(np.float32)

    def sample_ar1(self, n_scans: int, rng: np.random.Generator) -> np.ndarray:
        """Stationary AR(1) time-series noise, ``(V, n_scans)`` float32, sd ``ts_sd``.

        Voxel-major layout (each voxel's series contiguous), as it is filtered.
        """
        from scipy.signal import lfilter

        V = self.ts_sd.shape[0]
        out = np.empty((V, n_scans), np.float32)
        for a in np.unique(self.ar1):  # few distinct coefficients (quantised)
            rows = np.flatnonzero(self.ar1 == a)
            a = float(a)
            e = rng.standard_normal((rows.size, n_scans), dtype=np.float32)
            e[:, 0] /= np.sqrt(1.0 - a**2)  # stationary start
            out[rows] = lfilter([np.sqrt(1.0 - a**2)], [1.0, -a], e, axis=1)
        out *= self.ts_sd[:, None]
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """All parameters as plain arrays (for ``np.savez``)."""
        return {f"noise_{k}": np.asarray(getattr(self, k)) for k in self.__dataclass_fields__}


def make_noise_model(
    roi: np.ndarray,
    field: np.ndarray,
    rng: np.random.Generator,
    *,
    glm_factor_fn,
    glm_fraction: float = 0.1,
    shared_fraction: float = SHARED_FRACTION,
    n_factors: int = N_FACTORS,
) -> NoiseModel:
    """Draw one subject's noise model.

    Parameters
    ----------
    roi : np.ndarray
        ``(V,)`` labels (1, 2, 3).
    field : np.ndarray
        ``(V, 2 + n_factors)`` smooth unit-variance random fields over the brain (noise
        level, baseline intensity, factor loadings).
    rng : np.random.Generator
        The subject's generator.
    glm_factor_fn : callable
        ``rho (V,) -> g (V,)``: the design's GLS variance factor at each AR coefficient.
    glm_fraction : float
        Share of the beta-level noise variance due to time-series (measurement) noise.
    shared_fraction : float
        Share of the trial-level variance carried by the shared factors.
    n_factors : int
        Number of shared noise factors.
    """
    V = roi.shape[0]
    beta_sd = 2.0 * np.exp(0.2 * field[:, 0] + 0.1 * rng.standard_normal(V))
    trial_var = (1.0 - glm_fraction) * beta_sd**2
    load = field[:, 2:2 + n_factors] + 0.5 * rng.standard_normal((V, n_factors))
    load /= np.linalg.norm(load, axis=1, keepdims=True) + 1e-12
    loadings = load * np.sqrt(shared_fraction * trial_var)[:, None]
    trial_sd = np.sqrt((1.0 - shared_fraction) * trial_var)
    ar1 = np.round(rng.uniform(0.15, 0.45, V) / 0.05) * 0.05  # quantised: fast filtering
    g = np.asarray(glm_factor_fn(ar1), np.float64)
    ts_sd = np.sqrt(glm_fraction * beta_sd**2 / g)
    baseline = 1000.0 * np.exp(0.35 * field[:, 1] + 0.05 * rng.standard_normal(V))
    baseline = np.clip(baseline, 300.0, 3000.0)
    return NoiseModel(
        beta_sd=beta_sd.astype(np.float32),
        trial_sd=trial_sd.astype(np.float32),
        loadings=loadings.astype(np.float32),
        ts_sd=ts_sd.astype(np.float32),
        ar1=ar1.astype(np.float32),
        glm_factor=g.astype(np.float32),
        baseline=baseline.astype(np.float32),
        drift_sd=1.0,
    )


def target_ncsnr(roi: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Per-voxel target ncsnr: ``snr_subject * LogNormal(0, 0.45)`` on visual voxels, 0 elsewhere."""
    V = roi.shape[0]
    snr_subject = snr * np.exp(0.15 * rng.standard_normal())
    out = snr_subject * np.exp(0.45 * rng.standard_normal(V))
    out *= np.where(roi == 1, 1.15, np.where(roi == 2, 0.85, 0.0))
    return out.astype(np.float32)
