"""fMRI into :class:`~braindecode_kit.trialset.TrialSet`: single-trial GLM betas from BOLD,
and precomputed betas (4D NIfTI or NSD-style HDF5) streamed into a memory-mapped array.

Three entry points:

- :func:`load_fmri` — BOLD run(s) + events -> single-trial betas (LSS or LSA, see
  :mod:`braindecode_kit.io.glm`), in percent signal change.
- :func:`load_fmri_bids` — every run of a subject in a BIDS dataset, with the brain mask
  and ROI atlas from ``derivatives/``, z-scored per session on training trials only.
- :func:`load_betas` — betas someone already estimated (NSD's GLMsingle betas, or any
  4D NIfTI of trials), masked, z-scored per session, optionally averaged over
  repetitions, written to a memory-mapped ``.npy`` in ``cache_dir`` with bounded memory.

Masks can be a NIfTI mask, an atlas with label names (``atlas=..., rois=[...]``), or a
nilearn masker (fitted or not); the voxels' positions are kept as a
:class:`~braindecode_kit.info.VoxelInfo` so ``trialset.to_nifti(values)`` maps any
per-voxel vector back to the subject's space.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_option
from .._docs import fill_doc
from .._logging import logger, verbose
from .._readers import read_json, read_nifti, read_npy, read_tsv, reading
from .._utils import PathLike, atomic_path, hash_jsonable, write_json_atomic
from ..info import VoxelInfo
from ..splits import check_no_leak
from ..trialset import TrialSet

__all__ = [
    "Int16OverflowError",
    "load_fmri",
    "load_fmri_bids",
    "load_betas",
    "resolve_mask",
    "to_int16",
    "zscore_sessions",
]

REQUIRED_EVENT_COLUMNS = ("onset", "duration", "stimulus_id")
NSD_SCALE = 300.0  # NSD betas: int16 = percent signal change x 300
_INT16_MAX = 32767
_SLAB_BYTES = 32 << 20  # HDF5 reads: at most this many raw bytes at once
_ROW_BYTES = 64 << 20  # streaming passes over the output: rows per block
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
#: a voxel whose mean BOLD is below this fraction of the median voxel's is "zero-mean"
_MIN_MEAN_FRACTION = 1e-3


class Int16OverflowError(ValueError):
    """Values do not fit in int16 at the requested scale (or hit its limits)."""


# =========================================================================== masks
@dataclass
class _Mask:
    """A resolved mask: the voxels (VoxelInfo) and, optionally, the masker to apply."""

    info: VoxelInfo
    masker: Any = None

    @property
    def bool3d(self) -> np.ndarray:
        return self.info.mask_array()


def _is_masker(obj: Any) -> bool:
    return hasattr(obj, "transform") and hasattr(obj, "fit") and (
        hasattr(obj, "mask_img") or hasattr(obj, "mask_img_")
    )


def _load_img(name: str, img: Any):
    import nibabel as nib

    if isinstance(img, str | os.PathLike):
        if not Path(img).exists():
            raise FileNotFoundError(f"{name!r}: no such file {str(img)!r}.")
        return read_nifti(img, f"{name} image")
    if isinstance(img, nib.spatialimages.SpatialImage):
        return img
    raise TypeError(
        f"{name!r} must be a NIfTI path or a nibabel image, got {type(img).__name__}."
    )


def _volume(name: str, img: Any) -> tuple[np.ndarray, np.ndarray]:
    where = img
    img = _load_img(name, img)
    with reading(_file_of(img, where), f"{name} image", "a complete NIfTI image"):
        data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{name!r} must be a 3-D image, got shape {data.shape}.")
    return data, np.asarray(img.affine, float)


def _file_of(img: Any, given: Any = None) -> str:
    """The file an image was read from (for messages), or a description."""
    if isinstance(given, str | os.PathLike):
        return str(given)
    name = getattr(img, "get_filename", lambda: None)()
    return str(name) if name else "(in-memory image)"


def _check_grid(name: str, shape, affine, ref_shape, ref_affine, ref_name: str) -> None:
    if tuple(shape) != tuple(ref_shape) or not np.allclose(affine, ref_affine, atol=1e-3):
        raise ValueError(
            f"{name!r} does not match the {ref_name}'s grid: {name} has shape "
            f"{tuple(shape)} and affine\n{np.round(affine, 4)}\nbut the {ref_name} has shape "
            f"{tuple(ref_shape)} and affine\n{np.round(ref_affine, 4)}.\nResample it first, "
            "e.g. nilearn.image.resample_to_img(mask, bold, interpolation='nearest')."
        )


def _read_labels(atlas_labels: Any) -> dict[int, str] | None:
    if atlas_labels is None:
        return None
    if isinstance(atlas_labels, Mapping):
        return {int(k): str(v) for k, v in atlas_labels.items()}
    if isinstance(atlas_labels, str | os.PathLike):
        from .bids import read_atlas_labels

        table = Path(atlas_labels)
        if table.suffix == ".tsv":
            frame = read_tsv(table, "atlas label table")
            missing = {"index", "name"} - set(frame.columns)
            if missing:
                raise ValueError(
                    f"'atlas_labels' table {str(table)!r} needs the columns 'index' and "
                    f"'name'; missing {sorted(missing)}, found {list(frame.columns)}."
                )
            return {int(i): str(n) for i, n in zip(frame["index"], frame["name"])}
        return read_atlas_labels(table)
    raise TypeError(
        "'atlas_labels' must be a dict label -> name, a .tsv path or None, got "
        f"{type(atlas_labels).__name__}."
    )


def resolve_mask(
    mask: Any,
    ref_img: Any = None,
    *,
    atlas: Any = None,
    atlas_labels: Mapping[int, str] | PathLike | None = None,
    rois: Sequence[str | int] | None = None,
    ref_shape: tuple[int, int, int] | None = None,
    ref_affine: np.ndarray | None = None,
) -> _Mask:
    """Turn a mask specification into the voxel list (and masker) to read.

    Parameters
    ----------
    mask : None | path | nibabel image | nilearn masker
        ``None``: every voxel whose signal is not identically zero in ``ref_img`` (the
        zero background outside the brain), or the atlas' labelled voxels if ``rois`` is
        given. A NIfTI (path or image): its nonzero voxels. A nilearn masker
        (:class:`~nilearn.maskers.NiftiMasker`): fitted on ``ref_img`` if not fitted yet;
        its ``mask_img_`` gives the voxels and its ``transform`` reads the data.
    ref_img : 4-D image | None
        The data the mask applies to (its grid is checked).
    atlas : path | nibabel image | None
        Integer label image on the same grid; each voxel's label goes to
        ``VoxelInfo.roi``.
    atlas_labels : dict | path | None
        Label index -> name (a dict, a BIDS ``*_dseg.tsv`` with ``index`` and ``name``).
    rois : list of str or int | None
        Keep only the voxels whose atlas label is one of these (names need
        ``atlas_labels``).
    ref_shape, ref_affine
        The grid to check against when there is no ``ref_img`` (e.g. HDF5 betas).

    Returns
    -------
    mask : _Mask
        ``.info`` (a VoxelInfo) and ``.masker`` (or None).
    """
    masker = None
    if ref_img is not None:
        ref_img = _load_img("bold", ref_img)
        ref_shape, ref_affine = ref_img.shape[:3], np.asarray(ref_img.affine, float)
    if _is_masker(mask):
        masker = mask
        if not hasattr(masker, "mask_img_"):
            if ref_img is None:
                raise ValueError(
                    "An unfitted masker needs data to be fitted on; fit it first "
                    "(masker.fit(img)) when loading precomputed betas."
                )
            masker.fit(None if getattr(masker, "mask_img", None) is not None else ref_img)
        mask_arr, mask_affine = _volume("mask", masker.mask_img_)
        resamples = getattr(masker, "target_affine", None) is not None or getattr(
            masker, "target_shape", None
        ) is not None
        if ref_shape is not None and not resamples:
            _check_grid("mask", mask_arr.shape, mask_affine, ref_shape, ref_affine, "BOLD image")
        keep = mask_arr != 0
    elif mask is None:
        if ref_img is None and atlas is None:
            raise ValueError(
                "'mask' is required here: these betas carry no image grid (e.g. HDF5); "
                "pass the NIfTI mask (e.g. NSD's nsdgeneral.nii.gz)."
            )
        mask_affine = ref_affine
        if ref_img is not None:
            keep = _nonzero_voxels(ref_img)
        else:
            keep = np.ones(ref_shape, bool)
    else:
        mask_arr, mask_affine = _volume("mask", mask)
        if ref_shape is not None:
            _check_grid("mask", mask_arr.shape, mask_affine, ref_shape, ref_affine, "data")
        keep = np.nan_to_num(mask_arr.astype(float)) > 0
    roi, names = None, _read_labels(atlas_labels)
    if atlas is not None:
        labels, atlas_affine = _volume("atlas", atlas)
        _check_grid("atlas", labels.shape, atlas_affine, keep.shape, mask_affine, "mask")
        labels = np.nan_to_num(labels.astype(float)).round().astype(np.int64)
        if names is None:
            path = atlas if isinstance(atlas, str | os.PathLike) else None
            if path is not None:
                from .bids import read_atlas_labels

                try:
                    names = read_atlas_labels(path)
                except FileNotFoundError:
                    names = None
        if rois is not None:
            wanted = []
            by_name = {v: k for k, v in (names or {}).items()}
            for r in rois:
                if isinstance(r, int | np.integer):
                    wanted.append(int(r))
                elif r in by_name:
                    wanted.append(by_name[r])
                else:
                    raise ValueError(
                        f"Invalid value in the 'rois' parameter: {r!r}. Allowed values are "
                        f"the atlas labels {sorted(by_name)} (or their int indices "
                        f"{sorted(np.unique(labels).tolist())})."
                    )
            keep = keep & np.isin(labels, wanted)
        roi = labels[keep]
    elif rois is not None:
        raise ValueError("'rois' needs an 'atlas' (a label image) to select from.")
    if masker is not None and (rois is not None):
        raise ValueError("'rois' cannot be combined with a masker; put the ROI in the masker.")
    if not keep.any():
        raise ValueError("The mask selects no voxel (it is empty, or the ROIs are absent).")
    ijk = np.argwhere(keep)
    info = VoxelInfo(affine=mask_affine, shape=keep.shape, ijk=ijk, roi=roi, roi_names=names)
    return _Mask(info=info, masker=masker)


def _nonzero_voxels(img) -> np.ndarray:
    keep = np.zeros(img.shape[:3], bool)
    n = img.shape[3] if len(img.shape) > 3 else 1
    for start in range(0, n, 16):
        block = np.asarray(img.dataobj[..., start : start + 16]) if n > 1 else np.asarray(
            img.dataobj
        )[..., None]
        keep |= np.any(block != 0, axis=-1)
    return keep


# =========================================================================== BOLD input
def _as_list(value: Any, n: int, name: str) -> list:
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(f"{name!r} must have one entry per run ({n}), got {len(value)}.")
        return list(value)
    return [value] * n


def _load_bold(bold: Any, where: str):
    img = _load_img("bold", bold)
    if len(img.shape) != 4:
        raise ValueError(
            f"'bold' must be a 4-D image (x, y, z, time), but {where} has shape {img.shape} "
            f"({len(img.shape)}-D)."
        )
    if img.shape[3] < 2:
        raise ValueError(f"'bold' must have at least 2 volumes, but {where} has {img.shape[3]}.")
    return img


def _header_tr(img) -> float | None:
    zooms = img.header.get_zooms()
    if len(zooms) < 4:
        return None
    value = float(zooms[3])
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # noqa: BLE001 - headers without units
        unit = "unknown"
    if value <= 0 or (unit == "unknown" and value == 1.0):
        return None  # unset
    return value * _TIME_UNITS.get(unit, 1.0)


def _resolve_tr(img, tr: float | None, sidecar_tr: float | None, where: str) -> float:
    hdr = _header_tr(img)
    if tr is not None:
        if isinstance(tr, bool) or not isinstance(tr, int | float | np.number) or not tr > 0:
            raise ValueError(f"'tr' must be a positive number of seconds, got {tr!r}.")
        tr = float(tr)
    if tr is not None and sidecar_tr is not None and not np.isclose(tr, sidecar_tr, rtol=1e-3):
        raise ValueError(
            f"tr={tr} s disagrees with RepetitionTime={sidecar_tr} s in the _bold.json sidecar "
            f"of {where}."
        )
    given, source = (tr, "the 'tr' parameter") if tr is not None else (
        sidecar_tr, "RepetitionTime in the _bold.json sidecar"
    )
    if given is not None:
        if hdr is not None and not np.isclose(given, hdr, rtol=1e-3):
            raise ValueError(
                f"The repetition time {given} s ({source}) disagrees with the NIfTI header of "
                f"{where}, whose zooms[3] says {hdr} s. Fix the header "
                "(img.header.set_zooms / set_xyzt_units) or the TR you pass."
            )
        return float(given)
    if hdr is None:
        raise ValueError(
            f"The repetition time of {where} is unknown: its header has no TR (zooms[3]) and "
            "none was given. Pass tr=<seconds>."
        )
    return hdr


def _read_events(events: Any, where: str) -> pd.DataFrame:
    if isinstance(events, str | os.PathLike):
        path = Path(events)
        if not path.is_file():
            raise FileNotFoundError(f"'events': no such file {str(path)!r}.")
        table = read_tsv(path, f"events file of {where}", required=REQUIRED_EVENT_COLUMNS,
                         na_values=["n/a"], keep_default_na=True, dtype={"stimulus_id": str})
    elif isinstance(events, pd.DataFrame):
        table = events.copy()
    else:
        raise TypeError(
            f"'events' must be a BIDS events.tsv path or a DataFrame, got "
            f"{type(events).__name__}."
        )
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"The events of {where} are missing the required column(s) {missing}; required "
            f"are {list(REQUIRED_EVENT_COLUMNS)}, found {list(table.columns)}."
        )
    for col in ("onset", "duration"):
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise ValueError(
                f"The events of {where} have a missing or non-numeric {col!r} (row {row}: "
                f"{table[col].iloc[row]!r})."
            )
        table[col] = values.astype(float)
    if (table["duration"] < 0).any():
        raise ValueError(f"The events of {where} have negative durations.")
    if (table["onset"] < 0).any():
        row = int(np.flatnonzero((table["onset"] < 0).to_numpy())[0])
        raise ValueError(
            f"The events of {where} start before the run (onset {table['onset'].iloc[row]} s "
            f"at row {row})."
        )
    return table


def _split_events(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    sid = table["stimulus_id"]
    is_trial = sid.notna() & (sid.astype(str).str.strip() != "") & (sid.astype(str) != "n/a")
    trials = table[is_trial].copy()
    trials["stimulus_id"] = trials["stimulus_id"].astype(str)
    other = table[~is_trial].copy()
    if len(other):
        if "trial_type" not in other.columns:
            other["trial_type"] = "other"
        other["trial_type"] = other["trial_type"].fillna("other").astype(str)
    return trials.sort_values("onset", kind="stable"), other


def _check_trials_fit_run(trials: pd.DataFrame, n_scans: int, tr: float, where: str) -> None:
    if trials.empty:
        raise ValueError(
            f"The run {where} has no trials: its events have no row with a stimulus_id. "
            "Remove the run or fix its events."
        )
    run_end = n_scans * tr
    end = trials["onset"] + trials["duration"]
    past = (end > run_end + 1e-6).to_numpy()
    if past.any():
        i = int(np.flatnonzero(past)[0])
        raise ValueError(
            f"{int(past.sum())} trial(s) of {where} end after the run: the run lasts "
            f"{n_scans} volumes x {tr} s = {run_end:g} s, but the trial at onset "
            f"{trials['onset'].iloc[i]:g} s (duration {trials['duration'].iloc[i]:g} s, "
            f"stimulus {trials['stimulus_id'].iloc[i]!r}) ends at {end.iloc[i]:g} s."
        )
    onset = trials["onset"].to_numpy()
    stop = end.to_numpy()
    overlap = onset[1:] < stop[:-1] - 1e-6
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        raise ValueError(
            f"{int(overlap.sum())} pair(s) of trials of {where} overlap: the trial at onset "
            f"{onset[i]:g} s lasts until {stop[i]:g} s but the next starts at "
            f"{onset[i + 1]:g} s. Single-trial betas need non-overlapping trials."
        )


def _extract(img, mask: _Mask) -> np.ndarray:
    """(n_scans, n_voxels) float64 time series of the mask's voxels."""
    with reading(_file_of(img), "BOLD run", "a complete 4-D NIfTI image"):
        if mask.masker is not None:
            return np.asarray(mask.masker.transform(img), np.float64)
        ijk = mask.info.ijk
        out = np.empty((img.shape[3], len(ijk)), np.float64)
        for start in range(0, img.shape[3], 32):
            block = np.asarray(img.dataobj[..., start : start + 32])
            out[start : start + block.shape[3]] = block[ijk[:, 0], ijk[:, 1], ijk[:, 2]].T
        return out


