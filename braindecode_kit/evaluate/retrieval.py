"""Retrieval in embedding space: MindEye2's top-k protocol and 2-way identification.

Both compare predicted embeddings (from brain data) with the true embeddings of the seen
stimuli; row ``i`` of ``pred`` is the prediction for the stimulus of row ``i`` of
``target``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_finite, check_option

__all__ = ["DIRECTIONS", "binomial_ci", "draw_ci", "percentile_rank", "percentile_ranks",
           "retrieval_accuracy", "row_cosine", "two_way_identification"]

DIRECTIONS = ("brain->image", "image->brain", "both")


def _as_pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    target = np.asarray(target)
    for name, arr in (("pred", pred), ("target", target)):
        if arr.dtype.kind not in "fiu" or arr.ndim < 2:
            raise ValueError(
                f"{name!r} must be a numeric array of shape (n, d) or (n, tokens, width), got "
                f"dtype {arr.dtype} and shape {arr.shape}."
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"'pred' and 'target' must have the same shape (row i of pred matches row i of "
            f"target), got {pred.shape} and {target.shape}."
        )
    pred = pred.reshape(len(pred), -1).astype(np.float64)  # token-level: flattened
    target = target.reshape(len(target), -1).astype(np.float64)
    check_finite("'pred'", pred)
    check_finite("'target'", target)
    return pred, target


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, np.finfo(np.float64).tiny)


def row_cosine(pred: Any, target: Any) -> np.ndarray:
    """The cosine of each prediction with its own target (row ``i`` with row ``i``;
    token-level embeddings flattened): how close predicted embeddings lie to the true
    ones, which is what a captioner or an image generator fed them needs (retrieval needs
    only their ranking).

    Returns
    -------
    ndarray, float64
        ``(n,)`` cosines in ``[-1, 1]`` (0 for an all-zero row).
    """
    pred, target = _as_pair(pred, target)
    return (_l2_normalise(pred) * _l2_normalise(target)).sum(axis=1)


def percentile_ranks(pred: Any, target: Any) -> np.ndarray:
    """Per row: the share of the other candidates its true target is ranked above (cosine,
    brain->image, every row a candidate; 1 is perfect, 0.5 chance; ties count against
    the true target). :func:`percentile_rank` is their mean.

    Examples
    --------
    >>> import numpy as np
    >>> percentile_ranks(np.eye(3), np.eye(3)).tolist()
    [1.0, 1.0, 1.0]
    """
    pred, target = _as_pair(pred, target)
    if len(pred) < 2:
        raise ValueError(f"percentile_rank needs at least 2 rows (candidates), got {len(pred)}.")
    sims = _l2_normalise(pred) @ _l2_normalise(target).T
    above = (sims < np.diag(sims)[:, None]).sum(axis=1)
    return above / (len(sims) - 1)


def percentile_rank(pred: Any, target: Any) -> float:
    """The mean share of the other candidates each true target is ranked above (cosine,
    brain->image, every row a candidate; 1 is perfect, 0.5 chance).

    Smoother than top-1 on a small validation set (every candidate counts, not only the
    best), so choices made on it (an epoch, a blend weight) are less noisy; ties count
    against the true target.

    Examples
    --------
    >>> import numpy as np
    >>> percentile_rank(np.eye(3), np.eye(3))
    1.0
    """
    return float(np.mean(percentile_ranks(pred, target)))


def _hits(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row: is the diagonal entry among the k best? Ties count against it."""
    true = np.diag(scores)[:, None]
    # distractors scoring >= the true pair rank above it (the diagonal itself excluded)
    n_above = (scores >= true).sum(axis=1) - 1
    return n_above < k


