"""Decoder vs ridge on brain-like data our simulator does not make.

A default chosen on the data we generate is a guess. This benchmark draws single-subject
data from seven generative families that ``braindecode_kit.simulate`` does not produce,
each at three noise levels and two training sizes, and fits ``ContrastiveDecoder()`` with
its defaults and ``RidgeDecoder()`` on the same trials in the same run. Stimuli are
built-in-world images; their semantic features are the built-in CLIP's image embeddings,
their low-level features a whitened 8 x 8 grey thumbnail. Test: 1000 stimuli never seen in
training, 3 repetitions averaged (NSD's protocol); 300-way brain->image top-1 as MindEye2
scores it (candidate sets of 300 drawn from the 1000 test images), computed exactly as its
expectation over every draw rather than from 30 of them, with a 95% bootstrap CI over the
test stimuli; the ratio to ridge, chance, and the oracle: identification by the nearest
noise-free test pattern of the generative model itself (what the data allow when the model
is known; Euclidean, or Mahalanobis under the family's noise covariance), 300-way alike.
A last column scores the decoder's linear anchor alone (``RidgeDecoder(**ANCHOR_RIDGE)``,
the ridge chosen for retrieval the decoder blends with), so that the table shows what the
network adds to it.

With ``--multi N``, every family is also drawn for N subjects at NSD-like noise: each
subject its own voxel weights (and its own units, except ``shared_units``, whose rectified
units all subjects share, mixed differently into each one's voxels), its own order of the
training stimuli, the same 1000 test stimuli. Per-subject ridges, per-subject
``ContrastiveDecoder()`` and one multi-subject ``ContrastiveDecoder().fit([X_1, ...],
[Y_1, ...], subjects=...)`` are scored on the same trials: the hit rate over subjects and
test stimuli, with a 95% bootstrap CI over test stimuli.

    python benchmarks/robustness.py                 # the full table (42 cells)
    python benchmarks/robustness.py --quick         # one noise level, one size
    python benchmarks/robustness.py --quick --search  # + ContrastiveDecoder(search=SEARCH)
    python benchmarks/robustness.py --multi 3 --no-single   # the multi-subject table only

Each family is a small function below; its parameters are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_TEST = 1000
N_WAY = 300
TEST_REPS = 3


# --------------------------------------------------------------------------- stimuli
def stimulus_features(n_images: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CLIP image embeddings = the decoding targets, semantic features, low-level ones)."""
    from braindecode_kit.embed import Embedder, embed_stimuli
    from braindecode_kit.simulate import make_world

    world = make_world(n_images, seed=seed)
    targets = embed_stimuli(world, Embedder("builtin"), text=False, cache_dir=False)
    Y = targets.image.astype(np.float32)
    sem = (Y - Y.mean(0)) / Y.std(0)
    thumbs = np.stack([np.asarray(world.load_image(i).convert("L").resize((8, 8)), np.float32)
                       for i in world.ids]).reshape(n_images, -1)
    thumbs -= thumbs.mean(0)
    u, s, vt = np.linalg.svd(thumbs, full_matrices=False)
    low = (u * np.sqrt(n_images)).astype(np.float32)  # whitened
    return Y, sem.astype(np.float32), low


# --------------------------------------------------------------------------- families
@dataclass
class Family:
    name: str
    params: dict
    signal: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
    noise: Callable[[np.ndarray, float, np.random.Generator, np.ndarray], np.ndarray] | None = None
    trial_gain: Callable[[np.ndarray], np.ndarray] | None = None  # by repetition index
    #: the noise covariance across voxels (up to scale), once ``signal`` has been drawn;
    #: None: independent noise of the same variance in every voxel
    noise_cov: Callable[[], np.ndarray] | None = None


def _gauss_noise(n_trials_by_vox: np.ndarray, sd: float, rng, _rep) -> np.ndarray:
    return rng.standard_normal(n_trials_by_vox.shape).astype(np.float32) * sd


def linear_gaussian(n_vox: int = 2000) -> Family:
    """Responses linear in the semantic features, isotropic Gaussian noise."""
    def signal(sem, low, rng):
        return sem @ rng.standard_normal((sem.shape[1], n_vox)).astype(np.float32)
    return Family("linear_gaussian", {"n_vox": n_vox}, signal)


