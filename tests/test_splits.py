"""Tests of the split helpers: by stimulus, deterministic by seed, never leaking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import braindecode_kit.trialset as trialset_mod
from braindecode_kit.splits import (
    SPLITS,
    SplitLeakError,
    assign_splits,
    average_by_stimulus,
    check_no_leak,
    split_train_val,
    subsample_stimuli,
)
from braindecode_kit.trialset import TrialSet

SUBJECT = "sub-01"


def make_ts(n_stim: int = 40, n_reps: int = 3, n_test: int = 5) -> TrialSet:
    """``n_stim`` stimuli x ``n_reps`` repetitions; the last ``n_test`` stimuli are test."""
    n = n_stim * n_reps
    stim = [f"img{i % n_stim:03d}" for i in range(n)]
    table = pd.DataFrame(
        {
            "subject": SUBJECT,
            "session": 1 + np.arange(n) // n_stim,
            "run": 1,
            "onset": np.arange(n) * 4.0,
            "stimulus_id": stim,
            "repetition": np.arange(n) // n_stim,
            "split": ["test" if int(s[3:]) >= n_stim - n_test else "train" for s in stim],
        },
        index=pd.Index([f"t{i:04d}" for i in range(n)], name="trial_id"),
    )
    data = np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)
    return TrialSet(data, table, "fmri", SUBJECT)


def test_old_names_still_importable_from_trialset():
    assert trialset_mod.assign_splits is assign_splits
    assert trialset_mod.check_no_leak is check_no_leak
    assert trialset_mod.SplitLeakError is SplitLeakError
    assert SPLITS == ("train", "val", "test", "")


# --------------------------------------------------------------------------- split_train_val
def test_split_train_val_by_stimulus():
    ts = make_ts()
    train, val = split_train_val(ts, val=0.2, seed=0)
    tr, va = set(train.stimulus_ids), set(val.stimulus_ids)
    assert not tr & va  # no stimulus on both sides
    assert tr | va == set(ts.select(split="train").stimulus_ids)  # test trials dropped
    assert len(va) == 7  # round(0.2 * 35)
    assert train.n_trials + val.n_trials == 35 * 3  # every repetition kept, on one side
    assert set(train.trials["split"]) == {"train"} and set(val.trials["split"]) == {"val"}
    check_no_leak(pd.concat([train.trials, val.trials]))


def test_split_train_val_deterministic_and_as_before():
    ts = make_ts()
    a_tr, a_va = split_train_val(ts, val=0.1, seed=3)
    b_tr, b_va = split_train_val(ts, val=0.1, seed=3)
    pd.testing.assert_frame_equal(a_va.trials, b_va.trials)
    np.testing.assert_array_equal(a_tr.data, b_tr.data)
    _, c_va = split_train_val(ts, val=0.1, seed=4)
    assert set(c_va.stimulus_ids) != set(a_va.stimulus_ids)
    # the draw is the one the training stage always made (bit-identical results)
    train = ts.select(split="train")
    sp = assign_splits(sorted(set(train.stimulus_ids)), val=0.1, test=0.0, seed=3)
    assert sorted(set(a_va.stimulus_ids)) == sorted(sp.index[sp == "val"])
    assert list(a_tr.trials.index) == list(train.trials.index[
        train.trials["stimulus_id"].map(sp) == "train"])


def test_split_train_val_refuses_impossible_val():
    with pytest.raises(ValueError, match="'val'=99 stimuli asked for, but there are only 35"):
        split_train_val(make_ts(), val=99)


# --------------------------------------------------------------------------- subsample
def test_subsample_stimuli():
    ts = make_ts(n_test=0)
    sub = subsample_stimuli(ts, 0.25, seed=1)
    kept = set(sub.stimulus_ids)
    assert len(kept) == 10 and sub.n_trials == 30  # all 3 repetitions of each
    # exactly the draw the learning curves always made
    ids = np.array(sorted(set(ts.stimulus_ids)))
    expected = np.random.default_rng(1).choice(ids, size=10, replace=False)
    assert kept == set(expected)
    assert set(subsample_stimuli(ts, 0.25, seed=1).stimulus_ids) == kept
    assert set(subsample_stimuli(ts, 0.25, seed=2).stimulus_ids) != kept
    assert len(set(subsample_stimuli(ts, 1e-6, seed=0).stimulus_ids)) == 1  # at least one
    assert subsample_stimuli(ts, 1.0, seed=0).n_trials == ts.n_trials


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_subsample_stimuli_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"'fraction'.*\(0.0, 1.0\]"):
        subsample_stimuli(make_ts(), fraction, seed=0)


# --------------------------------------------------------------------------- average
def test_average_by_stimulus_hand_computed():
    pred = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], np.float32)
    mean, ids = average_by_stimulus(pred, ["b", "a", "b", "c"])
    assert ids.tolist() == ["a", "b", "c"]  # sorted
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(mean, [[3.0, 4.0], [3.0, 4.0], [7.0, 8.0]])


def test_average_by_stimulus_sums_in_float64():
    # in float32, 1e8 + 1 - 1e8 is 0; summed in float64 the mean is 1/3
    pred = np.array([[1e8], [1.0], [-1e8]], np.float32)
    mean, ids = average_by_stimulus(pred, np.array(["x", "x", "x"]))
    assert ids.tolist() == ["x"]
    assert mean[0, 0] == np.float32(1 / 3)


def test_average_by_stimulus_nd_and_errors():
    pred = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    mean, ids = average_by_stimulus(pred, np.array([2, 1, 2, 1]))
    assert ids.tolist() == [1, 2] and mean.shape == (2, 2, 3)
    np.testing.assert_array_equal(mean[0], (pred[1] + pred[3]) / 2)
    with pytest.raises(ValueError, match=r"expected 4 ids, but got shape \(3,\)"):
        average_by_stimulus(pred, ["a", "b", "c"])


# --------------------------------------------------------------------------- no leak
def test_check_no_leak_names_the_stimulus():
    ts = make_ts(n_stim=4, n_reps=2, n_test=1)
    check_no_leak(ts)  # a TrialSet, by duck typing
    t = ts.trials
    t.loc["t0000", "split"] = "test"  # img000 now in train and test
    with pytest.raises(SplitLeakError, match=r"1 stimulus id.*'img000' in \['test', 'train'\]"):
        check_no_leak(t)
    with pytest.raises(TypeError, match="TrialSet or a DataFrame, got list"):
        check_no_leak([1, 2])
    with pytest.raises(ValueError, match="'stimulus_id' column"):
        check_no_leak(t.drop(columns="stimulus_id"))
