"""Scores of reconstructions of built-in world images, one image at a time: the built-in
CLIP's 2-way identification, and whether the largest object's shape and colour, read
zero-shot by the built-in CLIP, are the same in the reconstruction as in the seen image
(and as the world's truth). Shared by the reconstruct stage, the generator's training
figures and ``benchmarks/image_decoder.py``.

:func:`template_shapes` reads the largest object's shape a second way, without CLIP: the
world's truth gives the object's centre, size and angle, and the reading is the shape
whose rendered silhouette at that geometry best overlaps (IoU) the pixels around it that
differ from the background (or "none" when nothing is drawn there). A generator trained
to please the built-in CLIP (a CLIP loss on its outputs) can draw streaks that CLIP reads
as a diamond; this reader does not, and the two readings side by side show it (measured: a
CLIP-loss fine-tune raised the CLIP shape agreement 0.30 -> 0.68-0.79 and the template
reading only 0.28 -> 0.27-0.42).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["seen_readings", "summary_scores", "template_shapes", "world_scores"]

#: a built-in world stimulus id, ``w{seed}-{index}`` as make_world writes them
_WORLD_ID = re.compile(r"w(\d+)-(\d+)")

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
        image does) and ``<attr>_correct`` (1 when it reads as the world's truth); for
        built-in world stimuli also ``shape_template`` (1 when :func:`template_shapes`,
        which needs no CLIP, reads the world's true shape in the reconstruction).
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
    if "shape" in stimuli.attributes.columns and _is_world(stimuli):
        out["shape_template"] = (template_shapes(stimuli, reconstructions)
                                 == stimuli.attributes["shape"].astype(str).to_numpy()
                                 ).astype(float)
    return out


def summary_scores(embedder, stimuli, seen: np.ndarray, reconstructions: Any,
                   seen_features: np.ndarray,
                   readings: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """The means of :func:`world_scores` (``builtin_clip_2way``, ``<attr>_agreement``,
    ``<attr>_accuracy`` = the mean of ``<attr>_correct``, ``shape_template`` for world
    stimuli) with PixCorr and SSIM of ``reconstructions`` against the ``seen`` uint8 images:
    the generator's ceiling figures and its benchmark rows."""
    from ..evaluate.image_metrics import pixcorr, ssim

    per = world_scores(embedder, stimuli, reconstructions, seen_features, readings)
    out = {"builtin_clip_2way": float(per["builtin_clip_2way"].mean())}
    for attr in ATTRIBUTES:
        if f"{attr}_agreement" in per:
            out[f"{attr}_agreement"] = float(per[f"{attr}_agreement"].mean())
            out[f"{attr}_accuracy"] = float(per[f"{attr}_correct"].mean())
    if "shape_template" in per:  # the true shape read without CLIP
        out["shape_template"] = float(per["shape_template"].mean())
    out["pixcorr"] = pixcorr(seen, reconstructions)
    out["ssim"] = ssim(seen, reconstructions)
    return out


def _is_world(stimuli) -> bool:
    return all(_WORLD_ID.fullmatch(str(i)) for i in stimuli.ids)


def _scenes(stimuli) -> list:
    """The world scene of each stimulus (ids ``w{seed}-{index}``, as make_world writes them)."""
    from ..simulate.world import sample_scene

    scenes = []
    for sid in stimuli.ids:
        m = _WORLD_ID.fullmatch(str(sid))
        if m is None:
            raise ValueError(
                f"template_shapes reads built-in world images (ids 'w<seed>-<index>' from "
                f"make_world), but got stimulus id {sid!r}.")
        scenes.append(sample_scene(int(m.group(1)), int(m.group(2))))
    return scenes


def template_shapes(stimuli, images: Any, background_tolerance: float = 60.0,
                    min_iou: float = 0.2) -> np.ndarray:
    """The largest object's shape in each image, read by template matching (no CLIP).

    For stimulus ``i`` of the built-in world, the pixels within 1.5 object radii of the
    largest object's true centre whose colour is further than ``background_tolerance``
    (RGB distance) from the image's own background there form a mask (the background is
    the median colour of the ring between 1.15 and 1.5 radii, outside every silhouette, so
    a reconstruction with another background colour is read like the seen image; the
    background's texture is a shade 28 levels away and is not counted; the object's colour
    is not used). The reading is the shape of :data:`~braindecode_kit.simulate.world.SHAPES`
    whose silhouette, drawn at the object's true centre, radius and angle, has the highest
    IoU with that mask, or ``"none"`` when none reaches ``min_iou`` (nothing drawn there).
    A seen image reads as its truth (tested); a reconstruction reads as the truth only when
    it draws an object of that shape at that place.

    Parameters
    ----------
    stimuli : StimulusSet
        Built-in world stimuli (:func:`~braindecode_kit.simulate.make_world`).
    images : list of PIL images | uint8 array (n, H, H, 3)
        One square uint8 RGB image per stimulus, in ``stimuli.ids`` order, all of one size:
        the world's resolution or any other (the geometry is relative).
    background_tolerance : float
        Smallest RGB distance from the background colour of a pixel counted as drawn.
    min_iou : float
        The overlap (> 0) below which the reading is ``"none"``.

    Returns
    -------
    ndarray of str, shape (n,)

    Raises
    ------
    ValueError
        If the images are not one square uint8 RGB image per stimulus, or a stimulus id
        is not a built-in world id.
    """
    import dataclasses

    from ..simulate.world import SHAPES, Scene, render_scene

    if not min_iou > 0:
        raise ValueError(f"min_iou must be > 0, got {min_iou!r}.")
    arrays = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im)
              for im in images]
    shapes = sorted({a.shape for a in arrays})
    dtypes = sorted({str(a.dtype) for a in arrays})
    if (len(arrays) != len(stimuli.ids) or len(shapes) != 1 or len(shapes[0]) != 3
            or shapes[0][2] != 3 or shapes[0][0] != shapes[0][1] or dtypes != ["uint8"]):
        raise ValueError(
            f"images must be {len(stimuli.ids)} square uint8 RGB images of one size (one "
            f"per stimulus), got {len(arrays)} of shape(s) {shapes[:3]} and dtype(s) "
            f"{dtypes}.")
    arr = np.stack(arrays)
    size = arr.shape[1]
    yy, xx = np.mgrid[:size, :size]
    out = []
    for img, scene in zip(arr.astype(np.float64), _scenes(stimuli)):
        obj = scene.objects[0]
        dist = np.hypot(xx - obj.cx * size, yy - obj.cy * size) / (obj.radius * size)
        window, ring = dist < 1.5, (dist >= 1.15) & (dist < 1.5)
        background = np.median(img[ring], axis=0) if ring.any() else np.asarray(scene.bg_rgb)
        mask = window & (np.linalg.norm(img - background, axis=-1) > background_tolerance)
        best, best_iou = "none", float(min_iou)
        for shape in SHAPES:
            silhouette = Scene(objects=(dataclasses.replace(obj, shape=shape, rgb=(255,) * 3),),
                               background="black", texture="plain", bg_rgb=(0, 0, 0),
                               texture_phase=0.0, texture_angle=0)
            sil = np.asarray(render_scene(silhouette, size=size)).mean(-1) > 127
            iou = float((sil & mask).sum()) / max(float((sil | mask).sum()), 1.0)
            if iou > best_iou or (iou == best_iou and best == "none"):
                best, best_iou = shape, iou
        out.append(best)
    return np.asarray(out)
