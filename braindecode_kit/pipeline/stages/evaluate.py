"""The ``evaluate`` stage: N-way retrieval of the held-out test images from each
pretraining subject's brain patterns — decoder vs ridge vs the simulator's oracle vs
chance — pooled over subjects (MindEye2's protocol).

Its report section is the headline: the retrieval table, the gap to the oracle, the
per-subject table and example retrievals.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..._utils import save_npy_atomic
from .._base import RunContext, stage
from ._common import (
    KIND_LABELS,
    fraction_label,
    get_oracle,
    get_stimuli,
    get_targets,
    get_trialsets,
    kind_path,
    pool_over_subjects,
    retrieval,
    retrieval_summary,
    subjects_of,
    test_set,
)

#: what each anchored route is chosen for: retrieval by rank, generation (captions,
#: reconstructions) by cosine to the true embedding (as MindEye2 retrieves from its
#: contrastive output and generates from another)
ANCHOR_CRITERIA = {"decoder": "rank", "decoder_generation": "cosine"}
#: the decoder head each route reads: the generation route takes the regression head
#: when the decoder has one (``decoder.generation_head``), else the contrastive one
ROUTE_HEADS = {"decoder": "image", "decoder_generation": "generation"}


def route_head(decoder, route: str) -> str:
    """The head of ``decoder`` that ``route`` reads (see :data:`ROUTE_HEADS`)."""
    head = ROUTE_HEADS[route]
    return head if head in decoder.head_names else "image"


def _choose_anchors(ctx: RunContext, kind: str, ts, decoder, subject: str, test_ids) -> dict:
    """The weights of the network against the subject's ridge for each route, on the
    validation stimuli the train stage held out (the same split: never a test stimulus,
    never trained on by the network; they did pick its best epoch, which favours the
    network, not the ridge)."""
    from ...baselines import RidgeDecoder
    from ...estimators import MIN_ANCHOR_STIMULI, choose_anchor_weight
    from ...splits import split_train_val

    targets = get_targets(ctx)
    trains, vals = split_train_val(ts, seed=ctx.seed)
    vals = vals.average_repetitions()
    leak = set(vals.stimulus_ids) & set(test_ids)
    if leak:  # cannot happen with split_train_val; refuse rather than tune on test images
        raise RuntimeError(f"sub-{subject}: the anchor's validation stimuli include test "
                           f"stimuli {sorted(leak)[:5]}.")
    if vals.n_trials < MIN_ANCHOR_STIMULI:
        return {route: {"weight": float("inf"), "criterion": c, "scores": {},
                        "head": route_head(decoder, route), "n_val_stimuli": vals.n_trials,
                        "skipped": True}
                for route, c in ANCHOR_CRITERIA.items()}
    retrieval_ridge = None
    if ctx.config.evaluate.anchor_ridge == "retrieval":
        from ...estimators import ANCHOR_RIDGE

        # retrieval is anchored to a ridge chosen for retrieval (alpha and the whitening
        # of its predictions by cross-validated rank on these training stimuli)
        retrieval_ridge = RidgeDecoder(**ANCHOR_RIDGE).fit(
            np.asarray(trains.data, dtype=np.float32), targets.loc(trains.stimulus_ids).image,
            groups=trains.stimulus_ids)
    alpha = ((ctx.metrics.get(kind) or {}).get("ridge_alpha") or {}).get(subject)
    # the ridge stage's alpha, refitted without the validation stimuli
    ridge = RidgeDecoder(alphas=None if alpha is None else [alpha],
                         cv=5 if alpha is None else 2).fit(
        np.asarray(trains.data, dtype=np.float32), targets.loc(trains.stimulus_ids).image,
        groups=trains.stimulus_ids)
    x_val = np.asarray(vals.data, dtype=np.float32)
    r_val = ridge.predict(x_val)
    truth = targets.loc(vals.stimulus_ids).image
    heads = {route: route_head(decoder, route) for route in ANCHOR_CRITERIA}
    d_val = {h: decoder.predict(x_val, subject=subject, head=h) for h in set(heads.values())}
    linear_val = {route: r_val for route in ANCHOR_CRITERIA}
    if retrieval_ridge is not None:
        linear_val["decoder"] = retrieval_ridge.predict(x_val)
    out = {}
    for route, criterion in ANCHOR_CRITERIA.items():
        head = heads[route]
        weight, scores = choose_anchor_weight(linear_val[route], d_val[head], truth,
                                              criterion=criterion)
        out[route] = {"weight": weight, "criterion": criterion, "scores": scores,
                      "head": head, "n_val_stimuli": vals.n_trials, "skipped": False,
                      "ridge": "mse"}
    if retrieval_ridge is not None:
        out["decoder"].update(ridge="retrieval", retrieval_ridge={
            "alpha": float(retrieval_ridge.alpha_), "whiten": retrieval_ridge.whiten_})
    return out


def _retrieval_ridge_predictions(ctx: RunContext, ts, x_test: np.ndarray,
                                 choice: dict) -> np.ndarray:
    """The retrieval ridge with the ``choice`` (alpha, whitening) its cross-validation made
    on the anchor's training stimuli, refitted on every training trial (as the ridge stage
    fits its own), and its predictions of the test trials."""
    from ...baselines import RidgeDecoder

    targets = get_targets(ctx)
    train = ts.select(split="train")
    ridge = RidgeDecoder(alphas=[choice["alpha"]], whiten=choice["whiten"], cv=2).fit(
        np.asarray(train.data, dtype=np.float32), targets.loc(train.stimulus_ids).image,
        groups=train.stimulus_ids)
    return ridge.predict(x_test)


def _evaluate(ctx: RunContext, kind: str) -> tuple[dict[str, Any], list[str]]:
    from ...estimators import blend_predictions
    from ...evaluate.retrieval import row_cosine
    from ...models import BrainDecoder

    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx, kind)
    pre, _ = subjects_of(ctx, kind)
    decoder = BrainDecoder.from_pretrained(ctx.run_dir / kind_path(kind, "model"))
    k = ctx.config.evaluate.topk
    anchored = ctx.config.evaluate.ridge_anchor
    per: dict[str, list] = {"decoder": [], "ridge": [], "oracle": []}
    topk: dict[str, list] = {"decoder": [], "ridge": []}
    if anchored:
        per["network"], topk["network"] = [], []
        per["linear_anchor"], topk["linear_anchor"] = [], []
    anchors: dict[str, Any] = {}
    gen_head = route_head(decoder, "decoder_generation")
    per_subject: dict[str, Any] = {}
    sim = get_oracle(ctx, kind)
    written = []
    for s in pre:
        test = test_set(trialsets[s])
        Y = targets.loc(test.stimulus_ids).image
        x_test = np.asarray(test.data, dtype=np.float32)
        pred_net = decoder.predict(x_test, subject=s)
        pred_ridge = np.load(ctx.run_dir / kind_path(kind, "predictions", f"ridge_sub-{s}.npy"))
        preds = {"decoder": pred_net, "ridge": pred_ridge}
        per_subject[s] = {}
        if anchored:
            anchors[s] = _choose_anchors(ctx, kind, trialsets[s], decoder, s,
                                         list(test.stimulus_ids))
            linear = pred_ridge
            if anchors[s]["decoder"].get("ridge") == "retrieval":
                linear = _retrieval_ridge_predictions(ctx, trialsets[s], x_test,
                                                      anchors[s]["decoder"]["retrieval_ridge"])
                preds["linear_anchor"] = linear
            preds["decoder"] = blend_predictions(linear, pred_net,
                                                 anchors[s]["decoder"]["weight"])
            preds["network"] = pred_net
            # the generation route (captions, reconstructions): saved, not a retrieval row
            pred_gen = (pred_net if gen_head == "image" else
                        decoder.predict(x_test, subject=s, head=gen_head))
            gen = blend_predictions(pred_ridge, pred_gen,
                                    anchors[s]["decoder_generation"]["weight"])
            routes = [("decoder_generation", gen)]
            if gen_head != "image":  # the regression head's own output, saved beside
                routes.append(("network_generation", pred_gen))
            for name, arr in routes:
                path = kind_path(kind, "predictions", f"{name}_sub-{s}.npy")
                save_npy_atomic(ctx.path(path), arr.astype(np.float32))
                written.append(path)
            # how close each route lies to the true embeddings (what generation needs)
            per_subject[s]["cosine"] = {
                name: float(np.mean(row_cosine(p, Y))) for name, p in
                [*routes, ("network", pred_net), ("ridge", pred_ridge)]}
        for name, pred in preds.items():
            if name != "ridge":
                path = kind_path(kind, "predictions", f"{name}_sub-{s}.npy")
                save_npy_atomic(ctx.path(path), pred.astype(np.float32))
                written.append(path)
            r = retrieval(pred, Y, ctx, k=k)
            per[name].append(r)
            if k > 1:
                topk[name].append({**r, "draws": r["topk_draws"]})
            per_subject[s][name] = retrieval_summary(r)
        if sim is not None:
            n = min(ctx.config.evaluate.n_candidates, len(Y))
            ro = sim.oracle_retrieval(s, n_candidates=n, n_draws=ctx.config.evaluate.n_draws,
                                      seed=ctx.seed)
            per["oracle"].append(ro)
            per_subject[s]["oracle"] = retrieval_summary(ro)
            if k > 1 and "k" in inspect.signature(sim.oracle_retrieval).parameters:
                # the oracle's top-k is its own run (its "top1" is the top-k hit rate)
                topk.setdefault("oracle", []).append(sim.oracle_retrieval(
                    s, n_candidates=n, n_draws=ctx.config.evaluate.n_draws, seed=ctx.seed,
                    k=k))
    out: dict[str, Any] = {"per_subject": per_subject}
    if anchored:
        out["anchor"] = anchors
        out["cosine"] = {name: float(np.mean([per_subject[s]["cosine"][name] for s in pre]))
                         for name in per_subject[pre[0]]["cosine"]}
    for name, results in per.items():
        if results:
            pooled = pool_over_subjects(results)
            out[name] = {"top1": pooled["top1"], "ci": pooled["ci"]}
    for name, results in topk.items():
        if not results:
            continue
        pooled = pool_over_subjects(results)
        out[name][f"top{k}"] = pooled["top1"]
        out[name][f"top{k}_ci"] = pooled["ci"]
    n_cand = min(ctx.config.evaluate.n_candidates, len(Y))
    out["chance"] = 1.0 / n_cand
    out[f"chance_top{k}"] = k / n_cand
    out["n_candidates"] = n_cand
    out["n_test"] = len(Y)
    out["n_draws"] = len(per["decoder"][0]["draws"])
    out["direction"] = "brain->image"
    return out, written


# --------------------------------------------------------------------------- report
def report_evaluate(ctx: RunContext, report) -> None:
    """The retrieval results of each kind, with example retrievals (several kinds: a
    summary table kind x model first)."""
    done = [k for k in ctx.kinds if "decoder" in (ctx.metrics.get(k) or {})]
    if len(done) > 1:
        _summary_table(ctx, report, done)
    for kind in ctx.kinds:
        fm = ctx.metrics.get(kind) or {}
        if "decoder" in fm:
            _report_kind(ctx, report, kind, fm)


def _summary_table(ctx: RunContext, report, kinds: list[str]) -> None:
    """One row per recording kind and model: top-1 and top-k on held-out test images."""
    k = ctx.config.evaluate.topk
    report.add_heading("Summary: the recording kinds side by side")
    rows = []
    for kind in kinds:
        fm = ctx.metrics[kind]
        ns = fm.get("new_subject") or {}
        suffix = f"_{fraction_label(ns['fraction'])}" if ns else ""
        for name, label in [("decoder", "decoder (ours)"), ("ridge", "ridge"),
                            ("oracle", "oracle"), ("chance", "chance")]:
            if name == "chance":
                r = {"top1": fm["chance"], f"top{k}": fm.get(f"chance_top{k}", "—")}
            elif name in fm:
                r = fm[name]
            else:
                continue
            rows.append({"kind": KIND_LABELS[kind], "model": label, "N-way": fm["n_candidates"],
                         "top-1": r["top1"], f"top-{k}": r.get(f"top{k}", "—")})
        for name, label in [(f"adapted{suffix}", "new subject, adapted"),
                            (f"scratch{suffix}", "new subject, scratch"),
                            (f"ridge{suffix}", "new subject, ridge")]:
            if name in ns:
                pct = f" ({ns['fraction']:.0%} of its trials)"
                rows.append({"kind": KIND_LABELS[kind], "model": label + pct,
                             "N-way": fm["n_candidates"], "top-1": ns[name]["top1"],
                             f"top-{k}": ns[name].get(f"top{k}", "—")})
    report.add_text("Brain→image retrieval of held-out test images (repetitions averaged), "
                    "pooled over each kind's pretraining subjects; the new subject's rows "
                    "are its own test images.")
    report.add_table(rows)


def _report_kind(ctx: RunContext, report, kind: str, fm: dict[str, Any]) -> None:
    cfg = ctx.config
    report.add_heading(f"Decoding the seen image from {KIND_LABELS[kind]} "
                       "(held-out test images)")
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
    for name, label in [("decoder", "contrastive decoder (ours)"),
                        ("network", "its network alone (before the ridge anchor)"),
                        ("linear_anchor", "its linear anchor alone (ridge chosen for "
                                          "retrieval, whitened)"),
                        ("ridge", "ridge (baseline)"),
                        ("oracle", "oracle (simulator, Bayes-optimal)")]:
        if name in fm:
            r = fm[name]
            rows.append({"model": label, "top-1": r["top1"], "95% CI": tuple(r["ci"]),
                         f"top-{k}": r.get(f"top{k}", "—"),
                         "× chance": f"{r['top1'] / fm['chance']:.0f}×"})
    rows.append({"model": "chance", "top-1": fm["chance"], "95% CI": "—",
                 f"top-{k}": fm.get(f"chance_top{k}", "—"), "× chance": "1×"})
    report.add_table(rows, highlight="contrastive decoder (ours)")
    anchors = fm.get("anchor") or {}
    if anchors:
        retr = {s: a["decoder"]["retrieval_ridge"] for s, a in anchors.items()
                if a["decoder"].get("retrieval_ridge")}
        report.add_text(
            "The decoder's prediction is its network's anchored to the subject's ridge: "
            "unit(ridge) + w unit(network), w chosen per subject on the validation stimuli "
            "the training held out (0: the ridge alone, inf: the network alone). "
            + ("For retrieval the ridge is one chosen for retrieval (its alpha and the "
               "whitening of its predictions by the cross-validated rank of the true "
               "stimulus among the training stimuli: "
               + ", ".join(f"sub-{s} alpha {c['alpha']:g}, whitening "
                           f"{'none' if c['whiten'] is None else c['whiten']}"
                           for s, c in retr.items())
               + "), not the baseline's squared-error ridge; it is scored alone above. "
               if retr else "")
            + "The weights, for retrieval by the rank of the true stimulus: "
            + ", ".join(f"sub-{s} w = {a['decoder']['weight']:g}" for s, a in anchors.items())
            + "; for captions and reconstructions by the cosine to the true embedding: "
            + ", ".join(f"sub-{s} w = {a['decoder_generation']['weight']:g}"
                        for s, a in anchors.items()) + "."
            + (" The generation route reads the network's generation head (trained by "
               "regression onto the CLIP embeddings next to the contrastive head), not the "
               "contrastive output." if any(a["decoder_generation"].get("head") == "generation"
                                             for a in anchors.values()) else ""),
            note=True)
        cos = fm.get("cosine") or {}
        if cos:
            labels = {"decoder_generation": "decoder, generation route (ours)",
                      "network_generation": "its network's generation output alone",
                      "network": "its network's contrastive output", "ridge": "ridge"}
            report.add_text("How close each route's predicted embeddings lie to the true ones "
                            "(mean cosine over the test images; what captions and "
                            "reconstructions need, where retrieval needs only the ranking):")
            report.add_table([{"route": labels.get(k, k), "cosine to the true embedding": v}
                              for k, v in cos.items()])
    if "oracle" in fm and kind != "fmri":
        gap = fm["oracle"]["top1"] - fm["decoder"]["top1"]
        report.add_text(
            f"The decoder is {gap:.3f} below the oracle (top-1). The oracle knows the true "
            "sources, their responses and the noise covariance and identifies each test "
            "image's repetition average by its nearest noise-free template, so it bounds "
            "what a decoder learned from the training trials can reach.", note=True)
    elif "oracle" in fm:
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
            {"subject": s, **{f"{n} top-1": v[n]["top1"] for n in ("decoder", "ridge", "oracle")
                              if n in v}}
            for s, v in per.items()])
    pre, _ = subjects_of(ctx, kind)
    s0 = pre[0]
    test = test_set(get_trialsets(ctx, kind)[s0])
    ids = list(test.stimulus_ids)
    for name, label in [("decoder", "contrastive decoder"), ("ridge", "ridge")]:
        report.add_heading(f"Example retrievals: {label} (sub-{s0})", level=3)
        pred = np.load(ctx.run_dir / kind_path(kind, "predictions", f"{name}_sub-{s0}.npy"))
        _retrieval_examples(ctx, report, pred, ids, label, cfg.report.n_examples,
                            cfg.report.n_candidates_shown)


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


@stage("evaluate", requires=("train", "ridge"), enabled=lambda c: bool(c.kinds), priority=70,
       report_order=10, report=report_evaluate)
def stage_evaluate(ctx: RunContext) -> dict[str, Any]:
    """N-way retrieval on held-out test images: decoder vs ridge vs oracle vs chance."""
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    summary: dict[str, Any] | None = None
    for kind in ctx.kinds:
        metrics[kind], written = _evaluate(ctx, kind)
        outputs += written
        if summary is None:  # the first kind's headline numbers
            m = metrics[kind]
            summary = {"decoder_top1": m["decoder"]["top1"], "ridge_top1": m["ridge"]["top1"],
                       "oracle_top1": m.get("oracle", {}).get("top1"), "chance": m["chance"]}
    if summary is not None:
        metrics["summary"] = summary
    return {"metrics": metrics, "outputs": outputs}
