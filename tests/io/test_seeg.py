"""load_seeg on real recordings (MNE testing data: Persyst ECoG, EDF x2, BrainVision, FIF)
and on simulated BIDS iEEG runs."""

from __future__ import annotations

import os

import mne
import numpy as np
import pandas as pd
import pytest
from _electro_data import SEEG_KW, simulated_seeg

from braindecode_kit.io.seeg import EDFClippingError, channel_regions, load_seeg
from braindecode_kit.trialset import TrialSet

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
LAY = os.path.join(DATA, "ieeg", "sub-pt1_ses-02_task-monitor_acq-ecog_run-01_clip2.lay")
EDF = os.path.join(DATA, "eeg", "test_reduced.edf")
EDF_TYPES = os.path.join(DATA, "eeg", "chtypes_edf.edf")
VHDR = os.path.join(DATA, "eeg", "test_NO.vhdr")
FIF = os.path.join(DATA, "meg", "neuromag306_sample_audvis_trunc_raw_sss.fif")
FAST = dict(l_freq=None, h_freq=None, sfreq=None, baseline=None, notch=None)
V = mne.io.constants.FIFF.FIFF_UNIT_V


def _events(onsets, split=None):
    d = {"onset": onsets, "stimulus_id": [f"img{i % 3}" for i in range(len(onsets))]}
    if split is not None:
        d["split"] = split
    return pd.DataFrame(d)


def test_persyst_ecog_bipolar():
    grid = {f"POL X{i}": "ecog" for i in range(1, 32)}
    ts = load_seeg(LAY, _events([1.0, 2.0, 3.0]), ch_types=grid, tmin=-0.2, tmax=0.5,
                   reference="bipolar", **FAST)
    assert ts.modality == "seeg" and ts.info.sfreq == 200.0
    assert ts.data.shape == (3, 30, 141)
    assert ts.info.ch_names[0] == "POL X1-POL X2" and set(ts.info.ch_types) == {"ecog"}
    assert {ch["unit"] for ch in ts.info.info["chs"]} == {V}
    mono = load_seeg(LAY, _events([1.0, 2.0]), ch_types=grid, tmin=-0.2, tmax=0.5,
                     reference=None, scaling=None, **FAST)
    assert mono.data.shape[1] == 31 and 1e-7 < np.abs(mono.data).max() < 1e-1  # volts


def test_edf_one_type_for_all_and_bipolar_shafts():
    ts = load_seeg(EDF, _events([1.0, 2.0, 3.0, 4.0]), ch_types="seeg", tmin=-0.2, tmax=0.5,
                   reference=None, drop_channels=["Ergo-Left", "Ergo-Right"], **FAST)
    assert ts.info.sfreq == 512.0 and ts.data.shape[1] == 136  # stim channel not relabelled
    assert set(ts.info.ch_types) == {"seeg"}
    bip = load_seeg(EDF, _events([1.0, 2.0]), ch_types="seeg", tmin=-0.2, tmax=0.5,
                    drop_channels=["Ergo-Left", "Ergo-Right"], **FAST)
    assert bip.data.shape[1] < 136 and "A1-A2" in bip.info.ch_names
    lap = load_seeg(EDF, _events([1.0, 2.0]), ch_types="seeg", tmin=-0.2, tmax=0.5,
                    reference="laplacian", drop_channels=["Ergo-Left", "Ergo-Right"], **FAST)
    assert lap.data.shape[1] == 136


