"""Scores of reconstructions of built-in world images, one image at a time: the built-in
CLIP's 2-way identification, and whether the largest object's shape and colour, read
zero-shot by the built-in CLIP, are the same in the reconstruction as in the seen image
(and as the world's truth). Shared by the reconstruct stage, the generator's training
figures and ``benchmarks/image_decoder.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["seen_readings", "world_scores"]

#: the attributes read zero-shot (the world's columns of the largest object)
ATTRIBUTES = ("shape", "colour")


def seen_readings(embedder, stimuli, seen_features: np.ndarray) -> dict[str, np.ndarray]:
    """The zero-shot reading of each attribute the stimuli have (``shape``, ``colour``) in
    the seen images, from their embeddings (rows in ``stimuli.ids`` order)."""
    from ..embed.zeroshot import zero_shot_attributes

    return {a: np.asarray(zero_shot_attributes(embedder, stimuli, a,
                                               image_features=seen_features)["predictions"])
            for a in ATTRIBUTES if a in stimuli.attributes.columns}


def world_scores(embedder, stimuli, reconstructions: Any, seen_features: np.ndarray,
                 readings: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-image scores of ``reconstructions`` (rows aligned with ``stimuli.ids``).

    Parameters
    ----------
    embedder : Embedder
        The built-in CLIP (its zero-shot prompts are the world's words).
    stimuli : StimulusSet
        The seen stimuli (``shape``/``colour`` columns in ``attributes`` for the readings).
    reconstructions : list of PIL images | uint8 array
        One per stimulus.
    seen_features : ndarray (n, d)
        The seen images' embeddings.
    readings : dict | None
        :func:`seen_readings` when already computed.

    Returns
    -------
    dict of str to ndarray (n,)
        ``builtin_clip_2way`` (each reconstruction's share of other seen images it is told
        apart from), ``<attr>_agreement`` (1 when the reconstruction reads as the seen
        image does) and ``<attr>_correct`` (1 when it reads as the world's truth).
    """
    from ..embed.zeroshot import zero_shot_attributes
    from ..evaluate.retrieval import two_way_identification

    if readings is None:
        readings = seen_readings(embedder, stimuli, seen_features)
    f_rec = embedder.encode_images(reconstructions)
    out = {"builtin_clip_2way": np.asarray(
        two_way_identification(f_rec, seen_features)["per_item"])}
    for attr, seen_pred in readings.items():
        got = np.asarray(zero_shot_attributes(embedder, stimuli, attr,
                                              image_features=f_rec)["predictions"])
        out[f"{attr}_agreement"] = (got == seen_pred).astype(float)
        out[f"{attr}_correct"] = (got == stimuli.attributes[attr].astype(str).to_numpy()
                                  ).astype(float)
    return out
