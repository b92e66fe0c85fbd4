"""The ``reconstruct`` stage: images of the held-out test stimuli generated from decoded brain
embeddings, from ridge-decoded ones (the Brain-Diffuser route) and from the true embeddings
(the ceiling), scored with the field's image metrics, with chance.

Routes, per recording kind and pretraining subject (the ceiling once per stimulus):

``ceiling``
    The true CLIP embedding of the seen image.
``decoder``
    The contrastive decoder's embedding.
``decoder_lowlevel``
    The same, with the decoder's low-level head's blurry image as the img2img init
    (``reconstruct.strength``); only when the decoder has that head (``embed.blurry``).
``ridge``
    The ridge baseline's embedding, with the ridge-predicted blurry image as the init when
    there is one (Brain-Diffuser: ridge onto VDVAE latents for the init, ridge onto CLIP
    for the conditioning).

Every image of a stimulus is drawn from the same noise (its seed depends on the run's seed
and the stimulus id only), so routes differ by their embeddings alone. Images are written by
:func:`~braindecode_kit.reconstruct.batch.reconstruct_batch` into
``<kind>/reconstructions/<route>/`` (one PNG each, a manifest; sharded over the processes of
an ``accelerate launch``; a killed run resumes). Every score is of the generated images
themselves: no blend with the blurry images is scored (MindEye2 scores ``0.75 * enhanced +
0.25 * blurry``; the report says so when comparing). ``braindecode-kit reconstruct --run``
runs the same code on a finished run with other generator settings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..._logging import logger
from ..._utils import save_npy_atomic
from .._base import RunContext, stage
from ._common import (
    KIND_LABELS,
    CachedEmbedder,
    generation_predictions,
    get_stimuli,
    get_targets,
    get_trialsets,
    kind_path,
    subjects_of,
    test_set,
)

#: the routes of the reconstruction table, in order: name -> label
ROUTES = {"ceiling": "true embedding (ceiling)",
          "decoder": "decoder, generation route (ours)",
          "decoder_lowlevel": "decoder + low-level init (ours)",
          "ridge": "ridge (Brain-Diffuser route)",
          "chance": "chance (another image's reconstruction)"}
#: the metrics with a per-image value (pooled over subjects, with a 95% CI: Wilson for the
#: 0/1 readings, normal for the 2-way)
#: (``shape_template``: the world's true shape read without CLIP, see
#: :func:`~braindecode_kit.reconstruct.scores.template_shapes`)
ITEM_METRICS = ("builtin_clip_2way", "shape_agreement", "colour_agreement", "shape_template")


def _reconstructor(settings, seed: int):
    from ...reconstruct import Reconstructor

    return Reconstructor(**settings.kwargs(Reconstructor), seed=seed)


def _upsample(blurry: np.ndarray, size: int) -> np.ndarray:
    """(n, 3, s, s) floats in [0, 1] -> uint8 (n, size, size, 3), bicubic."""
    from PIL import Image

    arr = (np.clip(blurry, 0, 1).transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))
                     for a in arr])


def plan_jobs(ctx: RunContext, kind: str, settings, with_init: bool = True) -> dict[str, Any]:
    """What the reconstruct stage generates for ``kind``: route -> jobs, and the data it
    scores them against (stimulus ids per subject, blurry predictions). ``with_init=False``
    (a backend without img2img): no low-level route, ridge without its init."""
    from ...models import BrainDecoder
    from ...reconstruct import item_seeds
    from ...reconstruct.batch import ImageJob

    targets = get_targets(ctx)
    trialsets = get_trialsets(ctx, kind)
    pre, _ = subjects_of(ctx, kind)
    decoder = BrainDecoder.from_pretrained(ctx.run_dir / kind_path(kind, "model"))
    size = int(ctx.config.stimuli.size)
    n_max = settings.n_stimuli
    jobs: dict[str, list] = {"ceiling": [], "decoder": [], "decoder_lowlevel": [], "ridge": []}
    ids_of: dict[str, list[str]] = {}
    blurry: dict[str, dict[str, np.ndarray]] = {"decoder": {}, "ridge": {}}
    all_ids: list[str] = []
    for s in pre:
        test = test_set(trialsets[s])
        order = np.argsort(np.asarray(test.stimulus_ids, dtype=object), kind="stable")
        rows = order[:n_max] if n_max else order
        ids = [str(test.stimulus_ids[r]) for r in rows]
        ids_of[s] = ids
        all_ids += ids
        seeds = item_seeds(ctx.seed, ids)
        pred = generation_predictions(ctx, kind, s)[rows]
        ridge = np.load(ctx.run_dir / kind_path(kind, "predictions", f"ridge_sub-{s}.npy"))[rows]
        low = None
        if "blurry" in decoder.head_names:
            low = decoder.predict(np.asarray(test.data, dtype=np.float32)[rows], subject=s,
                                  head="blurry")
            blurry["decoder"][s] = low
        rb_path = ctx.run_dir / kind_path(kind, "predictions", f"ridge_blurry_sub-{s}.npy")
        rlow = np.load(rb_path)[rows] if rb_path.exists() else None
        if rlow is not None:
            blurry["ridge"][s] = rlow
        up = None if low is None or not with_init else _upsample(low, size)
        rup = None if rlow is None or not with_init else _upsample(rlow, size)
        for k, sid in enumerate(ids):
            key = f"sub-{s}/{sid}"
            jobs["decoder"].append(ImageJob(key, pred[k], seeds[k]))
            if up is not None:
                jobs["decoder_lowlevel"].append(ImageJob(key, pred[k], seeds[k], up[k]))
            jobs["ridge"].append(ImageJob(key, ridge[k], seeds[k],
                                          None if rup is None else rup[k]))
    union = sorted(set(all_ids))
    Y = targets.loc(union).image
    jobs["ceiling"] = [ImageJob(sid, Y[k], seed) for k, (sid, seed)
                       in enumerate(zip(union, item_seeds(ctx.seed, union)))]
    return {"jobs": {r: j for r, j in jobs.items() if j}, "ids": ids_of, "union": union,
            "blurry": blurry}


def generate_kind(ctx: RunContext, kind: str, settings, reconstructor=None,
                  out_root: Path | None = None) -> dict[str, Any]:
    """Generate every route's images of ``kind`` (resuming what is done); returns the plan
    with each route's folder and the timing."""
    from ...reconstruct.batch import reconstruct_batch

    rec = reconstructor or _reconstructor(settings, ctx.seed)
    p = plan_jobs(ctx, kind, settings, with_init=rec.impl.takes_init_images)
    root = out_root or ctx.run_dir / kind_path(kind, "reconstructions")
    folders, timing = {}, {}
    for route, jobs in p["jobs"].items():
        with_init = jobs[0].init_image is not None
        summary = reconstruct_batch(rec, jobs, root / route, state=ctx.state,
                                    init_strength=settings.strength if with_init else None)
        folders[route] = root / route
        timing[route] = summary
    if ctx.is_main_process:
        for route, per in p["blurry"].items():
            for s, arr in per.items():
                save_npy_atomic(root / f"blurry_{route}_sub-{s}.npy", arr.astype(np.float32))
    return {**p, "folders": folders, "timing": timing, "settings": rec.settings()}


