"""Tests of retrieval_accuracy (MindEye2 protocol) and two_way_identification."""

from __future__ import annotations

import math

import numpy as np
import pytest

from braindecode_kit.evaluate import (
    binomial_ci,
    percentile_rank,
    percentile_ranks,
    retrieval_accuracy,
    row_cosine,
    two_way_identification,
)


def unit(degrees):
    a = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(a), np.sin(a)], axis=1)


# predictions at 0, 12, 90 degrees; images at 5, 40, 80 degrees (cosine = cos(angle gap))
# brain->image: row 1 (12 deg) is closer to image 0 (7 deg) than to its own (28 deg): 2/3.
# image->brain: image 0 -> pred 0 (5 deg), image 1 -> pred 1 (28 deg), image 2 -> pred 2:
# 3/3. Top-2 brain->image: row 1's own image is second: 3/3.
PRED = unit([0, 12, 90])
TARGET = unit([5, 40, 80])


def test_hand_computed_directions():
    b2i = retrieval_accuracy(PRED, TARGET, n_candidates=None)
    assert b2i["top1"] == pytest.approx(2 / 3) and b2i["direction"] == "brain->image"
    assert b2i["n_draws"] == 1 and b2i["n_candidates"] == 3 and b2i["chance"] == 1 / 3
    assert b2i["draws"] == [pytest.approx(2 / 3)]
    i2b = retrieval_accuracy(PRED, TARGET, n_candidates=None, direction="image->brain")
    assert i2b["top1"] == 1.0
    both = retrieval_accuracy(PRED * 3.0, TARGET, n_candidates=3, direction="both")  # scale-free
    assert both["brain->image"]["top1"] == pytest.approx(2 / 3)
    assert both["image->brain"]["top1"] == 1.0 and both["direction"] == "both"
    top2 = retrieval_accuracy(PRED, TARGET, k=2, n_candidates=None)
    assert top2["top1"] == pytest.approx(2 / 3) and top2["topk"] == 1.0 and top2["k"] == 2
    assert top2["chance"] == pytest.approx(2 / 3) and top2["chance_top1"] == pytest.approx(1 / 3)


def test_single_draw_binomial_ci():
    res = retrieval_accuracy(PRED, TARGET, n_candidates=None)
    # Wilson by hand: centre (p + z^2/2n) / (1 + z^2/n), half z/(1 + z^2/n) sqrt(p q/n + z^2/4n^2)
    z2, n, p = 1.96 ** 2, 3, 2 / 3
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = 1.96 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    assert res["ci"] == [pytest.approx(centre - half), pytest.approx(centre + half)]


def test_wilson_interval_by_hand():
    # p = 1: the interval is [n / (n + z^2), 1], not the normal approximation's [1, 1]
    assert binomial_ci(1.0, 300) == pytest.approx([300 / (300 + 1.96 ** 2), 1.0])
    assert binomial_ci(0.0, 300) == pytest.approx([0.0, 1.96 ** 2 / (300 + 1.96 ** 2)])
    lo, hi = binomial_ci(0.5, 100)  # symmetric about 1/2, narrower than +-0.098 of Wald
    assert lo == pytest.approx(1 - hi) and hi - lo < 2 * 0.098
    assert hi == pytest.approx(0.5962, abs=1e-4)
    for bad in [(1.2, 10), (0.5, 0), (0.5, 10.5), (0.5, 10, -1.96)]:
        with pytest.raises(ValueError, match="0 <= p <= 1, an integer n >= 1 and z > 0"):
            binomial_ci(*bad)


def test_ties_count_as_failures():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((5, 8))
    target[1] = target[0]  # two identical images
    res = retrieval_accuracy(target.copy(), target, n_candidates=None)
    assert res["top1"] == pytest.approx(3 / 5)
    constant = np.ones((5, 8))  # a degenerate decoder: every prediction the same
    assert retrieval_accuracy(constant, target, n_candidates=None)["top1"] == 0.0


def test_token_level_is_flattened():
    rng = np.random.default_rng(1)
    target = rng.standard_normal((20, 4, 3))
    pred = target + 0.01 * rng.standard_normal(target.shape)
    res = retrieval_accuracy(pred, target, n_candidates=10, n_draws=5)
    assert res["top1"] == 1.0 and len(res["draws"]) == 5
    flat = retrieval_accuracy(pred.reshape(20, -1), target.reshape(20, -1), n_candidates=10,
                              n_draws=5)
    assert flat["draws"] == res["draws"]


def test_draws_mean_ci_and_determinism():
    rng = np.random.default_rng(2)
    target = rng.standard_normal((600, 16))
    good = np.arange(600) % 2 == 0
    pred = np.where(good[:, None], target, -target)  # half perfect, half worst possible
    res = retrieval_accuracy(pred, target, n_candidates=300, n_draws=30, seed=0)
    draws = np.array(res["draws"])
    assert len(draws) == 30 and res["n_draws"] == 30 and res["chance"] == 1 / 300
    np.testing.assert_allclose(draws * 300, np.round(draws * 300))  # a share of 300 rows
    assert 0.4 < res["top1"] < 0.6 and draws.std() > 0  # draws really differ
    half = 1.96 * draws.std(ddof=1) / math.sqrt(30)
    assert res["ci"] == [pytest.approx(draws.mean() - half), pytest.approx(draws.mean() + half)]
    assert retrieval_accuracy(pred, target, n_candidates=300, n_draws=30, seed=0) == res
    assert retrieval_accuracy(pred, target, n_candidates=300, n_draws=30, seed=1)["draws"] != (
        res["draws"])


