"""A learned linear map from the decoder's CLIP space to a backend's conditioning space.

Brain decoders predict embeddings in one space (here the decoder's CLIP space, dimension
``d_in``); a generator is conditioned in another (``d_out``: Stable unCLIP's CLIP image
embedding, Kandinsky 2.2's, an IP-Adapter's image encoder). MindEye2 bridges such a gap
(bigG to GIT) with a map fitted on stimuli: the same training images embedded in both
spaces. :class:`EmbeddingMap` is that map: ridge regression with one ``alpha`` for all
outputs, chosen by efficient leave-one-out cross-validation (scikit-learn's
:class:`~sklearn.linear_model.RidgeCV`), scored out of fold (K-fold, at the chosen alpha),
and, as Brain-Diffuser re-standardises its predictions to the training targets'
statistics, optionally re-scaled: ridge shrinks predictions towards the mean, so their
norms are smaller than the targets' and the generator would see off-scale embeddings.

Saved as ``embedding_map.safetensors`` (float64 weights and statistics) and
``embedding_map.json`` (parameters, fit summary and the weights file's SHA-256, so a
half-replaced pair is refused on load); nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import check_int, check_option, check_type
from .._utils import PathLike, atomic_path, hash_file, write_json_atomic
from ..evaluate.retrieval import row_cosine

__all__ = ["DEFAULT_ALPHAS", "EmbeddingMap", "RESCALES"]

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 5, 17))
"""The ridge penalties tried when ``alpha=None``: 1e-3 to 1e5, half a decade apart."""

RESCALES = ("norm", "std", None)
CONFIG_FILE = "embedding_map.json"
WEIGHTS_FILE = "embedding_map.safetensors"
FORMAT = "braindecode_kit.EmbeddingMap"
_ARRAYS = ("coef_", "intercept_", "y_mean_", "y_scale_", "pred_mean_", "pred_scale_")


def _as_matrix(name: str, value: Any) -> np.ndarray:
    """A finite 2-D float64 array ``(n, dim)``, or an error naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"'{name}' must be a numeric 2-D array (n, dim), but got "
                        f"{type(value).__name__}: {err}") from err
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"'{name}' must be a non-empty 2-D array (n, dim), but got shape "
                         f"{arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"'{name}' must contain only finite values, but found "
                         f"{int(bad.sum())} NaN or infinite value(s) (first at index {first}).")
    return arr


