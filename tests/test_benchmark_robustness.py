"""benchmarks/robustness.py's own machinery: the oracle, the hit counts, the multi-subject
draws and their CIs (the benchmark's figures rest on these)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rb():
    spec = importlib.util.spec_from_file_location("robustness_bench",
                                                  ROOT / "benchmarks" / "robustness.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass resolves annotations through it
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    n = 260
    Y = rng.standard_normal((n, 16)).astype(np.float32)
    sem = (Y - Y.mean(0)) / Y.std(0)
    low = rng.standard_normal((n, 8)).astype(np.float32)
    order = rng.permutation(n)
    return Y, sem, low, np.sort(order[:60]), np.sort(order[60:])


def test_hits_is_the_benchmarks_300_way_top1(rb, features):
    from braindecode_kit.evaluate import retrieval_accuracy

    Y, *_ = features
    rng = np.random.default_rng(1)
    pred = Y[:60] + rng.standard_normal((60, Y.shape[1])) * 1.5
    h = rb.hits(pred, Y[:60])
    r = retrieval_accuracy(pred, Y[:60], k=1, n_candidates=60, n_draws=1, seed=0)
    assert 0 < h.mean() < 1
    assert h.mean() == pytest.approx(r["top1"])


def test_oracle_is_perfect_without_noise_and_near_chance_with_huge_noise(rb, features):
    Y, sem, low, test_idx, train_idx = features
    fam = rb.linear_gaussian(n_vox=120)
    _, _, Xte, Rte, cov = rb.draw(fam, sem, low, train_idx, test_idx, 100, 1e-4, seed=3,
                                  clean=True)
    assert cov is None and rb.oracle_hits(Xte, Rte, cov).mean() == 1.0
    _, _, Xte, Rte, cov = rb.draw(fam, sem, low, train_idx, test_idx, 100, 1e4, seed=3,
                                  clean=True)
    assert rb.oracle_hits(Xte, Rte, cov).mean() < 0.2


def test_each_draw_keeps_its_own_noise_covariance(rb, features):
    # hetero_correlated draws its voxel scales with the signal: a later draw (another
    # subject) must not change the covariance an earlier draw's oracle is scored under
    Y, sem, low, test_idx, train_idx = features
    fam = rb.hetero_correlated(n_vox=40, corr_width=3)
    first = rb.draw(fam, sem, low, train_idx, test_idx, 100, 1.0, seed=1, clean=True)[4]
    other = rb.draw(fam, sem, low, train_idx, test_idx, 100, 1.0, seed=2, clean=True)[4]
    again = rb.draw(fam, sem, low, train_idx, test_idx, 100, 1.0, seed=1, clean=True)[4]
    assert not np.allclose(first, other)
    np.testing.assert_allclose(first, again)


def test_hetero_noise_covariance_matches_its_noise(rb, features):
    Y, sem, low, *_ = features
    fam = rb.hetero_correlated(n_vox=60, corr_width=3)
    fam.signal(sem, low, np.random.default_rng(0))  # draws the voxel scales
    rng = np.random.default_rng(1)
    e = fam.noise(np.zeros((20000, 60), np.float32), 1.0, rng, None)
    C = fam.noise_cov()
    emp = np.cov(e.T)
    # the model's covariance, up to the overall scale the noise sd sets
    scale = np.trace(emp) / np.trace(C)
    assert np.abs(emp - scale * C).max() < 0.1 * np.abs(emp).max()
    assert abs(np.corrcoef(emp.ravel(), C.ravel())[0, 1]) > 0.99


def test_shared_units_share_units_but_not_voxels(rb, features):
    Y, sem, low, *_ = features
    fam = rb.shared_units(n_vox=50, n_units=20)
    a = fam.signal(sem, low, np.random.default_rng(0))
    b = fam.signal(sem, low, np.random.default_rng(1))
    assert not np.allclose(a, b)
    # both subjects' voxels are mixtures of the same units (plus a low-level part): their
    # patterns share a subspace that random other units would not give
    ua = np.linalg.svd(a - a.mean(0), full_matrices=False)[0][:, :20]
    ub = np.linalg.svd(b - b.mean(0), full_matrices=False)[0][:, :20]
    other = rb.rectified_mixture(n_vox=50, n_units=20).signal(sem, low,
                                                              np.random.default_rng(1))
    uo = np.linalg.svd(other - other.mean(0), full_matrices=False)[0][:, :20]
    assert np.linalg.norm(ua.T @ ub) > np.linalg.norm(ua.T @ uo)


def test_boot_ci_brackets_the_mean_and_narrows_with_subjects(rb):
    rng = np.random.default_rng(0)
    h1 = (rng.random((1, 300)) < 0.4).astype(float)
    h3 = (rng.random((3, 300)) < 0.4).astype(float)
    lo1, hi1 = rb.boot_ci(h1, seed=0)
    lo3, hi3 = rb.boot_ci(h3, seed=0)
    assert lo1 < h1.mean() < hi1 and lo3 < h3.mean() < hi3
    assert hi3 - lo3 < hi1 - lo1
    # a perfect score is not known exactly: the Wilson interval over the 300 stimuli
    lo, hi = rb.boot_ci(np.ones((3, 300)), seed=0)
    assert hi == 1.0 and 0.98 < lo < 0.995


def test_multi_cell_scores_every_model_on_the_same_subjects(rb, features):
    Y, sem, low, test_idx, train_idx = features
    fam = rb.linear_gaussian(n_vox=80)
    out = rb.run_multi_cell(fam, sem, low, Y, train_idx, test_idx, 200, 0.5, seed=5,
                            n_subjects=2)
    for k in ("multi", "decoder", "ridge", "oracle"):
        value, ci, _ = out[k]
        assert 0.0 <= ci[0] <= value <= ci[1] <= 1.0
    assert set(out["multi_anchor"]) == {"sub-01", "sub-02"}
    # low noise, linear responses: every model identifies far above chance (1/60)
    assert out["ridge"][0] > 0.5 and out["oracle"][0] > 0.9
