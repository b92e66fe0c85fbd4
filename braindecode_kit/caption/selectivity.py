"""Captions of what voxels, channels or ROIs prefer (BrainSCUBA-style).

1. An **encoding model** from stimulus embeddings to each unit's responses (ridge, alpha
   by a held-out split of stimuli: :func:`fit_encoding_model`), e.g. from the CLIP image
   embeddings of the training images to each voxel's betas. Any linear map from CLIP
   space to units works (a trained decoder's adapter read backwards is not one: decoders
   map units to CLIP space, so use the encoding model of its training data).
2. Its weight ``w`` of a unit (or the mean unit weight of an ROI) is **projected onto the
   manifold of image embeddings**: ``e = normalise(sum_j softmax_j(cos(w, b_j) / T) b_j)``
   over a bank of image embeddings ``b_j`` (BrainSCUBA, Luo et al. 2024, with T = 1/150),
   so the captioner sees an embedding like those it was trained on
   (:func:`preference_embeddings`).
3. The captioner **captions** it (:func:`selectivity_captions`).

:func:`simulated_selectivity` checks the whole route on the simulator, whose ground truth
says what each voxel prefers: the share of captions that name a voxel group's true
preferred shape (or colour), against chance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._checks import check_float, check_option
from .base import as_embeddings

__all__ = [
    "fit_encoding_model",
    "preference_embeddings",
    "selectivity_captions",
    "simulated_selectivity",
]

#: BrainSCUBA's softmax temperature (1/150)
DEFAULT_TEMPERATURE = 1.0 / 150


def fit_encoding_model(embeddings: np.ndarray, responses: np.ndarray, *,
                       alphas: Sequence[float] = (1.0, 10.0, 100.0, 1000.0, 10000.0),
                       holdout: float = 0.2, seed: int = 0) -> dict[str, np.ndarray | float]:
    """Ridge from stimulus embeddings to unit responses (one alpha for all units).

    The alpha is the one of highest mean R^2 on a held-out share of the stimuli; the
    model is then refitted on all of them.

    Parameters
    ----------
    embeddings : array (n, d)
        One embedding per stimulus (L2-normalised here).
    responses : array (n, n_units)
        The units' responses to the same stimuli (e.g. betas averaged over repetitions).
    alphas : sequence of float
        Ridge penalties tried.
    holdout : float
        Share of stimuli held out to choose alpha and measure R^2.
    seed : int
        Seed of the held-out draw.

    Returns
    -------
    dict
        ``weights`` ``(n_units, d)``, ``intercept`` ``(n_units,)``, ``alpha``, ``r2``
        ``(n_units,)`` (held-out R^2 at the chosen alpha).
    """
    X = as_embeddings(embeddings).astype(np.float64)
    Y = np.asarray(responses, np.float64)
    if Y.ndim != 2 or len(Y) != len(X):
        raise ValueError(f"'responses' must have shape ({len(X)}, n_units), one row per "
                         f"embedding, but got {Y.shape}.")
    check_float("holdout", holdout, 0.0, 1.0, lo_open=True, hi_open=True)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(X), bool)
    test[rng.choice(len(X), size=max(1, int(round(holdout * len(X)))), replace=False)] = True

    def solve(Xa, Ya, alpha):
        mx, my = Xa.mean(0), Ya.mean(0)
        Xc = Xa - mx
        W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(Xa.shape[1]), Xc.T @ (Ya - my))
        return W, my - mx @ W

    best = (-np.inf, None, None)
    for a in alphas:
        W, b = solve(X[~test], Y[~test], float(a))
        resid = Y[test] - (X[test] @ W + b)
        ss = ((Y[test] - Y[test].mean(0)) ** 2).sum(0)
        r2 = 1.0 - (resid ** 2).sum(0) / np.maximum(ss, 1e-12)
        if np.mean(r2) > best[0]:
            best = (float(np.mean(r2)), float(a), r2)
    W, b = solve(X, Y, best[1])
    return {"weights": W.T.astype(np.float32), "intercept": b.astype(np.float32),
            "alpha": best[1], "r2": best[2].astype(np.float32)}


def preference_embeddings(weights: np.ndarray, bank: np.ndarray, *,
                          temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """Project unit weights onto the manifold of image embeddings (BrainSCUBA).

    Parameters
    ----------
    weights : array (n_units, d)
        Encoding weights in embedding space.
    bank : array (m, d)
        Image embeddings (the projection's support), L2-normalised here.
    temperature : float
        Softmax temperature over cosines (BrainSCUBA: 1/150); small values approach the
        single best-matching image.

    Returns
    -------
    ndarray (n_units, d)
        Unit-norm preference embeddings.
    """
    check_float("temperature", temperature, 0.0, lo_open=True)
    W = as_embeddings(weights, name="weights").astype(np.float64)
    B = as_embeddings(bank, W.shape[1], name="bank").astype(np.float64)
    s = (W @ B.T) / temperature
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    E = p @ B
    return (E / np.linalg.norm(E, axis=1, keepdims=True)).astype(np.float32)


def group_weights(weights: np.ndarray, groups: Mapping[str, Sequence[int]]) -> np.ndarray:
    """The mean of the unit-normalised weights of each group's units, ``(n_groups, d)``."""
    W = as_embeddings(weights, name="weights")
    out = []
    for name, idx in groups.items():
        idx = np.asarray(idx, int)
        if idx.size == 0:
            raise ValueError(f"group {name!r} has no units.")
        out.append(W[idx].mean(axis=0))
    return np.stack(out)


def selectivity_captions(weights: np.ndarray, bank: np.ndarray, captioner, *,
                         groups: Mapping[str, Sequence[int]] | None = None,
                         names: Sequence[str] | None = None,
                         scores: Sequence[float] | None = None,
                         temperature: float = DEFAULT_TEMPERATURE):
    """Caption the preference of units (or groups of units: ROIs, clusters).

    Parameters
    ----------
    weights : array (n_units, d)
        Encoding weights in the captioner's embedding space
        (:func:`fit_encoding_model`'s ``weights``).
    bank : array (m, d)
        Image embeddings the preferences are projected onto.
    captioner : Captioner
        Any captioner of that embedding space.
    groups : mapping of str to list of int | None
        Caption each group's mean weight instead of each unit.
    names : list of str | None
        Unit names (default ``"0"``, ``"1"``, ...; ignored with ``groups``).
    scores : list of float | None
        A score per row shown in the table (e.g. the encoding model's R^2).
    temperature : float
        As :func:`preference_embeddings`.

    Returns
    -------
    pandas.DataFrame
        ``unit``, ``caption``, ``score`` (NaN without ``scores``), one row per unit/group.
    """
    import pandas as pd

    if groups is not None:
        W = group_weights(weights, groups)
        labels = list(groups)
    else:
        W = np.asarray(weights)
        labels = [str(i) for i in range(len(W))] if names is None else [str(n) for n in names]
        if len(labels) != len(W):
            raise ValueError(f"'names' must have one entry per unit ({len(W)}), got {len(labels)}.")
    E = preference_embeddings(W, bank, temperature=temperature)
    captions = captioner.generate(E)
    sc = np.full(len(W), np.nan) if scores is None else np.asarray(scores, float)
    if sc.shape != (len(W),):
        raise ValueError(f"'scores' must have one entry per row ({len(W)}), got {sc.shape}.")
    return pd.DataFrame({"unit": labels, "caption": captions, "score": sc})


def true_preferences(responses: np.ndarray, values: Sequence[str]
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each unit's preferred value of an attribute from noise-free responses.

    Returns the index of the preferred value per unit, a selectivity index (the gap
    between the best and second-best value's mean response, in units of the response's
    standard deviation) and the values.
    """
    values = np.asarray(values).astype(str)
    levels = sorted(set(values))
    R = np.asarray(responses, np.float64)
    means = np.stack([R[values == v].mean(axis=0) for v in levels])  # (L, U)
    order = np.sort(means, axis=0)
    sel = (order[-1] - order[-2]) / np.maximum(R.std(axis=0), 1e-12)
    return means.argmax(axis=0), sel, levels


def simulated_selectivity(sim, subject: str, trialset, image_embeddings, captioner, *,
                          stimuli, attribute: str = "shape", bank_ids: Sequence[str] | None = None,
                          top_fraction: float = 0.25, temperature: float = DEFAULT_TEMPERATURE,
                          min_r2: float = 0.05, max_voxels: int | None = 500,
                          seed: int = 0) -> dict[str, Any]:
    """How often the caption of a simulated voxel group names its true preferred attribute.

    An encoding model (ridge from CLIP image embeddings to betas averaged over
    repetitions, training trials only) is fitted from ``trialset``; the simulator's
    noise-free responses to the same images give each voxel's true preferred value of
    ``attribute`` (the largest object's shape or colour). Groups: for each value, the
    voxels preferring it that are most selective for it (top ``top_fraction`` by the
    selectivity index among those with held-out R^2 >= ``min_r2``). Each group's mean
    weight is projected on the bank and captioned; a group counts as named when the
    caption's first ``attribute`` word is its value. Chance: the share of the bank
    images whose main object has the group's value (what a caption of a random image
    names), averaged over groups. Each voxel is also captioned alone (voxels with R^2 >=
    ``min_r2``), giving a per-voxel map: 1 named, 0 not, NaN not scored.

    Parameters
    ----------
    sim : SimulatedFMRI
        The simulated dataset (its ground truth).
    subject : str
        The subject label.
    trialset : TrialSet
        The subject's trials (fMRI, with a ``VoxelInfo``).
    image_embeddings : Targets | callable
        The stimuli's CLIP image embeddings: a :class:`~braindecode_kit.embed.Targets`
        (``.loc(ids).image``) or ``f(ids) -> (n, d)``.
    captioner : Captioner
        The captioner.
    stimuli : StimulusSet
        With the ``attribute`` column.
    attribute : {"shape", "colour"}
        Which preference to check.
    bank_ids : list of str | None
        The images of the projection bank (default: the training images of the
        trialset).
    top_fraction, temperature, min_r2 : float
        As described above.
    max_voxels : int | None
        At most this many voxels captioned one by one (None: all with R^2 >= ``min_r2``).
    seed : int
        Seed of the encoding model's held-out split.

    Returns
    -------
    dict
        ``groups`` (DataFrame: ``unit``, ``caption``, ``score`` = 1/0 named, ``true``,
        ``n_voxels``), ``accuracy``, ``chance``, ``voxel_accuracy``, ``voxel_chance``,
        ``n_voxels_scored``, ``voxel_score`` (per-voxel array), ``nifti`` (the
        per-voxel map as a NIfTI image, or None without voxel geometry), ``alpha``.
    """
    import pandas as pd

    from .prefix_lm import caption_attributes

    check_option("attribute", attribute, ("shape", "colour"))

    def embed(ids):
        if hasattr(image_embeddings, "loc"):
            return image_embeddings.loc(list(ids)).image
        return np.asarray(image_embeddings(list(ids)))

    train = trialset.select(split="train").average_repetitions()
    ids = list(train.stimulus_ids)
    X = embed(ids)
    enc = fit_encoding_model(X, np.asarray(train.data, np.float32), seed=seed)
    # ground truth, voxel by voxel (matched by voxel indices)
    sim_ijk = sim.encoding_model(subject)["ijk"].astype(np.int64)
    pos = {tuple(v): i for i, v in enumerate(sim_ijk)}
    info = trialset.info
    ts_ijk = np.asarray(info.ijk, np.int64)
    idx = np.array([pos[tuple(v)] for v in ts_ijk])
    _, true = sim.true_betas(subject, ids)
    values = stimuli.attributes.loc[ids, attribute].astype(str).to_numpy()
    pref, sel, levels = true_preferences(true[:, idx], values)
    bank_ids = ids if bank_ids is None else list(bank_ids)
    bank = embed(bank_ids)
    bank_values = stimuli.attributes.loc[bank_ids, attribute].astype(str)
    freq = bank_values.value_counts(normalize=True)
    ok = enc["r2"] >= min_r2
    groups: dict[str, np.ndarray] = {}
    for k, v in enumerate(levels):
        cand = np.flatnonzero(ok & (pref == k))
        if cand.size == 0:
            continue
        n = max(1, int(round(top_fraction * cand.size)))
        groups[f"prefers {v}"] = cand[np.argsort(-sel[cand])[:n]]
    if groups:
        table = selectivity_captions(enc["weights"], bank, captioner, groups=groups,
                                     temperature=temperature)
    else:  # no voxel is predicted well enough
        table = pd.DataFrame({"unit": [], "caption": [], "score": []})
    truth = [name.removeprefix("prefers ") for name in groups]
    named = [caption_attributes(c)[attribute] for c in table["caption"]]
    table["score"] = [float(n == t) for n, t in zip(named, truth)]
    table["true"] = truth
    table["n_voxels"] = [len(g) for g in groups.values()]
    # every scored voxel alone
    vox = np.flatnonzero(ok)
    if max_voxels is not None and vox.size > max_voxels:
        vox = np.sort(vox[np.argsort(-enc["r2"][vox], kind="stable")[:max_voxels]])
    voxel_score = np.full(len(ts_ijk), np.nan, np.float32)
    if vox.size:
        E = preference_embeddings(enc["weights"][vox], bank, temperature=temperature)
        caps = captioner.generate(E, num_beams=1)
        said = [caption_attributes(c)[attribute] for c in caps]
        voxel_score[vox] = [float(s == levels[pref[v]]) for s, v in zip(said, vox)]
    nifti = info.to_nifti(np.nan_to_num(voxel_score, nan=-1.0)) if hasattr(info, "to_nifti") \
        else None
    return {
        "attribute": attribute,
        "groups": table,
        "accuracy": float(table["score"].mean()) if len(table) else float("nan"),
        "chance": float(np.mean([freq.get(t, 0.0) for t in truth])) if truth else float("nan"),
        "voxel_accuracy": float(np.nanmean(voxel_score)) if vox.size else float("nan"),
        "voxel_chance": float(np.mean([freq.get(levels[pref[v]], 0.0) for v in vox]))
        if vox.size else float("nan"),
        "n_voxels_scored": int(vox.size),
        "voxel_score": voxel_score,
        "nifti": nifti,
        "alpha": enc["alpha"],
        "median_r2": float(np.median(enc["r2"])),
    }
