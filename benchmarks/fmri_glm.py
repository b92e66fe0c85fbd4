"""Benchmark: single-trial LSS betas of ``braindecode_kit.io.load_fmri`` against a loop of
nilearn ``FirstLevelModel`` fits, one per trial (Mumford et al.'s LSS done the slow way).

Both sides use the same runs, mask, Glover HRF, cosine drift (high-pass 0.01 Hz),
percent-signal-change scaling and ``noise_model="ols"``. Reported:

- ``speedup_vs_nilearn``: loop time / ``load_fmri`` time on the same runs;
- ``beta_r_vs_nilearn``: the smallest, over voxels, Pearson r across trials between the
  two sets of betas (``beta_r_vs_nilearn_median`` too);
- ``beta_r_vs_truth``: the median over responsive (visual) voxels of the r between our
  LSA betas and the simulator's *trial-level* true amplitudes (the noise-free stimulus
  response plus that trial's response variability: what an unbiased single-trial GLM
  estimates), over all runs of the subject; ``beta_r_vs_truth_lss`` the same for LSS.
  LSS trades bias for variance: it wins when scan noise dominates (Mumford et al. 2012)
  and loses when trial-to-trial variability dominates, as in the simulator's NSD-like
  default (Abdulrahman & Henson 2016), so both are reported.

Data: the team's simulator (:func:`braindecode_kit.simulate.simulate_fmri`, one small
subject at its default NSD-calibrated SNR) when it is importable, else a small
simulation built here from nilearn's HRF with AR(1) noise and drift (``--source own``).

Run ``python benchmarks/fmri_glm.py [--json] [--seed S] [--source auto|simulator|own]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _own_simulation(out: Path, seed: int, n_runs: int = 4, n_vox: int = 400):
    """A few runs of BOLD from nilearn's Glover HRF: (bolds, events, mask, truth table)."""
    import nibabel as nib
    from nilearn.glm.first_level import compute_regressor

    rng = np.random.default_rng(seed)
    tr, n_scans, n_trials = 1.5, 300, 60
    shape = (10, 10, n_vox // 100)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    responsive = rng.random(n_vox) < 0.6
    stim_resp = rng.normal(size=(40, n_vox)) * responsive
    bolds, events, truth = [], [], []
    times = np.arange(n_scans) * tr
    for r in range(n_runs):
        onsets = 6.0 + np.arange(n_trials) * 4.0 + rng.choice([0, 4.0], n_trials).cumsum() / 8
        stim = rng.integers(0, 40, n_trials)
        amp = stim_resp[stim] + rng.normal(size=(n_trials, n_vox)) * 0.7 * responsive
        X = np.column_stack([
            compute_regressor(np.array([[o], [3.0], [1.0]]), "glover", times)[0][:, 0]
            for o in onsets
        ])
        X /= X.max(axis=0)
        noise = np.zeros((n_scans, n_vox))
        e = rng.normal(size=(n_scans, n_vox))
        for t in range(n_scans):
            noise[t] = 0.3 * (noise[t - 1] if t else 0) + e[t]
        drift = np.outer(np.cos(np.pi * np.arange(n_scans) / n_scans), rng.normal(size=n_vox))
        base = rng.uniform(500, 2000, n_vox)
        Y = base * (1 + (X @ amp + 0.25 * noise + drift) / 100)
        img = nib.Nifti1Image(Y.T.reshape(shape + (n_scans,)).astype(np.float32), affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_zooms((1.8, 1.8, 1.8, tr))
        path = out / f"run-{r + 1}_bold.nii.gz"
        nib.save(img, path)
        bolds.append(path)
        events.append(pd.DataFrame({"onset": onsets, "duration": 3.0,
                                    "stimulus_id": [f"s{i:02d}" for i in stim]}))
        truth.append(pd.DataFrame({"session": 1, "run": r + 1, "onset": onsets}).assign(
            _amp=list(amp)))
    mask = nib.Nifti1Image(np.ones(shape, np.uint8), affine)
    table = pd.concat(truth, ignore_index=True)
    return bolds, events, mask, np.stack(table.pop("_amp").to_numpy()), table, responsive, tr


def _simulator_data(out: Path, seed: int):
    """One small subject from the team's simulator (default SNR)."""
    from braindecode_kit.io.bids import read_repetition_time
    from braindecode_kit.simulate import make_world, simulate_fmri

    world = make_world(180, seed=seed)
    sim = simulate_fmri(world, out / "sim", n_subjects=1, seed=seed, n_shared_test=30,
                        n_test_reps=2, n_voxels=600, n_sessions=2, trials_per_run=60)
    paths = sim.paths("01")
    with np.load(paths["trialbetas"], allow_pickle=False) as z:
        amp = z["betas"]
        table = pd.DataFrame({"session": z["session"].astype(int), "run": z["run"].astype(int),
                              "onset": z["onset"]})
    with np.load(paths["truebetas"], allow_pickle=False) as z:
        roi = z["roi"]
    responsive = np.isin(roi, [1, 2])
    tr = read_repetition_time(paths["bold_json"][0])
    events = [pd.read_csv(p, sep="\t") for p in paths["events"]]
    return list(paths["bold"]), events, paths["mask"], amp, table, responsive, tr


def _nilearn_loop(bold, events: pd.DataFrame, mask, tr: float) -> np.ndarray:
    """LSS the standard slow way: one FirstLevelModel per trial."""
    import nibabel as nib
    from nilearn.glm.first_level import FirstLevelModel

    img = nib.load(bold) if not hasattr(bold, "affine") else bold
    img = nib.Nifti1Image(np.asarray(img.dataobj, np.float32), img.affine, img.header)
    mask_img = nib.load(mask) if isinstance(mask, str | Path) else mask
    ev = events[events["stimulus_id"].notna()].sort_values("onset", kind="stable")
    ev = ev[["onset", "duration"]].reset_index(drop=True)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(ev)):
            e = ev.copy()
            e["trial_type"] = np.where(np.arange(len(ev)) == i, "trial", "other")
            model = FirstLevelModel(
                t_r=tr, slice_time_ref=0.0, hrf_model="glover", drift_model="cosine",
                high_pass=0.01, noise_model="ols", mask_img=mask_img, signal_scaling=0,
                minimize_memory=True,
            ).fit(img, events=e)
            eff = model.compute_contrast("trial", output_type="effect_size")
            out.append(model.masker_.transform(eff).ravel())
    return np.array(out)


def _colwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / den


def run_benchmark(seed: int = 0, source: str = "auto", n_loop_runs: int = 2) -> dict:
    """Time and compare; returns the figures as a dict (see the module docstring)."""
    from braindecode_kit.io import load_fmri

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        used = source
        if source in ("auto", "simulator"):
            try:
                data = _simulator_data(tmp, seed)
                used = "simulator"
            except (ImportError, TypeError) as err:  # absent, or another signature
                if source == "simulator":
                    raise
                data = _own_simulation(tmp, seed)
                used = f"own (simulator unavailable: {type(err).__name__}: {err})"
        else:
            data = _own_simulation(tmp, seed)
        bolds, events, mask, amp, truth, responsive, tr = data

        # the whole subject, both estimators (for the accuracy figures)
        all_runs = [str(i) for i in range(len(bolds))]
        ts_all = load_fmri(bolds, events, mask=mask, tr=tr, run=all_runs, method="lsa")
        ts_lss = load_fmri(bolds, events, mask=mask, tr=tr, run=all_runs, method="lss")
        # timing on the runs the nilearn loop also fits
        sub_b, sub_e = bolds[:n_loop_runs], events[:n_loop_runs]
        t0 = time.perf_counter()
        ours = load_fmri(sub_b, sub_e, mask=mask, tr=tr)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = np.concatenate([_nilearn_loop(b, e, mask, tr) for b, e in zip(sub_b, sub_e)])
        t_nilearn = time.perf_counter() - t0
        r_nl = _colwise_r(ours.data.astype(np.float64), ref)

        # accuracy vs the simulator's trial-level truth, matched by (session, run, onset)
        t = ts_all.trials
        run_index = t["run"].astype(int).to_numpy()
        sessions_runs = _session_run_of(bolds)
        ses = np.array([sessions_runs[i][0] for i in run_index])
        run = np.array([sessions_runs[i][1] for i in run_index])
        key = {(int(s), int(r), round(float(o), 3)): i for i, (s, r, o) in enumerate(
            zip(truth["session"], truth["run"], truth["onset"]))}
        rows = [key[(int(s), int(r), round(float(o), 3))]
                for s, r, o in zip(ses, run, t["onset"])]
        true = amp[rows]
        r_truth_resp = _colwise_r(ts_all.data.astype(np.float64), true)[responsive]
        r_truth_lss = _colwise_r(ts_lss.data.astype(np.float64), true)[responsive]
    return {
        "data_source": used,
        "seed": seed,
        "n_runs_timed": len(sub_b),
        "n_trials_timed": int(ours.n_trials),
        "n_voxels": int(ours.n_features),
        "seconds_ours": round(t_ours, 4),
        "seconds_nilearn_loop": round(t_nilearn, 3),
        "speedup_vs_nilearn": round(t_nilearn / t_ours, 1),
        "beta_r_vs_nilearn": float(np.nanmin(r_nl)),
        "beta_r_vs_nilearn_median": float(np.nanmedian(r_nl)),
        "beta_r_vs_truth": float(np.nanmedian(r_truth_resp)),
        "beta_r_vs_truth_method": "lsa",
        "beta_r_vs_truth_q10": float(np.nanpercentile(r_truth_resp, 10)),
        "beta_r_vs_truth_lss": float(np.nanmedian(r_truth_lss)),
        "truth": "trial-level amplitudes (stimulus response + trial variability)",
        "n_trials_truth": int(ts_all.n_trials),
        "n_responsive_voxels": int(responsive.sum()),
        "noise_model": "ols (both sides)",
    }


def _session_run_of(bolds) -> list[tuple[int, int]]:
    """(session, run) numbers of each BOLD file, from BIDS entities or the file order."""
    out = []
    for i, b in enumerate(bolds):
        name = Path(str(b)).name
        ent = dict(p.split("-", 1) for p in name.split("_") if "-" in p)
        ses = int(ent.get("ses", 1))
        run = int(ent["run"]) if "run" in ent else i + 1
        out.append((ses, run))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=["auto", "simulator", "own"], default="auto")
    parser.add_argument("--loop-runs", type=int, default=2,
                        help="runs fitted by the (slow) nilearn loop")
    args = parser.parse_args(argv)
    res = run_benchmark(seed=args.seed, source=args.source, n_loop_runs=args.loop_runs)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
