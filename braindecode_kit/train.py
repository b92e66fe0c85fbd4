"""Training a :class:`~braindecode_kit.models.BrainDecoder` on Hugging Face accelerate.

- :func:`fit`: multi-subject training (batches balanced per subject), AdamW + OneCycle,
  the MindEye loss schedule or InfoNCE (+ regression), mixed precision where available,
  gradient clipping, early stopping on validation retrieval with best-model restore,
  per-epoch checkpoints (safetensors + JSON, never pickle) and resume, progress bars,
  TensorBoard logs and a ``history.json``. One process on CPU; the same code runs under
  ``accelerate launch`` on several GPUs or nodes.
- :func:`adapt_subject`: a new subject's adapter trained against the frozen shared encoder
  and heads (optionally followed by a short full fine-tune).
- :func:`learning_curve`: accuracy of :func:`adapt_subject` vs the share of the new
  subject's training stimuli.

Mixed precision: ``"bf16"`` works on CPU and recent GPUs, ``"fp16"`` needs CUDA. MindEye2
users report fp16 instability when retraining (MindEye2 GitHub issue #46; full precision
fixed it), so the default is ``"no"`` (float32).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._logging import logger, progress, verbose
from ._checks import check_finite, check_option
from ._utils import PathLike, atomic_dir, hash_jsonable
from ._utils import write_json_atomic as _write_json
from .models.decoder import BrainDecoder, state_dict_for_saving
from .models.losses import SCHEDULE_KINDS, CombinedLoss, LossSchedule, mixco_grouped

__all__ = ["TrainConfig", "TrainResult", "adapt_subject", "fit", "learning_curve"]

_PRECISIONS = ("no", "bf16", "fp16")


# =========================================================================== config
@dataclass
class TrainConfig:
    """Everything about how a decoder is trained (the architecture is in DecoderConfig).

    Parameters
    ----------
    epochs : int
        Number of passes (an epoch is ``steps_per_epoch`` balanced batches).
    batch_size : int
        Trials per step, split equally between the subjects being trained.
    lr : float
        Peak learning rate of the OneCycle schedule (AdamW).
    weight_decay : float
        AdamW weight decay of the shared encoder and heads (biases and norms: none).
    adapter_weight_decay : float
        AdamW weight decay of the per-subject adapters (MindEye2's "ridge" regulariser).
    pct_start : float
        Share of the steps spent warming the learning rate up (OneCycle).
    schedule : {"mindeye", "infonce", "softclip", "bimixco", "mse"}
        The contrastive term: ``"mindeye"`` is BiMixCo for the first ``mix_fraction``
        of the epochs then SoftCLIP annealed ``soft_temperature[0] -> [1]``.
    temperature : float
        InfoNCE / SoftCLIP temperature of the fixed kinds.
    learn_temperature : bool
        Learn the InfoNCE temperature (CLIP's logit scale).
    mix_beta, mix_prob, mix_fraction, mix_temperature : float
        MixCo: Beta(mix_beta, mix_beta) weights, share of rows mixed, share of epochs
        of the MindEye schedule using it, its temperature.
    soft_temperature : tuple of float
        SoftCLIP temperature anneal of the MindEye schedule.
    contrastive_weight, mse_weight, cosine_weight : float
        Weights of the loss terms (the MEG paper combines contrastive and MSE).
    token_weight, text_weight : float
        Weights of the image-token and caption-text heads, when the decoder and the
        targets have them.
    mixed_precision : {"no", "bf16", "fp16"}
        Autocast precision (see the module docstring about fp16).
    grad_clip : float or None
        Max gradient norm; None disables clipping.
    patience : int or None
        Early stopping: stop after this many epochs without a better validation top-1
        (needs validation data); the best epoch's weights are restored at the end.
    val_n_candidates : int
        Candidates of the validation retrieval (capped at the number of val stimuli).
    val_n_draws : int
        Draws of the validation retrieval.
    seed : int
        Seeds batches, mixing and dropout: the same seed gives the same weights on CPU.
    steps_per_epoch : int or None
        None: total training trials // batch_size (at least 1).
    num_workers : int
        DataLoader workers (0: load in the main process).
    keep_checkpoints : int
        Number of most recent epoch checkpoints kept (the best epoch's is kept too).
    validate_start : bool
        Also score the starting weights on the validation data, so that a run starting
        from a good initialisation (a fine-tune, a closed-form adapter) never ends worse
        on validation than it started (``best_epoch`` is then 0 when nothing beat them).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    adapter_weight_decay: float = 0.5
    pct_start: float = 0.1
    schedule: str = "infonce"
    temperature: float = 0.05
    learn_temperature: bool = False
    mix_beta: float = 0.15
    mix_prob: float = 0.5
    mix_fraction: float = 1 / 3
    mix_temperature: float = 0.006
    soft_temperature: tuple[float, float] = (0.004, 0.0075)
    contrastive_weight: float = 1.0
    mse_weight: float = 0.0
    cosine_weight: float = 0.0
    token_weight: float = 1.0
    text_weight: float = 1.0
    mixed_precision: str = "no"
    grad_clip: float | None = 1.0
    patience: int | None = 8
    val_n_candidates: int = 300
    val_n_draws: int = 10
    seed: int = 0
    steps_per_epoch: int | None = None
    num_workers: int = 0
    keep_checkpoints: int = 2
    validate_start: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "val_n_candidates", "val_n_draws",
                     "keep_checkpoints"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, but got {v!r}.")
            setattr(self, name, int(v))
        for name in ("patience", "steps_per_epoch"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"{name} must be None or a positive integer, but got {v!r}.")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, but got {self.num_workers!r}.")
        check_option("schedule", self.schedule, SCHEDULE_KINDS)
        check_option("mixed_precision", self.mixed_precision, _PRECISIONS)
        for name in ("lr", "temperature", "mix_temperature", "mix_beta"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, but got {getattr(self, name)!r}.")
        for name in ("weight_decay", "adapter_weight_decay", "contrastive_weight",
                     "mse_weight", "cosine_weight", "token_weight", "text_weight"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, but got {getattr(self, name)!r}.")
        for name in ("pct_start", "mix_prob", "mix_fraction"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], but got {getattr(self, name)!r}.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be None or > 0, but got {self.grad_clip!r}.")
        self.soft_temperature = tuple(float(t) for t in self.soft_temperature)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = dataclasses.asdict(self)
        d["soft_temperature"] = list(self.soft_temperature)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; allowed: {sorted(names)}.")
        return cls(**dict(d))

    def loss_schedule(self) -> LossSchedule:
        """The :class:`LossSchedule` this config describes."""
        return LossSchedule(kind=self.schedule, epochs=self.epochs,
                            mix_fraction=self.mix_fraction,
                            mix_temperature=self.mix_temperature,
                            soft_temperature=self.soft_temperature,
                            temperature=self.temperature)

    def make_loss(self) -> CombinedLoss:
        """The :class:`CombinedLoss` this config describes."""
        return CombinedLoss(self.loss_schedule(), contrastive_weight=self.contrastive_weight,
                            mse_weight=self.mse_weight, cosine_weight=self.cosine_weight,
                            token_weight=self.token_weight, text_weight=self.text_weight,
                            learn_temperature=self.learn_temperature)


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    decoder : BrainDecoder
        The trained decoder (the best validation epoch's weights when validation was used).
    history : list of dict
        One dict per epoch: ``epoch``, ``train_loss``, the loss parts, ``lr``, ``loss_kind``,
        ``temperature``, ``val_top1`` (when validated), ``time_s``.
    best_epoch : int or None
        1-based epoch of the best validation top-1 (None without validation).
    best_val_top1 : float or None
    stopped_early : bool
    out_dir : Path or None
    """

    decoder: BrainDecoder
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_top1: float | None = None
    stopped_early: bool = False
    out_dir: Path | None = None

    @property
    def n_epochs(self) -> int:
        """Number of epochs trained."""
        return len(self.history)

    def history_frame(self):
        """The history as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.history)


# =========================================================================== data
@dataclass
class _SetData:
    subject: str
    X: Any  # (n, *features) array or memmap
    ids: list[str] | None
    Y: np.ndarray | None  # per-row image targets when given as arrays
    stim: np.ndarray | None = None  # index into the target table


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
            ids = [str(v) for v in s.trials["stimulus_id"].tolist()]
            out.append(_SetData(str(s.subject), s.data, ids, None))
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


def _lookup(targets: Any, ids: list[str]) -> dict[str, np.ndarray]:
    """Rows of the targets for ``ids``: head -> array."""
    import pandas as pd

    if isinstance(targets, pd.DataFrame):
        missing = [i for i in dict.fromkeys(ids) if i not in targets.index]
        if missing:
            raise KeyError(f"targets has no row for stimulus id(s) {missing[:10]}.")
        return {"image": targets.loc[ids].to_numpy(np.float32)}
    if isinstance(targets, Mapping):
        missing = [i for i in dict.fromkeys(ids) if i not in targets]
        if missing:
            raise KeyError(f"targets has no entry for stimulus id(s) {missing[:10]}.")
        return {"image": np.stack([np.asarray(targets[i], np.float32) for i in ids])}
    if hasattr(targets, "loc") and callable(targets.loc):
        t = targets.loc(list(ids))
        out = {"image": np.asarray(t.image, np.float32)}
        for head in ("tokens", "text"):
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
    return _Prepared(sets, tables, uniq)


def _check_against_decoder(decoder: BrainDecoder, prep: _Prepared, name: str) -> None:
    for s in prep.sets:
        if s.subject not in decoder.config.subjects:
            raise KeyError(
                f"{name} has subject {s.subject!r} but the decoder only has adapters for "
                f"{decoder.subjects}; use decoder.add_subject() or adapt_subject()."
            )
        decoder._check_shape(s.subject, s.X)
    want = {"image": (decoder.config.embed_dim,),
            "tokens": tuple(decoder.config.token_shape or ()),
            "text": (decoder.config.text_dim,)}
    t = prep.tables["image"]
    if tuple(t.shape[1:]) != want["image"]:
        raise ValueError(
            f"The decoder predicts {decoder.config.embed_dim}-dim image embeddings but the "
            f"targets are {tuple(t.shape[1:])}."
        )
    for head in ("tokens", "text"):
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
        batch = {"inputs": inputs, "groups": stim}
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
    steps_per_epoch : int
    seed : int
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


# =========================================================================== evaluation
def _retrieval(pred: np.ndarray, target: np.ndarray, n_candidates: int, n_draws: int,
               seed: int) -> dict[str, Any]:
    """Brain->image top-1 with :func:`~braindecode_kit.evaluate.retrieval_accuracy`."""
    from .evaluate.retrieval import retrieval_accuracy

    res = retrieval_accuracy(pred, target, k=1, n_candidates=int(min(n_candidates, len(pred))),
                             n_draws=n_draws, seed=seed, direction="brain->image")
    return {"top1": float(res["top1"]), "ci": tuple(float(c) for c in res["ci"])}


def _average_by_stimulus(pred: np.ndarray, stim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction per stimulus (MindEye2 averages the model's outputs over repeats)."""
    uniq, inv = np.unique(stim, return_inverse=True)
    out = np.zeros((len(uniq), *pred.shape[1:]), np.float64)
    np.add.at(out, inv, pred)
    out /= np.bincount(inv)[(...,) + (None,) * (pred.ndim - 1)]
    return out.astype(np.float32), uniq


def _predict_sharded(decoder: BrainDecoder, X: Any, subject: str, accelerator) -> np.ndarray:
    """Predict all rows, each process taking a contiguous share, gathered on all."""
    n, world = X.shape[0], accelerator.num_processes
    if world == 1:
        return decoder.predict(X, subject=subject)
    per = math.ceil(n / world)
    lo, hi = accelerator.process_index * per, min(n, (accelerator.process_index + 1) * per)
    part = decoder.predict(X[lo:hi], subject=subject) if hi > lo else np.zeros(
        (0, decoder.config.embed_dim), np.float32)
    padded = np.zeros((per, part.shape[1]), np.float32)
    padded[:len(part)] = part
    full = accelerator.gather(torch.from_numpy(padded).to(accelerator.device)).cpu().numpy()
    return np.concatenate([full[r * per:r * per + max(0, min(n, (r + 1) * per) - r * per)]
                           for r in range(world)])


def _evaluate_sets(decoder: BrainDecoder, prep: _Prepared, n_candidates: int, n_draws: int,
                   seed: int, accelerator=None) -> dict[str, Any]:
    """Retrieval top-1 of each subject's stimulus-averaged predictions, and their mean."""
    per_subject = {}
    for s in prep.sets:
        if accelerator is not None:
            pred = _predict_sharded(decoder, s.X, s.subject, accelerator)
        else:
            pred = decoder.predict(s.X, subject=s.subject)
        avg, uniq = _average_by_stimulus(pred, s.stim)
        if len(uniq) < 2:
            raise ValueError(
                f"Validation data of subject {s.subject!r} has {len(uniq)} stimulus; "
                "retrieval needs at least 2."
            )
        per_subject[s.subject] = _retrieval(avg, prep.tables["image"][uniq], n_candidates,
                                            n_draws, seed)
    top1 = float(np.mean([r["top1"] for r in per_subject.values()]))
    return {"top1": top1, "per_subject": per_subject}


# =========================================================================== checkpoints
_CKPT_RE = re.compile(r"^epoch-(\d{4,})$")


def _optimizer_to_safetensors(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, extra = {}, {}
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{pid}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                extra[f"{pid}.{k}"] = v
    groups = []
    for g in opt_state["param_groups"]:
        g = dict(g)
        g["betas"] = list(g["betas"]) if "betas" in g else None
        groups.append(g)
    return tensors, {"param_groups": groups, "extra_state": extra}


def _optimizer_from_safetensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("state."):
            continue
        _, pid, k = key.split(".", 2)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta.get("extra_state", {}).items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if g.get("betas") is not None:
            g["betas"] = tuple(g["betas"])
        else:
            g.pop("betas", None)
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _CKPT_RE.match(p.name)
        if m and (p / "state.json").is_file() and (p / "model.safetensors").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _save_checkpoint(ckpt_dir: Path, epoch: int, model: BrainDecoder, loss_fn: nn.Module,
                     optimizer, scheduler, state: dict, keep: int, best_epoch: int | None
                     ) -> Path:
    """Write ``ckpt_dir/epoch-NNNN`` atomically (safetensors + JSON) and prune old ones."""
    from safetensors.torch import save_file

    path = ckpt_dir / f"epoch-{epoch:04d}"
    opt_tensors, opt_meta = _optimizer_to_safetensors(optimizer.state_dict())
    opt_tensors["rng.torch"] = torch.random.get_rng_state().clone()
    with atomic_dir(path) as tmp:
        save_file(state_dict_for_saving(model), str(tmp / "model.safetensors"))
        loss_state = state_dict_for_saving(loss_fn)
        if loss_state:
            save_file(loss_state, str(tmp / "loss.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        full = {**state, "epoch": epoch, "optimizer": opt_meta,
                "scheduler": scheduler.state_dict()}
        (tmp / "state.json").write_text(json.dumps(full, indent=1, default=_json_default))
    keep_epochs = {e for e, _ in _list_checkpoints(ckpt_dir)[-keep:]}
    if best_epoch is not None:
        keep_epochs.add(best_epoch)
    for e, p in _list_checkpoints(ckpt_dir):
        if e not in keep_epochs:
            shutil.rmtree(p, ignore_errors=True)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _run_fingerprint(decoder: BrainDecoder, config: TrainConfig, prep: _Prepared,
                     val: _Prepared | None) -> str:
    trainable = sorted(n for n, p in decoder.named_parameters() if p.requires_grad)
    info = {
        "train": {k: v for k, v in config.to_dict().items() if k not in ("keep_checkpoints",)},
        "decoder": decoder.config.to_dict(),
        "trainable": hash_jsonable(trainable),
        "data": [[s.subject, list(s.X.shape)] for s in prep.sets],
        "val": [[s.subject, list(s.X.shape)] for s in val.sets] if val else None,
    }
    return hash_jsonable(info)


# =========================================================================== fit
def _param_groups(decoder: BrainDecoder, loss_fn: nn.Module, config: TrainConfig) -> list[dict]:
    adapter_decay, decay, no_decay = [], [], []
    for name, p in decoder.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2:
            no_decay.append(p)
        elif name.startswith("adapters."):
            adapter_decay.append(p)
        else:
            decay.append(p)
    no_decay += [p for p in loss_fn.parameters() if p.requires_grad]
    groups = [
        {"params": adapter_decay, "weight_decay": config.adapter_weight_decay},
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("The decoder has no trainable parameter (all have requires_grad=False).")
    return groups


def _make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    """OneCycle (warm-up of at least 2 steps); a constant rate for runs under 6 steps."""
    if total_steps < 6:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    pct = min(max(config.pct_start, 2.5 / total_steps), 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[config.lr] * len(optimizer.param_groups), total_steps=total_steps,
        pct_start=pct)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.default_rng([seed, epoch, rank, 104729]).integers(2**62))


def _make_accelerator(config: TrainConfig):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError(
            "mixed_precision='fp16' needs a CUDA GPU, but none is available; use 'bf16' or "
            "'no' on CPU."
        )
    return Accelerator(
        mixed_precision=config.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        step_scheduler_with_optimizer=False,
    )


@verbose
def fit(
    decoder: BrainDecoder,
    trainsets: Any,
    targets: Any = None,
    config: TrainConfig | None = None,
    valsets: Any = None,
    out_dir: PathLike | None = None,
    resume: bool = True,
    verbose: bool | str | int | None = None,
) -> TrainResult:
    """Train ``decoder`` (in place) on one or several subjects.

    Parameters
    ----------
    decoder : BrainDecoder
        The model; every subject of ``trainsets`` must have an adapter.
    trainsets : TrialSet, tuple or list of those
        Training trials: TrialSets, ``(subject, X, stimulus_ids)`` tuples, ``(subject, X,
        Y)`` tuples with per-trial target arrays, or ``(subject, X)`` with ``targets`` a
        list of per-set arrays.
    targets : Targets, DataFrame, dict, array, list of arrays or None
        Stimulus id -> CLIP embedding (a :class:`~braindecode_kit.embed.Targets`, whose
        ``tokens``/``text`` also train the token/text heads when the decoder has them; a
        DataFrame indexed by stimulus id; a dict), or arrays aligned with the trials.
        None when the sets carry their own ``Y``.
    config : TrainConfig or None
        None uses ``TrainConfig()``.
    valsets : same forms as ``trainsets``, or None
        Validation trials (the same ``targets`` are used unless they carry ``Y``):
        retrieval top-1 of their stimulus-averaged predictions each epoch drives early
        stopping and best-model restore.
    out_dir : path or None
        Where checkpoints (``checkpoints/epoch-NNNN``: safetensors + JSON), TensorBoard
        logs (``logs/``), ``history.json`` and the final ``model/`` go. None keeps
        everything in memory.
    resume : bool
        Continue from the last checkpoint in ``out_dir`` if there is one (a finished run
        is loaded, not retrained); False starts over and removes old checkpoints.
    verbose : bool, str, int or None
        Log level for this call (see :mod:`braindecode_kit._logging`).

    Returns
    -------
    TrainResult
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, but got {type(config).__name__}.")
    if not isinstance(decoder, BrainDecoder):
        raise TypeError(f"decoder must be a BrainDecoder, but got {type(decoder).__name__}.")
    prep = _prepare(_normalize_sets(trainsets, "trainsets"), targets, "trainsets")
    _check_against_decoder(decoder, prep, "trainsets")
    val = None
    if valsets is not None:
        vsets = _normalize_sets(valsets, "valsets")
        val_targets = None if all(s.Y is not None for s in vsets) else targets
        val = _prepare(vsets, val_targets, "valsets")
        _check_against_decoder(decoder, val, "valsets")

    from accelerate.state import AcceleratorState

    owns_state = not AcceleratorState._shared_state  # a caller's Accelerator is left alone
    accelerator = _make_accelerator(config)
    try:
        return _train_loop(accelerator, decoder, prep, val, config, out_dir, resume)
    finally:
        _release(accelerator, owns_state)


def _train_loop(accelerator, decoder: BrainDecoder, prep: _Prepared, val: _Prepared | None,
                config: TrainConfig, out_dir: PathLike | None, resume: bool) -> TrainResult:
    main = accelerator.is_main_process
    heads = [h for h in decoder.head_names if h in prep.tables]
    skipped = [h for h in decoder.head_names if h not in prep.tables]
    if skipped:
        logger.info("No targets for head(s) %s: they are not trained.", skipped)

    n_total = sum(s.X.shape[0] for s in prep.sets)
    steps = config.steps_per_epoch or max(1, n_total // config.batch_size)
    sampler = BalancedBatchSampler([s.X.shape[0] for s in prep.sets], config.batch_size,
                                   steps, config.seed)
    loader = torch.utils.data.DataLoader(_TrialIndex(n_total), batch_sampler=sampler,
                                         collate_fn=_Collate(prep, heads),
                                         num_workers=config.num_workers)
    loss_fn = config.make_loss().to(accelerator.device)
    decoder.to(accelerator.device)
    optimizer = torch.optim.AdamW(_param_groups(decoder, loss_fn, config), lr=config.lr)
    scheduler = _make_scheduler(optimizer, config, config.epochs * steps)
    model, optimizer, loader, scheduler = accelerator.prepare(decoder, optimizer, loader,
                                                              scheduler)
    raw_opt = getattr(optimizer, "optimizer", optimizer)
    raw_sched = getattr(scheduler, "scheduler", scheduler)

    out_path = Path(out_dir) if out_dir is not None else None
    ckpt_dir = out_path / "checkpoints" if out_path is not None else None
    fingerprint = _run_fingerprint(decoder, config, prep, val)
    history: list[dict[str, Any]] = []
    best = {"top1": None, "epoch": None, "bad": 0, "state": None}
    start_epoch, stopped = 0, False

    if ckpt_dir is not None and not resume and main and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    accelerator.wait_for_everyone()
    ckpts = _list_checkpoints(ckpt_dir) if (ckpt_dir is not None and resume) else []
    if ckpts:
        start_epoch, stopped, history, best = _load_checkpoint(
            ckpts[-1][1], fingerprint, decoder, loss_fn, raw_opt, raw_sched, ckpt_dir)
        logger.info("Resumed from %s (epoch %d of %d).", ckpts[-1][1], start_epoch,
                    config.epochs)

    writer = None
    if out_path is not None and main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(out_path / "logs"), purge_step=start_epoch + 1)
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            logger.warning("tensorboard is not installed: no TensorBoard logs.")

    if config.validate_start and val is not None and start_epoch == 0:
        ev = _evaluate_sets(decoder, val, config.val_n_candidates, config.val_n_draws,
                            config.seed, accelerator)
        best.update(top1=ev["top1"], epoch=0, bad=0, state=state_dict_for_saving(decoder))
        logger.info("starting weights: val top-1 %.3f", ev["top1"])
        if ckpt_dir is not None:  # so that a resumed run can restore them as the best
            if main:
                _save_checkpoint(ckpt_dir, 0, decoder, loss_fn, raw_opt, raw_sched,
                                 {"fingerprint": fingerprint, "history": [], "best_top1":
                                  best["top1"], "best_epoch": 0, "bad_epochs": 0,
                                  "finished": False, "stopped_early": False,
                                  "train_config": config.to_dict()},
                                 config.keep_checkpoints, 0)
            accelerator.wait_for_everyone()

    params = [p for g in raw_opt.param_groups for p in g["params"]]
    bar = progress(total=config.epochs, initial=start_epoch, desc="training",
                   disable=None if main else True)
    try:
        epoch = start_epoch
        while epoch < config.epochs and not stopped:
            t0 = time.perf_counter()
            torch.manual_seed(_epoch_seed(config.seed, epoch, accelerator.process_index))
            gen = torch.Generator().manual_seed(
                _epoch_seed(config.seed + 1, epoch, accelerator.process_index))
            if hasattr(loader, "set_epoch"):  # accelerate's loader re-sets the sampler's epoch
                loader.set_epoch(epoch)
            sampler.set_epoch(epoch)
            step_kind = loss_fn.schedule.at(epoch)
            model.train()
            sums: dict[str, float] = {}
            n_steps = 0
            for batch in loader:
                inputs = batch["inputs"]
                perm = betas = None
                if step_kind.mixes_inputs:
                    inputs, perm, betas = mixco_grouped(inputs, config.mix_beta,
                                                        config.mix_prob, generator=gen)
                    perm, betas = perm.to(accelerator.device), betas.to(accelerator.device)
                with accelerator.autocast():
                    outputs = model(inputs)
                loss, parts = loss_fn(outputs, {h: batch[h] for h in heads}, epoch, perm,
                                      betas, batch["groups"])
                accelerator.backward(loss)
                if accelerator.num_processes > 1:
                    for p in loss_fn.parameters():
                        if p.grad is not None:
                            p.grad = accelerator.reduce(p.grad, "mean")
                if config.grad_clip is not None:
                    accelerator.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_steps += 1
            if not all(math.isfinite(v) for v in sums.values()):
                raise FloatingPointError(
                    f"The training loss became non-finite at epoch {epoch + 1} ({sums}). Lower "
                    "lr, keep grad_clip, or use mixed_precision='no' (fp16 is unstable here, "
                    "see MindEye2 issue #46)."
                )
            rec: dict[str, Any] = {"epoch": epoch + 1,
                                   "train_loss": sums.get("total", 0.0) / max(n_steps, 1)}
            rec.update({f"loss/{k}": v / max(n_steps, 1) for k, v in sums.items()
                        if k != "total"})
            rec["lr"] = float(raw_opt.param_groups[0]["lr"])
            rec["loss_kind"] = step_kind.kind
            rec["temperature"] = float(loss_fn.temperature(step_kind))
            if val is not None:
                unwrapped = accelerator.unwrap_model(model)
                ev = _evaluate_sets(unwrapped, val, config.val_n_candidates, config.val_n_draws,
                                    config.seed, accelerator)
                rec["val_top1"] = ev["top1"]
                for subj, r in ev["per_subject"].items():
                    rec[f"val_top1/{subj}"] = r["top1"]
                if best["top1"] is None or ev["top1"] > best["top1"] + 1e-9:
                    best.update(top1=ev["top1"], epoch=epoch + 1, bad=0,
                                state=state_dict_for_saving(unwrapped))
                else:
                    best["bad"] += 1
                if config.patience is not None and best["bad"] >= config.patience:
                    stopped = True
            rec["time_s"] = time.perf_counter() - t0
            history.append(rec)
            epoch += 1
            if main:
                logger.info("epoch %d/%d  loss %.4f%s", epoch, config.epochs, rec["train_loss"],
                            f"  val top-1 {rec['val_top1']:.3f}" if "val_top1" in rec else "")
                bar.update(1)
                bar.set_postfix(loss=f"{rec['train_loss']:.3f}",
                                **({"val": f"{rec['val_top1']:.3f}"} if "val_top1" in rec else {}))
                if writer is not None:
                    for k, v in rec.items():
                        if isinstance(v, (int, float)) and k != "epoch":
                            writer.add_scalar(k, v, epoch)
                    writer.flush()
            if ckpt_dir is not None:
                if main:
                    state = {"fingerprint": fingerprint, "history": history,
                             "best_top1": best["top1"], "best_epoch": best["epoch"],
                             "bad_epochs": best["bad"],
                             "finished": bool(stopped or epoch >= config.epochs),
                             "stopped_early": bool(stopped),
                             "train_config": config.to_dict()}
                    _save_checkpoint(ckpt_dir, epoch, accelerator.unwrap_model(model), loss_fn,
                                     raw_opt, raw_sched, state, config.keep_checkpoints,
                                     best["epoch"])
                accelerator.wait_for_everyone()
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    decoder = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if best["state"] is not None:
        decoder.load_state_dict(best["state"])
    decoder.eval()
    result = TrainResult(decoder=decoder, history=history, best_epoch=best["epoch"],
                         best_val_top1=best["top1"], stopped_early=bool(stopped),
                         out_dir=out_path)
    if out_path is not None and main:
        _write_json(out_path / "history.json",
                    {"history": history, "best_epoch": best["epoch"],
                     "best_val_top1": best["top1"], "stopped_early": bool(stopped),
                     "train_config": config.to_dict()})
        decoder.save_pretrained(out_path / "model")
    accelerator.wait_for_everyone()
    return result


def _load_checkpoint(path: Path, fingerprint: str, decoder: BrainDecoder, loss_fn: nn.Module,
                     optimizer, scheduler, ckpt_dir: Path):
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"The checkpoints in {ckpt_dir} belong to a different run (another decoder, "
            "training config or data). Pass resume=False to start over, or use another out_dir."
        )
    dev = decoder.device
    decoder.load_state_dict(load_file(str(path / "model.safetensors"), device=str(dev)))
    if (path / "loss.safetensors").is_file():
        loss_fn.load_state_dict(load_file(str(path / "loss.safetensors"), device=str(dev)))
    tensors = load_file(str(path / "optimizer.safetensors"))
    optimizer.load_state_dict(_optimizer_from_safetensors(tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    if "rng.torch" in tensors:
        torch.random.set_rng_state(tensors["rng.torch"])
    best = {"top1": state.get("best_top1"), "epoch": state.get("best_epoch"),
            "bad": int(state.get("bad_epochs", 0)), "state": None}
    if best["epoch"] is not None:
        best_path = ckpt_dir / f"epoch-{int(best['epoch']):04d}" / "model.safetensors"
        if not best_path.is_file():
            raise FileNotFoundError(
                f"The best epoch's checkpoint {best_path} is missing; pass resume=False."
            )
        best["state"] = load_file(str(best_path))
    return int(state["epoch"]), bool(state.get("finished", False)) and bool(
        state.get("stopped_early", False)), list(state["history"]), best


def _release(accelerator, owns_state: bool) -> None:
    """Let a later fit() in this process build an Accelerator with other settings."""
    accelerator.free_memory()
    if owns_state and accelerator.num_processes == 1:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()


# =========================================================================== new subjects
@verbose
def adapt_subject(
    decoder: BrainDecoder,
    new_trialset: Any,
    targets: Any = None,
    *,
    config: TrainConfig | None = None,
    init: str = "auto",
    adapter_epochs: int | None = None,
    finetune_epochs: int = 0,
    finetune_lr: float | None = None,
    valset: Any = None,
    subject: str | None = None,
    adapter: str | None = None,
    ridge_alphas: Any = None,
    out_dir: PathLike | None = None,
    return_results: bool = False,
    verbose: bool | str | int | None = None,
) -> BrainDecoder | tuple[BrainDecoder, list[TrainResult]]:
    """Fit a new subject's adapter against the frozen shared encoder and heads.

    A copy of ``decoder`` gets a fresh adapter for the new subject and only that adapter is
    learned; the shared encoder and heads, trained on the other subjects, stay frozen.
    ``decoder`` itself is not modified.

    * ``init="ridge"`` (the default when the decoder has a stimulus map, see
      :func:`braindecode_kit.transfer.fit_stimulus_map`, and the adapter is linear): the
      adapter is solved in closed form by ridge regression into the shared space
      (:func:`braindecode_kit.transfer.ridge_adapter`), alpha by cross-validation grouped
      by stimulus. No gradient steps unless ``adapter_epochs`` asks for them.
    * ``init="random"``: a randomly initialised adapter trained by gradient descent
      (``config``) through the frozen encoder.

    Then, if ``finetune_epochs > 0``, everything is fine-tuned briefly on the new subject
    (as MindEye2 does). Gradient phases that follow a closed-form adapter start by scoring
    it on ``valset`` and keep it unless they beat it.

    Parameters
    ----------
    decoder : BrainDecoder
        A decoder trained on other subjects.
    new_trialset : TrialSet or tuple
        The new subject's training trials (same forms as :func:`fit`'s ``trainsets``).
    targets : see :func:`fit`
    config : TrainConfig or None
        Gradient training of the adapter and fine-tune (None: ``TrainConfig()``).
    init : {"auto", "ridge", "random"}
        How the adapter is learned (see above); ``"auto"`` picks ``"ridge"`` when possible.
    adapter_epochs : int or None
        Gradient epochs of the adapter phase (None: ``config.epochs`` after a random
        init, 0 after a ridge init).
    finetune_epochs : int
        Epochs of full fine-tuning after the adapter phase (0: none).
    finetune_lr : float or None
        Peak learning rate of the fine-tune (None: ``config.lr / 10``).
    valset : same forms or None
        The new subject's validation trials (early stopping).
    subject : str or None
        The new subject's name (None: the set's subject).
    adapter : str or None
        Adapter kind (None: the decoder's default).
    ridge_alphas : array-like or None
        Candidate penalties of the ridge init (None: the ridge baseline's grid).
    out_dir : path or None
        Checkpoints and logs go to ``out_dir/adapter`` and ``out_dir/finetune``.
    return_results : bool
        Also return the :class:`TrainResult` of each phase.
    verbose : bool, str, int or None
        Log level for this call (see :mod:`braindecode_kit._logging`).

    Returns
    -------
    BrainDecoder
        The adapted copy (and the list of TrainResults when ``return_results``).
    """
    if not isinstance(decoder, BrainDecoder):
        raise TypeError(f"decoder must be a BrainDecoder, but got {type(decoder).__name__}.")
    if not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be a non-negative int, got {finetune_epochs!r}.")
    config = TrainConfig() if config is None else config
    sets = _normalize_sets(new_trialset, "new_trialset")
    if len(sets) != 1:
        raise ValueError(f"new_trialset must hold one subject's trials, got {len(sets)} sets.")
    name = str(subject) if subject is not None else sets[0].subject
    if name in decoder.config.subjects:
        raise ValueError(
            f"The decoder already has subject {name!r} (subjects: {decoder.subjects}); pass "
            "subject='<new name>' to adapt it as a new subject."
        )
    train_set = _renamed(new_trialset, sets[0], name)
    val_set = None
    if valset is not None:
        vs = _normalize_sets(valset, "valset")
        val_set = _renamed(valset, vs[0], name)
    check_option("init", init, ("auto", "ridge", "random"))
    if adapter_epochs is not None and (not isinstance(adapter_epochs, int) or adapter_epochs < 0):
        raise ValueError(f"adapter_epochs must be None or a non-negative int, got {adapter_epochs!r}.")
    from .transfer import can_solve_adapter, ridge_adapter

    use_ridge = init == "ridge" or (init == "auto" and can_solve_adapter(decoder, adapter))
    if use_ridge and not decoder.has_stimulus_map:
        raise ValueError(
            "init='ridge' needs a decoder with a stimulus map: call "
            "braindecode_kit.transfer.fit_stimulus_map(decoder, trainsets, targets) after "
            "training it, or use init='random'."
        )
    model = copy.deepcopy(decoder).cpu()
    model.add_subject(name, sets[0].X.shape[1:] if len(sets[0].X.shape) > 2
                      else sets[0].X.shape[1], adapter=adapter, seed=config.seed)
    if use_ridge:
        prep = _prepare(sets, targets, "new_trialset")  # the sets checked above, not re-read
        data = prep.sets[0]
        text = None
        if model.config.stimulus_map_text_dim:
            if "text" not in prep.tables:
                raise ValueError(
                    "The decoder's stimulus map reads caption-text embeddings, but the targets "
                    "have none: pass a Targets with text, or use init='random'."
                )
            text = prep.tables["text"][data.stim].reshape(len(data.stim), -1)
        ridge_adapter(model, name, data.X, prep.tables["image"][data.stim], groups=data.stim,
                      text=text, alphas=ridge_alphas, random_state=config.seed)
    n_adapter = adapter_epochs if adapter_epochs is not None else (0 if use_ridge else config.epochs)
    for p in model.parameters():
        p.requires_grad_(False)
    for mod in (model.adapters[name], model.adapter_norms[name]):
        for p in mod.parameters():
            p.requires_grad_(True)
    out = Path(out_dir) if out_dir is not None else None
    results = []
    if n_adapter > 0:
        cfg = dataclasses.replace(config, epochs=n_adapter,
                                  validate_start=config.validate_start or use_ridge)
        results.append(fit(model, train_set, targets, cfg, valsets=val_set,
                           out_dir=out / "adapter" if out else None))
        model = results[-1].decoder
    for p in model.parameters():
        p.requires_grad_(True)
    if finetune_epochs > 0:
        ft = dataclasses.replace(config, epochs=finetune_epochs, validate_start=True,
                                 lr=finetune_lr if finetune_lr is not None else config.lr / 10)
        results.append(fit(model, train_set, targets, ft, valsets=val_set,
                           out_dir=out / "finetune" if out else None))
        model = results[-1].decoder
    model.eval()
    return (model, results) if return_results else model


def _renamed(original: Any, data: _SetData, name: str) -> tuple:
    """A (subject, X, ids-or-Y) tuple for ``data`` under ``name``."""
    third = data.Y if data.Y is not None else data.ids
    if data.subject == name and not _is_trialset(original):
        return original if isinstance(original, tuple) else (name, data.X, third)
    return (name, data.X, third)


@verbose
def learning_curve(
    decoder: BrainDecoder,
    trialset: Any,
    targets: Any = None,
    fractions: Sequence[float] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    *,
    testset: Any,
    config: TrainConfig | None = None,
    finetune_epochs: int = 0,
    subject: str | None = None,
    n_candidates: int = 300,
    n_draws: int = 30,
    seed: int = 0,
    verbose: bool | str | int | None = None,
):
    """Retrieval accuracy of :func:`adapt_subject` vs the share of training stimuli.

    For each fraction f, the first ``ceil(f * n_stimuli)`` stimuli of a seeded shuffle of
    the new subject's training stimuli (nested subsets: all their repetitions) adapt a copy
    of ``decoder``; the test set's predictions, averaged over repetitions per stimulus, are
    scored by ``n_candidates``-way brain->image top-1.

    Parameters
    ----------
    decoder : BrainDecoder
        Trained on other subjects.
    trialset : TrialSet or (subject, X, stimulus_ids)
        The new subject's training trials.
    targets : see :func:`fit`
        Must be looked up by stimulus id (a Targets, DataFrame or dict).
    fractions : sequence of float in (0, 1]
    testset : TrialSet or (subject, X, stimulus_ids)
        The new subject's test trials.
    config : TrainConfig or None
    finetune_epochs : int
        Passed to :func:`adapt_subject`.
    subject : str or None
        Name of the new subject.
    n_candidates, n_draws, seed : int
        Retrieval protocol (candidates capped at the number of test stimuli).
    verbose : bool, str, int or None
        Log level for this call (see :mod:`braindecode_kit._logging`).

    Returns
    -------
    pandas.DataFrame
        Columns ``fraction, n_stimuli, n_trials, top1, ci, ci_low, ci_high``.
    """
    import pandas as pd

    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"fractions must be floats in (0, 1], but got {list(fractions)!r}.")
    sets = _normalize_sets(trialset, "trialset")
    if len(sets) != 1 or sets[0].ids is None:
        raise ValueError("trialset must be one subject's TrialSet or (subject, X, stimulus_ids).")
    tr = sets[0]
    name = str(subject) if subject is not None else tr.subject
    test = _prepare(_normalize_sets(testset, "testset"), targets, "testset")
    uniq = list(dict.fromkeys(tr.ids))
    order = np.random.default_rng(seed).permutation(len(uniq))
    ids_arr = np.asarray(tr.ids)
    rows = []
    for f in fr:
        n_stim = max(2, math.ceil(f * len(uniq)))
        keep = {uniq[i] for i in order[:n_stim]}
        mask = np.fromiter((i in keep for i in ids_arr), bool, len(ids_arr))
        sub = (name, tr.X[np.flatnonzero(mask)], list(ids_arr[mask]))
        adapted = adapt_subject(decoder, sub, targets, config=config,
                                finetune_epochs=finetune_epochs, subject=name)
        ts = test.sets[0]
        pred = adapted.predict(ts.X, subject=name)
        avg, u = _average_by_stimulus(pred, ts.stim)
        res = _retrieval(avg, test.tables["image"][u], n_candidates, n_draws, seed)
        rows.append({"fraction": f, "n_stimuli": n_stim, "n_trials": int(mask.sum()),
                     "top1": res["top1"], "ci": tuple(res["ci"]),
                     "ci_low": res["ci"][0], "ci_high": res["ci"][1]})
        logger.info("learning curve: %.3f of stimuli (%d trials): top-1 %.3f", f,
                    int(mask.sum()), res["top1"])
    return pd.DataFrame(rows)
