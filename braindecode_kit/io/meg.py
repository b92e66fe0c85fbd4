"""MEG recordings into :class:`~braindecode_kit.trialset.TrialSet` objects ``(n, C, T)``.

:func:`load_meg` reads anything MNE reads (FIF, CTF ``.ds``, KIT, BTi, ...), an
:class:`mne.io.Raw`, a BIDS recording (through mne-bids: ``channels.tsv`` bad channels and
the sibling ``events.tsv``) or a BIDS root with ``subject=``; it epochs with
:class:`mne.Epochs` and keeps the sensors (names, types, 3-D positions, a 2-D layout) in a
:class:`~braindecode_kit.info.SensorInfo`.

The default preprocessing is the MEG image paper's (Benchetrit, Banville & King 2023,
brainmagick's recipe): band-pass 0.1-40 Hz, resample to 120 Hz, epochs -0.5..1.0 s,
baseline on the pre-stimulus part, per-channel robust scaling (median / IQR) and a clamp
at +-20. Every step is a parameter; the scaler's statistics come from the training
trials only (``split == "train"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._checks import check_float
from .._docs import fill_doc
from .._logging import verbose
from ..trialset import TrialSet
from . import _sensors as S

__all__ = ["load_meg", "MEG_CHANNEL_TYPES"]

MEG_CHANNEL_TYPES = ("mag", "grad")


def _check_window(tmin: float, tmax: float) -> tuple[float, float]:
    tmin = check_float("tmin", tmin, -60.0, 60.0)
    tmax = check_float("tmax", tmax, -60.0, 60.0)
    if tmax <= tmin:
        raise ValueError(f"'tmax' ({tmax}) must be after 'tmin' ({tmin}).")
    return tmin, tmax


@fill_doc
@verbose
def load_meg(
    source: Any,
    events: Any = None,
    *,
    subject: str | None = None,
    session: str | None = None,
    task: str | None = None,
    tmin: float = -0.5,
    tmax: float = 1.0,
    l_freq: float | None = 0.1,
    h_freq: float | None = 40.0,
    sfreq: float | None = 120.0,
    baseline: tuple[float | None, float | None] | None = (None, 0.0),
    scaling: Any = "robust",
    clamp: float | None = 20.0,
    picks: str | Sequence[str] = "meg",
    drop_channels: Sequence[str] = (),
    bads: str = "drop",
    reject: Mapping[str, float] | None = None,
    flat: Mapping[str, float] | None = None,
    stim_channel: str | Sequence[str] | None = None,
    event_id: Mapping[str, int] | None = None,
    reader: Callable | None = None,
    verbose: bool | str | int | None = None,
) -> TrialSet:
    """Epoch MEG run(s) into a TrialSet.

    Parameters
    ----------
    source : path | mne.io.Raw | mne_bids.BIDSPath | list of those | BIDS root
        The recording(s): any file :func:`mne.io.read_raw` reads; a file inside a BIDS
        dataset is read with :func:`mne_bids.read_raw_bids` (bad channels from
        ``channels.tsv``) and its ``events.tsv`` is used; a BIDS root folder loads every
        ``meg`` run of ``subject`` (filtered by ``session``/``task``).
    events : DataFrame | path | list of those | None
        One events table per run: ``onset`` (s from the recording's first sample),
        ``stimulus_id``, optional ``duration``, ``trial_type``, ``split`` and
        ``repetition`` (other columns are kept). Rows without a stimulus id are not
        trials. ``None``: the BIDS ``events.tsv``, else the stim channel (the trigger
        code, or its ``event_id`` name, becomes the stimulus id), else the annotations.
    subject : str | None
        Subject label (required with a BIDS root; default: the BIDS ``sub-`` entity or
        ``"01"``).
    session, task : str | None
        BIDS filters when ``source`` is a root.
    %(tmin)s
    %(tmax)s
    %(l_freq)s
    %(h_freq)s
    sfreq : float | None
        Resample to this rate (Hz) after filtering (``None``: keep; then every run must
        have the same rate).
    baseline : tuple | None
        Baseline window of :class:`mne.Epochs` (``None``: no baseline correction).
    scaling : "robust" | None | RobustChannelScaler
        ``"robust"``: per-channel median / IQR from the training trials; a fitted
        scaler applies its statistics; ``None`` leaves the data in T (T/m).
    clamp : float | None
        Clamp the scaled data at +-clamp (``None``: no clamp).
    picks : "meg" | "mag" | "grad" | list of str
        Channels to keep: all MEG sensors (reference channels excluded), one type, or
        names.
    drop_channels : sequence of str
        Channels removed first (THINGS-MEG drops ``MRO11-1609``); unknown names are refused.
    bads : "drop" | "interpolate" | "keep"
        What to do with channels marked bad in any run.
    reject, flat : dict | None
        Peak-to-peak rejection thresholds of :class:`mne.Epochs` (e.g.
        ``{"mag": 4e-12}``).
    stim_channel : str | list of str | None
        Trigger channel(s) for events (``None``: MNE's default).
    event_id : dict | None
        Trigger codes (or annotation names) that are trials, and their names.
    reader : callable | None
        ``reader(path) -> mne.io.Raw`` used instead of :func:`mne.io.read_raw`.
    %(verbose)s

    Returns
    -------
    TrialSet
        ``modality="meg"``, data ``(n_trials, n_channels, n_times)`` float32, the trial
        table (``subject, session, run, onset, stimulus_id, repetition, split`` + the
        events' other columns + ``sample``) and a SensorInfo.

    Raises
    ------
    ValueError
        No events; events outside the recording; no MEG channels; unknown channel names;
        different sampling rates with ``sfreq=None``; non-finite samples; every epoch
        rejected.
    """
    import mne

    tmin, tmax = _check_window(tmin, tmax)
    if sfreq is not None:
        sfreq = check_float("sfreq", sfreq, 1.0, 100_000.0)
    runs = S.resolve_runs(source, events, subject=subject, datatype="meg", session=session,
                          task=task, stim_channel=stim_channel, event_id=event_id,
                          reader=reader)
    subject = _subject(subject, runs)

    def prepare(raw, where):
        missing = [c for c in drop_channels if c not in raw.ch_names]
        if missing:
            raise ValueError(f"{where}: 'drop_channels' names {missing}, which the recording "
                             f"does not have ({len(raw.ch_names)} channels).")
        if isinstance(picks, str):
            if picks not in ("meg", "mag", "grad"):
                raise ValueError(f"Invalid value for the 'picks' parameter. Allowed values "
                                 f"are 'meg', 'mag', 'grad' or a list of names, but got "
                                 f"{picks!r} instead.")
            idx = mne.pick_types(raw.info, meg=True if picks == "meg" else picks,
                                 ref_meg=False, exclude=[])
            if not len(idx):
                raise ValueError(
                    f"{where}: expected MEG channels (types {list(MEG_CHANNEL_TYPES)}), found "
                    f"channel types {S.describe_types(raw.info)}; is this a MEG recording? "
                    "(sEEG/EEG: use load_seeg)")
            names = [raw.ch_names[i] for i in idx if raw.ch_names[i] not in drop_channels]
        else:
            names = [str(n) for n in picks]
            unknown = [n for n in names if n not in raw.ch_names]
            if unknown:
                raise ValueError(f"{where}: 'picks' names {unknown[:5]}, which the recording "
                                 f"does not have.")
            types = set(raw.get_channel_types(picks=names))
            if not types <= set(MEG_CHANNEL_TYPES):
                raise ValueError(f"{where}: 'picks' must be MEG channels "
                                 f"{list(MEG_CHANNEL_TYPES)}, found types {sorted(types)}.")
        return raw.copy().pick(names)

    data, trials, info, t0 = S.epoch_runs(
        runs, prepare=prepare, tmin=tmin, tmax=tmax, baseline=baseline, reject=reject,
        flat=flat, sfreq=sfreq, l_freq=l_freq, h_freq=h_freq, bads=bads)
    return S.finish(data, trials, info, t0, modality="meg", subject=subject, scaling=scaling,
                    clamp=clamp, positions_2d=S.layout_positions(info))


def _subject(subject: str | None, runs: list) -> str:
    if subject is not None:
        return str(subject).removeprefix("sub-")
    for r in runs:
        names = getattr(r.raw, "filenames", None) or []
        for f in names:
            if f is not None:
                ents = S.entities(Path(f))
                if "sub" in ents:
                    return ents["sub"]
    return "01"

