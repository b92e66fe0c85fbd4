"""Tests of the ridge baseline."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from braindecode_kit.baselines import DEFAULT_ALPHAS, RidgeDecoder

ALPHAS = np.logspace(-2, 4, 13)


@parametrize_with_checks([RidgeDecoder(), RidgeDecoder(cv=None, per_target_alpha=True)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def linear_data(n=120, p=30, t=4, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.standard_normal(p)
    W = rng.standard_normal((p, t))
    Y = X @ W + noise * rng.standard_normal((n, t)) + 2.0
    return X, Y, W


@pytest.mark.parametrize("shape", [(60, 20), (40, 100)])  # primal and dual (wide) paths
def test_alpha_matches_sklearn(shape):
    X, Y, _ = linear_data(*shape, t=3, noise=5.0)
    Xs = StandardScaler().fit_transform(X)
    loo = RidgeDecoder(alphas=ALPHAS, cv=None, restandardize=False).fit(X, Y)
    assert loo.alpha_ == RidgeCV(alphas=ALPHAS).fit(Xs, Y).alpha_
    ref = make_pipeline(StandardScaler(), Ridge(alpha=loo.alpha_)).fit(X, Y)
    np.testing.assert_allclose(loo.predict(X), ref.predict(X), atol=1e-8)
    per = RidgeDecoder(alphas=ALPHAS, cv=None, per_target_alpha=True).fit(X, Y)
    np.testing.assert_array_equal(
        per.alpha_, RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(Xs, Y).alpha_)
    kf = RidgeDecoder(alphas=ALPHAS, cv=5, random_state=3, restandardize=False).fit(X, Y)
    # features are standardised once with all training rows; folds centre their own
    grid = GridSearchCV(Ridge(), {"alpha": ALPHAS}, cv=KFold(5, shuffle=True, random_state=3),
                        scoring="neg_mean_squared_error").fit(Xs, Y)
    assert kf.alpha_ == grid.best_params_["alpha"]
    np.testing.assert_allclose(kf.cv_errors_.mean(axis=1), -grid.cv_results_["mean_test_score"])


@pytest.mark.parametrize("shape", [(60, 20), (40, 100)])  # primal and dual (wide) paths
def test_single_alpha_folds_match_sklearn(shape):
    # one alpha: each fold is a Cholesky solve, not an eigendecomposition; its out-of-fold
    # predictions (the re-standardisation statistics) are sklearn's Ridge on that fold
    X, Y, _ = linear_data(*shape, t=3, noise=5.0, seed=4)
    Xs = StandardScaler().fit_transform(X)
    dec = RidgeDecoder(alphas=[7.0], cv=4, random_state=1).fit(X, Y)
    oof = np.empty_like(Y)
    for tr, va in KFold(4, shuffle=True, random_state=1).split(Xs):
        oof[va] = Ridge(alpha=7.0).fit(Xs[tr], Y[tr]).predict(Xs[va])
    np.testing.assert_allclose(dec.pred_mean_, oof.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(dec.pred_scale_, oof.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(dec.cv_errors_[0], ((Y - oof) ** 2).mean(axis=0), rtol=1e-9)
    # the eigendecomposition path at the same alpha gives the same model
    two = RidgeDecoder(alphas=[7.0, 1e9], cv=4, random_state=1).fit(X, Y)
    assert two.alpha_ == 7.0
    np.testing.assert_allclose(two.predict(X), dec.predict(X), rtol=1e-8, atol=1e-10)


def test_target_groups_choose_one_alpha_per_group():
    # an embedding and a second target set on the same features: one decomposition per
    # fold, each group the alpha (and the predictions) its own fit would give
    X, Y1, _ = linear_data(n=150, p=40, t=3, noise=0.3, seed=5)
    _, Y2, _ = linear_data(n=150, p=40, t=4, noise=30.0, seed=6)
    groups = np.repeat(np.arange(50), 3)
    a = RidgeDecoder(alphas=ALPHAS).fit(X, Y1, groups=groups)
    b = RidgeDecoder(alphas=ALPHAS).fit(X, Y2, groups=groups)
    assert a.alpha_ != b.alpha_  # the two sets want different regularisation
    both = RidgeDecoder(alphas=ALPHAS, target_groups=[0] * 3 + [1] * 4).fit(
        X, np.hstack([Y1, Y2]), groups=groups)
    np.testing.assert_array_equal(both.alpha_, [a.alpha_] * 3 + [b.alpha_] * 4)
    np.testing.assert_allclose(both.predict(X), np.hstack([a.predict(X), b.predict(X)]),
                               rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="one label per target column \\(7\\), got 3"):
        RidgeDecoder(target_groups=[0, 0, 1]).fit(X, np.hstack([Y1, Y2]))
    with pytest.raises(ValueError, match="give one of them"):
        RidgeDecoder(target_groups=[0] * 7, per_target_alpha=True).fit(X, np.hstack([Y1, Y2]))


def test_recovers_linear_map():
    X, Y, W = linear_data(n=400, p=20, t=5, noise=0.1)
    dec = RidgeDecoder(restandardize=False).fit(X[:300], Y[:300])
    np.testing.assert_allclose(dec.coef_.T, W, atol=0.05)
    assert dec.score(X[300:], Y[300:]) > 0.99
    assert dec.coef_.shape == (5, 20) and dec.intercept_.shape == (5,)
    assert dec.alpha_ in DEFAULT_ALPHAS and dec.cv_errors_.shape == (17, 5)


def test_restandardize_matches_training_targets():
    # noisy, heavily regularised: raw predictions are shrunk; re-standardised ones are not
    X, Y, _ = linear_data(n=300, p=200, t=3, noise=30.0, seed=1)
    Y = Y * np.array([1.0, 10.0, 0.1]) + np.array([0.0, 5.0, -3.0])
    raw = RidgeDecoder(restandardize=False).fit(X[:200], Y[:200]).predict(X[200:])
    dec = RidgeDecoder().fit(X[:200], Y[:200])
    out = dec.predict(X[200:])
    assert (raw.std(axis=0) < 0.8 * Y[:200].std(axis=0)).all()
    np.testing.assert_allclose(out.std(axis=0), Y[:200].std(axis=0), rtol=0.35)
    np.testing.assert_allclose(dec.y_mean_, Y[:200].mean(axis=0))
    # one row or many: the same numbers (no batch dependence)
    np.testing.assert_allclose(dec.predict(X[200:201]), out[:1])
    batch = RidgeDecoder(restandardize="batch").fit(X[:200], Y[:200]).predict(X[200:])
    np.testing.assert_allclose(batch.std(axis=0), Y[:200].std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(batch.mean(axis=0), Y[:200].mean(axis=0), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 rows"):
        RidgeDecoder(restandardize="batch").fit(X, Y).predict(X[:1])


def test_per_subject_lists_and_row_labels():
    Xa, Ya, Wa = linear_data(n=80, p=10, t=3, noise=0.05, seed=2)
    Xb, Yb, Wb = linear_data(n=60, p=14, t=3, noise=0.05, seed=3)
    dec = RidgeDecoder(restandardize=False).fit([Xa, Xb], [Ya, Yb], subjects=["a", "b"])
    assert dec.subjects_ == ["a", "b"] and set(dec.alpha_) == {"a", "b"}
    np.testing.assert_allclose(dec.estimators_["b"].coef_.T, Wb, atol=0.05)
    pred = dec.predict([Xb[:5], Xa[:7]], subjects=["b", "a"])
    assert pred.shape == (12, 3)
    np.testing.assert_allclose(pred[:5], dec.estimators_["b"].predict(Xb[:5]))
    stacked = RidgeDecoder(restandardize=False).fit([Xa, Xb], np.vstack([Ya, Yb]),
                                                    subjects=["a", "b"])
    np.testing.assert_allclose(stacked.predict([Xa], subjects=["a"]), dec.predict([Xa], ["a"]))
    # one array, one subject label per row (same feature count)
    X = np.vstack([Xa, Xb[:, :10]])
    labels = ["a"] * 80 + ["b"] * 60
    rows = RidgeDecoder().fit(X, np.vstack([Ya, Yb]), subjects=labels)
    order = np.random.default_rng(0).permutation(140)
    np.testing.assert_allclose(rows.predict(X[order], np.array(labels)[order]),
                               rows.predict(X, labels)[order])
    with pytest.raises(ValueError, match=r"Unknown subject\(s\) \['c'\]"):
        dec.predict([Xa], subjects=["c"])
    with pytest.raises(ValueError, match="pass 'subjects'"):
        dec.predict(Xa)
    with pytest.raises(ValueError, match="must name them"):
        RidgeDecoder().fit([Xa, Xb], [Ya, Yb])
    with pytest.raises(ValueError, match="list of 2 labels"):
        RidgeDecoder().fit([Xa, Xb], [Ya, Yb], subjects=["a"])
    with pytest.raises(ValueError, match="must not repeat"):
        RidgeDecoder().fit([Xa, Xb], [Ya, Yb], subjects=["a", "a"])
    with pytest.raises(ValueError, match="140 rows in all"):
        RidgeDecoder().fit([Xa, Xb], Ya, subjects=["a", "b"])
    with pytest.raises(ValueError, match="one label per row"):
        RidgeDecoder().fit(X, np.vstack([Ya, Yb]), subjects=["a"] * 3)
    with pytest.raises(ValueError, match="fitted without subjects"):
        RidgeDecoder().fit(Xa, Ya).predict(Xa, subjects=["a"] * 80)


def test_grouped_folds():
    X, Y, _ = linear_data(n=90, p=12, t=2, noise=1.0)
    groups = np.repeat(np.arange(30), 3)  # 3 repetitions of each stimulus
    dec = RidgeDecoder(cv=5).fit(X, Y, groups=groups)
    assert dec.alpha_ in DEFAULT_ALPHAS
    with pytest.raises(ValueError, match="at least 5 groups, got 2"):
        RidgeDecoder(cv=5).fit(X, Y, groups=np.arange(90) % 2)
    with pytest.raises(ValueError, match="one label per row"):
        RidgeDecoder(cv=5).fit(X, Y, groups=groups[:10])
    with pytest.raises(ValueError, match="cv to an int"):
        RidgeDecoder(cv=None).fit(X, Y, groups=groups)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(alphas=[1.0, -1.0]), "'alphas'"),
        (dict(alphas=[]), "'alphas'"),
        (dict(cv=1), "'cv'"),
        (dict(cv=2.5), "'cv'"),
        (dict(restandardize="yes"), "'restandardize'"),
    ],
)
def test_bad_params(params, match):
    X, Y, _ = linear_data(n=20, p=3)
    with pytest.raises(ValueError, match=match):
        RidgeDecoder(**params).fit(X, Y)


def test_bad_data():
    X, Y, _ = linear_data(n=20, p=3)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RidgeDecoder().fit(X, Y)
    with pytest.raises(ValueError, match="n_samples = 4"):
        RidgeDecoder(cv=5).fit(X[4:8], Y[4:8])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        RidgeDecoder().fit(X[4:], Y)
    dec = RidgeDecoder().fit(X[4:], Y[4:])
    with pytest.raises(ValueError, match="3 features"):
        dec.predict(np.zeros((2, 5)))


def test_speed_few_thousand():
    rng = np.random.default_rng(0)
    n, p, t = 1500, 2000, 64
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    X = rng.standard_normal((n, p)).astype(np.float32)
    Y = (X @ W + 0.5 * rng.standard_normal((n, t))).astype(np.float32)
    start = time.perf_counter()
    dec = RidgeDecoder().fit(X[:1200], Y[:1200])
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"fit took {elapsed:.1f} s"
    pred = dec.predict(X[1200:])
    corr = np.mean([np.corrcoef(pred[:, j], Y[1200:, j])[0, 1] for j in range(t)])
    assert corr > 0.5


def sensor_data(n_stim=160, n_test=40, reps=2, n_channels=6, n_times=12, d=16, noise=1.0,
                seed=0):
    """MEG-like epochs (n, C, T) carrying a planted linear code of each stimulus's target."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_stim + n_test, 8))
    Y = z @ rng.standard_normal((8, d))
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    W = rng.standard_normal((8, n_channels * n_times))
    stim = np.concatenate([np.arange(n_stim), np.repeat(np.arange(n_stim, n_stim + n_test),
                                                         reps)])
    X = (z[stim] @ W).reshape(-1, n_channels, n_times)
    X = X + noise * rng.standard_normal(X.shape)
    train = stim < n_stim
    return X[train], Y[stim[train]], X[~train], Y[stim[~train]], stim[~train]


