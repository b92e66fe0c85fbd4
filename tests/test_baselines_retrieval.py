"""The retrieval ridge: alpha (and the whitening of predictions) chosen by cross-validated
retrieval rank instead of squared error, and whitened predictions as retrieval queries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from braindecode_kit.baselines import (
    DEFAULT_ALPHAS,
    RETRIEVAL_WHITEN,
    RidgeDecoder,
    whitening_matrix,
)
from braindecode_kit.evaluate import percentile_rank

ALPHAS = np.logspace(-1, 5, 7)


def brain_data(n_stim=60, reps=2, p=80, d=6, noise=4.0, seed=0, spread=(10.0, 1.0)):
    """Repeated trials of stimuli whose embeddings have uneven variance (the first
    dimension ``spread[0]`` times the others'); every dimension drives the voxels alike."""
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((n_stim, d)) * np.r_[spread[0], np.full(d - 1, spread[1])]
    A = rng.standard_normal((d, p))
    stim = np.repeat(np.arange(n_stim), reps)
    X = (E / E.std(0))[stim] @ A + noise * rng.standard_normal((len(stim), p))
    return X, E[stim], stim


def _mean(a, g):
    u = np.unique(g)
    return np.stack([a[g == k].mean(0) for k in u])


def test_rank_scoring_matches_a_hand_computed_grid_search():
    X, Y, g = brain_data(seed=1)
    dec = RidgeDecoder(alphas=ALPHAS, cv=3, scoring="rank", restandardize=False,
                       random_state=2).fit(X, Y, groups=g)
    Xs = StandardScaler().fit_transform(X)  # standardised once with all training rows
    folds = list(GroupKFold(3, shuffle=True, random_state=2).split(Xs, Y, g))
    ranks = []
    for a in ALPHAS:
        oof = np.empty_like(Y)
        for tr, va in folds:
            oof[va] = Ridge(alpha=a).fit(Xs[tr], Y[tr]).predict(Xs[va])
        ranks.append(percentile_rank(_mean(oof, g), _mean(Y, g)))
    np.testing.assert_allclose(dec.cv_ranks_[:, 0], ranks, atol=1e-10)
    assert dec.alpha_ == ALPHAS[int(np.argmax(ranks))]
    assert dec.whiten_ is None and dec.cv_ranks_.shape == (len(ALPHAS), 1)


def test_whitened_predictions_are_the_centred_raw_ones_times_the_whitening_matrix():
    X, Y, g = brain_data(seed=2)
    raw = RidgeDecoder(alphas=[30.0], cv=3, restandardize=False).fit(X, Y, groups=g)
    white = RidgeDecoder(alphas=[30.0], cv=3, whiten=0.01).fit(X, Y, groups=g)
    assert white.whiten_ == 0.01
    np.testing.assert_array_equal(white.whitening_, whitening_matrix(Y, 0.01))
    expect = (raw.predict(X[:7]) - Y.mean(0)) @ whitening_matrix(Y, 0.01)
    np.testing.assert_allclose(white.predict(X[:7]), expect, atol=1e-10)
    # no shrinkage on isotropic targets: the matrix is ~ the identity (mean eigenvalue 1)
    Z = np.random.default_rng(0).standard_normal((20000, 4))
    np.testing.assert_allclose(whitening_matrix(Z, 0.0), np.eye(4), atol=0.05)
    # shrinkage whitens less: the dominant direction keeps more weight
    w_strong, w_weak = whitening_matrix(Y, 0.0), whitening_matrix(Y, 1.0)
    assert w_strong[0, 0] / w_strong[1, 1] < w_weak[0, 0] / w_weak[1, 1] < 1


def test_whitening_helps_retrieval_where_one_direction_dominates_the_variance():
    # held-out stimuli: the rank-chosen ridge (whitening allowed) retrieves them better
    # than the squared-error ridge, whose cosine the dominant direction decides
    X, Y, g = brain_data(n_stim=260, reps=2, p=120, d=8, noise=6.0, seed=3,
                         spread=(12.0, 1.0))
    tr, te = g < 200, g >= 200
    mse = RidgeDecoder(cv=4).fit(X[tr], Y[tr], groups=g[tr])
    rank = RidgeDecoder(cv=4, scoring="rank", whiten=RETRIEVAL_WHITEN).fit(
        X[tr], Y[tr], groups=g[tr])
    assert rank.whiten_ is not None
    truth = _mean(Y[te], g[te])
    p_mse = percentile_rank(_mean(mse.predict(X[te]), g[te]), truth)
    p_rank = percentile_rank(_mean(rank.predict(X[te]), g[te]), truth)
    assert p_rank > p_mse + 0.02, (p_rank, p_mse)
    # the choice is the best cell of its own validation table
    i, j = np.unravel_index(np.argmax(rank.cv_ranks_), rank.cv_ranks_.shape)
    assert rank.alpha_ == DEFAULT_ALPHAS[i] and rank.whiten_ == RETRIEVAL_WHITEN[j]


def test_per_subject_retrieval_ridges_record_their_choices():
    X, Y, g = brain_data(seed=4)
    dec = RidgeDecoder(cv=3, scoring="rank", whiten=RETRIEVAL_WHITEN).fit(
        [X, X[:, ::-1]], [Y, Y], subjects=["a", "b"], groups=np.r_[g, g])
    assert set(dec.whiten_) == {"a", "b"} and set(dec.alpha_) == {"a", "b"}
    assert dec.predict([X[:3]], subjects=["b"]).shape == (3, Y.shape[1])


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(scoring="r2"), "'scoring'"),
        (dict(whiten=[0.1, 0.01]), "needs scoring='rank'"),
        (dict(whiten=-1.0), "shrinkages >= 0"),
        (dict(whiten="yes"), "'whiten'"),
        (dict(whiten=[]), "'whiten'"),
        (dict(scoring="rank", per_target_alpha=True), "one alpha for all"),
    ],
)
def test_bad_retrieval_params(params, match):
    X, Y, _ = brain_data(n_stim=20, reps=1, p=5)
    with pytest.raises(ValueError, match=match):
        RidgeDecoder(**params).fit(X, Y)


def test_rank_scoring_needs_embeddings():
    X, Y, _ = brain_data(n_stim=20, reps=1, p=5)
    with pytest.raises(ValueError, match="at least 2 dimensions, got 1"):
        RidgeDecoder(scoring="rank").fit(X, Y[:, 0])
