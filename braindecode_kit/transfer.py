"""A new subject's adapter in closed form, through the shared space.

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
that brains produce (:func:`~braindecode_kit.train.adapt_subject` uses this by default when
the decoder has a stimulus map).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._logging import logger
from .models.adapters import ADAPTERS, LinearAdapter
from .models.decoder import BrainDecoder

__all__ = ["can_solve_adapter", "fit_stimulus_map", "ridge_adapter", "shared_space_targets"]

#: candidate ridge penalties of the stimulus map (CLIP embeddings are few, well-conditioned dims)
_MAP_ALPHAS = np.logspace(-5, 4, 19)


def can_solve_adapter(decoder: BrainDecoder, adapter: str | None = None) -> bool:
    """Whether a new subject's ``adapter`` kind can be solved in closed form for ``decoder``.

    True when the decoder has a stimulus map and the kind (None: the decoder's default) is
    linear; this is what ``adapt_subject(init="auto")`` decides with.
    """
    kind = adapter if adapter is not None else decoder.config.adapter
    cls = ADAPTERS.get(kind)
    return decoder.has_stimulus_map and cls is not None and issubclass(cls, LinearAdapter)


def _sets_and_tables(sets: Any, targets: Any, name: str):
    from .train import _normalize_sets, _prepare

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
    targets : see :func:`~braindecode_kit.train.fit`
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

    if not isinstance(decoder, BrainDecoder):
        raise TypeError(f"decoder must be a BrainDecoder, but got {type(decoder).__name__}.")
    if use_text not in ("auto", True, False):
        raise ValueError(f"use_text must be True, False or 'auto', but got {use_text!r}.")
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
    norms = [m for s, m in decoder.adapter_norms.items()
             if s != exclude and isinstance(m, torch.nn.LayerNorm)]
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
    alphas, cv, random_state
        Passed to :class:`~braindecode_kit.baselines.RidgeDecoder` (``cv`` folds, grouped).

    Returns
    -------
    dict
        ``alpha`` (the chosen penalty) and ``n_trials``.
    """
    from .baselines import RidgeDecoder

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
        norm = decoder.adapter_norms[subject]
        if params is not None and isinstance(norm, torch.nn.LayerNorm):
            norm.weight.copy_(torch.as_tensor(params[0], dtype=norm.weight.dtype))
            norm.bias.copy_(torch.as_tensor(params[1], dtype=norm.bias.dtype))
    alpha = ridge.alpha_
    logger.info("ridge adapter for %s: %d trials, alpha %s", subject, X.shape[0],
                np.array2string(np.atleast_1d(alpha)[:3], precision=3))
    return {"alpha": float(np.mean(alpha)), "n_trials": int(X.shape[0])}