def _rectified_units(sem, low, unit_rng, rng, n_units, n_vox, threshold, low_weight):
    """Rectified units of the semantic features (weights from ``unit_rng``) mixed into
    voxels, + a saturating low-level part (both from ``rng``), each scaled to unit sd."""
    units = np.maximum(sem @ unit_rng.standard_normal((sem.shape[1], n_units)) /
                       np.sqrt(sem.shape[1]) - threshold, 0)
    mix = units @ rng.standard_normal((n_units, n_vox))
    lowp = np.tanh(low @ rng.standard_normal((low.shape[1], n_vox)) / np.sqrt(low.shape[1]))
    mix /= mix.std() + 1e-9
    return (mix + low_weight * lowp / (lowp.std() + 1e-9)).astype(np.float32)


def rectified_mixture(n_vox: int = 2000, n_units: int = 300, threshold: float = 0.5,
                      low_weight: float = 0.5) -> Family:
    """Rectified semantic tuning units mixed across voxels + a saturating low-level part."""
    def signal(sem, low, rng):
        return _rectified_units(sem, low, rng, rng, n_units, n_vox, threshold, low_weight)
    return Family("rectified_mixture", {"n_vox": n_vox, "n_units": n_units,
                                        "threshold": threshold, "low_weight": low_weight}, signal)


def sparse_tuning(n_vox: int = 2000, per_voxel: int = 2, tuned_fraction: float = 0.3) -> Family:
    """Few voxels carry each feature: each tuned voxel reads 2 features, most voxels none."""
    def signal(sem, low, rng):
        d = sem.shape[1]
        W = np.zeros((d, n_vox), np.float32)
        tuned = rng.choice(n_vox, int(tuned_fraction * n_vox), replace=False)
        for v in tuned:
            W[rng.choice(d, per_voxel, replace=False), v] = rng.standard_normal(per_voxel)
        return sem @ W
    return Family("sparse_tuning", {"n_vox": n_vox, "per_voxel": per_voxel,
                                    "tuned_fraction": tuned_fraction}, signal)


def lowlevel_dominated(n_vox: int = 2000, sem_weight: float = 0.25) -> Family:
    """Mostly low-level (thumbnail) responses; a weak semantic part."""
    def signal(sem, low, rng):
        a = low @ rng.standard_normal((low.shape[1], n_vox))
        b = sem @ rng.standard_normal((sem.shape[1], n_vox))
        return (a / a.std() + sem_weight * b / b.std()).astype(np.float32)
    return Family("lowlevel_dominated", {"n_vox": n_vox, "sem_weight": sem_weight}, signal)


def hetero_correlated(n_vox: int = 2000, var_range: float = 10.0, corr_width: int = 20,
                      correlated: float = 0.5) -> Family:
    """Linear signal; voxel noise variances spread over 10x; half the noise variance
    spatially correlated (a Gaussian kernel over neighbouring voxels), half independent.
    (All-correlated noise lies in a few smooth components a linear decoder projects out:
    every model scored 1.000 at every noise level, a family that measured nothing.)"""
    scales = None

    def signal(sem, low, rng):
        nonlocal scales
        scales = np.exp(rng.uniform(0, np.log(var_range), n_vox) / 2).astype(np.float32)
        return sem @ rng.standard_normal((sem.shape[1], n_vox)).astype(np.float32)

    k = np.exp(-0.5 * (np.arange(-3 * corr_width, 3 * corr_width + 1) / corr_width) ** 2)
    k /= np.sqrt((k ** 2).sum())

    def noise(shape_like, sd, rng, _rep):
        e = rng.standard_normal(shape_like.shape).astype(np.float32)
        e = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, e)
        e = np.sqrt(correlated) * e + np.sqrt(1 - correlated) * rng.standard_normal(
            shape_like.shape).astype(np.float32)
        return (e * scales * sd / np.sqrt((scales ** 2).mean())).astype(np.float32)

    def noise_cov():
        M = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, np.eye(n_vox))
        C = correlated * (M.T @ M) + (1 - correlated) * np.eye(n_vox)
        return C * scales[:, None] * scales[None, :]
    return Family("hetero_correlated", {"n_vox": n_vox, "var_range": var_range,
                                        "corr_width": corr_width, "correlated": correlated},
                  signal, noise, noise_cov=noise_cov)