# --------------------------------------------------------------------------- scoring
def _ci(values: np.ndarray, bounded: bool = True) -> list[float]:
    """95% CI of a per-image mean. ``bounded`` (a score in [0, 1]): the Wilson interval
    for 0/1 scores (agreements, readings), the normal interval clipped to [0, 1] for graded
    ones (2-way); otherwise (a paired difference, which can be negative) the plain normal
    interval."""
    from ...evaluate import binomial_ci

    values = np.asarray(values, float)
    if bounded and np.isin(values, (0.0, 1.0)).all():
        return binomial_ci(float(values.mean()), len(values))
    m, se = float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))
    lo, hi = m - 1.96 * se, m + 1.96 * se
    return [max(0.0, lo), min(1.0, hi)] if bounded else [lo, hi]


def score_kind(ctx: RunContext, kind: str, done: dict[str, Any], settings) -> dict[str, Any]:
    """The metric table of one kind's routes (see the module's documentation)."""
    from ...embed import Embedder
    from ...evaluate.image_metrics import image_metrics
    from ...reconstruct.batch import load_batch_images
    from ...reconstruct.scores import seen_readings, world_scores

    stimuli = get_stimuli(ctx)
    embedder = CachedEmbedder(Embedder("builtin"))
    union = done["union"]
    seen_all = stimuli.subset(union).to_array(size=int(ctx.config.stimuli.size))
    pos = {sid: k for k, sid in enumerate(union)}
    feats_all = embedder.encode_images(seen_all)
    readings_all = seen_readings(embedder, stimuli.subset(union), feats_all)
    weights = settings.metric_weights
    images = {r: load_batch_images(folder) for r, folder in done["folders"].items()}
    out: dict[str, Any] = {}
    items: dict[str, dict[str, list]] = {}

    def score(route: str, groups: list[tuple[list[str], list]]):
        """groups: (stimulus ids, reconstructions) per subject (or one for the ceiling)."""
        per_item: dict[str, list] = {}
        tables = []
        for ids, rec in groups:
            idx = [pos[i] for i in ids]
            sub = stimuli.subset(ids)
            scores = world_scores(embedder, sub, rec, feats_all[idx],
                                  {a: v[idx] for a, v in readings_all.items()})
            for k, v in scores.items():
                if k not in ITEM_METRICS:
                    continue
                per_item.setdefault(k, []).append(v)
            tables.append(image_metrics(seen_all[idx], rec, weights=weights, embedder=embedder))
        entry: dict[str, Any] = {}
        for k, parts in per_item.items():
            v = np.concatenate(parts)
            entry[k] = float(v.mean())
            entry[f"{k}_ci"] = _ci(v)
        for name in tables[0]:
            if name in entry:  # the built-in CLIP 2-way: from the per-item scores above
                continue
            vals = [t[name].get("value") for t in tables]
            if all(v is not None for v in vals):
                entry[name] = float(np.mean(vals))
            else:
                entry[name] = None
                why = next(t[name].get("unavailable") for t in tables
                           if t[name].get("value") is None)
                # the full reason (with the file and cache paths looked in) is logged; the
                # metrics keep what does not depend on the machine
                if "no weights" in why:
                    logger.info("%s not computed: %s", name, why)
                    why = ("no local weights of its network (reconstruct.metric_weights; "
                           "nothing is downloaded)")
                entry[f"{name}_unavailable"] = why
        if len(groups) > 1 and entry.get("fid") is None:
            # FID needs more images than feature dimensions: pooled over subjects (the
            # per-subject sets are too small at the demo's size)
            from ...evaluate.image_metrics import frechet_distance

            pooled = frechet_distance(
                np.concatenate([seen_all[[pos[i] for i in ids]] for ids, _ in groups]),
                [im for _, rec in groups for im in rec], embedder=embedder)
            entry["fid"] = pooled.get("value")
            if entry["fid"] is None:
                entry["fid_unavailable"] = pooled.get("unavailable")
            else:
                entry.pop("fid_unavailable", None)
                entry["fid_pooled_over_subjects"] = True
        entry["n_images"] = int(sum(len(ids) for ids, _ in groups))
        items[route] = {k: np.concatenate(v) for k, v in per_item.items()}
        return entry

    ids_of = done["ids"]
    for route in ("ceiling", "decoder", "decoder_lowlevel", "ridge"):
        if route not in images:
            continue
        imgs = images[route]
        if route == "ceiling":
            groups = [(union, [imgs[sid] for sid in union])]
        else:
            groups = [(ids, [imgs[f"sub-{s}/{sid}"] for sid in ids]) for s, ids in ids_of.items()]
        out[route] = score(route, groups)
    # chance: each ceiling reconstruction scored against another seen image
    ceiling = [images["ceiling"][sid] for sid in union]
    shifted = ceiling[1:] + ceiling[:1]
    out["chance"] = score("chance", [(union, shifted)])
    # 2-way's chance is 0.5 by construction; what the shifted images measured is kept
    # beside it, without a CI the table would print next to the 0.5
    out["chance"]["builtin_clip_2way_measured"] = out["chance"]["builtin_clip_2way"]
    out["chance"]["builtin_clip_2way"] = 0.5
    out["chance"].pop("builtin_clip_2way_ci", None)
    # paired differences of ours against ridge (same subject, stimulus and noise)
    for ours in ("decoder", "decoder_lowlevel"):
        if ours in items and "ridge" in items:
            d = items[ours]["builtin_clip_2way"] - items["ridge"]["builtin_clip_2way"]
            out[f"{ours}_minus_ridge"] = {"builtin_clip_2way": float(d.mean()),
                                          "builtin_clip_2way_ci": _ci(d, bounded=False)}
    if "ceiling" in out and "decoder" in out:
        out["decoder_over_ceiling"] = out["decoder"]["builtin_clip_2way"] / max(
            out["ceiling"]["builtin_clip_2way"], 1e-9)
        out["decoder_beyond_ridge_ci"] = bool(
            out["decoder"]["builtin_clip_2way"] > out["ridge"]["builtin_clip_2way_ci"][1])
    out["scored"] = ("the generated images themselves (no blend with the blurry images); "
                     "2-way and zero-shot readings by the built-in CLIP")
    out["n_subjects"] = len(ids_of)
    return out


