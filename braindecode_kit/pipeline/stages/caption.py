"""The ``caption`` stage: captions of the held-out test images from decoded brain
embeddings, from ridge-decoded ones and from the true embeddings (the ceiling), scored
against the images' reference captions, with chance (captions of other images); and, on
simulated data, captions of what voxel groups prefer against the simulator's truth.

Per recording kind it writes ``captions/test_captions.csv`` (one row per subject and test
image), ``captions/selectivity_sub-XX.csv`` and ``captions/selectivity_sub-XX_shape.nii.gz``
(per-voxel: 1 the voxel's caption names its true preferred shape, 0 not, -1 not scored),
and ``metrics[<kind>]["caption"]``. Metrics are computed per subject against the same
references (CIDEr-D's idf depends on the scored corpus), then averaged over subjects; CIs
are percentile bootstraps over test stimuli of the per-stimulus scores averaged over
subjects (a 0/1 reading at its bound, e.g. every image's shape named by every subject:
the Wilson interval over the images: ``evaluate.caption_metrics.mean_ci``), and
``decoder_minus_ridge`` is the paired bootstrap of the difference.
"""

from __future__ import annotations

import html
import time
from typing import Any

import numpy as np

from ..._logging import logger
from ...evaluate.caption_metrics import ALL_METRICS
from .._base import RunContext, stage
from ._common import (
    KIND_LABELS,
    CachedEmbedder,
    generation_predictions,
    get_oracle,
    get_stimuli,
    get_targets,
    get_trialsets,
    kind_path,
    subjects_of,
    test_set,
)

#: the routes of the caption table, in order: name -> label
ROUTES = {"decoder": "decoder, generation route (ours)", "ridge": "ridge (baseline)",
          "ceiling": "true embedding (ceiling)", "chance": "chance (another image's caption)"}
#: the metrics with bootstrap CIs in metrics.json: those whose corpus score is the mean of
#: per-image scores (corpus BLEU is not, so it has none)
CI_METRICS = ("shape_named", "colour_named", "clip_s", "refclip_s", "cider_d", "rouge_l",
              "text_sim")
#: every caption metric (what ``caption.metrics: null`` means)
ALL = ALL_METRICS
#: the 0/1 readings among them (is the attribute named in the caption)
READINGS = ("shape_named", "colour_named")


def _captioner(ctx: RunContext, train_ids: list[str]):
    from ...caption import Captioner

    cc = ctx.config.caption
    kwargs = cc.kwargs(Captioner)
    if cc.backend == "bank":
        stimuli = get_stimuli(ctx)
        kwargs["bank"] = [c for s in train_ids for c in stimuli.captions(s)]
        kwargs["embedder"] = _embedder(ctx)
    cap = Captioner(**kwargs, seed=ctx.seed)
    if cc.backend == "git" and cc.token_map is None:  # fit the map on training stimuli
        from ...caption.git import fit_token_map

        ids = train_ids[:2000]
        fit_token_map(cap, get_targets(ctx).loc(ids).image, get_stimuli(ctx).subset(ids),
                      out=ctx.path("captions", "git_token_map", "x").parent)
    return cap


def _embedder(ctx: RunContext):
    from ...embed import Embedder

    ec = ctx.config.embed
    return ctx.cached("caption/embedder", lambda: CachedEmbedder(Embedder(
        ec.model, pretrained=ec.pretrained, device=ec.device)))


def _named(captions: list[str], truth) -> dict[str, np.ndarray]:
    from ...caption import caption_attributes

    said = [caption_attributes(c) for c in captions]
    return {f"{a}_named": np.array([s[a] == t for s, t in zip(said, truth[a])], float)
            for a in ("shape", "colour")}


