"""Averaging several independently initialised decoders: what it buys on a run's fMRI data.

Not a package default (see docs/architecture.md, "Tried on 2026-12-02"): this measures it
so that the claim in the docs can be re-checked. For a finished run folder (any seed), the
pretraining subjects' training stimuli are split again: the run's validation stimuli are
the held-out scores (no test stimulus is read), and an inner stimulus split of the rest
stops each decoder early. ``K`` decoders of the run's configuration, seeds ``10 * seed +
k``, are trained on the same trials; each row prints the ``k``-th decoder alone and the
average of the unit predictions of the first ``k``, next to ridge fitted on the same
trials, per subject and pooled (``n_val``-way top-1, chance ``1 / n_val``).

    .venv/bin/python benchmarks/ensemble.py --run runs/<run with fMRI> [--members 4]
        [--config <yaml>] [--json rows.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _top1(pred: np.ndarray, truth: np.ndarray) -> float:
    """All-way brain->image top-1 (every held-out image a candidate)."""
    from braindecode_kit.evaluate import retrieval_accuracy

    return float(retrieval_accuracy(pred, truth, n_candidates=None,
                                    direction="brain->image")["top1"])


def run(run_dir: str, config: str | None = None, members: int = 4) -> list[dict]:
    from braindecode_kit.baselines import RidgeDecoder
    from braindecode_kit.embed import Targets
    from braindecode_kit.models import BrainDecoder
    from braindecode_kit.pipeline.config import load_config
    from braindecode_kit.pipeline.stages._common import (
        decoder_config,
        split_subjects,
        train_config,
    )
    from braindecode_kit.splits import split_train_val
    from braindecode_kit.train import fit
    from braindecode_kit.trialset import TrialSet

    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    seed = int(manifest["seed"])
    cfg = load_config(manifest["config"] if config is None else config, seed=seed)
    targets = Targets.load(f"{run_dir}/targets")
    subjects = json.loads((Path(run_dir) / "trials" / "subjects.json").read_text())
    pre, _ = split_subjects(subjects, cfg)
    trains, stops, held = {}, {}, {}
    for s in pre:
        ts = TrialSet.load(f"{run_dir}/trials/sub-{s}")
        train, val = split_train_val(ts, seed=seed)          # the run's split
        inner, stop = split_train_val(train, seed=seed + 100)  # early stopping inside train
        trains[s], stops[s], held[s] = inner, stop, val.average_repetitions()
    X = {s: np.asarray(h.data, np.float32) for s, h in held.items()}
    Y = {s: targets.loc(h.stimulus_ids).image for s, h in held.items()}
    ridge = {}
    for s, tr in trains.items():
        r = RidgeDecoder().fit(np.asarray(tr.data, np.float32),
                               targets.loc(tr.stimulus_ids).image, groups=tr.stimulus_ids)
        ridge[s] = _top1(r.predict(X[s]), Y[s])
    rows, preds = [], []
    blurry = None if targets.blurry is None else targets.blurry.shape[-1]
    for k in range(members):
        t0 = time.perf_counter()
        dec = BrainDecoder(decoder_config(cfg, trains, targets.image.shape[1],
                                          blurry_size=blurry), seed=10 * seed + k)
        res = fit(dec, list(trains.values()), targets,
                  train_config(cfg, "fmri", seed=10 * seed + k),
                  valsets=list(stops.values()), verbose=False)
        p = {s: res.decoder.predict(X[s], subject=s) for s in trains}
        preds.append({s: v / np.linalg.norm(v, axis=1, keepdims=True) for s, v in p.items()})
        single = {s: _top1(p[s], Y[s]) for s in trains}
        avg = {s: _top1(np.mean([q[s] for q in preds], 0), Y[s]) for s in trains}
        row = {"members": k + 1, "single": single, "ensemble": avg, "ridge": ridge,
               "single_pooled": float(np.mean(list(single.values()))),
               "ensemble_pooled": float(np.mean(list(avg.values()))),
               "ridge_pooled": float(np.mean(list(ridge.values()))),
               "chance": 1.0 / min(len(y) for y in Y.values()),
               "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(f"members {k + 1}: decoder {k} alone {row['single_pooled']:.3f}, average of "
              f"{k + 1} {row['ensemble_pooled']:.3f} (ridge {row['ridge_pooled']:.3f}, ratio "
              f"{row['ensemble_pooled'] / max(row['ridge_pooled'], 1e-9):.2f}; chance "
              f"{row['chance']:.3f}; {row['seconds']} s)",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a finished run folder with fMRI subjects")
    ap.add_argument("--config", default=None,
                    help="a pipeline YAML (default: the configuration the run recorded)")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = run(a.run, a.config, a.members)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
