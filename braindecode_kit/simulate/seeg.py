"""Simulated sEEG subjects written in real formats (EDF inside BIDS iEEG, via mne-bids).

:func:`simulate_seeg` runs the same THINGS-like design as :func:`.simulate_meg` (training
images once, test images ``n_test_reps`` times) on subjects implanted with depth
electrodes.

Implantation (different per subject)
    ``n_shafts`` shafts (a random number in the range) drawn from a catalogue of
    clinical targets, always including one occipital (``O``) and one fusiform (``F``)
    shaft: occipital, fusiform (ventral temporal), hippocampus, amygdala, frontal,
    parietal, left (``L``) or right (``R``). Each shaft has ``n_contacts`` contacts (a
    random number in the range) 3.5 mm apart, numbered from the deepest (``LO1``,
    ``LO2``, ...), with 3-D positions (MNI-like millimetres, written in metres in the
    fsaverage space of BIDS) and a region label: the deep contacts lie in the target
    region, the others in ``white_matter``.
Responses
    About 80 % of the contacts in ``occipital`` and ``ventral_temporal`` cortex respond:
    an evoked potential (gamma-shaped, ~100 ms occipital / 150-300 ms ventral temporal,
    30-80 uV, amplitude driven by the stimulus) and high-gamma (70-150 Hz) power: a
    band-limited carrier whose envelope, from ~50 to ~400 ms, scales with the contact's
    tuning (occipital: the low-level features of the fMRI encoding model, ventral
    temporal: the semantic features). Responses spread weakly (30 %) to the adjacent
    contacts of the shaft.
Noise
    1/f^1.5 background per contact, correlated between neighbouring contacts, a common
    reference signal and line noise shared by all contacts (a monopolar recording:
    bipolar re-referencing removes them), and 20 % trial-to-trial amplitude variability.

What is written (``out_dir``)
    * BIDS iEEG via mne-bids: ``sub-XX/ses-01/ieeg/sub-XX_ses-01_task-main_run-NN_ieeg.edf``
      (EDF+, physical unit uV; the clinical convention types every channel EEG, the BIDS
      ``channels.tsv`` says SEEG), ``_channels.tsv`` (name, type, units, low_cutoff,
      high_cutoff, ...), ``sub-XX_ses-01_space-fsaverage_electrodes.tsv`` (name, x, y, z
      in m, size in mm^2, plus ``group`` = shaft and ``region``), ``_coordsystem.json`` and
      ``_events.tsv`` (``onset, duration, trial_type, value, sample, stimulus_id,
      repetition, split``); the EDF annotations carry the same onsets.
    * ``derivatives/simulation/simulation.json`` and per subject
      ``sub-XX/sub-XX_desc-contacts.npz``: the ground truth (contacts, regions,
      responsive mask, evoked and high-gamma amplitudes per stimulus, waveforms, tuning,
      noise model).

:class:`SimulatedSEEG` reopens a dataset and computes the oracle.
"""

from __future__ import annotations

import datetime
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_float, check_int
from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import atomic_dir, hash_jsonable
from . import _electro as el
from ._npz import savez

__all__ = ["simulate_seeg", "SimulatedSEEG"]

_VERSION = 1
_TAG = {"split": 21, "mixer": 22, "subject": 23, "design": 24, "noise": 25, "oracle": 26}
#: code -> (region of the deep contacts, target (mm, left hemisphere), entry direction)
TARGETS: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "O": ("occipital", (-12.0, -92.0, 4.0), (-1.0, 0.15, 0.1)),
    "F": ("ventral_temporal", (-34.0, -55.0, -16.0), (-1.0, 0.05, 0.15)),
    "H": ("hippocampus", (-28.0, -22.0, -12.0), (-1.0, 0.0, 0.1)),
    "A": ("amygdala", (-22.0, -5.0, -18.0), (-1.0, 0.0, 0.1)),
    "FR": ("frontal", (-30.0, 32.0, 22.0), (-1.0, 0.0, 0.2)),
    "P": ("parietal", (-28.0, -60.0, 45.0), (-1.0, 0.0, 0.3)),
}
RESPONSIVE_REGIONS = ("occipital", "ventral_temporal")
SPACING_MM = 3.5
CONTACT_SIZE_MM2 = 5.0
_RESPONSE_WINDOW = 0.8
_TRIAL_SD = 0.2
_HG_BAND = (70.0, 150.0)


