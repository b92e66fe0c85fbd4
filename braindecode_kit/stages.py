"""The built-in pipeline stages: stimuli -> embed -> simulate/load fMRI -> train ->
ridge -> new subject -> evaluate -> report.

Each stage reads what earlier stages wrote in the run folder (so a resumed run needs
nothing in memory), writes its own outputs atomically and returns its metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ._logging import logger
from ._utils import write_json_atomic
from .config import PipelineConfig
from .pipeline import RunContext, stage


def _has_fmri(cfg: PipelineConfig) -> bool:
    return cfg.fmri is not None


# --------------------------------------------------------------------------- loaders of
# earlier stages' outputs (used by later stages, also after a resume)
def get_stimuli(ctx: RunContext):
    """The run's StimulusSet (rebuilt from the config: the world is deterministic)."""

    def make():
        from .stimuli import StimulusSet

        sc = ctx.config.stimuli
        if sc.kind == "world":
            from .simulate import make_world

            return make_world(sc.n, seed=ctx.seed, size=sc.size)
        if sc.kind == "folder":
            return StimulusSet.from_folder(sc.path, table=sc.table)
        return StimulusSet.from_coco(sc.path, sc.captions)

    return ctx.cached("stimuli", make)


def get_targets(ctx: RunContext):
    """The CLIP targets written by the embed stage."""
    from .embed import Targets

    return ctx.cached("targets", lambda: Targets.load(ctx.run_dir / "targets"))


def get_trialsets(ctx: RunContext) -> dict[str, Any]:
    """Subject -> TrialSet written by the load_fmri stage (memory-mapped)."""
    from .trialset import TrialSet

    def load():
        subjects = json.loads((ctx.run_dir / "trials" / "subjects.json").read_text())
        return {s: TrialSet.load(ctx.run_dir / "trials" / f"sub-{s}") for s in subjects}

    return ctx.cached("trialsets", load)


def split_subjects(ctx: RunContext) -> tuple[list[str], str | None]:
    """(pretraining subjects, held-out new subject or None)."""
    subjects = sorted(get_trialsets(ctx))
    if ctx.config.new_subject.enabled and len(subjects) >= 2:
        return subjects[:-1], subjects[-1]
    return subjects, None


# --------------------------------------------------------------------------- stages
@stage("stimuli")
def stage_stimuli(ctx: RunContext) -> dict[str, Any]:
    """Draw (or read) the stimuli and write their attribute table and captions."""
    from .simulate.world import TRAINING_SEED_START

    sc = ctx.config.stimuli
    if sc.kind == "world" and ctx.seed >= TRAINING_SEED_START:
        raise ValueError(
            f"Invalid value for the 'seed' parameter: world seeds >= {TRAINING_SEED_START} are "
            f"reserved for training the built-in models, so a run with seed {ctx.seed} would "
            "evaluate on training images. Use a seed below that."
        )
    stimuli = get_stimuli(ctx)
    table = stimuli.attributes.copy()
    table.index.name = "stimulus_id"
    out = ctx.path("stimuli", "attributes.tsv")
    from ._utils import atomic_path

    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t")
    write_json_atomic(ctx.path("stimuli", "captions.json"),
                      {i: stimuli.captions(i) for i in stimuli.ids})
    return {"metrics": {"stimuli": {"n": len(stimuli), "kind": sc.kind}},
            "outputs": ["stimuli/attributes.tsv", "stimuli/captions.json"]}


@stage("embed", requires=("stimuli",))
def stage_embed(ctx: RunContext) -> dict[str, Any]:
    """Embed the stimuli with CLIP (cached on disk) and score the embedder zero-shot."""
    from .embed import Embedder, caption_retrieval, embed_stimuli, zero_shot_attributes

    ec = ctx.config.embed
    stimuli = get_stimuli(ctx)
    embedder = Embedder(ec.model, pretrained=ec.pretrained, device=ec.device,
                        batch_size=ec.batch_size)
    targets = embed_stimuli(stimuli, embedder, tokens=ec.tokens, text=ec.text,
                            cache_dir=ctx.run_dir / "cache" / "embed")
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


@stage("simulate_fmri", requires=("stimuli",),
       enabled=lambda c: c.fmri is not None and c.fmri.source == "simulate")
