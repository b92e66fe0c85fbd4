"""choose_anchor_weight: the weight of a network against a ridge, by rank or by cosine,
on hand-made validation predictions."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.estimators import ANCHOR_WEIGHTS, blend_predictions, choose_anchor_weight


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.fixture()
def truth():
    return _unit(np.random.default_rng(0).standard_normal((40, 16)))


def test_a_perfect_network_is_used_alone_and_a_perfect_ridge_alone(truth):
    noise = np.random.default_rng(1).standard_normal(truth.shape)
    for criterion in ("rank", "cosine"):
        w, scores = choose_anchor_weight(noise, truth, truth, criterion=criterion)
        assert w == float("inf") and set(scores) == {str(x) for x in ANCHOR_WEIGHTS}
        w, scores = choose_anchor_weight(truth, noise, truth, criterion=criterion)
        if criterion == "cosine":
            assert w == 0.0
        else:  # small weights still rank perfectly: ties go to the network
            assert scores["0.0"] == scores[str(w)] == 1.0 and w < 1.0


def test_two_halves_of_the_truth_are_blended():
    # each sees half of the dimensions (of equal norm): their equal blend is the truth
    rng = np.random.default_rng(0)
    truth = np.concatenate([_unit(rng.standard_normal((40, 8))),
                            _unit(rng.standard_normal((40, 8)))], axis=1) / np.sqrt(2)
    ridge, net = truth.copy(), truth.copy()
    ridge[:, 8:] = 0
    net[:, :8] = 0
    w, scores = choose_anchor_weight(ridge, net, truth, criterion="cosine")
    assert w == 1.0 and scores["1.0"] > max(scores["0.0"], scores["inf"])
    np.testing.assert_allclose(_unit(blend_predictions(ridge, net, w)), truth, atol=1e-6)


def test_cosine_and_rank_can_disagree(truth):
    # a network with the right direction but a constant offset ranks perfectly (the
    # offset is common to all) yet sits far from the true embeddings
    net = truth + 3 * np.ones(truth.shape[1]) / 4
    ridge = truth + 0.5 * np.random.default_rng(2).standard_normal(truth.shape)
    w_rank, _ = choose_anchor_weight(ridge, net, truth, criterion="rank")
    w_cos, _ = choose_anchor_weight(ridge, net, truth, criterion="cosine")
    assert w_rank > w_cos


def test_unknown_criterion_is_refused(truth):
    with pytest.raises(ValueError, match="criterion"):
        choose_anchor_weight(truth, truth, truth, criterion="top1")


def test_one_se_rule_keeps_the_ridge_unless_the_network_beats_it_beyond_noise(truth):
    rng = np.random.default_rng(3)
    ridge = truth + 0.3 * rng.standard_normal(truth.shape)
    # a network that is the ridge up to a whisper of noise: blending cannot add anything
    # but noise, yet "best" leaves the ridge on it; "one_se" keeps the ridge
    net_same = ridge + 0.003 * rng.standard_normal(truth.shape)
    w_best, scores = choose_anchor_weight(ridge, net_same, truth, criterion="cosine")
    w_1se, scores_1se = choose_anchor_weight(ridge, net_same, truth, criterion="cosine",
                                             rule="one_se")
    assert scores == scores_1se and w_best > 0.0 and w_1se == 0.0
    # a much better network than a poor ridge: both rules leave the ridge
    poor = truth + 1.0 * rng.standard_normal(truth.shape)
    net_good = truth + 0.03 * rng.standard_normal(truth.shape)
    for rule in ("best", "one_se"):
        for criterion in ("cosine", "rank"):
            w, sc = choose_anchor_weight(poor, net_good, truth, criterion=criterion,
                                         rule=rule)
            # (by rank every w >= 2 ranks perfectly: "one_se" takes the smallest of them)
            assert w >= 2.0 and sc[str(w)] > sc["0.0"] + 0.05, (rule, criterion, w)
    with pytest.raises(ValueError, match="rule"):
        choose_anchor_weight(truth, truth, truth, rule="min")