def adaptation_drift(n_vox: int = 2000, adapt: float = 0.6, drift: float = 0.5) -> Family:
    """Responses adapt with repetition (x0.6 per repeat); sessions drift (a random offset)."""
    def signal(sem, low, rng):
        return sem @ rng.standard_normal((sem.shape[1], n_vox)).astype(np.float32)

    def noise(shape_like, sd, rng, rep):
        e = rng.standard_normal(shape_like.shape).astype(np.float32) * sd
        session = rng.integers(0, 4, len(e))
        offsets = rng.standard_normal((4, shape_like.shape[1])).astype(np.float32) * drift * sd
        return e + offsets[session]
    return Family("adaptation_drift", {"n_vox": n_vox, "adapt": adapt, "drift": drift},
                  signal, noise, trial_gain=lambda rep: adapt ** rep)


def shared_units(n_vox: int = 2000, n_units: int = 300, threshold: float = 0.5,
                 low_weight: float = 0.5, unit_seed: int = 12345) -> Family:
    """Rectified semantic units shared by every subject (drawn from ``unit_seed``), mixed
    into each subject's voxels by its own weights, + a saturating low-level part (a shared
    representational space, with other units, threshold and mixing than the simulator's)."""
    def signal(sem, low, rng):
        return _rectified_units(sem, low, np.random.default_rng(unit_seed), rng, n_units, n_vox,
                                threshold, low_weight)
    return Family("shared_units", {"n_vox": n_vox, "n_units": n_units, "threshold": threshold,
                                   "low_weight": low_weight, "unit_seed": unit_seed}, signal)


FAMILIES = [linear_gaussian, rectified_mixture, sparse_tuning, lowlevel_dominated,
            hetero_correlated, adaptation_drift, shared_units]
#: single-trial noise sd relative to each voxel's signal sd. With 2,000 voxels the rank-128
#: signal aggregates well: sd 8 puts ridge near 0.3 on the rectified mixture with 1,200
#: trials (a new user's NSD-like case), and near 0.86 on the linear-Gaussian family
NOISE = {"high_snr": 4.0, "nsd_like": 8.0, "low_snr": 12.0}
#: what ``--search`` lets inner validation choose (the estimator's defaults are tried first)
SEARCH = {"d_shared": [64, 256], "temperature": [0.05, 0.1]}
SIZES = {"1200_trials": 1200, "2400_trials": 2400}


# --------------------------------------------------------------------------- data
def draw(family: Family, sem, low, train_idx, test_idx, n_train_trials, noise_sd, seed,
         clean: bool = False):
    """Single training trials (one presentation each, cycling) and averaged test trials.

    ``clean=True`` also returns, for the oracle, the noise-free test patterns (averaged
    over the test repetitions as the trials are) and the noise covariance of this draw
    (None: isotropic), read right after this draw's signal (another draw redraws it)."""
    rng = np.random.default_rng(seed)
    R = family.signal(sem, low, rng)
    cov = family.noise_cov() if clean and family.noise_cov is not None else None
    R = (R - R.mean(0)) / (R.std(0) + 1e-9)
    tr_stim = np.resize(rng.permutation(train_idx), n_train_trials)
    tr_rep = np.zeros(n_train_trials, int)
    seen: dict[int, int] = {}
    for i, s in enumerate(tr_stim):
        tr_rep[i] = seen.get(s, 0)
        seen[s] = tr_rep[i] + 1
    te_stim = np.repeat(test_idx, TEST_REPS)
    te_rep = np.tile(np.arange(TEST_REPS), len(test_idx))
    noise = family.noise or _gauss_noise

    def trials(stim, rep):
        gain = family.trial_gain(rep)[:, None] if family.trial_gain else 1.0
        clean = R[stim] * gain
        return clean + noise(clean, noise_sd, rng, rep)

    Xtr = trials(tr_stim, tr_rep).astype(np.float32)
    Xte = trials(te_stim, te_rep).astype(np.float32)
    Xte = Xte.reshape(len(test_idx), TEST_REPS, -1).mean(1)
    if not clean:
        return Xtr, tr_stim, Xte
    gain = family.trial_gain(te_rep)[:, None] if family.trial_gain else 1.0
    Rte = (R[te_stim] * gain).reshape(len(test_idx), TEST_REPS, -1).mean(1)
    return Xtr, tr_stim, Xte, Rte.astype(np.float32), cov