def stage_simulate_fmri(ctx: RunContext) -> dict[str, Any]:
    """Simulate fMRI subjects on the stimuli and write them as BIDS (+ NSD layout)."""
    from .simulate import simulate_fmri

    sc = ctx.config.fmri.simulate
    sim = simulate_fmri(get_stimuli(ctx), ctx.run_dir / "bids", n_subjects=sc.n_subjects,
                        seed=ctx.seed, snr=sc.snr, tr=sc.tr, **sc.extra)
    return {"metrics": {"fmri": {"simulation": sim.summary()}}, "outputs": ["bids"]}


@stage("load_fmri", enabled=_has_fmri)
def stage_load_fmri(ctx: RunContext) -> dict[str, Any]:
    """Estimate single-trial betas from the BIDS dataset into one TrialSet per subject."""
    from mne_bids import get_entity_vals

    from .io import load_fmri_bids

    fc = ctx.config.fmri
    root = Path(fc.bids_root) if fc.source == "bids" else ctx.run_dir / "bids"
    subjects = fc.subjects or sorted(get_entity_vals(root, "subject",
                                                     ignore_dirs=("derivatives", "sourcedata")))
    if not subjects:
        raise ValueError(f"No subjects (sub-*/ folders) found in the BIDS dataset {root}.")
    per_subject = {}
    for sub in subjects:
        ts = load_fmri_bids(root, sub, method=fc.load.method, mask=fc.load.mask,
                            zscore=None if fc.load.zscore == "none" else fc.load.zscore,
                            **fc.load.extra)
        ts.save(ctx.path("trials", f"sub-{sub}"))
        per_subject[sub] = {"n_trials": ts.n_trials, "n_voxels": ts.n_features,
                            "n_test_stimuli": int(ts.select(split="test").trials["stimulus_id"].nunique())}
    write_json_atomic(ctx.path("trials", "subjects.json"), list(subjects))
    return {"metrics": {"fmri": {"subjects": per_subject}},
            "outputs": ["trials/subjects.json"] + [f"trials/sub-{s}" for s in subjects]}


# --------------------------------------------------------------------------- training
def train_val(ts, seed: int, val: float = 0.1):
    """Split a subject's training trials into train/val by stimulus (never by trial)."""
    from .trialset import assign_splits

    train = ts.select(split="train")
    splits = assign_splits(sorted(set(train.stimulus_ids)), val=val, test=0.0, seed=seed)
    train = train.with_splits(splits)
    return train.select(split="train"), train.select(split="val")


def test_set(ts):
    """A subject's test trials, averaged over repetitions (as NSD's shared images are)."""
    return ts.select(split="test").average_repetitions()


def subsample_stimuli(ts, fraction: float, seed: int):
    """The trials of a random ``fraction`` of a TrialSet's stimuli (at least one)."""
    ids = np.array(sorted(set(ts.stimulus_ids)))
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * len(ids))))
    keep = rng.choice(ids, size=n, replace=False)
    return ts.select(stimulus_ids=list(keep))


def decoder_config(config: PipelineConfig, trainsets: dict[str, Any], embed_dim: int):
    """The DecoderConfig a pipeline config asks for, for these subjects' trial sets."""
    from .models import DecoderConfig

    dc = config.decoder
    return DecoderConfig(
        subjects={s: ts.n_features for s, ts in trainsets.items()},
        adapter=dc.adapter, d_shared=dc.d_shared, n_blocks=dc.n_blocks, dropout=dc.dropout,
        embed_dim=embed_dim, **dc.extra,
    )


def train_config(config: PipelineConfig, **overrides):
    """The TrainConfig a pipeline config asks for (keyword overrides win)."""
    from .train import TrainConfig

    tc = config.train
    kwargs = dict(epochs=tc.epochs, batch_size=tc.batch_size, lr=tc.lr,
                  weight_decay=tc.weight_decay, schedule=tc.schedule, patience=tc.patience,
                  seed=config.seed, **tc.extra)
    kwargs.update(overrides)
    return TrainConfig(**kwargs)


