"""ContrastiveDecoder's ridge anchor: chosen on held-out training stimuli only, and the
prediction it keeps is the ridge's when the network adds nothing."""

import numpy as np
import pytest
from _decoding_data import make_problem

from braindecode_kit import ContrastiveDecoder, RidgeDecoder
from braindecode_kit.baselines import RETRIEVAL_WHITEN
from braindecode_kit.estimators import ANCHOR_WEIGHTS

FAST = dict(epochs=6, batch_size=16, d_shared=32, n_blocks=1, patience=None)


@pytest.fixture(scope="module")
def problem():
    subs, _ = make_problem(n_subjects=1, n_train=150, n_test=40, noise=0.3, seed=4)
    return subs["sub-01"]


def _rows_of(Y, table):
    """The stimulus (row of ``table``) of each row of Y."""
    return np.array([int(np.flatnonzero((table == y).all(1))[0]) for y in Y])


def test_the_anchor_is_chosen_on_stimuli_the_network_neither_trained_nor_stopped_on(
        problem, monkeypatch):
    import braindecode_kit.train as train_pkg

    seen = {}
    real_fit = train_pkg.fit

    def spy(decoder, trainsets, targets, config, valsets=None, **kw):
        seen["train"] = np.concatenate([y for _, _, y in trainsets])
        seen["stop"] = np.concatenate([y for _, _, y in valsets])
        return real_fit(decoder, trainsets, targets, config, valsets=valsets, **kw)

    monkeypatch.setattr(train_pkg, "fit", spy)
    est = ContrastiveDecoder(**FAST, val_fraction=0.4).fit(problem["X_train"],
                                                           problem["Y_train"])
    info = est.anchor_["sub-0"]
    assert not info["skipped"] and set(info["scores"]) == {str(w) for w in ANCHOR_WEIGHTS}
    table = np.unique(problem["Y_train"], axis=0)
    train_s, stop_s = set(_rows_of(seen["train"], table)), set(_rows_of(seen["stop"], table))
    n_sel = info["n_val_stimuli"]
    assert not train_s & stop_s
    # the selection stimuli are the rest of the training data's stimuli: none of the test's
    assert n_sel == len(table) - len(train_s) - len(stop_s) >= 10
    test_s = set(map(tuple, problem["Y_test"]))
    assert not test_s & set(map(tuple, problem["Y_train"]))


def test_a_network_that_learns_nothing_is_outvoted_by_the_ridge(problem):
    # lr 1e-9: the network stays at its random start; the anchor must keep the ridge
    est = ContrastiveDecoder(**FAST, lr=1e-9, val_fraction=0.4).fit(problem["X_train"],
                                                                    problem["Y_train"])
    assert est.anchor_["sub-0"]["weight"] <= 0.25
    ridge = est.ridges_["sub-0"]
    # the anchor is a ridge chosen for retrieval: alpha and whitening by validation rank
    assert ridge.scoring == "rank" and ridge.cv_ranks_.shape[1] == len(RETRIEVAL_WHITEN)
    assert est.anchor_["sub-0"]["ridge"] == {"alpha": ridge.alpha_, "whiten": ridge.whiten_}
    ours = est.score(problem["X_test"], problem["Y_test"])
    pred = ridge.predict(problem["X_test"])
    # the anchored prediction is (nearly) the ridge's direction
    mine = est.predict(problem["X_test"])
    cos = np.sum(mine * pred, 1) / np.linalg.norm(mine, axis=1) / np.linalg.norm(pred, axis=1)
    assert np.median(cos) > 0.95
    off = ContrastiveDecoder(**FAST, lr=1e-9, val_fraction=0.4, ridge_anchor=False).fit(
        problem["X_train"], problem["Y_train"])
    assert ours > off.score(problem["X_test"], problem["Y_test"]) + 0.2


def test_without_validation_stimuli_the_network_is_used_alone(problem):
    est = ContrastiveDecoder(**FAST, val_fraction=0.0).fit(problem["X_train"],
                                                           problem["Y_train"])
    assert est.anchor_["sub-0"]["skipped"] and est.ridges_ == {}
    np.testing.assert_array_equal(est.predict(problem["X_test"]),
                                  est.decoder_.predict(problem["X_test"], subject="sub-0"))


def test_the_plain_ridge_anchor_is_one_setting_away(problem):
    # anchor_ridge={} anchors to the baseline's own ridge (alpha by squared error)
    est = ContrastiveDecoder(**FAST, lr=1e-9, val_fraction=0.4, anchor_ridge={}).fit(
        problem["X_train"], problem["Y_train"])
    ridge = est.ridges_["sub-0"]
    assert ridge.scoring == "mse" and ridge.whiten_ is None
    groups = _rows_of(problem["Y_train"], np.unique(problem["Y_train"], axis=0))
    plain = RidgeDecoder().fit(problem["X_train"], problem["Y_train"], groups=groups)
    assert ridge.alpha_ == plain.alpha_
    with pytest.raises(ValueError, match="anchor_ridge must be a dict"):
        ContrastiveDecoder(**FAST, val_fraction=0.4, anchor_ridge="rank").fit(
            problem["X_train"], problem["Y_train"])
