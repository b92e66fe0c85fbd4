"""load_meg on real recordings (MNE testing data) and on simulated BIDS runs."""

from __future__ import annotations

import os

import mne
import numpy as np
import pandas as pd
import pytest
from _electro_data import MEG_KW, simulated_meg

from braindecode_kit.io.meg import load_meg
from braindecode_kit.trialset import TrialSet

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
NEUROMAG = os.path.join(DATA, "meg", "neuromag306_sample_audvis_trunc_raw_sss.fif")
CTF = os.path.join(DATA, "meg", "ctf275_testdata_short_discontinuous_raw.fif")
EDF = os.path.join(DATA, "eeg", "test_reduced.edf")


def _events(onsets, split=None):
    d = {"onset": onsets, "duration": 0.0,
         "stimulus_id": [f"img{i % 3}" for i in range(len(onsets))]}
    if split is not None:
        d["split"] = split
    return pd.DataFrame(d)


FAST = dict(l_freq=None, h_freq=None, sfreq=None, baseline=None)


def test_neuromag_fif():
    ts = load_meg(NEUROMAG, _events([0.3, 0.5, 0.7]), tmin=-0.1, tmax=0.2, **FAST)
    assert isinstance(ts, TrialSet) and ts.modality == "meg"
    sfreq = 300.3074951171875
    assert ts.info.sfreq == pytest.approx(sfreq)
    n_times = len(np.arange(round(-0.1 * sfreq), round(0.2 * sfreq) + 1))
    assert ts.data.shape == (3, 306, n_times) and ts.data.dtype == np.float32
    types = ts.info.ch_types
    assert types.count("grad") == 204 and types.count("mag") == 102
    units = {ch["unit"] for ch in ts.info.info["chs"]}
    assert units == {mne.io.constants.FIFF.FIFF_UNIT_T, mne.io.constants.FIFF.FIFF_UNIT_T_M}
    assert ts.info.positions_3d.shape == (306, 3)
    assert ts.info.positions_2d.min() >= 0 and ts.info.positions_2d.max() <= 1
    assert ts.info.tmin == pytest.approx(-0.1, abs=1 / sfreq)
    assert list(ts.trials["stimulus_id"]) == ["img0", "img1", "img2"]


def test_ctf_fif_default_pipeline_and_units():
    ts = load_meg(CTF, _events([0.6, 1.0, 1.4]), tmin=-0.2, tmax=0.4, l_freq=None,
                  h_freq=40.0, scaling=None, clamp=None)
    assert ts.info.sfreq == 120.0
    assert ts.data.shape == (3, 273, len(np.arange(-24, 49)))
    assert set(ts.info.ch_types) == {"mag"}  # reference channels excluded
    assert 1e-16 < np.abs(ts.data).max() < 1e-9  # tesla, not scaled
    name = ts.info.ch_names[0]
    one = load_meg(CTF, _events([0.6, 1.0, 1.4]), tmin=-0.2, tmax=0.4, picks=[name], **FAST)
    assert one.info.ch_names == [name]


def test_simulated_bids_defaults():
    sim = simulated_meg()
    ts = load_meg(sim.paths("01")["raw"])
    n = MEG_KW["n_train"] + MEG_KW["n_test"] * MEG_KW["n_test_reps"]
    assert ts.data.shape == (n, 274, 181)  # -0.5..1.0 s at 120 Hz
    assert ts.info.sfreq == 120.0 and ts.info.tmin == -0.5
    assert np.abs(ts.data).max() <= 20.0
    assert (ts.trials["split"] == "test").sum() == MEG_KW["n_test"] * MEG_KW["n_test_reps"]
    assert list(ts.trials["run"].unique()) == ["01", "02"]
    assert ts.trials["session"].unique().tolist() == ["01"]
    # train statistics: median 0, IQR 1 per channel on the training trials
    train = ts.data[(ts.trials["split"] == "train").to_numpy()]
    med = np.median(np.moveaxis(train, 1, 0).reshape(274, -1), axis=1)
    np.testing.assert_allclose(med, 0, atol=1e-4)
    # a BIDS root + subject finds the same runs
    root = load_meg(sim.root, subject="01", l_freq=None, h_freq=None, sfreq=None)
    assert root.data.shape[0] == n and root.info.sfreq == MEG_KW["sfreq"]


def test_stim_channel_events():
    sim = simulated_meg()
    raw = mne.io.read_raw_fif(sim.paths("01")["raw"][0], verbose=False)
    ts = load_meg(raw, tmin=0.0, tmax=0.2, event_id={"exp": 1, "test": 2}, **FAST)
    table = sim.events("01")[0]
    assert len(ts.trials) == len(table)
    assert list(ts.trials["trial_type"]) == list(table["trial_type"])
    np.testing.assert_allclose(ts.trials["onset"], table["onset"], atol=1 / MEG_KW["sfreq"])