def small_data_config(config: PipelineConfig, n_trials: int):
    """:func:`train_config` for a few hundred trials: at least 30 steps an epoch.

    A few hundred trials give 2-3 batches an epoch; without the floor a new adapter is
    simply under-trained (measured: top-1 0.007 -> 0.04).
    """
    return train_config(config, steps_per_epoch=max(30, n_trials // config.train.batch_size))


@stage("train", requires=("embed", "load_fmri"), enabled=_has_fmri)
def stage_train(ctx: RunContext) -> dict[str, Any]:
    """Train the multi-subject contrastive decoder (adapters + shared encoder)."""
    from .models import BrainDecoder
    from .train import fit
    from .transfer import fit_stimulus_map

    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx)
    pre, _ = split_subjects(ctx)
    trains, vals = {}, {}
    for s in pre:
        trains[s], vals[s] = train_val(trialsets[s], ctx.seed)
    decoder = BrainDecoder(decoder_config(ctx.config, trains, targets.image.shape[1]), seed=ctx.seed)
    result = fit(decoder, list(trains.values()), targets, train_config(ctx.config),
                 valsets=list(vals.values()), out_dir=ctx.run_dir / "train")
    # the map image -> shared space that gives a new subject's adapter its targets
    smap = fit_stimulus_map(result.decoder, list(trains.values()), targets)
    result.decoder.save_pretrained(ctx.run_dir / "model")
    write_json_atomic(ctx.path("train", "history.json"), result.history)
    return {"metrics": {"fmri": {"train": {"epochs_run": result.n_epochs,
                                            "best_epoch": result.best_epoch,
                                            "best_val_top1": result.best_val_top1,
                                            "stopped_early": result.stopped_early,
                                            "stimulus_map": smap}}},
            "outputs": ["model", "train/history.json"]}


@stage("ridge", requires=("embed", "load_fmri"), enabled=_has_fmri)
def stage_ridge(ctx: RunContext) -> dict[str, Any]:
    """Fit the ridge baseline per subject (alpha by CV) and save its test predictions."""
    from .baselines import RidgeDecoder

    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx)
    pre, _ = split_subjects(ctx)
    alphas = {}
    for s in pre:
        train = trialsets[s].select(split="train")
        Y = targets.loc(train.stimulus_ids).image
        # folds by stimulus, so repetitions of an image never sit on both sides of a fold
        ridge = RidgeDecoder().fit(np.asarray(train.data, dtype=np.float32), Y,
                                   groups=train.stimulus_ids)
        test = test_set(trialsets[s])
        pred = ridge.predict(np.asarray(test.data, dtype=np.float32))
        np.save(ctx.path("predictions", f"ridge_sub-{s}.npy"), pred.astype(np.float32))
        alphas[s] = float(np.atleast_1d(ridge.alpha_).mean())
    return {"metrics": {"fmri": {"ridge_alpha": alphas}},
            "outputs": [f"predictions/ridge_sub-{s}.npy" for s in pre]}


