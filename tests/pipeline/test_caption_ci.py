"""The caption stage's CIs of per-image scores."""

from __future__ import annotations

import numpy as np

from braindecode_kit.evaluate import binomial_ci
from braindecode_kit.evaluate.caption_metrics import bootstrap_ci, mean_ci
from braindecode_kit.pipeline.stages.caption import CI_METRICS, READINGS


def test_a_reading_at_its_bound_gets_the_wilson_interval():
    # 300 of 300 images named right: the bootstrap has zero width, Wilson does not
    lo, hi = mean_ci(np.ones(300), 1000, seed=0, binary=True)
    assert hi == 1.0 and 0.98 < lo < 0.995
    assert [lo, hi] == binomial_ci(1.0, 300)
    lo, hi = mean_ci(np.zeros(300), 1000, seed=0, binary=True)
    assert lo == 0.0 and 0.005 < hi < 0.02
    assert set(READINGS) <= set(CI_METRICS)


def test_other_scores_keep_the_bootstrap():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 4, 300) / 3  # a reading averaged over three subjects
    assert mean_ci(v, 500, seed=3, binary=True) == bootstrap_ci(v, 500, seed=3)
    # a graded score that happens to sit at 1 (or 0) everywhere is no count of hits
    for const in (0.0, 1.0):
        assert mean_ci(np.full(300, const), 500, seed=3, binary=False) == [const, const]