def binomial_ci(p: float, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` trials.

    Unlike the normal approximation ``p ± z sqrt(p (1 - p) / n)``, it does not collapse to
    zero width at ``p = 0`` or ``p = 1`` (a perfect score over 300 candidates is not known
    to the third decimal) and stays inside ``[0, 1]`` (Wilson 1927; Brown, Cai & DasGupta
    2001 recommend it for small ``n`` and extreme ``p``).

    Parameters
    ----------
    p : float
        Observed proportion, in ``[0, 1]``.
    n : int
        Number of trials (at least 1).
    z : float
        Normal quantile (1.96: 95%).

    Returns
    -------
    list of float
        ``[low, high]``.

    Examples
    --------
    >>> [round(v, 4) for v in binomial_ci(1.0, 300)]
    [0.9874, 1.0]
    >>> [round(v, 4) for v in binomial_ci(0.5, 100)]
    [0.4038, 0.5962]
    """
    if (not 0.0 <= float(p) <= 1.0 or isinstance(n, bool) or int(n) != n or int(n) < 1
            or not float(z) > 0):
        raise ValueError(f"binomial_ci needs 0 <= p <= 1, an integer n >= 1 and z > 0, got "
                         f"p={p!r}, n={n!r}, z={z!r}.")
    p, n, z = float(p), int(n), float(z)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # clipped so that it holds p itself (at p = 1 the sum rounds to 1 - 1e-16)
    return [min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))]


def draw_ci(draws: Any, n_candidates: int) -> list[float]:
    """95% CI of a retrieval score from its candidate draws.

    Several draws: the normal interval over draws, ``mean ± 1.96 * std(ddof=1) /
    sqrt(n_draws)``, clipped to [0, 1] (MindEye2's protocol). One draw: the score is a
    proportion over ``n_candidates`` identifications, with its Wilson interval
    (:func:`binomial_ci`).
    """
    draws = np.asarray(draws, dtype=float).ravel()
    mean = float(draws.mean())
    if len(draws) > 1:
        half = 1.96 * float(draws.std(ddof=1)) / math.sqrt(len(draws))
        return [max(0.0, mean - half), min(1.0, mean + half)]
    return binomial_ci(mean, n_candidates)


def retrieval_accuracy(
    pred: np.ndarray,
    target: np.ndarray,
    k: int = 1,
    n_candidates: int | None = 300,
    n_draws: int = 30,
    seed: int = 0,
    direction: str = "brain->image",
) -> dict[str, Any]:
    """Top-k retrieval among random candidate sets, as MindEye2 evaluates it.

    ``n_draws`` times, ``n_candidates`` rows are drawn without replacement; predicted and
    true embeddings are L2-normalised (token-level ones flattened first), their cosine
    matrix computed, and a row counts as retrieved when its true partner is among the
    ``k`` best-scoring candidates.

    Parameters
    ----------
    pred : ndarray, shape (n, d) or (n, tokens, width)
        Predicted embeddings (from brain data); row ``i`` belongs to stimulus ``i``.
    target : ndarray, same shape as ``pred``
        True embeddings of the stimuli.
    k : int
        Top-k; ``top1`` is always reported, ``topk`` as well when ``k > 1``.
    n_candidates : int | None
        Candidates per draw (MindEye2: 300). Must not exceed ``n``; ``None`` uses all
        rows in a single draw. When it equals ``n`` every draw would be the same set, so
        a single draw is made.
    n_draws : int
        Number of random candidate sets (MindEye2: 30).
    seed : int
        Seed of the draws. The candidate sets depend only on ``seed``, ``n``,
        ``n_candidates`` and ``n_draws``, so results of several subjects evaluated on the
        same test stimuli can be pooled draw by draw.
    direction : {"brain->image", "image->brain", "both"}
        ``"brain->image"``: for each prediction, rank the candidate images;
        ``"image->brain"``: for each image, rank the candidate predictions; ``"both"``:
        a dict with one result per direction.

    Returns
    -------
    dict
        For one direction: ``top1`` (mean over draws), ``ci`` (95% normal interval
        ``mean ± 1.96 * std(ddof=1) / sqrt(n_draws)``, clipped to [0, 1]; with a single
        draw the Wilson score interval of the proportion over ``n_candidates``; see
        :func:`draw_ci`), ``draws`` (per-draw top-1), ``chance`` (``k / n_candidates``;
        ``1 / n_candidates`` for top-1 is ``chance_top1``), ``n_candidates``, ``n_draws`` (as
        made), ``direction`` and, for ``k > 1``, ``k``, ``topk``, ``topk_ci`` and
        ``topk_draws``. For ``"both"``: ``{"direction": "both", "brain->image": {...},
        "image->brain": {...}, "chance", "n_candidates", "n_draws"}``.

    Notes
    -----
    Ties are counted as failures: a candidate whose score equals the true pair's ranks
    above it. Degenerate predictions (e.g. all rows equal) therefore score 0, not 1.
    """
    pred, target = _as_pair(pred, target)
    check_option("direction", direction, DIRECTIONS)
    n = len(pred)
    if n < 2:
        raise ValueError(f"retrieval needs at least 2 rows, got {n}.")
    if n_candidates is None:
        n_candidates = n
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, int | np.integer) or (
        n_candidates < 2
    ):
        raise ValueError(f"'n_candidates' must be an int >= 2 or None, got {n_candidates!r}.")
    n_candidates = int(n_candidates)
    if n_candidates > n:
        raise ValueError(
            f"'n_candidates'={n_candidates} exceeds the number of rows n={n}; pass a smaller "
            "n_candidates, or n_candidates=None to use all rows in one draw."
        )
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"'n_draws' must be an int >= 1, got {n_draws!r}.")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k < n_candidates:
        raise ValueError(f"'k' must be an int in [1, n_candidates={n_candidates}), got {k!r}.")
    k = int(k)
    if n_candidates == n:
        n_draws = 1
    pred = _l2_normalise(pred)
    target = _l2_normalise(target)
    rng = np.random.default_rng(seed)
    dirs = ("brain->image", "image->brain") if direction == "both" else (direction,)
    hits1 = {d: np.zeros(n_draws) for d in dirs}
    hitsk = {d: np.zeros(n_draws) for d in dirs}
    for i in range(n_draws):
        idx = np.sort(rng.choice(n, n_candidates, replace=False)) if n_candidates < n else (
            np.arange(n)
        )
        scores = pred[idx] @ target[idx].T  # rows: predictions, columns: images
        for d in dirs:
            s = scores if d == "brain->image" else scores.T
            hits1[d][i] = _hits(s, 1).mean()
            if k > 1:
                hitsk[d][i] = _hits(s, k).mean()
    results = {}
    for d in dirs:
        res: dict[str, Any] = {
            "top1": float(hits1[d].mean()),
            "ci": draw_ci(hits1[d], n_candidates),
            "draws": hits1[d].tolist(),
            "chance": k / n_candidates,
            "chance_top1": 1 / n_candidates,
            "n_candidates": n_candidates,
            "n_draws": int(n_draws),
            "direction": d,
            "k": k,
        }
        if k > 1:
            res["topk"] = float(hitsk[d].mean())
            res["topk_ci"] = draw_ci(hitsk[d], n_candidates)
            res["topk_draws"] = hitsk[d].tolist()
        results[d] = res
    if direction != "both":
        return results[direction]
    return {
        "direction": "both",
        **results,
        "chance": k / n_candidates,
        "n_candidates": n_candidates,
        "n_draws": int(n_draws),
        "k": k,
    }


def two_way_identification(pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """2-way identification in embedding space (MindEye2, Brain-Diffuser).

    With ``R = corrcoef(target, pred)[:n, n:]`` (``R[i, j]``: Pearson correlation of
    true embedding ``i`` with prediction ``j``), each prediction ``j`` scores the share
    of the other stimuli ``i != j`` with ``R[i, j] < R[j, j]``; the result is the mean
    over ``j``.

    Parameters
    ----------
    pred : ndarray, shape (n, d) or (n, tokens, width)
        Predicted embeddings; row ``i`` belongs to stimulus ``i``.
    target : ndarray, same shape
        True embeddings.

    Returns
    -------
    dict
        ``accuracy`` (mean over predictions), ``per_item`` (list, one value per
        prediction), ``chance`` (0.5) and ``n``.

    Notes
    -----
    Ties, and correlations undefined because a row is constant, count as failures.
    """
    pred, target = _as_pair(pred, target)
    n = len(pred)
    if n < 2:
        raise ValueError(f"2-way identification needs at least 2 rows, got {n}.")
    if pred.shape[1] < 2:
        raise ValueError("2-way identification needs at least 2 features per row.")

    def zscore(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norm > 0, x / norm, np.nan)

    r = zscore(target) @ zscore(pred).T  # r[i, j] = corr(target_i, pred_j)
    diag = np.diag(r)
    wins = (r < diag[None, :]).sum(axis=0)  # for column j: rows i with r[i, j] < r[j, j]
    per_item = wins / (n - 1)
    return {"accuracy": float(per_item.mean()), "per_item": per_item.tolist(), "chance": 0.5,
            "n": n}