def _score(ctx: RunContext, captions: list[str], refs, images: np.ndarray, truth, tokens
           ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Mean metrics and per-item scores of one caption set (n-gram metrics on the
    pre-tokenised texts ``tokens``: raw text -> tokens)."""
    from ...evaluate.caption_metrics import caption_metrics

    cc = ctx.config.caption
    kw = cc.kwargs(caption_metrics)
    kw.pop("tokenizer")
    ngram = [m for m in (kw.pop("metrics") or ALL) if m not in ("clip_s", "refclip_s",
                                                                "text_sim", "sentence_sim")]
    clip = [m for m in (cc.metrics or ALL) if m not in ngram]
    m = caption_metrics([tokens[c] for c in captions], [[tokens[r] for r in rs] for rs in refs],
                        metrics=ngram, tokenizer="none", per_item=True, **kw)
    items = {k: np.asarray(v, float) for k, v in m.pop("per_item").items()}
    if clip:
        mc = caption_metrics(captions, refs, image_embeddings=images, embedder=_embedder(ctx),
                             metrics=clip, per_item=True, **kw)
        items.update({k: np.asarray(v, float) for k, v in mc.pop("per_item").items()})
        m.update({k: v for k, v in mc.items() if k in clip})
    items.update(_named(captions, truth))
    for k in ("shape_named", "colour_named"):
        m[k] = float(items[k].mean())
    return m, items


def _caption_kind(ctx: RunContext, kind: str) -> tuple[dict[str, Any], list[str]]:
    import pandas as pd

    from ...evaluate.caption_metrics import bootstrap_ci, mean_ci

    t0 = time.perf_counter()
    cc = ctx.config.caption
    stimuli = get_stimuli(ctx)
    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx, kind)
    pre, _ = subjects_of(ctx, kind)
    test_ids = list(test_set(trialsets[pre[0]]).stimulus_ids)
    train_ids = sorted({s for p in pre for s in trialsets[p].select(split="train").stimulus_ids})
    captioner = _captioner(ctx, train_ids)
    true = targets.loc(test_ids).image
    refs = [stimuli.captions(s) for s in test_ids]
    attrs = stimuli.attributes.loc[test_ids]
    truth = {"shape": attrs["shape"].astype(str).tolist(),
             "colour": attrs["colour"].astype(str).tolist()}
    rng = np.random.default_rng(ctx.seed)
    # chance: each image gets the (ceiling) caption of another test image (a derangement)
    perm = (np.arange(len(test_ids)) + rng.integers(1, len(test_ids))) % len(test_ids)
    ceiling = captioner.generate(true)
    captions = {"ceiling": {"": ceiling}, "chance": {"": [ceiling[j] for j in perm]},
                "decoder": {}, "ridge": {}}
    for s in pre:
        test = test_set(trialsets[s])
        if list(test.stimulus_ids) != test_ids:
            raise ValueError(f"sub-{s}'s test images differ from sub-{pre[0]}'s; the caption "
                             "stage needs the shared test images of every subject.")
        for route in ("decoder", "ridge"):
            pred = (generation_predictions(ctx, kind, s) if route == "decoder" else
                    np.load(ctx.run_dir / kind_path(kind, "predictions", f"ridge_sub-{s}.npy")))
            captions[route][s] = captioner.generate(pred)
    logger.info("caption: %d captions in %.1f s", sum(len(c) for p in captions.values()
                                                      for c in p.values()),
                time.perf_counter() - t0)
    from ...evaluate.caption_metrics import tokenize_captions

    texts = sorted({t for p in captions.values() for c in p.values() for t in c}
                   | {r for rs in refs for r in rs})
    tokenised, how = tokenize_captions(texts, cc.tokenizer)
    tokens = dict(zip(texts, tokenised))
    metrics: dict[str, Any] = {"tokenizer": how}
    items: dict[str, dict[str, np.ndarray]] = {}
    for route, per_subject in captions.items():
        ms, its = [], []
        for caps in per_subject.values():
            m, it = _score(ctx, caps, refs, true, truth, tokens)
            ms.append(m)
            its.append(it)
        keys = [k for k, v in ms[0].items() if isinstance(v, float)]
        mean = {k: float(np.mean([m[k] for m in ms])) for k in keys}
        items[route] = {k: np.mean([it[k] for it in its], axis=0) for k in its[0]}
        for k in CI_METRICS:
            if k in items[route]:
                mean[f"{k}_ci"] = mean_ci(items[route][k], cc.n_boot, seed=ctx.seed,
                                          binary=k in READINGS)
        unavailable = {k: v for k, v in ms[0].items() if isinstance(v, dict)}
        metrics[route] = {**mean, **({"unavailable": unavailable} if unavailable else {})}
    diff = {}
    for k in CI_METRICS:
        if k in items["decoder"] and k in items["ridge"]:
            d = items["decoder"][k] - items["ridge"][k]
            diff[k] = {"mean": float(d.mean()), "ci": bootstrap_ci(d, cc.n_boot, seed=ctx.seed)}
    metrics["decoder_minus_ridge"] = diff
    ratio = {}
    for k, v in metrics["decoder"].items():
        c = metrics["ceiling"].get(k)
        if isinstance(v, float) and isinstance(c, float) and c and not k.endswith("_ci"):
            ratio[k] = v / c
    metrics["brain_over_captioner"] = ratio  # MindEye2's ratio: brain vs image captioner
    metrics["shape_named_over_chance"] = (
        metrics["decoder"]["shape_named"] / max(metrics["chance"]["shape_named"], 1e-12))
    metrics.update(n_test=len(test_ids), n_subjects=len(pre), n_references=len(refs[0]),
                   captioner=captioner.settings())
    # one row per subject and test image
    rows = []
    for s in pre:
        for i, sid in enumerate(test_ids):
            rows.append({"subject": s, "stimulus_id": sid, "reference": refs[i][0],
                         "decoder": captions["decoder"][s][i], "ridge": captions["ridge"][s][i],
                         "ceiling": ceiling[i], "chance": captions["chance"][""][i]})
    out = kind_path(kind, "captions", "test_captions.csv")
    pd.DataFrame(rows).to_csv(ctx.path(out), index=False)
    written = [out]
    sim = get_oracle(ctx, kind) if cc.selectivity else None
    # voxel selectivity needs voxel geometry and the simulator's per-voxel truth (fMRI)
    voxels = hasattr(trialsets[pre[0]].info, "ijk") and hasattr(sim, "true_betas") \
        and hasattr(sim, "encoding_model")
    if sim is not None and voxels:
        sel, files = _selectivity(ctx, kind, sim, pre[0], captioner)
        metrics["selectivity"] = sel
        written += files
    logger.info("caption: %s done in %.1f s", kind, time.perf_counter() - t0)
    return metrics, written


def _selectivity(ctx: RunContext, kind: str, sim, subject: str, captioner
                 ) -> tuple[dict[str, Any], list[str]]:
    import nibabel as nib

    from ...caption import simulated_selectivity

    res = simulated_selectivity(sim, subject, get_trialsets(ctx, kind)[subject],
                                get_targets(ctx), captioner, stimuli=get_stimuli(ctx),
                                attribute="shape", seed=ctx.seed,
                                max_voxels=ctx.config.caption.max_voxels)
    table = kind_path(kind, "captions", f"selectivity_sub-{subject}.csv")
    res["groups"].to_csv(ctx.path(table), index=False)
    files = [table]
    if res["nifti"] is not None:
        img = kind_path(kind, "captions", f"selectivity_sub-{subject}_shape.nii.gz")
        nib.save(res["nifti"], str(ctx.path(img)))
        files.append(img)
    keep = ("attribute", "accuracy", "chance", "voxel_accuracy", "voxel_chance",
            "n_voxels_scored", "alpha", "median_r2")
    # NaN (nothing scored) as None: JSON-safe, and equal to itself in a resumed run
    out = {k: None if isinstance(res[k], float) and np.isnan(res[k]) else res[k]
           for k in keep}
    out["subject"] = subject
    out["groups"] = res["groups"].to_dict(orient="records")
    return out, files


# --------------------------------------------------------------------------- report
def report_caption(ctx: RunContext, report) -> None:
    """Per kind: the caption-metric table (decoder, ridge, ceiling, chance), examples, and
    the selectivity captions."""
    for kind in ctx.kinds:
        cm = (ctx.metrics.get(kind) or {}).get("caption")
        if cm:
            _report_kind(ctx, report, kind, cm)


def _cell(m: dict[str, Any], k: str) -> Any:
    v = m.get(k)
    if v is None:
        return "—"
    ci = m.get(f"{k}_ci")
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else v


def _report_kind(ctx: RunContext, report, kind: str, cm: dict[str, Any]) -> None:
    import pandas as pd

    from ...evaluate.report import image_to_data_uri

    label = KIND_LABELS[kind]
    report.add_heading(f"Captions from decoded {label} embeddings (held-out test images)")
    cap = cm["captioner"]
    report.add_text(
        "Each test image's predicted CLIP embedding (the decoder's generation route: its "
        "network anchored on the subject's ridge, the weight chosen on validation stimuli "
        "by cosine to the true embedding; see the retrieval section) is captioned by the "
        f"{cap['backend']} "
        f"captioner ({'greedy' if cap['num_beams'] == 1 else str(cap['num_beams']) + ' beams'});"
        " the same captioner on the image's true CLIP "
        "embedding is the ceiling, and the caption of another test image is chance. Scores "
        f"against the image's {cm['n_references']} reference captions ({cm['tokenizer']} tokenizer), per subject, averaged over the "
        f"{cm['n_subjects']} pretraining subjects; 95% bootstrap CIs over the {cm['n_test']} "
        "test images. 'shape/colour named': the caption's first shape/colour word is the "
        "largest object's.")
    cols = ["shape_named", "colour_named", "bleu4", "cider_d", "rouge_l", "meteor", "clip_s",
            "refclip_s", "text_sim"]
    shown = [c for c in cols if any(isinstance(cm[r].get(c), float) for r in ROUTES)]
    rows = []
    for r, lab in ROUTES.items():
        rows.append({"captions from": lab, **{c: _cell(cm[r], c) for c in shown}})
    report.add_table(rows, highlight=ROUTES["decoder"])
    diff = cm.get("decoder_minus_ridge", {})
    if diff:
        parts = [f"{k} {v['mean']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]"
                 for k, v in diff.items()]
        ratio = cm.get("brain_over_captioner", {})
        report.add_text(
            "Decoder minus ridge (paired bootstrap over test images): " + "; ".join(parts)
            + ". MindEye2's ratio brain/image-captioner: "
            + ", ".join(f"{k} {ratio[k]:.2f}" for k in ("clip_s", "cider_d", "bleu4")
                        if k in ratio) + ".", note=True)
    unavailable = cm["decoder"].get("unavailable", {})
    if unavailable:
        report.add_text("Not computed: " + "; ".join(
            f"{k} ({v['reason']})" for k, v in unavailable.items()), note=True)
    # examples
    df = pd.read_csv(ctx.run_dir / kind_path(kind, "captions", "test_captions.csv"),
                     dtype={"subject": str})
    s0 = str(df["subject"].iloc[0])
    df = df[df["subject"].astype(str) == s0].head(ctx.config.caption.n_examples)
    stimuli = get_stimuli(ctx)
    head = "".join(f"<th>{h}</th>" for h in ("seen", "reference", "decoded (ours)",
                                             "ridge-decoded", "true embedding (ceiling)"))
    body = []
    for _, row in df.iterrows():
        uri = image_to_data_uri(stimuli.load_image(row["stimulus_id"]), scale=2)
        cells = "".join(f"<td>{html.escape(str(row[c]))}</td>"
                        for c in ("reference", "decoder", "ridge", "ceiling"))
        body.append(f"<tr><td><img src='{uri}' alt='{html.escape(row['stimulus_id'])}'></td>"
                    f"{cells}</tr>")
    report.add_heading(f"Example captions (sub-{s0})", level=3)
    report.add_html(f"<table class='metrics'><tr>{head}</tr>{''.join(body)}</table>")
    sel = cm.get("selectivity")
    if sel and sel["groups"] and sel["accuracy"] is not None:
        report.add_heading(f"What voxel groups prefer, in words (sub-{sel['subject']})", level=3)
        report.add_text(
            "BrainSCUBA-style: a ridge encoding model from CLIP image embeddings to each "
            "voxel's betas (training images), each group's mean weight projected onto the "
            "training images' embeddings (softmax, T = 1/150) and captioned. Groups: the "
            "voxels most selective for each shape in the simulator's noise-free responses. "
            f"The caption names the group's true preferred shape for {sel['accuracy']:.2f} "
            f"of groups (chance {sel['chance']:.2f}); voxel by voxel (greedy captions of the "
            f"{sel['n_voxels_scored']} best-predicted voxels) {sel['voxel_accuracy']:.2f} "
            f"(chance {sel['voxel_chance']:.2f}).")
        report.add_table([{"group": g["unit"], "voxels": g["n_voxels"], "caption": g["caption"],
                           "names it": "yes" if g["score"] else "no"} for g in sel["groups"]])


@stage("caption", requires=("evaluate",),
       enabled=lambda c: bool(c.kinds) and c.caption.enabled, priority=75,
       report_order=15, report=report_caption)
def stage_caption(ctx: RunContext) -> dict[str, Any]:
    """Caption the test images from decoded, ridge and true embeddings; score them."""
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    for kind in ctx.kinds:
        cm, written = _caption_kind(ctx, kind)
        metrics[kind] = {"caption": cm}
        outputs += written
    return {"metrics": metrics, "outputs": outputs}