# --------------------------------------------------------------------------- implantation
def _implant(n_shafts: int, n_contacts: tuple[int, int], rng: np.random.Generator
             ) -> pd.DataFrame:
    codes = list(TARGETS)
    others = [c for c in codes if c not in ("O", "F")]
    chosen = ["O", "F"] + list(rng.choice(others, size=max(0, n_shafts - 2),
                                          replace=n_shafts - 2 > len(others)))
    rows = []
    used: set[str] = set()
    for code in chosen:
        side = rng.choice(["L", "R"])
        name = f"{side}{code}"
        if name in used:
            side = "R" if side == "L" else "L"
            name = f"{side}{code}"
        if name in used:
            continue
        used.add(name)
        region, target, direction = TARGETS[code]
        t = np.array(target) * np.array([1.0 if side == "L" else -1.0, 1.0, 1.0]) + rng.normal(0, 3.0, 3)
        d = np.array(direction) * np.array([1.0 if side == "L" else -1.0, 1.0, 1.0])
        d = d + rng.normal(0, 0.1, 3)
        d /= np.linalg.norm(d)
        n = int(rng.integers(n_contacts[0], n_contacts[1] + 1))
        n_deep = max(2, int(round(n * rng.uniform(0.35, 0.55))))
        for k in range(n):
            pos = t + d * SPACING_MM * k
            rows.append({"name": f"{name}{k + 1}", "group": name, "number": k + 1,
                         "x_mm": pos[0], "y_mm": pos[1], "z_mm": pos[2],
                         "region": region if k < n_deep else "white_matter"})
    return pd.DataFrame(rows)


