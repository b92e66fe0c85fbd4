"""Training data: trial sets normalised, targets resolved into per-stimulus tables, and
the batches (balanced per subject) that :func:`~braindecode_kit.train.fit` draws.

A set is a :class:`~braindecode_kit.TrialSet`, a ``(subject, X, stimulus_ids)`` tuple, a
``(subject, X, Y)`` tuple with per-trial target arrays, or ``(subject, X)`` with the targets
given as a list of per-set arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import UnknownKeyError, check_finite
from ..models.decoder import BrainDecoder

__all__ = ["BalancedBatchSampler"]


@dataclass
class _SetData:
    subject: str
    X: Any  # (n, *features) array or memmap
    ids: list[str] | None
    Y: np.ndarray | None  # per-row image targets when given as arrays
    stim: np.ndarray | None = None  # index into the target table
    splits: list[str] | None = None  # each trial's split (TrialSets only)


@dataclass
class _Prepared:
    sets: list[_SetData]
    tables: dict[str, np.ndarray]  # head -> (n_stimuli, ...)
    stim_ids: list[str] | None


def _is_trialset(obj: Any) -> bool:
    return hasattr(obj, "data") and hasattr(obj, "trials") and hasattr(obj, "subject")


def _normalize_sets(sets: Any, name: str) -> list[_SetData]:
    if sets is None:
        return []
    if _is_trialset(sets) or (isinstance(sets, tuple) and len(sets) in (2, 3)
                              and isinstance(sets[0], str)):
        sets = [sets]
    if not isinstance(sets, Sequence) or isinstance(sets, (str, bytes)) or len(sets) == 0:
        raise TypeError(
            f"{name} must be a TrialSet, a (subject, X[, stimulus_ids or Y]) tuple, or a "
            f"non-empty list of those, but got {type(sets).__name__}."
        )
    out = []
    for i, s in enumerate(sets):
        if _is_trialset(s):
            table = s.trials
            ids = [str(v) for v in table["stimulus_id"].tolist()]
            splits = [str(v) for v in table["split"].tolist()] if "split" in table else None
            out.append(_SetData(str(s.subject), s.data, ids, None, splits=splits))
            continue
        if not isinstance(s, tuple) or len(s) not in (2, 3):
            raise TypeError(
                f"{name}[{i}] must be a TrialSet or a (subject, X[, stimulus_ids or Y]) tuple, "
                f"but got {type(s).__name__}."
            )
        subject, X = str(s[0]), s[1]
        if not hasattr(X, "shape") or len(X.shape) < 2:
            raise ValueError(
                f"{name}[{i}] X must be an array (n_trials, *features), but got shape "
                f"{getattr(X, 'shape', None)}."
            )
        ids = Y = None
        if len(s) == 3 and s[2] is not None:
            third = s[2]
            arr = np.asarray(third)
            if arr.ndim >= 2 and arr.dtype.kind == "f":
                Y = arr.astype(np.float32, copy=False)
                if Y.shape[0] != X.shape[0]:
                    raise ValueError(
                        f"{name}[{i}] has {X.shape[0]} trials but {Y.shape[0]} target rows."
                    )
            else:
                ids = [str(v) for v in list(third)]
                if len(ids) != X.shape[0]:
                    raise ValueError(
                        f"{name}[{i}] has {X.shape[0]} trials but {len(ids)} stimulus ids."
                    )
        out.append(_SetData(subject, X, ids, Y))
    for s in out:
        if s.X.shape[0] == 0:
            raise ValueError(f"{name}: subject {s.subject!r} has no trials.")
        for start in range(0, s.X.shape[0], 4096):  # chunked: X may be a large memmap
            check_finite(f"{name} X of subject {s.subject!r} (rows from {start})",
                         np.asarray(s.X[start:start + 4096]))
    return out


def _check_leaks(train: list[_SetData], val: list[_SetData], *, allow_test: bool,
                 check_leak: bool, train_name: str = "trainsets",
                 val_name: str = "valsets") -> None:
    """Refuse training on test trials and validation stimuli that are also trained on.

    Raises
    ------
    SplitLeakError
        Naming the subject and the stimuli.
    """
    from ..splits import SplitLeakError

    if not allow_test:
        for s in train:
            if s.splits is None:
                continue
            test = sorted({i for i, sp in zip(s.ids, s.splits) if sp == "test"})
            if test:
                raise SplitLeakError(
                    f"{train_name} of subject {s.subject!r} hold {len(test)} test stimulus "
                    f"id(s) (split 'test'), e.g. {test[:5]}: training on them would make "
                    "the test score meaningless. Pass ts.select(split='train'), or "
                    "allow_test=True if you really mean to train on them (e.g. a final "
                    "model after evaluation)."
                )
    if not check_leak or not val:
        return
    seen = {i for s in train if s.ids is not None for i in s.ids}
    for s in val:
        if s.ids is None:
            continue
        shared = sorted(set(s.ids) & seen)
        if shared:
            raise SplitLeakError(
                f"{val_name} of subject {s.subject!r} share {len(shared)} stimulus id(s) with "
                f"{train_name}, e.g. {shared[:5]}: early stopping would select on stimuli "
                "the model was trained on. Split by stimulus (splits.split_train_val), or "
                "pass check_leak=False if that is what you mean."
            )


def _check_targets_not_degenerate(table: np.ndarray, name: str) -> None:
    """Refuse targets a contrastive loss cannot learn from: all zero, or all identical."""
    flat = table.reshape(len(table), -1)
    if len(flat) and not np.any(flat):
        raise ValueError(
            f"{name} are all zero ({len(flat)} stimuli): a contrastive loss compares "
            "directions and cannot learn from zero vectors. Check how the targets were "
            "computed."
        )
    if len(flat) >= 2 and np.unique(flat, axis=0).shape[0] < 2:
        raise ValueError(
            f"{name} holds the same embedding for every one of its {len(flat)} stimuli: "
            "there is nothing to tell the stimuli apart. Check how the targets were computed."
        )


def _lookup(targets: Any, ids: list[str]) -> dict[str, np.ndarray]:
    """Rows of the targets for ``ids``: head -> array."""
    import pandas as pd

    if isinstance(targets, pd.DataFrame):
        missing = [i for i in dict.fromkeys(ids) if i not in targets.index]
        if missing:
            raise UnknownKeyError(f"targets has no row for stimulus id(s) {missing[:10]}.")
        return {"image": targets.loc[ids].to_numpy(np.float32)}
    if isinstance(targets, Mapping):
        missing = [i for i in dict.fromkeys(ids) if i not in targets]
        if missing:
            raise UnknownKeyError(f"targets has no entry for stimulus id(s) {missing[:10]}.")
        return {"image": np.stack([np.asarray(targets[i], np.float32) for i in ids])}
    if hasattr(targets, "loc") and callable(targets.loc):
        t = targets.loc(list(ids))
        out = {"image": np.asarray(t.image, np.float32)}
        for head in ("tokens", "text", "blurry"):
            v = getattr(t, head, None)
            if v is not None:
                out[head] = np.asarray(v, np.float32)
        return out
    raise TypeError(
        "targets must be a Targets object (with .loc(ids)), a DataFrame indexed by "
        "stimulus id, a dict stimulus id -> vector, or arrays aligned with the trials, but "
        f"got {type(targets).__name__}."
    )


def _prepare(sets: list[_SetData], targets: Any, name: str = "trainsets") -> _Prepared:
    """Resolve targets into per-stimulus tables and per-trial stimulus indices."""
    if targets is not None and not all(s.Y is None for s in sets):
        raise ValueError(f"{name} carry their own target arrays; pass targets=None.")
    if targets is not None and isinstance(targets, (np.ndarray, list)) and not (
            isinstance(targets, list) and targets and isinstance(targets[0], str)):
        ys = [targets] if isinstance(targets, np.ndarray) else list(targets)
        if len(ys) != len(sets):
            raise ValueError(
                f"targets given as arrays must be one per set: got {len(ys)} for {len(sets)} "
                f"{name}."
            )
        for s, y in zip(sets, ys):
            y = np.asarray(y, np.float32)
            if y.ndim < 2 or y.shape[0] != s.X.shape[0]:
                raise ValueError(
                    f"targets for subject {s.subject!r} must have {s.X.shape[0]} rows "
                    f"(one per trial), but have shape {y.shape}."
                )
            s.Y = y
        targets = None
    if all(s.Y is not None for s in sets):
        allY = np.concatenate([s.Y for s in sets])
        check_finite("targets", allY)
        _check_targets_not_degenerate(allY, f"The target arrays of {name}")
        table, inverse = np.unique(allY.reshape(len(allY), -1), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        off = 0
        for s in sets:
            s.stim = inverse[off:off + len(s.Y)].astype(np.int64)
            off += len(s.Y)
        return _Prepared(sets, {"image": table.reshape(-1, *allY.shape[1:])}, None)
    if any(s.ids is None for s in sets):
        raise ValueError(
            f"Every entry of {name} needs stimulus ids (a TrialSet or (subject, X, ids)) when "
            "targets are looked up by id, or targets must be arrays aligned with the trials."
        )
    if targets is None:
        raise ValueError("targets must be given when the sets carry stimulus ids.")
    uniq = list(dict.fromkeys(i for s in sets for i in s.ids))
    pos = {sid: k for k, sid in enumerate(uniq)}
    for s in sets:
        s.stim = np.fromiter((pos[i] for i in s.ids), np.int64, len(s.ids))
    tables = _lookup(targets, uniq)
    for head, t in tables.items():
        if t.shape[0] != len(uniq):
            raise ValueError(f"targets returned {t.shape[0]} {head} rows for {len(uniq)} ids.")
        check_finite(f"targets ({head})", t)
    _check_targets_not_degenerate(tables["image"], f"The image targets of {name}")
    return _Prepared(sets, tables, uniq)


def _check_against_decoder(decoder: BrainDecoder, prep: _Prepared, name: str) -> None:
    for s in prep.sets:
        if s.subject not in decoder.config.subjects:
            raise UnknownKeyError(
                f"{name} has subject {s.subject!r} but the decoder only has adapters for "
                f"{decoder.subjects}; use decoder.add_subject() or adapt_subject()."
            )
        decoder._check_shape(s.subject, s.X)
    want = {"image": (decoder.config.embed_dim,),
            "tokens": tuple(decoder.config.token_shape or ()),
            "text": (decoder.config.text_dim,),
            "blurry": (3, decoder.config.blurry_size, decoder.config.blurry_size)}
    t = prep.tables["image"]
    if tuple(t.shape[1:]) != want["image"]:
        raise ValueError(
            f"The decoder predicts {decoder.config.embed_dim}-dim image embeddings but the "
            f"targets are {tuple(t.shape[1:])}."
        )
    for head in ("tokens", "text", "blurry"):
        if head in prep.tables and head in decoder.head_names:
            if tuple(prep.tables[head].shape[1:]) != want[head]:
                raise ValueError(
                    f"The decoder's {head} head outputs {want[head]} but the {head} targets "
                    f"are {tuple(prep.tables[head].shape[1:])}."
                )


class _TrialIndex(torch.utils.data.Dataset):
    """Global trial indices; the collate function gathers the arrays."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return int(i)