# --------------------------------------------------------------------------- report
def _cell(im, label: str) -> dict[str, Any]:
    return {"image": im, "label": label, "status": None}


def report_reconstruct(ctx: RunContext, report) -> None:
    """Per kind: a grid seen | reconstructions (| blurry), and the metric table."""
    from PIL import Image

    from ...reconstruct.batch import load_batch_images

    settings = ctx.config.reconstruct
    for kind in ctx.kinds:
        m = (ctx.metrics.get(kind) or {}).get("reconstruct")
        if not m:
            continue
        report.add_heading(f"Reconstruction ({KIND_LABELS[kind]})")
        rows = []
        all_cols = ["builtin_clip_2way", "shape_agreement", "colour_agreement",
                    "shape_template", "pixcorr",
                    "ssim", "alexnet_2", "alexnet_5", "inception", "clip", "effnet", "swav",
                    "fid"]
        # a column only for a metric some route has (the others are listed below the table)
        cols = [c for c in all_cols if any((m.get(r) or {}).get(c) is not None for r in ROUTES)]
        for route, label in ROUTES.items():
            e = m.get(route)
            if not e:
                continue
            row: dict[str, Any] = {"route": label}
            for c in cols:
                v = e.get(c)
                if v is None:
                    row[c] = "—"
                elif f"{c}_ci" in e:
                    lo, hi = e[f"{c}_ci"]
                    row[c] = f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
                else:
                    row[c] = f"{v:.3f}"
            rows.append(row)
        report.add_table(rows, highlight=ROUTES["decoder"], caption=(
            "Reconstructions of held-out test images, pooled over subjects (95% CIs over "
            "images). 2-way: built-in CLIP, np.corrcoef protocol (chance 0.5); agreement: the "
            "largest object's shape / colour read zero-shot by the built-in CLIP in the "
            "reconstruction and in the seen image; shape_template: the true shape read "
            "without CLIP, by the silhouette at the object's true place that best overlaps "
            "what differs from the image's own background (1.000 on seen images, 0.03 on "
            "shuffled ones), which patterns only CLIP reads do not please; "
            "PixCorr/SSIM at 425 px (MindEye2); "
            "effnet/swav are correlation distances (lower is better). The decoder's "
            "embedding is its generation route: the network anchored on the subject's "
            "ridge, the weight chosen on validation stimuli by cosine to the true embedding."))
        missing = [c for c in all_cols if c not in cols]
        if missing:
            no_weights = [c for c in missing if "local weights" in str(
                m["ceiling"].get(f"{c}_unavailable", ""))]
            parts = []
            if no_weights:
                parts.append(f"{', '.join(no_weights)}: no local weights of their networks "
                             "(reconstruct.metric_weights; nothing is downloaded)")
            for c in missing:
                if c not in no_weights:
                    parts.append(f"{c}: {m['ceiling'].get(f'{c}_unavailable', 'unavailable')}")
            report.add_text("Not computed — " + "; ".join(parts))
        report.add_text(f"Scored: {m['scored']}. Unlike MindEye2's final table, no image is "
                        "a blend of enhanced and blurry images.", note=True)
        # the grid: the first subject's first test images
        root = ctx.run_dir / kind_path(kind, "reconstructions")
        routes = [r for r in ("ceiling", "decoder", "decoder_lowlevel", "ridge")
                  if (root / r / "manifest.json").exists()]
        imgs = {r: load_batch_images(root / r) for r in routes}
        pre, _ = subjects_of(ctx, kind)
        s = pre[0]
        stimuli = get_stimuli(ctx)
        low = root / f"blurry_decoder_sub-{s}.npy"
        low = np.load(low) if low.exists() else None
        ids = [k.split("/", 1)[1] for k in sorted(imgs["decoder"]) if k.startswith(f"sub-{s}/")]
        grid = []
        size = int(ctx.config.stimuli.size)
        for k, sid in enumerate(ids[:settings.n_examples]):
            row = [{"image": stimuli.load_image(sid), "label": f"seen {sid}", "status": "ref"}]
            for r in routes:
                key = sid if r == "ceiling" else f"sub-{s}/{sid}"
                row.append(_cell(imgs[r][key], ROUTES[r].split(" (")[0]))
            if low is not None:
                row.append(_cell(Image.fromarray(_upsample(low[k:k + 1], size)[0]),
                                 "blurry (decoder)"))
            grid.append(row)
        report.add_image_grid(grid, scale=2, caption=(
            f"{KIND_LABELS[kind]} subject {s}: the seen test image, its reconstructions "
            "(true embedding, decoder, decoder with the low-level init, ridge) and the "
            "decoder's blurry low-level image. Same noise for every route of an image."))
        t = m.get("timing") or {}
        if t:
            report.add_text(
                f"{t.get('n_images')} images in {t.get('seconds')} s "
                f"({t.get('images_per_second')} images/s) with {t.get('backend')}, "
                f"{t.get('num_inference_steps') or 'default'} steps, guidance "
                f"{t.get('guidance_scale') if t.get('guidance_scale') is not None else 'default'}.")