def _subject_model(contacts: pd.DataFrame, maps: np.ndarray, latent: np.ndarray, snr: float,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    C = len(contacts)
    region = contacts["region"].to_numpy()
    cand = np.isin(region, RESPONSIVE_REGIONS)
    responsive = cand & (rng.random(C) < 0.8)
    # at least one responsive contact per responsive region present
    for reg in RESPONSIVE_REGIONS:
        idx = np.flatnonzero(region == reg)
        if idx.size and not responsive[idx].any():
            responsive[rng.choice(idx)] = True
    r_idx = np.flatnonzero(responsive)
    kind = (region[r_idx] == "ventral_temporal").astype(np.int8)
    hemi = np.where(contacts["x_mm"].to_numpy()[r_idx] < 0, 1, -1).astype(np.int8)
    tuning = el.make_tuning(kind, hemi, rng)
    drive = tuning.drive(maps, latent)  # (n_stim, R)
    R = r_idx.size
    erp_lat = np.where(kind == 0, rng.normal(0.10, 0.01, R), rng.uniform(0.15, 0.30, R))
    erp_width = np.where(kind == 0, rng.uniform(0.02, 0.035, R), rng.uniform(0.04, 0.07, R))
    erp_amp = rng.uniform(30e-6, 80e-6, R) * rng.choice([-1.0, 1.0], R) * snr
    erp = erp_amp * (np.where(kind == 0, 1.0, 0.3) + 0.6 * drive)  # (n_stim, R), V
    hg_lat = np.where(kind == 0, rng.uniform(0.10, 0.15, R), rng.uniform(0.18, 0.28, R))
    hg_width = rng.uniform(0.08, 0.12, R)
    hg_amp = rng.uniform(10e-6, 20e-6, R) * snr
    hg = hg_amp * np.maximum(0.0, 1.0 + 0.8 * drive)  # (n_stim, R) envelope peak, V
    # spread to neighbours on the same shaft (C x R mixing)
    spread = np.zeros((C, R))
    groups = contacts["group"].to_numpy()
    numbers = contacts["number"].to_numpy()
    for j, c in enumerate(r_idx):
        spread[c, j] = 1.0
        for nb in np.flatnonzero((groups == groups[c]) & (np.abs(numbers - numbers[c]) == 1)):
            spread[nb, j] += 0.3
    return {
        "responsive": responsive, "responsive_index": r_idx, "kind": kind,
        "erp_latency": erp_lat, "erp_width": erp_width, "erp_amplitudes": erp,
        "hg_latency": hg_lat, "hg_width": hg_width, "hg_amplitudes": hg, "drive": drive,
        "spread": spread, "background_sd": rng.uniform(15e-6, 30e-6, C),
        "neighbour_corr": np.array(0.5), "reference_sd": np.array(20e-6),
        "line_amplitude": np.array(15e-6), "hg_background_sd": np.array(1.5e-6),
        "trial_sd": np.array(_TRIAL_SD), **tuning.arrays(),
    }


def _envelope(t: np.ndarray, lat: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``(R, T)`` smooth high-gamma envelope bumps (Hann-like, peak 1 at ``lat``)."""
    x = (t[None, :] - lat[:, None]) / width[:, None]
    return np.where(np.abs(x) < 1.5, np.cos(np.pi * x / 3.0) ** 2, 0.0) * (t[None, :] > 0)


def _hg_carrier(n_signals: int, n_times: int, sfreq: float, rng: np.random.Generator
                ) -> np.ndarray:
    """``(n_signals, n_times)`` unit-variance high-gamma noise: white noise through the
    zero-phase (forward-backward) 4th-order Butterworth band-pass of ``_HG_BAND``, drawn
    in the frequency domain (amplitude ``|H(f)|^2``, so the power spectrum ``sosfiltfilt``
    of white noise has, at a fraction of the cost; :func:`~._electro.spectral_noise`)."""
    from scipy.signal import butter, sosfreqz

    hi = min(_HG_BAND[1], 0.45 * sfreq)
    sos = butter(4, [_HG_BAND[0], hi], btype="bandpass", fs=sfreq, output="sos")
    return el.spectral_noise(n_signals, n_times, sfreq, rng,
                             lambda f: np.abs(sosfreqz(sos, worN=f, fs=sfreq)[1]) ** 2)


def _background(m: dict, groups: np.ndarray, n_times: int, sfreq: float,
                rng: np.random.Generator) -> np.ndarray:
    """Monopolar background ``(C, n_times)``: shaft-correlated 1/f, high-gamma floor,
    common reference (no line noise)."""
    C = groups.size
    x = el.pink_noise(C, n_times, sfreq, rng, exponent=1.5).astype(np.float64)
    rho = float(m["neighbour_corr"])
    for g in np.unique(groups):  # AR(1) along the shaft: neighbours correlate by rho
        idx = np.flatnonzero(groups == g)
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            x[b] = rho * x[a] + np.sqrt(1 - rho**2) * x[b]
    x *= m["background_sd"][:, None]
    x += float(m["hg_background_sd"]) * _hg_carrier(C, n_times, sfreq, rng)
    x += float(m["reference_sd"]) * el.pink_noise(1, n_times, sfreq, rng, exponent=1.0)
    return x


# --------------------------------------------------------------------------- result
class SimulatedSEEG(el.SimulatedRecording):
    """What :func:`simulate_seeg` wrote: paths, contacts, splits and the ground truth.

    Reopen a dataset with :meth:`SimulatedSEEG.load`.
    """

    kind = "seeg"

    def contacts(self, subject: str | int) -> pd.DataFrame:
        """The subject's contacts: ``name, group, number, x_mm, y_mm, z_mm, region,
        responsive``."""
        g = self.ground_truth(subject)
        return pd.DataFrame({
            "name": g["contact_name"], "group": g["contact_group"],
            "number": g["contact_number"], "x_mm": g["contact_pos_mm"][:, 0],
            "y_mm": g["contact_pos_mm"][:, 1], "z_mm": g["contact_pos_mm"][:, 2],
            "region": g["contact_region"], "responsive": g["responsive"]})

    def oracle_retrieval(self, subject: str | int, n_candidates: int | None = None,
                         n_draws: int = 30, seed: int = 0, k: int = 1,
                         n_reps: int | None = 1, *, tmin: float = 0.0,
                         tmax: float = 0.6) -> dict:
        """Test-image retrieval by a decoder that knows the true responses.

        Trials of each candidate are simulated afresh from the generative model (evoked
        potential and high-gamma envelope with trial-to-trial variability, background
        noise; no line noise) on the responsive contacts and their neighbours, bipolar
        along each shaft; the features are the evoked potential (low-passed at 30 Hz) and
        the high-gamma power in 50 ms bins, each standardised by its noise sd; the
        ``n_reps``-average is matched to the nearest noise-free template. A strong
        reference, not the exact Bayes bound.

        Parameters and returns as :meth:`SimulatedMEG.oracle_retrieval`.
        """
        return self._oracle(subject, n_candidates, n_draws, seed, k, n_reps, tmin, tmax)

    def _oracle_ranks(self, label: str, n_candidates: int, n_draws: int, seed: int,
                      n_reps: int, tmin: float, tmax: float) -> list[np.ndarray]:
        """The rank of the true stimulus among the candidates, per draw (see
        :meth:`oracle_retrieval`)."""
        from scipy.signal import butter, hilbert, sosfiltfilt

        g = self.ground_truth(label)
        ids = self.test_ids
        sf = self.sfreq
        pos = {s: i for i, s in enumerate(g["stimulus_id"].tolist())}
        rows = [pos[s] for s in ids]
        groups = g["contact_group"]
        nums = g["contact_number"]
        pairs = [(a, b) for a in range(groups.size) for b in range(groups.size)
                 if groups[a] == groups[b] and nums[b] == nums[a] + 1]
        use = np.array([i for i, (a, b) in enumerate(pairs)
                        if g["spread"][a].any() or g["spread"][b].any()])
        A = np.zeros((use.size, groups.size))
        for r, i in enumerate(use):
            A[r, pairs[i][0]], A[r, pairs[i][1]] = 1.0, -1.0
        pad = 0.2
        times = np.arange(int(round((tmin - pad) * sf)), int(round((tmax + pad) * sf)) + 1) / sf
        keep = (times >= tmin) & (times <= tmax)
        Werp = el.gamma_waveform(times, g["erp_latency"], g["erp_width"]).astype(np.float64)
        Whg = _envelope(times, g["hg_latency"], g["hg_width"])
        lp = butter(4, 30.0, fs=sf, output="sos")
        hp = butter(4, [_HG_BAND[0], min(_HG_BAND[1], 0.45 * sf)], btype="bandpass", fs=sf,
                    output="sos")
        nb = max(1, int(round(0.05 * sf)))

        def features(x):  # (n, pairs, T) -> (n, d)
            erp = sosfiltfilt(lp, x, axis=-1)[..., keep]
            hgp = np.abs(hilbert(sosfiltfilt(hp, x, axis=-1), axis=-1))[..., keep] ** 2
            T = hgp.shape[-1] // nb * nb
            hgp = hgp[..., :T].reshape(*hgp.shape[:-1], -1, nb).mean(-1)
            return np.concatenate([erp[..., ::max(1, nb // 2)].reshape(len(x), -1),
                                   hgp.reshape(len(x), -1)], axis=1), erp.size // len(x)

        rng = el.rng_for(seed, _TAG["oracle"], int(label))
        carrier_sd = 1.0

        def simulate(stim_rows, n_each):
            n = len(stim_rows) * n_each
            erp = g["erp_amplitudes"][np.repeat(stim_rows, n_each)] * (
                1 + float(g["trial_sd"]) * rng.standard_normal((n, Werp.shape[0])))
            hg = g["hg_amplitudes"][np.repeat(stim_rows, n_each)] * (
                1 + float(g["trial_sd"]) * rng.standard_normal((n, Whg.shape[0])))
            car = _hg_carrier(n * Whg.shape[0], times.size, sf, rng).reshape(
                n, Whg.shape[0], times.size) * carrier_sd
            src = erp[:, :, None] * Werp[None] + hg[:, :, None] * Whg[None] * car
            mono = np.einsum("cr,nrt->nct", g["spread"], src, optimize=True)
            bg = _background(g, groups, n * times.size, sf, rng)
            mono += bg.reshape(groups.size, n, times.size).transpose(1, 0, 2)
            return np.einsum("pc,nct->npt", A, mono, optimize=True)

        # templates: the expected features, estimated from many noise-free-amplitude
        # trials (high-gamma power is a variance, so its template needs averaging)
        n_tmpl = 24
        feats = []
        for start in range(0, len(rows), 10):  # 10 stimuli x 24 trials per call
            chunk = np.array(rows[start:start + 10])
            f, _ = features(simulate(chunk, n_tmpl))
            feats.append(f.reshape(len(chunk), n_tmpl, -1).mean(1))
        tmpl = np.concatenate(feats)
        f_noise, _ = features(simulate(np.array(rows[:4]), 6))
        sd = f_noise.std(0) + 1e-30
        tmpl = tmpl / sd
        ranks = []
        for _ in range(n_draws):
            idx = rng.choice(len(rows), n_candidates, replace=False)
            y = simulate(np.array(rows)[idx], n_reps)
            f, _ = features(y)
            f = f.reshape(n_candidates, n_reps, -1).mean(1) / sd
            m = tmpl[idx]
            d = (-2.0 * f @ m.T) + (m ** 2).sum(1)[None, :]
            rank = (d < d[np.arange(n_candidates), np.arange(n_candidates)][:, None]).sum(1)
            ranks.append(rank)
        return ranks


# --------------------------------------------------------------------------- entry point
@fill_doc
@verbose
def simulate_seeg(
    stimuli,
    out_dir: str | Path,
    n_subjects: int = 2,
    seed: int = 0,
    *,
    n_train: int = 120,
    n_test: int = 20,
    n_test_reps: int = 5,
    n_runs: int = 2,
    sfreq: float = 500.0,
    image_duration: float = 0.5,
    isi: float = 1.0,
    isi_jitter: float = 0.2,
    n_shafts: tuple[int, int] = (4, 7),
    n_contacts: tuple[int, int] = (6, 10),
    snr: float = 1.0,
    line_freq: float = 50.0,
    overwrite: bool = False,
    verbose: bool | str | int | None = None,
) -> SimulatedSEEG:
    """Simulate a THINGS-like experiment recorded with depth electrodes; write BIDS iEEG.

    Parameters
    ----------
    stimuli : StimulusSet
        The images (e.g. :func:`braindecode_kit.simulate.make_world`).
    out_dir : str | Path
        The BIDS root to create.
    n_subjects : int
        Subjects, each with its own implantation, tuning and noise.
    %(seed)s
    n_train, n_test, n_test_reps, n_runs : int
        As :func:`~braindecode_kit.simulate.simulate_meg`.
    sfreq : float
        Sampling frequency (Hz; at least 320 for the 70-150 Hz band).
    image_duration, isi, isi_jitter : float
        Image time, mean gap and its jitter (s).
    n_shafts : (int, int)
        Range of the number of shafts per subject (inclusive; at least 2: one occipital,
        one fusiform).
    n_contacts : (int, int)
        Range of the number of contacts per shaft (inclusive).
    snr : float
        Scale of the responses (1: evoked potentials of 30-80 uV and high-gamma
        envelopes of 10-20 uV against a 15-30 uV background); ``0``: no response.
    line_freq : float
        Power-line frequency (Hz).
    overwrite : bool
        Replace an existing ``out_dir``; without it, a dataset simulated with the same
        arguments is reopened and anything else refused.
    %(verbose)s

    Returns
    -------
    SimulatedSEEG
        Paths, contacts, ids, the ground truth and :meth:`SimulatedSEEG.oracle_retrieval`.
    """
    t0 = time.perf_counter()
    ids_all = el.check_stimuli(stimuli)
    n_subjects = check_int("n_subjects", n_subjects, 1, 99)
    seed = check_int("seed", seed, 0)
    n_train = check_int("n_train", n_train, 1)
    n_test = check_int("n_test", n_test, 2)
    n_test_reps = check_int("n_test_reps", n_test_reps, 1)
    n_runs = check_int("n_runs", n_runs, 1)
    sfreq = check_float("sfreq", sfreq, 320.0, 20000.0)
    image_duration = check_float("image_duration", image_duration, 0.05, 5.0)
    isi = check_float("isi", isi, 0.0, 10.0)
    isi_jitter = check_float("isi_jitter", isi_jitter, 0.0, isi)
    snr = check_float("snr", snr, 0.0, 1000.0)
    line_freq = check_float("line_freq", line_freq, 1.0, 1000.0)
    n_shafts = _range("n_shafts", n_shafts, 2)
    n_contacts = _range("n_contacts", n_contacts, 2)
    if line_freq >= sfreq / 2:
        raise ValueError(f"'line_freq' ({line_freq} Hz) must be below Nyquist ({sfreq / 2} "
                         f"Hz for sfreq={sfreq}).")
    test_ids, train_ids = el.pick_ids(ids_all, n_train, n_test, seed, _TAG["split"])
    params = {"n_subjects": n_subjects, "seed": seed, "n_train": n_train, "n_test": n_test,
              "n_test_reps": n_test_reps, "n_runs": n_runs, "sfreq": sfreq,
              "image_duration": image_duration, "isi": isi, "isi_jitter": isi_jitter,
              "n_shafts": list(n_shafts), "n_contacts": list(n_contacts), "snr": snr,
              "line_freq": line_freq}
    used = test_ids + train_ids
    fp = getattr(stimuli, "fingerprint", None)
    config_hash = hash_jsonable({"version": _VERSION, "kind": "seeg", "params": params,
                                 "ids": used, "fp": [fp(i) if fp else i for i in used]})
    out_dir = Path(out_dir)
    old = el.reuse(out_dir, config_hash, overwrite, SimulatedSEEG)
    if old is not None:
        return old
    logger.info("Simulating %d sEEG subjects into %s", n_subjects, out_dir)
    maps, latent, mixer = el.stimulus_features(stimuli, used, seed, _TAG["mixer"])
    subject_info: dict[str, dict] = {}
    with atomic_dir(out_dir, kind="simulated seeg dataset") as tmp:
        for s in range(n_subjects):
            label = f"{s + 1:02d}"
            subject_info[label] = _simulate_subject(tmp, label, s, params, maps, latent, used,
                                                    n_test)
        info = {"kind": "seeg", "version": _VERSION, "config_hash": config_hash,
                "parameters": params, "subjects": list(subject_info), "test_ids": test_ids,
                "train_ids": train_ids, "subject_info": subject_info,
                "event_id": el.EVENT_ID}
        sim = tmp / "derivatives" / "simulation"
        sim.mkdir(parents=True, exist_ok=True)
        savez(sim / "desc-semanticmixer_model.npz", A=mixer.A, b=mixer.b,
                 input_weights=mixer.input_weights, centre=mixer.centre, scale=mixer.scale,
                 names=np.array(mixer.names, dtype=str))
        el.write_json(sim / "simulation.json", info)
    logger.info("Simulated %d sEEG subjects in %.1f s", n_subjects, time.perf_counter() - t0)
    return SimulatedSEEG(out_dir, info)


def _range(name: str, value: Any, lo: int) -> tuple[int, int]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (not isinstance(value, tuple | list) or len(value) != 2
            or not all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                       for v in value) or value[0] > value[1] or value[0] < lo):
        raise ValueError(f"'{name}' must be an int or a (min, max) pair of ints with "
                         f"{lo} <= min <= max, but got {value!r}.")
    return int(value[0]), int(value[1])


def _simulate_subject(root: Path, label: str, s: int, p: dict, maps: np.ndarray,
                      latent: np.ndarray, ids: list[str], n_test: int) -> dict:
    import mne
    import mne_bids

    seed, sf = p["seed"], p["sfreq"]
    rng = el.rng_for(seed, _TAG["subject"], s)
    n_sh = int(rng.integers(p["n_shafts"][0], p["n_shafts"][1] + 1))
    contacts = _implant(n_sh, tuple(p["n_contacts"]), rng)
    m = _subject_model(contacts, maps, latent, p["snr"], rng)
    groups = contacts["group"].to_numpy()
    names = contacts["name"].tolist()
    designs = el.make_design(n_test, len(ids) - n_test, p["n_test_reps"], p["n_runs"],
                             p["image_duration"], p["isi"], p["isi_jitter"],
                             el.rng_for(seed, _TAG["design"], s))
    tables = el.trial_tables(designs, ids, n_test)
    tt = np.arange(int(round(_RESPONSE_WINDOW * sf))) / sf
    Werp = el.gamma_waveform(tt, m["erp_latency"], m["erp_width"]).astype(np.float64)
    Whg = _envelope(tt, m["hg_latency"], m["hg_width"])
    nrng = el.rng_for(seed, _TAG["noise"], s)
    pos_m = contacts[["x_mm", "y_mm", "z_mm"]].to_numpy() / 1000.0
    montage = mne.channels.make_dig_montage(ch_pos=dict(zip(names, pos_m, strict=True)),
                                            coord_frame="mni_tal")
    raw_paths, ev_paths, el_path = [], [], None
    R = m["responsive_index"].size
    scratch = root / ".scratch"
    scratch.mkdir(exist_ok=True)
    for d, table in zip(designs, tables, strict=True):
        n = int(round(np.ceil(d.duration) * sf))  # whole seconds: whole EDF data records
        x = _background(m, groups, n, sf, nrng)
        t_all = np.arange(n) / sf
        for h in (1, 3):
            if h * p["line_freq"] < sf / 2:
                x += float(m["line_amplitude"]) / h * np.sin(2 * np.pi * h * p["line_freq"]
                                                              * t_all)[None, :]
        erp = m["erp_amplitudes"][d.columns] * (1 + _TRIAL_SD * nrng.standard_normal(
            (d.columns.size, R)))
        hg = m["hg_amplitudes"][d.columns] * (1 + _TRIAL_SD * nrng.standard_normal(
            (d.columns.size, R)))
        car = _hg_carrier(R, n, sf, nrng)
        T = tt.size
        for o, a, b in zip(d.onsets, erp, hg, strict=True):
            i = int(round(o * sf))
            j = min(n, i + T)
            src = a[:, None] * Werp + b[:, None] * Whg * car[:, i:i + T]
            x[:, i:j] += (m["spread"] @ src)[:, : j - i]
        info = mne.create_info(names, sf, "seeg")
        info["line_freq"] = p["line_freq"]
        raw = mne.io.RawArray(x, info, verbose=False)
        del x
        raw.set_meas_date(datetime.datetime(2021, 3, 1 + s % 28, 10,
                                            tzinfo=datetime.timezone.utc)
                          + datetime.timedelta(hours=d.run))
        raw.set_annotations(mne.Annotations(d.onsets, p["image_duration"],
                                            table["trial_type"].tolist()))
        edf = scratch / f"sub-{label}_run-{d.run:02d}.edf"
        mne.export.export_raw(edf, raw, fmt="edf", physical_range="channelwise",
                              overwrite=True, verbose=False)
        raw = mne.io.read_raw_edf(edf, verbose=False)
        raw.set_channel_types(dict.fromkeys(names, "seeg"), verbose=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no fiducials: MNI coordinates as given
            raw.set_montage(montage, verbose=False)
        bp = mne_bids.BIDSPath(subject=label, session="01", task="main", run=f"{d.run:02d}",
                               datatype="ieeg", root=root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne_bids.write_raw_bids(raw, bp, event_id=el.EVENT_ID, overwrite=True,
                                    verbose=False)
        del raw
        edf.unlink()
        ev_path = Path(bp.copy().update(suffix="events", extension=".tsv").fpath)
        el.fix_events_tsv(ev_path, table.assign(duration=p["image_duration"]))
        raw_paths.append(str(Path(bp.fpath).relative_to(root)))
        ev_paths.append(str(ev_path.relative_to(root)))
    scratch.rmdir()
    found = sorted((root / f"sub-{label}" / "ses-01" / "ieeg").glob("*_electrodes.tsv"))
    if found:
        el_path = found[0]
        etab = pd.read_csv(el_path, sep="\t")
        etab["size"] = CONTACT_SIZE_MM2
        etab["group"] = contacts.set_index("name").loc[etab["name"], "group"].to_numpy()
        etab["region"] = contacts.set_index("name").loc[etab["name"], "region"].to_numpy()
        el.write_tsv(el_path, etab)
    der = root / "derivatives" / "simulation" / f"sub-{label}"
    der.mkdir(parents=True, exist_ok=True)
    truth = der / f"sub-{label}_desc-contacts.npz"
    savez(truth, **{k: np.asarray(v) for k, v in m.items()},
             stimulus_id=np.array(ids, dtype=str),
             split=np.array(["test"] * n_test + ["train"] * (len(ids) - n_test)),
             contact_name=np.array(names, dtype=str),
             contact_group=groups.astype(str), contact_number=contacts["number"].to_numpy(),
             contact_pos_mm=contacts[["x_mm", "y_mm", "z_mm"]].to_numpy(),
             contact_region=contacts["region"].to_numpy().astype(str))
    paths = {"raw": raw_paths, "events": ev_paths, "truth": str(truth.relative_to(root))}
    if el_path is not None:
        paths["electrodes"] = str(el_path.relative_to(root))
    return {"n_trials": int(sum(d.columns.size for d in designs)), "n_contacts": len(names),
            "n_shafts": int(len(set(groups))), "n_responsive": int(m["responsive"].sum()),
            "paths": paths}