class _Collate:
    """Global indices -> {"inputs": {subject: X}, head targets, "groups"} (grouped by subject)."""

    def __init__(self, prep: _Prepared, heads: Sequence[str]) -> None:
        self.sets = prep.sets
        self.offsets = np.cumsum([0] + [s.X.shape[0] for s in prep.sets])
        self.tables = {h: torch.from_numpy(np.ascontiguousarray(prep.tables[h]))
                       for h in heads if h in prep.tables}

    def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = np.asarray(indices, np.int64)
        owner = np.searchsorted(self.offsets, idx, side="right") - 1
        inputs, stims = {}, []
        for k in dict.fromkeys(owner.tolist()):
            s = self.sets[k]
            local = np.sort(idx[owner == k] - self.offsets[k])
            inputs[s.subject] = torch.from_numpy(np.asarray(s.X[local], np.float32))
            stims.append(s.stim[local])
        stim = torch.from_numpy(np.concatenate(stims))
        # the global trial indices, in the order of the concatenated inputs (which rank
        # trained on which trials is then checkable)
        order = np.concatenate([np.sort(idx[owner == k]) for k in dict.fromkeys(owner.tolist())])
        batch = {"inputs": inputs, "groups": stim, "index": torch.from_numpy(order)}
        for h, table in self.tables.items():
            batch[h] = table[stim]
        return batch


