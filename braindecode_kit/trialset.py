"""The data model: one subject, one modality, many trials (:class:`TrialSet`), the fMRI
feature space (:class:`VoxelInfo`) and the split helpers (:func:`assign_splits`,
:func:`check_no_leak`).

A :class:`TrialSet` holds

* ``data``: a float32 (or float16) array, ``(n_trials, n_voxels)`` for fMRI or
  ``(n_trials, n_channels, n_times)`` for MEG/sEEG, possibly an ``np.memmap``;
* ``trials``: a DataFrame with one row per trial, indexed by a unique trial id, with the
  columns ``subject, session, run, onset, stimulus_id, repetition, split`` (+ free ones);
* ``modality`` (``"fmri"``, ``"meg"`` or ``"seeg"``), ``subject`` and ``info`` (a
  :class:`VoxelInfo` for fMRI, an :class:`mne.Info` plus ``tmin`` for MEG/sEEG).

Nothing mutates in place: selecting, averaging and concatenating return new TrialSets.
Splits are by stimulus, never by trial; :func:`check_no_leak` refuses a table in which a
stimulus appears both in train and in val/test.
"""

from __future__ import annotations

import html
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._checks import check_option
from ._utils import PathLike, atomic_dir, write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    import mne
    import nibabel as nib

__all__ = [
    "MODALITIES",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "SplitLeakError",
    "TrialSet",
    "VoxelInfo",
    "assign_splits",
    "check_no_leak",
]

MODALITIES = ("fmri", "meg", "seeg")
REQUIRED_COLUMNS = ("subject", "session", "run", "onset", "stimulus_id", "repetition", "split")
SPLITS = ("train", "val", "test", "")
ALLOWED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
FORMAT_NAME = "braindecode_kit.TrialSet"
FORMAT_VERSION = 1
_NA = "n/a"  # how missing values are written in trials.tsv (BIDS convention)
_CHUNK_BYTES = 64 << 20  # finite checks and averaging read at most this much at once


class SplitLeakError(ValueError):
    """A stimulus appears in more than one split (e.g. in train and in test)."""


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

    def _is_c_order(self) -> bool:
        flat = np.ravel_multi_index(self.ijk.T, self.shape) if self.n_voxels else self.ijk[:, 0]
        return bool(np.all(np.diff(flat) > 0))

    def __repr__(self) -> str:
        roi = "" if self.roi is None else f", {len(np.unique(self.roi))} ROI labels"
        return f"<VoxelInfo | {self.n_voxels} voxels in a {self.shape} grid{roi}>"


def _load_volume(name: str, img: Any) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    if isinstance(img, str | Path):
        if not Path(img).exists():
            raise FileNotFoundError(f"{name!r}: no such file {str(img)!r}.")
        img = nib.load(img)
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise TypeError(f"{name!r} must be a nibabel image or a path, got {type(img).__name__}.")
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{name!r} must be a 3-D image, got shape {data.shape}.")
    return data, np.asarray(img.affine, dtype=np.float64)


# =========================================================================== splits
def assign_splits(
    stimulus_ids: Iterable[Any],
    *,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    test_ids: Iterable[Any] | None = None,
) -> pd.Series:
    """Assign each stimulus to ``"train"``, ``"val"`` or ``"test"``, by stimulus.

    Repeated ids (e.g. the per-trial ``stimulus_id`` column) are counted once. The
    assignment depends only on the set of ids and ``seed``, not on their order.

    Parameters
    ----------
    stimulus_ids : iterable of str
        The stimuli to split.
    val, test : float | int
        Fraction (``0 <= x < 1``) or number (int ``>= 1``) of stimuli for validation and
        test. ``test`` is ignored when ``test_ids`` is given.
    seed : int
        Seed of the shuffle.
    test_ids : iterable of str | None
        Fixed test stimuli (e.g. NSD's shared 1000); must all be in ``stimulus_ids``.

    Returns
    -------
    pandas.Series
        Index: stimulus id (first-appearance order), values: split, name ``"split"``.
    """
    ids = pd.unique(pd.Series([_as_id(s, "stimulus_ids") for s in stimulus_ids], dtype=object))
    ids = [str(s) for s in ids]
    n = len(ids)
    if n == 0:
        raise ValueError("'stimulus_ids' must not be empty.")
    order = sorted(ids)
    rng = np.random.default_rng(seed)
    perm = [order[i] for i in rng.permutation(n)]
    if test_ids is not None:
        fixed = [_as_id(s, "test_ids") for s in test_ids]
        known = set(ids)
        missing = [s for s in fixed if s not in known]
        if missing:
            raise ValueError(
                f"'test_ids' must be among 'stimulus_ids'; {len(missing)} are not, e.g. "
                f"{missing[:5]}."
            )
        test_set = set(fixed)
        rest = [s for s in perm if s not in test_set]
        n_val = _count("val", val, n)
    else:
        n_test = _count("test", test, n)
        n_val = _count("val", val, n)
        test_set = set(perm[:n_test])
        rest = perm[n_test:]
    if n_val > len(rest):
        raise ValueError(
            f"'val' asks for {n_val} stimuli but only {len(rest)} remain after the test split."
        )
    val_set = set(rest[:n_val])
    splits = ["test" if s in test_set else "val" if s in val_set else "train" for s in ids]
    out = pd.Series(splits, index=pd.Index(ids, name="stimulus_id", dtype=object), name="split",
                    dtype=object)
    return out


