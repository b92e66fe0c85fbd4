"""A new subject: its adapter learned against the frozen shared encoder and heads.

A decoder trained on several subjects defines a shared space: the input of its shared
encoder, where every subject's adapter lands. Learning a new subject's adapter by gradient
descent through the frozen encoder needs thousands of trials (on the demo's data it did no
better than ridge from 10% of a subject's trials). This module learns it in closed form
instead, in two steps:

1. :func:`fit_stimulus_map`, once, after training on the other subjects: a ridge map from
   a stimulus's CLIP embeddings (image, and caption text when the targets have it) to the
   shared-space representation that the training subjects' brains give that stimulus
   (their adapter outputs, averaged over repetitions and subjects). It is stored in the
   decoder and saved with it.
2. :func:`ridge_adapter`, for the new subject: ridge regression (alpha by cross-validation
   grouped by stimulus) from its voxels to the shared-space targets that the map gives its
   training images, written into its linear adapter. The frozen shared encoder and heads
   then take the adapter's output to CLIP space.

Step 2 is the same regularised regression as the ridge baseline; only its targets differ:
the shared space instead of CLIP space. The gain is the shared encoder's, trained on the
other subjects. It maps the new subject's noisy linear estimates back onto the embeddings
that brains produce.

- :func:`adapt_subject`: a new subject's adapter, in closed form by default when the
  decoder has a stimulus map (:func:`can_solve_adapter`), else trained by gradient descent
  through the frozen encoder (:func:`~braindecode_kit.train.fit`); optionally followed by a
  short full fine-tune.
- :func:`learning_curve`: accuracy of :func:`adapt_subject` vs the share of the new
  subject's training stimuli.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import check_float, check_int, check_option, check_type
from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import PathLike
from ..models.adapters import ADAPTERS, LinearAdapter
from ..models.config import SubjectSpec
from ..models.decoder import BrainDecoder
from ..models.encoders import ENCODERS
from ..splits import average_by_stimulus
from ._data import _check_leaks, _is_trialset, _normalize_sets, _prepare, _SetData
from ._fit import _retrieval, fit
from .config import TrainConfig, TrainResult

__all__ = [
    "adapt_subject",
    "can_solve_adapter",
    "fit_stimulus_map",
    "learning_curve",
    "ridge_adapter",
    "shared_space_targets",
]

#: candidate ridge penalties of the stimulus map (CLIP embeddings are few, well-conditioned dims)
_MAP_ALPHAS = np.logspace(-5, 4, 19)


def can_solve_adapter(decoder: BrainDecoder, adapter: str | None = None) -> bool:
    """Whether a new subject's ``adapter`` kind can be solved in closed form for ``decoder``.

    This is what ``adapt_subject(init="auto")`` decides with.

    Parameters
    ----------
    decoder : BrainDecoder
        A decoder trained on other subjects.
    adapter : str or None
        The new subject's adapter kind (None: the decoder's default).

    Returns
    -------
    bool
        True when the decoder has a stimulus map (:func:`fit_stimulus_map`) and the kind
        is linear.
    """
    kind = adapter if adapter is not None else decoder.config.adapter
    cls = ADAPTERS.get(kind)
    return decoder.has_stimulus_map and cls is not None and issubclass(cls, LinearAdapter)


def _sets_and_tables(sets: Any, targets: Any, name: str):
    prep = _prepare(_normalize_sets(sets, name), targets, name)
    return prep.sets, prep.tables


def fit_stimulus_map(decoder: BrainDecoder, trainsets: Any, targets: Any = None, *,
                     use_text: bool | str = "auto", alphas: Any = None,
                     batch_size: int = 512) -> dict[str, Any]:
    """Fit (in place) the decoder's map from stimulus CLIP embeddings to its shared space.

    Each training stimulus's shared-space representation is the mean, over all its trials
    in all subjects, of the subjects' adapter outputs (the encoder's input). A ridge
    regression from the stimuli's CLIP embeddings (the image embedding, then the caption
    text embedding when used) to these means, its penalty chosen by leave-one-stimulus-out
    error (scikit-learn's ``RidgeCV``; one row per stimulus, so repetitions never leak),
    becomes :meth:`BrainDecoder.map_stimuli`.

    On the demo's data the caption embedding helps: cross-validated R^2 0.61 with image
    and text against 0.56 with the image alone, and a new subject's 300-way top-1 from 10%
    of its trials 0.24 against 0.21 (mean of 3 subsets, seed 0).

    Parameters
    ----------
    decoder : BrainDecoder
        A trained decoder; every subject of ``trainsets`` must have an adapter.
    trainsets : TrialSet, tuple or list of those
        The training trials the decoder was trained on (the forms :func:`fit` takes).
    targets : Targets, DataFrame, dict, array, list of arrays or None
        The stimuli's CLIP embeddings, in the forms :func:`fit` takes.
    use_text : bool or "auto"
        Also read the caption-text embeddings (``"auto"``: when the targets have them,
        i.e. a :class:`~braindecode_kit.embed.Targets` with ``text``).
    alphas : array-like of float or None
        Candidate penalties (None: ``np.logspace(-5, 4, 19)``).
    batch_size : int
        Trials per forward pass.

    Returns
    -------
    dict
        ``alpha`` (the chosen penalty), ``r2`` (leave-one-stimulus-out R^2 of the map,
        averaged over the shared dimensions), ``n_stimuli`` and ``text`` (whether caption
        embeddings are read).
    """
    from sklearn.linear_model import RidgeCV

    check_type("decoder", decoder, BrainDecoder)
    check_option("use_text", use_text, ("auto", True, False))
    if ENCODERS[decoder.config.encoder].consumes != "vector":
        raise ValueError(
            f"fit_stimulus_map needs a decoder whose shared space is a vector per trial, but "
            f"its encoder {decoder.config.encoder!r} consumes sequences (n, d_shared, T): "
            "sensor adapters are adapted by gradient descent (adapt_subject(init='random'))."
        )
    sets, tables = _sets_and_tables(trainsets, targets, "trainsets")
    table = tables["image"]
    if use_text is True and "text" not in tables:
        raise ValueError(
            "use_text=True needs caption-text targets (a Targets with text embeddings), but "
            "the targets have none."
        )
    text = tables.get("text") if use_text in ("auto", True) else None
    d = decoder.config.d_shared
    sums = np.zeros((table.shape[0], d), np.float64)
    counts = np.zeros(table.shape[0], np.int64)
    for s in sets:
        if s.subject not in decoder.adapters:
            raise KeyError(
                f"trainsets has subject {s.subject!r} but the decoder only has adapters for "
                f"{decoder.subjects}."
            )
        feats = decoder.shared_features(s.X, s.subject, batch_size=batch_size)
        np.add.at(sums, s.stim, feats)
        counts += np.bincount(s.stim, minlength=table.shape[0])
    seen = counts > 0
    if seen.sum() < 3:
        raise ValueError(
            f"fit_stimulus_map needs trials of at least 3 different stimuli, got {int(seen.sum())}."
        )
    U = sums[seen] / counts[seen, None]
    Y = table[seen].reshape(int(seen.sum()), -1).astype(np.float64)
    if Y.shape[1] != decoder.config.embed_dim:
        raise ValueError(
            f"The targets are {Y.shape[1]}-dim but the decoder's image head is "
            f"{decoder.config.embed_dim}-dim."
        )
    text_dim = 0
    if text is not None:
        text_dim = int(np.prod(text.shape[1:]))
        Y = np.concatenate([Y, text[seen].reshape(len(Y), -1)], axis=1)
    grid = _MAP_ALPHAS if alphas is None else np.asarray(alphas, np.float64).ravel()
    if grid.size == 0 or not np.all(grid > 0):
        raise ValueError(f"alphas must be positive floats, got {alphas!r}.")
    model = RidgeCV(alphas=grid, store_cv_results=True).fit(Y, U)
    loo = model.cv_results_[:, :, int(np.argmin(np.abs(grid - model.alpha_)))]
    r2 = float(np.mean(1.0 - loo.mean(0) / np.maximum(U.var(0), 1e-12)))
    decoder.set_stimulus_map(model.coef_, model.intercept_, text_dim=text_dim)
    logger.info("stimulus map (%s): %d stimuli, alpha %.3g, leave-one-out R^2 %.3f",
                "image + text" if text_dim else "image", int(seen.sum()), float(model.alpha_),
                r2)
    return {"alpha": float(model.alpha_), "r2": r2, "n_stimuli": int(seen.sum()),
            "text": bool(text_dim)}


def _norm_params(decoder: BrainDecoder, exclude: str | None = None):
    """Mean (weight, bias) of the existing subjects' LayerNorms, or None without them."""
    norms = [a.norm for s, a in decoder.adapters.items()
             if s != exclude and isinstance(a.norm, torch.nn.LayerNorm)]
    if not norms:
        return None
    w = torch.stack([m.weight.detach().float().cpu() for m in norms]).mean(0).numpy()
    b = torch.stack([m.bias.detach().float().cpu() for m in norms]).mean(0).numpy()
    return w, b


def shared_space_targets(decoder: BrainDecoder, Y: np.ndarray, text: np.ndarray | None = None,
                         subject: str | None = None) -> np.ndarray:
    """What a subject's adapter (before its norm) should output for stimuli ``Y``.

    The stimulus map gives the encoder input ``u`` (from the image embeddings ``Y`` and,
    if the map reads them, the caption embeddings ``text``); with LayerNorm adapters the
    new adapter's norm starts from the other subjects' mean scale ``g`` and shift ``b``, so
    its linear output should be ``(u - b) / g``.

    Parameters
    ----------
    decoder : BrainDecoder
        Has a stimulus map (:func:`fit_stimulus_map`).
    Y : array, shape (n, embed_dim)
        CLIP image embeddings of the stimuli.
    text : array, shape (n, text_dim) or None
        Their caption-text embeddings, when the stimulus map reads them.
    subject : str or None
        The subject whose adapter the targets are for: its own norm is left out of the
        other subjects' mean.

    Returns
    -------
    array, shape (n, d_shared)
        The targets of the adapter's linear output.
    """
    return _pre_norm(decoder.map_stimuli(Y, text), _norm_params(decoder, exclude=subject))


def _pre_norm(U: np.ndarray, params) -> np.ndarray:
    """What the linear adapter must output for a LayerNorm with ``params`` to give ``U``."""
    if params is None:
        return U
    w, b = params
    return (U - b) / np.where(np.abs(w) < 1e-6, 1e-6, w)


def ridge_adapter(decoder: BrainDecoder, subject: str, X: Any, Y: np.ndarray,
                  groups: Any = None, *, text: np.ndarray | None = None, alphas: Any = None,
                  cv: int = 5, random_state: int = 0) -> dict[str, Any]:
    """Set ``subject``'s linear adapter (in place) by ridge regression into the shared space.

    Parameters
    ----------
    decoder : BrainDecoder
        Has a stimulus map (:func:`fit_stimulus_map`) and a ``"linear"`` adapter for
        ``subject`` (e.g. just added with :meth:`BrainDecoder.add_subject`).
    subject : str
        The subject whose adapter is set.
    X : array, shape (n_trials, n_features)
        Its training trials.
    Y : array, shape (n_trials, embed_dim)
        The CLIP image embedding of each trial's stimulus.
    groups : array-like or None
        Stimulus label of each trial: cross-validation folds never split a stimulus's
        repetitions (None: every trial its own group; not advised with repetitions).
    text : array, shape (n_trials, text_dim) or None
        The caption-text embedding of each trial's stimulus, when the stimulus map reads
        them.
    alphas : array-like of float or None
        Candidate penalties, passed to :class:`~braindecode_kit.baselines.RidgeDecoder`
        (None: its grid).
    cv : int
        Number of cross-validation folds (grouped by ``groups``).
    random_state : int
        Seed of the folds.

    Returns
    -------
    dict
        ``alpha`` (the chosen penalty) and ``n_trials``.
    """
    from ..baselines import RidgeDecoder

    subject = str(subject)
    if subject not in decoder.adapters:
        raise KeyError(f"Unknown subject {subject!r}; this decoder knows {decoder.subjects}.")
    adapter = decoder.adapters[subject]
    if not isinstance(adapter, LinearAdapter):
        raise ValueError(
            f"ridge_adapter needs a 'linear' adapter, but subject {subject!r} has "
            f"{type(adapter).__name__}; use init='random' for other adapter kinds."
        )
    X = np.asarray(X, np.float32).reshape(len(X), -1)
    Y = np.asarray(Y, np.float32)
    if X.shape[1] != adapter.n_features:
        raise ValueError(
            f"Subject {subject!r}'s adapter expects {adapter.n_features} features, but X has "
            f"{X.shape[1]}."
        )
    if Y.shape != (X.shape[0], decoder.config.embed_dim):
        raise ValueError(
            f"Y must have shape ({X.shape[0]}, {decoder.config.embed_dim}) (one CLIP image "
            f"embedding per trial), but got {Y.shape}."
        )
    params = _norm_params(decoder, exclude=subject)
    T = _pre_norm(decoder.map_stimuli(Y, text), params)
    ridge = RidgeDecoder(alphas=alphas, cv=cv, random_state=random_state)
    ridge.fit(X, T, groups=groups)
    # predict() = ((X @ coef.T + intercept) - pred_mean) / pred_scale * y_scale + y_mean:
    # affine in X, so it folds exactly into the Linear layer
    scale = ridge.y_scale_ / ridge.pred_scale_
    weight = ridge.coef_ * scale[:, None]
    bias = (ridge.intercept_ - ridge.pred_mean_) * scale + ridge.y_mean_
    with torch.no_grad():
        lin = adapter.linear
        lin.weight.copy_(torch.as_tensor(weight, dtype=lin.weight.dtype))
        lin.bias.copy_(torch.as_tensor(bias, dtype=lin.bias.dtype))
        norm = adapter.norm
        if params is not None and isinstance(norm, torch.nn.LayerNorm):
            norm.weight.copy_(torch.as_tensor(params[0], dtype=norm.weight.dtype))
            norm.bias.copy_(torch.as_tensor(params[1], dtype=norm.bias.dtype))
    alpha = ridge.alpha_
    logger.info("ridge adapter for %s: %d trials, alpha %s", subject, X.shape[0],
                np.array2string(np.atleast_1d(alpha)[:3], precision=3))
    return {"alpha": float(np.mean(alpha)), "n_trials": int(X.shape[0])}


# =========================================================================== new subjects
@fill_doc
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
      :func:`fit_stimulus_map`, and the adapter is linear): the adapter is solved in
      closed form by ridge regression into the shared space (:func:`ridge_adapter`),
      alpha by cross-validation grouped by stimulus. No gradient steps unless
      ``adapter_epochs`` asks for them.
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
    targets : Targets, DataFrame, dict, array, list of arrays or None
        The stimuli's CLIP embeddings, in the forms :func:`fit` takes.
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
    %(verbose)s

    Returns
    -------
    decoder : BrainDecoder
        The adapted copy.
    results : list of TrainResult
        Only when ``return_results``: one per gradient phase (adapter, fine-tune) that ran.
    """
    check_type("decoder", decoder, BrainDecoder)
    check_int("finetune_epochs", finetune_epochs, lo=0)
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
    vs: list[_SetData] = []
    if valset is not None:
        vs = _normalize_sets(valset, "valset")
        val_set = _renamed(valset, vs[0], name)
    _check_leaks(sets, vs, allow_test=False, check_leak=True, train_name="new_trialset",
                 val_name="valset")
    check_option("init", init, ("auto", "ridge", "random"))
    check_int("adapter_epochs", adapter_epochs, lo=0, allow_none=True)
    use_ridge = init == "ridge" or (init == "auto" and can_solve_adapter(decoder, adapter))
    if use_ridge and not decoder.has_stimulus_map:
        raise ValueError(
            "init='ridge' needs a decoder with a stimulus map: call "
            "braindecode_kit.train.fit_stimulus_map(decoder, trainsets, targets) after "
            "training it, or use init='random'."
        )
    model = copy.deepcopy(decoder).cpu()
    if _is_trialset(new_trialset):  # its modality and sensor layout too
        spec = SubjectSpec.from_trialset(new_trialset)
    else:  # (subject, X, ...): an fMRI subject of X's per-trial shape
        shape = sets[0].X.shape
        spec = shape[1:] if len(shape) > 2 else shape[1]
    model.add_subject(name, spec, adapter=adapter, seed=config.seed)
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
    for p in model.adapters[name].parameters():  # the new adapter, its norm included
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


@fill_doc
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
    targets : Targets, DataFrame or dict
        The stimuli's CLIP embeddings, looked up by stimulus id.
    fractions : sequence of float in (0, 1]
        Shares of the new subject's training stimuli to adapt from.
    testset : TrialSet or (subject, X, stimulus_ids)
        The new subject's test trials.
    config : TrainConfig or None
        Passed to :func:`adapt_subject`.
    finetune_epochs : int
        Passed to :func:`adapt_subject`.
    subject : str or None
        Name of the new subject (None: the set's subject).
    n_candidates : int
        Candidates of each retrieval draw (capped at the number of test stimuli).
    n_draws : int
        Random candidate draws the top-1 is averaged over.
    seed : int
        Seed of the stimulus shuffle and of the retrieval draws.
    %(verbose)s

    Returns
    -------
    pandas.DataFrame
        Columns ``fraction, n_stimuli, n_trials, top1, ci, ci_low, ci_high``.
    """
    import pandas as pd

    fr = [check_float("fractions", f, 0.0, 1.0, lo_open=True) for f in fractions]
    if not fr:
        raise ValueError("Invalid value for the 'fractions' parameter: expected at least one "
                         "fraction in (0, 1], but got none.")
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
        avg, u = average_by_stimulus(pred, ts.stim)
        res = _retrieval(avg, test.tables["image"][u], n_candidates, n_draws, seed)
        rows.append({"fraction": f, "n_stimuli": n_stim, "n_trials": int(mask.sum()),
                     "top1": res["top1"], "ci": tuple(res["ci"]),
                     "ci_low": res["ci"][0], "ci_high": res["ci"][1]})
        logger.info("learning curve: %.3f of stimuli (%d trials): top-1 %.3f", f,
                    int(mask.sum()), res["top1"])
    return pd.DataFrame(rows)
