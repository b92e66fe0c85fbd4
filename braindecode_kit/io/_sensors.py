"""What :func:`~braindecode_kit.io.load_meg` and :func:`~braindecode_kit.io.load_seeg`
share: resolving a source (path, ``mne.io.Raw``, BIDS path, list of runs) into runs with
their events, checking them, epoching with :class:`mne.Epochs`, scaling on training
trials and building the :class:`~braindecode_kit.trialset.TrialSet`.

Private to :mod:`braindecode_kit.io`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._logging import logger
from ..info import SensorInfo
from ..splits import SPLITS, check_no_leak
from ..trialset import TrialSet
from ._scaling import RobustChannelScaler, fit_scaler_on_train

EVENT_COLUMNS = ("onset", "stimulus_id")
_NULLS = {"", "n/a", "nan", "none", "NaN", "None"}


@dataclass
class Run:
    """One recording with its events (``onset`` in s from the recording's first sample)."""

    raw: Any  # mne.io.BaseRaw
    events: pd.DataFrame
    session: str
    run: str
    where: str


# --------------------------------------------------------------------------- events
def read_events_table(events: Any, where: str) -> pd.DataFrame:
    """A checked events table: ``onset`` (s), ``stimulus_id`` (str); rows without a
    stimulus id are dropped; optional ``duration``, ``trial_type``, ``split``,
    ``repetition`` (others are kept as extra columns)."""
    if isinstance(events, str | os.PathLike):
        path = Path(events)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: the events file {path} does not exist.")
        table = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",",
                            dtype={"stimulus_id": str, "trial_type": str, "split": str},
                            keep_default_na=False)
    elif isinstance(events, pd.DataFrame):
        table = events.copy()
    else:
        raise TypeError(
            f"{where}: 'events' must be a DataFrame or a path to a .tsv/.csv table, but got "
            f"{type(events).__name__}.")
    missing = [c for c in EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{where}: the events table needs columns {list(EVENT_COLUMNS)} (onset in s, "
            f"stimulus_id), but {missing} are missing; found {list(table.columns)}.")
    onset = pd.to_numeric(table["onset"].replace(list(_NULLS), np.nan), errors="coerce")
    if onset.isna().any() or not np.isfinite(onset.to_numpy(float)).all():
        bad = table.loc[onset.isna() | ~np.isfinite(onset.fillna(0).to_numpy(float)), "onset"]
        raise ValueError(
            f"{where}: 'onset' must be finite numbers of seconds, found {list(bad[:5])}.")
    table["onset"] = onset.astype(float)
    sid = table["stimulus_id"]
    keep = sid.notna() & ~sid.astype(str).str.strip().isin(_NULLS)
    if (~keep).any():
        logger.info("%s: %d event(s) without a stimulus_id are not trials.", where,
                    int((~keep).sum()))
    table = table.loc[keep].copy()
    table["stimulus_id"] = [_id_str(v) for v in table["stimulus_id"]]
    if "split" in table.columns:
        table["split"] = table["split"].fillna("").astype(str).replace({"n/a": ""})
        bad = sorted(set(table["split"]) - set(SPLITS))
        if bad:
            raise ValueError(f"{where}: 'split' must hold values in {list(SPLITS)}, found "
                             f"{bad[:5]}.")
    if "duration" in table.columns:
        table["duration"] = pd.to_numeric(table["duration"], errors="coerce").fillna(0.0)
    return table.reset_index(drop=True)


def _id_str(v: Any) -> str:
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def events_from_raw(raw, stim_channel: str | Sequence[str] | None,
                    event_id: Mapping[str, int] | None, where: str) -> pd.DataFrame:
    """Events from the stim channel, else from the annotations; refused when neither."""
    import mne

    stim_picks = mne.pick_types(raw.info, meg=False, stim=True)
    if stim_channel is not None or len(stim_picks):
        ev = mne.find_events(raw, stim_channel=stim_channel, shortest_event=1,
                             consecutive=False, verbose=False)
        if len(ev):
            names = {v: k for k, v in (event_id or {}).items()}
            if event_id is not None:
                ev = ev[np.isin(ev[:, 2], list(event_id.values()))]
            return pd.DataFrame({
                "onset": (ev[:, 0] - raw.first_samp) / raw.info["sfreq"],
                "duration": 0.0,
                "trial_type": [names.get(int(c), str(int(c))) for c in ev[:, 2]],
                "stimulus_id": [names.get(int(c), str(int(c))) for c in ev[:, 2]],
                "value": ev[:, 2].astype(int),
            })
    ann = raw.annotations
    keep = [i for i, d in enumerate(ann.description)
            if not d.upper().startswith(("BAD", "EDGE"))]
    if keep:
        # with an orig_time, onsets count from meas_date and the first sample is at
        # raw.first_time; without one, they count from the first sample
        onset = ann.onset[keep] - (raw.first_time if ann.orig_time is not None else 0.0)
        desc = [str(ann.description[i]) for i in keep]
        if event_id is not None:
            sel = [j for j, d in enumerate(desc) if d in event_id]
            onset, desc = onset[sel], [desc[j] for j in sel]
        return pd.DataFrame({"onset": onset, "duration": ann.duration[keep][:len(desc)],
                             "trial_type": desc, "stimulus_id": desc})
    types = raw.get_channel_types()
    counts = {t: types.count(t) for t in sorted(set(types))}
    raise ValueError(
        f"{where}: no events: expected a stim channel (type 'stim'), annotations or an "
        f"'events' table (onset, stimulus_id), but the recording has neither (channel types "
        f"{counts}, {len(raw.annotations)} annotations). Pass events=...")


# --------------------------------------------------------------------------- sources
def _read_raw(path: Path, where: str, reader: Callable | None):
    import mne

    if reader is not None:
        return reader(path)
    try:
        return mne.io.read_raw(path, preload=False, verbose=False)
    except Exception as err:  # noqa: BLE001 - the reader's own message is the useful part
        raise ValueError(f"{where}: MNE could not read {path}: {err}") from err


def _bids_events_path(path: Path) -> Path | None:
    name = path.name
    for stem_end in ("_meg", "_ieeg", "_eeg"):
        i = name.rfind(stem_end + ".")
        if i > 0:
            cand = path.with_name(name[:i] + "_events.tsv")
            return cand if cand.is_file() else None
    return None


def entities(path: Path) -> dict[str, str]:
    out = {}
    for part in path.name.split("_"):
        if "-" in part:
            k, v = part.split("-", 1)
            out[k] = v
    return out


def _read_bids(path: Path, where: str):
    import mne_bids

    bp = mne_bids.get_bids_path_from_fname(path, verbose=False)
    return mne_bids.read_raw_bids(bp, verbose=False)


def find_bids_runs(root: Path, subject: str, datatype: str, session: str | None = None,
                   task: str | None = None) -> list[Path]:
    """The recordings of one subject in a BIDS dataset (``datatype`` ``meg``/``ieeg``)."""
    import mne_bids

    sub = str(subject).removeprefix("sub-")
    exts = {"meg": [".fif", ".ds", ".con", ".sqd", ".pdf"],
            "ieeg": [".edf", ".bdf", ".vhdr", ".fif", ".set", ".nwb", ".lay"]}[datatype]
    paths = mne_bids.find_matching_paths(root, subjects=sub, sessions=session, tasks=task,
                                         datatypes=datatype, suffixes=datatype,
                                         extensions=exts, ignore_json=True)
    files = sorted({Path(p.fpath) for p in paths if Path(p.fpath).exists()})
    if not files:
        raise FileNotFoundError(
            f"No {datatype} recordings of subject {sub!r} under the BIDS root {root} "
            f"(looked for sub-{sub}/[ses-*/]{datatype}/*_{datatype}{{{','.join(exts)}}}).")
    return files


def resolve_runs(source: Any, events: Any, *, subject: str | None, datatype: str,
                 session: str | None, task: str | None, stim_channel, event_id,
                 reader: Callable | None = None) -> list[Run]:
    """Turn ``source`` (+ ``events``) into a list of runs."""
    import mne

    try:
        import mne_bids
        bids_types: tuple = (mne_bids.BIDSPath,)
    except ImportError:  # pragma: no cover
        bids_types = ()
    if isinstance(source, list | tuple):
        items = list(source)
    elif isinstance(source, str | os.PathLike) and Path(source).is_dir() and not str(
            source).endswith(".ds"):
        if subject is None:
            raise ValueError(
                f"'source' {source} is a folder (a BIDS root?): pass subject=... to load one "
                "subject's runs.")
        items = find_bids_runs(Path(source), subject, datatype, session, task)
    else:
        items = [source]
    if events is not None and not isinstance(events, list | tuple):
        events = [events]
    if events is not None and len(events) != len(items):
        raise ValueError(
            f"'events' must give one table per run: {len(items)} run(s) but {len(events)} "
            "events table(s).")
    runs = []
    for k, item in enumerate(items):
        where = f"run {k + 1} of {len(items)}"
        ents: dict[str, str] = {}
        ev_path = None
        if isinstance(item, mne.io.BaseRaw):
            raw = item
            where = f"{where} ({raw.filenames[0] if raw.filenames and raw.filenames[0] else 'Raw'})"
        elif bids_types and isinstance(item, bids_types):
            raw = mne_bids.read_raw_bids(item, verbose=False)
            ents = {"ses": item.session or "", "run": item.run or ""}
            ev_path = _bids_events_path(Path(item.fpath))
            where = f"{where} ({item.fpath})"
        elif isinstance(item, str | os.PathLike):
            path = Path(item)
            where = f"{where} ({path})"
            if not path.exists():
                raise FileNotFoundError(f"{where}: the recording does not exist.")
            ev_path = _bids_events_path(path)
            ents = entities(path)
            raw = _read_bids(path, where) if (ev_path is not None and reader is None and
                                              _looks_bids(path)) else _read_raw(path, where,
                                                                                reader)
        else:
            raise TypeError(
                f"'source' must be a path, an mne.io.Raw, a mne_bids.BIDSPath or a list of "
                f"them, but got {type(item).__name__}.")
        if events is not None and events[k] is not None:
            table = read_events_table(events[k], where)
        elif ev_path is not None:
            table = read_events_table(ev_path, where)
        else:
            table = read_events_table(events_from_raw(raw, stim_channel, event_id, where),
                                      where)
        if table.empty:
            raise ValueError(f"{where}: the events hold no trial (no row with a stimulus_id).")
        runs.append(Run(raw, table, ents.get("ses", ""), ents.get("run", str(k + 1)), where))
    return runs


def _looks_bids(path: Path) -> bool:
    return path.name.startswith("sub-") and any(p.startswith("sub-") for p in
                                                (q.name for q in path.parents))


# --------------------------------------------------------------------------- checks
def check_events_inside(raw, table: pd.DataFrame, tmin: float, tmax: float, where: str) -> None:
    """Refuse events (or their epoch windows) outside the recording."""
    dur = raw.n_times / raw.info["sfreq"]
    on = table["onset"].to_numpy(float)
    out = (on < 0) | (on > dur)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"{where}: {int(out.sum())} event(s) lie outside the recording (expected onsets "
            f"in [0, {dur:.3f}] s from its first sample), e.g. row {i} at {on[i]:.3f} s "
            f"(stimulus {table['stimulus_id'].iloc[i]!r}).")
    cut = (on + tmin < 0) | (on + tmax > dur - 1.0 / raw.info["sfreq"])
    if cut.any():
        i = int(np.flatnonzero(cut)[0])
        raise ValueError(
            f"{where}: the epoch window [{tmin}, {tmax}] s of {int(cut.sum())} event(s) runs "
            f"past the recording ([0, {dur:.3f}] s), e.g. row {i} at {on[i]:.3f} s; shorten "
            "tmin/tmax or drop those events.")