def test_edf_with_type_prefixes_and_a_mapping():
    reader = lambda p: mne.io.read_raw_edf(p, infer_types=True, verbose=False)  # noqa: E731
    raw = reader(EDF_TYPES)
    types = raw.get_channel_types()
    assert types.count("ecg") == 2 and types.count("bio") == 2  # inferred from the prefixes
    eeg = [n for n, t in zip(raw.ch_names, types, strict=True) if t == "eeg"]
    kw = dict(reader=reader, ch_types=dict.fromkeys(eeg, "seeg"), reference="average",
              tmin=-0.1, tmax=0.4, **FAST)
    # this clinical export has saturated DC inputs: the clipping check finds them
    with pytest.raises(EDFClippingError, match=r"5 channel\(s\) clipped .* POL DC02"):
        load_seeg(EDF_TYPES, _events([1.0, 2.0]), **kw)
    dc = ["POL DC02", "POL DC03", "POL DC04", "POL $A1", "POL $A2"]
    kw["ch_types"] = {n: "seeg" for n in eeg if n not in dc}
    ts = load_seeg(EDF_TYPES, _events([1.0, 2.0]), drop_channels=dc, **kw)
    assert ts.data.shape[1] == len(eeg) - 5 == 33 and ts.info.sfreq == 200.0
    assert set(ts.info.ch_types) == {"seeg"}


def test_brainvision_resampled_average_reference():
    ts = load_seeg(VHDR, _events([0.15, 0.3]), ch_types="seeg", reference="average",
                   tmin=-0.05, tmax=0.1, l_freq=None, h_freq=None, sfreq=1000.0,
                   baseline=None, notch=None)
    assert ts.info.sfreq == 1000.0 and ts.data.shape == (2, 65, 151)


def test_fif_eeg_channels_as_seeg():
    raw = mne.io.read_raw_fif(FIF, verbose=False)
    eeg = [n for n, t in zip(raw.ch_names, raw.get_channel_types(), strict=True) if t == "eeg"]
    ts = load_seeg(FIF, _events([0.3, 0.6]), ch_types=dict.fromkeys(eeg, "seeg"),
                   reference=None, tmin=-0.1, tmax=0.2, **FAST)
    assert ts.data.shape[1] == 60 and ts.info.positions_3d is not None


def test_simulated_bids_regions_positions_and_features(tmp_path):
    sim = simulated_seeg()
    contacts = sim.contacts("01")
    ts = load_seeg(sim.paths("01")["raw"])
    n = SEEG_KW["n_train"] + SEEG_KW["n_test"] * SEEG_KW["n_test_reps"]
    n_pairs = len(contacts) - contacts["group"].nunique()
    assert ts.data.shape == (n, n_pairs, 501) and ts.info.sfreq == SEEG_KW["sfreq"]
    assert set(ts.info.ch_types) == {"seeg"}
    regions = channel_regions(ts)
    first = ts.info.ch_names[0]
    anode = first.split("-")[0]
    assert regions[first] == contacts.set_index("name").loc[anode, "region"]
    # the pair sits between its contacts (positions from electrodes.tsv, in metres)
    pos = contacts.set_index("name")[["x_mm", "y_mm", "z_mm"]] / 1000.0
    cathode = first.split("-")[1]
    np.testing.assert_allclose(ts.info.positions_3d[0],
                               (pos.loc[anode] + pos.loc[cathode]).to_numpy() / 2, atol=1e-6)
    vis = load_seeg(sim.paths("01")["raw"], regions=["occipital", "ventral_temporal"],
                    features="both", sfreq=100.0)
    assert set(channel_regions(vis).values()) <= {"occipital", "ventral_temporal"}
    assert vis.info.sfreq == 100.0 and vis.data.shape[1] % 2 == 0
    assert sum(n.endswith("_hg") for n in vis.info.ch_names) == vis.data.shape[1] // 2
    vis.save(tmp_path / "ts")  # regions and positions survive the TrialSet folder
    back = TrialSet.load(tmp_path / "ts")
    assert channel_regions(back) == channel_regions(vis)
    np.testing.assert_allclose(back.info.positions_3d, vis.info.positions_3d)
    root = load_seeg(sim.root, subject="02", l_freq=None, reference="average")
    assert root.subject == "02" and root.data.shape[1] == len(sim.contacts("02"))


