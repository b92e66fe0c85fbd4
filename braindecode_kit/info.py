"""What the features of a :class:`~braindecode_kit.trialset.TrialSet` are: the fMRI voxels
(:class:`VoxelInfo`) or the MEG/sEEG sensors and time axis (:class:`SensorInfo`).

Both implement one *info protocol* (:class:`FeatureInfo`), which is all a TrialSet
needs, so the TrialSet itself has no per-modality code:

* ``feature_axes`` (class attribute): the names of the data's axes after the trial axis,
  ``("voxels",)`` or ``("channels", "times")``;
* ``coerce(info, tmin, modality)`` (classmethod): check (and wrap) what a user passed;
* ``validate(feature_shape)``: refuse a data shape that does not fit the info;
* ``describe(feature_shape=None)`` and ``brief()``: rows and a phrase for reprs;
* ``save(folder) -> dict`` and ``load(folder, meta)`` (classmethod): the on-disk form,
  the dict being stored in ``trialset.json`` (with a ``"kind"`` key naming the class);
* ``subset(picks)``: the info of some of the voxels / channels;
* ``same_as(other)``: whether two infos describe the same features.

:data:`INFO_CLASSES` maps each modality to its info class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ._checks import check_option
from ._docs import fill_doc
from ._readers import array_checksums, nifti_data, read_nifti, read_npy, verify_checksum
from ._utils import PathLike

if TYPE_CHECKING:  # pragma: no cover
    import mne
    import nibabel as nib

__all__ = [
    "INFO_CLASSES",
    "INFO_KINDS",
    "FeatureInfo",
    "SensorInfo",
    "VoxelInfo",
    "info_for_modality",
]


@runtime_checkable
class FeatureInfo(Protocol):
    """The info protocol: what a TrialSet asks of its ``info``.

    Attributes
    ----------
    feature_axes : tuple of str
        Class attribute: names of the data axes after the trial axis (``("voxels",)``,
        ``("channels", "times")``); a TrialSet's data has ``1 + len(feature_axes)`` dims.
    kind : str
        Class attribute: the ``"kind"`` written in ``trialset.json``.
    data_kind : str
        Class attribute: the modalities it describes, in words (for messages).
    """

    feature_axes: ClassVar[tuple[str, ...]]
    kind: ClassVar[str]
    data_kind: ClassVar[str]

    @classmethod
    def coerce(cls, info: Any, tmin: Any, modality: str) -> tuple[Any, float | None]:
        """Check ``info`` and ``tmin`` given to a TrialSet; return them (info wrapped)."""

    def validate(self, feature_shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` naming expected and found sizes if the shape does not fit."""

    def describe(self, feature_shape: tuple[int, ...] | None = None) -> list[tuple[str, str]]:
        """``(label, text)`` rows for an HTML/text summary."""

    def brief(self) -> str:
        """A short phrase for a one-line repr (may be empty)."""

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the info's files into ``folder``; return the JSON-able meta."""

    @classmethod
    def load(cls, folder: Path, meta: Mapping[str, Any]) -> Any:
        """Read an info written by :meth:`save` (``meta`` is what it returned)."""

    def subset(self, picks: Any) -> Any:
        """The info of some of the features (voxels or channels), in the given order."""

    def same_as(self, other: object) -> bool:
        """Whether ``other`` describes the same features."""


