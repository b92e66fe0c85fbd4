"""sEEG / ECoG recordings into :class:`~braindecode_kit.trialset.TrialSet` objects ``(n, C, T)``.

:func:`load_seeg` reads EDF/BDF, BrainVision, FIF, Persyst and anything else
:func:`mne.io.read_raw` reads, an :class:`mne.io.Raw`, a BIDS iEEG recording (mne-bids:
``channels.tsv`` types and bad channels, ``electrodes.tsv`` positions, ``events.tsv``) or
a BIDS root with ``subject=``. Clinical exports type every contact as EEG: ``ch_types=``
relabels them (one type for all, or a mapping).

Re-referencing: ``"bipolar"`` (each contact minus the next one on its shaft, names such
as ``LA1, LA2, ...``; :func:`mne.set_bipolar_reference`, the pair at the midpoint),
``"laplacian"`` (each contact minus the mean of its shaft neighbours), ``"average"``
(common average, :meth:`mne.io.Raw.set_eeg_reference`) or ``None``. Features: the
broadband signal, the high-gamma (70-150 Hz) envelope (band-pass + Hilbert,
:meth:`mne.io.Raw.apply_hilbert`), or both. Region labels come from ``electrodes.tsv``
(a ``region`` column, or ``electrodes=``) and select contacts (``regions=``); they are
kept in the SensorInfo (:func:`channel_regions`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_float
from .._docs import fill_doc
from .._logging import logger, verbose
from ..trialset import TrialSet
from . import _sensors as S

__all__ = ["load_seeg", "read_electrodes", "channel_regions", "SEEG_CHANNEL_TYPES",
           "EDFClippingError"]

SEEG_CHANNEL_TYPES = ("seeg", "ecog", "dbs")
_KNOWN_TYPES = ("seeg", "ecog", "dbs", "eeg", "ecg", "eog", "emg", "misc", "stim", "resp",
                "bio", "temperature", "gsr", "syst")
_NAME = re.compile(r"^(?P<shaft>.*?[A-Za-z'_ ])(?P<num>\d+)$")
_EDF_UNITS = {"uv": 1e-6, "µv": 1e-6, "mv": 1e-3, "v": 1.0, "nv": 1e-9}
_REGIONS_KEY = "braindecode_kit.regions"


class EDFClippingError(ValueError):
    """An EDF/BDF channel's samples sit at its header's physical range: it clipped."""


# --------------------------------------------------------------------------- electrodes
def read_electrodes(path: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A BIDS ``electrodes.tsv`` (``name, x, y, z``, optional ``size, group, region``).

    Coordinates are returned in metres (``x_m, y_m, z_m``): the units of the sibling
    ``*_coordsystem.json`` (``iEEGCoordinateUnits``) when there is one, else metres if
    every coordinate is within +-1 and millimetres otherwise.
    """
    if isinstance(path, pd.DataFrame):
        tab, units = path.copy(), None
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"The electrodes file {path} does not exist.")
        tab = pd.read_csv(path, sep="\t", na_values=["n/a"])
        units = None
        cs = path.with_name(path.name.replace("_electrodes.tsv", "_coordsystem.json"))
        if cs.is_file():
            units = json.loads(cs.read_text(encoding="utf-8")).get("iEEGCoordinateUnits")
    missing = [c for c in ("name", "x", "y", "z") if c not in tab.columns]
    if missing:
        raise ValueError(f"The electrodes table needs columns name, x, y, z (BIDS), but "
                         f"{missing} are missing; found {list(tab.columns)}.")
    xyz = tab[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    finite = np.isfinite(xyz).all(1)
    if units is None:
        units = "m" if np.all(np.abs(xyz[finite]) <= 1.0) else "mm"
    scale = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}.get(str(units).lower())
    if scale is None:
        raise ValueError(f"Unknown electrode coordinate units {units!r} (expected m, cm, mm).")
    tab["name"] = tab["name"].astype(str)
    tab["x_m"], tab["y_m"], tab["z_m"] = (xyz * scale).T
    return tab


