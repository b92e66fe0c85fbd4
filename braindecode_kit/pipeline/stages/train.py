"""The ``train`` stage: the multi-subject contrastive decoder of each recording kind
(per-subject adapters + shared encoder), and the stimulus map that gives a new subject's
adapter its closed-form targets.

Every process of an ``accelerate launch`` runs it: :func:`braindecode_kit.train.fit`
shards the batches over them; only the main process writes the model and the history,
and each process writes what it trained on to ``train/shards/rank-<i>.json``.
"""

from __future__ import annotations

import json
from typing import Any

from ..._utils import write_json_atomic
from .._base import RunContext, stage
from ._common import (
    KIND_LABELS,
    decoder_config,
    get_targets,
    get_trialsets,
    kind_path,
    subjects_of,
    train_config,
)


def _history_figure(history: list[dict[str, Any]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    ep = [h["epoch"] for h in history]
    axes[0].plot(ep, [h["train_loss"] for h in history], label="train")
    kinds = [h.get("loss_kind") for h in history]
    for i in range(1, len(kinds)):
        if kinds[i] != kinds[i - 1]:
            axes[0].axvline(ep[i] - 0.5, color="grey", linestyle=":")
            axes[0].text(ep[i] - 0.5, axes[0].get_ylim()[1], f" {kinds[i]}", va="top",
                         fontsize=8, color="grey")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    val = [h.get("val_top1") for h in history]
    if any(v is not None for v in val):
        axes[1].plot(ep, val, color="C2")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation top-1 (stimulus-averaged)")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def report_train(ctx: RunContext, report) -> None:
    """The training curves of each kind's decoder."""
    for kind in ctx.kinds:
        hist_path = ctx.run_dir / kind_path(kind, "train", "history.json")
        if not hist_path.exists():
            continue
        title = "Training" if len(ctx.kinds) == 1 else f"Training ({KIND_LABELS[kind]})"
        report.add_heading(title)
        report.add_figure(_history_figure(json.loads(hist_path.read_text())),
                          "Training loss and validation retrieval per epoch.")


def _write_shard(ctx: RunContext, kind: str, result: Any, n_trials: int) -> None:
    """What this process trained on (one file per process, for distributed runs)."""
    shard = dict(getattr(result, "shard", None) or {})  # what fit reports of its shard
    record = {"rank": ctx.process_index, "world_size": ctx.num_processes,
              "n_train_trials": int(n_trials),
              # each process's own mean loss over its own batches, per epoch
              "train_loss": [float(h["train_loss"]) for h in result.history], **shard}
    write_json_atomic(
        ctx.path(kind_path(kind, "train", "shards", f"rank-{ctx.process_index}.json")), record)


@stage("train", requires=("embed", "load_{kind}"), enabled=lambda c: bool(c.kinds),
       priority=40, distributed=True, report_order=20, report=report_train)
def stage_train(ctx: RunContext) -> dict[str, Any]:
    """Train the multi-subject contrastive decoder (adapters + shared encoder)."""
    from ...models import ENCODERS, BrainDecoder
    from ...splits import split_train_val
    from ...train import fit, fit_stimulus_map

    targets = get_targets(ctx)
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    for kind in ctx.kinds:
        trialsets = get_trialsets(ctx, kind)
        pre, _ = subjects_of(ctx, kind)
        trains, vals = {}, {}
        for s in pre:
            trains[s], vals[s] = split_train_val(trialsets[s], seed=ctx.seed)
        blurry = None if targets.blurry is None else targets.blurry.shape[-1]
        decoder = BrainDecoder(decoder_config(ctx.config, trains, targets.image.shape[1],
                                              blurry_size=blurry), seed=ctx.seed)
        result = fit(decoder, list(trains.values()), targets, train_config(ctx.config, kind),
                     valsets=list(vals.values()), out_dir=ctx.run_dir / kind_path(kind, "train"))
        # the map image -> shared space that gives a new subject's adapter its targets
        # (a vector shared space only: sensor adapters are adapted by gradient descent)
        smap = (fit_stimulus_map(result.decoder, list(trains.values()), targets)
                if ENCODERS[decoder.config.encoder].consumes == "vector" else None)
        if ctx.is_main_process:
            result.decoder.save_pretrained(ctx.run_dir / kind_path(kind, "model"))
            write_json_atomic(ctx.path(kind_path(kind, "train", "history.json")),
                              result.history)
        _write_shard(ctx, kind, result, sum(ts.n_trials for ts in trains.values()))
        metrics[kind] = {"train": {"epochs_run": result.n_epochs,
                                   "best_epoch": result.best_epoch,
                                   "best_val_top1": result.best_val_top1,
                                   "best_val_score": result.best_val_score,
                                   "stopped_early": result.stopped_early,
                                   "stimulus_map": smap}}
        outputs += [kind_path(kind, "model"), kind_path(kind, "train", "history.json")]
    return {"metrics": metrics, "outputs": outputs}