def _bad_columns(Y: np.ndarray) -> np.ndarray:
    """Columns with a NaN/inf value, a constant value or a zero or negative mean (see
    :func:`_bad_reasons`)."""
    return _bad_reasons(Y)["any"]


def _nan_or_constant(Y: np.ndarray) -> np.ndarray:
    """Columns with a NaN/inf value or a constant value (betas: any mean is fine)."""
    r = _bad_reasons(Y)
    return r["nan"] | r["constant"]


def _bad_reasons(Y: np.ndarray) -> dict[str, np.ndarray]:
    """Which columns are unusable, and why: NaN/inf, constant, or a zero or negative mean.

    A voxel whose mean is zero or negative cannot be scaled to percent signal change
    (dividing by its mean makes it hundreds of times larger than the others, or flips
    its sign): it is bad like a NaN voxel. "Zero" is a mean below
    ``_MIN_MEAN_FRACTION`` of the median voxel's.
    """
    finite = np.isfinite(Y).all(axis=0)
    with np.errstate(invalid="ignore", over="ignore"):
        const = (Y.max(axis=0) == Y.min(axis=0)) & finite
        mean = Y.mean(axis=0)
        ok = finite & ~const
        # "zero": below a thousandth of the typical voxel's mean (float rounding of a
        # zero-mean signal is not a baseline)
        typical = float(np.median(np.abs(mean[ok]))) if ok.any() else 0.0
        nonpos = (mean <= _MIN_MEAN_FRACTION * typical) & ok
    return {"nan": ~finite, "constant": const, "nonpositive": nonpos,
            "any": ~finite | const | nonpos}