def channel_regions(info: Any) -> dict[str, str]:
    """The region label of each channel kept by :func:`load_seeg` (``{}`` if none).

    ``info``: a TrialSet, a SensorInfo or an :class:`mne.Info`.
    """
    info = getattr(info, "info", info)
    info = getattr(info, "info", info)  # TrialSet -> SensorInfo -> mne.Info
    desc = info.get("description") or ""
    try:
        return dict(json.loads(desc).get(_REGIONS_KEY, {}))
    except (ValueError, AttributeError):
        return {}


def _bids_electrodes(raw) -> Path | None:
    for f in getattr(raw, "filenames", None) or []:
        if f is None:
            continue
        folder = Path(f).parent
        sub = Path(f).name.split("_")[0]
        found = sorted(folder.glob(f"{sub}*_electrodes.tsv"))
        if found:
            return found[0]
    return None


# --------------------------------------------------------------------------- EDF clipping
def edf_header(path: Path) -> pd.DataFrame:
    """Per-signal EDF/BDF header fields: label, unit, physical and digital min/max."""
    with open(path, "rb") as f:
        head = f.read(256)
        ns = int(head[252:256].decode("ascii").strip())
        sig = f.read(256 * ns).decode("latin-1")

    def field(offset: int, width: int) -> list[str]:
        return [sig[offset + i * width: offset + (i + 1) * width].strip() for i in range(ns)]

    o = 0
    labels = field(o, 16)
    o += 16 * ns + 80 * ns
    dims = field(o, 8)
    o += 8 * ns
    pmin = [float(v) for v in field(o, 8)]
    o += 8 * ns
    pmax = [float(v) for v in field(o, 8)]
    o += 8 * ns
    dmin = [float(v) for v in field(o, 8)]
    o += 8 * ns
    dmax = [float(v) for v in field(o, 8)]
    return pd.DataFrame({"label": labels, "unit": dims, "pmin": pmin, "pmax": pmax,
                         "dmin": dmin, "dmax": dmax})


def check_edf_clipping(raw, where: str, picks: Sequence[str], fraction: float = 1e-3,
                       min_samples: int = 3) -> None:
    """Refuse EDF/BDF channels with more than ``fraction`` of their samples (and at
    least ``min_samples``) at the header's physical minimum or maximum."""
    files = [f for f in (getattr(raw, "filenames", None) or []) if f is not None]
    if not files or Path(files[0]).suffix.lower() not in (".edf", ".bdf"):
        return
    hdr = edf_header(Path(files[0]))
    by_label = {lab: row for lab, row in zip(hdr["label"], hdr.itertuples(), strict=True)}
    data = raw.get_data(picks=list(picks))
    bad = []
    for name, x in zip(picks, data, strict=True):
        row = by_label.get(name)
        if row is None:
            continue
        scale = _EDF_UNITS.get(row.unit.lower())
        if scale is None or row.dmax <= row.dmin:
            continue
        step = (row.pmax - row.pmin) / (row.dmax - row.dmin) * scale
        hi, lo = row.pmax * scale, row.pmin * scale
        at = 0  # samples at an end of the range that the data do not pass (saturation)
        if abs(x.max() - hi) <= 0.51 * step:
            at += int((x >= hi - 0.51 * step).sum())
        if abs(x.min() - lo) <= 0.51 * step:
            at += int((x <= lo + 0.51 * step).sum())
        if at >= min_samples and at > fraction * x.size:
            bad.append((name, at, row.pmin, row.pmax, row.unit))
    if bad:
        desc = "; ".join(f"{n}: {a} samples at [{lo:g}, {hi:g}] {u}" for n, a, lo, hi, u in
                         bad[:5])
        raise EDFClippingError(
            f"{where}: {len(bad)} channel(s) clipped at their EDF physical range (expected at "
            f"most {fraction:.1%} of samples at the range's ends), found {desc}. Re-export "
            "with a wider physical range, or mark these channels bad.")