def oracle_rivals(Xte: np.ndarray, Rte: np.ndarray, cov: np.ndarray | None = None) -> np.ndarray:
    """The rival matrix (:func:`rivals`) of identification by the generative model itself:
    each averaged test trial against every test stimulus's noise-free pattern, nearest wins
    (Euclidean; Mahalanobis under the draw's noise covariance ``cov`` where it has one,
    its eigenvalues floored at 1e-6 of the largest)."""
    A, B = Xte.astype(np.float64), Rte.astype(np.float64)
    if cov is not None:
        lam, V = np.linalg.eigh(np.asarray(cov, np.float64))
        W = V / np.sqrt(np.maximum(lam, 1e-6 * lam.max()))
        A, B = A @ W, B @ W
    d = (A ** 2).sum(1)[:, None] - 2 * A @ B.T + (B ** 2).sum(1)[None, :]
    return rivals(-d)


def oracle_hits(Xte, Rte, cov=None, way: int | None = None) -> np.ndarray:
    """Per test stimulus, the oracle's ``way``-way hit rate (:func:`expected_top1`)."""
    return expected_top1(oracle_rivals(Xte, Rte, cov).sum(1), way)


def rivals(S: np.ndarray) -> np.ndarray:
    """``G[i, j]``: candidate ``j`` scores at least as high as the true pair in row ``i``
    of the score matrix ``S`` (higher is better; ties count against the true pair); the
    diagonal is False."""
    G = S >= np.diag(S)[:, None]
    np.fill_diagonal(G, False)
    return G


def rival_matrix(pred: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """:func:`rivals` of brain->image retrieval: cosine of each prediction with every
    test stimulus's embedding."""
    P = pred.astype(np.float64) / np.linalg.norm(pred, axis=1, keepdims=True)
    T = Y.astype(np.float64) / np.linalg.norm(Y, axis=1, keepdims=True)
    return rivals(P @ T.T)


def expected_top1(n_rivals: np.ndarray, way: int | None = None,
                  others: np.ndarray | int | None = None) -> np.ndarray:
    """Per stimulus, the probability that a ``way``-way candidate set (the stimulus and
    ``way - 1`` others drawn without replacement from its ``others`` fellow candidates,
    default n - 1: MindEye2's draws of 300 of the test images) holds none of its
    ``n_rivals``: its top-1 hit rate averaged over every possible draw, exactly,
    ``C(others - rivals, way - 1) / C(others, way - 1)``. ``way`` None or beyond the
    candidates: all of them, the plain top-1."""
    from scipy.special import gammaln

    r = np.asarray(n_rivals, np.float64)
    o = np.full(r.shape, r.shape[-1] - 1.0) if others is None else np.broadcast_to(
        np.asarray(others, np.float64), r.shape)
    m = o if way is None else np.minimum(float(way) - 1.0, o)  # foils per set
    free = o - r
    ok = free >= m
    logp = (gammaln(np.where(ok, free, m) + 1) + gammaln(o - m + 1)
            - gammaln(np.where(ok, free - m, 0) + 1) - gammaln(o + 1))
    return np.where(ok, np.exp(np.minimum(logp, 0.0)), 0.0)


def hits(pred: np.ndarray, Y: np.ndarray, way: int | None = None) -> np.ndarray:
    """Per test stimulus, its brain->image top-1 hit rate among ``way``-way candidate sets
    (default ``N_WAY``), averaged exactly over every possible draw (:func:`expected_top1`)."""
    return expected_top1(rival_matrix(pred, Y).sum(1), N_WAY if way is None else way)


def score(Gs, seed: int = 0, way: int | None = None, n_boot: int = 1000):
    """(``way``-way top-1, default ``N_WAY``, averaged over subjects and test stimuli, its
    95% CI) from one rival matrix per subject (:func:`rivals`, the same test stimuli).

    The CI is ``value ± 1.96`` bootstrap standard errors, the bootstrap over test stimuli
    resampling them in both roles, as the stimulus to identify and as every other's foil
    (the rival counts are recounted in each resample, a resampled copy of a stimulus being
    no rival of itself), so it carries the uncertainty of which stimuli happened to be
    foils as well. (A normal interval, not the percentile one: duplicated foils make the
    hit rate, convex in the rival count, higher in resamples on average, which shifts the
    bootstrap distribution off the estimate but hardly changes its spread.) Where every
    stimulus scores 0 or every one 1 (a zero-width bootstrap) it is the Wilson interval
    over the stimuli."""
    from braindecode_kit.evaluate import binomial_ci

    Gs = [np.asarray(G, np.float64) for G in (Gs if isinstance(Gs, list) else [Gs])]
    way = N_WAY if way is None else way
    n = Gs[0].shape[0]
    per = np.mean([expected_top1(G.sum(1), way) for G in Gs], axis=0)
    value = float(per.mean())
    if np.all(per == 0.0) or np.all(per == 1.0):
        return value, [float(c) for c in binomial_ci(value, n)]
    rng = np.random.default_rng(seed)
    C = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])
    C = C.astype(np.float64)  # (n_boot, n): how often each stimulus is in a resample
    boots = np.mean([(C * expected_top1(C @ G.T, way, others=n - C)).sum(1) / n
                     for G in Gs], axis=0)
    half = 1.96 * float(boots.std(ddof=1))
    return value, [max(0.0, value - half), min(1.0, value + half)]


