"""The data model: one subject, one modality, many trials (:class:`TrialSet`).

A :class:`TrialSet` holds

* ``data``: a float32 (or float16) array, ``(n_trials, n_voxels)`` for fMRI or
  ``(n_trials, n_channels, n_times)`` for MEG/sEEG, possibly an ``np.memmap``;
* ``trials``: a DataFrame with one row per trial, indexed by a unique trial id, with the
  columns ``subject, session, run, onset, stimulus_id, repetition, split`` (+ free ones);
* ``modality`` (``"fmri"``, ``"meg"`` or ``"seeg"``), ``subject`` and ``info``: what
  the features are, a :class:`~braindecode_kit.info.VoxelInfo` for fMRI or a
  :class:`~braindecode_kit.info.SensorInfo` (an :class:`mne.Info` plus ``tmin`` and
  positions) for MEG/sEEG.

The TrialSet itself knows nothing of modalities: the info class of each modality
(:data:`braindecode_kit.info.INFO_CLASSES`) says the data's axes and checks, describes,
saves and loads the info (the info protocol, :class:`~braindecode_kit.info.FeatureInfo`).

Nothing mutates in place: selecting, averaging and concatenating return new TrialSets.
Splits are by stimulus, never by trial (:mod:`braindecode_kit.splits`);
:func:`~braindecode_kit.splits.check_no_leak` refuses a table in which a stimulus appears
both in train and in val/test.
"""

from __future__ import annotations

import html
import inspect
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._checks import check_option
from ._readers import (
    CorruptFileError,
    array_checksums,
    check_keys,
    read_json,
    read_npy,
    reading,
    verify_checksum,
)
from ._utils import PathLike, atomic_dir, write_json_atomic
from .info import INFO_CLASSES, INFO_KINDS
from .info import VoxelInfo as VoxelInfo  # noqa: F401  (its old home; import from .info)
from .splits import SPLITS, check_no_leak, check_stimulus_ids
from .splits import SplitLeakError as SplitLeakError  # noqa: F401  (old home; use .splits)
from .splits import assign_splits as assign_splits  # noqa: F401  (old home; use .splits)

if TYPE_CHECKING:  # pragma: no cover
    import mne
    import nibabel as nib

    from .info import FeatureInfo

__all__ = [
    "MODALITIES",
    "REQUIRED_COLUMNS",
    "TrialSet",
]