def _picks_index(picks: Any, n: int, names: Sequence[str] | None, what: str) -> np.ndarray:
    """Integer indices from int indices, a boolean mask, or (for channels) names."""
    if isinstance(picks, str):
        picks = [picks]
    arr = np.asarray(list(picks) if not isinstance(picks, np.ndarray) else picks)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(
                f"A boolean 'picks' must have shape ({n},), but got shape {arr.shape} instead."
            )
        idx = np.flatnonzero(arr)
    elif arr.dtype.kind in "iu" or (arr.size == 0 and arr.dtype.kind == "f"):
        idx = arr.astype(np.int64).ravel()
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise ValueError(
                f"'picks' must index {what} in [0, {n - 1}], but got {bad[:5].tolist()}."
            )
    elif names is not None and arr.dtype.kind in "UO":
        pos = {nm: i for i, nm in enumerate(names)}
        missing = [str(p) for p in arr.ravel() if p not in pos]
        if missing:
            raise ValueError(
                f"'picks' names {len(missing)} unknown {what}, e.g. {missing[:5]}; known "
                f"are e.g. {list(names[:5])}."
            )
        idx = np.array([pos[p] for p in arr.ravel()], np.int64)
    else:
        allowed = "indices, a boolean mask or names" if names is not None else (
            "indices or a boolean mask")
        raise TypeError(f"'picks' must be {allowed}, but got dtype {arr.dtype} instead.")
    if len(idx) == 0:
        raise ValueError(f"'picks' selects no {what}.")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"'picks' names the same {what[:-1]} more than once.")
    return idx


