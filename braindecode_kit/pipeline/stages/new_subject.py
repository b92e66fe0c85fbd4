"""The ``new_subject`` stage: a subject held out of pretraining (``new_subject.subject``)
is adapted from a share of its training images (``new_subject.fraction``), against a
decoder trained from scratch and ridge on the same trials, and against adaptation on all
of its trials; plus a learning curve over ``new_subject.curve``.

Metric keys name the share they hold: ``adapted_10pct`` at ``fraction: 0.1``,
``adapted_25pct`` at 0.25 (see :func:`~._common.fraction_label`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._utils import save_npy_atomic
from .._base import RunContext, stage
from ._common import (
    KIND_LABELS,
    decoder_config,
    fraction_label,
    get_targets,
    get_trialsets,
    kind_path,
    retrieval,
    retrieval_summary,
    small_data_config,
    subjects_of,
    test_set,
)


def _curve_figure(curve: list[dict[str, Any]], refs: dict[str, float], n_candidates: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = [c["n_trials"] for c in curve]
    y = [c["top1"] for c in curve]
    lo = [c["ci"][0] for c in curve]
    hi = [c["ci"][1] for c in curve]
    ax.plot(x, y, "o-", label="adapted (shared encoder frozen)")
    ax.fill_between(x, lo, hi, alpha=0.25)
    for (name, val), style in zip(refs.items(), ["--", ":", "-."]):
        ax.axhline(val, linestyle=style, color="grey", label=name)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(x)
    ax.set_xticklabels([str(v) for v in x])
    ax.set_xlabel("new subject's training trials")
    ax.set_ylabel(f"{n_candidates}-way top-1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def report_new_subject(ctx: RunContext, report) -> None:
    """The new subject's table (adapted vs scratch vs ridge) and learning curve."""
    for kind in ctx.kinds:
        fm = ctx.metrics.get(kind) or {}
        ns = fm.get("new_subject")
        if not ns:
            continue
        suffix = fraction_label(ns["fraction"])
        title = f"A new subject (sub-{ns['subject']}) from little data"
        report.add_heading(title if len(ctx.kinds) == 1 else f"{title} ({KIND_LABELS[kind]})")
        how = ("solved in closed form: ridge regression from its voxels into the shared "
               "space, onto the representation the other subjects' brains give each image"
               if ns.get("adapter_init") == "ridge" else "trained by gradient descent")
        report.add_text(
            f"The shared encoder is trained on the other subjects; the new subject's adapter "
            f"is {how}, with the encoder frozen, from {ns['fraction']:.0%} of its training "
            f"images ({ns[f'n_trials_{suffix}']} trials). It is compared with a decoder trained "
            f"from scratch and with ridge on the same trials, and with adaptation on all "
            f"{ns['n_trials_full']} of its training trials.")
        pct = f"{ns['fraction']:.0%}"
        labels = {f"adapted_{suffix}": f"adapted, {pct} (shared encoder frozen)",
                  f"adapted_sgd_{suffix}": f"adapted by gradient descent, same {pct}",
                  f"scratch_{suffix}": f"decoder from scratch, same {pct}",
                  f"ridge_{suffix}": f"ridge, same {pct}",
                  "adapted_full": "adapted, all training trials"}
        k = ctx.config.evaluate.topk
        report.add_table([
            {"model": lab, "top-1": ns[n]["top1"], "95% CI": tuple(ns[n]["ci"]),
             **({f"top-{k}": ns[n][f"top{k}"], f"top-{k} 95% CI": tuple(ns[n][f"top{k}_ci"])}
                if f"top{k}" in ns[n] else {})}
            for n, lab in labels.items() if n in ns], highlight=labels[f"adapted_{suffix}"])
        report.add_text(f"Adapted from {ns['fraction']:.0%} reaches "
                        f"{ns[f'adapted_{suffix}_vs_full']:.2f} of the full-data adaptation.")
        if ns.get("learning_curve"):
            n_cand = fm.get("n_candidates", ctx.config.evaluate.n_candidates)
            report.add_figure(_curve_figure(ns["learning_curve"], {
                f"scratch, same {pct}": ns[f"scratch_{suffix}"]["top1"],
                f"ridge, same {pct}": ns[f"ridge_{suffix}"]["top1"]}, n_cand),
                "Learning curve of the new subject (accuracy vs its training trials).")


@stage("new_subject", requires=("train",),
       enabled=lambda c: bool(c.kinds) and c.new_subject.enabled, priority=60,
       distributed=True, report_order=30, report=report_new_subject)
def stage_new_subject(ctx: RunContext) -> dict[str, Any]:
    """Adapt a held-out subject from a fraction of its trials, against scratch and ridge."""
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    for kind in ctx.kinds:
        if not ctx.config.section_for("new_subject", kind).enabled:
            continue
        out, written = _new_subject(ctx, kind)
        metrics[kind] = {"new_subject": out}
        outputs += written
    return {"metrics": metrics, "outputs": outputs}


