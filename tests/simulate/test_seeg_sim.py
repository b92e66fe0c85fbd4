"""The sEEG simulator: BIDS iEEG + EDF output, implantations, responses, the oracle."""

from __future__ import annotations

import mne
import numpy as np
import pandas as pd
import pytest
from _electro_data import SEEG_KW, simulated_seeg, world

from braindecode_kit.io.seeg import load_seeg
from braindecode_kit.simulate.seeg import SimulatedSEEG, simulate_seeg


def test_bids_ieeg_layout():
    sim = simulated_seeg()
    p = sim.paths("01")
    assert [f.name for f in p["raw"]] == [f"sub-01_ses-01_task-main_run-{r:02d}_ieeg.edf"
                                          for r in (1, 2)]
    ch = pd.read_csv(p["raw"][0].with_name(p["raw"][0].name.replace("_ieeg.edf",
                                                                    "_channels.tsv")), sep="\t")
    for col in ("name", "type", "units", "low_cutoff", "high_cutoff"):
        assert col in ch.columns
    assert set(ch["type"]) == {"SEEG"} and set(ch["units"]) == {"µV"}
    el = pd.read_csv(p["electrodes"], sep="\t")
    for col in ("name", "x", "y", "z", "size", "group", "region"):
        assert col in el.columns
    assert (el["size"] > 0).all() and list(el["name"]) == list(ch["name"])
    assert np.abs(el[["x", "y", "z"]].to_numpy()).max() < 0.2  # metres
    ev = pd.read_csv(p["events"][0], sep="\t")
    for col in ("onset", "duration", "trial_type", "value", "sample", "stimulus_id", "split"):
        assert col in ev.columns
    assert set(ev["trial_type"]) == {"exp", "test"}


def test_contacts_differ_between_subjects_and_shaft_names():
    sim = simulated_seeg()
    a, b = sim.contacts("01"), sim.contacts("02")
    assert set(a["name"]) != set(b["name"])
    for c in (a, b):
        assert {"occipital", "ventral_temporal"} <= set(c["region"])
        assert c["responsive"].any()
        assert set(c.loc[c["responsive"], "region"]) <= {"occipital", "ventral_temporal"}
        for _, grp in c.groupby("group"):
            assert list(grp["name"]) == [f"{grp['group'].iloc[0]}{k}"
                                         for k in range(1, len(grp) + 1)]
            d = np.diff(grp[["x_mm", "y_mm", "z_mm"]].to_numpy(), axis=0)
            np.testing.assert_allclose(np.linalg.norm(d, axis=1), 3.5, atol=1e-6)


def test_edf_physical_units_and_range_round_trip():
    from braindecode_kit.io.seeg import edf_header

    sim = simulated_seeg()
    path = sim.paths("01")["raw"][0]
    hdr = edf_header(path)
    hdr = hdr[hdr["label"] != "EDF Annotations"]
    assert set(hdr["unit"].str.lower()) == {"uv"}
    raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    assert raw.info["sfreq"] == SEEG_KW["sfreq"]
    assert {ch["unit"] for ch in raw.info["chs"]} == {mne.io.constants.FIFF.FIFF_UNIT_V}
    x = raw.get_data()
    sd = np.median(x.std(axis=1))
    assert 5e-6 < sd < 200e-6  # tens of microvolts, read back in volts
    # channel-wise physical range: the data fill it without clipping
    mx = x.max(axis=1) / 1e-6
    np.testing.assert_allclose(mx, hdr["pmax"].to_numpy()[: x.shape[0]], rtol=1e-3)
    assert (np.isclose(x, x.max(axis=1, keepdims=True)).sum(axis=1) < 5).all()


def _responsive_pair(sim, subject, region, key="erp_amplitudes"):
    c = sim.contacts(subject)
    g = sim.ground_truth(subject)
    r_idx = g["responsive_index"]
    amp = np.abs(g[key]).mean(0)
    for j in np.argsort(-amp):
        row = c.iloc[r_idx[j]]
        nxt = f"{row['group']}{row['number'] + 1}"
        if row["region"] == region and nxt in set(c["name"]):
            return f"{row['name']}-{nxt}", j
    raise AssertionError("no responsive pair")


def test_responsive_contacts_evoked_and_high_gamma_tuned():
    sim = simulated_seeg()
    pair, j = _responsive_pair(sim, "01", "occipital")
    ts = load_seeg(sim.paths("01")["raw"], tmin=-0.2, tmax=0.6, l_freq=1.0, h_freq=40.0,
                   scaling=None, clamp=None)
    names = ts.info.ch_names
    times = ts.info.times(ts.data.shape[2])
    evoked = ts.data.mean(axis=0)
    k = names.index(pair)
    win = (times > 0) & (times < 0.3)
    peak = times[win][np.argmax(np.abs(evoked[k, win]))]
    assert 0.06 <= peak <= 0.15, peak
    wm = [i for i, n in enumerate(names) if n.startswith(("LFR", "RFR", "LP", "RP", "LA", "RA"))
          and n not in pair]
    if wm:
        assert np.abs(evoked[k, win]).max() > 3 * np.abs(evoked[wm][:, win]).max(axis=1).mean()
    hg = load_seeg(sim.paths("01")["raw"], features="high_gamma", tmin=-0.2, tmax=0.6,
                   l_freq=None, h_freq=None, baseline=None, scaling=None, clamp=None)
    pair, j = _responsive_pair(sim, "01", "occipital", "hg_amplitudes")
    k = names.index(pair)
    env = hg.data[:, k]
    post = env[:, (times > 0.05) & (times < 0.35)].mean(1)
    pre = env[:, times < 0].mean(1)
    assert post.mean() > 1.5 * pre.mean()
    # high-gamma power follows the contact's tuning across stimuli
    g = sim.ground_truth("01")
    truth = dict(zip(g["stimulus_id"], g["hg_amplitudes"][:, j], strict=True))
    tab = hg.trials.assign(power=post)
    by = tab.groupby("stimulus_id")["power"].mean()
    r = np.corrcoef(by.to_numpy(), [truth[s] for s in by.index])[0, 1]
    assert r > 0.4, r


def test_oracle_beats_chance():
    sim = simulated_seeg()
    res = sim.oracle_retrieval("01", n_draws=4, seed=0)
    assert res["top1"] > 2.5 * res["chance"]
    # top-k of the same draws reuses their simulation; a fresh object gives the same
    top5 = sim.oracle_retrieval("01", n_draws=4, seed=0, k=5)
    assert type(sim).load(sim.root).oracle_retrieval("01", n_draws=4, seed=0, k=5) == top5
    assert all(t >= o for t, o in zip(top5["draws"], res["draws"]))
    with pytest.raises(ValueError, match="subject"):
        sim.oracle_retrieval("09")


def test_reopen_and_bad_arguments(tmp_path):
    sim = simulated_seeg()
    again = SimulatedSEEG.load(sim.root)
    assert again.subjects == ["01", "02"] and again.test_ids == sim.test_ids
    with pytest.raises(ValueError, match="holds a simulated 'seeg' dataset"):
        from braindecode_kit.simulate.meg import SimulatedMEG

        SimulatedMEG.load(sim.root)
    with pytest.raises(ValueError, match="n_shafts"):
        simulate_seeg(world(), tmp_path / "x", n_shafts=(1, 3))
    with pytest.raises(ValueError, match="sfreq"):
        simulate_seeg(world(), tmp_path / "x", sfreq=200.0)
    assert not (tmp_path / "x").exists()