# --------------------------------------------------------------------------- stage
#: training stimuli the map into a backend's conditioning space is fitted on (at most)
MAP_STIMULI = 2000


def fit_backend_map(ctx: RunContext, rec, folder: Path):
    """Fit (or reload) the map from the run's CLIP space to ``rec``'s backend's conditioning
    space, on training stimuli only, when they differ; saved in ``folder``.

    Returns the map (None when the backend takes the run's embeddings as they are).

    Raises
    ------
    ValueError
        If the spaces differ and the backend cannot embed images itself (no image encoder
        to fit a map onto): pass ``reconstruct.embedding_map``.
    """
    from ...reconstruct import EmbeddingMap

    targets = get_targets(ctx)
    want = rec.impl.embed_dim
    if rec.embedding_map is not None or want is None or want == targets.embed_dim:
        return rec.embedding_map
    if (folder / "embedding_map.json").exists():
        rec.embedding_map = EmbeddingMap.load(folder)
        return rec.embedding_map
    encode = getattr(rec.impl, "encode_images", None)
    if encode is None:
        raise ValueError(
            f"Backend {rec.backend!r} takes {want}-d embeddings but this run's CLIP gives "
            f"{targets.embed_dim}-d ones, and it has no image encoder to fit a map onto: fit "
            "an EmbeddingMap (braindecode_kit.reconstruct.EmbeddingMap) from the run's "
            "targets to the backend's space and pass its folder as reconstruct.embedding_map.")
    ids: set[str] = set()
    for kind in ctx.kinds:
        for ts in get_trialsets(ctx, kind).values():
            ids.update(str(i) for i in ts.select(split="train").stimulus_ids)
    ids_l = sorted(ids)[:MAP_STIMULI]
    stimuli = get_stimuli(ctx)
    Y = encode(stimuli.subset(ids_l).to_array(size=int(ctx.config.stimuli.size)))
    emap = EmbeddingMap().fit(targets.loc(ids_l).image, Y)
    if ctx.is_main_process:
        emap.save(folder)
    rec.embedding_map = emap
    logger.info("fitted the map into %s's %d-d space on %d training stimuli", rec.backend,
                want, len(ids_l))
    return emap


