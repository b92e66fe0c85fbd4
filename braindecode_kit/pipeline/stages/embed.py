"""The ``embed`` stage: CLIP targets of the stimuli, and the embedder's zero-shot scores.

Its report section shows the embedder's scores on this world and a grid of images with
the caption the embedder matches best.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._logging import logger
from ..._utils import write_json_atomic
from .._base import RunContext, stage
from ._common import get_stimuli, get_targets


def _embedder(ctx: RunContext):
    from ...embed import Embedder

    return Embedder(**ctx.config.embed.kwargs(Embedder))


def report_embed(ctx: RunContext, report) -> None:
    """The CLIP embedder's scores on this world, and a caption grid."""
    m = ctx.metrics
    clip = m.get("builtin_clip") or m.get("clip")
    if not clip:
        return
    report.add_heading("The CLIP embedder on this world")
    report.add_table([
        {"test": "zero-shot shape of the largest object", "accuracy": clip["zero_shot_shape"],
         "chance": clip["zero_shot_shape_chance"]},
        {"test": "zero-shot colour of the largest object", "accuracy": clip["zero_shot_colour"],
         "chance": clip["zero_shot_colour_chance"]},
        {"test": "image→caption retrieval top-1", "accuracy": clip["caption_retrieval_top1"],
         "chance": clip["caption_retrieval_chance"]},
    ])
    report.add_text(f"Measured on the {clip['n_images']} images of this run's world "
                    f"(seed {ctx.seed}), none used to train the embedder.")
    _caption_grid(ctx, report)


def _caption_grid(ctx: RunContext, report, n: int = 12) -> None:
    """Images with the caption the embedder matches best among all the world's captions."""
    stimuli = get_stimuli(ctx)
    targets = get_targets(ctx)
    ids = stimuli.ids[:n]
    captions = sorted({c for i in stimuli.ids[:300] for c in stimuli.captions(i)[:1]})
    emb = _embedder(ctx)
    T = emb.encode_texts(captions)
    sims = targets.loc(ids).image @ T.T
    rows = []
    for i, sid in enumerate(ids):
        best = captions[int(np.argmax(sims[i]))]
        true = stimuli.captions(sid)[0]
        rows.append([{"image": stimuli.load_image(sid),
                      "label": best, "status": "ok" if best == true else "bad"}])
    grid = [sum(rows[i:i + 4], []) for i in range(0, len(rows), 4)]
    report.add_image_grid(grid, scale=2, caption=(
        f"Each image with its best-matching caption among {len(captions)} captions of the "
        "world (green: its own caption, red: another image's caption)."))
    logger.info("caption grid: %d images", len(ids))


@stage("embed", requires=("stimuli",), priority=10, report_order=90, report=report_embed)
def stage_embed(ctx: RunContext) -> dict[str, Any]:
    """Embed the stimuli with CLIP (cached on disk) and score the embedder zero-shot."""
    from ...embed import caption_retrieval, embed_stimuli, zero_shot_attributes

    ec = ctx.config.embed
    stimuli = get_stimuli(ctx)
    embedder = _embedder(ctx)
    targets = embed_stimuli(stimuli, embedder, cache_dir=ctx.run_dir / "cache" / "embed",
                            **ec.kwargs(embed_stimuli))
    targets.save(ctx.run_dir / "targets")
    ctx.cache["targets"] = targets
    metrics: dict[str, Any] = {}
    key = "builtin_clip" if ec.model == "builtin" else "clip"
    if ctx.config.stimuli.kind == "world":
        feats = targets.image  # rows in stimuli.ids order: nothing is embedded twice
        shape = zero_shot_attributes(embedder, stimuli, attribute="shape", image_features=feats)
        colour = zero_shot_attributes(embedder, stimuli, attribute="colour", image_features=feats)
        capret = caption_retrieval(embedder, stimuli, n_candidates=min(300, len(stimuli)),
                                   seed=ctx.seed, image_features=feats)
        metrics[key] = {
            "zero_shot_shape": shape["accuracy"],
            "zero_shot_shape_chance": shape["chance"],
            "zero_shot_colour": colour["accuracy"],
            "zero_shot_colour_chance": colour["chance"],
            "caption_retrieval_top1": capret["top1"],
            "caption_retrieval_chance": capret["chance"],
            "n_images": len(stimuli),
            "identity": embedder.identity,
        }
        write_json_atomic(ctx.path("embed", "zero_shot.json"), {
            "shape": {"predictions": list(map(str, shape["predictions"]))},
            "colour": {"predictions": list(map(str, colour["predictions"]))},
        })
    return {"metrics": metrics, "outputs": ["targets"],
            "inputs": {"embedder": embedder.identity}}
