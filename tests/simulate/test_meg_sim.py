"""The MEG simulator: BIDS/FIF output, ground truth, evoked timing, the oracle."""

from __future__ import annotations

import json

import mne
import numpy as np
import pandas as pd
import pytest
from _electro_data import MEG_KW, simulated_meg, world

from braindecode_kit.io.meg import load_meg
from braindecode_kit.simulate.meg import SimulatedMEG, meg_forward, simulate_meg


def test_bids_layout_and_events():
    sim = simulated_meg()
    p = sim.paths("01")
    assert len(p["raw"]) == MEG_KW["n_runs"] and all(f.is_file() for f in p["raw"])
    assert p["raw"][0].name == "sub-01_ses-01_task-main_run-01_meg.fif"
    ev = pd.concat(sim.events("01"), ignore_index=True)
    for col in ("onset", "duration", "trial_type", "value", "sample", "stimulus_id", "split"):
        assert col in ev.columns
    n_trials = MEG_KW["n_train"] + MEG_KW["n_test"] * MEG_KW["n_test_reps"]
    assert len(ev) == n_trials
    assert set(ev["trial_type"]) == {"exp", "test"}
    assert (ev.groupby("stimulus_id")["split"].nunique() == 1).all()
    test_counts = ev[ev["split"] == "test"]["stimulus_id"].value_counts()
    assert (test_counts == MEG_KW["n_test_reps"]).all() and len(test_counts) == MEG_KW["n_test"]
    assert (ev[ev["split"] == "train"]["stimulus_id"].value_counts() == 1).all()
    # the stim channel carries the same onsets and codes as events.tsv
    raw = mne.io.read_raw_fif(p["raw"][0], verbose=False)
    assert raw.info["sfreq"] == MEG_KW["sfreq"]
    found = mne.find_events(raw, stim_channel="UPPT001", shortest_event=1, verbose=False)
    first = sim.events("01")[0]
    np.testing.assert_array_equal(found[:, 2], first["value"].to_numpy())
    np.testing.assert_allclose((found[:, 0] - raw.first_samp) / raw.info["sfreq"],
                               first["onset"], atol=1.0 / raw.info["sfreq"])
    types = raw.get_channel_types()
    assert types.count("mag") == 274 and "eog" in types and "stim" in types
    meta = json.loads((sim.root / "derivatives/simulation/simulation.json").read_text())
    assert meta["kind"] == "meg" and meta["subjects"] == ["01"]


def test_reopen_and_reuse(tmp_path):
    sim = simulated_meg()
    again = SimulatedMEG.load(sim.root)
    assert again.test_ids == sim.test_ids and again.train_ids == sim.train_ids
    assert not set(sim.test_ids) & set(sim.train_ids)
    # the same arguments reopen the dataset instead of rewriting it
    mtime = sim.paths("01")["raw"][0].stat().st_mtime
    same = simulate_meg(world(), sim.root, n_subjects=1, seed=0, **MEG_KW)
    assert same.paths("01")["raw"][0].stat().st_mtime == mtime
    with pytest.raises(FileExistsError, match="overwrite=True"):
        simulate_meg(world(), sim.root, n_subjects=1, seed=1, **MEG_KW)
    with pytest.raises(FileNotFoundError, match="not a simulated meg dataset"):
        SimulatedMEG.load(tmp_path)


def test_ground_truth_evoked_shapes():
    sim = simulated_meg()
    g = sim.ground_truth("01")
    n_src = len(g["region"])
    assert g["leadfield"].shape == (274, n_src)
    assert g["amplitudes"].shape == (MEG_KW["n_train"] + MEG_KW["n_test"], n_src)
    assert set(g["region"]) == {"occipital", "ventral_temporal"}
    ev, times = sim.evoked("01")
    assert ev.shape == (MEG_KW["n_test"], 274, times.size)
    assert np.all(ev[:, :, times < 0] == 0)


