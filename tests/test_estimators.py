import numpy as np
import pytest
from _decoding_data import make_problem
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec

from braindecode_kit import ContrastiveDecoder
from braindecode_kit.models import BrainDecoder

FAST = dict(epochs=25, batch_size=16, d_shared=32, n_blocks=1, patience=None)
FAST_NOVAL = {**FAST, "val_fraction": 0.0}


@pytest.fixture(scope="module")
def problem():
    return make_problem(n_subjects=2, n_train=150, n_test=40, noise=0.3, seed=2)


def test_fit_predict_score_single_subject(problem):
    subs, _ = problem
    s = subs["sub-01"]
    est = ContrastiveDecoder(**FAST).fit(s["X_train"], s["Y_train"])
    assert isinstance(est.decoder_, BrainDecoder)
    assert est.subjects_ == ["sub-0"] and est.n_features_in_ == 30 and est.embed_dim_ == 16
    pred = est.predict(s["X_test"])
    assert pred.shape == (80, 16) and pred.dtype == np.float32
    score = est.score(s["X_test"], s["Y_test"])
    assert 0 <= score <= 1 and score > 5 / 40  # well above chance (1/40)
    # early stopping used a validation split
    assert "val_top1" in est.history_[0]
    # same seed, same predictions
    again = ContrastiveDecoder(**FAST).fit(s["X_train"], s["Y_train"])
    assert np.array_equal(again.predict(s["X_test"]), pred)


def test_multi_subject_lists_and_row_labels(problem):
    subs, _ = problem
    names = list(subs)
    X = [subs[n]["X_train"] for n in names]
    Y = [subs[n]["Y_train"] for n in names]
    est = ContrastiveDecoder(**FAST_NOVAL).fit(X, Y, subjects=names)
    assert est.subjects_ == names and not hasattr(est, "n_features_in_")
    assert "val_top1" not in est.history_[0]
    Xt = [subs[n]["X_test"] for n in names]
    pred = est.predict(Xt, subjects=names)
    assert pred.shape == (160, 16)
    assert np.allclose(pred[80:], est.predict(subs["sub-02"]["X_test"], subjects="sub-02"))
    assert est.score(Xt, [subs[n]["Y_test"] for n in names], subjects=names) > 0.1
    with pytest.raises(ValueError, match="subjects must be given"):
        est.predict(subs["sub-01"]["X_test"])
    with pytest.raises(ValueError, match="Unknown subject 'sub-9'"):
        est.predict(subs["sub-01"]["X_test"], subjects="sub-9")
    # one array with per-row labels (same feature count)
    sub1 = subs["sub-01"]
    Xr = np.concatenate([sub1["X_train"], sub1["X_train"][:50]])
    Yr = np.concatenate([sub1["Y_train"], sub1["Y_train"][:50]])
    labels = np.array(["a"] * 150 + ["b"] * 50)
    est2 = ContrastiveDecoder(**{**FAST, "epochs": 1}).fit(Xr, Yr, subjects=labels)
    assert est2.subjects_ == ["a", "b"]
    p2 = est2.predict(Xr[145:155], subjects=labels[145:155])
    assert np.allclose(p2[:5], est2.predict(Xr[145:150], subjects="a"), atol=1e-6)


def test_bad_input_is_refused(problem):
    s = problem[0]["sub-01"]
    est = ContrastiveDecoder(**FAST)
    with pytest.raises(NotFittedError):
        est.predict(s["X_test"])
    with pytest.raises(ValueError, match="2-D"):
        est.fit(s["X_train"], s["Y_train"][:, 0])
    with pytest.raises(ValueError, match="rows but X has"):
        est.fit(s["X_train"], s["Y_train"][:10])
    bad = s["X_train"].copy()
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="infinity|NaN"):
        est.fit(bad, s["Y_train"])
    with pytest.raises(ValueError, match="val_fraction"):
        ContrastiveDecoder(val_fraction=1.5).fit(s["X_train"], s["Y_train"])
    with pytest.raises(ValueError, match="'schedule'"):
        ContrastiveDecoder(schedule="nope").fit(s["X_train"], s["Y_train"])
    fitted = ContrastiveDecoder(**{**FAST, "epochs": 1}).fit(s["X_train"], s["Y_train"])
    with pytest.raises(ValueError, match="expects 30 features"):
        fitted.predict(s["X_train"][:, :20])


