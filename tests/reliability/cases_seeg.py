"""Probes: sEEG/ECoG recordings load_seeg must refuse: contacts typed EEG (clinical
exports), unknown or misnamed channel types, an EDF whose physical range clipped, a
subject with no contact left in the responsive regions after rejection, contact names
a bipolar reference cannot pair, high-gamma at too low a rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from probes import Case

CASES: list[Case] = []
DATA = Path(__file__).resolve().parents[1] / "data"
LAY = DATA / "ieeg" / "sub-pt1_ses-02_task-monitor_acq-ecog_run-01_clip2.lay"
EDF = DATA / "eeg" / "test_reduced.edf"
FAST = dict(l_freq=None, h_freq=None, sfreq=None, baseline=None, notch=None, tmin=-0.1,
            tmax=0.2)
NAMES = ["LO1", "LO2", "LO3", "LH1", "LH2", "LH3"]


def add(name, make, expect=ValueError, fragments=(), **kw):
    CASES.append(Case(name, "load_seeg", make, expect, tuple(fragments), **kw))


def _events(onsets):
    return pd.DataFrame({"onset": onsets, "stimulus_id": [f"s{i}" for i in range(len(onsets))]})


def _call(source, events, **kw):
    def call():
        from braindecode_kit.io import load_seeg

        return load_seeg(source, events, **(FAST | kw))

    return call


def _edf(tmp, clip=False):
    """A 6-contact EDF (LO occipital, LH hippocampus) + electrodes.tsv with regions."""
    import mne

    x = np.random.default_rng(0).standard_normal((6, 256 * 4)) * 40e-6
    if clip:
        x[1] = np.clip(x[1], -30e-6, 30e-6)
    raw = mne.io.RawArray(x, mne.create_info(NAMES, 256.0, "seeg"), verbose=False)
    path = tmp / "sub-01_ieeg.edf"
    mne.export.export_raw(path, raw, fmt="edf", physical_range="channelwise", overwrite=True,
                          verbose=False)
    el = tmp / "sub-01_electrodes.tsv"
    pd.DataFrame({"name": NAMES, "x": np.arange(6) * 3.5, "y": -90.0, "z": 0.0, "size": 5.0,
                  "region": ["occipital"] * 3 + ["hippocampus"] * 3}).to_csv(
        el, sep="\t", index=False)
    return path, el


def _no_responsive_left(tmp):
    path, el = _edf(tmp)

    def call():
        import mne

        from braindecode_kit.io import load_seeg

        raw = mne.io.read_raw_edf(path, verbose=False)
        raw.info["bads"] = ["LO1", "LO2", "LO3"]
        return load_seeg(raw, _events([1.0, 2.0]), ch_types="seeg", electrodes=el,
                         regions=["occipital", "ventral_temporal"], **FAST)

    return call


add("load_seeg-contacts-typed-eeg", lambda tmp: _call(LAY, _events([1.0])), ValueError,
    ("expected sEEG/ECoG channels", "'eeg': 83", "ch_types='seeg'"))
add("load_seeg-unknown-type", lambda tmp: _call(LAY, _events([1.0]),
                                                ch_types={"FP1": "depth"}), ValueError,
    ("unknown type", "'depth'", "seeg"))
add("load_seeg-type-for-missing-channel", lambda tmp: _call(LAY, _events([1.0]),
                                                            ch_types={"LA1": "seeg"}),
    ValueError, ("'ch_types' names", "LA1"))
add("load_seeg-edf-clipped", lambda tmp: _call(_edf(tmp, clip=True)[0], _events([1.0]),
                                               ch_types="seeg"),
    ValueError, ("clipped", "LO2", "physical range"))
add("load_seeg-no-responsive-contact-left", _no_responsive_left, ValueError,
    ("no contact left", "'occipital'", "LO1"))
add("load_seeg-bipolar-unpairable-names", lambda tmp: _call(EDF, _events([1.0]),
                                                            ch_types="seeg"),
    ValueError, ("<shaft><number>", "Ergo-Left"))
add("load_seeg-high-gamma-too-slow", lambda tmp: _call(LAY, _events([1.0]), ch_types="ecog",
                                                       reference=None, features="high_gamma"),
    ValueError, ("sampling rate above 300", "200"))
add("load_seeg-event-outside", lambda tmp: _call(LAY, _events([9.0]), ch_types="ecog"),
    ValueError, ("outside the recording",))
add("load_seeg-valid-bipolar", lambda tmp: _call(_edf(tmp)[0], _events([1.0, 2.0]),
                                                 ch_types="seeg",
                                                 electrodes=tmp / "sub-01_electrodes.tsv"),
    None, check=lambda ts: ts.info.ch_names == ["LO1-LO2", "LO2-LO3", "LH1-LH2", "LH2-LH3"])
