"""ContrastiveDecoder(search=...): settings chosen by inner validation (issue 9)."""

import numpy as np
import pytest
from _decoding_data import make_problem

from braindecode_kit import ContrastiveDecoder

FAST = dict(batch_size=16, d_shared=32, n_blocks=1, patience=None)


@pytest.fixture(scope="module")
def sub():
    subs, _ = make_problem(n_subjects=1, n_train=150, n_test=40, noise=0.3, seed=4)
    return subs["sub-01"]


def test_search_keeps_what_validation_supports(sub):
    # the estimator's own setting (1 epoch) is tried first; 25 epochs score higher on the
    # held-out selection stimuli, so the search replaces it
    est = ContrastiveDecoder(**FAST, epochs=1, search={"epochs": [1, 25]}).fit(
        sub["X_train"], sub["Y_train"])
    res = est.search_results_
    assert [r["params"] for r in res] == [{"epochs": 1}, {"epochs": 25}]
    assert res[1]["score"] > res[0]["score"] + 0.2  # percentile ranks, chance 0.5
    assert est.best_params_ == {"epochs": 25}
    # the model kept is the one trained with the chosen settings, on the same splits
    plain = ContrastiveDecoder(**FAST, epochs=25).fit(sub["X_train"], sub["Y_train"])
    np.testing.assert_array_equal(est.predict(sub["X_test"]), plain.predict(sub["X_test"]))
    assert est.score(sub["X_test"], sub["Y_test"]) > 5 / 40


def test_search_order_own_values_first_and_budget(sub):
    est = ContrastiveDecoder(**FAST, epochs=3, search={"d_shared": [8, 32]})
    grid = est._search_grid()
    assert [g["d_shared"] for g in grid] == [32, 8]  # the estimator's own d_shared first
    # a spent budget stops after the first combination (always trained)
    est.set_params(search_budget_s=1e-9).fit(sub["X_train"], sub["Y_train"])
    assert len(est.search_results_) == 1 and est.best_params_ == {"d_shared": 32}
    assert est.decoder_.config.d_shared == 32
    # own values not in the grid: tried first all the same
    grid = ContrastiveDecoder(**FAST, search={"d_shared": [8, 16]})._search_grid()
    assert [g["d_shared"] for g in grid] == [32, 8, 16]


@pytest.mark.parametrize("search, match", [
    ({"alpha": [1, 2]}, r"cannot choose \['alpha'\]"),
    ({"lr": []}, "non-empty list"),
    ({"lr": "0.1"}, "non-empty list"),
    ({}, "non-empty dict"),
])
def test_search_bad_input(sub, search, match):
    with pytest.raises(ValueError, match=match):
        ContrastiveDecoder(**FAST, epochs=1, search=search).fit(sub["X_train"],
                                                                sub["Y_train"])


def test_search_needs_validation_stimuli(sub):
    with pytest.raises(ValueError, match="search needs at least 20 validation stimuli"):
        ContrastiveDecoder(**FAST, epochs=1, val_fraction=0.05,
                           search={"epochs": [1, 2]}).fit(sub["X_train"], sub["Y_train"])
    with pytest.raises(ValueError, match="search_budget_s"):
        ContrastiveDecoder(**FAST, epochs=1, search={"epochs": [1]},
                           search_budget_s=0).fit(sub["X_train"], sub["Y_train"])