def reconstruct_kinds(ctx: RunContext, settings, reconstructor=None,
                      out_root: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Generate and score every kind (the stage's work, also run by ``braindecode-kit
    reconstruct --run``); metrics per kind and the outputs written."""
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    rec = reconstructor or _reconstructor(settings, ctx.seed)
    map_folder = (out_root or ctx.run_dir / "reconstructions") / "embedding_map"
    fitted = rec.embedding_map is None
    if fit_backend_map(ctx, rec, map_folder) is not None and fitted and out_root is None:
        outputs.append("reconstructions/embedding_map/embedding_map.json")
    for kind in ctx.kinds:
        t0 = time.perf_counter()
        done = generate_kind(ctx, kind, settings, rec,
                             None if out_root is None else out_root / kind)
        seconds = time.perf_counter() - t0
        ctx.wait_for_everyone()
        if not ctx.is_main_process:
            continue
        m = score_kind(ctx, kind, done, settings)
        n = sum(len(j) for j in done["jobs"].values())
        st = done["settings"]
        m["timing"] = {"n_images": n, "seconds": round(seconds, 1),
                       "images_per_second": round(n / max(seconds, 1e-9), 2),
                       "backend": st.get("backend"),
                       "num_inference_steps": st.get("num_inference_steps"),
                       "guidance_scale": st.get("guidance_scale")}
        metrics[kind] = {"reconstruct": m}
        for folder in done["folders"].values():
            outputs.append(str(Path(folder, "manifest.json").relative_to(ctx.run_dir))
                           if out_root is None else str(Path(folder, "manifest.json")))
        logger.info("%s reconstructions: decoder 2-way %.3f, ridge %.3f, ceiling %.3f",
                    kind, m["decoder"]["builtin_clip_2way"], m["ridge"]["builtin_clip_2way"],
                    m["ceiling"]["builtin_clip_2way"])
    return metrics, outputs


@stage("reconstruct", requires=("evaluate", "ridge"),
       enabled=lambda c: bool(c.kinds) and c.reconstruct.enabled, priority=80,
       distributed=True, report_order=13, report=report_reconstruct)
def stage_reconstruct(ctx: RunContext) -> dict[str, Any]:
    """Reconstruct the test images from decoded, ridge and true embeddings, and score them."""
    metrics, outputs = reconstruct_kinds(ctx, ctx.config.reconstruct)
    return {"metrics": metrics, "outputs": outputs}


def reconstruct_run(run_dir, *, name: str = "cli", **overrides: Any) -> dict[str, Any]:
    """Reconstruct the test images of a finished run with other generator settings.

    The images, their manifests and ``metrics.json`` go to
    ``<run_dir>/reconstructions/<name>/<kind>/<route>/``; under ``accelerate launch`` the
    images are sharded over the processes. A killed call resumes.

    Parameters
    ----------
    run_dir : path
        A run folder whose ``evaluate`` and ``ridge`` stages are done.
    name : str
        The sub-folder of ``reconstructions/`` (letters, digits, ``-``, ``_``).
    **overrides
        Fields of the run's ``reconstruct:`` section (``backend``, ``model``,
        ``num_inference_steps``, ``guidance_scale``, ``strength``, ``n_stimuli``, ...).

    Returns
    -------
    dict
        ``{"settings": ..., "metrics": {kind: ...}}`` (also written as ``metrics.json``).
    """
    import re

    from ..._readers import read_json
    from ..._utils import write_json_atomic
    from .._base import RunContext, distributed_state
    from ..config import PipelineConfig

    run_dir = Path(run_dir)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"'name' must be letters, digits, '-' or '_', but got {name!r}.")
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run folder: it has no "
                                "manifest.json (make one with `braindecode-kit run`).")
    manifest = read_json(manifest_path, "run manifest")
    missing = [s for s in ("evaluate", "ridge")
               if (manifest.get("stages", {}).get(s) or {}).get("status") != "done"]
    if missing:
        raise ValueError(f"The run {str(run_dir)!r} has not finished its stages {missing}: "
                         "resume it with `braindecode-kit run` first.")
    config = PipelineConfig.model_validate(manifest["config"])
    section = type(config.reconstruct)
    known = set(section.model_fields)
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"Unknown reconstruct settings {bad}; allowed: {sorted(known)}.")
    settings = section(**{**config.reconstruct.model_dump(), **overrides})
    ctx = RunContext(run_dir, config, {}, state=distributed_state())
    out_root = run_dir / "reconstructions" / name
    metrics, _ = reconstruct_kinds(ctx, settings, out_root=out_root)
    result = {"settings": settings.model_dump(mode="json"), "metrics": metrics}
    if ctx.is_main_process:
        write_json_atomic(out_root / "metrics.json", result)
    return result
