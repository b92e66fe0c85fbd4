"""Helpers of the training tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from braindecode_kit.models import BrainDecoder, DecoderConfig

#: a short run without early stopping
FAST = dict(epochs=4, batch_size=24, patience=None, val_n_draws=3)


def sets(subs, part, names=None):
    """``(subject, X, stimulus_ids)`` tuples of the ``part`` ("train"/"test") trials."""
    names = names or list(subs)
    return [(s, subs[s][f"X_{part}"], list(subs[s][f"ids_{part}"])) for s in names]


def decoder(subs, names=None, seed=0, **kw):
    """A small decoder with an adapter for each of ``names`` (default: all subjects)."""
    names = names or list(subs)
    cfg = DecoderConfig(subjects={s: subs[s]["X_train"].shape[1] for s in names},
                        embed_dim=16, d_shared=32, n_blocks=1, **kw)
    return BrainDecoder(cfg, seed=seed)


def same_weights(a, b):
    """Whether two modules have the same parameter and buffer names and values."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def trialset(subs, name, part):
    """The ``part`` trials of subject ``name`` as an fMRI TrialSet."""
    from braindecode_kit.trialset import TrialSet

    X, ids = subs[name][f"X_{part}"], subs[name][f"ids_{part}"]
    trials = pd.DataFrame({"subject": name, "session": 1, "run": 1,
                           "onset": np.arange(len(ids), dtype=float),
                           "stimulus_id": ids, "repetition": 0, "split": part})
    trials.index = [f"{name}-{part}-{i}" for i in range(len(ids))]
    return TrialSet(X, trials, "fmri", name)