def test_perfect_and_random():
    rng = np.random.default_rng(3)
    target = rng.standard_normal((400, 32)).astype(np.float32)
    assert retrieval_accuracy(target, target)["top1"] == 1.0
    both = retrieval_accuracy(target, target, direction="both")
    assert both["image->brain"]["top1"] == 1.0
    random = retrieval_accuracy(rng.standard_normal((400, 32)), target, k=5)
    assert abs(random["top1"] - 1 / 300) < 0.006 and abs(random["topk"] - 5 / 300) < 0.012
    assert random["ci"][0] <= random["top1"] <= random["ci"][1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_candidates=301), "exceeds the number of rows n=300"),
        (dict(n_candidates=1), "'n_candidates'"),
        (dict(n_draws=0), "'n_draws'"),
        (dict(k=0), "'k'"),
        (dict(k=300, n_candidates=300), "'k'"),
        (dict(direction="forward"), "'direction'"),
    ],
)
def test_bad_arguments(kwargs, match):
    x = np.random.default_rng(0).standard_normal((300, 4))
    with pytest.raises(ValueError, match=match):
        retrieval_accuracy(x, x, **kwargs)


def test_bad_arrays():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match=r"same shape.*\(10, 4\) and \(9, 4\)"):
        retrieval_accuracy(x, x[:9], n_candidates=None)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="'pred' must contain only finite"):
        retrieval_accuracy(bad, x, n_candidates=None)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        retrieval_accuracy(np.zeros(10), np.zeros(10), n_candidates=None)
    with pytest.raises(ValueError, match="at least 2 rows"):
        retrieval_accuracy(x[:1], x[:1], n_candidates=None)
    with pytest.raises(ValueError, match="same shape"):
        two_way_identification(x, x[:, :3])


# --------------------------------------------------------------------------- 2-way
def reference_two_way(pred, target):
    """PROTOCOLS.md, literally: R = corrcoef(F_gt, F_rec)[:N, N:]."""
    n = len(pred)
    r = np.corrcoef(target.reshape(n, -1), pred.reshape(n, -1))[:n, n:]
    return np.mean([np.mean([r[i, j] < r[j, j] for i in range(n) if i != j])
                    for j in range(n)])


def test_two_way_hand_computed():
    target = np.array([[1.0, 2, 3], [3, 2, 1], [1, 3, 2]])
    pred = np.array([[1.0, 2, 3], [1, 2, 3], [1, 3, 2]])  # row 1 predicts the wrong image
    # column 0: r(t1,p0)=-1, r(t2,p0)=.5 < 1 -> 1; column 1: r(t1,p1)=-1 is the lowest -> 0;
    # column 2: r(t0,p2)=.5, r(t1,p2)=-.5 < 1 -> 1.
    res = two_way_identification(pred, target)
    assert res["per_item"] == [1.0, 0.0, 1.0]
    assert res["accuracy"] == pytest.approx(2 / 3) and res["chance"] == 0.5 and res["n"] == 3


def test_two_way_against_reference_perfect_and_random():
    rng = np.random.default_rng(4)
    target = rng.standard_normal((50, 6, 5))
    noisy = target + 1.5 * rng.standard_normal(target.shape)
    res = two_way_identification(noisy, target)
    assert res["accuracy"] == pytest.approx(reference_two_way(noisy, target))
    assert 0.6 < res["accuracy"] < 1.0
    assert two_way_identification(target, target)["accuracy"] == 1.0
    rand = two_way_identification(rng.standard_normal((300, 20)), rng.standard_normal((300, 20)))
    assert abs(rand["accuracy"] - 0.5) < 0.05
    const = target.reshape(50, -1).copy()
    const[3] = 1.0  # a constant prediction: undefined correlation counts as failure
    assert two_way_identification(const, target.reshape(50, -1))["per_item"][3] == 0.0


def test_row_cosine_hand_computed():
    pred = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, -3.0], [0.0, 0.0]])
    target = np.array([[5.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # same direction, 45 degrees, opposite, an all-zero prediction
    np.testing.assert_allclose(row_cosine(pred, target), [1.0, 1 / math.sqrt(2), -1.0, 0.0])
    # token grids are flattened; shapes must match
    np.testing.assert_allclose(row_cosine(pred.reshape(4, 2, 1), target.reshape(4, 2, 1)),
                               row_cosine(pred, target))
    with pytest.raises(ValueError, match="same shape"):
        row_cosine(pred, target[:3])


def test_percentile_rank_hand_computed():
    # rows 0 and 2 rank their own image first (above both others: 1), row 1 ranks it
    # second (above one of two: 0.5)
    assert percentile_rank(PRED, TARGET) == pytest.approx((1 + 0.5 + 1) / 3)
    np.testing.assert_allclose(percentile_ranks(PRED, TARGET), [1, 0.5, 1])
    # reversed roles: a prediction pointing away from its image ranks it last
    assert percentile_rank(-TARGET, TARGET) == 0.0
    # ties count against the true target
    assert percentile_rank(np.ones((3, 2)), np.ones((3, 2))) == 0.0
    with pytest.raises(ValueError, match="at least 2 rows"):
        percentile_rank(PRED[:1], TARGET[:1])
