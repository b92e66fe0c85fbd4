"""EmbeddingMap: a known linear map is recovered from synthetic pairs, alpha is chosen by
cross-validation (as scikit-learn's RidgeCV chooses it), the rescalings do what they say
row by row, the saved files give back the same transform, and bad input is refused with
the parameter named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from braindecode_kit.reconstruct.mapping import DEFAULT_ALPHAS, EmbeddingMap


def pairs(n: int = 300, d_in: int = 128, d_out: int = 32, noise: float = 0.01, seed: int = 0):
    """Unit-norm inputs, targets ``X W + b`` plus noise (and the true ``W``, ``b``)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d_in))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W, b = rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
    return X, X @ W + b + noise * rng.normal(size=(n, d_out)), W, b


def r2(Y, P):
    return 1 - ((Y - P) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum()


def test_recovers_a_known_linear_map():
    X, Y, W, b = pairs()
    m = EmbeddingMap(rescale=None).fit(X, Y)
    assert (m.in_dim, m.out_dim, m.n_fitted_) == (128, 32, 300)
    assert np.abs(m.coef_ - W.T).max() < 0.1 * np.abs(W).max()
    assert np.abs(m.intercept_ - b).max() < 0.05
    assert m.cv_r2_ > 0.99 and m.cv_cosine_ > 0.99 and m.r2_train_ >= m.cv_r2_
    rng = np.random.default_rng(1)
    Xt = rng.normal(size=(50, 128))
    Xt /= np.linalg.norm(Xt, axis=1, keepdims=True)
    out = m.transform(Xt)
    assert out.dtype == np.float32 and out.shape == (50, 32)
    assert r2(Xt @ W + b, out) > 0.99


def test_alpha_is_chosen_by_cross_validation():
    from sklearn.linear_model import RidgeCV

    X, Y, _, _ = pairs(noise=0.01)
    grid = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    m = EmbeddingMap(alpha=grid).fit(X, Y)
    assert m.alpha_ == RidgeCV(alphas=grid).fit(X, Y).alpha_
    assert m.alphas_ == tuple(grid)
    # few, noisy pairs call for a stronger penalty than many clean ones
    Xn, Yn, _, _ = pairs(n=40, noise=20.0, seed=2)
    noisy = EmbeddingMap().fit(Xn, Yn)
    clean = EmbeddingMap().fit(X, Y)
    assert noisy.alpha_ > clean.alpha_
    assert noisy.alpha_ in DEFAULT_ALPHAS and clean.alpha_ in DEFAULT_ALPHAS
    assert noisy.cv_r2_ < clean.cv_r2_
    fixed = EmbeddingMap(alpha=3.0).fit(X, Y)
    assert fixed.alpha_ == 3.0 and fixed.alphas_ == (3.0,)


def test_rescalings_row_by_row():
    X, Y, _, _ = pairs(n=80, noise=0.5)
    norm = EmbeddingMap(alpha=10.0).fit(X, Y)  # strong penalty: shrunk raw predictions
    raw = EmbeddingMap(alpha=10.0, rescale=None).fit(X, Y)
    P = norm.transform(X)
    assert np.allclose(np.linalg.norm(P, axis=1), norm.target_norm_, rtol=1e-5)
    assert np.isclose(norm.target_norm_, np.linalg.norm(Y, axis=1).mean())
    assert np.linalg.norm(raw.transform(X), axis=1).mean() < 0.9 * norm.target_norm_
    cos = (P * raw.transform(X)).sum(1) / (np.linalg.norm(P, axis=1)
                                          * np.linalg.norm(raw.transform(X), axis=1))
    assert np.allclose(cos, 1.0, atol=1e-5)  # "norm" keeps the ridge's direction
    std = EmbeddingMap(alpha=10.0, rescale="std").fit(X, Y)
    want = ((raw.transform(X).astype(np.float64) - std.pred_mean_) / std.pred_scale_
            * std.y_scale_ + std.y_mean_)
    assert np.allclose(std.transform(X), want, atol=1e-4)
    assert np.allclose(std.y_mean_, Y.mean(0)) and np.allclose(std.y_scale_, Y.std(0))
    # the std map widens the shrunk predictions towards the targets' spread
    assert std.transform(X).std(0).mean() > raw.transform(X).std(0).mean()
    for m in (norm, raw, std):  # each row on its own: no batch statistics
        assert np.array_equal(m.transform(X[5:6]), m.transform(X)[5:6])


def test_normalize_input():
    X, Y, _, _ = pairs(n=60)
    m = EmbeddingMap(alpha=1.0).fit(X, Y)
    assert np.allclose(m.transform(3.0 * X), m.transform(X), atol=1e-5)
    raw = EmbeddingMap(alpha=1.0, normalize_input=False).fit(X, Y)
    assert not np.allclose(raw.transform(3.0 * X), raw.transform(X), atol=1e-3)
    with pytest.raises(ValueError, match="all-zero rows"):
        m.transform(np.zeros((1, 128)))


def test_save_load_round_trip(tmp_path):
    X, Y, _, _ = pairs(n=60)
    for rescale in ("norm", "std", None):
        m = EmbeddingMap(alpha=[0.1, 1.0], rescale=rescale).fit(X, Y)
        folder = m.save(tmp_path / str(rescale))
        assert sorted(p.name for p in folder.iterdir()) == ["embedding_map.json",
                                                            "embedding_map.safetensors"]
        back = EmbeddingMap.load(folder)
        assert np.array_equal(back.transform(X), m.transform(X))
        assert back.describe() == m.describe() and repr(back) == repr(m)
        assert back.get_params() == {**m.get_params(), "alpha": [0.1, 1.0]}
        json.dumps(back.describe())
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_load_refuses_bad_folders(tmp_path):
    X, Y, _, _ = pairs(n=40)
    folder = EmbeddingMap().fit(X, Y).save(tmp_path / "map")
    with pytest.raises(FileNotFoundError, match="lacks"):
        EmbeddingMap.load(tmp_path / "nothing")
    other = EmbeddingMap(alpha=5.0).fit(X, Y * 2).save(tmp_path / "other")
    (folder / "embedding_map.safetensors").write_bytes(
        (other / "embedding_map.safetensors").read_bytes())
    with pytest.raises(ValueError, match="half-replaced"):
        EmbeddingMap.load(folder)
    (folder / "embedding_map.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="safetensors"):
        EmbeddingMap.load(folder)
    cfg = json.loads((other / "embedding_map.json").read_text())
    (other / "embedding_map.json").write_text(json.dumps({**cfg, "format": "something"}))
    with pytest.raises(ValueError, match="not an EmbeddingMap"):
        EmbeddingMap.load(other)


def test_describe_repr_and_sklearn_api():
    m = EmbeddingMap(alpha=[1.0, 2.0], rescale="std")
    assert "not fitted" in repr(m) and m.describe()["fitted"] is False
    json.dumps(m.describe())
    assert clone(m).get_params() == m.get_params()
    X, Y, _, _ = pairs(n=40, d_out=8)
    out = m.fit_transform(X, Y)
    assert out.shape == (40, 8)
    d = m.describe()
    assert (d["in_dim"], d["out_dim"], d["rescale"], d["n_fitted"]) == (128, 8, "std", 40)
    assert d["alpha"] in (1.0, 2.0) and -1 < d["cv_r2"] <= 1
    assert "128 -> 8" in repr(m) and "rescale='std'" in repr(m)


def test_errors():
    X, Y, _, _ = pairs(n=40)
    m = EmbeddingMap()
    for call in (lambda: m.transform(X), lambda: m.in_dim, lambda: m.save("unused")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    with pytest.raises(ValueError, match="'X' and 'Y' must hold the same stimuli"):
        m.fit(X, Y[:-1])
    with pytest.raises(ValueError, match="at least 4 pairs"):
        m.fit(X[:3], Y[:3])
    with pytest.raises(ValueError, match="'X' must be a non-empty 2-D array"):
        m.fit(X[0], Y)
    with pytest.raises(TypeError, match="'Y' must be a numeric 2-D array"):
        m.fit(X, [["a"] * 3] * 40)
    bad = X.copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"'X' must contain only finite values.*\(3, 7\)"):
        m.fit(bad, Y)
    with pytest.raises(ValueError, match="'Y' must contain only finite"):
        m.fit(X, np.where(Y > 3, np.inf, Y))
    with pytest.raises(ValueError, match="'rescale' parameter. Allowed values are 'norm', "
                                         "'std', None, but got 'l2'"):
        EmbeddingMap(rescale="l2").fit(X, Y)
    for alpha in (0.0, -1.0, [], [1.0, float("nan")], [1.0, "a"]):
        with pytest.raises(ValueError, match="'alpha' parameter"):
            EmbeddingMap(alpha=alpha).fit(X, Y)
    with pytest.raises(TypeError, match="'alpha' parameter"):
        EmbeddingMap(alpha="big").fit(X, Y)
    with pytest.raises(ValueError, match="'cv' parameter"):
        EmbeddingMap(cv=1).fit(X, Y)
    with pytest.raises(TypeError, match="'normalize_input' parameter"):
        EmbeddingMap(normalize_input="yes").fit(X, Y)
    fitted = EmbeddingMap().fit(X, Y)
    with pytest.raises(ValueError, match="'X' must have 128 columns .* but got shape \\(2, 64\\)"):
        fitted.transform(X[:2, :64])
    with pytest.raises(ValueError, match="finite"):
        fitted.transform(np.full((1, 128), np.inf))