MODALITIES = tuple(INFO_CLASSES)  # ("fmri", "meg", "seeg")
REQUIRED_COLUMNS = ("subject", "session", "run", "onset", "stimulus_id", "repetition", "split")
ALLOWED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
FORMAT_NAME = "braindecode_kit.TrialSet"
FORMAT_VERSION = 1
_NA = "n/a"  # how missing values are written in trials.tsv (BIDS convention)
_CHUNK_BYTES = 64 << 20  # finite checks and averaging read at most this much at once
# what a TrialSet folder may hold (so one written before folder markers can be replaced)
_PRODUCES = ("data.npy", "trials.tsv", "trialset.json", "mask.nii.gz", "roi.nii.gz",
             "ijk.npy", "info.fif")


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
    info : VoxelInfo | SensorInfo | mne.Info | None
        What the features are (the modality's class in
        :data:`~braindecode_kit.info.INFO_CLASSES`), checked against ``data``'s
        :attr:`feature_shape`. fMRI: a :class:`~braindecode_kit.info.VoxelInfo` with
        ``n_voxels`` voxels. MEG/sEEG: a :class:`~braindecode_kit.info.SensorInfo` with
        ``n_channels`` channels, or an :class:`mne.Info` (wrapped, with ``tmin``, into
        one). ``None``: unknown.
    tmin : float | None
        MEG/sEEG: time of the first sample relative to stimulus onset, in seconds.
        Needed with an :class:`mne.Info`; with a SensorInfo, None or ``info.tmin``.
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
        info: FeatureInfo | mne.Info | None = None,
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
        info_cls = INFO_CLASSES[modality]
        axes = info_cls.feature_axes
        if data.ndim != 1 + len(axes):
            layout = "(" + ", ".join(["n_trials"] + [f"n_{a}" for a in axes]) + ")"
            raise ValueError(
                f"'data' for modality {modality!r} must be {1 + len(axes)}-D {layout}, got "
                f"shape {data.shape}."
            )
        if min(data.shape[1:]) < 1:
            raise ValueError(f"'data' must have at least one feature, got shape {data.shape}.")
        trials = _validate_trials(trials, subject, data.shape[0])
        if check_finite:
            _check_finite_chunked(data)
        info, tmin = info_cls.coerce(info, tmin, modality)
        if info is not None:
            info.validate(data.shape[1:])
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
    def info(self) -> FeatureInfo | None:
        """What the features are: a :class:`~braindecode_kit.info.VoxelInfo` (fMRI) or a
        :class:`~braindecode_kit.info.SensorInfo` (MEG/sEEG; its ``.info`` is the
        :class:`mne.Info`), or None."""
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
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one trial: ``(n_voxels,)`` for fMRI, ``(n_channels, n_times)`` for
        MEG/sEEG (the axes are ``feature_axes``)."""
        return tuple(int(s) for s in self._data.shape[1:])

    @property
    def feature_axes(self) -> tuple[str, ...]:
        """Names of the axes of :attr:`feature_shape` (``("voxels",)`` or
        ``("channels", "times")``), from the modality's info class."""
        return INFO_CLASSES[self._modality].feature_axes

    @property
    def n_features(self) -> int:
        """Features per trial: the product of :attr:`feature_shape` (n_voxels, or
        n_channels * n_times for MEG/sEEG)."""
        return int(np.prod(self._data.shape[1:]))

    @property
    def n_channels(self) -> int:
        """MEG/sEEG channels."""
        return self._axis_size("channels")

    @property
    def n_times(self) -> int:
        """MEG/sEEG samples per trial."""
        return self._axis_size("times")

    @property
    def n_voxels(self) -> int:
        """fMRI voxels."""
        return self._axis_size("voxels")

    @property
    def stimulus_ids(self) -> list[str]:
        """The stimulus id of each trial (length n_trials, aligned with ``data`` rows), so
        ``targets.loc(ts.stimulus_ids)`` lines targets up with trials. Distinct ids:
        ``list(dict.fromkeys(ts.stimulus_ids))``."""
        return [str(s) for s in self._trials["stimulus_id"]]

    def _axis_size(self, axis: str) -> int:
        axes = self.feature_axes
        if axis not in axes:
            owners = dict.fromkeys(c.data_kind for c in INFO_CLASSES.values()
                                   if axis in c.feature_axes)
            raise AttributeError(
                f"n_{axis} is defined for {' and '.join(owners)} only, not {self._modality} "
                f"(whose trials are {' x '.join(axes)})."
            )
        return int(self._data.shape[1 + axes.index(axis)])

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
        """fMRI: per-voxel values as a NIfTI image (see
        :meth:`~braindecode_kit.info.VoxelInfo.to_nifti`)."""
        info_cls = INFO_CLASSES[self._modality]
        if not hasattr(info_cls, "to_nifti"):
            raise ValueError(
                f"to_nifti is for fMRI TrialSets (voxel data), this one is {self._modality} "
                f"({info_cls.data_kind}, {' x '.join(info_cls.feature_axes)})."
            )
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
            # verified on load: a data.npy altered in place is refused
            "data_checksum": array_checksums(self._data),
        }
        with atomic_dir(path, kind=FORMAT_NAME, produces=_PRODUCES) as tmp:
            _save_npy_chunked(tmp / "data.npy", self._data)
            table = trials.reset_index(names=index_name)
            table.to_csv(tmp / "trials.tsv", sep="\t", index=False, na_rep=_NA)
            if self._info is not None:
                meta["info"] = self._info.save(tmp)
            write_json_atomic(tmp / "trialset.json", meta)
        return path

    @classmethod
    def load(cls, path: PathLike, mmap: bool = True, *, check_finite: bool = True,
             verify: str | bool = "fast") -> TrialSet:
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
        verify : {"fast", "full", False}
            Check ``data.npy`` and the voxel indices against the checksums recorded at
            save: ``"fast"`` hashes a strided sample of the bytes (every byte of arrays
            under 4 MiB), ``"full"`` every byte; False skips it. Folders written before
            checksums were recorded are not checked.

        Returns
        -------
        TrialSet

        Raises
        ------
        FileNotFoundError
            If ``path`` is not a folder.
        ValueError
            If a file of the folder is missing, truncated, invalid, incomplete or was
            changed after it was saved (the message names the file).
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
        meta = read_json(meta_file, "TrialSet description")
        if meta.get("format") != FORMAT_NAME:
            raise CorruptFileError(
                f"{str(meta_file)!r} does not describe a TrialSet (format "
                f"{meta.get('format')!r}, expected {FORMAT_NAME!r})."
            )
        if not isinstance(meta.get("format_version", 0), int) or meta.get(
                "format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} was written by a newer format version "
                f"{meta['format_version']!r} (this code reads <= {FORMAT_VERSION})."
            )
        check_keys(meta, ("modality", "subject", "dtype", "shape", "index", "columns"),
                   meta_file, "TrialSet description")
        if not (isinstance(meta["shape"], list) and all(
                isinstance(n, int) and not isinstance(n, bool) for n in meta["shape"])):
            raise CorruptFileError(
                f"The field 'shape' of the TrialSet description {str(meta_file)!r} must be a "
                f"list of integers, but is {meta['shape']!r}.")
        for name in ("data.npy", "trials.tsv"):
            if not (path / name).is_file():
                raise ValueError(f"{str(path)!r} is not a complete TrialSet: {name} is missing.")
        data = read_npy(path / "data.npy", "TrialSet data file", mmap=mmap)
        if list(data.shape) != list(meta["shape"]) or str(data.dtype) != meta["dtype"]:
            raise CorruptFileError(
                f"{str(path / 'data.npy')!r} holds {data.dtype} {data.shape}, but "
                f"trialset.json says {meta['dtype']} {tuple(meta['shape'])}."
            )
        verify_checksum(data, meta.get("data_checksum"), path / "data.npy",
                        "TrialSet data file", verify)
        trials = _read_trials(path / "trials.tsv", meta)
        info: Any = None
        if meta.get("info"):
            info_meta = meta["info"]
            kind = info_meta.get("kind", "VoxelInfo") if isinstance(info_meta, dict) else None
            check_option("info kind (in trialset.json)", kind, tuple(INFO_KINDS))
            if kind == "mne.Info":  # the first MEG/sEEG layout kept tmin beside the info
                info_meta = {**info_meta, "tmin": meta.get("tmin")}
            loader = INFO_KINDS[kind].load
            extra = ({"verify": verify} if "verify" in inspect.signature(loader).parameters
                     else {})
            try:
                info = loader(path, info_meta, **extra)
            except KeyError as err:
                raise CorruptFileError(
                    f"The info of {str(meta_file)!r} lacks the field {err.args[0]!r}; the "
                    "TrialSet description is incomplete.") from None
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
             + f" (trials x {' x '.join(self.feature_axes)})"),
            ("dtype", str(self._data.dtype) + (" (memory-mapped)" if isinstance(
                self._data, np.memmap) else "")),
            ("sessions", ", ".join(str(s) for s in pd.unique(t["session"])[:20])
             + (" ..." if t["session"].nunique() > 20 else "")),
            ("splits (trials / stimuli)",
             ", ".join(f"{k}: {v} / {n_stim[k]}" for k, v in splits.items())),
            ("stimuli", str(t["stimulus_id"].nunique())),
        ]
        if self._info is not None:
            rows += self._info.describe(self.feature_shape)
        elif self._tmin is not None:
            rows.append(("tmin", f"{self._tmin:g} s"))
        return rows

    def __repr__(self) -> str:
        splits = self._trials["split"].value_counts()
        sp = " ".join(f"{k or 'unassigned'}={v}" for k, v in splits.items())
        feat = " x ".join(self.feature_axes)
        shape = " x ".join(str(s) for s in self._data.shape[1:])
        brief = self._info.brief() if self._info is not None else ""
        return (
            f"<TrialSet | {self._modality}, subject {self._subject!r}, {self.n_trials} trials x "
            f"{shape} {feat}{f' ({brief})' if brief else ''}, {self._data.dtype}, "
            f"{self._trials['stimulus_id'].nunique()} stimuli, {sp}>"
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
    check_stimulus_ids(trials["stimulus_id"], "'trials' column 'stimulus_id'")
    rep = trials["repetition"]
    if not pd.api.types.is_integer_dtype(rep) or pd.api.types.is_bool_dtype(rep):
        raise TypeError(f"'trials' column 'repetition' must be integer, got dtype {rep.dtype}.")
    onset = trials["onset"]
    if not pd.api.types.is_numeric_dtype(onset) or pd.api.types.is_bool_dtype(onset):
        raise TypeError(f"'trials' column 'onset' must be numeric (s), got dtype {onset.dtype}.")
    for col in ("session", "run"):
        if trials[col].isna().any():
            raise ValueError(f"'trials' column {col!r} has missing values.")
    check_no_leak(trials)  # a stimulus in train and in test is refused, naming it
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
    return bool(a.same_as(b))


def _read_trials(file: Path, meta: dict[str, Any]) -> pd.DataFrame:
    with reading(file, "TrialSet trial table", "a tab-separated table with a header row"):
        raw = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    index = meta["index"]
    columns = meta["columns"]
    if not (isinstance(index, dict) and {"name", "dtype"} <= set(index)
            and isinstance(columns, dict)):
        raise CorruptFileError(
            f"The fields 'index' and 'columns' of {str(file.parent / 'trialset.json')!r} "
            "must describe the trial table (index name and dtype, column dtypes).")
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