def _as_id(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{name!r} must hold str (or int) ids, got {type(value).__name__}: {value!r}.")


def _count(name: str, value: float, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name!r} must be a fraction or a count, got {value!r}.")
    if isinstance(value, int | np.integer) and value >= 1:
        if value > n:
            raise ValueError(f"{name!r}={value} stimuli asked for, but there are only {n}.")
        return int(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name!r} must be a fraction in [0, 1) or an int count, got {value}.")
    return int(round(float(value) * n))


def check_no_leak(trialset_or_trials: TrialSet | pd.DataFrame) -> None:
    """Refuse a trial table in which a stimulus belongs to more than one split.

    Parameters
    ----------
    trialset_or_trials : TrialSet | DataFrame
        Anything with ``stimulus_id`` and ``split`` columns. Unassigned trials (split
        ``""``) are ignored.

    Raises
    ------
    SplitLeakError
        Naming the leaking stimulus ids and the splits they appear in.
    """
    trials = trialset_or_trials.trials if isinstance(trialset_or_trials, TrialSet) else (
        trialset_or_trials
    )
    if not isinstance(trials, pd.DataFrame):
        raise TypeError(
            "'trialset_or_trials' must be a TrialSet or a DataFrame, got "
            f"{type(trials).__name__}."
        )
    for col in ("stimulus_id", "split"):
        if col not in trials.columns:
            raise ValueError(f"The trial table needs a {col!r} column to check splits.")
    assigned = trials.loc[trials["split"].astype(str) != "", ["stimulus_id", "split"]]
    if assigned.empty:
        return
    n_splits = assigned.groupby("stimulus_id", sort=False)["split"].nunique()
    leaking = n_splits.index[n_splits > 1]
    if len(leaking):
        groups = assigned[assigned["stimulus_id"].isin(leaking)].groupby(
            "stimulus_id", sort=False
        )["split"]
        desc = [f"{sid!r} in {sorted(set(v))}" for sid, v in list(groups)[:10]]
        more = f" (and {len(leaking) - 10} more)" if len(leaking) > 10 else ""
        raise SplitLeakError(
            f"{len(leaking)} stimulus id(s) appear in more than one split, so held-out "
            f"stimuli would be seen in training: {', '.join(desc)}{more}. Assign splits by "
            "stimulus (see assign_splits)."
        )


# =========================================================================== TrialSet
class TrialSet:
    """One subject's trials in one modality: the data array, the trial table and the info.

    Parameters
    ----------
    data : ndarray | np.memmap
        ``(n_trials, n_voxels)`` for fMRI, ``(n_trials, n_channels, n_times)`` for MEG
        and sEEG. float32; float16 is accepted (e.g. a half-precision file on disk) and
        kept as is. Other dtypes are refused rather than converted: cast with
        ``data.astype(np.float32)`` first. The array is not copied.
    trials : DataFrame
        One row per trial, index = unique trial id, with the columns
        ``subject, session, run, onset, stimulus_id, repetition, split`` and any free
        extra columns. ``stimulus_id`` and ``split`` hold str; ``split`` is one of
        ``"train", "val", "test"`` or ``""`` (unassigned); ``repetition`` is an int.
        The table is copied.
    modality : {"fmri", "meg", "seeg"}
    subject : str
        Must equal every value of the ``subject`` column.
    info : VoxelInfo | mne.Info | None
        fMRI: a :class:`VoxelInfo` with ``n_voxels`` voxels. MEG/sEEG: an
        :class:`mne.Info` whose channels match ``n_channels``. ``None``: unknown.
    tmin : float | None
        MEG/sEEG: time of the first sample relative to stimulus onset, in seconds.
    check_finite : bool
        Refuse NaN/inf values (read in bounded chunks, so a memmap stays on disk).

    Notes
    -----
    Every method returns a new TrialSet; nothing mutates in place. A memory-mapped
    ``data`` stays memory-mapped through :meth:`select` when the selected trials are a
    contiguous block; any other selection (fancy indexing) copies the selected rows.
    """

    def __init__(
        self,
        data: np.ndarray,
        trials: pd.DataFrame,
        modality: str,
        subject: str,
        info: VoxelInfo | mne.Info | None = None,
        tmin: float | None = None,
        *,
        check_finite: bool = True,
    ) -> None:
        check_option("modality", modality, MODALITIES)
        if not isinstance(subject, str) or not subject:
            raise TypeError(f"'subject' must be a non-empty str, got {subject!r}.")
        if not isinstance(data, np.ndarray):
            raise TypeError(
                f"'data' must be a numpy array or np.memmap, got {type(data).__name__}."
            )
        if data.dtype not in ALLOWED_DTYPES:
            raise TypeError(
                f"'data' must be float32 (or float16), got {data.dtype}; TrialSet does not "
                "convert silently: pass data.astype(np.float32)."
            )
        want_ndim = 2 if modality == "fmri" else 3
        if data.ndim != want_ndim:
            layout = "(n_trials, n_voxels)" if modality == "fmri" else (
                "(n_trials, n_channels, n_times)"
            )
            raise ValueError(
                f"'data' for modality {modality!r} must be {want_ndim}-D {layout}, got shape "
                f"{data.shape}."
            )
        if min(data.shape[1:]) < 1:
            raise ValueError(f"'data' must have at least one feature, got shape {data.shape}.")
        trials = _validate_trials(trials, subject, data.shape[0])
        if check_finite:
            _check_finite_chunked(data)
        if modality == "fmri":
            if tmin is not None:
                raise ValueError(f"'tmin' applies to MEG/sEEG only, got tmin={tmin!r} for fMRI.")
            if info is not None:
                if not isinstance(info, VoxelInfo):
                    raise TypeError(
                        f"'info' for fMRI must be a VoxelInfo, got {type(info).__name__}."
                    )
                if info.n_voxels != data.shape[1]:
                    raise ValueError(
                        f"info.n_voxels={info.n_voxels} different from data's n_voxels="
                        f"{data.shape[1]}."
                    )
        else:
            if tmin is not None:
                if isinstance(tmin, bool) or not isinstance(tmin, int | float | np.number) or (
                    not np.isfinite(tmin)
                ):
                    raise TypeError(f"'tmin' must be a finite float in seconds, got {tmin!r}.")
                tmin = float(tmin)
            if info is not None:
                import mne

                if not isinstance(info, mne.Info):
                    raise TypeError(
                        f"'info' for {modality} must be an mne.Info, got {type(info).__name__}."
                    )
                if len(info["ch_names"]) != data.shape[1]:
                    raise ValueError(
                        f"n_channels={data.shape[1]} (data.shape[1]) different from "
                        f"len(info['ch_names'])={len(info['ch_names'])}."
                    )
        self._data = data
        self._trials = trials
        self._modality = modality
        self._subject = subject
        self._info = info
        self._tmin = tmin

    # ------------------------------------------------------------------ attributes
    @property
    def data(self) -> np.ndarray:
        """The trials' data (possibly a read-only memmap)."""
        return self._data

    @property
    def trials(self) -> pd.DataFrame:
        """The trial table (a copy: edit it and build a new TrialSet to change it)."""
        return self._trials.copy()

    @property
    def modality(self) -> str:
        """``"fmri"``, ``"meg"`` or ``"seeg"``."""
        return self._modality

    @property
    def subject(self) -> str:
        """The subject's label."""
        return self._subject

    @property
    def info(self) -> VoxelInfo | mne.Info | None:
        """A :class:`VoxelInfo` (fMRI) or an :class:`mne.Info` (MEG/sEEG), or None."""
        return self._info

    @property
    def tmin(self) -> float | None:
        """MEG/sEEG: time of the first sample relative to onset (s)."""
        return self._tmin

    @property
    def n_trials(self) -> int:
        """Number of trials (rows)."""
        return int(self._data.shape[0])

    @property
    def n_features(self) -> int:
        """Features per trial: n_voxels, or n_channels * n_times for MEG/sEEG."""
        return int(np.prod(self._data.shape[1:]))

    @property
    def n_channels(self) -> int:
        """MEG/sEEG channels."""
        self._need_sensors("n_channels")
        return int(self._data.shape[1])

    @property
    def n_times(self) -> int:
        """MEG/sEEG samples per trial."""
        self._need_sensors("n_times")
        return int(self._data.shape[2])

    @property
    def n_voxels(self) -> int:
        """fMRI voxels."""
        if self._modality != "fmri":
            raise AttributeError(f"n_voxels is defined for fMRI only, not {self._modality}.")
        return int(self._data.shape[1])

    @property
    def stimulus_ids(self) -> list[str]:
        """The stimulus id of each trial (length n_trials, aligned with ``data`` rows), so
        ``targets.loc(ts.stimulus_ids)`` lines targets up with trials. Distinct ids:
        ``list(dict.fromkeys(ts.stimulus_ids))``."""
        return [str(s) for s in self._trials["stimulus_id"]]

    def _need_sensors(self, name: str) -> None:
        if self._modality == "fmri":
            raise AttributeError(f"{name} is defined for MEG/sEEG only, not fMRI.")

    def __len__(self) -> int:
        return self.n_trials

    # ------------------------------------------------------------------ derived sets
    def _new(self, data: np.ndarray, trials: pd.DataFrame, check_finite: bool = False) -> TrialSet:
        return TrialSet(
            data, trials, self._modality, self._subject, self._info, self._tmin,
            check_finite=check_finite,
        )

    def select(
        self,
        split: str | Sequence[str] | None = None,
        session: Any = None,
        stimulus_ids: Iterable[str] | None = None,
        mask: np.ndarray | Sequence[bool] | None = None,
    ) -> TrialSet:
        """Keep the trials matching every given criterion.

        Parameters
        ----------
        split : str | list of str | None
            Split(s) to keep.
        session : value | list of values | None
            Session(s) to keep.
        stimulus_ids : iterable of str | None
            Stimuli to keep.
        mask : boolean array, shape (n_trials,) | None
            Trials to keep.

        Returns
        -------
        TrialSet
            The selected trials, in their original order. Memory-mapped data stays
            memory-mapped when they form one contiguous block.
        """
        keep = np.ones(self.n_trials, dtype=bool)
        t = self._trials
        if split is not None:
            splits = [split] if isinstance(split, str) else list(split)
            for s in splits:
                check_option("split", s, SPLITS)
            keep &= t["split"].isin(splits).to_numpy()
        if session is not None:
            sessions = list(session) if isinstance(session, list | tuple | set | np.ndarray) else [
                session
            ]
            keep &= t["session"].isin(sessions).to_numpy()
        if stimulus_ids is not None:
            if isinstance(stimulus_ids, str):
                raise TypeError("'stimulus_ids' must be an iterable of ids, not a single str.")
            keep &= t["stimulus_id"].isin(list(stimulus_ids)).to_numpy()
        if mask is not None:
            m = np.asarray(mask)
            if m.dtype != bool or m.shape != (self.n_trials,):
                raise ValueError(
                    f"'mask' must be a boolean array of shape ({self.n_trials},), got dtype "
                    f"{m.dtype} and shape {m.shape}."
                )
            keep &= m
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            raise ValueError(
                f"select(split={split!r}, session={session!r}, ...) matched no trials of "
                f"{self!r}."
            )
        if len(idx) == self.n_trials:
            data = self._data
        elif idx[-1] - idx[0] + 1 == len(idx):
            data = self._data[idx[0] : idx[-1] + 1]  # a view: a memmap stays a memmap
        else:
            data = self._data[idx]
        return self._new(data, t.iloc[idx])

    def average_repetitions(self) -> TrialSet:
        """Average the trials of each stimulus into one row.

        Returns
        -------
        TrialSet
            One trial per stimulus (order of first appearance), indexed by the stimulus
            id, with data in float32 (the mean over its repetitions, accumulated in
            float32 chunk by chunk so a memmap is never loaded whole). In the table,
            ``repetition`` becomes the number of trials averaged; ``session``, ``run``
            and ``onset`` are those of the stimulus's first trial (in table order);
            ``split`` is the stimulus's split (a stimulus in several splits raises
            :class:`SplitLeakError`); free columns are kept when they are constant within
            every stimulus, and dropped otherwise.
        """
        check_no_leak(self._trials)
        sid = self._trials["stimulus_id"].to_numpy()
        codes, uniques = pd.factorize(sid, sort=False)
        n_stim = len(uniques)
        counts = np.bincount(codes, minlength=n_stim)
        flat_shape = (self.n_trials, self.n_features)
        sums = np.zeros((n_stim, self.n_features), dtype=np.float32)
        import scipy.sparse as sp

        for start, stop in _chunks(self._data):
            block = np.asarray(self._data[start:stop], dtype=np.float32).reshape(
                stop - start, flat_shape[1]
            )
            ind = sp.csr_matrix(
                (np.ones(stop - start, np.float32), (codes[start:stop], np.arange(stop - start))),
                shape=(n_stim, stop - start),
            )
            sums += ind @ block
        means = (sums / counts[:, None].astype(np.float32)).reshape(
            (n_stim,) + self._data.shape[1:]
        )
        _, first_idx = np.unique(codes, return_index=True)  # first trial of each stimulus
        table = self._trials.iloc[first_idx].copy()
        table["repetition"] = counts.astype(np.int64)
        free = [c for c in table.columns if c not in REQUIRED_COLUMNS]
        if free:
            nun = self._trials[free].groupby(codes).nunique(dropna=False)
            varying = [c for c in free if (nun[c] > 1).any()]
            table = table.drop(columns=varying)
        table.index = pd.Index([str(u) for u in uniques], name="trial_id", dtype=object)
        return self._new(means, table)

    @staticmethod
    def concatenate(trialsets: Sequence[TrialSet]) -> TrialSet:
        """Join TrialSets of the same subject, modality and feature space (e.g. sessions).

        Parameters
        ----------
        trialsets : list of TrialSet
            Their trial ids must be distinct; their data dtypes equal.

        Returns
        -------
        TrialSet
            The trials of all sets in the given order. The data is copied into memory.

        Raises
        ------
        SplitLeakError
            If a stimulus ends up in more than one split.
        """
        sets = list(trialsets)
        if not sets or not all(isinstance(s, TrialSet) for s in sets):
            raise TypeError("'trialsets' must be a non-empty list of TrialSet.")
        ref = sets[0]
        for i, s in enumerate(sets[1:], start=1):
            for attr in ("subject", "modality"):
                if getattr(s, attr) != getattr(ref, attr):
                    raise ValueError(
                        f"Cannot concatenate: trialsets[{i}].{attr}={getattr(s, attr)!r} "
                        f"different from trialsets[0].{attr}={getattr(ref, attr)!r}."
                    )
            if s.data.shape[1:] != ref.data.shape[1:]:
                raise ValueError(
                    f"Cannot concatenate: trialsets[{i}] has feature shape {s.data.shape[1:]}, "
                    f"trialsets[0] has {ref.data.shape[1:]}."
                )
            if s.data.dtype != ref.data.dtype:
                raise ValueError(
                    f"Cannot concatenate: trialsets[{i}] has dtype {s.data.dtype}, "
                    f"trialsets[0] has {ref.data.dtype}."
                )
            if not _same_info(ref.info, s.info) or s.tmin != ref.tmin:
                raise ValueError(
                    f"Cannot concatenate: trialsets[{i}] has a different feature space "
                    "(info or tmin) from trialsets[0]."
                )
        trials = pd.concat([s._trials for s in sets], axis=0)
        dup = trials.index[trials.index.duplicated()]
        if len(dup):
            raise ValueError(
                f"Cannot concatenate: {len(dup)} trial id(s) occur in more than one set, e.g. "
                f"{list(dup[:5])}; give each trial a unique id first."
            )
        check_no_leak(trials)
        data = np.concatenate([np.asarray(s.data) for s in sets], axis=0)
        return ref._new(data, trials)

    def with_splits(self, splits: Mapping[str, str] | pd.Series) -> TrialSet:
        """Set the ``split`` column from a stimulus-level assignment.

        Parameters
        ----------
        splits : dict | Series
            ``stimulus_id -> split`` (e.g. from :func:`assign_splits`); it must cover
            every stimulus of this set.

        Returns
        -------
        TrialSet
        """
        if isinstance(splits, pd.Series):
            mapping = {str(k): v for k, v in splits.items()}
        elif isinstance(splits, Mapping):
            mapping = {str(k): v for k, v in splits.items()}
        else:
            raise TypeError(
                f"'splits' must be a dict or a Series stimulus_id -> split, got "
                f"{type(splits).__name__}."
            )
        for v in set(mapping.values()):
            check_option("split", v, SPLITS)
        missing = [s for s in dict.fromkeys(self.stimulus_ids) if s not in mapping]
        if missing:
            raise ValueError(
                f"'splits' has no entry for {len(missing)} stimulus id(s) of this TrialSet, "
                f"e.g. {missing[:5]}."
            )
        trials = self._trials.copy()
        trials["split"] = pd.Series(
            [mapping[s] for s in trials["stimulus_id"]], index=trials.index, dtype=object
        ).astype(trials["split"].dtype)
        check_no_leak(trials)
        return self._new(self._data, trials)

    def to_nifti(self, values: np.ndarray) -> nib.Nifti1Image:
        """fMRI: per-voxel values as a NIfTI image (see :meth:`VoxelInfo.to_nifti`)."""
        if self._modality != "fmri":
            raise ValueError(f"to_nifti is for fMRI TrialSets, this one is {self._modality}.")
        if self._info is None:
            raise ValueError("to_nifti needs a VoxelInfo, but this TrialSet has info=None.")
        return self._info.to_nifti(values)

    # ------------------------------------------------------------------ I/O
    def save(self, path: PathLike) -> Path:
        """Write the TrialSet to a folder, atomically.

        The folder holds ``data.npy`` (``np.save``, memory-mappable), ``trials.tsv``
        (missing values as ``n/a``; column dtypes recorded), ``trialset.json``
        (format, version, modality, subject, tmin, dtype, shape, column dtypes) and the
        info: ``mask.nii.gz`` (+ ``roi.nii.gz``; + ``ijk.npy`` when the voxels are not in
        C order) for fMRI, ``info.fif`` for MEG/sEEG.

        Parameters
        ----------
        path : path
            The folder; an existing one is replaced only once the new one is complete.

        Returns
        -------
        Path
        """
        path = Path(path)
        trials = self._trials
        index_name = trials.index.name or "trial_id"
        if index_name in trials.columns:
            raise ValueError(f"The trial table has both an index and a column {index_name!r}.")
        columns = {str(c): str(trials[c].dtype) for c in trials.columns}
        if not all(isinstance(c, str) for c in trials.columns):
            raise TypeError(
                f"The trial table's column names must be str to be saved, got {list(trials.columns)}."
            )
        # where text columns are missing: "n/a" alone would be ambiguous with the string
        na_rows = {
            str(c): np.flatnonzero(trials[c].isna().to_numpy()).tolist()
            for c in trials.columns
            if _is_text(trials[c].dtype) and trials[c].isna().any()
        }
        if _is_text(trials.index.dtype) and trials.index.isna().any():
            raise ValueError("The trial ids (index) must not be missing.")
        meta: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "modality": self._modality,
            "subject": self._subject,
            "tmin": self._tmin,
            "dtype": str(self._data.dtype),
            "shape": list(self._data.shape),
            "n_trials": self.n_trials,
            "index": {"name": index_name, "dtype": str(trials.index.dtype)},
            "columns": columns,
            "na_rows": na_rows,
            "info": None,
        }
        with atomic_dir(path) as tmp:
            _save_npy_chunked(tmp / "data.npy", self._data)
            table = trials.reset_index(names=index_name)
            table.to_csv(tmp / "trials.tsv", sep="\t", index=False, na_rep=_NA)
            if self._info is not None and self._modality == "fmri":
                meta["info"] = _save_voxel_info(self._info, tmp)
            elif self._info is not None:
                import mne

                mne.io.write_info(tmp / "info.fif", self._info, verbose=False)
                meta["info"] = {"kind": "mne.Info", "file": "info.fif"}
            write_json_atomic(tmp / "trialset.json", meta)
        return path

    @classmethod
    def load(cls, path: PathLike, mmap: bool = True, *, check_finite: bool = True) -> TrialSet:
        """Read a folder written by :meth:`save`.

        Parameters
        ----------
        path : path
            The folder.
        mmap : bool
            Memory-map ``data.npy`` read-only (``np.load(mmap_mode="r")``) instead of
            reading it into memory.
        check_finite : bool
            Check the data for NaN/inf (in bounded chunks).

        Returns
        -------
        TrialSet
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"TrialSet.load: {str(path)!r} is not a folder.")
        meta_file = path / "trialset.json"
        if not meta_file.is_file():
            raise ValueError(
                f"{str(path)!r} is not a TrialSet folder: it has no trialset.json "
                "(write one with TrialSet.save)."
            )
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{str(meta_file)!r} is not valid JSON: {err}") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise ValueError(
                f"{str(meta_file)!r} does not describe a TrialSet (format "
                f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected "
                f"{FORMAT_NAME!r})."
            )
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} was written by a newer format version "
                f"{meta['format_version']} (this code reads <= {FORMAT_VERSION})."
            )
        for name in ("data.npy", "trials.tsv"):
            if not (path / name).is_file():
                raise ValueError(f"{str(path)!r} is not a complete TrialSet: {name} is missing.")
        data = np.load(path / "data.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        if list(data.shape) != list(meta["shape"]) or str(data.dtype) != meta["dtype"]:
            raise ValueError(
                f"{str(path / 'data.npy')!r} holds {data.dtype} {data.shape}, but "
                f"trialset.json says {meta['dtype']} {tuple(meta['shape'])}."
            )
        trials = _read_trials(path / "trials.tsv", meta)
        info: Any = None
        if meta.get("info"):
            if meta["modality"] == "fmri":
                info = _load_voxel_info(path, meta["info"])
            else:
                import mne

                info = mne.io.read_info(path / meta["info"]["file"], verbose=False)
        return cls(
            data, trials, meta["modality"], meta["subject"], info, meta.get("tmin"),
            check_finite=check_finite,
        )

    # ------------------------------------------------------------------ display
    def _summary(self) -> list[tuple[str, str]]:
        t = self._trials
        split_col = t["split"].replace("", "(unassigned)")
        splits = split_col.value_counts()
        n_stim = t.groupby(split_col.to_numpy())["stimulus_id"].nunique()
        rows = [
            ("subject", self._subject),
            ("modality", self._modality),
            ("shape", " x ".join(str(s) for s in self._data.shape)
             + (" (trials x voxels)" if self._modality == "fmri" else
                " (trials x channels x times)")),
            ("dtype", str(self._data.dtype) + (" (memory-mapped)" if isinstance(
                self._data, np.memmap) else "")),
            ("sessions", ", ".join(str(s) for s in pd.unique(t["session"])[:20])
             + (" ..." if t["session"].nunique() > 20 else "")),
            ("splits (trials / stimuli)",
             ", ".join(f"{k}: {v} / {n_stim[k]}" for k, v in splits.items())),
            ("stimuli", str(t["stimulus_id"].nunique())),
        ]
        if self._modality != "fmri" and self._info is not None:
            rows.append(("sfreq", f"{self._info['sfreq']:g} Hz, tmin {self._tmin}"))
        return rows

    def __repr__(self) -> str:
        splits = self._trials["split"].value_counts()
        sp = " ".join(f"{k or 'unassigned'}={v}" for k, v in splits.items())
        feat = "voxels" if self._modality == "fmri" else "channels x times"
        shape = " x ".join(str(s) for s in self._data.shape[1:])
        return (
            f"<TrialSet | {self._modality}, subject {self._subject!r}, {self.n_trials} trials x "
            f"{shape} {feat}, {self._data.dtype}, {self._trials['stimulus_id'].nunique()} "
            f"stimuli, {sp}>"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._summary()
        )
        head = self._trials.head(5).to_html(border=0)
        return (
            "<div><strong>TrialSet</strong><table>" + rows + "</table>"
            "<details><summary>first trials</summary>" + head + "</details></div>"
        )


# =========================================================================== helpers
def _validate_trials(trials: Any, subject: str, n_trials: int) -> pd.DataFrame:
    if not isinstance(trials, pd.DataFrame):
        raise TypeError(f"'trials' must be a pandas DataFrame, got {type(trials).__name__}.")
    missing = [c for c in REQUIRED_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(
            f"'trials' is missing the required column(s) {missing}; required are "
            f"{list(REQUIRED_COLUMNS)}, found {list(trials.columns)}."
        )
    if len(trials) != n_trials:
        raise ValueError(
            f"'trials' has {len(trials)} rows but 'data' has {n_trials} trials (data.shape[0])."
        )
    if n_trials == 0:
        raise ValueError("A TrialSet needs at least one trial, got 0.")
    if not trials.index.is_unique:
        dup = trials.index[trials.index.duplicated()]
        raise ValueError(
            f"'trials' index (trial ids) must be unique; {len(dup)} duplicate(s), e.g. "
            f"{list(dup[:5])}."
        )
    if trials.columns.duplicated().any():
        raise ValueError(f"'trials' has duplicate column names: {list(trials.columns)}.")
    for col in ("subject", "stimulus_id", "split"):
        bad = [v for v in trials[col] if not isinstance(v, str)]
        if bad:
            raise TypeError(
                f"'trials' column {col!r} must hold str, found {type(bad[0]).__name__} "
                f"value(s) such as {bad[0]!r} (convert with trials[{col!r}].astype(str))."
            )
    wrong = sorted(set(trials["subject"]) - {subject})
    if wrong:
        raise ValueError(
            f"'trials' column 'subject' must equal subject={subject!r} on every row, found "
            f"{wrong[:5]}."
        )
    bad_split = sorted(set(trials["split"]) - set(SPLITS))
    if bad_split:
        raise ValueError(
            f"'trials' column 'split' must hold values in {list(SPLITS)}, found {bad_split[:5]}."
        )
    if (trials["stimulus_id"] == "").any():
        raise ValueError("'trials' column 'stimulus_id' has empty ids.")
    rep = trials["repetition"]
    if not pd.api.types.is_integer_dtype(rep) or pd.api.types.is_bool_dtype(rep):
        raise TypeError(f"'trials' column 'repetition' must be integer, got dtype {rep.dtype}.")
    onset = trials["onset"]
    if not pd.api.types.is_numeric_dtype(onset) or pd.api.types.is_bool_dtype(onset):
        raise TypeError(f"'trials' column 'onset' must be numeric (s), got dtype {onset.dtype}.")
    for col in ("session", "run"):
        if trials[col].isna().any():
            raise ValueError(f"'trials' column {col!r} has missing values.")
    return trials.copy()


def _chunks(data: np.ndarray) -> Iterable[tuple[int, int]]:
    row_bytes = max(1, int(np.prod(data.shape[1:])) * max(4, data.dtype.itemsize))
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, data.shape[0], step):
        yield start, min(start + step, data.shape[0])


def _check_finite_chunked(data: np.ndarray) -> None:
    for start, stop in _chunks(data):
        block = np.asarray(data[start:stop])
        ok = np.isfinite(block)
        if not ok.all():
            n_bad = int((~ok).sum())
            first = tuple(int(i) for i in np.argwhere(~ok)[0])
            first = (first[0] + start,) + first[1:]
            for s2, e2 in _chunks(data):  # count over the whole array for the message
                if s2 > start:
                    n_bad += int((~np.isfinite(np.asarray(data[s2:e2]))).sum())
            raise ValueError(
                f"'data' must contain only finite values, but found {n_bad} NaN or infinite "
                f"value(s) (first at index {first}, trial {first[0]})."
            )


def _save_npy_chunked(file: Path, data: np.ndarray) -> None:
    if isinstance(data, np.memmap) or not data.flags.c_contiguous:
        out = np.lib.format.open_memmap(file, mode="w+", dtype=data.dtype, shape=data.shape)
        for start, stop in _chunks(data):
            out[start:stop] = data[start:stop]
        out.flush()
        del out
    else:
        np.save(file, data, allow_pickle=False)


def _same_info(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, VoxelInfo):
        return a.same_space(b)
    return (
        list(a["ch_names"]) == list(b["ch_names"])
        and float(a["sfreq"]) == float(b["sfreq"])
    )


def _save_voxel_info(info: VoxelInfo, folder: Path) -> dict[str, Any]:
    import nibabel as nib

    nib.save(nib.Nifti1Image(info.mask_array().astype(np.uint8), info.affine),
             folder / "mask.nii.gz")
    out: dict[str, Any] = {"kind": "VoxelInfo", "mask": "mask.nii.gz", "ijk": None,
                           "roi": None, "roi_names": None}
    if not info._is_c_order():
        np.save(folder / "ijk.npy", info.ijk, allow_pickle=False)
        out["ijk"] = "ijk.npy"
    if info.roi is not None:
        if np.abs(info.roi).max(initial=0) >= 2**31:
            raise ValueError("ROI labels must fit in int32 to be saved.")
        vol = np.zeros(info.shape, dtype=np.int32)
        vol[tuple(info.ijk.T)] = info.roi
        nib.save(nib.Nifti1Image(vol, info.affine), folder / "roi.nii.gz")
        out["roi"] = "roi.nii.gz"
    if info.roi_names is not None:
        out["roi_names"] = {str(k): v for k, v in info.roi_names.items()}
    return out


def _load_voxel_info(folder: Path, meta: dict[str, Any]) -> VoxelInfo:
    mask, affine = _load_volume("mask", folder / meta["mask"])
    if meta.get("ijk"):
        ijk = np.load(folder / meta["ijk"], allow_pickle=False)
        if not mask[tuple(ijk.T)].all() or int((mask != 0).sum()) != len(ijk):
            raise ValueError(f"{str(folder)!r}: ijk.npy does not match mask.nii.gz.")
    else:
        ijk = np.argwhere(mask != 0)
    roi = None
    if meta.get("roi"):
        labels, _ = _load_volume("roi", folder / meta["roi"])
        roi = labels[tuple(ijk.T)].astype(np.int64)
    names = meta.get("roi_names")
    roi_names = {int(k): v for k, v in names.items()} if names else None
    return VoxelInfo(affine=affine, shape=mask.shape, ijk=ijk, roi=roi, roi_names=roi_names)


def _read_trials(file: Path, meta: dict[str, Any]) -> pd.DataFrame:
    raw = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    index = meta["index"]
    columns = meta["columns"]
    expected = [index["name"], *columns]
    if list(raw.columns) != expected:
        raise ValueError(
            f"{str(file)!r} has columns {list(raw.columns)}, but trialset.json lists {expected}."
        )
    na_rows = meta.get("na_rows", {})
    out = {}
    for name, dtype in [(index["name"], index["dtype"]), *columns.items()]:
        out[name] = _restore_column(raw[name], dtype, name, na_rows.get(name, []))
    table = pd.DataFrame(out)
    table = table.set_index(index["name"])
    return table


def _is_text(dtype: Any) -> bool:
    return dtype is np.dtype(object) or (
        pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    )


def _restore_column(col: pd.Series, dtype: str, name: str, na_rows: list[int]) -> pd.Series:
    values = col.astype(object)
    try:
        pdtype = pd.api.types.pandas_dtype(dtype)
    except TypeError as err:
        raise ValueError(f"Column {name!r}: unknown dtype {dtype!r} in trialset.json.") from err
    if _is_text(pdtype):
        # text is written verbatim; missing values are the rows listed in trialset.json
        # (a literal "n/a" string stays a string)
        is_na = np.zeros(len(values), dtype=bool)
        is_na[np.asarray(na_rows, dtype=np.int64)] = True
        res = values.where(~is_na, None)
        return res if pdtype is np.dtype(object) else res.astype(pdtype)
    is_na = (values == _NA).to_numpy()
    if pd.api.types.is_bool_dtype(pdtype):
        mapping = {"True": True, "False": False}
        bad = set(values[~is_na]) - set(mapping)
        if bad:
            raise ValueError(f"Column {name!r}: expected True/False, found {sorted(bad)[:5]}.")
        res = values.map(lambda v: mapping.get(v, None))
        return res.astype(pdtype if not is_na.any() else "boolean")
    if isinstance(pdtype, pd.CategoricalDtype):
        return values.where(~is_na, None).astype("category")
    if pd.api.types.is_datetime64_any_dtype(pdtype):
        return pd.to_datetime(values.where(~is_na, None)).astype(pdtype)
    numeric = pd.to_numeric(values.where(~is_na, np.nan), errors="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return numeric.astype(pdtype)
