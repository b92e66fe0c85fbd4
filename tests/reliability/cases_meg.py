"""Probes: MEG recordings load_meg must refuse (real files from tests/data and tiny
in-memory/FIF ones): no events, events outside the recording, no MEG channels,
mismatched sampling rates, non-finite samples, an incomplete events table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from probes import Case

CASES: list[Case] = []
DATA = Path(__file__).resolve().parents[1] / "data"
NEUROMAG = DATA / "meg" / "neuromag306_sample_audvis_trunc_raw_sss.fif"
CTF = DATA / "meg" / "ctf275_testdata_short_discontinuous_raw.fif"
EDF = DATA / "eeg" / "test_reduced.edf"
FAST = dict(l_freq=None, h_freq=None, sfreq=None, baseline=None, tmin=-0.1, tmax=0.2)


def add(name, make, expect=ValueError, fragments=(), **kw):
    CASES.append(Case(name, "load_meg", make, expect, tuple(fragments), **kw))


def _events(onsets):
    return pd.DataFrame({"onset": onsets, "stimulus_id": [f"s{i}" for i in range(len(onsets))]})


def _call(source, events=None, **kw):
    def call():
        from braindecode_kit.io import load_meg

        return load_meg(source() if callable(source) else source, events, **(FAST | kw))

    return call


def _mag_raw(data, sfreq=100.0):
    import mne

    return mne.io.RawArray(data, mne.create_info(["m1", "m2"], sfreq, "mag"), verbose=False)


def _nan_fif(tmp):
    x = np.random.default_rng(0).standard_normal((2, 400)) * 1e-13
    x[1, 50:60] = np.nan
    path = tmp / "nan_raw.fif"
    _mag_raw(x).save(path, verbose=False)
    return _call(path, _events([1.0]))


def _two_rates(tmp):
    import mne

    a = mne.io.read_raw_fif(NEUROMAG, preload=True, verbose=False)
    b = a.copy().resample(150.0, verbose=False)
    return _call([a, b], [_events([0.3]), _events([0.3])])


add("load_meg-ctf-no-events", lambda tmp: _call(CTF), ValueError,
    ("no events", "stim channel", "events"))
add("load_meg-no-stim-no-annotations",
    lambda tmp: _call(lambda: _mag_raw(np.zeros((2, 300)))), ValueError,
    ("no events", "'mag': 2"))
add("load_meg-event-after-end", lambda tmp: _call(NEUROMAG, _events([0.3, 5.0])), ValueError,
    ("outside the recording", "5.000 s", "[0, "))
add("load_meg-window-past-start", lambda tmp: _call(NEUROMAG, _events([0.02])), ValueError,
    ("runs past the recording", "tmin/tmax"))
add("load_meg-edf-is-not-meg", lambda tmp: _call(EDF, _events([1.0])), ValueError,
    ("expected MEG channels", "'eeg': 138", "load_seeg"))
add("load_meg-picks-eeg", lambda tmp: _call(NEUROMAG, _events([0.3]), picks=["EEG 001"]),
    ValueError, ("must be MEG channels", "eeg"))
add("load_meg-mismatched-rates", _two_rates, ValueError,
    ("different sampling rates", "150.0", "sfreq="))
add("load_meg-nan-samples", _nan_fif, ValueError, ("expected finite samples", "10 NaN", "m2"))
add("load_meg-events-no-stimulus-id",
    lambda tmp: _call(NEUROMAG, pd.DataFrame({"onset": [0.3]})), ValueError,
    ("'onset', 'stimulus_id'", "missing"))
add("load_meg-events-bad-split",
    lambda tmp: _call(NEUROMAG, _events([0.3]).assign(split="training")), ValueError,
    ("'split'", "training"))
add("load_meg-valid", lambda tmp: _call(NEUROMAG, _events([0.3, 0.6])), None,
    check=lambda ts: ts.data.shape[:2] == (2, 306))