def _describe_bad(reasons: dict[str, np.ndarray]) -> str:
    parts = [f"{int(reasons['nan'].sum())} with NaN/inf values",
             f"{int(reasons['constant'].sum())} with a constant signal",
             f"{int(reasons['nonpositive'].sum())} with a zero or negative mean (not scalable to "
             "percent signal change)"]
    return ", ".join(p for p in parts if not p.startswith("0 "))


def _sidecar_tr(bold: Any) -> float | None:
    """RepetitionTime of the BIDS ``.json`` sidecar beside a BOLD file, or None."""
    if not isinstance(bold, str | os.PathLike):
        return None
    path = Path(bold)
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            side = path.with_name(name[: -len(ext)] + ".json")
            if side.is_file():
                from .bids import read_repetition_time

                return read_repetition_time(side)
    return None


# =========================================================================== load_fmri
@fill_doc
@verbose
def load_fmri(
    bold: Any,
    events: Any,
    *,
    mask: Any = None,
    tr: float | None = None,
    method: str = "lss",
    hrf_model: str = "glover",
    drift_model: str | None = "cosine",
    high_pass: float = 0.01,
    confounds: Any = None,
    noise_model: str = "ols",
    subject: str | None = None,
    session: str | Sequence[str] | None = None,
    run: str | Sequence[str] | None = None,
    atlas: Any = None,
    atlas_labels: Mapping[int, str] | PathLike | None = None,
    rois: Sequence[str | int] | None = None,
    bad_voxels: str = "drop",
    slice_time_ref: float = 0.0,
    verbose: bool | str | int | None = None,
) -> TrialSet:
    """Single-trial betas from BOLD run(s) and their events.

    Each run is fitted on its own (its own drifts and constant): the BOLD is scaled to
    percent signal change (nilearn's ``mean_scaling``, as ``FirstLevelModel`` does) and
    every trial gets a beta by LSS (Mumford et al. 2012) or LSA, solved for all voxels
    at once (see :mod:`braindecode_kit.io.glm`). The betas equal those of a loop of
    ``nilearn.glm.first_level.FirstLevelModel(noise_model="ols")`` fits, one per trial,
    and come tens to hundreds of times faster.

    Parameters
    ----------
    bold : path | nibabel image | list of those
        4-D BOLD run(s).
    events : path | DataFrame | list of those
        BIDS events, one table per run, with ``onset``, ``duration`` (s) and
        ``stimulus_id``. Rows without a stimulus id (e.g. fixation) are modelled as
        nuisance conditions (one regressor per ``trial_type``). Optional columns
        ``repetition`` and ``split`` are carried to the trial table.
    mask : None | path | image | nilearn masker
        See :func:`resolve_mask`. ``None`` keeps every voxel that is not zero throughout
        the first run.
    tr : float | None
        Repetition time (s); by default the BIDS ``.json`` sidecar beside a BOLD file
        (``RepetitionTime``), else the NIfTI header's ``zooms[3]``. A ``tr`` or sidecar
        that disagrees with the header (or with each other) is refused.
    method : {"lss", "lsa"}
        Single-trial estimator. LSS (the default) has less variance when scan noise
        dominates and trials are close together (Mumford et al. 2012); LSA is unbiased
        and closer to the true trial amplitudes when trial-to-trial variability
        dominates, as in NSD-like data (Abdulrahman & Henson 2016) — on the built-in
        simulator at its default SNR, median r with the true trial amplitudes is about
        0.94 for LSA and 0.85 for LSS (``benchmarks/fmri_glm.py``).
    hrf_model, drift_model, high_pass
        Passed to nilearn's design matrix (``'glover'`` or ``'spm'`` HRFs; ``'cosine'``,
        ``'polynomial'`` or None drifts).
    confounds : array | DataFrame | list of those | None
        Per-run nuisance regressors, shape ``(n_scans, n_confounds)``.
    noise_model : {"ols"}
        Only ordinary least squares is implemented (AR(1) prewhitening is not).
    subject : str | None
        Subject label for the table (default ``"01"``).
    session, run : str | list of str | None
        Labels per run (default: session ``"01"``, runs numbered from 1).
    atlas, atlas_labels, rois
        ROI labels (and selection), see :func:`resolve_mask`.
    bad_voxels : {"drop", "raise"}
        Voxels with NaN/inf, a constant signal or a zero or negative mean (which cannot be scaled to
        percent signal change) in any run: dropped (their count and runs are logged as a
        warning) or refused. A run in which every voxel is bad is refused, named.
    slice_time_ref : float
        Fraction of the TR of the reference slice (0 = the volume's start), as nilearn.
    %(verbose)s

    Returns
    -------
    TrialSet
        ``(n_trials, n_voxels)`` float32 betas in percent signal change (not z-scored),
        one row per trial in run order, ``info`` a :class:`VoxelInfo`.

    Raises
    ------
    ValueError
        Non-4-D BOLD, a TR that disagrees with the header, events missing columns,
        past the end of the run or overlapping, empty runs, a mask on another grid,
        bad voxels with ``bad_voxels="raise"``, a split that leaks.
    """
    check_option("method", method, ("lss", "lsa"))
    check_option("noise_model", noise_model, ("ols",))
    check_option("bad_voxels", bad_voxels, ("drop", "raise"))
    bolds = list(bold) if isinstance(bold, list | tuple) else [bold]
    if isinstance(events, list | tuple):
        events_list = list(events)
    else:
        events_list = [events]
    if len(events_list) != len(bolds):
        raise ValueError(
            f"'events' must have one table per BOLD run: got {len(bolds)} run(s) and "
            f"{len(events_list)} events table(s)."
        )
    n_runs = len(bolds)
    confounds_list = (
        list(confounds) if isinstance(confounds, list | tuple) else [confounds] * n_runs
    )
    if len(confounds_list) != n_runs:
        raise ValueError(f"'confounds' must have one entry per run ({n_runs}).")
    sessions = _as_list(session if session is not None else "01", n_runs, "session")
    runs = (
        _as_list(run, n_runs, "run") if run is not None else
        [str(i + 1) for i in range(n_runs)]
    )
    tables, _ = _glm_runs(
        [
            dict(bold=b, events=e, confounds=c, session=str(s), run=str(r), tr=tr,
                 sidecar_tr=_sidecar_tr(b), where=_describe(b, i))
            for i, (b, e, c, s, r) in enumerate(zip(bolds, events_list, confounds_list,
                                                    sessions, runs))
        ],
        mask=mask, atlas=atlas, atlas_labels=atlas_labels, rois=rois, method=method,
        hrf_model=hrf_model, drift_model=drift_model, high_pass=high_pass,
        bad_voxels=bad_voxels, slice_time_ref=slice_time_ref,
    )
    data, trials, info = tables
    sub = "01" if subject is None else str(subject)
    trials.insert(0, "subject", sub)
    trials.index = _trial_ids(sub, trials)
    check_no_leak(trials)
    return TrialSet(data, trials, "fmri", sub, info)