# =========================================================================== VoxelInfo
@dataclass(frozen=True, eq=False)
class VoxelInfo:
    """Where the voxels of an fMRI TrialSet live in the subject's space.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
        Voxel-to-world affine of the subject's volume.
    shape : tuple of int, length 3
        Shape of the volume.
    ijk : ndarray of int, shape (n_voxels, 3)
        Volume index of each feature (column of ``TrialSet.data``), unique and in bounds.
    roi : ndarray of int, shape (n_voxels,) | None
        Optional region label of each voxel (0 = no region).
    roi_names : dict of int to str | None
        Optional names of the labels in ``roi``.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    ijk: np.ndarray
    roi: np.ndarray | None = None
    roi_names: dict[int, str] | None = field(default=None)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError(
                f"VoxelInfo 'affine' must be a finite (4, 4) array, got shape {affine.shape}."
            )
        shape = tuple(int(s) for s in np.asarray(self.shape).ravel())
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"VoxelInfo 'shape' must be 3 positive ints, got {self.shape!r}.")
        ijk = np.asarray(self.ijk)
        if ijk.ndim != 2 or ijk.shape[1] != 3 or ijk.dtype.kind not in "iu":
            raise ValueError(
                "VoxelInfo 'ijk' must be an integer array of shape (n_voxels, 3), got "
                f"dtype {ijk.dtype} and shape {ijk.shape}."
            )
        ijk = ijk.astype(np.int64)
        if ijk.size and ((ijk < 0).any() or (ijk >= np.array(shape)).any()):
            raise ValueError(f"VoxelInfo 'ijk' has indices outside the volume shape {shape}.")
        flat = np.ravel_multi_index(ijk.T, shape) if len(ijk) else np.zeros(0, np.int64)
        if len(np.unique(flat)) != len(flat):
            raise ValueError("VoxelInfo 'ijk' lists the same voxel more than once.")
        roi = self.roi
        if roi is not None:
            roi = np.asarray(roi)
            if roi.shape != (len(ijk),) or roi.dtype.kind not in "iu":
                raise ValueError(
                    f"VoxelInfo 'roi' must be an integer array of shape ({len(ijk)},), got "
                    f"dtype {roi.dtype} and shape {roi.shape}."
                )
            roi = roi.astype(np.int64)
        roi_names = None
        if self.roi_names is not None:
            roi_names = {int(k): str(v) for k, v in dict(self.roi_names).items()}
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "ijk", ijk)
        object.__setattr__(self, "roi", roi)
        object.__setattr__(self, "roi_names", roi_names)

    @property
    def n_voxels(self) -> int:
        """Number of voxels (features)."""
        return int(len(self.ijk))

    @classmethod
    def from_mask(
        cls,
        mask_img: nib.spatialimages.SpatialImage | PathLike,
        roi_img: nib.spatialimages.SpatialImage | PathLike | None = None,
        roi_names: Mapping[int, str] | None = None,
    ) -> VoxelInfo:
        """Build the voxel list of a mask: its nonzero voxels, in C order.

        Parameters
        ----------
        mask_img : nibabel image | path
            A 3-D mask (4-D with a single volume is accepted).
        roi_img : nibabel image | path | None
            Optional integer label image on the same grid; each voxel gets its label.
        roi_names : dict | None
            Optional names of the labels.

        Returns
        -------
        VoxelInfo
        """
        mask, affine = _load_volume("mask_img", mask_img)
        ijk = np.argwhere(mask != 0)
        roi = None
        if roi_img is not None:
            labels, roi_affine = _load_volume("roi_img", roi_img)
            if labels.shape != mask.shape or not np.allclose(roi_affine, affine, atol=1e-4):
                raise ValueError(
                    f"'roi_img' must be on the mask's grid (shape {mask.shape}), got shape "
                    f"{labels.shape} and affine\n{roi_affine}"
                )
            values = labels[tuple(ijk.T)]
            if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
                raise ValueError("'roi_img' must hold integer labels.")
            roi = values.astype(np.int64)
        return cls(affine=affine, shape=mask.shape, ijk=ijk, roi=roi, roi_names=roi_names)

    def mask_array(self) -> np.ndarray:
        """The boolean 3-D mask of the voxels."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[tuple(self.ijk.T)] = True
        return mask

    def to_nifti(self, values: np.ndarray) -> nib.Nifti1Image:
        """Put per-voxel values back into a NIfTI image in the subject's space.

        Parameters
        ----------
        values : ndarray, shape (n_voxels,) or (n_maps, n_voxels)
            One value per voxel, or several maps laid out like ``TrialSet.data``.

        Returns
        -------
        nibabel.Nifti1Image
            3-D for 1-D ``values``; 4-D ``(x, y, z, n_maps)`` for 2-D ``values``. Voxels
            outside the mask are 0.
        """
        import nibabel as nib

        values = np.asarray(values)
        if values.dtype == bool:
            values = values.astype(np.uint8)
        elif values.dtype.kind in "iu":
            values = values.astype(np.int32 if np.abs(values).max(initial=0) < 2**31 else
                                   np.float64)
        elif values.dtype.kind != "f":
            raise TypeError(f"'values' must be numeric, got dtype {values.dtype}.")
        if values.ndim == 1:
            if values.shape[0] != self.n_voxels:
                raise ValueError(
                    f"'values' must have length n_voxels={self.n_voxels}, got {values.shape[0]}."
                )
            vol = np.zeros(self.shape, dtype=values.dtype)
            vol[tuple(self.ijk.T)] = values
        elif values.ndim == 2:
            if values.shape[1] != self.n_voxels:
                raise ValueError(
                    f"2-D 'values' must have shape (n_maps, n_voxels={self.n_voxels}), got "
                    f"{values.shape}."
                )
            vol = np.zeros(self.shape + (values.shape[0],), dtype=values.dtype)
            vol[tuple(self.ijk.T)] = values.T
        else:
            raise ValueError(f"'values' must be 1-D or 2-D, got shape {values.shape}.")
        return nib.Nifti1Image(vol, self.affine)

    def same_space(self, other: object) -> bool:
        """Whether ``other`` describes the same voxels (grid, affine and order)."""
        return (
            isinstance(other, VoxelInfo)
            and self.shape == other.shape
            and np.allclose(self.affine, other.affine, atol=1e-5)
            and np.array_equal(self.ijk, other.ijk)
        )

    # ------------------------------------------------------------------ info protocol
    feature_axes: ClassVar[tuple[str, ...]] = ("voxels",)
    kind: ClassVar[str] = "VoxelInfo"
    data_kind: ClassVar[str] = "fMRI"

    @classmethod
    def coerce(cls, info: Any, tmin: Any, modality: str) -> tuple[VoxelInfo | None, None]:
        """Check the ``info`` and ``tmin`` given to an fMRI TrialSet.

        Parameters
        ----------
        info : VoxelInfo | None
            The voxels, or None (unknown).
        tmin : None
            fMRI data has no time axis: anything but None is refused.
        modality : str
            The TrialSet's modality (for messages).

        Returns
        -------
        info : VoxelInfo | None
        tmin : None
        """
        if tmin is not None:
            raise ValueError(
                f"'tmin' applies to MEG/sEEG only, got tmin={tmin!r} for {modality!r} "
                "(voxel data has no time axis)."
            )
        if info is not None and not isinstance(info, VoxelInfo):
            raise TypeError(
                f"'info' for {modality!r} must be a VoxelInfo, got {type(info).__name__}."
            )
        return info, None

    def validate(self, feature_shape: tuple[int, ...]) -> None:
        """Refuse data whose features are not this info's voxels.

        Parameters
        ----------
        feature_shape : tuple of int
            The data's shape after the trial axis; must be ``(n_voxels,)``.

        Raises
        ------
        ValueError
            Naming the expected and the found number of voxels.
        """
        feature_shape = tuple(int(s) for s in feature_shape)
        if len(feature_shape) != 1:
            raise ValueError(
                f"A VoxelInfo describes features of shape (n_voxels,)=({self.n_voxels},), "
                f"but got feature_shape {feature_shape}."
            )
        if feature_shape[0] != self.n_voxels:
            raise ValueError(
                f"info.n_voxels={self.n_voxels} different from data's n_voxels="
                f"{feature_shape[0]}."
            )

    def voxel_size(self) -> tuple[float, ...]:
        """The voxel size along each axis (mm, from the affine's column norms)."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    def describe(self, feature_shape: tuple[int, ...] | None = None) -> list[tuple[str, str]]:
        """Rows ``(label, text)`` describing the voxels, for reprs.

        Parameters
        ----------
        feature_shape : tuple of int | None
            Unused (the voxels say it all); accepted for the info protocol.

        Returns
        -------
        list of (str, str)
        """
        size = " x ".join(f"{v:g}" for v in self.voxel_size())
        rows = [("voxels", f"{self.n_voxels} in a {' x '.join(map(str, self.shape))} grid "
                           f"({size} mm)")]
        if self.roi is not None:
            labels = [int(v) for v in np.unique(self.roi) if v != 0]
            names = [self.roi_names.get(v, str(v)) if self.roi_names else str(v)
                     for v in labels]
            rows.append(("ROI labels", ", ".join(names[:10])
                         + (" ..." if len(names) > 10 else "") if names else "none"))
        return rows

    def brief(self) -> str:
        """Nothing: the voxel count already says it on a TrialSet's one-line repr."""
        return ""

    def save(self, folder: PathLike) -> dict[str, Any]:
        """Write the voxels into ``folder``: ``mask.nii.gz`` (+ ``roi.nii.gz``; +
        ``ijk.npy`` when the voxels are not in C order).

        Parameters
        ----------
        folder : path
            An existing folder.

        Returns
        -------
        dict
            The meta to store in ``trialset.json`` (``kind`` ``"VoxelInfo"``).
        """
        import nibabel as nib

        folder = Path(folder)
        nib.save(nib.Nifti1Image(self.mask_array().astype(np.uint8), self.affine),
                 folder / "mask.nii.gz")
        out: dict[str, Any] = {"kind": "VoxelInfo", "mask": "mask.nii.gz", "ijk": None,
                               "roi": None, "roi_names": None,
                               "ijk_checksum": array_checksums(_ijk_key(self.ijk))}
        if not self._is_c_order():
            np.save(folder / "ijk.npy", self.ijk, allow_pickle=False)
            out["ijk"] = "ijk.npy"
        if self.roi is not None:
            if np.abs(self.roi).max(initial=0) >= 2**31:
                raise ValueError("ROI labels must fit in int32 to be saved.")
            vol = np.zeros(self.shape, dtype=np.int32)
            vol[tuple(self.ijk.T)] = self.roi
            nib.save(nib.Nifti1Image(vol, self.affine), folder / "roi.nii.gz")
            out["roi"] = "roi.nii.gz"
        if self.roi_names is not None:
            out["roi_names"] = {str(k): v for k, v in self.roi_names.items()}
        return out

    @classmethod
    def load(cls, folder: PathLike, meta: Mapping[str, Any],
             verify: str | bool = "fast") -> VoxelInfo:
        """Read the voxels written by :meth:`save`.

        Parameters
        ----------
        folder : path
            The folder.
        meta : dict
            What :meth:`save` returned.
        verify : {"fast", "full", False}
            Check the voxel indices against the checksum recorded at save (a mask edited
            since, e.g. one voxel moved, is refused).

        Returns
        -------
        VoxelInfo
        """
        folder = Path(folder)
        mask, affine = _load_volume("mask", folder / meta["mask"])
        if meta.get("ijk"):
            ijk = read_npy(folder / meta["ijk"], "voxel index file")
            if not mask[tuple(ijk.T)].all() or int((mask != 0).sum()) != len(ijk):
                raise ValueError(f"{str(folder)!r}: ijk.npy does not match mask.nii.gz.")
        else:
            ijk = np.argwhere(mask != 0)
        verify_checksum(_ijk_key(ijk), meta.get("ijk_checksum"), folder / meta["mask"],
                        "voxel mask (with its voxel indices)", verify)
        roi = None
        if meta.get("roi"):
            labels, _ = _load_volume("roi", folder / meta["roi"])
            roi = labels[tuple(ijk.T)].astype(np.int64)
        names = meta.get("roi_names")
        roi_names = {int(k): v for k, v in names.items()} if names else None
        return cls(affine=affine, shape=mask.shape, ijk=ijk, roi=roi, roi_names=roi_names)

    def subset(self, picks: Any) -> VoxelInfo:
        """The info of some of the voxels, in the order given.

        Parameters
        ----------
        picks : array of int | boolean array of shape (n_voxels,)
            The voxels to keep.

        Returns
        -------
        VoxelInfo
            Same grid and affine; ``ijk`` and ``roi`` of the kept voxels.
        """
        idx = _picks_index(picks, self.n_voxels, None, "voxels")
        return VoxelInfo(affine=self.affine, shape=self.shape, ijk=self.ijk[idx],
                         roi=None if self.roi is None else self.roi[idx],
                         roi_names=self.roi_names)

    def same_as(self, other: object) -> bool:
        """Whether ``other`` describes the same voxels (see :meth:`same_space`)."""
        return self.same_space(other)

    def _is_c_order(self) -> bool:
        flat = np.ravel_multi_index(self.ijk.T, self.shape) if self.n_voxels else self.ijk[:, 0]
        return bool(np.all(np.diff(flat) > 0))

    def __repr__(self) -> str:
        roi = "" if self.roi is None else f", {len(np.unique(self.roi))} ROI labels"
        return f"<VoxelInfo | {self.n_voxels} voxels in a {self.shape} grid{roi}>"