def per_subject_models(seed: int, stim: np.ndarray) -> list[tuple[str, object, dict]]:
    """(column, estimator, its fit keywords) of every per-subject model of the tables:
    ridge, the decoder's linear anchor alone, the decoder."""
    from braindecode_kit import ContrastiveDecoder, RidgeDecoder
    from braindecode_kit.estimators import ANCHOR_RIDGE

    return [("ridge", RidgeDecoder(), {"groups": stim}),
            ("linear_anchor", RidgeDecoder(**ANCHOR_RIDGE), {"groups": stim}),
            ("decoder", ContrastiveDecoder(seed=seed), {})]


def fit_predict(model, Xtr, Ytr, Xte, **fit_kw):
    """(the fitted model, its test predictions, seconds for fit + predict)."""
    t0 = time.perf_counter()
    pred = model.fit(Xtr, Ytr, **fit_kw).predict(Xte)
    return model, pred, time.perf_counter() - t0


def run_cell(family, sem, low, Y, train_idx, test_idx, n_trials, noise_sd, seed,
             search=None):
    from braindecode_kit import ContrastiveDecoder

    Xtr, stim, Xte, Rte, cov = draw(family, sem, low, train_idx, test_idx, n_trials, noise_sd,
                                    seed, clean=True)
    Yte = Y[test_idx]
    out = {"oracle": score(oracle_rivals(Xte, Rte, cov), seed)}
    models = per_subject_models(seed, stim)
    if search:
        models.append(("searched", ContrastiveDecoder(seed=seed, search=search), {}))
    for name, model, fit_kw in models:
        model, pred, secs = fit_predict(model, Xtr, Y[stim], Xte, **fit_kw)
        out[name] = (*score(rival_matrix(pred, Yte), seed), secs)
    if search:
        out["searched_params"] = model.best_params_
        out["searched_anchor"] = model.anchor_
    return out