def _describe(bold: Any, i: int) -> str:
    if isinstance(bold, str | os.PathLike):
        return f"run {i} ({Path(bold).name})"
    return f"run {i}"


def _trial_ids(subject: str, trials: pd.DataFrame) -> pd.Index:
    ids = [
        f"sub-{subject}_ses-{s}_run-{r}_trial-{k:04d}"
        for s, r, k in zip(trials["session"], trials["run"], trials["trial_in_run"])
    ]
    return pd.Index(ids, name="trial_id", dtype=object)


def _glm_runs(
    specs: list[dict], *, mask, atlas, atlas_labels, rois, method, hrf_model, drift_model,
    high_pass, bad_voxels, slice_time_ref,
):
    """Fit every run; returns ((data, trials, info), per-run session labels)."""
    from . import glm

    first = _load_bold(specs[0]["bold"], specs[0]["where"])
    resolved = resolve_mask(mask, first, atlas=atlas, atlas_labels=atlas_labels, rois=rois)
    ref_shape, ref_affine = first.shape[:3], np.asarray(first.affine, float)
    betas, tables = [], []
    bad = np.zeros(resolved.info.n_voxels, bool)
    per_run_bad: list[str] = []
    for k, spec in enumerate(specs):
        img = first if k == 0 else _load_bold(spec["bold"], spec["where"])
        if resolved.masker is None:
            _check_grid("bold", img.shape[:3], img.affine, ref_shape, ref_affine,
                        f"first run ({specs[0]['where']})")
        where = spec["where"]
        tr = _resolve_tr(img, spec["tr"], spec["sidecar_tr"], where)
        n_scans = img.shape[3]
        table = _read_events(spec["events"], where)
        trials, other = _split_events(table)
        _check_trials_fit_run(trials, n_scans, tr, where)
        Y = _extract(img, resolved)
        reasons = _bad_reasons(Y)
        run_bad = reasons["any"]
        if run_bad.any() and bad_voxels == "raise":
            raise ValueError(
                f"{int(run_bad.sum())} voxel(s) of {where} are unusable "
                f"({_describe_bad(reasons)}); pass bad_voxels='drop' to drop them, or fix "
                "the mask."
            )
        if run_bad.all():
            raise ValueError(
                f"Every voxel of the mask is unusable in {where} ({_describe_bad(reasons)}): "
                "the run is corrupt or is not BOLD data in scanner units. Fix or remove this "
                "run."
            )
        if run_bad.any():
            per_run_bad.append(f"{where}: {_describe_bad(reasons)}")
        bad |= run_bad
        Y[:, run_bad] = 1.0  # neutral placeholder: dropped below
        times = glm.frame_times(n_scans, tr, slice_time_ref)
        conf = spec["confounds"]
        X, N, _ = glm.trial_design(
            times, trials["onset"], trials["duration"], hrf_model=hrf_model,
            drift_model=drift_model, high_pass=high_pass, confounds=conf,
            other_events=other if len(other) else None,
        )
        b = glm.fit_single_trial(glm.percent_signal_change(Y), X, N, method=method)
        betas.append(b.astype(np.float32))
        out = pd.DataFrame(
            {
                "session": spec["session"],
                "run": spec["run"],
                "onset": trials["onset"].to_numpy(float),
                "duration": trials["duration"].to_numpy(float),
                "stimulus_id": trials["stimulus_id"].astype(str).to_numpy(),
                "trial_in_run": np.arange(len(trials)),
                "tr": tr,
            }
        )
        for col in ("repetition", "split", "trial_type"):
            if col in trials.columns:
                out[col] = trials[col].to_numpy()
        tables.append(out)
        logger.info("GLM (%s) %s: %d trials x %d voxels", method, where, len(trials),
                    Y.shape[1])
    data = np.concatenate(betas, axis=0)
    trials = pd.concat(tables, ignore_index=True)
    info = resolved.info
    if bad.any():
        if bad.all():
            raise ValueError(
                "Every voxel of the mask is unusable in at least one run (NaN/inf values, a "
                "constant signal or a zero or negative mean): "
                + "; ".join(per_run_bad[:10]) + "."
            )
        logger.warning(
            "Dropped %d of %d voxels with NaN/inf values, a constant signal or a zero or "
            "negative mean in some run (%s).", int(bad.sum()), len(bad),
            "; ".join(per_run_bad[:10]),
        )
        data = np.ascontiguousarray(data[:, ~bad])
        info = _subset_info(info, ~bad)
    trials = _finish_table(trials)
    return (data, trials, info), [s["session"] for s in specs]


def _subset_info(info: VoxelInfo, keep: np.ndarray) -> VoxelInfo:
    return VoxelInfo(
        affine=info.affine, shape=info.shape, ijk=info.ijk[keep],
        roi=None if info.roi is None else info.roi[keep], roi_names=info.roi_names,
    )