def _new_subject(ctx: RunContext, kind: str) -> tuple[dict[str, Any], list[str]]:
    from ...baselines import RidgeDecoder
    from ...models import BrainDecoder
    from ...splits import split_train_val, subsample_stimuli
    from ...train import adapt_subject, can_solve_adapter, fit, learning_curve

    ns = ctx.config.section_for("new_subject", kind)
    suffix = fraction_label(ns.fraction)
    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx, kind)
    _, new = subjects_of(ctx, kind)
    if new is None:
        raise ValueError(
            f"The new_subject stage needs new_subject.enabled and at least 2 subjects (one is "
            f"held out), but got enabled={ns.enabled} and {len(trialsets)} {kind} subject(s).")
    pretrained = BrainDecoder.from_pretrained(ctx.run_dir / kind_path(kind, "model"))
    ts = trialsets[new]
    full_train, full_val = split_train_val(ts, seed=ctx.seed)
    test = test_set(ts)
    Yt = targets.loc(test.stimulus_ids).image
    Xt = np.asarray(test.data, dtype=np.float32)

    part = subsample_stimuli(full_train, ns.fraction, ctx.seed)
    # gradient-trained models of the small-data regime stop early on a stimulus split of
    # the same share (validating on trials outside it would give them more labelled data)
    part_fit, part_val = split_train_val(part, seed=ctx.seed)
    # adapt_subject's default: the adapter in closed form (see braindecode_kit.train.adapt)
    closed = can_solve_adapter(pretrained)

    def adapted(fraction: float, init: str = "auto"):
        if fraction >= 1:
            fit_set, val_set = full_train, full_val
        else:
            closed_form = closed and init != "random" and ns.finetune_epochs == 0
            # closed form: all of the share; gradient phases: early stopping on a split of it
            fit_set, val_set = (part, None) if closed_form else (part_fit, part_val)
        return adapt_subject(pretrained, fit_set, targets, subject=new, valset=val_set,
                             config=small_data_config(ctx.config, fit_set.n_trials, kind),
                             init=init,
                             finetune_epochs=ns.finetune_epochs)

    out: dict[str, Any] = {}
    dec_part = adapted(ns.fraction)
    out[f"n_trials_{suffix}"] = part.n_trials
    out["n_trials_full"] = full_train.n_trials
    out["fraction"] = ns.fraction
    out["adapter_init"] = "ridge" if closed else "random"
    preds = {f"adapted_{suffix}": dec_part.predict(Xt, subject=new)}
    if closed:
        # ablation: the same frozen encoder, the adapter learned by gradient descent instead
        dec_sgd = adapted(ns.fraction, init="random")
        preds[f"adapted_sgd_{suffix}"] = dec_sgd.predict(Xt, subject=new)
    scratch = BrainDecoder(decoder_config(ctx.config, {new: part}, Yt.shape[1]), seed=ctx.seed)
    res = fit(scratch, [part_fit], targets,
              small_data_config(ctx.config, part_fit.n_trials, kind), valsets=[part_val])
    preds[f"scratch_{suffix}"] = res.decoder.predict(Xt, subject=new)
    ridge = RidgeDecoder().fit(np.asarray(part.data, dtype=np.float32),
                               targets.loc(part.stimulus_ids).image, groups=part.stimulus_ids)
    preds[f"ridge_{suffix}"] = ridge.predict(Xt)
    dec_full = adapted(1.0)
    preds["adapted_full"] = dec_full.predict(Xt, subject=new)
    written = []
    for name, pred in preds.items():
        path = kind_path(kind, "predictions", f"new_{name}.npy")
        if ctx.is_main_process:
            save_npy_atomic(ctx.path(path), pred.astype(np.float32))
        written.append(path)
        out[name] = retrieval_summary(retrieval(pred, Yt, ctx, k=ctx.config.evaluate.topk))
    out[f"adapted_{suffix}_vs_full"] = (out[f"adapted_{suffix}"]["top1"]
                                        / max(out["adapted_full"]["top1"], 1e-9))
    ec = ctx.config.evaluate
    # the share's and the full-data points are the ones above; the curve fits the others
    extra = [f for f in ns.curve if f not in (ns.fraction, 1.0)]
    curve = [{"fraction": ns.fraction, "n_trials": part.n_trials, **out[f"adapted_{suffix}"]},
             {"fraction": 1.0, "n_trials": full_train.n_trials, **out["adapted_full"]}]
    if extra:
        frame = learning_curve(pretrained, full_train, targets, fractions=extra, testset=test,
                               config=small_data_config(ctx.config, full_train.n_trials, kind),
                               finetune_epochs=ns.finetune_epochs, subject=new,
                               n_candidates=min(ec.n_candidates, len(Yt)),
                               n_draws=ec.n_draws, seed=ctx.seed)
        curve += [{"fraction": float(r.fraction), "n_trials": int(r.n_trials),
                   "top1": float(r.top1), "ci": [float(c) for c in r.ci]}
                  for r in frame.itertuples()]
    curve.sort(key=lambda c: c["n_trials"])
    out["learning_curve"] = curve
    out["subject"] = new
    return out, written
