"""The Natural Scenes Dataset (Allen et al. 2022) from its own directory layout.

Reads, relative to the NSD root (the folder holding ``nsddata/`` and
``nsddata_betas/``)::

    nsddata/ppdata/subjNN/<space>/roi/<roi>.nii.gz            (mask, e.g. nsdgeneral)
    nsddata_betas/ppdata/subjNN/<space>/<betas>/betas_sessionNN.hdf5
        dataset "betas", int16 = percent signal change x 300, shape (750, Z, Y, X)
    nsddata/experiments/nsd/nsd_expdesign.mat
        masterordering (1-based index into subjectim's columns, one per trial),
        subjectim (subjects x 10,000, 1-based nsdIds, the shared images first),
        sharedix (1-based nsdIds of the shared 1000)
    nsddata/experiments/nsd/nsd_stim_info_merged.csv    (nsdId 0-based, cocoId, ...)

Trial ``k`` (0-based over the subject's sessions, 750 per session) showed the image
``nsdId = subjectim[subject - 1, masterordering[k] - 1] - 1`` (0-based, the index into
``nsd_stimuli.hdf5['imgBrick']``). Images in ``sharedix`` form the test split (the
"shared 1000" every subject saw, as MindEye and Brain-Diffuser evaluate), all other
images the training split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import PathLike
from ..io.fmri import load_betas
from ..trialset import TrialSet

__all__ = ["load_nsd", "nsd_trials", "nsd_paths"]

TRIALS_PER_SESSION = 750


def _subject_number(subject: int | str) -> int:
    if isinstance(subject, int | np.integer) and not isinstance(subject, bool):
        n = int(subject)
    else:
        m = re.fullmatch(r"(?:subj|sub-)?0*(\d+)", str(subject))
        if m is None:
            raise ValueError(
                f"Invalid value for the 'subject' parameter: expected 1-8, 'subj01' or "
                f"'01', got {subject!r}."
            )
        n = int(m.group(1))
    if n < 1:
        raise ValueError(f"'subject' must be >= 1, got {subject!r}.")
    return n


def nsd_paths(root: PathLike, subject: int | str, *, space: str = "func1pt8mm",
              betas: str = "betas_fithrf_GLMdenoise_RR", roi: str = "nsdgeneral") -> dict:
    """The NSD files of one subject (existing ones only for the session list).

    Returns
    -------
    dict
        ``roi`` (Path), ``sessions`` (dict session number -> HDF5 Path), ``expdesign``,
        ``stim_info``.
    """
    root = Path(root)
    n = _subject_number(subject)
    subj = f"subj{n:02d}"
    roi_path = root / "nsddata" / "ppdata" / subj / space / "roi" / f"{roi}.nii.gz"
    betas_dir = root / "nsddata_betas" / "ppdata" / subj / space / betas
    sessions = {}
    if betas_dir.is_dir():
        for p in betas_dir.glob("betas_session*.hdf5"):
            m = re.fullmatch(r"betas_session(\d+)\.hdf5", p.name)
            if m:
                sessions[int(m.group(1))] = p
    exp = root / "nsddata" / "experiments" / "nsd"
    return {
        "roi": roi_path,
        "sessions": dict(sorted(sessions.items())),
        "betas_dir": betas_dir,
        "expdesign": exp / "nsd_expdesign.mat",
        "stim_info": exp / "nsd_stim_info_merged.csv",
    }


def _load_expdesign(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"NSD design file not found: {str(path)!r}.")
    try:
        from scipy.io import loadmat

        mat = loadmat(path)
        get = {k: np.asarray(mat[k]) for k in ("masterordering", "subjectim", "sharedix")
               if k in mat}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        import h5py

        with h5py.File(path, "r") as f:
            get = {k: np.asarray(f[k]).T for k in ("masterordering", "subjectim", "sharedix")
                   if k in f}
    missing = {"masterordering", "subjectim", "sharedix"} - set(get)
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks the variable(s) {sorted(missing)} of nsd_expdesign.mat."
        )
    return {
        "masterordering": get["masterordering"].astype(np.int64).ravel(),
        "subjectim": np.atleast_2d(get["subjectim"].astype(np.int64)),
        "sharedix": get["sharedix"].astype(np.int64).ravel(),
    }


def nsd_trials(
    root: PathLike, subject: int | str, sessions: dict[int, int], *,
    expdesign: PathLike | None = None, stim_info: PathLike | None = None,
) -> pd.DataFrame:
    """The trial table of the given sessions, from ``nsd_expdesign.mat``.

    Parameters
    ----------
    root : path
        NSD root.
    subject : int | str
    sessions : dict
        Session number (1-based) -> number of trials in that session's betas file.
        Trials are counted from the start of session 1 with 750 per session (NSD's
        design), or, for a smaller layout, with each session's own count when every
        earlier session is present.
    expdesign, stim_info : path | None
        Override the design files' locations.

    Returns
    -------
    DataFrame
        ``session, run, onset, stimulus_id, split, nsd_id, shared1000, trial_in_session``
        (+ ``coco_id`` when the stimulus table has it).
    """
    paths = nsd_paths(root, subject)
    n = _subject_number(subject)
    design = _load_expdesign(Path(expdesign) if expdesign else paths["expdesign"])
    order, subjectim, shared = design["masterordering"], design["subjectim"], design["sharedix"]
    if n > subjectim.shape[0]:
        raise ValueError(
            f"subject {n} is not in nsd_expdesign.mat (subjectim has {subjectim.shape[0]} rows)."
        )
    all_sessions = sorted(sessions)
    counts = [sessions[s] for s in all_sessions]
    uniform = all(c == TRIALS_PER_SESSION for c in counts)
    contiguous = all_sessions == list(range(1, len(all_sessions) + 1))
    if not uniform and not contiguous and len(set(counts)) != 1:
        raise ValueError(
            "Sessions with non-standard trial counts must start at session 1 and be "
            f"contiguous to place their trials in masterordering; got {sessions}."
        )
    per = counts[0] if (not uniform and not contiguous) else None
    rows: list[pd.DataFrame] = []
    offset_running = 0
    for ses, cnt in zip(all_sessions, counts):
        if uniform:
            start = (ses - 1) * TRIALS_PER_SESSION
        elif contiguous:
            start = offset_running
        else:
            start = (ses - 1) * per
        offset_running += cnt
        stop = start + cnt
        if stop > len(order):
            raise ValueError(
                f"Session {ses} needs trials {start}..{stop - 1} but masterordering has "
                f"{len(order)} entries."
            )
        idx = order[start:stop] - 1  # 0-based column of subjectim
        nsd1 = subjectim[n - 1, idx]  # 1-based nsdId
        rows.append(pd.DataFrame({
            "session": f"{ses:02d}",
            "run": "",  # the betas files are per session; runs are not told apart
            "trial_in_session": np.arange(cnt),
            "nsd_id": nsd1 - 1,
            "shared1000": np.isin(nsd1, shared),
            "subject_image": idx,
        }))
    table = pd.concat(rows, ignore_index=True)
    table["onset"] = np.nan
    table["split"] = np.where(table["shared1000"], "test", "train")
    info_path = Path(stim_info) if stim_info else paths["stim_info"]
    table["stimulus_id"] = [f"nsd{i:05d}" for i in table["nsd_id"]]
    if info_path.is_file():
        info = pd.read_csv(info_path)
        if "nsdId" not in info.columns:
            raise ValueError(f"{str(info_path)!r} has no 'nsdId' column.")
        info = info.set_index("nsdId")
        missing = sorted(set(table["nsd_id"]) - set(info.index))
        if missing:
            raise ValueError(
                f"{len(missing)} nsdId(s) of the design are not in {info_path.name}, e.g. "
                f"{missing[:5]}."
            )
        if "stimulus_id" in info.columns:
            table["stimulus_id"] = info.loc[table["nsd_id"], "stimulus_id"].astype(str).to_numpy()
        if "cocoId" in info.columns:
            table["coco_id"] = info.loc[table["nsd_id"], "cocoId"].to_numpy()
    else:
        logger.info("No %s: stimulus ids are 'nsd<nsdId>'.", info_path.name)
    return table


@fill_doc
@verbose
def load_nsd(
    root: PathLike,
    subject: int | str,
    *,
    sessions: Sequence[int] | None = None,
    roi: str = "nsdgeneral",
    average_repetitions: bool = False,
    zscore: str | None = "session",
    train_only_stats: bool = True,
    cache_dir: PathLike | None = None,
    space: str = "func1pt8mm",
    betas: str = "betas_fithrf_GLMdenoise_RR",
    saturation: str = "warn",
    verbose: bool | str | int | None = None,
) -> TrialSet:
    """One NSD subject's single-trial betas in an ROI, as a (memory-mapped) TrialSet.

    Parameters
    ----------
    root : path
        The NSD root (holding ``nsddata/`` and ``nsddata_betas/``); the simulator writes
        the same layout under ``<bids root>/derivatives/nsd``.
    subject : int | str
        1-8, ``"subj01"`` or ``"01"``.
    sessions : list of int | None
        1-based sessions (default: every ``betas_sessionNN.hdf5`` found).
    roi : str
        ROI file name in ``nsddata/ppdata/subjNN/<space>/roi/`` (voxels with value > 0;
        the values become ``VoxelInfo.roi``).
    average_repetitions : bool
        Average the (usually 3) repetitions of each image.
    zscore : {"session", None}
        Per-session z-scoring with statistics from training trials only (the shared
        1000 are excluded; MindEye2's preparation uses every trial of the session).
    train_only_stats : bool
    cache_dir : path | None
        Where the memory-mapped output goes (recommended: an NSD subject is ~1.9 GB).
    space, betas : str
        NSD's space folder and beta version.
    saturation : {"warn", "raise", "ignore"}
        int16 values at the type's limit.
    %(verbose)s

    Returns
    -------
    TrialSet
        Subject ``"subjNN"``; ``split`` is ``"test"`` for the shared-1000 images and
        ``"train"`` otherwise; extra columns ``nsd_id`` (0-based), ``shared1000``,
        ``trial_in_session`` (and ``coco_id`` when known).
    """
    n = _subject_number(subject)
    paths = nsd_paths(root, n, space=space, betas=betas, roi=roi)
    if not paths["roi"].is_file():
        raise FileNotFoundError(f"NSD ROI not found: {str(paths['roi'])!r}.")
    found = paths["sessions"]
    if not found:
        raise FileNotFoundError(
            f"No betas_sessionNN.hdf5 in {str(paths['betas_dir'])!r} for subj{n:02d}."
        )
    if sessions is None:
        chosen = list(found)
    else:
        chosen = [int(s) for s in sessions]
        missing = [s for s in chosen if s not in found]
        if missing:
            raise FileNotFoundError(
                f"Session(s) {missing} of subj{n:02d} not found; available: {list(found)}."
            )
    import h5py

    counts = {}
    for s in sorted(found):
        with h5py.File(found[s], "r") as f:
            if "betas" not in f:
                raise ValueError(f"{str(found[s])!r} has no 'betas' dataset (found {list(f)}).")
            counts[s] = int(f["betas"].shape[0])
    table = nsd_trials(root, n, counts)
    table = table[table["session"].isin([f"{s:02d}" for s in chosen])].reset_index(drop=True)
    logger.info("NSD subj%02d: %d sessions, %d trials, ROI %s", n, len(chosen), len(table), roi)
    import nibabel as nib

    roi_img = nib.load(paths["roi"])
    return load_betas(
        [found[s] for s in sorted(chosen)],
        table,
        mask=roi_img,
        atlas=roi_img,
        atlas_labels={1: roi} if roi == "nsdgeneral" else None,
        subject=f"subj{n:02d}",
        zscore=zscore,
        train_only_stats=train_only_stats,
        average_repetitions=average_repetitions,
        cache_dir=cache_dir,
        saturation=saturation,
    )