def _finish_table(trials: pd.DataFrame) -> pd.DataFrame:
    trials = trials.copy()
    if "repetition" in trials.columns and trials["repetition"].notna().all():
        trials["repetition"] = pd.to_numeric(trials["repetition"]).astype(np.int64)
    else:
        trials["repetition"] = trials.groupby("stimulus_id", sort=False).cumcount().astype(
            np.int64
        )
    if "split" in trials.columns:
        split = trials["split"].astype(object).where(trials["split"].notna(), "")
        trials["split"] = split.astype(str).replace({"nan": "", "n/a": ""})
    else:
        trials["split"] = ""
    trials["session"] = trials["session"].astype(str)
    trials["run"] = trials["run"].astype(str)
    trials["stimulus_id"] = trials["stimulus_id"].astype(str)
    return trials


# =========================================================================== z-scoring
def zscore_sessions(
    data: np.ndarray, trials: pd.DataFrame, *, train_only_stats: bool = True
) -> np.ndarray:
    """Z-score each voxel within each session, with statistics from training trials.

    The mean and standard deviation of a session come from its trials whose split is
    not ``"test"`` (nor ``"val"``) when ``train_only_stats`` is True, so nothing about
    held-out stimuli leaks into the features. MindEye2's NSD preparation z-scores each
    session with all of its trials, shared-1000 test images included; we do not.
    Sessions without any training trial fall back to all their trials (logged).

    Parameters
    ----------
    data : ndarray, shape (n_trials, n_voxels)
        Modified in place when writable float32; returned.
    trials : DataFrame
        With ``session`` and ``split`` columns, one row per row of ``data``.
    train_only_stats : bool
        Use training trials only for the statistics.

    Returns
    -------
    data : ndarray
        The z-scored array (float32).
    """
    data = np.asarray(data, np.float32)
    sessions = trials["session"].to_numpy()
    split = trials["split"].astype(str).to_numpy()
    for ses in pd.unique(sessions):
        rows = np.flatnonzero(sessions == ses)
        data[rows] = _zscore_block(data[rows], split[rows], train_only_stats, f"session {ses}")
    return data


def _zscore_block(block: np.ndarray, split: np.ndarray, train_only: bool, where: str):
    use = np.ones(len(block), bool)
    if train_only:
        use = ~np.isin(split, ["test", "val"])
        if not use.any():
            logger.warning("%s has no training trial: z-scored with all its trials.", where)
            use[:] = True
    block = np.asarray(block, np.float32)
    stats = block if use.all() else block[use]
    mean = stats.mean(axis=0, dtype=np.float64)
    std = stats.std(axis=0, dtype=np.float64)
    del stats
    std[~(std > 0)] = 1.0
    block -= mean.astype(np.float32)  # in place: no float64 copy of the session
    block /= std.astype(np.float32)
    return block


# =========================================================================== BIDS
@fill_doc
@verbose
def load_fmri_bids(
    root: PathLike,
    subject: str | int,
    *,
    sessions: Sequence[str | int] | None = None,
    task: str | None = None,
    mask: Any = "brain",
    atlas: Any = "visual",
    rois: Sequence[str | int] | None = None,
    method: str = "lss",
    zscore: str | None = "session",
    train_only_stats: bool = True,
    average_repetitions: bool = False,
    hrf_model: str = "glover",
    drift_model: str | None = "cosine",
    high_pass: float = 0.01,
    bad_voxels: str = "drop",
    verbose: bool | str | int | None = None,
) -> TrialSet:
    """Single-trial betas of every run of one subject in a BIDS dataset.

    Runs are found with nilearn's BIDS helpers (:mod:`braindecode_kit.io.bids`); each
    run's TR comes from its ``_bold.json`` sidecar and must agree with the NIfTI header.
    Betas are fitted per run (:func:`load_fmri`), then z-scored per session with
    statistics from training trials only (:func:`zscore_sessions`).

    Parameters
    ----------
    root : path
        BIDS dataset root.
    subject : str | int
        ``"01"``, ``"sub-01"`` or ``1``.
    sessions : list | None
        Sessions to load (default all).
    task : str | None
        Task label (default all tasks).
    mask : "brain" | None | path | image | nilearn masker
        ``"brain"``: ``derivatives/*/sub-XX/anat/sub-XX_desc-brain_mask.nii.gz``.
        Otherwise as in :func:`resolve_mask`.
    atlas : str | path | image | None
        An atlas name (``"visual"`` ->
        ``derivatives/*/sub-XX/anat/sub-XX_atlas-visual_dseg.nii.gz`` with its
        ``atlas-visual_dseg.tsv`` labels), a label image, or None.
    rois : list | None
        Keep only these atlas labels (names or ints), e.g. ``["early_visual",
        "higher_visual"]``.
    method : {"lss", "lsa"}
    zscore : {"session", None}
    train_only_stats : bool
        Z-score statistics from training trials only (default; see
        :func:`zscore_sessions`).
    average_repetitions : bool
        Average the trials of each stimulus (:meth:`TrialSet.average_repetitions`).
    hrf_model, drift_model, high_pass, bad_voxels
        As in :func:`load_fmri`.
    %(verbose)s

    Returns
    -------
    TrialSet
    """
    from .bids import find_derivative, find_fmri_runs, read_atlas_labels, read_repetition_time
    from .bids import subject_label as _label

    check_option("zscore", zscore, ("session", None))
    check_option("method", method, ("lss", "lsa"))
    sub = _label(subject)
    runs = find_fmri_runs(root, sub, sessions=sessions, task=task)
    mask_arg = find_derivative(root, sub, "desc-brain_mask") if (
        isinstance(mask, str) and mask == "brain"
    ) else mask
    atlas_img, labels = atlas, None
    if isinstance(atlas, str) and not Path(atlas).suffix and not Path(atlas).exists():
        atlas_img = find_derivative(root, sub, f"atlas-{atlas}_dseg")
        labels = read_atlas_labels(atlas_img, root)
    elif atlas is not None and isinstance(atlas, str | os.PathLike):
        try:
            labels = read_atlas_labels(atlas, root)
        except FileNotFoundError:
            labels = None
    specs = [
        dict(
            bold=r.bold, events=r.events, confounds=None, session=r.session or "01",
            run=r.run or str(i + 1), tr=None, sidecar_tr=read_repetition_time(r.sidecar),
            where=f"{r.bold.name}",
        )
        for i, r in enumerate(runs)
    ]
    (data, trials, info), _ = _glm_runs(
        specs, mask=mask_arg, atlas=atlas_img, atlas_labels=labels, rois=rois,
        method=method, hrf_model=hrf_model, drift_model=drift_model, high_pass=high_pass,
        bad_voxels=bad_voxels, slice_time_ref=0.0,
    )
    trials.insert(0, "subject", sub)
    trials.index = _trial_ids(sub, trials)
    check_no_leak(trials)
    if zscore == "session":
        data = zscore_sessions(data, trials, train_only_stats=train_only_stats)
    ts = TrialSet(data, trials, "fmri", sub, info)
    logger.info("Loaded sub-%s: %r", sub, ts)
    return ts.average_repetitions() if average_repetitions else ts