# ----------------------------------------------------------------------------- bad input
def test_refuses_eeg_typed_contacts_without_ch_types():
    with pytest.raises(ValueError, match=r"expected sEEG/ECoG channels .* found channel "
                                         r"types \{'eeg': 83\}.*ch_types='seeg'"):
        load_seeg(LAY, _events([1.0]), tmin=-0.1, tmax=0.2, **FAST)


def test_refuses_unknown_or_mislabelled_channel_types():
    with pytest.raises(ValueError, match="'ch_types' has unknown type"):
        load_seeg(LAY, _events([1.0]), ch_types={"FP1": "sEEG-contact"}, tmin=-0.1, tmax=0.2,
                  **FAST)
    with pytest.raises(ValueError, match="'ch_types' names"):
        load_seeg(LAY, _events([1.0]), ch_types={"LA1": "seeg"}, tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="Allowed types"):
        load_seeg(LAY, _events([1.0]), ch_types="electrode", tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="<shaft><number>"):
        load_seeg(EDF, _events([1.0]), ch_types="seeg", tmin=-0.1, tmax=0.2, **FAST)


def test_refuses_edf_that_clips(tmp_path):
    info = mne.create_info(["LA1", "LA2", "LA3"], 256.0, "seeg")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 256 * 4)) * 60e-6
    x[1] = np.clip(x[1], -50e-6, 50e-6)  # an amplifier that saturated at +-50 uV
    raw = mne.io.RawArray(x, info, verbose=False)
    path = tmp_path / "clip.edf"
    mne.export.export_raw(path, raw, fmt="edf", physical_range="channelwise",
                          overwrite=True, verbose=False)
    kw = dict(ch_types="seeg", reference=None, tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(EDFClippingError, match=r"1 channel\(s\) clipped .* found LA2: \d+ "
                                               r"samples at \[-50, 50\] uV"):
        load_seeg(path, _events([1.0, 2.0]), **kw)
    ok = load_seeg(path, _events([1.0, 2.0]), check_clipping=False, **kw)
    assert ok.data.shape[1] == 3


def test_refuses_subject_with_no_responsive_contact_left():
    sim = simulated_seeg()
    contacts = sim.contacts("01")
    vis = contacts.loc[contacts["region"].isin(["occipital", "ventral_temporal"]), "name"]
    raws = [mne.io.read_raw_edf(p, verbose=False) for p in sim.paths("01")["raw"]]
    for raw in raws:
        raw.set_channel_types(dict.fromkeys(raw.ch_names, "seeg"), verbose=False)
        raw.info["bads"] = list(vis)
    events = sim.events("01")
    with pytest.raises(ValueError, match=r"no contact left: expected at least one sEEG/ECoG "
                                         r"contact in regions \['occipital', "
                                         r"'ventral_temporal'\] after dropping bad channels"):
        load_seeg(raws, events, electrodes=sim.paths("01")["electrodes"],
                  regions=["occipital", "ventral_temporal"], **FAST)


def test_refuses_events_and_rates():
    with pytest.raises(ValueError, match="outside the recording"):
        load_seeg(LAY, _events([10.0]), ch_types="ecog", tmin=-0.1, tmax=0.2, **FAST)
    a = mne.io.read_raw(LAY, preload=True, verbose=False)
    b = a.copy().resample(100.0, verbose=False)
    with pytest.raises(ValueError, match="different sampling rates"):
        load_seeg([a, b], [_events([1.0]), _events([1.0])], ch_types="ecog", reference=None,
                  tmin=-0.1, tmax=0.2, **FAST)
    with pytest.raises(ValueError, match="need a sampling rate above 300 Hz, found 200 Hz"):
        load_seeg(LAY, _events([1.0]), ch_types="ecog", reference=None, features="high_gamma",
                  tmin=-0.1, tmax=0.2, **FAST)
    c = a.copy()
    c._data[3, :5] = np.inf
    with pytest.raises(ValueError, match="expected finite samples"):
        load_seeg(c, _events([1.0]), ch_types="ecog", reference=None, tmin=-0.1, tmax=0.2,
                  **FAST)