# --------------------------------------------------------------------------- references
def _shafts(names: Sequence[str], where: str) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    unparsed = []
    for n in names:
        m = _NAME.match(n)
        if m is None:
            unparsed.append(n)
            continue
        out.setdefault(m["shaft"], []).append((int(m["num"]), n))
    if unparsed:
        raise ValueError(
            f"{where}: bipolar/Laplacian references need contact names of the form "
            f"<shaft><number> (e.g. LA1, LA2), found {unparsed[:5]}; drop them "
            "(drop_channels=...) or use reference='average'/None.")
    return {k: sorted(v) for k, v in out.items()}


def _bipolar(raw, where: str):
    import mne

    anode, cathode = [], []
    for contacts in _shafts(raw.ch_names, where).values():
        for (na, a), (nb, b) in zip(contacts[:-1], contacts[1:], strict=True):
            if nb == na + 1:
                anode.append(a)
                cathode.append(b)
    if not anode:
        raise ValueError(f"{where}: no pair of adjacent contacts (e.g. LA1, LA2) for a "
                         f"bipolar reference among {raw.ch_names[:6]}...")
    pos = {ch["ch_name"]: np.array(ch["loc"][:3]) for ch in raw.info["chs"]}
    out = mne.set_bipolar_reference(raw, anode, cathode, drop_refs=True, copy=True,
                                    verbose=False)
    keep = [f"{a}-{b}" for a, b in zip(anode, cathode, strict=True)]
    out.pick(keep)
    with out.info._unlock():
        for ch, a, b in zip(out.info["chs"], anode, cathode, strict=True):
            mid = (pos[a] + pos[b]) / 2.0
            ch["loc"][:3] = mid if np.isfinite(mid).all() else np.nan
    return out, dict(zip(keep, zip(anode, cathode, strict=True), strict=True))


def _laplacian(raw, where: str):
    import mne

    names = raw.ch_names
    index = {n: i for i, n in enumerate(names)}
    M = np.eye(len(names))
    for contacts in _shafts(names, where).values():
        nums = [c[0] for c in contacts]
        for k, (num, name) in enumerate(contacts):
            nb = [contacts[j][1] for j in (k - 1, k + 1)
                  if 0 <= j < len(contacts) and abs(nums[j] - num) == 1]
            for n in nb:
                M[index[name], index[n]] -= 1.0 / len(nb)
    out = mne.io.RawArray(M @ raw.get_data(), raw.info, first_samp=raw.first_samp,
                          verbose=False)
    out.set_annotations(raw.annotations)
    return out


