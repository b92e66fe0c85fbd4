"""Ridge regression from brain data to embeddings: the reference every decoding paper
reports (Brain-Diffuser, MindEye's "ridge" baselines, the MEG paper's linear decoder).

:class:`RidgeDecoder` standardises the features with training statistics, picks the
regularisation ``alpha`` by cross-validation, and re-standardises its predictions to the
training targets' mean and standard deviation per dimension, as Brain-Diffuser does.
MEG/sEEG epochs ``(n_trials, n_channels, n_times)`` are flattened to
``(n_trials, n_channels * n_times)`` (C order: channel-major), the linear decoder of the
MEG decoding literature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["DEFAULT_ALPHAS", "RETRIEVAL_WHITEN", "RidgeDecoder", "whitening_matrix"]

DEFAULT_ALPHAS = np.logspace(-1, 7, 17)
"""The alpha grid used when ``alphas=None``: 0.1 to 1e7, half a decade apart."""

RETRIEVAL_WHITEN = (None, 0.1, 0.03, 0.01, 0.003, 0.001)
"""The target-whitening shrinkages a retrieval ridge chooses among (``None``: none); see
:class:`RidgeDecoder`'s ``whiten``."""


def whitening_matrix(Y: np.ndarray, shrinkage: float) -> np.ndarray:
    """The inverse of the targets' covariance shrunk toward the identity,
    ``(cov(Y) + shrinkage * lambda_max I)^-1``, scaled to a mean eigenvalue of 1.

    Multiplying a centred prediction by it scores candidates by a Mahalanobis inner
    product in the target space: the few high-variance directions of an embedding no
    longer decide a cosine alone (the whitening of descriptors for retrieval, e.g. Jegou &
    Chum 2012). ``shrinkage`` 0 is the plain inverse; larger values whiten less.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.random.default_rng(0).standard_normal((500, 3)) * [10.0, 1.0, 1.0]
    >>> M = whitening_matrix(Y, 0.0) @ np.cov(Y, rowvar=False, bias=True)
    >>> bool(np.allclose(M / M[0, 0], np.eye(3)))
    True
    """
    return _whitening(_target_eigh(Y), shrinkage)


def _target_eigh(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0) and eigenvectors of the targets' covariance."""
    Y = np.asarray(Y, dtype=np.float64)
    Yc = Y - Y.mean(axis=0)
    lam, vec = np.linalg.eigh(Yc.T @ Yc / len(Yc))
    return np.clip(lam, 0.0, None), vec


def _whitening(eig: tuple[np.ndarray, np.ndarray], shrinkage: float) -> np.ndarray:
    """:func:`whitening_matrix` from the covariance's eigendecomposition ``eig``."""
    lam, vec = eig
    inv = 1.0 / np.maximum(lam + float(shrinkage) * lam.max(), 1e-12 * max(lam.max(), 1e-300))
    return (vec * (inv / inv.mean())) @ vec.T