def _ijk_key(ijk: np.ndarray) -> np.ndarray:
    """The voxel indices in one dtype and layout, whatever they were built from."""
    return np.ascontiguousarray(np.asarray(ijk, dtype=np.int64))


def _load_volume(name: str, img: Any) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    path: Any = None
    if isinstance(img, str | Path):
        path = img
        img = read_nifti(img, f"{name} image")
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise TypeError(f"{name!r} must be a nibabel image or a path, got {type(img).__name__}.")
    if path is not None:
        data = nifti_data(img, path, f"{name} image")
    else:
        data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{name!r} must be a 3-D image, got shape {data.shape}.")
    return data, np.asarray(img.affine, dtype=np.float64)


# =========================================================================== SensorInfo
def _as_positions(name: str, value: Any, n: int, dim: int) -> np.ndarray:
    pos = np.asarray(value, dtype=np.float64)
    if pos.shape != (n, dim) or not np.all(np.isfinite(pos)):
        raise ValueError(
            f"{name!r} must be a finite array of shape (n_channels, {dim})=({n}, {dim}), but "
            f"got shape {pos.shape}{'' if pos.shape != (n, dim) else ' with non-finite values'}"
            " instead."
        )
    pos = pos.copy()
    pos.setflags(write=False)
    return pos