@pytest.mark.parametrize("check", [
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_dont_overwrite_parameters,
    ec.check_estimators_unfitted,
    ec.check_fit_check_is_fitted,
    ec.check_n_features_in,
    ec.check_estimators_dtypes,
    ec.check_fit2d_predict1d,
    ec.check_estimators_nan_inf,
    ec.check_estimators_overwrite_params,
], ids=lambda c: c.__name__)
def test_sklearn_checks(check):
    est = ContrastiveDecoder(epochs=2, d_shared=16, n_blocks=1, batch_size=16)
    check(type(est).__name__, est)


def test_clone_keeps_params():
    est = ContrastiveDecoder(d_shared=64, train_kwargs={"grad_clip": 0.5})
    c = clone(est)
    assert c.get_params() == est.get_params()


def _sensor_problem(n_stim=150, n_test=40, reps=2, n_channels=5, n_times=12, d=16,
                    noise=2.0, seed=0):
    """MEG-like epochs (n, C, T) carrying a planted linear code of each stimulus's target."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_stim + n_test, 8))
    Y = (z @ rng.standard_normal((8, d))).astype(np.float32)
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    W = rng.standard_normal((8, n_channels * n_times))
    stim = np.concatenate([np.arange(n_stim), np.repeat(np.arange(n_stim, n_stim + n_test),
                                                         reps)])
    X = (z[stim] @ W).reshape(-1, n_channels, n_times)
    X = (X + noise * rng.standard_normal(X.shape)).astype(np.float32)
    train = stim < n_stim
    return X[train], Y[stim[train]], X[~train], Y[stim[~train]]


def test_fit_predict_score_sensor_epochs():
    from braindecode_kit.models import SubjectSpec

    X, Y, Xt, Yt = _sensor_problem()
    assert X.ndim == 3
    est = ContrastiveDecoder(**FAST).fit(X, Y)
    assert est.decoder_.config.subjects["sub-0"] == SubjectSpec("meg", (5, 12))
    assert est.feature_shapes_ == {"sub-0": (5, 12)} and est.n_features_in_ == 60
    pred = est.predict(Xt)
    assert pred.shape == (80, 16) and pred.dtype == np.float32
    assert est.score(Xt, Yt) > 5 / 40  # well above chance (1/40)
    with pytest.raises(ValueError, match=r"expects \(5, 12\) features"):
        est.predict(Xt[:, :, :10])
    with pytest.raises(ValueError, match="2-D .* or 3-D .*shape \\(80, 5, 12, 1\\)"):
        est.predict(Xt[..., None])
    # a 2-D (fMRI) and a 3-D (sEEG) subject in one decoder
    mixed = ContrastiveDecoder(**{**FAST_NOVAL, "epochs": 1, "modality": "seeg"}).fit(
        [X[:, 0], X], [Y, Y], subjects=["a", "b"])
    specs = mixed.decoder_.config.subjects
    assert specs["a"] == SubjectSpec("seeg", (12,)) and specs["b"] == SubjectSpec("seeg", (5, 12))
    assert mixed.feature_shapes_ == {"a": (12,), "b": (5, 12)}
    assert not hasattr(mixed, "n_features_in_")
    assert mixed.predict([Xt[:, 0], Xt], subjects=["a", "b"]).shape == (160, 16)
    with pytest.raises(ValueError, match="'modality'.*'fmri', 'meg', 'seeg'.*'eeg'"):
        ContrastiveDecoder(**{**FAST, "modality": "eeg"}).fit(X, Y)
