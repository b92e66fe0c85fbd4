"""THINGS-MEG recipe on a synthetic replica of ds004212's layout (FIF at the layout's
``_meg.fif`` paths; and empty ``_meg.ds`` folders read through a ``reader``)."""

from __future__ import annotations

import mne
import numpy as np
import pandas as pd
import pytest

from braindecode_kit.recipes.things_meg import (
    OFFICIAL_PREPROCESSING,
    load_things_meg,
    things_meg_events,
    things_meg_runs,
)

SFREQ = 1200.0
TEST_IMAGES = [101, 102, 103]


def _info():
    canon = mne.channels.read_meg_canonical_info("ctf275")
    picks = mne.pick_types(canon, meg=True)[:272]
    info = mne.pick_info(canon, picks)
    names = {n: n.split("-")[0] + "-1609" for n in info["ch_names"]}
    if "MRO11-1609" not in names.values():
        names[info["ch_names"][0]] = "MRO11-1609"
    info.rename_channels(names)
    with info._unlock():
        info["sfreq"] = SFREQ
    return info


def _raw(seed, n_s=14.0):
    info = _info()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((272, int(n_s * SFREQ))) * 1e-13
    return mne.io.RawArray(x, info, verbose=False)


def _events(session, run):
    rng = np.random.default_rng(10 * session + run)
    types, values = [], []
    for k in range(8):
        t = ["exp", "exp", "test", "catch"][k % 4]
        types.append(t)
        values.append({"exp": 1000 + 100 * session + 10 * run + k,
                       "test": TEST_IMAGES[(session + run + k // 4) % 3], "catch": 999999}[t])
    onset = 1.5 + np.arange(8) * 1.5 + rng.uniform(0, 0.1, 8)
    return pd.DataFrame({"onset": onset.round(3), "duration": 0.5, "trial_type": types,
                         "things_category_nr": rng.integers(1, 1855, 8), "value": values,
                         "sample": np.round(onset * SFREQ).astype(int)})


def _replica(root, ext=".fif"):
    for ses in (1, 2):
        for run in (1, 2):
            d = root / "sub-BIGMEG1" / f"ses-{ses:02d}" / "meg"
            d.mkdir(parents=True, exist_ok=True)
            stem = f"sub-BIGMEG1_ses-{ses:02d}_task-main_run-{run:02d}"
            _events(ses, run).to_csv(d / f"{stem}_events.tsv", sep="\t", index=False)
            if ext == ".fif":
                _raw(ses * 10 + run).save(d / f"{stem}_meg.fif", verbose=False)
            else:
                (d / f"{stem}_meg.ds").mkdir()
    return root


def test_runs_and_events(tmp_path):
    root = _replica(tmp_path)
    runs = things_meg_runs(root, 1)
    assert list(runs["session"]) == ["01", "01", "02", "02"]
    assert list(runs["run"]) == ["01", "02", "01", "02"]
    assert all(p.name.endswith("_meg.fif") for p in runs["recording"])
    ev = things_meg_events(runs["events"].iloc[0])
    assert "catch" not in set(ev["trial_type"]) and len(ev) == 6
    assert set(ev.loc[ev["split"] == "test", "stimulus_id"]) <= {"101", "102", "103"}
    assert things_meg_runs(root, "sub-BIGMEG1", sessions=[2]).shape[0] == 2


def test_load_replica(tmp_path):
    root = _replica(tmp_path)
    ts = load_things_meg(root, "BIGMEG1", l_freq=None)
    assert ts.subject == "BIGMEG1" and ts.modality == "meg"
    assert ts.data.shape[1] == 271 and "MRO11-1609" not in ts.info.ch_names
    assert ts.info.sfreq == 120.0 and ts.data.shape[2] == 181
    assert len(ts.trials) == 4 * 6  # catch dropped
    tr = ts.trials
    assert set(tr.loc[tr["split"] == "test", "stimulus_id"]) == {"101", "102", "103"}
    assert (tr.loc[tr["split"] == "train", "stimulus_id"].astype(int) >= 1000).all()
    assert list(tr["session"].unique()) == ["01", "02"] and "things_category_nr" in tr
    off = load_things_meg(root, 1, sessions=[1], **(OFFICIAL_PREPROCESSING | {"l_freq": None}))
    assert off.info.sfreq == 200.0 and off.info.tmin == pytest.approx(-0.1)
    assert off.data.shape[2] == len(np.arange(-20, 261))


def test_ds_paths_through_a_reader(tmp_path):
    root = _replica(tmp_path, ext=".ds")
    seen = []

    def reader(path):
        seen.append(path.name)
        return _raw(len(seen))

    ts = load_things_meg(root, 1, reader=reader, runs=[1], l_freq=None, sfreq=None,
                         scaling=None)
    assert seen == ["sub-BIGMEG1_ses-01_task-main_run-01_meg.ds",
                    "sub-BIGMEG1_ses-02_task-main_run-01_meg.ds"]
    assert ts.info.sfreq == SFREQ and ts.data.shape[:2] == (12, 271)


def test_bad_channels_from_channels_tsv(tmp_path):
    root = _replica(tmp_path)
    d = root / "sub-BIGMEG1" / "ses-01" / "meg"
    stem = "sub-BIGMEG1_ses-01_task-main_run-01"
    names = _info()["ch_names"]
    pd.DataFrame({"name": names, "type": "MEGMAG",
                  "status": ["bad" if i == 5 else "good" for i in range(len(names))]}
                 ).to_csv(d / f"{stem}_channels.tsv", sep="\t", index=False)
    ts = load_things_meg(root, 1, sessions=[1], l_freq=None)
    assert ts.data.shape[1] == 270 and names[5] not in ts.info.ch_names


def test_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="THINGS-MEG layout"):
        things_meg_runs(tmp_path, 1)
    with pytest.raises(ValueError, match="'subject'"):
        things_meg_runs(tmp_path, "P1")
    bad = _events(1, 1).assign(trial_type="odd")
    with pytest.raises(ValueError, match="'trial_type' must be one of"):
        things_meg_events(bad)
    root = _replica(tmp_path / "r")
    with pytest.raises(TypeError, match="sets 'events' itself"):
        load_things_meg(root, 1, events=[])