def check_finite_raw(raw, where: str) -> None:
    data = raw.get_data()
    ok = np.isfinite(data)
    if not ok.all():
        bad_ch = np.flatnonzero(~ok.all(axis=1))
        names = [raw.ch_names[i] for i in bad_ch[:5]]
        raise ValueError(
            f"{where}: expected finite samples, found {int((~ok).sum())} NaN or infinite "
            f"value(s) in {bad_ch.size} channel(s), e.g. {names}; mark them bad "
            "(raw.info['bads']) or repair the recording.")


def describe_types(info) -> dict[str, int]:
    types = info.get_channel_types()
    return {t: types.count(t) for t in sorted(set(types))}


# --------------------------------------------------------------------------- epoching
def epoch_runs(runs: list[Run], *, prepare: Callable, tmin: float, tmax: float,
               baseline, reject, flat, sfreq: float | None, l_freq, h_freq,
               bads: str, reject_by_annotation: bool = True):
    """Prepare each run (``prepare(raw, where) -> raw`` picks/re-references/features),
    band-pass, resample, epoch; return data ``(n, C, T)``, trials and the epochs' info."""
    import mne

    if bads not in ("drop", "interpolate", "keep"):
        raise ValueError(f"Invalid value for the 'bads' parameter. Allowed values are 'drop', "
                         f"'interpolate', 'keep', but got {bads!r} instead.")
    rates = {r.where: float(r.raw.info["sfreq"]) for r in runs}
    if sfreq is None and len(set(rates.values())) > 1:
        raise ValueError(
            "The runs have different sampling rates and sfreq=None keeps them: expected one "
            f"rate, found {rates}; pass sfreq=... to resample them all.")
    for r in runs:
        check_events_inside(r.raw, r.events, tmin, tmax, r.where)
    all_bads = sorted(set().union(*[set(r.raw.info["bads"]) for r in runs]))
    datas, tables, info = [], [], None
    names0 = None
    for r in runs:
        raw = prepare(r.raw, r.where)
        if bads == "drop":
            present = [b for b in all_bads if b in raw.ch_names]
            if present:
                raw.drop_channels(present)
        elif bads == "interpolate" and raw.info["bads"]:
            raw.interpolate_bads(reset_bads=True, verbose=False)
        if not raw.preload:
            raw.load_data(verbose=False)
        check_finite_raw(raw, r.where)
        if l_freq is not None or h_freq is not None:
            raw.filter(l_freq, h_freq, picks="all", verbose=False)
        if sfreq is not None and abs(raw.info["sfreq"] - sfreq) > 1e-6:
            raw.resample(sfreq, verbose=False)
        sf = raw.info["sfreq"]
        samples = raw.first_samp + np.round(r.events["onset"].to_numpy(float) * sf).astype(int)
        if np.unique(samples).size != samples.size:
            dup = pd.Series(samples).duplicated(keep=False).to_numpy()
            raise ValueError(
                f"{r.where}: {int(dup.sum())} events fall on the same sample as another at "
                f"{sf} Hz (onsets {r.events['onset'][dup].tolist()[:4]}); one trial per onset.")
        ev = np.column_stack([samples, np.zeros_like(samples), np.ones_like(samples)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "All epochs were dropped": reported below
            epochs = mne.Epochs(raw, ev, {"trial": 1}, tmin=tmin, tmax=tmax,
                                baseline=baseline, reject=reject, flat=flat, preload=True,
                                proj=False, picks="all",
                                reject_by_annotation=reject_by_annotation, verbose=False)
        n_drop = len(samples) - len(epochs)
        if n_drop:
            reasons = sorted({x for log in epochs.drop_log for x in log})
            logger.warning("%s: %d of %d epochs rejected (%s).", r.where, n_drop, len(samples),
                           ", ".join(reasons))
        sel = epochs.selection
        table = r.events.iloc[sel].copy()
        # labels from the recording's BIDS entities, unless the events carry their own
        if "session" not in table.columns or r.session:
            table["session"] = r.session
        if "run" not in table.columns:
            table["run"] = r.run
        table["sample"] = samples[sel]
        if names0 is None:
            names0, info = list(epochs.ch_names), epochs.info
        elif list(epochs.ch_names) != names0:
            raise ValueError(
                f"{r.where}: expected the channels of the first run ({len(names0)}), found "
                f"{len(epochs.ch_names)} (differing: "
                f"{sorted(set(names0) ^ set(epochs.ch_names))[:6]}).")
        if len(epochs):
            datas.append(epochs.get_data(copy=False))
            tables.append(table)
    if not tables:
        raise ValueError(f"Every epoch was rejected (expected at least one epoch within the "
                         f"reject={reject} / flat={flat} thresholds, found none).")
    data = np.concatenate(datas, axis=0)
    trials = pd.concat(tables, ignore_index=True)
    return data, trials, info, float(epochs.tmin)


def finish(data: np.ndarray, trials: pd.DataFrame, info, tmin: float, *, modality: str,
           subject: str, scaling: Any, clamp: float | None, positions_2d: np.ndarray | None
           ) -> TrialSet:
    """Trial table columns, train-only scaling, the SensorInfo and the TrialSet."""
    trials = trials.copy()
    if "split" not in trials.columns:
        trials["split"] = ""
    trials["split"] = trials["split"].astype(str)
    if "repetition" not in trials.columns:
        trials["repetition"] = trials.groupby("stimulus_id", sort=False).cumcount()
    trials["repetition"] = pd.to_numeric(trials["repetition"], errors="coerce").fillna(
        -1).astype(np.int64)
    trials["subject"] = subject
    trials["session"] = trials["session"].astype(str)
    trials["run"] = trials["run"].astype(str)
    lead = ["subject", "session", "run", "onset", "stimulus_id", "repetition", "split"]
    trials = trials[lead + [c for c in trials.columns if c not in lead]]
    check_no_leak(trials)
    where = f"subject {subject!r}"
    if scaling is None:
        out = data.astype(np.float32)
        if clamp is not None:
            np.clip(out, -clamp, clamp, out=out)
    elif isinstance(scaling, RobustChannelScaler):
        out = scaling.transform(data)
    elif scaling == "robust":
        out = fit_scaler_on_train(data, trials, clamp, where).transform(data)
    else:
        raise ValueError(f"Invalid value for the 'scaling' parameter. Allowed values are "
                         f"'robust', None, but got {scaling!r} instead.")
    sinfo = SensorInfo(info, tmin=tmin, positions_2d=positions_2d)
    return TrialSet(out, trials.reset_index(drop=True), modality, subject, sinfo)


def layout_positions(info) -> np.ndarray | None:
    """2-D sensor positions in [0, 1] (``mne.find_layout``, as brainmagick), or a
    projection of the 3-D positions when no layout matches; None without positions."""
    import mne

    try:
        lay = mne.find_layout(info)
        pos = {n: p[:2] for n, p in zip(lay.names, lay.pos, strict=True)}
        names = [n if n in pos else n.split("-")[0] for n in info["ch_names"]]
        if all(n in pos for n in names):
            xy = np.array([pos[n] for n in names], np.float64)
            span = np.where(np.ptp(xy, 0) > 0, np.ptp(xy, 0), 1.0)
            return (xy - xy.min(0)) / span
    except Exception:  # noqa: BLE001 - no layout for these sensors: project instead
        pass
    locs = np.array([ch["loc"][:3] for ch in info["chs"]], np.float64)
    if not np.isfinite(locs).all() or not (np.abs(locs).sum(1) > 0).all():
        return None
    c = locs - locs.mean(0)
    r = np.linalg.norm(c, axis=1) + 1e-12
    theta = np.arccos(np.clip(c[:, 2] / r, -1, 1))
    phi = np.arctan2(c[:, 1], c[:, 0])
    xy = np.column_stack([theta * np.cos(phi), theta * np.sin(phi)])
    span = np.where(np.ptp(xy, 0) > 0, np.ptp(xy, 0), 1.0)
    return (xy - xy.min(0)) / span
