"""Tests of the data model: TrialSet (fMRI and MEG/sEEG), with VoxelInfo and the split
helpers it uses; the contract tests at the end run once per modality."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from braindecode_kit.info import SensorInfo, VoxelInfo
from braindecode_kit.splits import SplitLeakError, assign_splits, check_no_leak
from braindecode_kit.trialset import REQUIRED_COLUMNS, TrialSet

DATA = Path(__file__).parent / "data"
NEUROMAG = DATA / "meg" / "neuromag306_sample_audvis_trunc_raw_sss.fif"
CTF = DATA / "meg" / "ctf275_testdata_short_discontinuous_raw.fif"

SUBJECT = "sub-01"


def make_trials(n: int, n_stim: int = 4, split: str = "", extra: bool = True) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "subject": SUBJECT,
            "session": np.repeat(np.arange(1, 3), int(np.ceil(n / 2)))[:n],
            "run": 1,
            "onset": np.arange(n) * 4.0,
            "stimulus_id": [f"s{i % n_stim}" for i in range(n)],
            "repetition": np.arange(n) // n_stim,
            "split": split,
        },
        index=pd.Index([f"t{i:03d}" for i in range(n)], name="trial_id"),
    )
    if extra:
        table["block"] = "A"
        table["rt"] = np.linspace(0.3, 0.9, n)
    return table


def make_voxel_info() -> VoxelInfo:
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    mask[1:3, 1:4, 2:5] = 1  # 18 voxels
    return VoxelInfo.from_mask(nib.Nifti1Image(mask, np.diag([2.0, 2.0, 2.0, 1.0])))


def make_fmri(n: int = 12, n_stim: int = 4, dtype=np.float32, seed: int = 0) -> TrialSet:
    info = make_voxel_info()
    data = np.random.default_rng(seed).standard_normal((n, info.n_voxels)).astype(dtype)
    return TrialSet(data, make_trials(n, n_stim), "fmri", SUBJECT, info)


def make_meg(n: int = 12, n_ch: int = 3, n_times: int = 10, dtype=np.float32) -> TrialSet:
    import mne

    info = mne.create_info([f"MEG{i:03d}" for i in range(n_ch)], 120.0, "mag")
    data = np.random.default_rng(1).standard_normal((n, n_ch, n_times)).astype(dtype)
    return TrialSet(data, make_trials(n), "meg", SUBJECT, info, tmin=-0.2)


# --------------------------------------------------------------------------- construction
def test_basic_properties():
    ts = make_fmri()
    assert ts.n_trials == len(ts) == 12
    assert ts.n_features == ts.n_voxels == 18
    assert ts.stimulus_ids == ["s0", "s1", "s2", "s3"] * 3  # one per trial
    assert ts.modality == "fmri" and ts.subject == SUBJECT and ts.tmin is None
    assert "18 voxels" in repr(ts) and "sub-01" in repr(ts)
    meg = make_meg()
    assert meg.n_features == 30 and meg.n_channels == 3 and meg.n_times == 10
    with pytest.raises(AttributeError, match="MEG/sEEG only"):
        _ = ts.n_channels
    with pytest.raises(AttributeError, match="fMRI only"):
        _ = meg.n_voxels


def test_trials_is_a_copy():
    ts = make_fmri()
    t = ts.trials
    t.loc[t.index[0], "split"] = "test"
    assert ts.trials["split"].iloc[0] == ""


def test_repr_html():
    html = make_fmri().with_splits(assign_splits([f"s{i}" for i in range(4)], val=1, test=1))
    text = html._repr_html_()
    for needle in ("sub-01", "fmri", "12 x 18", "train: 6 / 2", "test: 3 / 1", "<table", "t000"):
        assert needle in text
    assert "120 Hz" in make_meg()._repr_html_()


@pytest.mark.parametrize(
    "data, modality, match, exc",
    [
        (np.zeros((12, 18), np.float64), "fmri", "float32", TypeError),
        (np.zeros((12, 18), np.int16), "fmri", "float32", TypeError),
        (np.zeros((12, 3, 6), np.float32), "fmri", "2-D", ValueError),
        (np.zeros((12, 18), np.float32), "meg", "3-D", ValueError),
        (np.zeros((11, 18), np.float32), "fmri", "11 trials", ValueError),
        (np.zeros((12, 18), np.float32), "eeg", "'modality'", ValueError),
        ([[0.0] * 18] * 12, "fmri", "numpy array", TypeError),
        (np.zeros((12, 0), np.float32), "fmri", "at least one feature", ValueError),
    ],
)
def test_bad_data(data, modality, match, exc):
    with pytest.raises(exc, match=match):
        TrialSet(data, make_trials(12), modality, SUBJECT)


def test_non_finite_refused_with_position():
    data = np.zeros((12, 18), np.float32)
    data[7, 3] = np.nan
    data[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"found 2 NaN.*\(7, 3\)"):
        TrialSet(data, make_trials(12), "fmri", SUBJECT)
    TrialSet(data, make_trials(12), "fmri", SUBJECT, check_finite=False)  # opt out


def test_non_finite_checked_in_chunks(monkeypatch, tmp_path):
    import braindecode_kit.trialset as mod

    monkeypatch.setattr(mod, "_CHUNK_BYTES", 3 * 18 * 4)  # 3 rows per chunk
    data = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (12, 18))
    data[:] = 0
    data[10, 5] = np.nan
    data[4, 1] = -np.inf
    with pytest.raises(ValueError, match=r"found 2 NaN.*\(4, 1\)"):
        TrialSet(data, make_trials(12), "fmri", SUBJECT)


@pytest.mark.parametrize(
    "edit, match, exc",
    [
        (lambda t: t.drop(columns=["stimulus_id", "run"]), r"missing.*'run', 'stimulus_id'",
         ValueError),
        (lambda t: t.set_axis(["a"] * 12, axis=0), "unique.*'a'", ValueError),
        (lambda t: t.assign(subject="sub-02"), "sub-02", ValueError),
        (lambda t: t.assign(split="training"), "'training'", ValueError),
        (lambda t: t.assign(stimulus_id=np.arange(12)), "'stimulus_id' must hold str", TypeError),
        (lambda t: t.assign(repetition=0.5), "'repetition' must be integer", TypeError),
        (lambda t: t.assign(onset="x"), "'onset' must be numeric", TypeError),
        (lambda t: t.assign(session=np.nan), "'session' has missing", ValueError),
        (lambda t: t.assign(stimulus_id=""), "empty ids", ValueError),
        (lambda t: t.to_numpy(), "DataFrame", TypeError),
    ],
)
def test_bad_trials(edit, match, exc):
    with pytest.raises(exc, match=match):
        TrialSet(np.zeros((12, 18), np.float32), edit(make_trials(12)), "fmri", SUBJECT)


def test_bad_subject_info_tmin():
    data = np.zeros((12, 18), np.float32)
    with pytest.raises(TypeError, match="'subject'"):
        TrialSet(data, make_trials(12), "fmri", "")
    with pytest.raises(ValueError, match=r"info.n_voxels=18 different from.*n_voxels=17"):
        TrialSet(data[:, :17], make_trials(12), "fmri", SUBJECT, make_voxel_info())
    with pytest.raises(TypeError, match="VoxelInfo"):
        TrialSet(data, make_trials(12), "fmri", SUBJECT, info={"a": 1})
    with pytest.raises(ValueError, match="'tmin' applies to MEG"):
        TrialSet(data, make_trials(12), "fmri", SUBJECT, tmin=0.0)
    import mne

    info = mne.create_info(4, 100.0, "seeg")
    with pytest.raises(ValueError, match=r"n_channels=3.*len\(info\['ch_names'\]\)=4"):
        TrialSet(np.zeros((12, 3, 5), np.float32), make_trials(12), "seeg", SUBJECT, info,
                 tmin=0.0)
    with pytest.raises(ValueError, match="'tmin' is needed with an mne.Info"):
        TrialSet(np.zeros((12, 4, 5), np.float32), make_trials(12), "seeg", SUBJECT, info)
    si = SensorInfo(info, tmin=-0.5)
    with pytest.raises(ValueError, match=r"'tmin'=0.0 different from info.tmin=-0.5"):
        TrialSet(np.zeros((12, 4, 5), np.float32), make_trials(12), "seeg", SUBJECT, si,
                 tmin=0.0)
    assert TrialSet(np.zeros((12, 4, 5), np.float32), make_trials(12), "seeg", SUBJECT, si,
                    tmin=-0.5).tmin == -0.5
    with pytest.raises(TypeError, match="mne.Info"):
        TrialSet(np.zeros((12, 3, 5), np.float32), make_trials(12), "seeg", SUBJECT,
                 make_voxel_info())
    with pytest.raises(TypeError, match="'tmin'"):
        TrialSet(np.zeros((12, 3, 5), np.float32), make_trials(12), "seeg", SUBJECT, tmin="0")


# --------------------------------------------------------------------------- VoxelInfo
def test_voxel_info_from_mask_c_order_and_roi(tmp_path):
    mask = np.zeros((3, 4, 5), np.uint8)
    mask[2, 0, 1] = mask[0, 3, 4] = mask[1, 1, 1] = mask[0, 0, 2] = 1
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    roi = np.zeros_like(mask, dtype=np.int16)
    roi[1, 1, 1] = 2
    roi[2, 0, 1] = 7
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    info = VoxelInfo.from_mask(tmp_path / "mask.nii.gz", nib.Nifti1Image(roi, affine),
                               roi_names={2: "V1", 7: "FFA"})
    np.testing.assert_array_equal(info.ijk, [[0, 0, 2], [0, 3, 4], [1, 1, 1], [2, 0, 1]])
    np.testing.assert_array_equal(info.roi, [0, 0, 2, 7])
    assert info.roi_names == {2: "V1", 7: "FFA"} and info.n_voxels == 4
    img = info.to_nifti(np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    vol = np.asanyarray(img.dataobj)
    assert vol.shape == (3, 4, 5) and np.allclose(img.affine, affine)
    assert vol[0, 3, 4] == 2.0 and vol[2, 0, 1] == 4.0 and vol.sum() == 10.0
    img4 = info.to_nifti(np.arange(8.0).reshape(2, 4))
    assert img4.shape == (3, 4, 5, 2) and np.asanyarray(img4.dataobj)[2, 0, 1, 1] == 7.0


def test_voxel_info_bad_input(tmp_path):
    info = make_voxel_info()
    with pytest.raises(ValueError, match="length n_voxels=18, got 5"):
        info.to_nifti(np.zeros(5))
    with pytest.raises(ValueError, match=r"\(n_maps, n_voxels=18\)"):
        info.to_nifti(np.zeros((18, 2)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        info.to_nifti(np.zeros((1, 1, 18)))
    with pytest.raises(FileNotFoundError, match="no such file"):
        VoxelInfo.from_mask(tmp_path / "nope.nii.gz")
    with pytest.raises(TypeError, match="nibabel image or a path"):
        VoxelInfo.from_mask(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="3-D image"):
        VoxelInfo.from_mask(nib.Nifti1Image(np.ones((2, 2), np.uint8), np.eye(4)))
    with pytest.raises(ValueError, match="more than once"):
        VoxelInfo(np.eye(4), (2, 2, 2), np.array([[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="outside the volume"):
        VoxelInfo(np.eye(4), (2, 2, 2), np.array([[0, 0, 2]]))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        VoxelInfo(np.eye(3), (2, 2, 2), np.array([[0, 0, 0]]))
    with pytest.raises(ValueError, match="'roi'"):
        VoxelInfo(np.eye(4), (2, 2, 2), np.array([[0, 0, 0]]), roi=np.array([1, 2]))
    with pytest.raises(ValueError, match="mask's grid"):
        VoxelInfo.from_mask(nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)),
                            nib.Nifti1Image(np.ones((2, 2, 3), np.int16), np.eye(4)))


def test_trialset_to_nifti():
    ts = make_fmri()
    img = ts.to_nifti(ts.data[0])
    back = np.asanyarray(img.dataobj)[tuple(ts.info.ijk.T)]
    np.testing.assert_array_equal(back, ts.data[0])
    with pytest.raises(ValueError, match="fMRI"):
        make_meg().to_nifti(np.zeros(3))


# --------------------------------------------------------------------------- select etc.
def test_select():
    ts = make_fmri().with_splits({"s0": "train", "s1": "train", "s2": "val", "s3": "test"})
    tr = ts.select(split="train")
    assert tr.n_trials == 6 and set(tr.trials["stimulus_id"]) == {"s0", "s1"}
    np.testing.assert_array_equal(tr.data, ts.data[ts.trials["split"].to_numpy() == "train"])
    assert ts.select(split=["val", "test"]).n_trials == 6
    assert ts.select(session=2).n_trials == 6
    assert ts.select(session=[1, 2]).n_trials == 12
    sel = ts.select(stimulus_ids=["s3"], session=1)
    assert list(sel.trials.index) == ["t003"]
    m = np.zeros(12, bool)
    m[[1, 5]] = True
    assert list(ts.select(mask=m).trials.index) == ["t001", "t005"]
    with pytest.raises(ValueError, match="'split'"):
        ts.select(split="training")
    with pytest.raises(ValueError, match="matched no trials"):
        ts.select(stimulus_ids=["nope"])
    with pytest.raises(ValueError, match="boolean array of shape"):
        ts.select(mask=np.ones(3, bool))
    with pytest.raises(TypeError, match="single str"):
        ts.select(stimulus_ids="s1")


def test_select_keeps_memmap(tmp_path):
    ts = make_fmri()
    ts.save(tmp_path / "ts")
    loaded = TrialSet.load(tmp_path / "ts")
    assert isinstance(loaded.data, np.memmap)
    contiguous = loaded.select(session=2)  # trials 6..11
    assert isinstance(contiguous.data, np.memmap)
    np.testing.assert_array_equal(contiguous.data, ts.data[6:])
    scattered = loaded.select(stimulus_ids=["s0"])
    assert not isinstance(scattered.data, np.memmap)
    np.testing.assert_array_equal(scattered.data, ts.data[[0, 4, 8]])
    in_memory = TrialSet.load(tmp_path / "ts", mmap=False)
    assert not isinstance(in_memory.data, np.memmap)


def test_average_repetitions():
    ts = make_fmri().with_splits({"s0": "train", "s1": "train", "s2": "val", "s3": "test"})
    t = ts.trials
    t["vary"] = np.arange(12)
    ts = TrialSet(ts.data, t, "fmri", SUBJECT, ts.info)
    av = ts.average_repetitions()
    assert av.n_trials == 4 and list(av.trials.index) == ["s0", "s1", "s2", "s3"]
    np.testing.assert_allclose(av.data[1], ts.data[[1, 5, 9]].mean(0), rtol=1e-6)
    row = av.trials.loc["s1"]
    assert row["repetition"] == 3 and row["session"] == 1 and row["onset"] == 4.0
    assert row["split"] == "train" and row["block"] == "A"
    assert "vary" not in av.trials.columns  # not constant within a stimulus
    assert av.data.dtype == np.float32 and av.info.same_space(ts.info)
    # MEG, float16 input, uneven repetition counts
    meg = make_meg(dtype=np.float16).select(mask=np.arange(12) != 0)
    avm = meg.average_repetitions()
    assert avm.data.shape == (4, 3, 10) and avm.data.dtype == np.float32
    assert list(avm.trials.index) == ["s1", "s2", "s3", "s0"]  # first appearance
    assert list(avm.trials["repetition"]) == [3, 3, 3, 2]
    np.testing.assert_allclose(avm.data[3], meg.data[[3, 7]].astype(np.float32).mean(0),
                               rtol=1e-3)
    t = make_trials(12)
    t.loc["t004", "split"] = "test"
    t.loc["t000", "split"] = "train"
    with pytest.raises(SplitLeakError, match="'s0'"):
        TrialSet(ts.data, t, "fmri", SUBJECT).average_repetitions()


def test_average_repetitions_chunked(monkeypatch):
    import braindecode_kit.trialset as mod

    ts = make_fmri(n=40, n_stim=7)
    expected = ts.average_repetitions().data
    monkeypatch.setattr(mod, "_CHUNK_BYTES", 5 * 18 * 4)
    np.testing.assert_allclose(ts.average_repetitions().data, expected, rtol=1e-6)


def test_concatenate():
    ts = make_fmri()
    a, b = ts.select(session=1), ts.select(session=2)
    both = TrialSet.concatenate([a, b])
    np.testing.assert_array_equal(both.data, ts.data)
    pd.testing.assert_frame_equal(both.trials, ts.trials)
    with pytest.raises(ValueError, match="trial id"):
        TrialSet.concatenate([a, a])
    other = TrialSet(ts.data, make_trials(12).assign(subject="sub-02"), "fmri", "sub-02", ts.info)
    with pytest.raises(ValueError, match="subject='sub-02' different"):
        TrialSet.concatenate([ts, other])
    shifted = VoxelInfo(ts.info.affine + np.eye(4), ts.info.shape, ts.info.ijk)
    with pytest.raises(ValueError, match="feature space"):
        TrialSet.concatenate([a, TrialSet(b.data, b.trials, "fmri", SUBJECT, shifted)])
    with pytest.raises(ValueError, match="modality"):
        TrialSet.concatenate([make_meg().select(session=1), make_meg().select(session=2),
                              a])
    with pytest.raises(ValueError, match="dtype"):
        TrialSet.concatenate([a, TrialSet(b.data.astype(np.float16), b.trials, "fmri", SUBJECT,
                                          b.info)])
    with pytest.raises(TypeError, match="non-empty list"):
        TrialSet.concatenate([])
    leak_a = a.with_splits({"s0": "test", "s1": "train", "s2": "train", "s3": "train"})
    leak_b = b.with_splits({"s0": "train", "s1": "train", "s2": "train", "s3": "train"})
    with pytest.raises(SplitLeakError, match="'s0'"):
        TrialSet.concatenate([leak_a, leak_b])


def test_with_splits():
    ts = make_fmri()
    sp = assign_splits(ts.trials["stimulus_id"], val=1, test=1, seed=3)
    out = ts.with_splits(sp)
    assert (out.trials["split"] == out.trials["stimulus_id"].map(sp)).all()
    assert (ts.trials["split"] == "").all()  # the original is untouched
    with pytest.raises(ValueError, match="no entry for 1 stimulus.*'s3'"):
        ts.with_splits({"s0": "train", "s1": "train", "s2": "test"})
    with pytest.raises(ValueError, match="'split'"):
        ts.with_splits({s: "holdout" for s in set(ts.stimulus_ids)})
    with pytest.raises(TypeError, match="dict or a Series"):
        ts.with_splits(["train"] * 4)


# --------------------------------------------------------------------------- splits
def test_assign_splits_by_stimulus_and_deterministic():
    ids = [f"img{i:03d}" for i in range(100)]
    a = assign_splits(ids, val=0.1, test=0.2, seed=0)
    assert list(a.index) == ids and a.name == "split"
    assert (a == "test").sum() == 20 and (a == "val").sum() == 10 and (a == "train").sum() == 70
    b = assign_splits(list(reversed(ids)) + ids, val=0.1, test=0.2, seed=0)  # order, repeats
    pd.testing.assert_series_equal(a, b.loc[ids])
    c = assign_splits(ids, val=0.1, test=0.2, seed=1)
    assert not a.equals(c)
    fixed = assign_splits(ids, val=5, test_ids=ids[:30])
    assert set(fixed.index[fixed == "test"]) == set(ids[:30]) and (fixed == "val").sum() == 5


def test_assign_splits_bad_input():
    with pytest.raises(ValueError, match="must not be empty"):
        assign_splits([])
    with pytest.raises(ValueError, match="'test'.*fraction"):
        assign_splits(["a", "b"], test=1.5)
    with pytest.raises(ValueError, match="'val'=5 stimuli"):
        assign_splits(["a", "b"], val=5)
    with pytest.raises(ValueError, match="'test_ids' must be among"):
        assign_splits(["a", "b"], test_ids=["c"])
    with pytest.raises(TypeError, match="str"):
        assign_splits([1.5, 2.5])
    with pytest.raises(ValueError, match="only 0 remain"):
        assign_splits(["a", "b"], val=1, test_ids=["a", "b"])


def test_check_no_leak():
    t = make_trials(12)
    check_no_leak(t)  # unassigned: nothing to check
    t["split"] = t["stimulus_id"].map({"s0": "train", "s1": "train", "s2": "val", "s3": "test"})
    check_no_leak(t)
    t.loc["t006", "split"] = "train"  # s2 also in train
    t.loc["t007", "split"] = "val"  # s3 in val and test
    with pytest.raises(SplitLeakError, match=r"2 stimulus.*'s2' in \['train', 'val'\].*'s3'"):
        check_no_leak(t)
    assert issubclass(SplitLeakError, ValueError)
    with pytest.raises(TypeError, match="TrialSet or a DataFrame"):
        check_no_leak([1, 2])
    with pytest.raises(ValueError, match="'split' column"):
        check_no_leak(t.drop(columns="split"))


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.text(alphabet="abcdefgh0123", min_size=1, max_size=4), min_size=1,
                 max_size=60),
    val=st.floats(0, 0.45),
    test=st.floats(0, 0.45),
    seed=st.integers(0, 2**31),
    reps=st.integers(1, 3),
)
def test_property_splits_never_leak(ids, val, test, seed, reps):
    sp = assign_splits(ids * reps, val=val, test=test, seed=seed)
    unique = list(dict.fromkeys(ids))
    assert list(sp.index) == unique and set(sp) <= {"train", "val", "test"}
    assert (sp == "test").sum() == round(test * len(unique))
    table = pd.DataFrame({"stimulus_id": ids * reps})
    table["split"] = table["stimulus_id"].map(sp)
    check_no_leak(table)  # assigned by stimulus: never a leak
    if len(unique) >= 2 and len(set(sp)) >= 2:
        # move one trial of a stimulus to another split: always caught, naming it
        victim = table.index[0]
        sid = table.loc[victim, "stimulus_id"]
        other = next(s for s in ("train", "val", "test") if s != table.loc[victim, "split"])
        table.loc[len(table)] = {"stimulus_id": sid, "split": other}
        with pytest.raises(SplitLeakError, match=repr(sid)):
            check_no_leak(table)


# --------------------------------------------------------------------------- save / load
def assert_same(a: TrialSet, b: TrialSet) -> None:
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    assert a.data.dtype == b.data.dtype
    pd.testing.assert_frame_equal(a.trials, b.trials, check_exact=True)
    assert (a.modality, a.subject, a.tmin) == (b.modality, b.subject, b.tmin)
    if a.info is None:
        assert b.info is None
    elif a.modality == "fmri":
        assert a.info.same_space(b.info)
        if a.info.roi is not None:
            np.testing.assert_array_equal(a.info.roi, b.info.roi)
            assert a.info.roi_names == b.info.roi_names
    else:
        assert a.info.same_as(b.info)
        assert a.info.info["ch_names"] == b.info.info["ch_names"]
        assert a.info.info["sfreq"] == b.info.info["sfreq"]
        assert a.info.info.get_channel_types() == b.info.info.get_channel_types()


def test_save_load_fmri_roi_and_order(tmp_path):
    ts = make_fmri()
    info = ts.info
    perm = np.random.default_rng(0).permutation(info.n_voxels)  # not C order
    info2 = VoxelInfo(info.affine, info.shape, info.ijk[perm], roi=np.arange(18) % 3,
                      roi_names={1: "V1", 2: "V2"})
    ts2 = TrialSet(ts.data, ts.trials, "fmri", SUBJECT, info2)
    out = ts2.save(tmp_path / "a")
    assert sorted(p.name for p in out.iterdir()) == [
        ".braindecode_kit", "data.npy", "ijk.npy", "mask.nii.gz", "roi.nii.gz", "trials.tsv",
        "trialset.json"]
    assert_same(ts2, TrialSet.load(out))
    meta = json.loads((out / "trialset.json").read_text())
    assert meta["shape"] == [12, 18] and meta["dtype"] == "float32" and meta["format_version"]
    assert np.load(out / "data.npy", mmap_mode="r").shape == (12, 18)  # plain npy
    # an existing folder is replaced whole, leaving no temporary folders behind
    make_fmri(seed=5).save(out)
    assert_same(make_fmri(seed=5), TrialSet.load(out))
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_save_memmap_and_no_info(tmp_path):
    ts = make_fmri()
    bare = TrialSet(ts.data, ts.trials, "fmri", SUBJECT)
    bare.save(tmp_path / "a")
    loaded = TrialSet.load(tmp_path / "a")
    assert loaded.info is None
    loaded.save(tmp_path / "b")  # saving from a memmap
    assert_same(bare, TrialSet.load(tmp_path / "b"))


def test_load_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        TrialSet.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a TrialSet folder.*trialset.json"):
        TrialSet.load(tmp_path / "empty")
    path = make_fmri().save(tmp_path / "ts")
    meta = json.loads((path / "trialset.json").read_text())
    (path / "trialset.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="does not describe a TrialSet"):
        TrialSet.load(path)
    (path / "trialset.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="newer format version"):
        TrialSet.load(path)
    (path / "trialset.json").write_text(json.dumps({**meta, "shape": [3, 18]}))
    with pytest.raises(ValueError, match="trialset.json says"):
        TrialSet.load(path)
    (path / "trialset.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TrialSet.load(path)
    (path / "trialset.json").write_text(json.dumps(meta))
    (path / "data.npy").unlink()
    with pytest.raises(ValueError, match="data.npy is missing"):
        TrialSet.load(path)


def test_load_refuses_nan_on_disk(tmp_path):
    path = make_fmri().save(tmp_path / "ts")
    arr = np.load(path / "data.npy", mmap_mode="r+")
    arr[3, 3] = np.nan
    arr.flush()
    del arr
    with pytest.raises(ValueError, match="changed after it was saved"):
        TrialSet.load(path)  # the recorded checksum catches the edit first
    with pytest.raises(ValueError, match="finite"):
        TrialSet.load(path, verify=False)
    assert TrialSet.load(path, check_finite=False, verify=False).n_trials == 12


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6)


@st.composite
def trial_tables(draw, n):
    n_stim = draw(st.integers(1, n))
    stim = draw(st.lists(_text.filter(lambda s: s and s == s.strip()), min_size=n_stim,
                         max_size=n_stim, unique=True))  # valid ids: no edge whitespace
    ids = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    table = pd.DataFrame(
        {
            "subject": SUBJECT,
            "session": draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)),
            "run": draw(st.lists(st.sampled_from(["01", "02", "10"]), min_size=n, max_size=n)),
            "onset": draw(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=n,
                                   max_size=n)),
            "stimulus_id": [stim[i % n_stim] for i in range(n)],
            "repetition": draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
            "split": "",
            "note": draw(st.lists(st.one_of(st.none(), _text), min_size=n, max_size=n)),
            "flag": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
            "rt": draw(st.lists(st.one_of(st.just(np.nan), st.floats(-1, 1, width=32)),
                                min_size=n, max_size=n)),
        },
        index=pd.Index(ids, name=draw(st.sampled_from(["trial_id", "trial"]))),
    )
    table["note"] = table["note"].astype(object)
    table["rt"] = table["rt"].astype(np.float32)
    splits = assign_splits(stim, val=0.2, test=0.2, seed=draw(st.integers(0, 99)))
    table["split"] = table["stimulus_id"].map(splits).astype(table["split"].dtype)
    return table


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(1, 8), n_feat=st.integers(1, 6),
       dtype=st.sampled_from([np.float32, np.float16]), meg=st.booleans())
def test_property_save_load_round_trip(data, n, n_feat, dtype, meg):
    table = data.draw(trial_tables(n))
    values = data.draw(st.lists(st.floats(-1e3, 1e3, width=16), min_size=n * n_feat * 2,
                                max_size=n * n_feat * 2))
    arr = np.asarray(values, dtype=dtype)
    if meg:
        import mne

        info = mne.create_info(n_feat, 250.0, "seeg")
        ts = TrialSet(arr.reshape(n, n_feat, 2), table, "seeg", SUBJECT, info,
                      tmin=data.draw(st.floats(-1, 0)))
    else:
        mask = np.zeros((2, 3, 4), np.uint8)
        mask.flat[np.sort(np.random.default_rng(n_feat).permutation(24)[: 2 * n_feat])] = 1
        ts = TrialSet(arr.reshape(n, 2 * n_feat), table, "fmri", SUBJECT,
                      VoxelInfo.from_mask(nib.Nifti1Image(mask, np.eye(4))))
    with tempfile.TemporaryDirectory() as tmp:
        ts.save(Path(tmp) / "ts")
        for mmap in (True, False):
            assert_same(ts, TrialSet.load(Path(tmp) / "ts", mmap=mmap))


def test_required_columns_constant():
    assert REQUIRED_COLUMNS == ("subject", "session", "run", "onset", "stimulus_id",
                                "repetition", "split")


# --------------------------------------------------------------------------- contract tests
# Written once, run on every modality: an fMRI TrialSet on a VoxelInfo, a MEG one on the
# real Neuromag MEG channels and an sEEG one on the real intracranial recording's channels.
@pytest.fixture(scope="module")
def real_infos():
    import mne

    full = mne.io.read_info(NEUROMAG, verbose=False)
    meg = mne.pick_info(full, mne.pick_types(full, meg="mag"), verbose=False)  # 102 mags
    raw = mne.io.read_raw(DATA / "ieeg" / "sub-pt1_ses-02_task-monitor_acq-ecog_run-01_clip2.lay",
                          verbose=False)
    seeg = raw.info.copy()
    seeg.set_channel_types(dict.fromkeys(seeg["ch_names"], "seeg"), on_unit_change="ignore")
    return {"meg": meg, "seeg": seeg}


def _info_for(modality: str, real_infos: dict):
    if modality == "fmri":
        return make_voxel_info()
    return SensorInfo(real_infos[modality], tmin=-0.1)


@pytest.fixture(params=["fmri", "meg", "seeg"])
def contract(request, real_infos):
    """(modality, a 12-trial TrialSet with splits, a function info -> TrialSet)."""
    modality = request.param
    info = _info_for(modality, real_infos)
    n_feat = (info.n_voxels,) if modality == "fmri" else (info.n_channels, 7)
    data = np.random.default_rng(4).standard_normal((12, *n_feat)).astype(np.float32)
    splits = {"s0": "train", "s1": "train", "s2": "val", "s3": "test"}
    trials = make_trials(12)
    trials["split"] = trials["stimulus_id"].map(splits)
    return modality, TrialSet(data, trials, modality, SUBJECT, info)


def test_contract_feature_shape(contract):
    modality, ts = contract
    assert ts.feature_shape == ts.data.shape[1:]
    assert ts.n_features == int(np.prod(ts.feature_shape))
    assert ts.feature_axes == type(ts.info).feature_axes
    assert len(ts.feature_axes) == len(ts.feature_shape)
    sizes = [getattr(ts, f"n_{a}") for a in ts.feature_axes]
    assert tuple(sizes) == ts.feature_shape
    if modality != "fmri":
        assert isinstance(ts.info, SensorInfo) and ts.tmin == ts.info.tmin == -0.1
        assert ts.n_channels == len(ts.info.ch_names)


def test_contract_save_load_round_trip(contract, tmp_path):
    modality, ts = contract
    ts.save(tmp_path / "ts")
    loaded = TrialSet.load(tmp_path / "ts")
    assert isinstance(loaded.data, np.memmap)  # memory-mapped, not read
    assert_same(ts, loaded)
    assert loaded.info.same_as(ts.info) and type(loaded.info) is type(ts.info)
    assert loaded.feature_shape == ts.feature_shape
    assert_same(ts, TrialSet.load(tmp_path / "ts", mmap=False))
    meta = json.loads((tmp_path / "ts" / "trialset.json").read_text())
    assert meta["modality"] == modality and meta["info"]["kind"] == type(ts.info).kind


def test_contract_select(contract):
    _, ts = contract
    tr = ts.select(split="train")
    mask = ts.trials["split"].to_numpy() == "train"
    np.testing.assert_array_equal(tr.data, ts.data[mask])
    assert set(tr.stimulus_ids) == {"s0", "s1"} and tr.info is ts.info
    s3 = ts.select(stimulus_ids=["s3"])
    np.testing.assert_array_equal(s3.data, ts.data[[3, 7, 11]])
    assert s3.feature_shape == ts.feature_shape
    with pytest.raises(ValueError, match="matched no trials"):
        ts.select(split="val", stimulus_ids=["s0"])


def test_contract_select_keeps_memmap(contract, tmp_path):
    _, ts = contract
    loaded = TrialSet.load(ts.save(tmp_path / "ts"))
    block = loaded.select(session=2)
    assert isinstance(block.data, np.memmap)
    np.testing.assert_array_equal(block.data, ts.data[6:])


def test_contract_average_repetitions(contract):
    _, ts = contract
    av = ts.average_repetitions()
    assert av.data.shape == (4, *ts.feature_shape) and av.data.dtype == np.float32
    assert list(av.trials.index) == ["s0", "s1", "s2", "s3"]
    assert list(av.trials["repetition"]) == [3, 3, 3, 3]
    assert list(av.trials["split"]) == ["train", "train", "val", "test"]
    np.testing.assert_allclose(av.data[2], ts.data[[2, 6, 10]].mean(0), rtol=1e-5, atol=1e-6)
    assert av.info.same_as(ts.info) and av.tmin == ts.tmin


def test_contract_concatenate(contract, real_infos):
    modality, ts = contract
    a, b = ts.select(session=1), ts.select(session=2)
    both = TrialSet.concatenate([a, b])
    np.testing.assert_array_equal(both.data, ts.data)
    pd.testing.assert_frame_equal(both.trials, ts.trials)
    assert both.info.same_as(ts.info)
    other = ts.info.subset(np.arange(1, (ts.n_voxels if modality == "fmri" else ts.n_channels)))
    b_other = TrialSet(np.ascontiguousarray(b.data[:, 1:]), b.trials, modality, SUBJECT, other)
    with pytest.raises(ValueError, match="feature shape"):
        TrialSet.concatenate([a, b_other])
    if modality != "fmri":
        shifted = SensorInfo(ts.info.info, tmin=0.0)
        with pytest.raises(ValueError, match=r"different feature space \(info or tmin\)"):
            TrialSet.concatenate([a, TrialSet(b.data, b.trials, modality, SUBJECT, shifted)])


def test_contract_with_splits(contract):
    _, ts = contract
    out = ts.with_splits({"s0": "test", "s1": "train", "s2": "train", "s3": "val"})
    assert list(out.trials["split"][:4]) == ["test", "train", "train", "val"]
    assert out.data is ts.data and out.info is ts.info
    assert list(ts.trials["split"][:4]) == ["train", "train", "val", "test"]  # untouched


def test_contract_repr(contract):
    modality, ts = contract
    text, page = repr(ts), ts._repr_html_()
    shape = " x ".join(map(str, ts.feature_shape))
    assert f"{modality}, subject 'sub-01', 12 trials x {shape} {' x '.join(ts.feature_axes)}" in text
    for needle in ("sub-01", modality, "train: 6 / 2", "<table", "t000",
                   " x ".join(map(str, ts.data.shape))):
        assert needle in page
    for label, value in ts.info.describe(ts.feature_shape):
        assert f">{label}</th>" in page and value in page
    if modality == "fmri":
        assert "18 voxels" in text and "18 in a 4 x 5 x 6 grid" in page
    else:
        sfreq = f"{ts.info.sfreq:g} Hz"
        assert f"({sfreq}, tmin -0.1 s)" in text
        assert sfreq in page and "-0.1 s" in page and "7 samples, -0.1 to" in page
        assert f"{ts.n_channels} ({ts.n_channels} {ts.info.ch_types[0]})" in page


def test_contract_bad_info_vs_shape(contract):
    modality, ts = contract
    n = ts.feature_shape[0]
    data = np.ascontiguousarray(ts.data[:, :-1])
    expected = (rf"info.n_voxels={n} different from data's n_voxels={n - 1}" if modality == "fmri"
                else rf"n_channels={n - 1} \(data.shape\[1\]\) different from.*={n}")
    with pytest.raises(ValueError, match=expected):
        TrialSet(data, ts.trials, modality, SUBJECT, ts.info)
    with pytest.raises(ValueError, match=f"must be {1 + len(ts.feature_axes)}-D"):
        TrialSet(ts.data[..., None], ts.trials, modality, SUBJECT, ts.info)


# --------------------------------------------------------------------------- compatibility
def test_mne_info_is_wrapped_into_a_sensor_info(real_infos):
    info = real_infos["meg"]
    data = np.zeros((12, info["nchan"], 5), np.float32)
    ts = TrialSet(data, make_trials(12), "meg", SUBJECT, info, tmin=-0.2)
    assert isinstance(ts.info, SensorInfo) and ts.info.ch_names == info["ch_names"]
    assert ts.tmin == ts.info.tmin == -0.2
    np.testing.assert_array_equal(ts.info.positions_3d,
                                  [ch["loc"][:3] for ch in info["chs"]])


def test_load_first_meg_layout(tmp_path):
    """A MEG folder written before SensorInfo (info kind 'mne.Info', tmin beside it)."""
    ts = make_meg()
    path = ts.save(tmp_path / "ts")
    meta = json.loads((path / "trialset.json").read_text())
    meta["info"] = {"kind": "mne.Info", "file": "info.fif"}
    (path / "trialset.json").write_text(json.dumps(meta))
    back = TrialSet.load(path)
    assert back.tmin == -0.2 and back.info.same_as(ts.info)
    meta["info"]["kind"] = "Other"
    (path / "trialset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"info kind.*'VoxelInfo', 'SensorInfo'.*'Other'"):
        TrialSet.load(path)


def test_fmri_folder_without_marker_loads_and_is_replaced(tmp_path):
    """An fMRI TrialSet folder as written before folder markers: same files, same json."""
    ts = make_fmri()
    path = ts.save(tmp_path / "ts")
    (path / ".braindecode_kit").unlink()
    assert sorted(p.name for p in path.iterdir()) == [
        "data.npy", "mask.nii.gz", "trials.tsv", "trialset.json"]
    meta = json.loads((path / "trialset.json").read_text())
    meta.pop("data_checksum")  # as written before checksums
    meta["info"].pop("ijk_checksum")
    (path / "trialset.json").write_text(json.dumps(meta))
    assert meta["info"] == {"kind": "VoxelInfo", "mask": "mask.nii.gz", "ijk": None,
                            "roi": None, "roi_names": None}
    assert_same(ts, TrialSet.load(path))
    make_fmri(seed=2).save(path)  # replaced: it holds only what a TrialSet writes
    assert_same(make_fmri(seed=2), TrialSet.load(path))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="notes.txt"):
        ts.save(tmp_path / "mine")