def _positions_from_info(info: mne.Info) -> np.ndarray | None:
    """Every channel's ``loc[:3]`` when all are finite and non-zero, else None."""
    if not info["chs"]:
        return None
    locs = np.array([np.asarray(ch["loc"][:3], np.float64) for ch in info["chs"]])
    if not np.all(np.isfinite(locs)) or not np.all(np.abs(locs).sum(axis=1) > 0):
        return None
    locs.setflags(write=False)
    return locs


def _check_tmin(tmin: Any) -> float:
    if isinstance(tmin, bool) or not isinstance(tmin, int | float | np.integer | np.floating) or (
        not np.isfinite(tmin)
    ):
        raise TypeError(f"'tmin' must be a finite float in seconds, got {tmin!r}.")
    return float(tmin)


@fill_doc
@dataclass(frozen=True, eq=False)
class SensorInfo:
    """The sensors and the time axis of a MEG or sEEG TrialSet.

    Data of shape ``(n_trials, n_channels, n_times)`` goes with a SensorInfo of
    ``n_channels`` channels; sample ``k`` of each trial is at ``tmin + k / sfreq``
    seconds from the trial's onset.

    Parameters
    ----------
    info : mne.Info
        The channels (names, types, positions, sfreq); copied.
    %(tmin)s
    positions_3d : ndarray, shape (n_channels, 3) | None
        Sensor positions (m, in the info's device/head frame). ``None``: taken from
        the info (``info["chs"][i]["loc"][:3]``) when every channel has a finite,
        non-zero one, else left as None.
    positions_2d : ndarray, shape (n_channels, 2) | None
        Optional 2-D layout positions (e.g. a topomap projection), as given.

    Examples
    --------
    >>> import mne
    >>> si = SensorInfo(mne.create_info(["a", "b"], 100.0, "seeg"), tmin=-0.1)
    >>> si.n_channels, si.sfreq, si.times(3).round(3).tolist()
    (2, 100.0, [-0.1, -0.09, -0.08])
    """

    info: mne.Info
    tmin: float
    positions_3d: np.ndarray | None = field(default=None)
    positions_2d: np.ndarray | None = field(default=None)

    feature_axes: ClassVar[tuple[str, ...]] = ("channels", "times")
    kind: ClassVar[str] = "SensorInfo"
    data_kind: ClassVar[str] = "MEG/sEEG"

    def __post_init__(self) -> None:
        import mne

        if not isinstance(self.info, mne.Info):
            raise TypeError(
                f"The 'info' parameter must be an mne.Info, but got "
                f"{type(self.info).__name__} instead."
            )
        info = self.info.copy()
        n = len(info["ch_names"])
        if n == 0:
            raise ValueError("The 'info' parameter must have at least one channel, got 0.")
        tmin = _check_tmin(self.tmin)
        pos3 = (_positions_from_info(info) if self.positions_3d is None else
                _as_positions("positions_3d", self.positions_3d, n, 3))
        pos2 = (None if self.positions_2d is None else
                _as_positions("positions_2d", self.positions_2d, n, 2))
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "tmin", tmin)
        object.__setattr__(self, "positions_3d", pos3)
        object.__setattr__(self, "positions_2d", pos2)

    # ------------------------------------------------------------------ attributes
    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(len(self.info["ch_names"]))

    @property
    def ch_names(self) -> list[str]:
        """The channel names, in data order."""
        return list(self.info["ch_names"])

    @property
    def ch_types(self) -> list[str]:
        """The channel types (``"mag"``, ``"grad"``, ``"seeg"``...), in data order."""
        return list(self.info.get_channel_types())

    @property
    def sfreq(self) -> float:
        """Sampling frequency (Hz), from the info."""
        return float(self.info["sfreq"])

    def times(self, n_times: int) -> np.ndarray:
        """The time of each of ``n_times`` samples relative to onset (s)."""
        return self.tmin + np.arange(int(n_times)) / self.sfreq

    # ------------------------------------------------------------------ info protocol
    @classmethod
    def coerce(cls, info: Any, tmin: Any, modality: str) -> tuple[SensorInfo | None, float | None]:
        """Check the ``info`` and ``tmin`` given to a MEG/sEEG TrialSet.

        Parameters
        ----------
        info : SensorInfo | mne.Info | None
            An :class:`mne.Info` is wrapped with ``tmin`` into a SensorInfo.
        tmin : float | None
            Time of the first sample (s). Needed with an mne.Info; with a SensorInfo it
            must be None or equal to ``info.tmin``.
        modality : str
            The TrialSet's modality (for messages).

        Returns
        -------
        info : SensorInfo | None
        tmin : float | None
        """
        if tmin is not None:
            tmin = _check_tmin(tmin)
        if info is None:
            return None, tmin
        if isinstance(info, SensorInfo):
            if tmin is not None and tmin != info.tmin:
                raise ValueError(
                    f"'tmin'={tmin!r} different from info.tmin={info.tmin!r}; pass one of them."
                )
            return info, info.tmin
        import mne

        if not isinstance(info, mne.Info):
            raise TypeError(
                f"'info' for {modality!r} must be a SensorInfo or an mne.Info, got "
                f"{type(info).__name__}."
            )
        if tmin is None:
            raise ValueError(
                f"'tmin' is needed with an mne.Info for {modality!r} (time of the first "
                "sample relative to onset, in seconds), but got None."
            )
        out = cls(info, tmin)
        return out, out.tmin

    def validate(self, feature_shape: tuple[int, ...]) -> None:
        """Refuse data whose channels are not this info's.

        Parameters
        ----------
        feature_shape : tuple of int
            The data's shape after the trial axis; must be ``(n_channels, n_times)``.

        Raises
        ------
        ValueError
            Naming the expected and the found number of channels.
        """
        feature_shape = tuple(int(s) for s in feature_shape)
        if len(feature_shape) != 2:
            raise ValueError(
                f"A SensorInfo describes features of shape (n_channels, n_times) with "
                f"n_channels={self.n_channels}, but got feature_shape {feature_shape}."
            )
        if feature_shape[0] != self.n_channels:
            raise ValueError(
                f"n_channels={feature_shape[0]} (data.shape[1]) different from "
                f"len(info['ch_names'])={self.n_channels}."
            )

    def describe(self, feature_shape: tuple[int, ...] | None = None) -> list[tuple[str, str]]:
        """Rows ``(label, text)`` describing the channels and times, for reprs.

        Parameters
        ----------
        feature_shape : tuple of int | None
            ``(n_channels, n_times)``: adds the trial's time span.

        Returns
        -------
        list of (str, str)
        """
        counts = Counter(self.ch_types)
        types = ", ".join(f"{v} {k}" for k, v in counts.items())
        rows = [("channels", f"{self.n_channels} ({types})"),
                ("sfreq", f"{self.sfreq:g} Hz"),
                ("tmin", f"{self.tmin:g} s")]
        if feature_shape is not None and len(feature_shape) == 2:
            n_times = int(feature_shape[1])
            tmax = self.tmin + (n_times - 1) / self.sfreq
            rows.append(("times", f"{n_times} samples, {self.tmin:g} to {tmax:g} s"))
        have = [d for d, p in (("3-D", self.positions_3d), ("2-D", self.positions_2d))
                if p is not None]
        rows.append(("positions", " and ".join(have) if have else "none"))
        return rows

    def brief(self) -> str:
        """``"<sfreq> Hz, tmin <tmin> s"``, for a TrialSet's one-line repr."""
        return f"{self.sfreq:g} Hz, tmin {self.tmin:g} s"

    def save(self, folder: PathLike) -> dict[str, Any]:
        """Write the info into ``folder`` as ``info.fif`` (:func:`mne.io.write_info`).

        Parameters
        ----------
        folder : path
            An existing folder.

        Returns
        -------
        dict
            The meta to store in ``trialset.json``: ``kind`` ``"SensorInfo"``, the file,
            ``tmin`` and the positions (lists, so they survive FIF's float32).
        """
        import mne

        folder = Path(folder)
        mne.io.write_info(folder / "info.fif", self.info, verbose=False)
        return {
            "kind": "SensorInfo",
            "file": "info.fif",
            "tmin": self.tmin,
            "positions_3d": None if self.positions_3d is None else self.positions_3d.tolist(),
            "positions_2d": None if self.positions_2d is None else self.positions_2d.tolist(),
        }

    @classmethod
    def load(cls, folder: PathLike, meta: Mapping[str, Any]) -> SensorInfo:
        """Read an info written by :meth:`save`.

        Parameters
        ----------
        folder : path
            The folder.
        meta : dict
            What :meth:`save` returned (``tmin`` is required).

        Returns
        -------
        SensorInfo
        """
        import mne

        folder = Path(folder)
        file = folder / meta.get("file", "info.fif")
        if not file.is_file():
            raise FileNotFoundError(f"{str(folder)!r}: the sensor info {file.name} is missing.")
        if meta.get("tmin") is None:
            raise ValueError(
                f"{str(folder)!r}: the sensor info has no 'tmin' (time of the first sample)."
            )
        info = mne.io.read_info(file, verbose=False)
        return cls(info, meta["tmin"], positions_3d=meta.get("positions_3d"),
                   positions_2d=meta.get("positions_2d"))

    def subset(self, picks: Any) -> SensorInfo:
        """The info of some of the channels, in the order given.

        Parameters
        ----------
        picks : list of str | array of int | boolean array of shape (n_channels,)
            Channel names or indices to keep.

        Returns
        -------
        SensorInfo
            :func:`mne.pick_info` of the channels, the same ``tmin``, the kept
            positions.
        """
        import mne

        idx = _picks_index(picks, self.n_channels, self.ch_names, "channels")
        info = mne.pick_info(self.info, idx.tolist(), verbose=False)
        return SensorInfo(
            info, self.tmin,
            positions_3d=None if self.positions_3d is None else self.positions_3d[idx],
            positions_2d=None if self.positions_2d is None else self.positions_2d[idx],
        )

    def same_as(self, other: object) -> bool:
        """Whether ``other`` has the same channels (names, types), sfreq, tmin and
        positions (within 1e-7)."""
        if not isinstance(other, SensorInfo):
            return False
        if (self.ch_names != other.ch_names or self.ch_types != other.ch_types
                or self.sfreq != other.sfreq or self.tmin != other.tmin):
            return False
        for a, b in ((self.positions_3d, other.positions_3d),
                     (self.positions_2d, other.positions_2d)):
            if (a is None) != (b is None) or (a is not None and not np.allclose(
                    a, b, rtol=0, atol=1e-7)):
                return False
        return True

    def __repr__(self) -> str:
        counts = Counter(self.ch_types)
        types = ", ".join(f"{v} {k}" for k, v in counts.items())
        return (f"<SensorInfo | {self.n_channels} channels ({types}), {self.sfreq:g} Hz, "
                f"tmin {self.tmin:g} s>")


# =========================================================================== registry
#: modality -> the info class of its TrialSets
INFO_CLASSES: dict[str, type] = {"fmri": VoxelInfo, "meg": SensorInfo, "seeg": SensorInfo}
#: the ``"kind"`` of an info in ``trialset.json`` -> its class (``"mne.Info"``: the
#: sensor info of the first format, written without tmin/positions)
INFO_KINDS: dict[str, type] = {"VoxelInfo": VoxelInfo, "SensorInfo": SensorInfo,
                               "mne.Info": SensorInfo}


def info_for_modality(modality: str) -> type:
    """The info class (:class:`VoxelInfo` or :class:`SensorInfo`) of a modality.

    Parameters
    ----------
    modality : {"fmri", "meg", "seeg"}

    Returns
    -------
    type

    Examples
    --------
    >>> info_for_modality("meg").__name__
    'SensorInfo'
    """
    check_option("modality", modality, tuple(INFO_CLASSES))
    return INFO_CLASSES[modality]
