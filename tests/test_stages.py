"""Helpers of the built-in stages: pooling retrieval over subjects, splits by stimulus."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.stages import pool_over_subjects


def test_pool_many_draws_uses_the_spread_over_draws():
    a = {"draws": [0.2, 0.4, 0.3], "n_candidates": 300, "chance": 1 / 300}
    b = {"draws": [0.4, 0.2, 0.3], "n_candidates": 300, "chance": 1 / 300}
    pooled = pool_over_subjects([a, b])
    assert pooled["draws"] == pytest.approx([0.3, 0.3, 0.3])
    assert pooled["top1"] == pytest.approx(0.3)
    assert pooled["ci"] == pytest.approx([0.3, 0.3])  # identical pooled draws: no spread


def test_pool_single_draw_gets_a_binomial_ci():
    a = {"draws": [0.3], "n_candidates": 300, "chance": 1 / 300}
    b = {"draws": [0.4], "n_candidates": 300, "chance": 1 / 300}
    pooled = pool_over_subjects([a, b])
    half = 1.96 * np.sqrt(0.35 * 0.65 / 600)
    assert pooled["top1"] == pytest.approx(0.35)
    assert pooled["ci"] == pytest.approx([0.35 - half, 0.35 + half])