# =========================================================================== int16
def to_int16(values: np.ndarray, scale: float = NSD_SCALE) -> np.ndarray:
    """Cast betas to int16 as NSD stores them (``round(values * scale)``), refusing
    overflow.

    Parameters
    ----------
    values : ndarray
        Betas (e.g. percent signal change).
    scale : float
        Multiplier (NSD: 300).

    Returns
    -------
    ndarray of int16

    Raises
    ------
    Int16OverflowError
        If a scaled value is not finite or falls outside [-32767, 32767] (NSD keeps
        -32768 out of range too); the message gives the count and the largest value.
    """
    values = np.asarray(values, np.float64)
    scaled = np.round(values * scale)
    finite = np.isfinite(scaled)
    over = ~finite | (np.abs(np.where(finite, scaled, 0)) > _INT16_MAX)
    if over.any():
        worst = float(np.nanmax(np.abs(values[np.isfinite(values)]))) if finite.any() else np.nan
        raise Int16OverflowError(
            f"{int(over.sum())} value(s) do not fit in int16 at scale {scale:g}: the largest "
            f"magnitude is {worst:g} but int16 holds at most {_INT16_MAX / scale:g} "
            f"(= {_INT16_MAX} / {scale:g}); NaN/inf are not representable either. Lower "
            "the scale or clip the betas explicitly."
        )
    return scaled.astype(np.int16)


