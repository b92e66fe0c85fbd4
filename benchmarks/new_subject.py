"""A new subject from little data: closed-form adapter vs its peers, over many subsets.

The demo scores a new subject once, on one random 10% of its training images. This
benchmark repeats that on several random subsets and several data sizes, with every model
fitted to the same subset in the same run:

- ``closed_form`` (ours, :func:`~braindecode_kit.train.adapt_subject` default): the new
  subject's linear adapter solved by ridge regression into the shared space, onto the
  representation the other subjects' brains give each image (the decoder's stimulus
  map); the shared encoder and head, trained on the other subjects, stay frozen.
- ``sgd_adapter``: the same frozen encoder, the adapter learned by gradient descent
  (MindEye2's and See Through Their Minds' recipe), early-stopped on a stimulus split of
  the subset.
- ``scratch``: our decoder trained from nothing on the subset (same split).
- ``ridge``: the ridge baseline, voxels -> CLIP embedding, alpha by CV grouped by stimulus
  (Brain-Diffuser's first stage).

Scores are 300-way brain->image top-1 on the subject's held-out test images (averaged over
repetitions), printed with chance, the simulator's oracle for that subject, and the ratios
of ours to each peer.

Run ``python benchmarks/new_subject.py --run runs/demo`` (runs the demo pipeline there
first if it has not finished; ``--json`` for rows, ``--help`` for options). From Python:
``from new_subject import run; rows = run("runs/demo", fractions=(0.1,), n_subsets=3)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

METHODS = ("closed_form", "sgd_adapter", "scratch", "ridge")


def _ensure_run(run_dir: Path, seed: int | None) -> None:
    from braindecode_kit._resources import pipelines_dir
    from braindecode_kit.pipeline import load_config, run_pipeline

    manifest = run_dir / "manifest.json"
    if manifest.is_file():
        stages = json.loads(manifest.read_text()).get("stages", {})
        if stages.get("train", {}).get("status") == "done":
            return
    over = {} if seed is None else {"seed": seed}
    print(f"running the demo pipeline into {run_dir} first ...", file=sys.stderr)
    run_pipeline(load_config(pipelines_dir() / "demo.yaml", **over), run_dir)


def run(run_dir: str | Path = "runs/demo", fractions=(0.05, 0.1, 0.25), n_subsets: int = 5,
        methods=METHODS, seed: int | None = None) -> list[dict[str, Any]]:
    """Score each method on ``n_subsets`` random subsets of each fraction; one row each.

    Parameters
    ----------
    run_dir : path
        A demo-like run folder (its model, trials, targets and, when simulated, BIDS data);
        the demo pipeline is run there first if its train stage has not finished.
    fractions : sequence of float
        Shares of the new subject's training images.
    n_subsets : int
        Random subsets per fraction (seeds ``run seed + 100 * k``).
    methods : sequence of str
        A subset of :data:`METHODS`.
    seed : int or None
        Seed of the demo run to create when ``run_dir`` has none (None: the YAML's).
    """
    import numpy as np

    from braindecode_kit.baselines import RidgeDecoder
    from braindecode_kit.embed import Targets
    from braindecode_kit.evaluate import retrieval_accuracy
    from braindecode_kit.models import BrainDecoder
    from braindecode_kit.pipeline import load_config
    from braindecode_kit.pipeline.stages import (
        decoder_config,
        small_data_config,
        split_subjects,
        test_set,
    )
    from braindecode_kit.splits import split_train_val, subsample_stimuli
    from braindecode_kit.train import adapt_subject, fit
    from braindecode_kit.trialset import TrialSet

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    run_dir = Path(run_dir)
    _ensure_run(run_dir, seed)
    cfg = load_config(json.loads((run_dir / "manifest.json").read_text())["config"])
    subjects = json.loads((run_dir / "trials" / "subjects.json").read_text())
    _, new = split_subjects(subjects, cfg)  # the config's held-out subject
    pretrained = BrainDecoder.from_pretrained(run_dir / "model")
    if new is None or new in pretrained.subjects:
        raise ValueError(f"The model in {run_dir} has no held-out subject (it was trained on "
                         f"{sorted(pretrained.subjects)}); run with new_subject enabled.")
    targets = Targets.load(run_dir / "targets")
    ts = TrialSet.load(run_dir / "trials" / f"sub-{new}")
    full_train, _ = split_train_val(ts, seed=cfg.seed)
    test = test_set(ts)
    Yt = targets.loc(test.stimulus_ids).image
    Xt = np.asarray(test.data, np.float32)
    n_cand = min(300, len(Yt))
    oracle = None
    if (run_dir / "bids").is_dir():
        from braindecode_kit.simulate import SimulatedFMRI

        oracle = SimulatedFMRI.load(run_dir / "bids").oracle_retrieval(
            new, n_candidates=n_cand, n_draws=30)["top1"]

    def score(pred):
        return retrieval_accuracy(pred, Yt, n_candidates=n_cand, n_draws=30, seed=0)["top1"]

    rows = []
    for frac in fractions:
        for k in range(n_subsets):
            sub = subsample_stimuli(full_train, frac, cfg.seed + 100 * k)
            fit_part, val_part = split_train_val(sub, seed=cfg.seed)
            row: dict[str, Any] = {"fraction": float(frac), "subset": k,
                                   "n_trials": sub.n_trials, "chance": 1 / n_cand,
                                   "oracle": oracle}
            for m in methods:
                t0 = time.perf_counter()
                if m == "closed_form":
                    dec = adapt_subject(pretrained, sub, targets, subject=new, init="ridge",
                                        verbose="WARNING")
                    pred = dec.predict(Xt, subject=new)
                elif m == "sgd_adapter":
                    dec = adapt_subject(pretrained, fit_part, targets, subject=new,
                                        init="random", valset=val_part,
                                        config=small_data_config(cfg, fit_part.n_trials), verbose="WARNING")
                    pred = dec.predict(Xt, subject=new)
                elif m == "scratch":
                    dcfg = decoder_config(cfg, {new: sub}, Yt.shape[1])
                    res = fit(BrainDecoder(dcfg, seed=cfg.seed), [fit_part], targets,
                              small_data_config(cfg, fit_part.n_trials), valsets=[val_part],
                              verbose="WARNING")
                    pred = res.decoder.predict(Xt, subject=new)
                else:
                    ridge = RidgeDecoder().fit(np.asarray(sub.data, np.float32),
                                               targets.loc(sub.stimulus_ids).image,
                                               groups=sub.stimulus_ids)
                    pred = ridge.predict(Xt)
                row[m] = score(pred)
                row[f"{m}_s"] = time.perf_counter() - t0
            rows.append(row)
            print(f"fraction {frac:g} subset {k}: " + ", ".join(
                f"{m} {row[m]:.3f}" for m in methods), file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict[str, Any]], methods=METHODS) -> list[dict[str, Any]]:
    """Mean and standard deviation over subsets, per fraction, and ours / peer ratios."""
    out = []
    for frac in sorted({r["fraction"] for r in rows}):
        rs = [r for r in rows if r["fraction"] == frac]
        s: dict[str, Any] = {"fraction": frac, "n_trials": statistics.mean(r["n_trials"] for r in rs),
                             "n_subsets": len(rs), "chance": rs[0]["chance"],
                             "oracle": rs[0]["oracle"]}
        for m in methods:
            vals = [r[m] for r in rs]
            s[m] = statistics.mean(vals)
            s[f"{m}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        if "closed_form" in methods:
            for m in methods:
                if m != "closed_form":
                    s[f"closed_form_over_{m}"] = s["closed_form"] / max(s[m], 1e-9)
        out.append(s)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/demo", help="demo run folder (created if needed)")
    p.add_argument("--seed", type=int, default=None, help="seed of a demo run to create")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25])
    p.add_argument("--subsets", type=int, default=5)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--json", action="store_true", help="print the rows and summary as JSON")
    a = p.parse_args(argv)
    rows = run(a.run, a.fractions, a.subsets, a.methods, a.seed)
    summary = summarise(rows, a.methods)
    if a.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=1))
        return
    head = f"{'fraction':>8} {'trials':>6} " + " ".join(f"{m:>16}" for m in a.methods)
    print(head + f" {'chance':>7} {'oracle':>7}")
    for s in summary:
        cells = " ".join(f"{s[m]:>9.3f} ±{s[m + '_sd']:.3f}" for m in a.methods)
        orc = "-" if s["oracle"] is None else f"{s['oracle']:.3f}"
        print(f"{s['fraction']:>8g} {s['n_trials']:>6.0f} {cells} {s['chance']:>7.4f} {orc:>7}")
    if "closed_form" in a.methods:
        print("\nratios, closed form / peer (mean over subsets):")
        for s in summary:
            print(f"  fraction {s['fraction']:g}: " + ", ".join(
                f"{m} {s['closed_form_over_' + m]:.2f}x" for m in a.methods if m != "closed_form"))


if __name__ == "__main__":
    main()
