"""Tests of the info protocol: VoxelInfo (fMRI voxels) and SensorInfo (MEG/sEEG sensors),
the latter on the real Neuromag and CTF infos in tests/data/meg."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pytest

from braindecode_kit.info import (
    INFO_CLASSES,
    INFO_KINDS,
    FeatureInfo,
    SensorInfo,
    VoxelInfo,
    info_for_modality,
)

DATA = Path(__file__).parent / "data" / "meg"
NEUROMAG = DATA / "neuromag306_sample_audvis_trunc_raw_sss.fif"
CTF = DATA / "ctf275_testdata_short_discontinuous_raw.fif"


@pytest.fixture(scope="module")
def neuromag_full() -> mne.Info:
    return mne.io.read_info(NEUROMAG, verbose=False)


@pytest.fixture(scope="module")
def neuromag_meg(neuromag_full) -> mne.Info:
    return mne.pick_info(neuromag_full, mne.pick_types(neuromag_full, meg=True), verbose=False)


@pytest.fixture(scope="module")
def ctf_meg() -> mne.Info:
    info = mne.io.read_info(CTF, verbose=False)
    return mne.pick_info(info, mne.pick_types(info, meg=True, ref_meg=False), verbose=False)


def voxel_info(roi: bool = False) -> VoxelInfo:
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    mask[1:3, 1:4, 2:5] = 1  # 18 voxels
    img = nib.Nifti1Image(mask, np.diag([2.0, 2.0, 2.5, 1.0]))
    if not roi:
        return VoxelInfo.from_mask(img)
    labels = np.zeros_like(mask, dtype=np.int16)
    labels[1, 1:4, 2:5] = 3
    return VoxelInfo.from_mask(img, nib.Nifti1Image(labels, img.affine), roi_names={3: "V1"})


# --------------------------------------------------------------------------- registry
def test_registry_and_protocol(neuromag_meg):
    assert INFO_CLASSES == {"fmri": VoxelInfo, "meg": SensorInfo, "seeg": SensorInfo}
    assert info_for_modality("seeg") is SensorInfo and info_for_modality("fmri") is VoxelInfo
    with pytest.raises(ValueError, match=r"'modality'.*'fmri', 'meg', 'seeg'.*'eeg'"):
        info_for_modality("eeg")
    assert INFO_KINDS["VoxelInfo"] is VoxelInfo and INFO_KINDS["SensorInfo"] is SensorInfo
    for info in (voxel_info(), SensorInfo(neuromag_meg, tmin=0.0)):
        assert isinstance(info, FeatureInfo)
        assert INFO_KINDS[info.kind] is type(info)
    assert VoxelInfo.feature_axes == ("voxels",)
    assert SensorInfo.feature_axes == ("channels", "times")


# --------------------------------------------------------------------------- VoxelInfo
def test_voxel_info_validate():
    info = voxel_info()
    info.validate((18,))
    with pytest.raises(ValueError, match=r"info.n_voxels=18 different from data's n_voxels=17"):
        info.validate((17,))
    with pytest.raises(ValueError, match=r"\(n_voxels,\)=\(18,\).*\(18, 2\)"):
        info.validate((18, 2))


def test_voxel_info_coerce():
    info = voxel_info()
    assert VoxelInfo.coerce(info, None, "fmri") == (info, None)
    assert VoxelInfo.coerce(None, None, "fmri") == (None, None)
    with pytest.raises(ValueError, match="'tmin' applies to MEG/sEEG only.*tmin=0.1"):
        VoxelInfo.coerce(info, 0.1, "fmri")
    with pytest.raises(TypeError, match="must be a VoxelInfo, got Info"):
        VoxelInfo.coerce(mne.create_info(2, 10.0), None, "fmri")


def test_voxel_info_describe():
    rows = dict(voxel_info(roi=True).describe())
    assert rows["voxels"] == "18 in a 4 x 5 x 6 grid (2 x 2 x 2.5 mm)"
    assert rows["ROI labels"] == "V1"
    assert "ROI labels" not in dict(voxel_info().describe((18,)))
    assert voxel_info().brief() == ""


def test_voxel_info_save_load_keeps_the_format(tmp_path):
    info = voxel_info(roi=True)
    perm = np.random.default_rng(0).permutation(info.n_voxels)
    shuffled = info.subset(perm)  # not C order: ijk.npy is written
    for name, inf in (("c", info), ("perm", shuffled)):
        folder = tmp_path / name
        folder.mkdir()
        meta = inf.save(folder)
        assert set(meta) == {"kind", "mask", "ijk", "roi", "roi_names", "ijk_checksum"}
        assert meta["kind"] == "VoxelInfo" and meta["mask"] == "mask.nii.gz"
        assert meta["roi"] == "roi.nii.gz" and meta["roi_names"] == {"3": "V1"}
        assert (meta["ijk"] is None) == (name == "c")
        back = VoxelInfo.load(folder, json.loads(json.dumps(meta)))
        assert back.same_as(inf) and back.same_space(inf)
        np.testing.assert_array_equal(back.roi, inf.roi)
        assert back.roi_names == {3: "V1"}
    assert not VoxelInfo.load(tmp_path / "perm", shuffled.save(tmp_path / "perm")).same_as(info)


def test_voxel_info_subset():
    info = voxel_info(roi=True)
    sub = info.subset([5, 0, 17])
    np.testing.assert_array_equal(sub.ijk, info.ijk[[5, 0, 17]])
    np.testing.assert_array_equal(sub.roi, info.roi[[5, 0, 17]])
    keep = np.zeros(18, bool)
    keep[[2, 3]] = True
    assert info.subset(keep).n_voxels == 2 and info.subset(keep).same_as(info.subset([2, 3]))
    with pytest.raises(ValueError, match=r"index voxels in \[0, 17\].*\[18\]"):
        info.subset([0, 18])
    with pytest.raises(ValueError, match="more than once"):
        info.subset([1, 1])
    with pytest.raises(ValueError, match=r"shape \(18,\), but got shape \(3,\)"):
        info.subset(np.ones(3, bool))
    with pytest.raises(TypeError, match="indices or a boolean mask"):
        info.subset(["a"])
    with pytest.raises(ValueError, match="selects no voxels"):
        info.subset(np.zeros(18, bool))


def test_voxel_info_same_as():
    info = voxel_info()
    assert info.same_as(voxel_info())
    assert not info.same_as(VoxelInfo(info.affine + np.eye(4), info.shape, info.ijk))
    assert not info.same_as(info.subset(np.arange(17)))
    assert not info.same_as(SensorInfo(mne.create_info(18, 10.0), 0.0))


# --------------------------------------------------------------------------- SensorInfo
def test_sensor_info_from_real_neuromag(neuromag_meg, neuromag_full):
    si = SensorInfo(neuromag_meg, tmin=-0.1)
    assert si.n_channels == 306 and si.ch_names == neuromag_meg["ch_names"]
    assert si.ch_types.count("grad") == 204 and si.ch_types.count("mag") == 102
    assert si.sfreq == pytest.approx(300.3074951171875) and si.tmin == -0.1
    expected = np.array([ch["loc"][:3] for ch in neuromag_meg["chs"]])
    np.testing.assert_array_equal(si.positions_3d, expected)
    assert si.positions_2d is None
    # the full info has stim channels without a position: no positions at all
    assert SensorInfo(neuromag_full, tmin=0.0).positions_3d is None
    np.testing.assert_allclose(si.times(4), -0.1 + np.arange(4) / si.sfreq)
    assert "306 channels (204 grad, 102 mag), 300.307 Hz, tmin -0.1 s" in repr(si)


def test_sensor_info_ctf_positions(ctf_meg):
    si = SensorInfo(ctf_meg, tmin=0.0)
    assert si.n_channels == ctf_meg["nchan"] and set(si.ch_types) == {"mag"}
    assert si.positions_3d.shape == (si.n_channels, 3)
    assert np.all(np.linalg.norm(si.positions_3d, axis=1) > 0.05)  # sensors ~10 cm out


def test_sensor_info_info_is_copied(neuromag_meg):
    info = neuromag_meg.copy()
    si = SensorInfo(info, tmin=0.0)
    with info._unlock():
        info["sfreq"] = 1.0
    assert si.sfreq == pytest.approx(300.3074951171875)


def test_sensor_info_explicit_positions_and_errors():
    info = mne.create_info(["a", "b", "c"], 250.0, "seeg")
    assert SensorInfo(info, 0.0).positions_3d is None  # create_info has no positions
    pos3 = np.arange(9.0).reshape(3, 3) + 1
    pos2 = np.arange(6.0).reshape(3, 2)
    si = SensorInfo(info, 0.0, positions_3d=pos3, positions_2d=pos2)
    np.testing.assert_array_equal(si.positions_3d, pos3)
    np.testing.assert_array_equal(si.positions_2d, pos2)
    assert dict(si.describe())["positions"] == "3-D and 2-D"
    with pytest.raises(ValueError, match=r"'positions_3d'.*\(n_channels, 3\)=\(3, 3\).*\(3, 2\)"):
        SensorInfo(info, 0.0, positions_3d=pos2)
    with pytest.raises(ValueError, match=r"'positions_2d'.*non-finite"):
        SensorInfo(info, 0.0, positions_2d=np.full((3, 2), np.nan))
    with pytest.raises(TypeError, match="'info' parameter must be an mne.Info, but got dict"):
        SensorInfo({"ch_names": ["a"]}, 0.0)
    with pytest.raises(TypeError, match="'tmin' must be a finite float.*'0'"):
        SensorInfo(info, "0")
    with pytest.raises(TypeError, match="'tmin'"):
        SensorInfo(info, np.nan)


def test_sensor_info_validate(neuromag_meg):
    si = SensorInfo(neuromag_meg, tmin=0.0)
    si.validate((306, 10))
    with pytest.raises(ValueError, match=r"n_channels=305 \(data.shape\[1\]\).*=306"):
        si.validate((305, 10))
    with pytest.raises(ValueError, match=r"\(n_channels, n_times\).*n_channels=306.*\(306,\)"):
        si.validate((306,))


def test_sensor_info_coerce(neuromag_meg):
    si, tmin = SensorInfo.coerce(neuromag_meg, -0.2, "meg")
    assert isinstance(si, SensorInfo) and tmin == si.tmin == -0.2
    assert SensorInfo.coerce(si, None, "meg") == (si, -0.2)
    assert SensorInfo.coerce(si, -0.2, "meg") == (si, -0.2)
    assert SensorInfo.coerce(None, 0.5, "meg") == (None, 0.5)
    assert SensorInfo.coerce(None, None, "meg") == (None, None)
    with pytest.raises(ValueError, match="'tmin'=0.0 different from info.tmin=-0.2"):
        SensorInfo.coerce(si, 0.0, "meg")
    with pytest.raises(ValueError, match="'tmin' is needed with an mne.Info for 'seeg'"):
        SensorInfo.coerce(neuromag_meg, None, "seeg")
    with pytest.raises(TypeError, match="SensorInfo or an mne.Info, got VoxelInfo"):
        SensorInfo.coerce(voxel_info(), 0.0, "meg")


def test_sensor_info_describe(neuromag_meg):
    si = SensorInfo(neuromag_meg, tmin=-0.1)
    rows = dict(si.describe((306, 4)))
    assert rows["channels"] == "306 (204 grad, 102 mag)"
    assert rows["sfreq"] == "300.307 Hz" and rows["tmin"] == "-0.1 s"
    tmax = -0.1 + 3 / si.sfreq
    assert rows["times"] == f"4 samples, -0.1 to {tmax:g} s"
    assert rows["positions"] == "3-D"
    assert "times" not in dict(si.describe())
    assert si.brief() == "300.307 Hz, tmin -0.1 s"


@pytest.mark.parametrize("which", ["neuromag", "ctf"])
def test_sensor_info_fif_round_trip(tmp_path, which, neuromag_meg, ctf_meg):
    info = neuromag_meg if which == "neuromag" else ctf_meg
    si = SensorInfo(info, tmin=-0.25, positions_2d=np.random.default_rng(0).random(
        (info["nchan"], 2)))
    meta = si.save(tmp_path)
    assert meta["kind"] == "SensorInfo" and meta["file"] == "info.fif" and meta["tmin"] == -0.25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["info.fif"]
    raw_info = mne.io.read_info(tmp_path / "info.fif", verbose=False)  # a plain FIF info
    assert raw_info["ch_names"] == info["ch_names"]
    back = SensorInfo.load(tmp_path, json.loads(json.dumps(meta)))
    assert back.same_as(si)
    assert back.ch_names == si.ch_names and back.ch_types == si.ch_types
    assert back.sfreq == si.sfreq and back.tmin == si.tmin
    np.testing.assert_array_equal(back.positions_3d, si.positions_3d)  # exact, via json
    np.testing.assert_array_equal(back.positions_2d, si.positions_2d)
    with pytest.raises(ValueError, match="no 'tmin'"):
        SensorInfo.load(tmp_path, {**meta, "tmin": None})
    with pytest.raises(FileNotFoundError, match="nope.fif is missing"):
        SensorInfo.load(tmp_path, {**meta, "file": "nope.fif"})


def test_sensor_info_subset(neuromag_meg):
    si = SensorInfo(neuromag_meg, tmin=0.0, positions_2d=np.arange(612.0).reshape(306, 2))
    names = [si.ch_names[10], si.ch_names[2]]
    sub = si.subset(names)
    assert sub.ch_names == names and sub.info["ch_names"] == names and sub.tmin == 0.0
    np.testing.assert_array_equal(sub.positions_3d, si.positions_3d[[10, 2]])
    np.testing.assert_array_equal(sub.positions_2d, si.positions_2d[[10, 2]])
    assert si.subset([10, 2]).same_as(sub)
    mags = np.array(si.ch_types) == "mag"
    assert set(si.subset(mags).ch_types) == {"mag"} and si.subset(mags).n_channels == 102
    assert si.subset(si.ch_names[0]).n_channels == 1
    with pytest.raises(ValueError, match=r"unknown channels, e.g. \['MEG 9999'\]"):
        si.subset(["MEG 9999"])
    with pytest.raises(ValueError, match="more than once"):
        si.subset([names[0], names[0]])


def test_sensor_info_same_as(neuromag_meg, ctf_meg):
    si = SensorInfo(neuromag_meg, tmin=0.0)
    assert si.same_as(SensorInfo(neuromag_meg, tmin=0.0))
    assert not si.same_as(SensorInfo(neuromag_meg, tmin=0.1))
    assert not si.same_as(SensorInfo(ctf_meg, tmin=0.0))
    assert not si.same_as(SensorInfo(neuromag_meg, 0.0, positions_3d=si.positions_3d + 1e-3))
    assert not si.same_as(SensorInfo(neuromag_meg, 0.0, positions_2d=np.zeros((306, 2))))
    resampled = neuromag_meg.copy()
    with resampled._unlock():
        resampled["sfreq"] = 150.0
    assert not si.same_as(SensorInfo(resampled, tmin=0.0))
    assert not si.same_as(voxel_info()) and not si.same_as(neuromag_meg)
