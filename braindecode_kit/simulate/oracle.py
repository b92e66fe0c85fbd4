"""The oracle: the best achievable image identification from a simulated subject's betas.

With the true encoding model and the noise model known, the Bayes-optimal decoder of
which of ``N`` candidate images was seen (uniform prior) picks the candidate whose
noise-free response pattern is nearest to the observed pattern in Mahalanobis distance
under the noise covariance (maximum likelihood under Gaussian noise). Its accuracy is
the ceiling any decoder of these data can reach, for the same candidates and the same
number of averaged repetitions.

**It works at the beta level.** The noise is the single-trial beta noise (trial-to-trial
variability plus the measurement noise that remains in the best linear unbiased, GLS,
single-trial estimate for the simulated design, with diagonal and shared-factor
parts), the same noise whose standard deviation defines each voxel's ncsnr. Hence it is
an upper bound for any decoder that works from GLM estimates of single-trial betas (a
least-squares or LSS GLM leaves at least that much noise). It ignores noise correlations
between the betas of neighbouring trials in a run (repetitions of an image fall in
different runs).
"""

from __future__ import annotations

import numpy as np

from ..evaluate.retrieval import draw_ci

__all__ = ["identification_oracle", "ncsnr"]


def ncsnr(true_betas: np.ndarray, noise_var: np.ndarray) -> np.ndarray:
    """Noise-ceiling SNR per voxel: sd of the true response across stimuli / noise sd.

    Parameters
    ----------
    true_betas : np.ndarray
        ``(n_stimuli, V)`` noise-free responses.
    noise_var : np.ndarray
        ``(V,)`` single-trial beta noise variance.
    """
    sd = np.asarray(true_betas, np.float64).std(axis=0)
    return (sd / np.sqrt(np.maximum(np.asarray(noise_var, np.float64), 1e-30))).astype(np.float32)


def identification_oracle(
    means: np.ndarray,
    noise_diag: np.ndarray,
    loadings: np.ndarray | None = None,
    *,
    n_candidates: int = 300,
    n_draws: int = 30,
    n_reps: int = 3,
    seed: int = 0,
) -> dict:
    """Bayes-optimal top-1 identification among ``n_candidates`` test stimuli.

    For each draw, ``n_candidates`` stimuli are drawn without replacement; for each, a
    noisy pattern averaged over ``n_reps`` repetitions is sampled from the beta-level
    noise distribution ``N(0, (diag(noise_diag) + L L^T) / n_reps)`` and identified by the
    minimum Mahalanobis distance to the candidates' noise-free patterns.

    Parameters
    ----------
    means : np.ndarray
        ``(n_stimuli, V)`` noise-free responses of the test stimuli.
    noise_diag : np.ndarray
        ``(V,)`` independent single-trial noise variance.
    loadings : np.ndarray | None
        ``(V, K)`` shared noise factors (``None``: diagonal noise).
    n_candidates, n_draws, n_reps, seed : int
        Candidates per draw, draws, repetitions averaged, random seed.

    Returns
    -------
    dict
        ``top1`` (mean over draws), ``ci`` (95 %: the normal interval over draws, clipped to [0, 1]; the Wilson
        interval of one draw, :func:`~braindecode_kit.evaluate.draw_ci`), ``draws`` (per-draw
        accuracies), ``chance`` (``1 / n_candidates``), ``n_candidates``, ``n_draws``,
        ``n_reps``, ``direction`` (``"brain->image"``).
    """
    means = np.asarray(means, np.float64)
    n, V = means.shape
    for name, val, lo in (("n_candidates", n_candidates, 2), ("n_draws", n_draws, 1),
                          ("n_reps", n_reps, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"'{name}' must be an integer >= {lo}, but got {val!r}.")
    if n_candidates > n:
        raise ValueError(
            f"'n_candidates' must be at most the number of test stimuli ({n}), but got "
            f"{n_candidates}."
        )
    d = np.asarray(noise_diag, np.float64)
    if d.shape != (V,) or np.any(d <= 0):
        raise ValueError(f"'noise_diag' must be {V} positive variances, got shape {d.shape}.")
    L = np.zeros((V, 0)) if loadings is None else np.asarray(loadings, np.float64)
    if L.ndim != 2 or L.shape[0] != V:
        raise ValueError(f"'loadings' must have shape ({V}, K), but got {L.shape}.")
    rng = np.random.default_rng(seed)
    # whiten: Sigma = D^1/2 (I + Lw Lw^T) D^1/2, and (I + U S^2 U^T)^-1/2 = I - U c U^T with
    # c = 1 - (1 + S^2)^-1/2 (U, S: thin SVD of Lw); then the noise is N(0, I / n_reps)
    isd = 1.0 / np.sqrt(d)
    mu = means * isd
    if L.shape[1]:
        U, S, _ = np.linalg.svd(L * isd[:, None], full_matrices=False)
        mu = mu - ((mu @ U) * (1.0 - 1.0 / np.sqrt(1.0 + S**2))) @ U.T
    # only the noise within the span of the means changes which candidate is nearest (the
    # orthogonal part adds the same to every distance): work in an orthonormal basis of it
    Q, _ = np.linalg.qr(mu.T)
    coords = mu @ Q  # (n, r), r <= min(n, V)
    sq = (coords**2).sum(1)
    draws = []
    scale = 1.0 / np.sqrt(n_reps)
    for _ in range(int(n_draws)):
        idx = rng.choice(n, size=n_candidates, replace=False)
        m = coords[idx]
        y = m + scale * rng.standard_normal(m.shape)
        score = -2.0 * (y @ m.T) + sq[idx][None, :]  # ||y - m_j||^2 minus a constant in j
        draws.append(float(np.mean(np.argmin(score, axis=1) == np.arange(n_candidates))))
    draws_a = np.asarray(draws)
    top1 = float(draws_a.mean())
    return {
        "top1": top1,
        # over draws the normal interval, one draw its Wilson interval (never zero-width)
        "ci": draw_ci(draws_a, n_candidates),
        "draws": draws,
        "chance": 1.0 / n_candidates,
        "n_candidates": int(n_candidates),
        "n_draws": int(n_draws),
        "n_reps": int(n_reps),
        "direction": "brain->image",
    }