# =========================================================================== precomputed betas
class _Source:
    """One file (session) of precomputed betas: 4D NIfTI or NSD HDF5 (n, Z, Y, X)."""

    def __init__(self, item: Any, index: int, hdf5_key: str):
        import nibabel as nib

        self.index = index
        self.item = item
        self.hdf5_key = hdf5_key
        if isinstance(item, str | os.PathLike) and str(item).endswith((".hdf5", ".h5")):
            import h5py

            self.kind = "hdf5"
            self.path = Path(item)
            if not self.path.is_file():
                raise FileNotFoundError(f"'betas': no such file {str(self.path)!r}.")
            with h5py.File(self.path, "r") as f:
                if hdf5_key not in f:
                    raise ValueError(
                        f"{str(self.path)!r} has no dataset {hdf5_key!r} (found {list(f)})."
                    )
                ds = f[hdf5_key]
                if ds.ndim != 4:
                    raise ValueError(
                        f"The HDF5 betas {str(self.path)!r}[{hdf5_key!r}] must be 4-D "
                        f"(n_trials, Z, Y, X) as NSD writes them, got shape {ds.shape}."
                    )
                self.n_trials = int(ds.shape[0])
                self.grid = tuple(int(s) for s in ds.shape[1:][::-1])  # (X, Y, Z)
                self.dtype = ds.dtype
            self.affine = None
            self.name = self.path.name
        else:
            img = _load_img("betas", item)
            if len(img.shape) != 4:
                raise ValueError(
                    f"'betas' must be 4-D (x, y, z, trials), but {_describe(item, index)} "
                    f"has shape {img.shape}."
                )
            self.kind = "nifti"
            self.img = img
            self.n_trials = int(img.shape[3])
            self.grid = tuple(int(s) for s in img.shape[:3])
            self.affine = np.asarray(img.affine, float)
            slope = getattr(img.dataobj, "slope", None)
            inter = getattr(img.dataobj, "inter", None)
            unscaled = (slope in (None, 1.0) or np.isnan(slope)) and (
                inter in (None, 0.0) or np.isnan(inter)
            )
            on_disk = img.dataobj.dtype if isinstance(img.dataobj, np.ndarray) else (
                img.get_data_dtype()
            )
            self.dtype = np.dtype(on_disk) if unscaled else np.dtype(np.float64)
            self.path = Path(item) if isinstance(item, str | os.PathLike) else None
            self.name = self.path.name if self.path else f"betas[{index}]"
            del nib

    def signature(self) -> Any:
        if self.path is not None:
            st = self.path.stat()
            return [str(self.path.resolve()), st.st_size, st.st_mtime_ns, self.hdf5_key]
        data = np.ascontiguousarray(np.asarray(self.img.dataobj))
        from .._utils import hash_bytes

        return ["image", hash_bytes(data.tobytes()), list(self.img.affine.ravel())]

    def read(self, info: VoxelInfo, scale: float) -> tuple[np.ndarray, int]:
        """Masked betas (n_trials, n_voxels) float32 and the count of saturated int16."""
        if self.kind == "hdf5":
            return self._read_hdf5(info, scale)
        ijk = info.ijk
        out = np.empty((self.n_trials, len(ijk)), np.float32)
        n_sat = 0
        step = max(1, _SLAB_BYTES // max(1, int(np.prod(self.grid)) * 8))
        for start in range(0, self.n_trials, step):
            with reading(self.path or self.name, "betas image", "a complete 4-D NIfTI image"):
                block = np.asarray(self.img.dataobj[..., start : start + step])
            vals = block[ijk[:, 0], ijk[:, 1], ijk[:, 2]].T
            n_sat += _count_saturated(vals)
            out[start : start + vals.shape[0]] = vals.astype(np.float32) * np.float32(scale)
        return out, n_sat

    def _read_hdf5(self, info: VoxelInfo, scale: float) -> tuple[np.ndarray, int]:
        """Gather the mask from (n, Z, Y, X) by z-slabs of the mask's bounding box: every
        chunk is read once whatever the chunking (NSD chunks per voxel), and no more than
        ``_SLAB_BYTES`` of raw data is held at a time."""
        import h5py

        col = np.full(info.shape, -1, np.int64)
        col[tuple(info.ijk.T)] = np.arange(info.n_voxels)
        colT = col.transpose(2, 1, 0)  # (Z, Y, X) as in the file
        inside = colT >= 0
        zs = np.flatnonzero(inside.any(axis=(1, 2)))
        ys = np.flatnonzero(inside.any(axis=(0, 2)))
        xs = np.flatnonzero(inside.any(axis=(0, 1)))
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        out = np.empty((self.n_trials, info.n_voxels), np.float32)
        n_sat = 0
        with h5py.File(self.path, "r") as f:
            ds = f[self.hdf5_key]
            plane = self.n_trials * (y1 - y0) * (x1 - x0) * ds.dtype.itemsize
            step = max(1, _SLAB_BYTES // max(1, plane))
            z = zs[0]
            while z <= zs[-1]:
                z1 = min(z + step, zs[-1] + 1)
                sub = colT[z:z1, y0:y1, x0:x1]
                sel = sub >= 0
                if sel.any():
                    block = ds[:, z:z1, y0:y1, x0:x1]
                    vals = block[:, sel]
                    del block
                    n_sat += _count_saturated(vals)
                    vals = vals.astype(np.float32)
                    vals *= np.float32(scale)
                    out[:, sub[sel]] = vals
                    del vals
                z = z1
        return out, n_sat


def _count_saturated(vals: np.ndarray) -> int:
    if vals.dtype != np.int16:
        return 0
    return int(np.count_nonzero((vals >= _INT16_MAX) | (vals <= -_INT16_MAX)))


class _Sink:
    """Where the output rows go: an in-memory array, or an .npy file written with plain
    file I/O (so the pages written never count in this process's resident memory)."""

    def __init__(self, shape: tuple[int, int], path: Path | None):
        self.shape = shape
        self.path = path
        if path is None:
            self.array = np.empty(shape, np.float32)
        else:
            mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
            self.offset = mm.offset
            del mm
            self.file = open(path, "r+b")  # noqa: SIM115 - closed in close()

    def write(self, start: int, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, np.float32)
        if self.path is None:
            self.array[start : start + len(block)] = block
        else:
            self.file.seek(self.offset + start * self.shape[1] * 4)
            self.file.write(block.tobytes())

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.path is None:
            return self.array[start:stop]
        self.file.flush()
        self.file.seek(self.offset + start * self.shape[1] * 4)
        raw = self.file.read((stop - start) * self.shape[1] * 4)
        return np.frombuffer(raw, np.float32).reshape(stop - start, self.shape[1])

    def close(self) -> None:
        if self.path is not None and not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


def _row_step(n_cols: int) -> int:
    return max(1, _ROW_BYTES // max(1, n_cols * 4))


def _prepare_trials(trials: Any, sources: list[_Source], subject: str) -> pd.DataFrame:
    if not isinstance(trials, pd.DataFrame):
        raise TypeError(f"'trials' must be a DataFrame, got {type(trials).__name__}.")
    n_total = sum(s.n_trials for s in sources)
    if "stimulus_id" not in trials.columns:
        raise ValueError(
            f"'trials' is missing the required column 'stimulus_id'; found "
            f"{list(trials.columns)}."
        )
    if len(trials) != n_total:
        per = [s.n_trials for s in sources]
        raise ValueError(
            f"'trials' has {len(trials)} rows but the betas hold {n_total} trials "
            f"({per} per file)."
        )
    t = trials.copy()
    file_index = np.repeat(np.arange(len(sources)), [s.n_trials for s in sources])
    if "session" not in t.columns:
        t["session"] = [f"{i + 1:02d}" for i in file_index]
    if "run" not in t.columns:
        t["run"] = "1"
    if "onset" not in t.columns:
        t["onset"] = np.nan
    if "split" not in t.columns:
        t["split"] = ""
    t["subject"] = subject
    t["_file"] = file_index
    t = _finish_table(t)
    if t.index.has_duplicates or t.index.equals(pd.RangeIndex(len(t))):
        t.index = pd.Index(
            [f"sub-{subject}_ses-{s}_trial-{k:05d}" for k, s in enumerate(t["session"])],
            name="trial_id", dtype=object,
        )
    return t


@fill_doc
@verbose
def load_betas(
    betas: Any,
    trials: pd.DataFrame,
    *,
    mask: Any = None,
    atlas: Any = None,
    atlas_labels: Mapping[int, str] | PathLike | None = None,
    rois: Sequence[str | int] | None = None,
    subject: str | None = None,
    zscore: str | None = "session",
    train_only_stats: bool = True,
    average_repetitions: bool = False,
    scale: float | str = "auto",
    saturation: str = "warn",
    bad_voxels: str = "drop",
    cache_dir: PathLike | None = None,
    hdf5_key: str = "betas",
    verbose: bool | str | int | None = None,
) -> TrialSet:
    """Precomputed single-trial betas -> TrialSet, streamed with bounded memory.

    Each file (one per session, as NSD ships them) is read once: HDF5 by slabs of the
    mask's bounding box (:data:`_SLAB_BYTES` at a time, whatever the chunking), NIfTI by
    blocks of volumes. Masked, scaled, checked and z-scored per session in memory (one
    session at a time), the rows go to the output. With ``cache_dir`` the output is a
    ``.npy`` file written with plain file I/O into a temporary name and renamed when
    complete (never half-written), then memory-mapped read-only; a second call with the
    same inputs reuses it. An NSD-scale subject (30,000 trials x 15,700 voxels) loads
    with a peak resident memory far below 2 GB (see ``benchmarks/fmri_memory.py``).

    Parameters
    ----------
    betas : path | image | list of those
        4-D NIfTI (x, y, z, trials) or NSD HDF5 (dataset ``hdf5_key``, shape
        ``(n_trials, Z, Y, X)``, i.e. the NIfTI axes reversed as MATLAB writes them),
        one per session.
    trials : DataFrame
        One row per trial, in file order then row order, with ``stimulus_id`` and
        optionally ``session`` (default: the file's 1-based index, ``"01"``...),
        ``split`` (``"test"`` trials are excluded from the z-score statistics),
        ``run``, ``onset``, ``repetition`` (default: the stimulus' occurrence count) and
        free columns. A stimulus in more than one split is refused before any read.
    mask, atlas, atlas_labels, rois
        As in :func:`resolve_mask`. HDF5 betas carry no affine: ``mask`` (a NIfTI on
        the betas' grid, e.g. NSD's ``nsdgeneral.nii.gz``) is then required.
    subject : str | None
        Subject label (default ``"01"``).
    zscore : {"session", None}
        Z-score each voxel within each session (:func:`zscore_sessions`).
    train_only_stats : bool
        Statistics from non-test trials only (default).
    average_repetitions : bool
        One row per stimulus, the mean of its (z-scored) trials; the table as
        :meth:`TrialSet.average_repetitions` makes it.
    scale : float | "auto"
        Multiplier applied to the stored values. ``"auto"``: ``1/300`` for int16 files
        (NSD's convention, percent signal change x 300), 1 otherwise.
    saturation : {"warn", "raise", "ignore"}
        What to do with int16 values at the type's limits (|v| >= 32767), which mean the
        writer clipped an overflowing beta.
    bad_voxels : {"drop", "raise"}
        Voxels with NaN/inf or constant values within a session.
    cache_dir : path | None
        Write the output as a memory-mapped ``.npy`` here (recommended for large sets);
        None keeps it in memory.
    hdf5_key : str
        Dataset name in HDF5 files.
    %(verbose)s

    Returns
    -------
    TrialSet
        float32 ``(n_trials or n_stimuli, n_voxels)``, memory-mapped when ``cache_dir``
        is given; ``trials`` gains a ``source_file`` column (the file each trial came
        from).
    """
    check_option("zscore", zscore, ("session", None))
    check_option("saturation", saturation, ("warn", "raise", "ignore"))
    check_option("bad_voxels", bad_voxels, ("drop", "raise"))
    items = list(betas) if isinstance(betas, list | tuple) else [betas]
    if not items:
        raise ValueError("'betas' must name at least one file.")
    sources = [_Source(item, i, hdf5_key) for i, item in enumerate(items)]
    grid = sources[0].grid
    for s in sources[1:]:
        if s.grid != grid:
            raise ValueError(
                f"All betas must share one grid: {sources[0].name} has {grid}, {s.name} has "
                f"{s.grid} (x, y, z)."
            )
        if s.affine is not None and sources[0].affine is not None and not np.allclose(
            s.affine, sources[0].affine, atol=1e-3
        ):
            raise ValueError(f"{s.name} has a different affine from {sources[0].name}.")
    if _is_masker(mask) and not hasattr(mask, "mask_img_"):
        if getattr(mask, "mask_img", None) is not None:
            mask.fit()
        elif sources[0].kind == "nifti":
            mask.fit(sources[0].img.slicer[..., 0])
    ref_affine = sources[0].affine
    if ref_affine is None:
        if mask is None or _is_masker(mask) and not hasattr(mask, "mask_img_"):
            raise ValueError(
                "'mask' is required for HDF5 betas (they carry no affine): pass the NIfTI "
                "mask on the betas' grid (e.g. NSD's roi/nsdgeneral.nii.gz)."
            )
        mask_img = mask.mask_img_ if _is_masker(mask) else mask
        _, ref_affine = _volume("mask", mask_img)
    resolved = resolve_mask(
        mask if not _is_masker(mask) else mask.mask_img_, None, atlas=atlas,
        atlas_labels=atlas_labels, rois=rois, ref_shape=grid, ref_affine=ref_affine,
    ) if mask is not None else _all_nonzero(sources[0], atlas, atlas_labels, rois)
    info = resolved.info
    sub = "01" if subject is None else str(subject)
    table = _prepare_trials(trials, sources, sub)
    check_no_leak(table)
    if scale == "auto":
        scales = [1.0 / NSD_SCALE if s.dtype == np.int16 else 1.0 for s in sources]
    else:
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise ValueError(f"'scale' must be 'auto' or a positive number, got {scale!r}.")
        scales = [float(scale)] * len(sources)
    n_total, n_vox = len(table), info.n_voxels

    key = None
    final = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = hash_jsonable(
            {
                "v": 1,
                "sources": [s.signature() for s in sources],
                "ijk": info.ijk.tolist() if n_vox < 1000 else _hash_array(info.ijk),
                "affine": info.affine.tolist(),
                "scales": scales,
                "zscore": zscore,
                "train_only": train_only_stats,
                "split": _hash_array(table["split"].to_numpy().astype(str)),
                "session": _hash_array(table["session"].to_numpy().astype(str)),
                "stim": _hash_array(table["stimulus_id"].to_numpy().astype(str)),
                "average": average_repetitions,
                "bad": bad_voxels,
            }
        )
        final = cache_dir / f"betas-{key}.npy"
        meta_path = cache_dir / f"betas-{key}.json"
        if final.is_file() and meta_path.is_file():
            meta = read_json(meta_path, "cached betas description")
            keep = np.zeros(n_vox, bool)
            keep[np.asarray(meta["kept_voxels"], np.int64)] = True
            logger.info("Reusing cached betas %s", final)
            return _finish_betas(read_npy(final, "cached betas", mmap=True), table, info,
                                 keep, sub, average_repetitions)

    with _output(final) as tmp_path:
        sink = _Sink((n_total, n_vox), tmp_path)
        try:
            bad = np.zeros(n_vox, bool)
            start = 0
            for s, sc in zip(sources, scales):
                block, n_sat = s.read(info, sc)
                if n_sat and saturation != "ignore":
                    msg = (
                        f"{n_sat} int16 value(s) of {s.name} sit at the type's limit "
                        f"(|v| >= {_INT16_MAX}): the writer clipped overflowing betas."
                    )
                    if saturation == "raise":
                        raise Int16OverflowError(msg + " Pass saturation='warn' to go on.")
                    logger.warning(msg)
                rows = table.iloc[start : start + s.n_trials]
                blk_bad = _nan_or_constant(block)  # betas may have any mean
                if blk_bad.any():
                    if bad_voxels == "raise":
                        raise ValueError(
                            f"{int(blk_bad.sum())} voxel(s) of {s.name} have NaN/inf or "
                            "constant values; pass bad_voxels='drop' to drop them."
                        )
                    block[:, blk_bad] = 0.0
                    bad |= blk_bad
                if zscore == "session":
                    ses = rows["session"].to_numpy()
                    spl = rows["split"].to_numpy()
                    for lab in pd.unique(ses):
                        r = ses == lab
                        where = f"{s.name} session {lab}"
                        if r.all():  # one session per file (NSD): in place, no copy
                            block = _zscore_block(block, spl, train_only_stats, where)
                        else:
                            block[r] = _zscore_block(block[r], spl[r], train_only_stats, where)
                    block[:, blk_bad] = 0.0
                sink.write(start, block)
                logger.info("Read %s: %d trials x %d voxels", s.name, s.n_trials, n_vox)
                start += s.n_trials
                del block
            if bad.all():
                raise ValueError("Every voxel of the mask has NaN or constant values.")
            keep = ~bad
            if bad.any():
                logger.warning(
                    "Dropped %d of %d voxels with NaN/inf or constant values.",
                    int(bad.sum()), n_vox,
                )
                sink = _compact(sink, keep, tmp_path)
            if average_repetitions:
                sink = _average(sink, table, tmp_path)
            sink.close()
        except BaseException:
            sink.close()
            raise
    if final is not None:
        write_json_atomic(meta_path, {"kept_voxels": np.flatnonzero(keep).tolist(),
                                      "shape": list(sink.shape)})
        data = np.load(final, mmap_mode="r")
    else:
        data = sink.array
    return _finish_betas(data, table, info, keep, sub, average_repetitions)


def _all_nonzero(source: _Source, atlas, atlas_labels, rois) -> _Mask:
    if source.kind != "nifti":
        raise ValueError("'mask' is required for HDF5 betas (they carry no affine).")
    return resolve_mask(None, source.img, atlas=atlas, atlas_labels=atlas_labels, rois=rois)


def _hash_array(a: np.ndarray) -> str:
    from .._utils import hash_bytes

    return hash_bytes(np.ascontiguousarray(a).astype(str).astype("U").tobytes())[:16]


class _output:
    """Context: a temporary path renamed onto ``final`` on success (None = in memory)."""

    def __init__(self, final: Path | None):
        self.final = final
        self._ctx = None

    def __enter__(self) -> Path | None:
        if self.final is None:
            return None
        self._ctx = atomic_path(self.final)
        return self._ctx.__enter__()

    def __exit__(self, *exc) -> bool:
        if self._ctx is None:
            return False
        return bool(self._ctx.__exit__(*exc))


def _compact(sink: _Sink, keep: np.ndarray, path: Path | None) -> _Sink:
    """Drop columns, streaming rows through a second file (or in memory)."""
    n, _ = sink.shape
    if path is None:
        out = _Sink((n, int(keep.sum())), None)
        out.array[:] = sink.array[:, keep]
        return out
    tmp2 = path.with_name(path.name + ".compact")
    out = _Sink((n, int(keep.sum())), tmp2)
    step = _row_step(sink.shape[1])
    for start in range(0, n, step):
        out.write(start, sink.read(start, min(n, start + step))[:, keep])
    sink.close()
    out.close()
    os.replace(tmp2, path)
    return _reopen(path, out.shape)


def _reopen(path: Path, shape: tuple[int, int]) -> _Sink:
    sink = _Sink.__new__(_Sink)
    sink.shape, sink.path = shape, path
    header = np.load(path, mmap_mode="r")
    sink.offset = header.offset
    del header
    sink.file = open(path, "r+b")  # noqa: SIM115
    return sink


def _average(sink: _Sink, table: pd.DataFrame, path: Path | None) -> _Sink:
    """Mean over each stimulus' trials, streamed (sums held in memory: n_stimuli rows)."""
    codes, uniques = pd.factorize(table["stimulus_id"].to_numpy(), sort=False)
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float32)
    sums = np.zeros((len(uniques), sink.shape[1]), np.float32)
    step = _row_step(sink.shape[1])
    for start in range(0, sink.shape[0], step):
        stop = min(sink.shape[0], start + step)
        c = codes[start:stop]
        order = np.argsort(c, kind="stable")
        uniq, first = np.unique(c[order], return_index=True)
        sums[uniq] += np.add.reduceat(sink.read(start, stop)[order], first, axis=0)
    sums /= counts[:, None]
    if path is None:
        out = _Sink(sums.shape, None)
        out.array = sums
        return out
    sink.close()
    tmp2 = path.with_name(path.name + ".avg")
    out = _Sink(sums.shape, tmp2)
    step = _row_step(sums.shape[1])
    for start in range(0, sums.shape[0], step):  # in blocks: no full-size bytes copy
        out.write(start, sums[start : start + step])
    out.close()
    os.replace(tmp2, path)
    return _reopen(path, sums.shape)


def _finish_betas(data, table: pd.DataFrame, info: VoxelInfo, keep: np.ndarray, sub: str,
                  average: bool) -> TrialSet:
    if not keep.all():
        info = _subset_info(info, keep)
    table = table.copy()
    table["source_file"] = table.pop("_file").astype(np.int64)
    if average:
        # the table exactly as TrialSet.average_repetitions builds it (on a 1-voxel proxy)
        proxy = TrialSet(np.zeros((len(table), 1), np.float32), table, "fmri", sub)
        table = proxy.average_repetitions().trials
    if data.shape[0] != len(table) or data.shape[1] != info.n_voxels:
        raise ValueError(
            f"Cached betas hold {data.shape} but {len(table)} rows x {info.n_voxels} voxels "
            "were expected; delete the cache file."
        )
    # finite by construction (bad voxels dropped): skip the full scan so a memmap stays
    # on disk
    return TrialSet(data, table, "fmri", sub, info, check_finite=False)
