"""sEEG: the two adapter kinds on a new patient's transfer.

Patients have different contacts in different places. ``channel_linear`` gives each one
its own linear map of its contacts onto the virtual channels; ``seeg_position`` computes
the map from each contact's 3-D coordinates (a shared attention over Fourier features of
x/y/z) plus a per-patient layer, so a new patient's contacts map by where they are.

For each kind, a decoder is trained on every sEEG subject of a run folder but the
held-out one; the held-out patient is then adapted (gradient descent through the frozen
shared model) from a share of its training images, and scored on its test images
(repetitions averaged, N-way top-1/top-5, N = the test-set size), against a decoder of the
same kind trained from scratch and ridge on the same trials. The pretraining subjects'
own test scores are printed too.

Run ``python benchmarks/seeg_adapters.py --run runs/demo`` (a run folder with sEEG
trials; ``--json`` for rows).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("channel_linear", "seeg_position")


def run(run_dir: str | Path, held_out: str | None = None, fraction: float = 0.1,
        kinds=KINDS, seed: int = 0, config: str | Path | None = None
        ) -> list[dict[str, Any]]:
    """One row per adapter kind and model; see the module docstring."""
    from braindecode_kit.baselines import RidgeDecoder
    from braindecode_kit.embed import Targets
    from braindecode_kit.evaluate import retrieval_accuracy
    from braindecode_kit.models import BrainDecoder
    from braindecode_kit.pipeline import load_config
    from braindecode_kit.pipeline.stages import (
        decoder_config,
        small_data_config,
        test_set,
        train_config,
    )
    from braindecode_kit.splits import split_train_val, subsample_stimuli
    from braindecode_kit.train import adapt_subject, fit
    from braindecode_kit.trialset import TrialSet

    run_dir = Path(run_dir)
    cfg = load_config(config if config is not None else
                      json.loads((run_dir / "manifest.json").read_text())["config"])
    targets = Targets.load(run_dir / "targets")
    subjects = json.loads((run_dir / "seeg" / "trials" / "subjects.json").read_text())
    sets = {s: TrialSet.load(run_dir / "seeg" / "trials" / f"sub-{s}") for s in subjects}
    new = held_out or sorted(subjects)[-1]
    pre = [s for s in sorted(subjects) if s != new]

    def score(pred, ts):
        Y = targets.loc(ts.stimulus_ids).image
        r = retrieval_accuracy(pred, Y, k=5, n_candidates=len(Y), n_draws=1)
        return {"top1": float(r["top1"]), "top5": float(r["topk"]), "n_way": len(Y)}

    new_test = test_set(sets[new])
    part = subsample_stimuli(split_train_val(sets[new], seed=seed)[0], fraction, seed)
    part_fit, part_val = split_train_val(part, seed=seed)
    rows = []
    for kind in kinds:
        over = {"adapter": kind}
        dec_cfg = decoder_config(cfg, {s: sets[s] for s in pre}, targets.image.shape[1])
        dec_cfg = type(dec_cfg).from_dict({**dec_cfg.to_dict(), **over})
        trains, vals = zip(*[split_train_val(sets[s], seed=seed) for s in pre])
        t0 = time.perf_counter()
        res = fit(BrainDecoder(dec_cfg, seed=seed), list(trains), targets,
                  train_config(cfg, "seeg"), valsets=list(vals), verbose="WARNING")
        took = time.perf_counter() - t0
        for s in pre:
            rows.append({"adapter": kind, "model": f"pretrained, sub-{s}", "train_s": took,
                         **score(res.decoder.predict(test_set(sets[s]), subject=s),
                                 test_set(sets[s]))})
        tc = small_data_config(cfg, part_fit.n_trials, "seeg")
        adapted = adapt_subject(res.decoder, part_fit, targets, valset=part_val, config=tc,
                                verbose="WARNING")
        rows.append({"adapter": kind, "model": f"new sub-{new}, adapted {fraction:.0%}",
                     "n_trials": part.n_trials,
                     **score(adapted.predict(new_test, subject=new), new_test)})
        # the position variant before any training of the new patient's layer: identity
        zero = adapt_subject(res.decoder, part_fit, targets, config=tc, adapter_epochs=0,
                             verbose="WARNING")
        rows.append({"adapter": kind, "model": f"new sub-{new}, no adaptation",
                     **score(zero.predict(new_test, subject=new), new_test)})
        scratch_cfg = decoder_config(cfg, {new: part}, targets.image.shape[1])
        scratch_cfg = type(scratch_cfg).from_dict({**scratch_cfg.to_dict(), **over})
        scratch = fit(BrainDecoder(scratch_cfg, seed=seed), [part_fit], targets, tc,
                      valsets=[part_val], verbose="WARNING").decoder
        rows.append({"adapter": kind, "model": f"new sub-{new}, scratch {fraction:.0%}",
                     **score(scratch.predict(new_test, subject=new), new_test)})
    ridge = RidgeDecoder().fit(np.asarray(part.data, np.float32),
                               targets.loc(part.stimulus_ids).image, groups=part.stimulus_ids)
    rows.append({"adapter": "-", "model": f"new sub-{new}, ridge {fraction:.0%}",
                 **score(ridge.predict(np.asarray(new_test.data, np.float32)), new_test)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--held-out", default=None)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=None,
                        help="pipeline YAML for the settings (default: the run's manifest)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.run, args.held_out, args.fraction, seed=args.seed, config=args.config)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'adapter':<16}{'model':<34}{'top-1':>7}{'top-5':>7}{'N-way':>7}")
    for r in rows:
        print(f"{r['adapter']:<16}{r['model']:<34}{r['top1']:>7.3f}{r['top5']:>7.3f}"
              f"{r['n_way']:>7}")


if __name__ == "__main__":
    main()