def test_recorded_evoked_peaks_near_100ms(tmp_path):
    # at snr 10 the average of 30 trials shows the evoked response itself (at the default
    # snr it is noise-dominated: its peak moved between 0.03 and 0.28 s across seeds 0-5)
    from braindecode_kit.simulate.meg import simulate_meg

    sim = simulate_meg(world(), tmp_path, n_subjects=1, seed=3, snr=10.0, **MEG_KW)
    ts = load_meg(sim.paths("01")["raw"], tmin=-0.1, tmax=0.4, l_freq=1.0, h_freq=30.0,
                  sfreq=None, scaling=None, clamp=None)
    occ = np.array([n[2] == "O" for n in ts.info.ch_names])
    assert occ.sum() > 20
    evoked = ts.data.mean(axis=0)  # (C, T)
    times = ts.info.times(ts.data.shape[2])
    rms = np.sqrt((evoked[occ] ** 2).mean(axis=0))
    win = (times > 0) & (times < 0.3)
    peak = times[win][np.argmax(rms[win])]
    assert 0.07 <= peak <= 0.14, peak  # seeds 0-5: 0.087-0.12 s
    # the response stands far out of the pre-stimulus baseline (seeds 0-5: 21-41x)
    every = np.sqrt((evoked ** 2).mean(axis=0))
    k = np.argmin(np.abs(times - peak))
    assert every[k] > 8 * every[times < 0].mean()


def test_oracle_beats_chance_and_grows_with_repetitions():
    sim = simulated_meg()
    one = sim.oracle_retrieval("01", n_draws=10, seed=0)
    avg = sim.oracle_retrieval("01", n_draws=10, seed=0, n_reps=None)
    assert one["chance"] == 1 / MEG_KW["n_test"]
    assert one["top1"] > 3 * one["chance"]
    assert avg["top1"] >= one["top1"] and avg["n_reps"] == MEG_KW["n_test_reps"]
    top3 = sim.oracle_retrieval("01", n_draws=10, seed=0, k=3)
    assert top3["top1"] >= one["top1"]
    # top-1 and top-k of the same draws share one simulation (cached on the object): a
    # freshly opened dataset gives the same numbers, and every draw's top-3 >= its top-1
    fresh = SimulatedMEG.load(sim.root)
    assert fresh.oracle_retrieval("01", n_draws=10, seed=0, k=3) == top3
    assert all(t >= o for t, o in zip(top3["draws"], one["draws"]))
    assert sim.oracle_retrieval("01", n_draws=10, seed=1) != one
    with pytest.raises(ValueError, match="subject"):
        sim.oracle_retrieval("07")


def test_neuromag_system_and_sphere_inside_helmet(tmp_path):
    fw = meg_forward("neuromag306")
    types = fw["info"].get_channel_types()
    assert types.count("grad") == 204 and types.count("mag") == 102
    sim = simulate_meg(world(), tmp_path / "nm", n_subjects=1, system="neuromag306",
                       n_train=6, n_test=3, n_test_reps=2, n_runs=1, sfreq=150.0)
    raw = mne.io.read_raw_fif(sim.paths("01")["raw"][0], verbose=False)
    assert "STI101" in raw.ch_names and raw.get_channel_types().count("grad") == 204
    assert sim.oracle_retrieval("01", n_draws=3)["top1"] >= 0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="system"):
        simulate_meg(world(), tmp_path / "x", system="kit")
    with pytest.raises(ValueError, match="Not enough stimuli"):
        simulate_meg(world(), tmp_path / "x", n_train=500)
    with pytest.raises(ValueError, match="Nyquist"):
        simulate_meg(world(), tmp_path / "x", sfreq=90.0, line_freq=50.0)
    assert not (tmp_path / "x").exists()


def test_same_seed_same_numbers(tmp_path):
    kw = dict(n_subjects=1, n_train=4, n_test=2, n_test_reps=2, n_runs=1, sfreq=150.0)
    a = simulate_meg(world(), tmp_path / "a", seed=3, **kw)
    b = simulate_meg(world(), tmp_path / "b", seed=3, **kw)
    c = simulate_meg(world(), tmp_path / "c", seed=4, **kw)
    ra, rb, rc = (mne.io.read_raw_fif(s.paths("01")["raw"][0], verbose=False).get_data()
                  for s in (a, b, c))
    np.testing.assert_array_equal(ra, rb)
    assert ra.shape != rc.shape or not np.array_equal(ra, rc)
    pd.testing.assert_frame_equal(a.events("01")[0], b.events("01")[0])
