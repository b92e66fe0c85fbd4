"""Probes: in-memory data the package must refuse (TrialSet, StimulusSet, Targets, fit,
ContrastiveDecoder): leaking splits, ids that differ only by whitespace, degenerate
targets."""

from __future__ import annotations

import _build as b
import numpy as np
from probes import Case

CASES: list[Case] = []


def add(name, target, make, expect=ValueError, fragments=(), **kw):
    CASES.append(Case(name, target, make, expect, tuple(fragments), **kw))


def _trialset(**kw):
    return lambda tmp: (lambda: b.trialset(**kw))


# ------------------------------------------------------------------ TrialSet
SPLITS_LEAK = ["test", "train", "train", "train"] * 2 + ["train"] * 4  # s0 in test and train
add("TrialSet-train-and-test", "TrialSet", _trialset(splits=SPLITS_LEAK), ValueError, ("'s0'",))
add("TrialSet-train-and-val", "TrialSet",
    _trialset(splits=["train"] * 4 + ["val"] * 4 + ["train"] * 4), ValueError, ("'s0'",))
for label, bad in (("leading-space", " s1"), ("trailing-space", "s1 "), ("tab", "s1\t"),
                   ("newline", "s1\n"), ("empty", "")):
    ids = ["s0", "s1", "s2", "s3"] * 2 + ["s0", bad, "s2", "s3"]
    add(f"TrialSet-stimulus-id-{label}", "TrialSet", _trialset(ids=ids, splits=[""] * 12),
        ValueError, ("stimulus_id", repr(bad)))
add("TrialSet-valid", "TrialSet", _trialset(), None, check=lambda ts: ts.n_trials == 12)


def _save_load_leak(tmp):
    """A trial table edited on disk to put a test stimulus in train."""
    folder = b.saved_trialset(tmp)
    tsv = folder / "trials.tsv"
    lines = tsv.read_text().splitlines()
    lines[2] = lines[2].replace("\ttrain", "\ttest")  # t001 (s1) to test, s1 stays in train
    tsv.write_text("\n".join(lines) + "\n")

    def call():
        from braindecode_kit.trialset import TrialSet

        return TrialSet.load(folder, verify=False) if _has_verify() else TrialSet.load(folder)
    return call


def _has_verify():
    import inspect

    from braindecode_kit.trialset import TrialSet

    return "verify" in inspect.signature(TrialSet.load).parameters


add("TrialSet.load-train-and-test", "TrialSet.load", _save_load_leak, ValueError, ("'s1'",))


# ------------------------------------------------------------------ StimulusSet / Targets
def _stimulus_set(ids):
    def make(tmp):
        def call():
            from PIL import Image

            from braindecode_kit.stimuli import StimulusSet

            return StimulusSet(ids, lambda sid: Image.new("RGB", (4, 4)))
        return call
    return make


for label, bad in (("trailing-space", "a "), ("leading-space", " a"), ("empty", "")):
    add(f"StimulusSet-id-{label}", "StimulusSet", _stimulus_set(["b", bad, "c"]), ValueError,
        (repr(bad),))
    add(f"Targets-id-{label}", "Targets",
        lambda tmp, bad=bad: (lambda: b.targets(["b", bad, "c"])), ValueError, (repr(bad),))
add("StimulusSet-valid", "StimulusSet", _stimulus_set(["a", "b"]), None,
    check=lambda s: len(s) == 2)
add("Targets-nan", "Targets",
    lambda tmp: (lambda: b.targets(image=np.full((4, 8), np.nan, np.float32))), ValueError,
    ("finite",))


# ------------------------------------------------------------------ fit
def _fit(train_kw=None, val_kw=None, targets=None, **fit_kw):
    def make(tmp):
        def call():
            from braindecode_kit.train import TrainConfig, fit

            train = b.trialset(n=16, **(train_kw or {}))
            val = b.trialset(n=8, seed=1, **val_kw) if val_kw is not None else None
            tg = targets() if targets is not None else b.targets([f"s{i}" for i in range(8)])
            cfg = TrainConfig(epochs=1, batch_size=8, patience=None, val_n_draws=2)
            return fit(b.decoder(), train, tg, cfg, valsets=val, verbose="ERROR", **fit_kw)
        return call
    return make


TRAIN_ONLY = dict(splits=["train"] * 16)
add("fit-trainset-with-test-trials", "fit", _fit(), ValueError, ("test", "'s0'"))
add("fit-valset-shares-stimuli", "fit",
    _fit(TRAIN_ONLY, dict(splits=["val"] * 8)), ValueError, ("share", "'s0'"))
add("fit-targets-identical", "fit",
    _fit(TRAIN_ONLY, targets=lambda: b.targets([f"s{i}" for i in range(8)],
                                               image=np.ones((8, 8), np.float32))),
    ValueError, ("same embedding",))
add("fit-targets-all-zero", "fit",
    _fit(TRAIN_ONLY, targets=lambda: b.targets([f"s{i}" for i in range(8)],
                                               image=np.zeros((8, 8), np.float32))),
    ValueError, ("zero",))
add("fit-targets-missing-stimulus", "fit",
    _fit(TRAIN_ONLY, targets=lambda: b.targets(["s0", "s1"])), ValueError, ("s2",))
add("fit-valid", "fit", _fit(TRAIN_ONLY), None, check=lambda r: r.n_epochs == 1)
add("fit-allow-test", "fit", _fit(allow_test=True), None, check=lambda r: r.n_epochs == 1)
add("fit-check-leak-off", "fit",
    _fit(TRAIN_ONLY, dict(splits=["val"] * 8), check_leak=False), None,
    check=lambda r: r.n_epochs == 1)  # the same stimuli in train and val, on purpose


def _contrastive(Y):
    def make(tmp):
        def call():
            from braindecode_kit.estimators import ContrastiveDecoder

            X = np.random.default_rng(0).normal(size=(24, 10)).astype(np.float32)
            return ContrastiveDecoder(epochs=1, batch_size=8, val_fraction=0.0,
                                      verbose="ERROR").fit(X, Y)
        return call
    return make


add("ContrastiveDecoder-targets-identical", "ContrastiveDecoder.fit",
    _contrastive(np.ones((24, 6), np.float32)), ValueError, ("same embedding",))
add("ContrastiveDecoder-targets-all-zero", "ContrastiveDecoder.fit",
    _contrastive(np.zeros((24, 6), np.float32)), ValueError, ("zero",))
add("ContrastiveDecoder-valid", "ContrastiveDecoder.fit",
    _contrastive(np.random.default_rng(1).normal(size=(24, 6)).astype(np.float32)), None,
    check=lambda est: hasattr(est, "decoder_"))
