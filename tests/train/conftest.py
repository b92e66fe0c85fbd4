"""Shared fixtures of the training tests."""

from __future__ import annotations

import pytest
from _decoding_data import make_problem


@pytest.fixture(scope="module")
def problem():
    """Three subjects (30, 45 and 60 voxels), 80 training and 60 test trials each."""
    return make_problem(n_subjects=3, n_train=80, n_test=30, noise=0.3, seed=1)