def run_multi_cell(family, sem, low, Y, train_idx, test_idx, n_trials, noise_sd, seed,
                   n_subjects):
    """Per-subject ridge, per-subject and multi-subject ``ContrastiveDecoder()`` and the
    oracle on ``n_subjects`` subjects drawn from ``family`` (same test stimuli)."""
    from braindecode_kit import ContrastiveDecoder

    subs = [draw(family, sem, low, train_idx, test_idx, n_trials, noise_sd,
                 seed * 100 + s, clean=True) for s in range(n_subjects)]
    names = [f"sub-{s + 1:02d}" for s in range(n_subjects)]
    Yte = Y[test_idx]
    h: dict[str, list] = {"oracle": [], "ridge": [], "linear_anchor": [], "decoder": [],
                          "multi": []}
    secs = {"ridge": 0.0, "linear_anchor": 0.0, "decoder": 0.0, "multi": 0.0}
    for Xtr, stim, Xte, Rte, cov in subs:
        h["oracle"].append(oracle_rivals(Xte, Rte, cov))
        for name, model, fit_kw in per_subject_models(seed, stim):
            _, pred, t = fit_predict(model, Xtr, Y[stim], Xte, **fit_kw)
            secs[name] += t
            h[name].append(rival_matrix(pred, Yte))
    t0 = time.perf_counter()
    multi = ContrastiveDecoder(seed=seed).fit([x[0] for x in subs], [Y[x[1]] for x in subs],
                                              subjects=names)
    preds = [multi.predict(x[2], subjects=n) for x, n in zip(subs, names)]
    secs["multi"] = time.perf_counter() - t0
    h["multi"] = [rival_matrix(p, Yte) for p in preds]
    out = {}
    for k, v in h.items():
        out[k] = (*score(v, seed), secs.get(k, 0.0))
    out["multi_anchor"] = {n: a.get("weight") for n, a in multi.anchor_.items()}
    return out