class _EigenRidge:
    """Ridge on centred data through one eigendecomposition, shared by every alpha.

    Works in the primal (``gram = Xc^T Xc``, p x p, ``rhs = Xc^T Yc``) when there are
    fewer features than samples and in the dual (``gram = Xc Xc^T``, n x n,
    ``rhs = Yc``) otherwise, so wide fMRI matrices stay cheap. New rows are mapped with
    :meth:`basis`: the centred rows themselves (primal) or their centred cross-kernel
    with the training rows (dual).
    """

    def __init__(self, gram: np.ndarray, rhs: np.ndarray, primal: bool) -> None:
        import scipy.linalg as sl

        self.primal = primal
        lam, vec = sl.eigh(gram, driver="evd", check_finite=False)
        self.lam = np.clip(lam, 0.0, None)
        self.vec = vec
        self.B = vec.T @ rhs  # the targets in the eigenbasis

    def basis(self, new: np.ndarray) -> np.ndarray:
        """prediction(alpha) = basis(new) diag(1 / (lam + alpha)) B."""
        return new @ self.vec

    def predict(self, Z: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
        alpha = np.asarray(alpha, dtype=np.float64)
        if alpha.ndim == 0:
            return (Z / (self.lam + alpha)) @ self.B
        return Z @ (self.B / (self.lam[:, None] + alpha[None, :]))  # one alpha per target

    def weights(self, alpha: np.ndarray | float) -> np.ndarray:
        """Primal: (p, t) weights. Dual: (n, t) dual coefficients."""
        alpha = np.asarray(alpha, dtype=np.float64)
        denom = self.lam[:, None] + (alpha if alpha.ndim == 0 else alpha[None, :])
        return self.vec @ (self.B / denom)


class _FixedRidge:
    """Ridge on centred data for a single alpha, by one Cholesky factorisation: what a
    fold needs when there is nothing to choose (a fraction of an eigendecomposition's
    cost). Same interface as :class:`_EigenRidge`; ``predict`` takes that one alpha."""

    def __init__(self, gram: np.ndarray, rhs: np.ndarray, alpha: float) -> None:
        self.alpha = float(alpha)
        self.W = _cholesky_ridge(gram, rhs, self.alpha)

    def basis(self, new: np.ndarray) -> np.ndarray:
        return new

    def predict(self, Z: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
        if not np.all(np.asarray(alpha) == self.alpha):
            raise ValueError(f"this fold was solved for alpha={self.alpha}, not {alpha}.")
        return Z @ self.W


def _loo_predictions(U2: np.ndarray, U: np.ndarray, lam: np.ndarray, C: np.ndarray,
                     Y: np.ndarray, y_mean: np.ndarray, alpha: float) -> np.ndarray:
    """Exact leave-one-out predictions (intercept refitted) for one alpha, from the
    left singular vectors ``U`` of the centred features and ``C = U^T (Y - mean)``."""
    n = Y.shape[0]
    shrink = lam / (lam + alpha)
    fitted = y_mean + (U * shrink) @ C
    h = 1.0 / n + U2 @ shrink
    return Y - (Y - fitted) / np.maximum(1.0 - h, 1e-12)[:, None]


def _cholesky_ridge(gram: np.ndarray, rhs: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """Solve (gram + alpha I) w = rhs for fixed alpha(s) (one per column), by Cholesky."""
    import scipy.linalg as sl

    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (rhs.shape[1],))
    sol = np.empty_like(rhs)
    diag = np.arange(len(gram))
    for a in np.unique(alphas):
        cols = alphas == a
        g = gram.copy()
        g[diag, diag] += a
        sol[:, cols] = sl.cho_solve(sl.cho_factor(g, check_finite=False), rhs[:, cols],
                                    check_finite=False)
    return sol


def _standardise(X: np.ndarray, scale: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    if scale:
        sd = X.std(axis=0)
        sd[sd < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    else:
        sd = np.ones(X.shape[1])
    return (X - mean) / sd, mean, sd


def _scale_or_one(sd: np.ndarray) -> np.ndarray:
    sd = np.asarray(sd, dtype=np.float64).copy()
    sd[~(sd > 1e-12)] = 1.0
    return sd


class RidgeDecoder(RegressorMixin, BaseEstimator):
    """Ridge regression with cross-validated alpha and re-standardised predictions.

    ``X`` is 2-D ``(n_trials, n_features)`` or 3-D ``(n_trials, n_channels, n_times)``;
    3-D trials are flattened to ``n_channels * n_times`` features (C order), so ``coef_``
    has one weight per channel and time sample (``coef_.reshape(n_targets, n_channels,
    n_times)`` gives them back per sensor).

    Parameters
    ----------
    alphas : array-like of float | None
        Candidate regularisation strengths; ``None`` uses :data:`DEFAULT_ALPHAS`
        (``np.logspace(-1, 7, 17)``). With standardised features, the best alpha grows
        with the number of features (Brain-Diffuser used 5e4 to 1e5 on ~15k voxels).
    cv : int | None
        Number of K-fold splits for choosing alpha (shuffled with ``random_state``; or
        grouped by the ``groups`` passed to :meth:`fit`, e.g. stimulus ids, so that
        repetitions of a stimulus never straddle a fold). ``None``: exact
        leave-one-out (what :class:`sklearn.linear_model.RidgeCV` computes efficiently).
        Features are standardised once with all training rows; each fold centres its own
        rows (intercept) and shares one eigendecomposition across all alphas, which gives
        the same choice as ``GridSearchCV(Ridge(), {"alpha": alphas}, cv=KFold(...))`` on
        the standardised features at a fraction of the cost.
    standardize_X : bool
        Z-score each feature with training statistics before the ridge.
    restandardize : bool | "batch"
        ``True``: map predictions to the training targets' mean and standard deviation
        per dimension, using the statistics of out-of-fold (cross-validated) predictions
        at the chosen alpha, so each row's prediction does not depend on the batch.
        ``"batch"``: Brain-Diffuser's literal recipe, z-scoring each call's predictions
        with their own statistics (needs >= 2 rows). ``False``: raw ridge predictions.
    per_target_alpha : bool
        Choose one alpha per target dimension instead of one for all.
    target_groups : array-like | None
        One label per target column: one alpha per group of columns, chosen by the
        group's mean validation error, so several target sets fitted on the same features
        (e.g. a CLIP embedding and a blurry image) share one decomposition per fold and
        each gets the alpha its own fit would choose. ``None``: one alpha for all
        (or one per target with ``per_target_alpha``).
    random_state : int | None
        Seed of the K-fold shuffle.
    scoring : {"mse", "rank"}
        What cross-validation chooses alpha (and ``whiten``) by: ``"mse"``, the mean squared
        error of the predictions (the ridge of the decoding literature); ``"rank"``, the
        mean percentile rank of each training stimulus among all of them when its
        out-of-fold predictions (averaged over its rows of the same ``groups`` label, as
        test repetitions are averaged) are compared with every stimulus's target by cosine:
        a ridge chosen for retrieval. It needs 2-D targets and one alpha for all.
    whiten : float | sequence of (float or None) | None
        Make predictions retrieval queries: the centred raw prediction multiplied by
        :func:`whitening_matrix` of the training targets with this shrinkage (smaller:
        stronger). With a sequence (e.g. :data:`RETRIEVAL_WHITEN`; ``None`` in it: no
        whitening) ``scoring="rank"`` chooses one. Whitened predictions are not estimates
        of the embeddings (they are centred and re-weighted: ``restandardize`` does not
        apply to them); keep ``None`` for anything but retrieval by cosine.

    Attributes
    ----------
    alpha_ : float | ndarray
        Chosen alpha (an array of one per target with ``per_target_alpha`` or
        ``target_groups``).
    coef_ : ndarray, shape (n_targets, n_features) or (n_features,)
        Weights on the raw (unstandardised), flattened features.
    feature_shape_ : tuple of int
        The per-trial shape seen in fit (``(n_features,)`` or ``(n_channels, n_times)``);
        ``n_features_in_`` is its product.
    intercept_ : ndarray | float
    cv_errors_ : ndarray, shape (n_alphas, n_targets)
        Mean squared validation error per alpha and target.
    whiten_ : float | None
        The whitening shrinkage used by :meth:`predict` (None: none).
    cv_ranks_ : ndarray, shape (n_alphas, n_whiten)
        With ``scoring="rank"``: the validation mean percentile rank of every alpha and
        ``whiten`` candidate.
    y_mean_, y_scale_, pred_mean_, pred_scale_ : ndarray
        Statistics used to re-standardise predictions.
    estimators_ : dict
        Per-subject fitted RidgeDecoders, when fitted with ``subjects``.
    subjects_ : list of str
        The subjects seen in fit (multi-subject mode).
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray | None = None,
        cv: int | None = 5,
        standardize_X: bool = True,
        restandardize: bool | str = True,
        per_target_alpha: bool = False,
        target_groups: Sequence[Any] | np.ndarray | None = None,
        random_state: int | None = 0,
        scoring: str = "mse",
        whiten: float | Sequence[float | None] | None = None,
    ) -> None:
        self.scoring = scoring
        self.whiten = whiten
        self.alphas = alphas
        self.cv = cv
        self.standardize_X = standardize_X
        self.restandardize = restandardize
        self.per_target_alpha = per_target_alpha
        self.target_groups = target_groups
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: np.ndarray | Sequence[np.ndarray],
        Y: np.ndarray | Sequence[np.ndarray],
        subjects: Sequence[Any] | np.ndarray | None = None,
        groups: np.ndarray | Sequence[Any] | None = None,
    ) -> RidgeDecoder:
        """Fit one ridge, or one per subject.

        Parameters
        ----------
        X : ndarray, shape (n_trials, n_features) or (n_trials, n_channels, n_times) | list
            Brain data (3-D MEG/sEEG trials are flattened), or a list of per-subject arrays
            (their shapes may differ) together with ``subjects``.
        Y : ndarray, shape (n_trials, n_targets) or (n_trials,) | list of ndarray
            Targets (e.g. CLIP embeddings). With a list ``X``: a list of matching arrays,
            or one array of all rows stacked in the same order.
        subjects : list | ndarray | None
            With a list ``X``: one label per array. With an array ``X``: one label per
            row (rows are routed to that subject's ridge). ``None``: a single ridge.
        groups : array-like | None
            Per-row group labels (e.g. stimulus ids) for grouped K-fold; same layout as
            ``Y``'s rows.

        Returns
        -------
        self
        """
        self._check_params()
        if subjects is None:
            if _is_array_list(X):
                raise ValueError(
                    "'X' is a list of per-subject arrays, so 'subjects' must name them "
                    "(one label per array)."
                )
            self._fit_single(X, Y, groups)
            return self
        parts = self._split_by_subject(X, Y, subjects, groups, fitting=True)
        self.estimators_ = {}
        for subject, (Xs, Ys, gs) in parts.items():
            est = clone(self)
            est._fit_single(Xs, Ys, gs)
            self.estimators_[subject] = est
        self.subjects_ = list(parts)
        self.alpha_ = {s: e.alpha_ for s, e in self.estimators_.items()}
        self.whiten_ = {s: e.whiten_ for s, e in self.estimators_.items()}
        return self

    def _check_params(self) -> None:
        alphas = DEFAULT_ALPHAS if self.alphas is None else np.asarray(self.alphas, dtype=float)
        if alphas.ndim != 1 or len(alphas) == 0 or not np.all(np.isfinite(alphas)) or (
            alphas <= 0
        ).any():
            raise ValueError(
                f"'alphas' must be a non-empty 1-D list of positive floats, got {self.alphas!r}."
            )
        if self.cv is not None and (
            isinstance(self.cv, bool) or not isinstance(self.cv, int | np.integer) or self.cv < 2
        ):
            raise ValueError(f"'cv' must be None (leave-one-out) or an int >= 2, got {self.cv!r}.")
        if self.restandardize not in (True, False, "batch"):
            raise ValueError(
                "Invalid value for the 'restandardize' parameter. Allowed values are True, "
                f"False, 'batch', but got {self.restandardize!r} instead."
            )
        if self.target_groups is not None and self.per_target_alpha:
            raise ValueError("'target_groups' and 'per_target_alpha=True' both set how "
                             "alphas are shared: give one of them.")
        if self.scoring not in ("mse", "rank"):
            raise ValueError("Invalid value for the 'scoring' parameter. Allowed values are "
                             f"'mse', 'rank', but got {self.scoring!r} instead.")
        whitens = self.whiten
        if whitens is None or isinstance(whitens, int | float | np.floating | np.integer):
            whitens = [whitens]
        elif isinstance(whitens, str) or not hasattr(whitens, "__len__") or not len(whitens):
            raise ValueError("'whiten' must be None, a shrinkage >= 0 or a non-empty list of "
                             f"them (None: no whitening), got {self.whiten!r}.")
        whitens = list(whitens)
        for w in whitens:
            if w is not None and (isinstance(w, bool) or not isinstance(
                    w, int | float | np.floating | np.integer) or not np.isfinite(w) or w < 0):
                raise ValueError(f"'whiten' values must be None or finite shrinkages >= 0, "
                                 f"got {w!r} in {self.whiten!r}.")
        if len(whitens) > 1 and self.scoring != "rank":
            raise ValueError(f"'whiten' gives {len(whitens)} candidates; choosing among them "
                             "needs scoring='rank'.")
        if self.scoring == "rank" and (self.per_target_alpha or self.target_groups is not None):
            raise ValueError("scoring='rank' chooses one alpha for all targets: leave "
                             "'per_target_alpha' and 'target_groups' unset.")
        self._alphas = alphas
        self._whitens = [None if w is None else float(w) for w in whitens]

    def _fit_single(self, X: Any, Y: Any, groups: Any) -> None:
        self._check_params()
        shape = tuple(X.shape[1:]) if isinstance(X, np.ndarray) and X.ndim == 3 else None
        X, Y = validate_data(self, _flatten_trials(X), Y, multi_output=True, y_numeric=True,
                             dtype=[np.float64, np.float32])
        self.feature_shape_ = shape if shape is not None else (X.shape[1],)
        X = np.asarray(X, dtype=np.float64)
        one_d = Y.ndim == 1
        Y2 = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
        tgroups = None
        if self.target_groups is not None:
            tgroups = np.asarray(self.target_groups).ravel()
            if tgroups.shape != (Y2.shape[1],):
                raise ValueError(f"'target_groups' must give one label per target column "
                                 f"({Y2.shape[1]}), got {tgroups.size} labels.")
        n = X.shape[0]
        n_folds = n if self.cv is None else int(self.cv)
        if n < max(n_folds, 2) or (self.cv is None and n < 3):
            raise ValueError(
                f"RidgeDecoder with cv={self.cv!r} needs at least {max(n_folds, 3)} samples, "
                f"got n_samples = {n}."
            )
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise ValueError(f"'groups' must have one label per row ({n}), got shape "
                                 f"{groups.shape}.")
            if self.cv is None:
                raise ValueError("'groups' needs K-fold CV: set cv to an int, not None.")
        alphas = self._alphas
        Xs, x_mean, x_scale = _standardise(X, self.standardize_X)
        y_mean = Y2.mean(axis=0)
        Yc = Y2 - y_mean
        # primal (p x p) or dual (n x n): whichever is smaller for the folds' training rows
        n_fit = n - 1 if self.cv is None else n - int(np.ceil(n / int(self.cv)))
        primal = Xs.shape[1] <= n_fit
        gram = Xs.T @ Xs if primal else Xs @ Xs.T  # centred: Xs has zero column means
        if self.cv is None:
            errors, oof_for, full = self._loo(Xs, Y2, Yc, gram, primal, alphas)
        else:
            errors, oof_for = self._kfold(Xs, Y2, gram, primal, alphas, groups)
            full = None
        whiten, ranks, whitening = self._whitens[0], None, None
        if self.scoring == "rank":
            if one_d or Y2.shape[1] < 2:
                raise ValueError("scoring='rank' retrieves by cosine: it needs targets of at "
                                 f"least 2 dimensions, got {Y2.shape[1]}.")
            alpha, whiten, whitening, ranks = self._choose_by_rank(oof_for, Y2, groups, alphas)
        elif self.per_target_alpha:
            alpha = alphas[np.argmin(errors, axis=0)]
        elif tgroups is not None:
            alpha = np.empty(Y2.shape[1])
            for g in np.unique(tgroups):
                cols = tgroups == g
                alpha[cols] = alphas[int(np.argmin(errors[:, cols].mean(axis=1)))]
        else:
            alpha = float(alphas[int(np.argmin(errors.mean(axis=1)))])
        if whitening is None and whiten is not None:  # one shrinkage given, nothing to choose
            whitening = whitening_matrix(Y2, whiten)
        oof = oof_for(alpha)
        if full is not None:  # leave-one-out already decomposed the full data
            W = full.weights(alpha)
        else:
            W = _cholesky_ridge(gram, Xs.T @ Yc if primal else Yc, alpha)
        if not primal:
            W = Xs.T @ W  # dual coefficients -> weights on the standardised features
        coef = W / x_scale[:, None]
        intercept = y_mean - x_mean @ coef
        self.alpha_ = alpha
        self.cv_errors_ = errors
        self.whiten_ = whiten
        self.whitening_ = whitening
        if ranks is not None:
            self.cv_ranks_ = ranks
        self.coef_ = coef.T[0] if one_d else coef.T
        self.intercept_ = float(intercept[0]) if one_d else intercept
        self.x_mean_, self.x_scale_ = x_mean, x_scale
        self.y_mean_, self.y_scale_ = y_mean, _scale_or_one(Y2.std(axis=0))
        self.pred_mean_, self.pred_scale_ = oof.mean(axis=0), _scale_or_one(oof.std(axis=0))
        self._one_d = one_d

    def _choose_by_rank(self, oof_for, Y, groups, alphas):
        """(alpha, whiten, its whitening matrix or None, ranks): the pair whose out-of-fold
        predictions, averaged per group, rank their own stimulus highest among all
        training stimuli (cosine)."""
        from .evaluate.retrieval import percentile_rank
        from .splits import average_by_stimulus

        labels = np.arange(len(Y)) if groups is None else np.unique(
            np.asarray(groups), return_inverse=True)[1].reshape(-1)
        truth, _ = average_by_stimulus(Y, labels)
        if len(truth) < 2:
            raise ValueError("scoring='rank' needs at least 2 distinct training stimuli.")
        eig = _target_eigh(Y)  # one decomposition for every shrinkage
        mats = [None if w is None else _whitening(eig, w) for w in self._whitens]
        y_mean, y_scale = Y.mean(axis=0), _scale_or_one(Y.std(axis=0))
        ranks = np.empty((len(alphas), len(self._whitens)))
        for i, a in enumerate(alphas):
            oof = oof_for(float(a))
            p_mean, p_scale = oof.mean(axis=0), _scale_or_one(oof.std(axis=0))
            for j, m in enumerate(mats):
                q = self._transform(oof, m, y_mean, y_scale, p_mean, p_scale)
                ranks[i, j] = percentile_rank(average_by_stimulus(q, labels)[0], truth)
        i, j = np.unravel_index(int(np.argmax(ranks)), ranks.shape)
        return float(alphas[i]), self._whitens[j], mats[j], ranks

    def _transform(self, raw, whitening, y_mean, y_scale, pred_mean, pred_scale):
        """Raw ridge outputs -> predictions: whitened retrieval queries when a
        ``whitening`` matrix is given, else re-standardised as ``restandardize`` says."""
        if whitening is not None:
            return (raw - y_mean) @ whitening
        if self.restandardize is True:
            return (raw - pred_mean) / pred_scale * y_scale + y_mean
        if self.restandardize == "batch":
            if len(raw) < 2:
                raise ValueError("restandardize='batch' needs at least 2 rows to predict.")
            return (raw - raw.mean(axis=0)) / _scale_or_one(raw.std(axis=0)) * y_scale + y_mean
        return raw

    def _loo(self, Xs, Y, Yc, gram, primal, alphas):
        full = _EigenRidge(gram, Xs.T @ Yc if primal else Yc, primal)
        if primal:
            keep = full.lam > full.lam.max(initial=0.0) * 1e-12
            U = (Xs @ full.vec[:, keep]) / np.sqrt(full.lam[keep])
            lam = full.lam[keep]
        else:
            U, lam = full.vec, full.lam
        U2 = U**2
        C = U.T @ Yc
        y_mean = Y.mean(axis=0)
        errors = np.stack([
            ((Y - _loo_predictions(U2, U, lam, C, Y, y_mean, a)) ** 2).mean(axis=0)
            for a in alphas
        ])

        def oof_for(alpha):
            alpha = np.atleast_1d(alpha)
            out = np.empty_like(Y)
            for a in np.unique(alpha):
                cols = alpha == a if alpha.size > 1 else slice(None)
                out[:, cols] = _loo_predictions(U2, U, lam, C[:, cols], Y[:, cols],
                                                y_mean[cols], float(a))
            return out

        return errors, oof_for, full

    def _kfold(self, Xs, Y, gram, primal, alphas, groups):
        if groups is not None:
            n_groups = len(np.unique(groups))
            if n_groups < self.cv:
                raise ValueError(f"cv={self.cv} folds need at least {self.cv} groups, got "
                                 f"{n_groups}.")
            splitter = GroupKFold(self.cv, shuffle=True, random_state=self.random_state)
            folds = list(splitter.split(Xs, Y, groups))
        else:
            folds = list(KFold(self.cv, shuffle=True, random_state=self.random_state).split(Xs))
        sse = np.zeros((len(alphas), Y.shape[1]))
        cached = []

        def fold_model(g, rhs, primal):  # one alpha: a Cholesky solve, else one eigh for all
            if len(alphas) == 1:
                return _FixedRidge(g, rhs, float(alphas[0]))
            return _EigenRidge(g, rhs, primal)

        for train, val in folds:
            y_mean = Y[train].mean(axis=0)
            Yc = Y[train] - y_mean
            if primal:  # fold Gram from the full one: X^T X minus the validation rows
                m = Xs[train].mean(axis=0)
                g = gram - Xs[val].T @ Xs[val] - len(train) * np.outer(m, m)
                model = fold_model(g, Xs[train].T @ Yc, True)
                Z = model.basis(Xs[val] - m)
            else:  # fold kernels are blocks of the full kernel, centred per fold
                k_tt = gram[np.ix_(train, train)]
                a = k_tt.mean(axis=1)
                c = a.mean()
                model = fold_model(k_tt - a[:, None] - a[None, :] + c, Yc, False)
                k_vt = gram[np.ix_(val, train)]
                Z = model.basis(k_vt - k_vt.mean(axis=1, keepdims=True) - a[None, :] + c)
            for i, alpha in enumerate(alphas):
                sse[i] += ((Y[val] - y_mean - model.predict(Z, alpha)) ** 2).sum(axis=0)
            cached.append((val, Z, model, y_mean))

        def oof_for(alpha):
            out = np.empty_like(Y)
            for val, Z, model, y_mean in cached:
                out[val] = y_mean + model.predict(Z, alpha)
            return out

        return sse / len(Y), oof_for

    # ------------------------------------------------------------------ predict
    def predict(
        self, X: np.ndarray | Sequence[np.ndarray], subjects: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : ndarray, shape (n_trials, n_features) or (n_trials, n_channels, n_times) | list
            As in :meth:`fit` (3-D trials must have the shape seen in fit).
        subjects : list | ndarray | None
            As in :meth:`fit`; required when the decoder was fitted per subject.

        Returns
        -------
        ndarray, shape (n_trials, n_targets)
            Rows in input order (list inputs: the arrays' rows stacked in order).
        """
        check_is_fitted(self)
        if hasattr(self, "estimators_"):
            if subjects is None:
                raise ValueError(
                    f"This RidgeDecoder was fitted per subject ({self.subjects_}); pass "
                    "'subjects' to predict."
                )
            if _is_array_list(X):
                self._check_list(X, subjects, known=True)
                return np.concatenate(
                    [self.estimators_[str(s)].predict(x) for x, s in zip(X, subjects)], axis=0
                )
            X = np.asarray(X)
            labels = self._row_labels(subjects, len(X), known=True)
            out = None
            for s in _unique(labels):
                rows = labels == s
                pred = self.estimators_[s].predict(X[rows])
                if out is None:
                    out = np.empty((len(X),) + pred.shape[1:], dtype=pred.dtype)
                out[rows] = pred
            return out
        if subjects is not None:
            raise ValueError("'subjects' was given to predict, but the decoder was fitted "
                             "without subjects.")
        if _is_array_list(X):
            raise ValueError("'X' is a list of arrays, but the decoder was fitted on one array.")
        if isinstance(X, np.ndarray) and X.ndim == 3 and X.shape[1:] != self.feature_shape_:
            raise ValueError(
                f"'X' has trials of shape {X.shape[1:]}, but this RidgeDecoder was fitted on "
                f"trials of shape {self.feature_shape_}."
            )
        X = validate_data(self, _flatten_trials(X), reset=False, dtype=[np.float64, np.float32])
        X = np.asarray(X, dtype=np.float64)
        coef = self.coef_.reshape(1, -1) if self._one_d else self.coef_
        raw = X @ coef.T + self.intercept_
        out = self._transform(raw, self.whitening_, self.y_mean_, self.y_scale_,
                              self.pred_mean_, self.pred_scale_)
        return out[:, 0] if self._one_d else out

    # ------------------------------------------------------------------ subjects
    def _check_list(self, X: Sequence[Any], subjects: Any, known: bool) -> list[str]:
        if isinstance(subjects, str) or len(subjects) != len(X):
            raise ValueError(
                f"With a list 'X' of {len(X)} arrays, 'subjects' must be a list of {len(X)} "
                f"labels, got {subjects!r}."
            )
        labels = [str(s) for s in subjects]
        if not known and len(set(labels)) != len(labels):
            raise ValueError(f"'subjects' must not repeat a label, got {labels}.")
        if known:
            self._check_known(labels)
        return labels

    def _row_labels(self, subjects: Any, n: int, known: bool) -> np.ndarray:
        labels = np.asarray([str(s) for s in np.asarray(subjects, dtype=object).ravel()],
                            dtype=object)
        if len(labels) != n:
            raise ValueError(
                f"With an array 'X' of {n} rows, 'subjects' must give one label per row, got "
                f"{len(labels)} labels."
            )
        if known:
            self._check_known(set(labels))
        return labels

    def _check_known(self, labels: Any) -> None:
        unknown = sorted(set(labels) - set(self.subjects_))
        if unknown:
            raise ValueError(
                f"Unknown subject(s) {unknown}: this RidgeDecoder was fitted on "
                f"{self.subjects_}."
            )

    def _split_by_subject(self, X: Any, Y: Any, subjects: Any, groups: Any, fitting: bool):
        parts: dict[str, tuple[Any, Any, Any]] = {}
        if _is_array_list(X):
            labels = self._check_list(X, subjects, known=False)
            sizes = [len(x) for x in X]
            if isinstance(Y, list | tuple):
                if len(Y) != len(X):
                    raise ValueError(f"'Y' has {len(Y)} arrays, 'X' has {len(X)}.")
                Ys = list(Y)
            else:
                Y = np.asarray(Y)
                if len(Y) != sum(sizes):
                    raise ValueError(
                        f"'Y' has {len(Y)} rows, but the arrays of 'X' have {sum(sizes)} rows "
                        "in all."
                    )
                Ys = np.split(Y, np.cumsum(sizes)[:-1])
            gs: list[Any] = [None] * len(X)
            if groups is not None:
                if isinstance(groups, list | tuple) and len(groups) == len(X) and all(
                    np.ndim(g) == 1 for g in groups
                ):
                    gs = list(groups)
                else:
                    gs = np.split(np.asarray(groups), np.cumsum(sizes)[:-1])
            for label, x, y, g in zip(labels, X, Ys, gs):
                parts[label] = (x, y, g)
            return parts
        X = np.asarray(X)
        Y = np.asarray(Y)
        labels = self._row_labels(subjects, len(X), known=False)
        if len(Y) != len(X):
            raise ValueError(f"'Y' has {len(Y)} rows, 'X' has {len(X)}.")
        g_all = None if groups is None else np.asarray(groups)
        for s in _unique(labels):
            rows = labels == s
            parts[s] = (X[rows], Y[rows], None if g_all is None else g_all[rows])
        return parts

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _is_array_list(X: Any) -> bool:
    """A list of per-subject arrays (not a nested list of numbers)."""
    return isinstance(X, list | tuple) and len(X) > 0 and all(
        isinstance(x, np.ndarray) and x.ndim >= 2 for x in X
    )


def _flatten_trials(X: Any) -> Any:
    """MEG/sEEG trials (n, channels, times) become (n, channels * times)."""
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return X.reshape(len(X), -1)
    return X


def _unique(values: np.ndarray) -> list[str]:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values.tolist()))