# --------------------------------------------------------------------------- loader
@fill_doc
@verbose
def load_seeg(
    source: Any,
    events: Any = None,
    *,
    subject: str | None = None,
    session: str | None = None,
    task: str | None = None,
    ch_types: str | Mapping[str, str] | None = None,
    electrodes: str | os.PathLike | pd.DataFrame | None = None,
    regions: Sequence[str] | None = None,
    reference: str | None = "bipolar",
    features: str = "broadband",
    high_gamma: tuple[float, float] = (70.0, 150.0),
    notch: float | str | None = "auto",
    tmin: float = -0.2,
    tmax: float = 0.8,
    l_freq: float | None = 0.5,
    h_freq: float | None = None,
    sfreq: float | None = None,
    baseline: tuple[float | None, float | None] | None = (None, 0.0),
    scaling: Any = "robust",
    clamp: float | None = 20.0,
    drop_channels: Sequence[str] = (),
    bads: str = "drop",
    reject: Mapping[str, float] | None = None,
    flat: Mapping[str, float] | None = None,
    check_clipping: bool = True,
    stim_channel: str | Sequence[str] | None = None,
    event_id: Mapping[str, int] | None = None,
    reader: Callable | None = None,
    verbose: bool | str | int | None = None,
) -> TrialSet:
    """Epoch sEEG/ECoG run(s) into a TrialSet.

    Parameters
    ----------
    source : path | mne.io.Raw | mne_bids.BIDSPath | list of those | BIDS root
        As :func:`~braindecode_kit.io.load_meg` (BIDS datatype ``ieeg``).
    events : DataFrame | path | list of those | None
        As :func:`~braindecode_kit.io.load_meg`.
    subject, session, task : str | None
        As :func:`~braindecode_kit.io.load_meg`.
    ch_types : str | dict | None
        Relabel channel types first: one type for every non-stim channel (``"seeg"``:
        a clinical EDF typed EEG) or a ``{name: type}`` mapping.
    electrodes : path | DataFrame | None
        An ``electrodes.tsv`` (name, x, y, z [, region, group, size]); default: the BIDS
        one beside the recording, if any. Sets the positions and region labels.
    regions : list of str | None
        Keep only contacts whose ``region`` is one of these (e.g.
        ``["occipital", "ventral_temporal"]``); a bipolar pair is kept when its first
        contact is.
    reference : "bipolar" | "laplacian" | "average" | None
        Re-referencing, after dropping bad contacts.
    features : "broadband" | "high_gamma" | "both"
        The signal, its ``high_gamma`` band envelope, or both (envelope channels named
        ``<channel>_hg``).
    high_gamma : (float, float)
        The high-gamma band (Hz).
    notch : float | "auto" | None
        Line-noise notch (and harmonics below Nyquist); ``"auto"``: ``info["line_freq"]``
        if set; ``None``: none.
    %(tmin)s
    %(tmax)s
    %(l_freq)s
    %(h_freq)s
    sfreq : float | None
        Resample after filtering (``None``: keep; then all runs must share a rate).
    baseline : tuple | None
        Baseline of :class:`mne.Epochs`.
    scaling : "robust" | None | RobustChannelScaler
        As :func:`~braindecode_kit.io.load_meg` (``None``: volts).
    clamp : float | None
        Clamp after scaling.
    drop_channels : sequence of str
        Channels removed first; unknown names are refused.
    bads : "drop" | "interpolate" | "keep"
        Bad contacts (any run): dropped before re-referencing, interpolated, or kept.
    reject, flat : dict | None
        Thresholds of :class:`mne.Epochs` (e.g. ``{"seeg": 1e-3}``).
    check_clipping : bool
        Refuse EDF/BDF channels that clipped at their physical range.
    stim_channel, event_id, reader
        As :func:`~braindecode_kit.io.load_meg`.
    %(verbose)s

    Returns
    -------
    TrialSet
        ``modality="seeg"``, data ``(n_trials, n_channels, n_times)`` float32, the trial
        table and a SensorInfo (positions; region labels via :func:`channel_regions`).

    Raises
    ------
    ValueError
        No events; events outside the recording; no sEEG/ECoG channel (types named);
        unknown channel names or types; no contact left in ``regions`` after dropping
        bad ones; different rates with ``sfreq=None``; non-finite samples;
        :class:`EDFClippingError`.
    """
    import mne

    if bads not in ("drop", "interpolate", "keep"):
        raise ValueError(f"Invalid value for the 'bads' parameter. Allowed values are 'drop', "
                         f"'interpolate', 'keep', but got {bads!r} instead.")
    if tmax <= tmin:
        raise ValueError(f"'tmax' ({tmax}) must be after 'tmin' ({tmin}).")
    if reference not in ("bipolar", "laplacian", "average", None):
        raise ValueError(f"Invalid value for the 'reference' parameter. Allowed values are "
                         f"'bipolar', 'laplacian', 'average', None, but got {reference!r} "
                         "instead.")
    if features not in ("broadband", "high_gamma", "both"):
        raise ValueError(f"Invalid value for the 'features' parameter. Allowed values are "
                         f"'broadband', 'high_gamma', 'both', but got {features!r} instead.")
    if sfreq is not None:
        sfreq = check_float("sfreq", sfreq, 1.0, 100_000.0)
    if isinstance(ch_types, str) and ch_types not in _KNOWN_TYPES:
        raise ValueError(f"Invalid value for the 'ch_types' parameter. Allowed types are "
                         f"{list(_KNOWN_TYPES)}, but got {ch_types!r} instead.")
    runs = S.resolve_runs(source, events, subject=subject, datatype="ieeg", session=session,
                          task=task, stim_channel=stim_channel, event_id=event_id,
                          reader=reader)
    label = _subject(subject, runs)
    all_bads = sorted(set().union(*[set(r.raw.info["bads"]) for r in runs]))
    el_table = read_electrodes(electrodes) if electrodes is not None else None
    state: dict[str, Any] = {}

    def prepare(raw, where):
        raw = raw.copy()
        missing = [c for c in drop_channels if c not in raw.ch_names]
        if missing:
            raise ValueError(f"{where}: 'drop_channels' names {missing}, which the recording "
                             f"does not have ({len(raw.ch_names)} channels).")
        if drop_channels:
            raw.drop_channels(list(drop_channels))
        if raw.info["projs"]:  # SSP projectors (e.g. an EEG average reference) are not
            raw.del_proj()  # applied to intracranial data and would block relabelling
        _relabel(raw, ch_types, where)
        tab = el_table
        if tab is None:
            found = _bids_electrodes(raw)
            tab = read_electrodes(found) if found is not None else None
        region_of: dict[str, str] = {}
        if tab is not None:
            known = tab.set_index("name")
            pos = {n: known.loc[n, ["x_m", "y_m", "z_m"]].to_numpy(float)
                   for n in raw.ch_names if n in known.index}
            if pos:
                with raw.info._unlock():
                    for ch in raw.info["chs"]:
                        if ch["ch_name"] in pos:
                            ch["loc"][:3] = pos[ch["ch_name"]]
            if "region" in known.columns:
                region_of = {n: str(known.loc[n, "region"]) for n in raw.ch_names
                             if n in known.index}
        idx = mne.pick_types(raw.info, meg=False, seeg=True, ecog=True, dbs=True, exclude=[])
        if not len(idx):
            raise ValueError(
                f"{where}: expected sEEG/ECoG channels (types {list(SEEG_CHANNEL_TYPES)}), "
                f"found channel types {S.describe_types(raw.info)}; clinical exports type "
                "contacts as EEG: pass ch_types='seeg' (or a {name: type} mapping).")
        names = [raw.ch_names[i] for i in idx]
        if regions is not None:
            if not region_of:
                raise ValueError(f"{where}: 'regions' needs region labels (a 'region' column "
                                 "in electrodes.tsv or electrodes=...), found none.")
            names = [n for n in names if region_of.get(n) in set(regions)]
        if bads == "drop":
            dropped = [n for n in names if n in all_bads]
            names = [n for n in names if n not in all_bads]
        else:
            dropped = []
        if not names:
            found_regions = sorted(set(region_of.values()))
            raise ValueError(
                f"{where}: no contact left: expected at least one sEEG/ECoG contact"
                f"{' in regions ' + str(list(regions)) if regions is not None else ''} after "
                f"dropping bad channels; found {len(idx)} contacts (regions "
                f"{found_regions}), bad ones dropped: {dropped[:8]}.")
        if check_clipping:
            check_edf_clipping(raw, where, names)
        raw.pick(names)
        if bads == "interpolate" and raw.info["bads"]:
            raw.load_data(verbose=False).interpolate_bads(reset_bads=True, verbose=False)
        if notch is not None:
            f0 = raw.info["line_freq"] if notch == "auto" else float(notch)
            if f0:
                freqs = np.arange(f0, raw.info["sfreq"] / 2 - 1.0, f0)
                if freqs.size:
                    raw.load_data(verbose=False).notch_filter(freqs, picks="all",
                                                              verbose=False)
        pairs: dict[str, tuple[str, str]] = {}
        if reference == "bipolar":
            raw, pairs = _bipolar(raw.load_data(verbose=False), where)
        elif reference == "laplacian":
            raw = _laplacian(raw.load_data(verbose=False), where)
        elif reference == "average":
            raw.load_data(verbose=False).set_eeg_reference(
                "average", ch_type=sorted(set(raw.get_channel_types())), verbose=False)
        regs = {n: region_of.get(pairs.get(n, (n,))[0], "") for n in raw.ch_names}
        if features != "broadband":
            hi = high_gamma[1]
            if raw.info["sfreq"] / 2 <= hi:
                raise ValueError(
                    f"{where}: high-gamma features ({high_gamma[0]}-{hi} Hz) need a sampling "
                    f"rate above {2 * hi:g} Hz, found {raw.info['sfreq']:g} Hz.")
            hg = raw.copy().load_data(verbose=False).filter(high_gamma[0], hi, picks="all",
                                                            verbose=False)
            hg.apply_hilbert(envelope=True, picks="all", verbose=False)
            if features == "high_gamma":
                raw = hg
            else:
                hg.rename_channels({n: f"{n}_hg" for n in hg.ch_names})
                raw = raw.load_data(verbose=False).add_channels([hg], force_update_info=True)
                regs.update({f"{n}_hg": r for n, r in list(regs.items())})
        state["regions"] = regs
        return raw

    data, trials, info, t0 = S.epoch_runs(
        runs, prepare=prepare, tmin=tmin, tmax=tmax, baseline=baseline, reject=reject,
        flat=flat, sfreq=sfreq, l_freq=l_freq, h_freq=h_freq,
        bads="keep")  # bad contacts were handled before re-referencing
    regs = {n: state.get("regions", {}).get(n, "") for n in info["ch_names"]}
    if any(regs.values()):
        info = info.copy()
        with info._unlock():
            info["description"] = json.dumps({_REGIONS_KEY: regs})
    logger.info("sEEG subject %s: %d trials x %d channels (%s reference, %s).", label,
                data.shape[0], data.shape[1], reference, features)
    return S.finish(data, trials, info, t0, modality="seeg", subject=label, scaling=scaling,
                    clamp=clamp, positions_2d=None)


