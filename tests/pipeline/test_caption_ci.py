"""The caption stage's CIs of per-image scores."""

from __future__ import annotations

import numpy as np

from braindecode_kit.evaluate import binomial_ci
from braindecode_kit.evaluate.caption_metrics import bootstrap_ci
from braindecode_kit.pipeline.stages.caption import CI_METRICS, READINGS, item_ci


def test_a_reading_at_its_bound_gets_the_wilson_interval():
    # 300 of 300 images named right: the bootstrap has zero width, Wilson does not
    lo, hi = item_ci(np.ones(300), 1000, seed=0, reading=True)
    assert abs(hi - 1.0) < 1e-12 and 0.98 < lo < 0.995
    assert [lo, hi] == binomial_ci(1.0, 300)
    lo, hi = item_ci(np.zeros(300), 1000, seed=0, reading=True)
    assert abs(lo) < 1e-12 and 0.005 < hi < 0.02
    assert set(READINGS) <= set(CI_METRICS)


def test_other_scores_keep_the_bootstrap():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 4, 300) / 3  # a reading averaged over three subjects
    assert item_ci(v, 500, seed=3, reading=True) == bootstrap_ci(v, 500, seed=3)
    # a graded score that happens to sit at 1 (or 0) everywhere is no count of hits
    for const in (0.0, 1.0):
        assert item_ci(np.full(300, const), 500, seed=3, reading=False) == [const, const]