def test_sensor_epochs_are_flattened():
    from braindecode_kit.evaluate import retrieval_accuracy
    from braindecode_kit.splits import average_by_stimulus

    X, Y, Xt, Yt, stim = sensor_data()
    assert X.ndim == 3
    dec = RidgeDecoder().fit(X, Y)
    assert dec.feature_shape_ == (6, 12) and dec.n_features_in_ == 72
    flat = RidgeDecoder().fit(X.reshape(len(X), -1), Y)
    np.testing.assert_array_equal(dec.coef_, flat.coef_)
    pred = dec.predict(Xt)
    np.testing.assert_array_equal(pred, flat.predict(Xt.reshape(len(Xt), -1)))
    avg, ids = average_by_stimulus(pred, stim)
    truth, _ = average_by_stimulus(Yt, stim)
    top1 = retrieval_accuracy(avg, truth, k=1, n_candidates=len(ids), n_draws=1)["top1"]
    assert top1 > 10 / len(ids)  # chance is 1 / 40
    with pytest.raises(ValueError, match=r"trials of shape \(12, 6\).*fitted on trials of "
                                         r"shape \(6, 12\)"):
        dec.predict(Xt.reshape(len(Xt), 12, 6))
    # per-subject: one 3-D and one 2-D array
    both = RidgeDecoder().fit([X, X[:, 0]], [Y, Y], subjects=["meg", "fmri"])
    assert both.estimators_["meg"].feature_shape_ == (6, 12)
    assert both.estimators_["fmri"].feature_shape_ == (12,)
    np.testing.assert_array_equal(both.predict([Xt], subjects=["meg"]), pred)