def test_robust_scaler_uses_train_trials_only():
    sim = simulated_meg()
    raw = mne.io.read_raw_fif(sim.paths("01")["raw"][0], preload=True, verbose=False)
    events = sim.events("01")[0]
    kw = dict(tmin=0.0, tmax=0.3, **FAST)  # windows of neighbouring trials do not overlap
    a = load_meg(raw, events, **kw)
    changed = raw.copy()
    t = events[events["split"] == "test"]["onset"].iloc[0]
    i = int(round(t * raw.info["sfreq"]))
    changed._data[:274, i:i + 20] += 5e-11  # a huge artefact in one test trial
    b = load_meg(changed, events, **kw)
    train = (a.trials["split"] == "train").to_numpy()
    np.testing.assert_array_equal(a.data[train], b.data[train])
    assert not np.array_equal(a.data[~train], b.data[~train])
    # the same change in a training trial changes the statistics, hence every trial
    t_tr = events[events["split"] == "train"]["onset"].iloc[0]
    j = int(round(t_tr * raw.info["sfreq"]))
    changed2 = raw.copy()
    changed2._data[:274, j:j + 45] += 5e-11
    c = load_meg(changed2, events, **kw)
    assert not np.array_equal(a.data[~train], c.data[~train])


def test_bad_channels_are_honoured():
    raw = mne.io.read_raw_fif(NEUROMAG, verbose=False)
    raw.info["bads"] = ["MEG 0113", "MEG 2443"]
    ts = load_meg(raw, _events([0.3, 0.6]), tmin=-0.1, tmax=0.2, **FAST)
    assert ts.data.shape[1] == 304 and "MEG 0113" not in ts.info.ch_names
    kept = load_meg(raw, _events([0.3, 0.6]), tmin=-0.1, tmax=0.2, bads="keep", **FAST)
    assert kept.data.shape[1] == 306


def test_reject_thresholds():
    with pytest.raises(ValueError, match="Every epoch was rejected"):
        load_meg(NEUROMAG, _events([0.3, 0.6]), tmin=-0.1, tmax=0.2, reject={"mag": 1e-20},
                 **FAST)


# ----------------------------------------------------------------------------- bad input
def test_refuses_recording_without_events():
    with pytest.raises(ValueError, match="no events: expected a stim channel"):
        load_meg(CTF, tmin=-0.1, tmax=0.2, **FAST)
    info = mne.create_info(["m1", "m2"], 100.0, "mag")
    raw = mne.io.RawArray(np.zeros((2, 500)), info, verbose=False)
    with pytest.raises(ValueError, match="no events"):
        load_meg(raw, tmin=-0.1, tmax=0.2, **FAST)


def test_refuses_events_outside_recording():
    with pytest.raises(ValueError, match=r"outside the recording \(expected onsets in \[0, "):
        load_meg(NEUROMAG, _events([0.3, 5.0]), tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="runs past the recording"):
        load_meg(NEUROMAG, _events([0.05]), tmin=-0.1, tmax=0.2, **FAST)


def test_refuses_non_meg_channels():
    with pytest.raises(ValueError, match=r"expected MEG channels .* found channel types"):
        load_meg(EDF, _events([1.0]), tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="must be MEG channels"):
        load_meg(NEUROMAG, _events([0.3]), tmin=-0.1, tmax=0.2, picks=["EEG 001"], **FAST)
    with pytest.raises(ValueError, match="drop_channels"):
        load_meg(NEUROMAG, _events([0.3]), tmin=-0.1, tmax=0.2, drop_channels=["MRO11-1609"],
                 **FAST)


def test_refuses_mismatched_sampling_rates():
    raw = mne.io.read_raw_fif(NEUROMAG, preload=True, verbose=False)
    other = raw.copy().resample(150.0, verbose=False)
    ev = _events([0.3, 0.6])
    with pytest.raises(ValueError, match="different sampling rates"):
        load_meg([raw, other], [ev, ev], tmin=-0.1, tmax=0.2, **FAST)
    both = load_meg([raw, other], [ev, ev], tmin=-0.1, tmax=0.2, l_freq=None, h_freq=None,
                    sfreq=100.0, baseline=None)
    assert both.data.shape[0] == 4 and both.info.sfreq == 100.0


def test_refuses_non_finite_samples():
    raw = mne.io.read_raw_fif(NEUROMAG, preload=True, verbose=False)
    raw._data[5, 10:20] = np.nan
    with pytest.raises(ValueError, match=r"expected finite samples, found 10 NaN"):
        load_meg(raw, _events([0.3]), tmin=-0.1, tmax=0.2, **FAST)


def test_refuses_bad_events_table():
    with pytest.raises(ValueError, match=r"needs columns \['onset', 'stimulus_id'\]"):
        load_meg(NEUROMAG, pd.DataFrame({"onset": [0.3]}), tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="one table per run"):
        load_meg([NEUROMAG, NEUROMAG], _events([0.3]), tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="'split' must hold values"):
        load_meg(NEUROMAG, _events([0.3], split=["training"]), tmin=-0.1, tmax=0.2, **FAST)