def _unit_rows(name: str, X: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(f"'{name}' has {int((norm == 0).sum())} all-zero rows, which cannot be "
                         "L2-normalised (normalize_input=True).")
    return X / norm


def _scale_or_one(sd: np.ndarray) -> np.ndarray:
    sd = np.asarray(sd, dtype=np.float64).copy()
    sd[~(sd > 1e-12)] = 1.0
    return sd


def _r2(Y: np.ndarray, P: np.ndarray) -> float:
    """Variance-weighted R^2 over all output dimensions."""
    ss_tot = float(((Y - Y.mean(0)) ** 2).sum())
    return 1.0 - float(((Y - P) ** 2).sum()) / max(ss_tot, 1e-300)


class EmbeddingMap(TransformerMixin, BaseEstimator):
    """A ridge map from one embedding space to another, fitted on paired embeddings.

    Parameters
    ----------
    alpha : float | sequence of float | None
        Ridge penalty: a number (used as is), candidates to choose from by leave-one-out
        cross-validation (one alpha for all outputs, :class:`sklearn.linear_model.RidgeCV`'s
        generalised CV), or ``None`` for :data:`DEFAULT_ALPHAS` (1e-3 to 1e5).
    rescale : {"norm", "std", None}
        What is done to the ridge predictions. ``"norm"`` (default): each output row is
        scaled to the training targets' mean L2 norm (CLIP-like targets all have about the
        same norm; the direction is the ridge's). ``"std"``: Brain-Diffuser's
        re-standardisation, per dimension, from the mean and standard deviation of
        out-of-fold predictions to the training targets' (every row is mapped on its own,
        so an output does not depend on its batch). ``None``: raw ridge predictions.
    normalize_input : bool
        L2-normalise each input row (in ``fit`` and ``transform``), as the
        :class:`~braindecode_kit.reconstruct.Reconstructor` does before the map.
    cv : int
        K-fold splits (shuffled with ``random_state``) of the out-of-fold predictions that
        score the map (``cv_r2_``, ``cv_cosine_``) and give the ``"std"`` statistics.
    random_state : int | None
        Seed of the K-fold shuffle.

    Attributes
    ----------
    alpha_ : float
        The penalty used (chosen by cross-validation when several were given).
    coef_ : ndarray, shape (out_dim, in_dim)
        Ridge weights (scikit-learn's layout: ``Y ~ X @ coef_.T + intercept_``).
    intercept_ : ndarray, shape (out_dim,)
    n_features_in_ : int
        The input dimension.
    n_fitted_ : int
        Pairs the map was fitted on.
    r2_train_ : float
        R^2 of the raw ridge predictions on the training pairs (optimistic).
    cv_r2_, cv_cosine_ : float
        R^2 (variance-weighted over dimensions) and mean cosine similarity of the raw
        out-of-fold predictions at ``alpha_`` (alpha itself was chosen on all pairs, so
        these are slightly optimistic).
    target_norm_ : float
        Mean L2 norm of the training targets (the ``"norm"`` rescaling's).
    y_mean_, y_scale_, pred_mean_, pred_scale_ : ndarray, shape (out_dim,)
        Targets' and out-of-fold predictions' mean and standard deviation (``"std"``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, W = rng.normal(size=(200, 16)), rng.normal(size=(16, 8))
    >>> m = EmbeddingMap(rescale=None, normalize_input=False).fit(X, X @ W)
    >>> m.transform(X[:3]).shape, m.in_dim, m.out_dim
    ((3, 8), 16, 8)
    """

    def __init__(self, alpha: float | Sequence[float] | None = None,
                 rescale: str | None = "norm", normalize_input: bool = True, cv: int = 5,
                 random_state: int | None = 0) -> None:
        self.alpha = alpha
        self.rescale = rescale
        self.normalize_input = normalize_input
        self.cv = cv
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _alphas(self) -> tuple[float, ...]:
        if self.alpha is None:
            return DEFAULT_ALPHAS
        if isinstance(self.alpha, (int, float, np.integer, np.floating)) and not isinstance(
                self.alpha, (bool, np.bool_)):
            values = [self.alpha]
        elif isinstance(self.alpha, (Sequence, np.ndarray)) and not isinstance(self.alpha, str):
            values = list(np.asarray(self.alpha, dtype=object).ravel())
        else:
            raise TypeError(f"The 'alpha' parameter must be a number, a sequence of numbers or "
                            f"None, but got {type(self.alpha).__name__} ({self.alpha!r}).")
        ok = len(values) > 0 and all(
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)) and np.isfinite(v) and v > 0 for v in values)
        if not ok:
            raise ValueError(f"Invalid value for the 'alpha' parameter: expected finite numbers "
                             f"> 0 (one, or several to choose from), but got {self.alpha!r}.")
        return tuple(float(v) for v in values)

    def fit(self, X: Any, Y: Any) -> EmbeddingMap:
        """Fit the map on paired embeddings of the same stimuli.

        Parameters
        ----------
        X : array-like, shape (n, in_dim)
            The stimuli in the decoder's space (e.g. the decoder's CLIP image embeddings).
        Y : array-like, shape (n, out_dim)
            The same stimuli, in the same order, in the backend's conditioning space
            (e.g. the image embeddings the generator's own CLIP encoder gives).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If an array is not 2-D and finite, the row counts differ, there are fewer than
            four pairs, or a parameter is invalid.
        """
        from sklearn.linear_model import Ridge, RidgeCV
        from sklearn.model_selection import KFold

        check_option("rescale", self.rescale, RESCALES)
        check_type("normalize_input", self.normalize_input, bool)
        check_int("cv", self.cv, lo=2)
        alphas = self._alphas()
        X = _as_matrix("X", X)
        Y = _as_matrix("Y", Y)
        if len(X) != len(Y):
            raise ValueError(f"'X' and 'Y' must hold the same stimuli (one row each), but 'X' "
                             f"has {len(X)} rows and 'Y' has {len(Y)}.")
        if len(X) < 4:
            raise ValueError(f"An EmbeddingMap needs at least 4 pairs to fit and cross-validate, "
                             f"but got {len(X)}.")
        if self.normalize_input:
            X = _unit_rows("X", X)
        if len(alphas) > 1:
            ridge = RidgeCV(alphas=alphas).fit(X, Y)
            alpha = float(ridge.alpha_)
        else:
            alpha = alphas[0]
            ridge = Ridge(alpha=alpha).fit(X, Y)
        coef = np.asarray(ridge.coef_, dtype=np.float64).reshape(Y.shape[1], X.shape[1])
        intercept = np.asarray(ridge.intercept_, dtype=np.float64).reshape(Y.shape[1])
        oof = np.empty_like(Y)
        n_splits = min(int(self.cv), len(X) // 2)
        for train, test in KFold(n_splits, shuffle=True,
                                 random_state=self.random_state).split(X):
            oof[test] = Ridge(alpha=alpha).fit(X[train], Y[train]).predict(X[test])
        self.alpha_ = alpha
        self.alphas_ = alphas
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_features_in_ = int(X.shape[1])
        self.n_fitted_ = int(len(X))
        self.r2_train_ = _r2(Y, X @ coef.T + intercept)
        self.cv_r2_ = _r2(Y, oof)
        self.cv_cosine_ = float(np.mean(row_cosine(oof, Y)))
        self.target_norm_ = float(np.linalg.norm(Y, axis=1).mean())
        self.y_mean_ = Y.mean(0)
        self.y_scale_ = _scale_or_one(Y.std(0))
        self.pred_mean_ = oof.mean(0)
        self.pred_scale_ = _scale_or_one(oof.std(0))
        return self

    # ------------------------------------------------------------------ use
    @property
    def in_dim(self) -> int:
        """The input dimension (the decoder's space)."""
        check_is_fitted(self, "coef_")
        return int(self.coef_.shape[1])

    @property
    def out_dim(self) -> int:
        """The output dimension (the backend's conditioning space)."""
        check_is_fitted(self, "coef_")
        return int(self.coef_.shape[0])

    def transform(self, X: Any) -> np.ndarray:
        """Map embeddings ``(n, in_dim)`` to ``(n, out_dim)`` float32, row by row.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the map is not fitted.
        ValueError
            If ``X`` is not a finite 2-D array with ``in_dim`` columns.
        """
        check_is_fitted(self, "coef_")
        X = _as_matrix("X", X)
        if X.shape[1] != self.in_dim:
            raise ValueError(f"'X' must have {self.in_dim} columns (the map's input dimension), "
                             f"but got shape {X.shape}.")
        if self.normalize_input:
            X = _unit_rows("X", X)
        P = X @ self.coef_.T + self.intercept_
        if self.rescale == "norm":
            P = P * (self.target_norm_ / np.maximum(np.linalg.norm(P, axis=1, keepdims=True),
                                                    1e-300))
        elif self.rescale == "std":
            P = (P - self.pred_mean_) / self.pred_scale_ * self.y_scale_ + self.y_mean_
        return np.ascontiguousarray(P, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: parameters, and once fitted the dimensions and fit figures."""
        out: dict[str, Any] = {"kind": "EmbeddingMap", "rescale": self.rescale,
                               "normalize_input": self.normalize_input, "cv": self.cv}
        if not hasattr(self, "coef_"):
            return {**out, "alpha": self.alpha if not isinstance(self.alpha, np.ndarray)
                    else self.alpha.tolist(), "fitted": False}
        method = ("ridge, alpha by leave-one-out CV (sklearn RidgeCV)" if len(self.alphas_) > 1
                  else "ridge, fixed alpha (sklearn Ridge)")
        return {**out, "fitted": True, "method": method, "in_dim": self.in_dim,
                "out_dim": self.out_dim,
                "alpha": self.alpha_, "alphas": list(self.alphas_), "n_fitted": self.n_fitted_,
                "r2_train": self.r2_train_, "cv_r2": self.cv_r2_, "cv_cosine": self.cv_cosine_,
                "target_norm": self.target_norm_}

    def __repr__(self) -> str:
        if not hasattr(self, "coef_"):
            return (f"EmbeddingMap(alpha={self.alpha!r}, rescale={self.rescale!r}) "
                    "[not fitted]")
        return (f"EmbeddingMap({self.in_dim} -> {self.out_dim}, alpha={self.alpha_:.3g}, "
                f"rescale={self.rescale!r}, n={self.n_fitted_}, cv R²={self.cv_r2_:.3f}, "
                f"cv cosine={self.cv_cosine_:.3f})")

    # ------------------------------------------------------------------ files
    def save(self, folder: PathLike) -> Path:
        """Write the fitted map into ``folder`` (safetensors + JSON, each atomically).

        Returns
        -------
        Path
            The folder.
        """
        from safetensors.numpy import save_file

        check_is_fitted(self, "coef_")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {k.rstrip("_"): np.ascontiguousarray(getattr(self, k), dtype=np.float64)
                  for k in _ARRAYS}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(arrays, str(tmp), metadata={"format": FORMAT})
        params = self.get_params()
        if isinstance(params["alpha"], (np.ndarray, tuple)):
            params["alpha"] = [float(a) for a in np.ravel(params["alpha"])]
        write_json_atomic(folder / CONFIG_FILE, {
            "format": FORMAT, "version": 1, "params": params, "summary": self.describe(),
            "weights_sha256": hash_file(folder / WEIGHTS_FILE)})
        return folder

    @classmethod
    def load(cls, folder: PathLike) -> EmbeddingMap:
        """Read a map written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If a file is missing.
        ValueError
            If the files are not an EmbeddingMap's, do not belong together or do not fit.
        """
        from safetensors.numpy import load_file

        from ..embed.builtin import check_safetensors

        folder = Path(folder)
        missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"The embedding map folder {str(folder)!r} lacks {missing}: "
                                    f"expected {CONFIG_FILE} and {WEIGHTS_FILE} (written by "
                                    "EmbeddingMap.save).")
        config = json.loads((folder / CONFIG_FILE).read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"{str(folder / CONFIG_FILE)!r} is not an EmbeddingMap's "
                             f"configuration (format {config.get('format')!r}, expected "
                             f"{FORMAT!r}).")
        check_safetensors(folder / WEIGHTS_FILE)
        if hash_file(folder / WEIGHTS_FILE) != config.get("weights_sha256"):
            raise ValueError(f"The weights in {str(folder / WEIGHTS_FILE)!r} are not the ones "
                             f"{CONFIG_FILE} was written with (SHA-256 differs): the folder was "
                             "half-replaced; save the map again.")
        arrays = load_file(folder / WEIGHTS_FILE)
        absent = [k for k in _ARRAYS if k.rstrip("_") not in arrays]
        if absent:
            raise ValueError(f"{str(folder / WEIGHTS_FILE)!r} lacks the tensors "
                             f"{[k.rstrip('_') for k in absent]}.")
        summary = config["summary"]
        new = cls(**config["params"])
        for k in _ARRAYS:
            setattr(new, k, arrays[k.rstrip("_")])
        if new.coef_.shape != (summary["out_dim"], summary["in_dim"]):
            raise ValueError(f"The weights in {str(folder / WEIGHTS_FILE)!r} have shape "
                             f"{new.coef_.shape}, but {CONFIG_FILE} says "
                             f"{(summary['out_dim'], summary['in_dim'])}.")
        new.alpha_ = float(summary["alpha"])
        new.alphas_ = tuple(float(a) for a in summary["alphas"])
        new.n_features_in_ = int(summary["in_dim"])
        new.n_fitted_ = int(summary["n_fitted"])
        for k in ("r2_train", "cv_r2", "cv_cosine", "target_norm"):
            setattr(new, f"{k}_", float(summary[k]))
        return new