def _relabel(raw, ch_types, where: str) -> None:
    if ch_types is None:
        return
    if isinstance(ch_types, str):
        mapping = {n: ch_types for n, t in zip(raw.ch_names, raw.get_channel_types(),
                                               strict=True) if t != "stim"}
    elif isinstance(ch_types, Mapping):
        mapping = {str(k): str(v) for k, v in ch_types.items()}
        unknown = [n for n in mapping if n not in raw.ch_names]
        if unknown:
            raise ValueError(f"{where}: 'ch_types' names {unknown[:5]}, which the recording "
                             f"does not have.")
        bad = sorted({v for v in mapping.values() if v not in _KNOWN_TYPES})
        if bad:
            raise ValueError(f"{where}: 'ch_types' has unknown type(s) {bad}; allowed are "
                             f"{list(_KNOWN_TYPES)}.")
    else:
        raise TypeError(f"'ch_types' must be a str, a mapping or None, but got "
                        f"{type(ch_types).__name__}.")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MNE warns about unit changes (V stays V)
        raw.set_channel_types(mapping, on_unit_change="ignore", verbose=False)


def _subject(subject: str | None, runs: list) -> str:
    if subject is not None:
        return str(subject).removeprefix("sub-")
    for r in runs:
        for f in getattr(r.raw, "filenames", None) or []:
            if f is not None and "sub" in S.entities(Path(f)):
                return S.entities(Path(f))["sub"]
    return "01"