class BalancedBatchSampler(torch.utils.data.Sampler):
    """Batches with (nearly) the same number of trials from every subject.

    Each subject's trials are visited in a fresh random order (cycling when a small subject
    runs out); the order is a function of ``(seed, epoch)`` only, so a resumed run sees the
    same batches.

    Parameters
    ----------
    sizes : list of int
        Number of trials of each subject (global indices are their concatenation).
    batch_size : int
        Trials per batch, split equally between the subjects (the remainder rotates).
    steps_per_epoch : int
        Batches per epoch.
    seed : int
        Seed of the visiting orders (with the epoch, see :meth:`set_epoch`).
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, steps_per_epoch: int, seed: int):
        self.sizes = [int(n) for n in sizes]
        self.batch_size = int(batch_size)
        self.steps = int(steps_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.drop_last = False
        self.offsets = np.cumsum([0] + self.sizes)

    def set_epoch(self, epoch: int) -> None:
        """Draw the batches of ``epoch`` (0-based) on the next iteration."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        n_sub = len(self.sizes)
        per = [self.batch_size // n_sub] * n_sub
        queues = [np.empty(0, np.int64) for _ in range(n_sub)]
        for step in range(self.steps):
            counts = list(per)
            for j in range(self.batch_size % n_sub):  # rotate who gets the remainder
                counts[(step + j) % n_sub] += 1
            batch = []
            for k, c in enumerate(counts):
                while len(queues[k]) < c:
                    queues[k] = np.concatenate(
                        [queues[k], rng.permutation(self.sizes[k]) + self.offsets[k]])
                batch.extend(queues[k][:c].tolist())
                queues[k] = queues[k][c:]
            yield batch
