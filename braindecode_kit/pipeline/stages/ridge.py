"""The ``ridge`` stage: the ridge baseline per pretraining subject (alpha by CV, folds by
stimulus), its predictions of the test images saved for the evaluate stage; with low-level
targets (``embed.blurry``), a second ridge onto the blurry images (Brain-Diffuser's
low-level route) saved for the reconstruct stage."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._utils import save_npy_atomic
from .._base import RunContext, stage
from ._common import get_targets, get_trialsets, kind_path, subjects_of, test_set


@stage("ridge", requires=("embed", "load_{kind}"), enabled=lambda c: bool(c.kinds),
       priority=50)
def stage_ridge(ctx: RunContext) -> dict[str, Any]:
    """Fit the ridge baseline per subject (alpha by CV) and save its test predictions."""
    from ...baselines import RidgeDecoder

    targets = get_targets(ctx)
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    for kind in ctx.kinds:
        trialsets = get_trialsets(ctx, kind)
        pre, _ = subjects_of(ctx, kind)
        alphas = {}
        for s in pre:
            train = trialsets[s].select(split="train")
            Y = targets.loc(train.stimulus_ids).image
            d = Y.shape[1]
            B = None
            if targets.blurry is not None:
                B = targets.loc(train.stimulus_ids).blurry
                # the blurry images' ridge on the same features and folds: one
                # decomposition per fold for both, each target set its own alpha
                Y = np.hstack([Y, B.reshape(len(B), -1)])
            # folds by stimulus, so repetitions of an image never sit on both sides of a fold
            ridge = RidgeDecoder(target_groups=None if B is None else
                                 np.r_[np.zeros(d, int), np.ones(Y.shape[1] - d, int)]).fit(
                np.asarray(train.data, dtype=np.float32), Y, groups=train.stimulus_ids)
            test = test_set(trialsets[s])
            pred = ridge.predict(np.asarray(test.data, dtype=np.float32))
            out = kind_path(kind, "predictions", f"ridge_sub-{s}.npy")
            save_npy_atomic(ctx.path(out), pred[:, :d].astype(np.float32))
            alphas[s] = float(np.atleast_1d(ridge.alpha_)[:d].mean())
            outputs.append(out)
            if B is not None:
                pred_b = np.clip(pred[:, d:], 0, 1)
                out_b = kind_path(kind, "predictions", f"ridge_blurry_sub-{s}.npy")
                save_npy_atomic(ctx.path(out_b), pred_b.reshape(-1, *B.shape[1:]).astype(
                    np.float32))
                outputs.append(out_b)
        metrics[kind] = {"ridge_alpha": alphas}
    return {"metrics": metrics, "outputs": outputs}
