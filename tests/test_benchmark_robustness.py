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


def test_expected_top1_by_hand(rb):
    # 4 stimuli with 0..3 rivals; 2-way: the one other candidate is not a rival with
    # chance (3 - r) / 3; 3-way: both others non-rivals, (3 - r)(2 - r) / (3 * 2)
    r = np.array([0, 1, 2, 3])
    np.testing.assert_allclose(rb.expected_top1(r, 2), [1, 2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(rb.expected_top1(r, 3), [1, 1 / 3, 0, 0])
    np.testing.assert_allclose(rb.expected_top1(r, None), [1, 0, 0, 0])


@pytest.mark.parametrize("way, n_draws, tol", [
    (60, 1, 1e-9),    # every test image a candidate: the plain top-1 of one draw
    (20, 3000, 0.01),  # MindEye2's draws: the exact expectation is their mean
])
def test_hits_is_the_mean_of_mindeye_draws(rb, features, way, n_draws, tol):
    from braindecode_kit.evaluate import retrieval_accuracy

    Y, *_ = features
    rng = np.random.default_rng(2)
    pred = Y[:60] + rng.standard_normal((60, Y.shape[1])) * 1.5
    h = rb.hits(pred, Y[:60], way=way)
    r = retrieval_accuracy(pred, Y[:60], k=1, n_candidates=way, n_draws=n_draws, seed=0)
    assert 0.05 < h.mean() < 0.95
    assert h.mean() == pytest.approx(r["top1"], abs=tol)
    if way == 60:
        assert set(np.unique(h)) <= {0.0, 1.0}
    else:
        assert h.mean() > rb.hits(pred, Y[:60], way=60).mean()  # fewer candidates, easier


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


def _rivals_at(rb, rng, acc_noise, n=300, d=16):
    Y = rng.standard_normal((n, d))
    return rb.rival_matrix(Y + rng.standard_normal((n, d)) * acc_noise, Y)


def test_score_ci_brackets_the_mean_and_narrows_with_subjects(rb):
    rng = np.random.default_rng(0)
    G1 = [_rivals_at(rb, rng, 1.2)]
    G3 = G1 + [_rivals_at(rb, rng, 1.2) for _ in range(2)]
    v1, (lo1, hi1) = rb.score(G1, seed=0, way=30)
    v3, (lo3, hi3) = rb.score(G3, seed=0, way=30)
    assert 0.1 < v1 < 0.9
    assert lo1 < v1 < hi1 and lo3 < v3 < hi3
    assert hi3 - lo3 < hi1 - lo1
    # a perfect score is not known exactly: the Wilson interval over the 300 stimuli
    v, (lo, hi) = rb.score([_rivals_at(rb, rng, 1e-6)] * 3, seed=0)
    assert v == 1.0 and hi == 1.0 and 0.98 < lo < 0.995


def test_score_ci_covers_the_population_value(rb):
    # test sets of 300 drawn from one population: the 95% CIs of most of them hold the
    # population's 30-way top-1 (here that of a 3000-stimulus set), so the bootstrap,
    # resampling stimuli as foils too, is not overconfident
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((3000, 16))
    pred = Y + rng.standard_normal(Y.shape) * 1.2
    truth = rb.hits(pred[:2000], Y[:2000], way=30).mean()  # a large sample's value
    covered = 0
    for t in range(20):
        idx = rng.choice(3000, 300, replace=False)
        _, (lo, hi) = rb.score(rb.rival_matrix(pred[idx], Y[idx]), seed=t, way=30,
                               n_boot=400)
        covered += lo <= truth <= hi
    assert covered >= 15


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