# --------------------------------------------------------------------------- evaluation
def pool_over_subjects(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool per-subject retrieval results drawn with the same candidate draws.

    Several draws: the mean over subjects per draw, then mean and 95% normal CI over
    draws (MindEye2's protocol). A single draw (the test set is exactly ``n_candidates``
    images, so every draw would be the same): the pooled top-1 is a proportion over
    ``n_subjects * n_candidates`` identifications, with its binomial normal-approximation
    CI.
    """
    draws = np.mean([r["draws"] for r in results], axis=0)
    mean = float(draws.mean())
    if len(draws) > 1:
        half = 1.96 * float(draws.std(ddof=1)) / np.sqrt(len(draws))
    else:
        n = sum(int(r["n_candidates"]) for r in results)
        half = 1.96 * float(np.sqrt(mean * (1 - mean) / n))
    return {"top1": mean, "ci": [max(0.0, mean - half), min(1.0, mean + half)],
            "draws": draws.tolist(), "chance": results[0]["chance"], "n_subjects": len(results)}


def _retrieval(pred, target, ctx: RunContext, k: int = 1) -> dict[str, Any]:
    from .evaluate import retrieval_accuracy

    ec = ctx.config.evaluate
    n = min(ec.n_candidates, len(target))
    return retrieval_accuracy(pred, target, k=k, n_candidates=n, n_draws=ec.n_draws,
                              seed=ctx.seed, direction="brain->image")


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    return {"top1": r["top1"], "ci": list(r["ci"])}


@stage("new_subject", requires=("train",),
       enabled=lambda c: c.fmri is not None and c.new_subject.enabled)
def stage_new_subject(ctx: RunContext) -> dict[str, Any]:
    """Adapt a held-out subject from a fraction of its trials, against scratch and ridge."""
    from .baselines import RidgeDecoder
    from .models import BrainDecoder
    from .train import adapt_subject, fit, learning_curve
    from .transfer import can_solve_adapter

    ns = ctx.config.new_subject
    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx)
    _, new = split_subjects(ctx)
    if new is None:
        raise ValueError("new_subject needs at least 2 subjects (one is held out), got 1")
    pretrained = BrainDecoder.from_pretrained(ctx.run_dir / "model")
    ts = trialsets[new]
    full_train, full_val = train_val(ts, ctx.seed)
    test = test_set(ts)
    Yt = targets.loc(test.stimulus_ids).image
    Xt = np.asarray(test.data, dtype=np.float32)

    tr10 = subsample_stimuli(full_train, ns.fraction, ctx.seed)
    # gradient-trained models of the small-data regime stop early on a stimulus split of
    # the same 10% (validating on trials outside it would give them more labelled data)
    tr10_fit, tr10_val = train_val(tr10, ctx.seed)
    # adapt_subject's default: the adapter in closed form (see braindecode_kit.transfer)
    closed = can_solve_adapter(pretrained)

    def adapted(fraction: float, init: str = "auto"):
        if fraction >= 1:
            fit_set, val_set = full_train, full_val
        else:
            closed_form = closed and init != "random" and ns.finetune_epochs == 0
            # closed form: all of the 10%; gradient phases: early stopping on a split of it
            fit_set, val_set = (tr10, None) if closed_form else (tr10_fit, tr10_val)
        return adapt_subject(pretrained, fit_set, targets, subject=new, valset=val_set,
                             config=small_data_config(ctx.config, fit_set.n_trials), init=init,
                             finetune_epochs=ns.finetune_epochs)

    out: dict[str, Any] = {}
    dec10 = adapted(ns.fraction)
    out["n_trials_10pct"] = tr10.n_trials
    out["n_trials_full"] = full_train.n_trials
    out["fraction"] = ns.fraction
    out["adapter_init"] = "ridge" if closed else "random"
    preds = {"adapted_10pct": dec10.predict(Xt, subject=new)}
    if closed:
        # ablation: the same frozen encoder, the adapter learned by gradient descent instead
        dec_sgd = adapted(ns.fraction, init="random")
        preds["adapted_sgd_10pct"] = dec_sgd.predict(Xt, subject=new)
    scratch = BrainDecoder(decoder_config(ctx.config, {new: tr10}, Yt.shape[1]), seed=ctx.seed)
    res = fit(scratch, [tr10_fit], targets, small_data_config(ctx.config, tr10_fit.n_trials),
              valsets=[tr10_val])
    preds["scratch_10pct"] = res.decoder.predict(Xt, subject=new)
    ridge = RidgeDecoder().fit(np.asarray(tr10.data, dtype=np.float32),
                               targets.loc(tr10.stimulus_ids).image, groups=tr10.stimulus_ids)
    preds["ridge_10pct"] = ridge.predict(Xt)
    dec_full = adapted(1.0)
    preds["adapted_full"] = dec_full.predict(Xt, subject=new)
    for name, pred in preds.items():
        np.save(ctx.path("predictions", f"new_{name}.npy"), pred.astype(np.float32))
        out[name] = _summary(_retrieval(pred, Yt, ctx))
    out["adapted_10pct_vs_full"] = out["adapted_10pct"]["top1"] / max(out["adapted_full"]["top1"], 1e-9)
    ec = ctx.config.evaluate
    # the 10% and full-data points are the ones above; the curve fits only the others
    extra = [f for f in ns.curve if f not in (ns.fraction, 1.0)]
    curve = [{"fraction": ns.fraction, "n_trials": tr10.n_trials, **out["adapted_10pct"]},
             {"fraction": 1.0, "n_trials": full_train.n_trials, **out["adapted_full"]}]
    if extra:
        frame = learning_curve(pretrained, full_train, targets, fractions=extra, testset=test,
                               config=small_data_config(ctx.config, full_train.n_trials),
                               finetune_epochs=ns.finetune_epochs, subject=new,
                               n_candidates=min(ec.n_candidates, len(Yt)),
                               n_draws=ec.n_draws, seed=ctx.seed)
        curve += [{"fraction": float(r.fraction), "n_trials": int(r.n_trials),
                   "top1": float(r.top1), "ci": [float(c) for c in r.ci]}
                  for r in frame.itertuples()]
    curve.sort(key=lambda c: c["n_trials"])
    out["learning_curve"] = curve
    out["subject"] = new
    return {"metrics": {"fmri": {"new_subject": out}},
            "outputs": [f"predictions/new_{n}.npy" for n in preds]}


@stage("evaluate", requires=("train", "ridge"), enabled=_has_fmri)
def stage_evaluate(ctx: RunContext) -> dict[str, Any]:
    """300-way retrieval on held-out test images: decoder vs ridge vs oracle vs chance."""
    from .models import BrainDecoder

    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx)
    pre, _ = split_subjects(ctx)
    decoder = BrainDecoder.from_pretrained(ctx.run_dir / "model")
    k = ctx.config.evaluate.topk
    per: dict[str, dict[str, list]] = {"decoder": [], "ridge": [], "oracle": []}
    topk: dict[str, list] = {"decoder": [], "ridge": []}
    per_subject: dict[str, Any] = {}
    sim = None
    if ctx.config.fmri.source == "simulate":
        from .simulate.fmri import SimulatedFMRI

        sim = SimulatedFMRI.load(ctx.run_dir / "bids")
    for s in pre:
        test = test_set(trialsets[s])
        Y = targets.loc(test.stimulus_ids).image
        pred_dec = decoder.predict(np.asarray(test.data, dtype=np.float32), subject=s)
        np.save(ctx.path("predictions", f"decoder_sub-{s}.npy"), pred_dec.astype(np.float32))
        pred_ridge = np.load(ctx.run_dir / "predictions" / f"ridge_sub-{s}.npy")
        rd, rr = _retrieval(pred_dec, Y, ctx, k=k), _retrieval(pred_ridge, Y, ctx, k=k)
        per["decoder"].append(rd)
        per["ridge"].append(rr)
        if k > 1:
            topk["decoder"].append({**rd, "draws": rd["topk_draws"]})
            topk["ridge"].append({**rr, "draws": rr["topk_draws"]})
        per_subject[s] = {"decoder": _summary(rd), "ridge": _summary(rr)}
        if sim is not None:
            n = min(ctx.config.evaluate.n_candidates, len(Y))
            ro = sim.oracle_retrieval(s, n_candidates=n, n_draws=ctx.config.evaluate.n_draws,
                                      seed=ctx.seed)
            per["oracle"].append(ro)
            per_subject[s]["oracle"] = _summary(ro)
    fmri: dict[str, Any] = {"per_subject": per_subject}
    for name, results in per.items():
        if results:
            pooled = pool_over_subjects(results)
            fmri[name] = {"top1": pooled["top1"], "ci": pooled["ci"]}
    for name, results in topk.items():
        if not results:
            continue
        pooled = pool_over_subjects(results)
        fmri[name][f"top{k}"] = pooled["top1"]
        fmri[name][f"top{k}_ci"] = pooled["ci"]
    n_cand = min(ctx.config.evaluate.n_candidates, len(Y))
    fmri["chance"] = 1.0 / n_cand
    fmri[f"chance_top{k}"] = k / n_cand
    fmri["n_candidates"] = n_cand
    fmri["n_test"] = len(Y)
    fmri["n_draws"] = len(per["decoder"][0]["draws"])
    fmri["direction"] = "brain->image"
    summary = {
        "decoder_top1": fmri["decoder"]["top1"], "ridge_top1": fmri["ridge"]["top1"],
        "oracle_top1": fmri.get("oracle", {}).get("top1"), "chance": fmri["chance"],
    }
    return {"metrics": {"fmri": fmri, "summary": summary},
            "outputs": [f"predictions/decoder_sub-{s}.npy" for s in pre]}


# --------------------------------------------------------------------------- report
def _retrieval_examples(ctx: RunContext, report, pred: np.ndarray, test_ids: list[str],
                        label: str, n_examples: int, n_show: int) -> None:
    """Rows of [seen image | the decoder's top-n candidates among the test images]."""
    stimuli = get_stimuli(ctx)
    targets = get_targets(ctx)
    cand = targets.loc(test_ids).image
    n_cand = min(ctx.config.evaluate.n_candidates, len(test_ids))
    rng = np.random.default_rng(ctx.seed)
    pool = np.sort(rng.choice(len(test_ids), size=n_cand, replace=False))
    P = pred[pool] / np.linalg.norm(pred[pool], axis=1, keepdims=True)
    C = cand[pool] / np.linalg.norm(cand[pool], axis=1, keepdims=True)
    sims = P @ C.T
    rows, labels = [], []
    for i in range(min(n_examples, len(pool))):
        order = np.argsort(-sims[i])[:n_show]
        seen = test_ids[pool[i]]
        row = [{"image": stimuli.load_image(seen), "label": "seen", "status": "ref"}]
        for rank, j in enumerate(order):
            cid = test_ids[pool[j]]
            row.append({"image": stimuli.load_image(cid), "label": f"#{rank + 1}",
                        "status": "ok" if cid == seen else "bad"})
        rows.append(row)
        caption = stimuli.captions(seen)[0]
        labels.append(caption if len(caption) <= 44 else caption[:42].rsplit(" ", 1)[0] + " …")
    report.add_image_grid(rows, row_labels=labels, scale=2, caption=(
        f"{label}: the seen image (dark frame), then the {n_show} best-ranked images among "
        f"{n_cand} test candidates; green = the seen image, red = another image."))


def _history_figure(history: list[dict[str, Any]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _curve_figure(curve: list[dict[str, Any]], refs: dict[str, float]):
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
    ax.set_ylabel("300-way top-1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@stage("report", requires=("embed",))
def stage_report(ctx: RunContext) -> dict[str, Any]:
    """Write report.html: tables, training curves, learning curve and image grids."""
    from . import __version__
    from .evaluate.report import Report

    m = ctx.metrics
    cfg = ctx.config
    report = Report(f"braindecode_kit — {cfg.name}",
                    f"seed {cfg.seed} · braindecode_kit {__version__} · run folder {ctx.run_dir}")
    fm = m.get("fmri")
    if fm and "decoder" in fm:
        report.add_heading("Decoding the seen image from fMRI (held-out test images)")
        n_c = fm["n_candidates"]
        if fm["n_draws"] > 1:
            how = (f"{fm['n_draws']} random draws of {n_c} candidates among the "
                   f"{fm.get('n_test', n_c)} test images, mean and 95% CI over draws")
        else:
            how = (f"the {n_c} test images are the candidates (a single draw), with the "
                   "binomial 95% CI of the pooled identifications")
        report.add_text(
            f"{n_c}-way retrieval, brain→image (MindEye2's protocol): for each test image's "
            f"brain pattern (averaged over its repetitions), the candidate images are ranked "
            f"by cosine similarity to the predicted CLIP embedding; {how}; pooled over the "
            "pretraining subjects.")
        rows = []
        k = cfg.evaluate.topk
        for name, label in [("decoder", "contrastive decoder (ours)"), ("ridge", "ridge (baseline)"),
                            ("oracle", "oracle (simulator, Bayes-optimal)")]:
            if name in fm:
                r = fm[name]
                rows.append({"model": label, "top-1": r["top1"], "95% CI": tuple(r["ci"]),
                             f"top-{k}": r.get(f"top{k}", "—"),
                             "× chance": f"{r['top1'] / fm['chance']:.0f}×"})
        rows.append({"model": "chance", "top-1": fm["chance"], "95% CI": "—",
                     f"top-{k}": fm.get(f"chance_top{k}", "—"), "× chance": "1×"})
        report.add_table(rows, highlight="contrastive decoder (ours)")
        if "oracle" in fm:
            gap = fm["oracle"]["top1"] - fm["decoder"]["top1"]
            sim = fm.get("simulation", {})
            subs = sim.get("subjects", {}).values()
            n_sub = max(1, len(subs))
            n_img = sum(v.get("n_train", 0) for v in subs) // n_sub
            n_trials = (sum(v.get("n_trials", 0) for v in subs) // n_sub
                        - sim.get("n_test", 0) * sim.get("n_test_reps", 1))
            report.add_text(
                f"The decoder is {gap:.3f} below the oracle. The oracle knows the true encoding "
                "model and noise and identifies from the true single-trial betas, so it is an "
                "upper bound for any decoder that must learn the mapping from a finite "
                f"training set (here about {n_trials} noisy single trials of {n_img} images "
                "per subject) "
                "and works from GLM estimates of the betas. With thousands of visual voxels "
                "at NSD-like SNR the true model leaves almost no identification error, so the "
                "gap is what is not learned from that little data, not what noise hides.",
                note=True)
        per = fm.get("per_subject", {})
        if per:
            report.add_heading("Per subject", level=3)
            report.add_table([
                {"subject": s, **{f"{n} top-1": v[n]["top1"] for n in ("decoder", "ridge", "oracle") if n in v}}
                for s, v in per.items()])
        hist_path = ctx.run_dir / "train" / "history.json"
        if hist_path.exists():
            report.add_heading("Training", level=3)
            report.add_figure(_history_figure(json.loads(hist_path.read_text())),
                              "Training loss and validation retrieval per epoch.")
        ns = fm.get("new_subject")
        if ns:
            report.add_heading(f"A new subject (sub-{ns['subject']}) from little data")
            how = ("solved in closed form: ridge regression from its voxels into the shared "
                   "space, onto the representation the other subjects' brains give each image"
                   if ns.get("adapter_init") == "ridge" else "trained by gradient descent")
            report.add_text(
                f"The shared encoder is trained on the other subjects; the new subject's adapter "
                f"is {how}, with the encoder frozen, from {ns['fraction']:.0%} of its training "
                f"images ({ns['n_trials_10pct']} trials). It is compared with a decoder trained "
                f"from scratch and with ridge on the same trials, and with adaptation on all "
                f"{ns['n_trials_full']} of its training trials.")
            pct = f"{ns['fraction']:.0%}"
            labels = {"adapted_10pct": f"adapted, {pct} (shared encoder frozen)",
                      "adapted_sgd_10pct": f"adapted by gradient descent, same {pct}",
                      "scratch_10pct": f"decoder from scratch, same {pct}",
                      "ridge_10pct": f"ridge, same {pct}",
                      "adapted_full": "adapted, all training trials"}
            report.add_table([
                {"model": lab, "top-1": ns[n]["top1"], "95% CI": tuple(ns[n]["ci"])}
                for n, lab in labels.items() if n in ns], highlight=labels["adapted_10pct"])
            report.add_text(f"Adapted from {ns['fraction']:.0%} reaches "
                            f"{ns['adapted_10pct_vs_full']:.2f} of the full-data adaptation.")
            if ns.get("learning_curve"):
                report.add_figure(_curve_figure(ns["learning_curve"], {
                    "scratch, same 10%": ns["scratch_10pct"]["top1"],
                    "ridge, same 10%": ns["ridge_10pct"]["top1"]}),
                    "Learning curve of the new subject (accuracy vs its training trials).")
        pre, _ = split_subjects(ctx)
        s0 = pre[0]
        test = test_set(get_trialsets(ctx)[s0])
        ids = list(test.stimulus_ids)
        for name, label in [("decoder", "contrastive decoder"), ("ridge", "ridge")]:
            report.add_heading(f"Example retrievals: {label} (sub-{s0})", level=3)
            pred = np.load(ctx.run_dir / "predictions" / f"{name}_sub-{s0}.npy")
            _retrieval_examples(ctx, report, pred, ids, label, cfg.report.n_examples,
                                cfg.report.n_candidates_shown)
    clip = m.get("builtin_clip") or m.get("clip")
    if clip:
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
                        f"(seed {cfg.seed}), none used to train the embedder.")
        _caption_grid(ctx, report)
    report.save(ctx.run_dir / "report.html")
    return {"outputs": ["report.html"]}


def _caption_grid(ctx: RunContext, report, n: int = 12) -> None:
    """Images with the caption the embedder matches best among all the world's captions."""
    from .embed import Embedder

    stimuli = get_stimuli(ctx)
    targets = get_targets(ctx)
    ids = stimuli.ids[:n]
    captions = sorted({c for i in stimuli.ids[:300] for c in stimuli.captions(i)[:1]})
    ec = ctx.config.embed
    emb = Embedder(ec.model, pretrained=ec.pretrained, device=ec.device)
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
