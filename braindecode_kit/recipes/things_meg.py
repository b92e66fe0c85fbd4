"""THINGS-MEG (Hebart et al. 2023, OpenNeuro ds004212) from its own BIDS layout.

Reads, relative to the dataset root::

    sub-BIGMEG{n}/ses-NN/meg/sub-BIGMEG{n}_ses-NN_task-main_run-NN_meg.ds    (CTF 275)
    sub-BIGMEG{n}/ses-NN/meg/sub-BIGMEG{n}_ses-NN_task-main_run-NN_events.tsv
        onset (s), duration, trial_type (exp | test | catch), things_category_nr,
        value (THINGS image number), sample
    sub-BIGMEG{n}/ses-NN/meg/sub-BIGMEG{n}_ses-NN_task-main_run-NN_channels.tsv
        (optional; channels with status "bad" are marked bad)

Each participant saw 22,248 ``exp`` images once (the training split), 200 ``test``
images 12 times each (the test split) and 2,400 ``catch`` trials (dropped here). The
image number (``value``) is the stimulus id. The MEG has 272 channels at 1200 Hz; the
official pipeline drops ``MRO11-1609`` (271 left), which is the default here.

Recording files. The recipe looks for the ``_meg.ds`` the layout names and, failing
that, a ``_meg.fif`` at the same stem; it reads it with ``reader(path)`` (default
:func:`mne.io.read_raw`, which reads CTF ``.ds`` folders). The tests write a synthetic
replica of the layout with FIF files at the layout's ``_meg.fif`` paths (writing a real
CTF ``.ds`` is not possible with MNE), and also pass a ``reader`` for empty ``.ds``
folders.

Preprocessing defaults to :func:`~braindecode_kit.io.load_meg`'s (the MEG image paper's:
0.1-40 Hz, 120 Hz, -0.5..1.0 s, robust scaling on the training trials, clamp 20); the
dataset's official preprocessing is :data:`OFFICIAL_PREPROCESSING` (pass it as
``**OFFICIAL_PREPROCESSING``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import PathLike
from ..io.meg import load_meg
from ..trialset import TrialSet

__all__ = ["load_things_meg", "things_meg_runs", "things_meg_events",
           "OFFICIAL_PREPROCESSING", "DROPPED_CHANNELS"]

#: Channel the official pipeline drops (272 -> 271 MEG channels).
DROPPED_CHANNELS = ("MRO11-1609",)
#: The dataset's official preprocessing (0.1-40 Hz, -100..1300 ms, 200 Hz, baseline).
OFFICIAL_PREPROCESSING = {"l_freq": 0.1, "h_freq": 40.0, "tmin": -0.1, "tmax": 1.3,
                          "sfreq": 200.0, "baseline": (None, 0.0)}
TRIAL_TYPES = ("exp", "test", "catch")
_RUN = re.compile(r"^sub-(?P<sub>[^_]+)_ses-(?P<ses>[^_]+)_task-main_run-(?P<run>[^_]+)_"
                  r"events\.tsv$")


def _subject(subject: int | str) -> str:
    s = str(subject).removeprefix("sub-")
    if s.isdigit():
        s = f"BIGMEG{int(s)}"
    if not re.fullmatch(r"BIGMEG\d+", s):
        raise ValueError(f"Invalid value for the 'subject' parameter: expected 1-4, 'BIGMEG1' "
                         f"or 'sub-BIGMEG1', but got {subject!r} instead.")
    return s


def things_meg_runs(root: PathLike, subject: int | str, *,
                    sessions: Sequence[int] | None = None,
                    runs: Sequence[int] | None = None) -> pd.DataFrame:
    """The subject's runs: one row per ``*_events.tsv`` with ``session``, ``run``,
    ``events`` (path) and ``recording`` (the ``_meg.ds``, else ``_meg.fif``)."""
    root = Path(root)
    sub = _subject(subject)
    folder = root / f"sub-{sub}"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: expected the THINGS-MEG layout "
                                f"sub-{sub}/ses-NN/meg/ under {root}.")
    rows = []
    for ev in sorted(folder.glob("ses-*/meg/*_events.tsv")):
        m = _RUN.match(ev.name)
        if m is None:
            continue
        ses, run = int(m["ses"]), int(m["run"])
        if (sessions is not None and ses not in sessions) or (runs is not None and
                                                               run not in runs):
            continue
        stem = ev.name[: -len("_events.tsv")]
        rec = next((ev.with_name(f"{stem}_meg{ext}") for ext in (".ds", ".fif")
                    if ev.with_name(f"{stem}_meg{ext}").exists()), None)
        if rec is None:
            raise FileNotFoundError(f"No recording for {ev.name}: expected {stem}_meg.ds "
                                    f"(or {stem}_meg.fif) beside it.")
        rows.append({"session": f"{ses:02d}", "run": f"{run:02d}", "events": ev,
                     "recording": rec})
    if not rows:
        raise FileNotFoundError(f"No task-main runs of sub-{sub} under {folder} (sessions "
                                f"{sessions}, runs {runs}).")
    return pd.DataFrame(rows)


def things_meg_events(path: PathLike | pd.DataFrame) -> pd.DataFrame:
    """A THINGS-MEG ``events.tsv`` as trials: catch trials dropped, ``stimulus_id`` = the
    image number (``value``), ``split`` = ``test`` for ``test`` trials else ``train``."""
    ev = path.copy() if isinstance(path, pd.DataFrame) else pd.read_csv(path, sep="\t")
    need = ("onset", "trial_type", "value")
    missing = [c for c in need if c not in ev.columns]
    if missing:
        raise ValueError(f"{path}: a THINGS-MEG events table needs columns {list(need)}, but "
                         f"{missing} are missing; found {list(ev.columns)}.")
    bad = sorted(set(ev["trial_type"].astype(str)) - set(TRIAL_TYPES))
    if bad:
        raise ValueError(f"{path}: 'trial_type' must be one of {list(TRIAL_TYPES)}, found "
                         f"{bad[:5]}.")
    ev = ev[ev["trial_type"] != "catch"].copy()
    ev["stimulus_id"] = [str(int(v)) for v in ev["value"]]
    ev["split"] = np.where(ev["trial_type"] == "test", "test", "train")
    return ev.reset_index(drop=True)


@fill_doc
@verbose
def load_things_meg(
    root: PathLike,
    subject: int | str,
    *,
    sessions: Sequence[int] | None = None,
    runs: Sequence[int] | None = None,
    drop_channels: Sequence[str] = DROPPED_CHANNELS,
    reader: Callable | None = None,
    verbose: bool | str | int | None = None,
    **preprocessing: Any,
) -> TrialSet:
    """One THINGS-MEG participant's epochs (``exp`` = train, ``test`` = test).

    Parameters
    ----------
    root : path
        The dataset root (holding ``sub-BIGMEG{n}/``).
    subject : int | str
        1-4, ``"BIGMEG1"`` or ``"sub-BIGMEG1"``.
    sessions, runs : list of int | None
        1-based sessions and runs to read (default: all found).
    drop_channels : sequence of str
        Channels removed (the official ``MRO11-1609``).
    reader : callable | None
        ``reader(path) -> mne.io.Raw`` (default :func:`mne.io.read_raw`).
    %(verbose)s
    **preprocessing
        Passed to :func:`~braindecode_kit.io.load_meg` (``tmin``, ``tmax``, ``l_freq``,
        ``sfreq``, ``scaling``...; e.g. ``**OFFICIAL_PREPROCESSING``).

    Returns
    -------
    TrialSet
        ``modality="meg"``, subject ``"BIGMEG{n}"``, one row per ``exp``/``test`` trial
        (``session``, ``run``, ``stimulus_id`` = image number, ``things_category_nr`` and
        the other events columns kept).
    """
    import mne

    for key in ("events", "source", "subject", "drop_channels", "reader"):
        if key in preprocessing:
            raise TypeError(f"load_things_meg() sets {key!r} itself; got it in **preprocessing.")
    sub = _subject(subject)
    table = things_meg_runs(root, sub, sessions=sessions, runs=runs)
    raws, events = [], []
    read = reader or (lambda p: mne.io.read_raw(p, preload=False, verbose=False))
    for row in table.itertuples():
        raw = read(row.recording)
        ch = Path(str(row.events)[: -len("_events.tsv")] + "_channels.tsv")
        if ch.is_file():
            chans = pd.read_csv(ch, sep="\t")
            if "status" in chans.columns:
                bads = [n for n in chans.loc[chans["status"] == "bad", "name"]
                        if n in raw.ch_names]
                raw.info["bads"] = sorted(set(raw.info["bads"]) | set(bads))
        ev = things_meg_events(row.events).assign(session=row.session, run=row.run)
        raws.append(raw)
        events.append(ev)
    logger.info("THINGS-MEG sub-%s: %d runs, %d trials (catch dropped).", sub, len(raws),
                sum(len(e) for e in events))
    return load_meg(raws, events, subject=sub, drop_channels=tuple(drop_channels),
                    **preprocessing)
