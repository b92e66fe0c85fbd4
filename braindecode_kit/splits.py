"""Splits by stimulus, never by trial: :func:`assign_splits`, :func:`check_no_leak`,
:func:`split_train_val`, :func:`subsample_stimuli` and :func:`average_by_stimulus`.

Test stimuli must never be seen in training, so every helper here works on stimulus ids;
:func:`check_no_leak` refuses a trial table in which a stimulus appears both in train and
in val/test. Nothing here imports :mod:`braindecode_kit.trialset`: a "trial set" is any
object with ``trials`` (a DataFrame), ``stimulus_ids``, ``select`` and ``with_splits``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_float

__all__ = [
    "SPLITS",
    "SplitLeakError",
    "assign_splits",
    "average_by_stimulus",
    "check_no_leak",
    "check_stimulus_ids",
    "split_train_val",
    "subsample_stimuli",
]

SPLITS = ("train", "val", "test", "")


class SplitLeakError(ValueError):
    """A stimulus appears in more than one split (e.g. in train and in test)."""


def assign_splits(
    stimulus_ids: Iterable[Any],
    *,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    test_ids: Iterable[Any] | None = None,
) -> pd.Series:
    """Assign each stimulus to ``"train"``, ``"val"`` or ``"test"``, by stimulus.

    Repeated ids (e.g. the per-trial ``stimulus_id`` column) are counted once. The
    assignment depends only on the set of ids and ``seed``, not on their order.

    Parameters
    ----------
    stimulus_ids : iterable of str
        The stimuli to split.
    val, test : float | int
        Fraction (``0 <= x < 1``) or number (int ``>= 1``) of stimuli for validation and
        test. ``test`` is ignored when ``test_ids`` is given.
    seed : int
        Seed of the shuffle.
    test_ids : iterable of str | None
        Fixed test stimuli (e.g. NSD's shared 1000); must all be in ``stimulus_ids``.

    Returns
    -------
    pandas.Series
        Index: stimulus id (first-appearance order), values: split, name ``"split"``.

    Examples
    --------
    >>> sorted(assign_splits(["a", "b", "c", "d"], val=1, test=1, seed=0))
    ['test', 'train', 'train', 'val']
    """
    ids = pd.unique(pd.Series([_as_id(s, "stimulus_ids") for s in stimulus_ids], dtype=object))
    ids = [str(s) for s in ids]
    n = len(ids)
    if n == 0:
        raise ValueError("'stimulus_ids' must not be empty.")
    order = sorted(ids)
    rng = np.random.default_rng(seed)
    perm = [order[i] for i in rng.permutation(n)]
    if test_ids is not None:
        fixed = [_as_id(s, "test_ids") for s in test_ids]
        known = set(ids)
        missing = [s for s in fixed if s not in known]
        if missing:
            raise ValueError(
                f"'test_ids' must be among 'stimulus_ids'; {len(missing)} are not, e.g. "
                f"{missing[:5]}."
            )
        test_set = set(fixed)
        rest = [s for s in perm if s not in test_set]
        n_val = _count("val", val, n)
    else:
        n_test = _count("test", test, n)
        n_val = _count("val", val, n)
        test_set = set(perm[:n_test])
        rest = perm[n_test:]
    if n_val > len(rest):
        raise ValueError(
            f"'val' asks for {n_val} stimuli but only {len(rest)} remain after the test split."
        )
    val_set = set(rest[:n_val])
    splits = ["test" if s in test_set else "val" if s in val_set else "train" for s in ids]
    out = pd.Series(splits, index=pd.Index(ids, name="stimulus_id", dtype=object), name="split",
                    dtype=object)
    return out


def _as_id(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{name!r} must hold str (or int) ids, got {type(value).__name__}: {value!r}.")


def _count(name: str, value: float, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name!r} must be a fraction or a count, got {value!r}.")
    if isinstance(value, int | np.integer) and value >= 1:
        if value > n:
            raise ValueError(f"{name!r}={value} stimuli asked for, but there are only {n}.")
        return int(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name!r} must be a fraction in [0, 1) or an int count, got {value}.")
    return int(round(float(value) * n))


def check_stimulus_ids(ids: Iterable[Any], name: str = "stimulus ids") -> None:
    """Refuse empty stimulus ids and ids with leading or trailing whitespace.

    ``"img1"`` and ``"img1 "`` would otherwise be two stimuli (one of them possibly in
    train, the other in test), so they are refused rather than silently stripped.

    Parameters
    ----------
    ids : iterable of str
        The ids to check (non-str values are left to the caller's type checks).
    name : str
        What they are, for the message.

    Raises
    ------
    ValueError
        Naming the offending ids (``repr``, so the whitespace shows) and how many.

    Examples
    --------
    >>> check_stimulus_ids(["a", "b"])
    """
    bad = []
    n_bad = 0
    for v in dict.fromkeys(ids):
        if isinstance(v, str) and (v == "" or v != v.strip()):
            n_bad += 1
            if len(bad) < 5:
                bad.append(v)
    if n_bad:
        raise ValueError(
            f"{name} must be non-empty and have no leading or trailing whitespace, but "
            f"{n_bad} id(s) do not (empty ids or whitespace): {bad}. Strip them yourself (e.g. "
            "ids.str.strip()) if that is what they mean; they are not changed silently."
        )


def check_no_leak(trialset_or_trials: Any) -> None:
    """Refuse a trial table in which a stimulus belongs to more than one split.

    Parameters
    ----------
    trialset_or_trials : TrialSet | DataFrame
        Anything with ``stimulus_id`` and ``split`` columns (a DataFrame, or an object
        whose ``trials`` attribute is one). Unassigned trials (split ``""``) are ignored.

    Raises
    ------
    SplitLeakError
        Naming the leaking stimulus ids and the splits they appear in.
    """
    trials = trialset_or_trials
    if not isinstance(trials, pd.DataFrame):
        trials = getattr(trialset_or_trials, "trials", None)
    if not isinstance(trials, pd.DataFrame):
        raise TypeError(
            "'trialset_or_trials' must be a TrialSet or a DataFrame, got "
            f"{type(trialset_or_trials).__name__}."
        )
    for col in ("stimulus_id", "split"):
        if col not in trials.columns:
            raise ValueError(f"The trial table needs a {col!r} column to check splits.")
    assigned = trials.loc[trials["split"].astype(str) != "", ["stimulus_id", "split"]]
    if assigned.empty:
        return
    n_splits = assigned.groupby("stimulus_id", sort=False)["split"].nunique()
    leaking = n_splits.index[n_splits > 1]
    if len(leaking):
        groups = assigned[assigned["stimulus_id"].isin(leaking)].groupby(
            "stimulus_id", sort=False
        )["split"]
        desc = [f"{sid!r} in {sorted(set(v))}" for sid, v in list(groups)[:10]]
        more = f" (and {len(leaking) - 10} more)" if len(leaking) > 10 else ""
        raise SplitLeakError(
            f"{len(leaking)} stimulus id(s) appear in more than one split, so held-out "
            f"stimuli would be seen in training: {', '.join(desc)}{more}. Assign splits by "
            "stimulus (see assign_splits)."
        )


def split_train_val(trialset: Any, val: float = 0.1, seed: int = 0) -> tuple[Any, Any]:
    """Split a trial set's training trials into train and validation, by stimulus.

    Only the trials whose split is ``"train"`` are used; their stimuli are reassigned with
    :func:`assign_splits` (no test), so a stimulus's repetitions all land on the same side.

    Parameters
    ----------
    trialset : TrialSet
        The trials to split (its ``"val"``/``"test"``/unassigned trials are dropped).
    val : float | int
        Fraction (``0 <= val < 1``) or number (int ``>= 1``) of training stimuli held out
        for validation.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    train, val : TrialSet
        The remaining training trials and the validation trials; no stimulus is in both.
    """
    train = trialset.select(split="train")
    splits = assign_splits(sorted(set(train.stimulus_ids)), val=val, test=0.0, seed=seed)
    train = train.with_splits(splits)
    return train.select(split="train"), train.select(split="val")


def subsample_stimuli(trialset: Any, fraction: float, seed: int) -> Any:
    """The trials of a random ``fraction`` of a trial set's stimuli (at least one).

    Parameters
    ----------
    trialset : TrialSet
        The trials to subsample.
    fraction : float
        Fraction of the distinct stimuli to keep, in ``(0, 1]``; rounded to the nearest
        count, at least one stimulus.
    seed : int
        Seed of the draw.

    Returns
    -------
    TrialSet
        Every trial (all repetitions) of the kept stimuli.
    """
    check_float("fraction", fraction, 0.0, 1.0, lo_open=True)
    ids = np.array(sorted(set(trialset.stimulus_ids)))
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * len(ids))))
    keep = rng.choice(ids, size=n, replace=False)
    return trialset.select(stimulus_ids=list(keep))


def average_by_stimulus(pred: np.ndarray, stimulus_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of ``pred`` per stimulus (e.g. a model's outputs over repeats).

    Parameters
    ----------
    pred : ndarray, shape (n_trials, ...)
        One row per trial.
    stimulus_ids : array-like, shape (n_trials,)
        The stimulus of each row.

    Returns
    -------
    mean : ndarray of float32, shape (n_stimuli, ...)
        The mean row per stimulus (summed in float64), in the order of ``unique_ids``.
    unique_ids : ndarray, shape (n_stimuli,)
        The sorted distinct stimulus ids (:func:`numpy.unique`).

    Examples
    --------
    >>> m, u = average_by_stimulus(np.array([[1.0], [3.0], [5.0]]), ["b", "a", "b"])
    >>> m.ravel().tolist(), u.tolist()
    ([3.0, 3.0], ['a', 'b'])
    """
    pred = np.asarray(pred)
    stim = np.asarray(stimulus_ids)
    if stim.ndim != 1 or pred.ndim < 1 or len(stim) != len(pred):
        raise ValueError(
            "'stimulus_ids' must be 1-D with one id per row of 'pred': expected "
            f"{len(pred) if pred.ndim else 0} ids, but got shape {stim.shape} instead."
        )
    uniq, inv = np.unique(stim, return_inverse=True)
    out = np.zeros((len(uniq), *pred.shape[1:]), np.float64)
    np.add.at(out, inv, pred)
    out /= np.bincount(inv)[(...,) + (None,) * (pred.ndim - 1)]
    return out.astype(np.float32), uniq