def _verdict(d, dci, r, rci) -> str:
    return "beats" if dci[0] > rci[1] else "ok" if d >= rci[0] else "LOSES"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the NSD-like noise, 1200 trials")
    ap.add_argument("--seed", type=int, default=1, help="world and data seed")
    ap.add_argument("--families", nargs="*", default=None, help="a subset of families")
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    ap.add_argument("--search", action="store_true",
                    help="also ContrastiveDecoder(search=SEARCH): settings chosen by inner "
                         "validation (its own values first)")
    ap.add_argument("--multi", type=int, default=0, metavar="N",
                    help="also the multi-subject table: every family drawn for N subjects at "
                         "NSD-like noise, both training sizes (per subject)")
    ap.add_argument("--no-single", action="store_true", help="skip the single-subject table")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    n_images = 2400 + N_TEST
    Y, sem, low = stimulus_features(n_images, args.seed)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n_images)
    test_idx, train_idx = np.sort(order[:N_TEST]), np.sort(order[N_TEST:])
    noises = {"nsd_like": NOISE["nsd_like"]} if args.quick else NOISE
    sizes = {"1200_trials": 1200} if args.quick else SIZES
    fams = [f() for f in FAMILIES]
    if args.families:
        fams = [f for f in fams if f.name in args.families]
    chance = 1.0 / N_WAY
    rows = []
    print(f"{N_WAY}-way top-1 among {N_TEST} test stimuli (averaged over {TEST_REPS} "
          f"repetitions; expectation over candidate draws), 95% bootstrap CI over test "
          f"stimuli; chance {chance:.4f}; seed {args.seed}")
    if not args.no_single:
        print(f"{'family':20s} {'noise':9s} {'train':12s} {'decoder':24s} {'ridge':24s} "
              f"{'dec/ridge':>9s} {'verdict':>8s}  oracle  linear anchor alone")
    for fam in ([] if args.no_single else fams):
        for nname, sd in noises.items():
            for sname, n in sizes.items():
                res = run_cell(fam, sem, low, Y, train_idx, test_idx, n, sd,
                               seed=args.seed * 1000 + len(rows),
                               search=SEARCH if args.search else None)
                (d, dci, dt), (r, rci, rt) = res["decoder"], res["ridge"]
                ratio = d / max(r, 1e-9)
                verdict = _verdict(d, dci, r, rci)
                o, oci = res["oracle"]
                a, aci, at = res["linear_anchor"]
                rows.append({"family": fam.name, "params": fam.params, "noise": nname,
                             "noise_sd": sd, "train_trials": n, "decoder": d, "decoder_ci": dci,
                             "ridge": r, "ridge_ci": rci, "ratio": ratio, "chance": chance,
                             "oracle": o, "oracle_ci": oci, "linear_anchor": a,
                             "linear_anchor_ci": aci, "linear_anchor_s": at,
                             "decoder_s": dt, "ridge_s": rt, "verdict": verdict})
                print(f"{fam.name:20s} {nname:9s} {sname:12s} "
                      f"{d:.3f} [{dci[0]:.3f},{dci[1]:.3f}]   {r:.3f} [{rci[0]:.3f},{rci[1]:.3f}]"
                      f"   {ratio:9.2f} {verdict:>8s}  {o:.3f}   {a:.3f} [{aci[0]:.3f},"
                      f"{aci[1]:.3f}]", flush=True)
                if "searched" in res:
                    q, qci, qt = res["searched"]
                    rows[-1].update({"searched": q, "searched_ci": qci, "searched_s": qt,
                                     "searched_params": res["searched_params"]})
                    print(f"{'  ... with search':42s} {q:.3f} [{qci[0]:.3f},{qci[1]:.3f}]"
                          f"{'':28s}{q / max(r, 1e-9):9.2f}  chose {res['searched_params']}"
                          f" ({qt:.0f} s; plain {dt:.0f} s)", flush=True)
                _dump(args, rows, [])
    multi_rows = []
    if args.multi:
        print(f"\n{args.multi} subjects per cell, NSD-like noise; {N_WAY}-way hit rate over "
              f"subjects x {N_TEST} test stimuli (95% bootstrap CI over stimuli); chance "
              f"{chance:.4f}")
        print(f"{'family':20s} {'train/subj':10s} {'multi-subject fit':24s} "
              f"{'per-subject decoder':24s} {'ridge':24s} {'multi/ridge':>11s} "
              f"{'verdict':>8s}  oracle  linear anchor alone")
        for fam in fams:
            for n in sizes.values():
                res = run_multi_cell(fam, sem, low, Y, train_idx, test_idx, n,
                                     NOISE["nsd_like"], seed=args.seed * 1000 + 500 +
                                     len(multi_rows), n_subjects=args.multi)
                row = {"family": fam.name, "params": fam.params, "noise": "nsd_like",
                       "noise_sd": NOISE["nsd_like"], "train_trials": n,
                       "n_subjects": args.multi, "chance": chance,
                       "multi_anchor": res["multi_anchor"]}
                for k in ("multi", "decoder", "ridge", "linear_anchor", "oracle"):
                    row[k], row[f"{k}_ci"], row[f"{k}_s"] = res[k]
                row["ratio"] = row["multi"] / max(row["ridge"], 1e-9)
                row["verdict"] = _verdict(row["multi"], row["multi_ci"], row["ridge"],
                                          row["ridge_ci"])
                multi_rows.append(row)

                def cell(k, row=row):
                    return f"{row[k]:.3f} [{row[k + '_ci'][0]:.3f},{row[k + '_ci'][1]:.3f}]"
                print(f"{fam.name:20s} {n:<10d} {cell('multi'):24s} {cell('decoder'):24s} "
                      f"{cell('ridge'):24s} {row['ratio']:11.2f} {row['verdict']:>8s}  "
                      f"{row['oracle']:.3f}   {cell('linear_anchor')}", flush=True)
                _dump(args, rows, multi_rows)
    print("\nfamilies:")
    for fam in fams:
        print(f"  {fam.name}: {fam.params}")
    for name, rr in (("single-subject", rows), ("multi-subject", multi_rows)):
        if rr:
            n_lose = sum(r["verdict"] == "LOSES" for r in rr)
            n_beat = sum(r["verdict"] == "beats" for r in rr)
            print(f"{name}: cells below ridge's lower CI bound {n_lose} of {len(rr)}; beyond "
                  f"both CIs {n_beat}; median ratio {np.median([r['ratio'] for r in rr]):.2f}")
    _dump(args, rows, multi_rows)


def _dump(args, rows, multi_rows) -> None:
    """Write the table so far to ``--json`` (a temp file renamed over it: never half-written)."""
    if not args.json:
        return
    tmp = f"{args.json}.tmp"
    with open(tmp, "w") as f:
        json.dump(rows if not args.multi else {"single": rows, "multi": multi_rows}, f, indent=1)
    os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
