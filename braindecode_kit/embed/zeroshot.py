"""How good is a CLIP on a stimulus set: zero-shot attribute classification and
image->caption retrieval (works with any :class:`~braindecode_kit.embed.Embedder`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_option

__all__ = ["zero_shot_attributes", "caption_retrieval", "class_prompts"]

ATTRIBUTES = ("shape", "colour")


def class_prompts(attribute: str, value: str, others: Sequence[str]) -> list[str]:
    """The prompt ensemble of one class: ``"a {colour} {shape}"`` with the class in its
    slot and every value of the other attribute in the other."""
    if attribute == "shape":
        return [f"a {o} {value}" for o in others]
    return [f"a {value} {o}" for o in others]


def _image_features(embedder, stimuli, image_features) -> np.ndarray:
    if image_features is None:
        return embedder.encode_images(stimuli)
    if hasattr(image_features, "loc") and hasattr(image_features, "image"):  # Targets
        return image_features.loc(stimuli.ids).image
    feats = np.asarray(image_features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] != len(stimuli):
        raise ValueError(f"'image_features' must have shape ({len(stimuli)}, dim), one row per "
                         f"stimulus, but got {feats.shape}.")
    return feats


def _default_classes(attribute: str, values: np.ndarray) -> tuple[list[str], list[str]]:
    """The world's classes when the column holds world values, else the values found."""
    from ..simulate.world import COLOURS, SHAPES

    shapes, colours = list(SHAPES), list(COLOURS)
    mine, other = (shapes, colours) if attribute == "shape" else (colours, shapes)
    present = sorted({str(v) for v in values})
    if set(present) <= set(mine):
        return mine, other
    return present, other


def zero_shot_attributes(
    embedder,
    stimuli,
    attribute: str = "shape",
    *,
    classes: Sequence[str] | None = None,
    others: Sequence[str] | None = None,
    image_features=None,
) -> dict[str, Any]:
    """Zero-shot classification of the largest object's shape or colour with text prompts.

    Each class is the mean of the normalised text embeddings of the prompts ``"a {colour}
    {shape}"`` over every value of the other attribute (prompt ensembling), re-normalised;
    each image takes the class of highest cosine similarity.

    Parameters
    ----------
    embedder : Embedder
        Any CLIP embedder.
    stimuli : StimulusSet
        With a ``shape`` or ``colour`` column in ``stimuli.attributes`` (the largest
        object's, as the built-in world writes it).
    attribute : {"shape", "colour"}
        What to classify.
    classes : list of str | None
        The candidate classes (default: the world's shapes or colours, or the values of
        the column when it holds others).
    others : list of str | None
        Values of the other attribute used in the prompts (default: the world's).
    image_features : ndarray (n, d) | Targets | None
        Precomputed image embeddings of ``stimuli`` (default: computed here).

    Returns
    -------
    dict
        ``accuracy``, ``chance`` (1 / number of classes), ``majority`` (accuracy of always
        answering the most frequent class), ``predictions`` (list aligned with
        ``stimuli.ids``), ``classes``, ``n``.
    """
    check_option("attribute", attribute, ATTRIBUTES)
    table = stimuli.attributes
    if attribute not in table.columns:
        raise ValueError(f"zero_shot_attributes(attribute={attribute!r}) needs a {attribute!r} "
                         f"column in stimuli.attributes, but its columns are "
                         f"{list(table.columns)}.")
    truth = table[attribute].astype(str).to_numpy()
    default_classes, default_others = _default_classes(attribute, truth)
    classes = list(default_classes if classes is None else classes)
    others = list(default_others if others is None else others)
    if len(classes) < 2:
        raise ValueError(f"'classes' needs at least 2 classes, got {classes}.")
    if not others:
        raise ValueError("'others' needs at least one value to build prompts.")
    feats = _image_features(embedder, stimuli, image_features)
    n_prompts = len(others)
    T = embedder.encode_texts([p for c in classes for p in class_prompts(attribute, c, others)])
    C = T.reshape(len(classes), n_prompts, -1).mean(1)
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    pred = np.asarray(classes, dtype=object)[np.argmax(feats @ C.T, axis=1)]
    values, counts = np.unique(truth, return_counts=True)
    return {
        "accuracy": float(np.mean(pred == truth)),
        "chance": 1.0 / len(classes),
        "majority": float(counts.max() / counts.sum()),
        "predictions": [str(p) for p in pred],
        "classes": classes,
        "n": int(len(truth)),
    }


def caption_retrieval(
    embedder,
    stimuli,
    n_candidates: int = 300,
    n_draws: int = 30,
    seed: int = 0,
    *,
    image_features=None,
) -> dict[str, Any]:
    """Image -> caption top-1 retrieval: each image's first caption among candidates.

    ``n_draws`` times, ``n_candidates`` stimuli are drawn; each image ranks the first
    captions of the drawn stimuli by cosine similarity and counts as right when its own
    ranks first (:func:`braindecode_kit.evaluate.retrieval_accuracy`).

    Parameters
    ----------
    embedder : Embedder
        Any CLIP embedder.
    stimuli : StimulusSet
        Every stimulus needs at least one caption.
    n_candidates, n_draws, seed
        As :func:`~braindecode_kit.evaluate.retrieval_accuracy`.
    image_features : ndarray (n, d) | Targets | None
        Precomputed image embeddings of ``stimuli`` (default: computed here).

    Returns
    -------
    dict
        ``retrieval_accuracy``'s result: ``top1``, ``ci``, ``chance``, ``draws``,
        ``n_candidates``, ``n_draws``...
    """
    from ..evaluate import retrieval_accuracy

    bare = [i for i in stimuli.ids if not stimuli.captions(i)]
    if bare:
        raise ValueError(f"caption_retrieval needs a caption per stimulus, but {len(bare)} have "
                         f"none, e.g. {bare[:5]}.")
    if n_candidates > len(stimuli):
        raise ValueError(f"'n_candidates' ({n_candidates}) must not exceed the number of "
                         f"stimuli ({len(stimuli)}).")
    feats = _image_features(embedder, stimuli, image_features)
    texts = embedder.encode_texts([stimuli.captions(i)[0] for i in stimuli.ids])
    return retrieval_accuracy(feats, texts, k=1, n_candidates=n_candidates, n_draws=n_draws,
                              seed=seed, direction="brain->image")
