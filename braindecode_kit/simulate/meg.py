"""Simulated MEG subjects written in real formats (FIF inside BIDS, via mne-bids).

:func:`simulate_meg` runs a THINGS-MEG-like experiment (Hebart et al. 2023), scaled
down, on a :class:`StimulusSet`: many training images shown once, a few test images
shown ``n_test_reps`` times, randomly interleaved over runs, 0.5 s per image with a
jittered gap.

The head and the sensors (no download needed)
    Real sensor geometry from :func:`mne.channels.read_meg_canonical_info` (``"ctf275"``,
    the system of THINGS-MEG, or ``"neuromag306"``), in device coordinates with an
    identity device-to-head transform; a single-sphere conductor that fits inside the
    helmet (CTF: centre (0, 0, -0.01) m, radius 0.085 m; Neuromag: (0, 0, 0), 0.085 m), a
    volume source space of the sphere on a coarse grid (``grid_mm``) and
    :func:`mne.make_forward_solution`, computed once per system and grid and cached for
    the process.
Sources (subject-specific positions and tuning)
    ``n_early`` dipoles in occipital cortex (posterior part of the sphere) respond at
    ~100 ms (gamma-shaped waveform, latency 100 +- 8 ms) with an amplitude driven by the
    low-level image features of the fMRI encoding model (:mod:`.encoding`: pRF pooling
    of Gabor-energy and colour maps, compressive exponent) on top of a mean visual
    evoked response; ``n_late`` dipoles in ventral temporal cortex respond at 180-450 ms,
    driven by the semantic features (the shared semantic mixer over the stimulus
    attributes, read out with subject-specific weights). Each trial's amplitudes vary by
    20 % (trial-to-trial variability). Orientations are tangential (radial dipoles are
    silent in a sphere).
Noise
    1/f background from 100 random dipoles with pink time courses and a posterior alpha
    (10 Hz) rhythm, white sensor noise, line noise (``line_freq`` and its third harmonic
    below Nyquist, per-sensor amplitude and phase), blinks (an EOG channel in volts,
    ~0.2 per second, with a frontal leak into the MEG sensors) and a stim channel
    (``UPPT001`` CTF / ``STI101`` Neuromag) with code 1 at ``exp`` (training) image
    onsets and 2 at ``test`` image onsets.

What is written (``out_dir``)
    * BIDS via mne-bids: ``sub-XX/ses-01/meg/sub-XX_ses-01_task-main_run-NN_meg.fif``
      (+ ``_meg.json``, ``_channels.tsv``, ``_coordsystem.json``) and ``_events.tsv``
      with ``onset, duration, trial_type (exp|test), value, sample`` plus
      ``stimulus_id``, ``repetition`` and ``split`` (``train``/``test``);
    * ``derivatives/simulation/simulation.json`` (parameters, subjects, ids, paths) and,
      per subject, ``sub-XX/sub-XX_desc-sources.npz``: the ground truth (source
      positions, orientations, regions, waveforms, leadfield, noise-free amplitudes per
      stimulus, tuning, noise model); all ``.npz`` load with ``allow_pickle=False``.

:class:`SimulatedMEG` reopens a dataset, gives the noise-free evoked responses and the
oracle (:meth:`SimulatedMEG.oracle_retrieval`).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_float, check_int, check_option
from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import atomic_dir, hash_jsonable
from . import _electro as el
from ._npz import savez

__all__ = ["simulate_meg", "SimulatedMEG", "meg_forward"]

_VERSION = 1
_TAG = {"split": 11, "mixer": 12, "subject": 13, "design": 14, "noise": 15, "oracle": 16}
SYSTEMS: dict[str, dict[str, Any]] = {
    "ctf275": {"canonical": "ctf275", "r0": (0.0, 0.0, -0.01), "radius": 0.085,
               "anterior": (1.0, 0.0, 0.0), "left": (0.0, 1.0, 0.0),
               "stim": "UPPT001", "eog": "EOG001"},
    "neuromag306": {"canonical": "neuromag", "r0": (0.0, 0.0, 0.0), "radius": 0.085,
                    "anterior": (0.0, 1.0, 0.0), "left": (-1.0, 0.0, 0.0),
                    "stim": "STI101", "eog": "EOG061"},
}
_N_NOISE_DIPOLES = 100
_RESPONSE_WINDOW = 0.8  # s of evoked response simulated after each onset
_TRIAL_SD = 0.2
_FORWARD_CACHE: dict[tuple[str, float], dict[str, Any]] = {}


# --------------------------------------------------------------------------- forward
def meg_forward(system: str = "ctf275", grid_mm: float = 15.0) -> dict[str, Any]:
    """The sensor info, sphere, source grid and free-orientation leadfield of a system.

    Computed once per ``(system, grid_mm)`` and cached for the process.

    Returns
    -------
    dict
        ``info`` (the canonical :class:`mne.Info`), ``sphere``, ``pos`` ``(P, 3)`` source
        positions (m, head = device frame), ``gain`` ``(n_channels, 3 P)`` (T or T/m per
        A m), ``r0``, ``radius``, ``anterior``, ``left``.
    """
    import mne

    check_option("system", system, tuple(SYSTEMS))
    key = (system, float(grid_mm))
    if key not in _FORWARD_CACHE:
        spec = SYSTEMS[system]
        info = mne.channels.read_meg_canonical_info(spec["canonical"])
        sphere = mne.make_sphere_model(r0=spec["r0"], head_radius=spec["radius"],
                                       verbose=False)
        src = mne.setup_volume_source_space(sphere=sphere, pos=float(grid_mm), verbose=False)
        fwd = mne.make_forward_solution(info, None, src, sphere, eeg=False, verbose=False)
        pos = fwd["source_rr"].astype(np.float64)
        _FORWARD_CACHE[key] = {
            "info": info, "sphere": sphere, "pos": pos,
            "gain": fwd["sol"]["data"].astype(np.float64),
            "ch_names": list(fwd["info"]["ch_names"]),
            "r0": np.array(spec["r0"]), "radius": spec["radius"],
            "anterior": np.array(spec["anterior"]), "left": np.array(spec["left"]),
        }
    return _FORWARD_CACHE[key]


def _frame(fw: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source coordinates along (anterior, left, up), in units of the sphere radius."""
    rel = (fw["pos"] - fw["r0"]) / fw["radius"]
    up = np.cross(fw["anterior"], fw["left"])
    return rel @ fw["anterior"], rel @ fw["left"], rel @ up


def _regions(fw: dict) -> dict[str, np.ndarray]:
    a, lft, u = _frame(fw)
    return {
        "occipital": np.flatnonzero((a < -0.45) & (u > -0.35) & (u < 0.45)),
        "ventral_temporal": np.flatnonzero((a > -0.55) & (a < 0.1) & (u < -0.05)
                                           & (np.abs(lft) > 0.2)),
        "anterior": np.flatnonzero((a > 0.55) & (u < 0.1)),
    }


def _tangential(pos: np.ndarray, r0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    radial = pos - r0
    radial /= np.linalg.norm(radial, axis=1, keepdims=True) + 1e-12
    v = rng.standard_normal(pos.shape)
    v -= (v * radial).sum(1, keepdims=True) * radial
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)


def _leadfield(gain: np.ndarray, idx: np.ndarray, ori: np.ndarray) -> np.ndarray:
    G = gain.reshape(gain.shape[0], -1, 3)[:, idx, :]  # (C, S, 3)
    return np.einsum("csk,sk->cs", G, ori)


# --------------------------------------------------------------------------- subject model
def _make_subject(fw: dict, n_early: int, n_late: int, snr: float, maps: np.ndarray,
                  latent: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    regions = _regions(fw)
    for name, n in (("occipital", n_early), ("ventral_temporal", n_late)):
        if regions[name].size < n:
            raise ValueError(
                f"The source grid has {regions[name].size} {name} points, fewer than the "
                f"{n} sources asked for; use a finer 'grid_mm'."
            )
    early = rng.choice(regions["occipital"], n_early, replace=False)
    late = rng.choice(regions["ventral_temporal"], n_late, replace=False)
    idx = np.concatenate([early, late])
    S = idx.size
    kind = np.r_[np.zeros(n_early, np.int8), np.ones(n_late, np.int8)]
    _, lft, _ = _frame(fw)
    hemi = np.sign(np.round(lft[idx], 2)).astype(np.int8)
    ori = _tangential(fw["pos"][idx], fw["r0"], rng)
    L = _leadfield(fw["gain"], idx, ori)
    tuning = el.make_tuning(kind, hemi, rng)
    drive = tuning.drive(maps, latent)
    latency = np.where(kind == 0, rng.normal(0.10, 0.008, S), rng.uniform(0.18, 0.45, S))
    width = np.where(kind == 0, rng.uniform(0.02, 0.03, S), rng.uniform(0.04, 0.08, S))
    base = np.where(kind == 0, 1.0, 0.3)
    gain = np.where(kind == 0, 0.6, 1.0)
    moment = np.where(kind == 0, 20e-9, 15e-9) * rng.uniform(0.7, 1.3, S) * snr
    amplitudes = (moment * (base + gain * drive)).astype(np.float64)  # (n_stim, S), A m
    # noise: random dipoles anywhere (pink), a posterior alpha pair, white sensor noise
    P = fw["pos"].shape[0]
    nidx = rng.choice(P, _N_NOISE_DIPOLES, replace=P < _N_NOISE_DIPOLES)
    n_topo = _leadfield(fw["gain"], nidx, _tangential(fw["pos"][nidx], fw["r0"], rng))
    a_idx = rng.choice(regions["occipital"], 2, replace=False)
    a_topo = _leadfield(fw["gain"], a_idx, _tangential(fw["pos"][a_idx], fw["r0"], rng))
    ch_types = np.array(fw["info"].get_channel_types())
    n_scale = np.ones(ch_types.size)
    for t in np.unique(ch_types):
        m = ch_types == t
        # dipole moment giving each type a median sensor sd from the background of 1;
        # the signal moments above are in A m, so scale the background the same way
        sd = np.sqrt((n_topo[m] ** 2).sum(1))
        n_scale[m] = np.median(sd)
    q_noise = 30e-9  # A m per background dipole
    white = 0.3 * q_noise * n_scale * rng.uniform(0.8, 1.2, ch_types.size)
    line_amp = 0.5 * q_noise * n_scale * rng.uniform(0.5, 1.5, ch_types.size)
    anterior = regions["anterior"]
    b_idx = anterior[np.argmin(_frame(fw)[2][anterior])] if anterior.size else int(np.argmax(
        _frame(fw)[0]))
    b_topo = _leadfield(fw["gain"], np.array([b_idx]), _tangential(
        fw["pos"][[b_idx]], fw["r0"], rng))[:, 0]
    b_topo *= 2.0 * q_noise * np.median(n_scale) / (np.abs(b_topo).max() + 1e-30) * (
        n_scale / np.median(n_scale))
    return {
        "source_index": idx, "positions": fw["pos"][idx], "orientations": ori,
        "region": np.where(kind == 0, "occipital", "ventral_temporal").astype(str),
        "kind": kind, "latency": latency, "width": width, "base": base, "gain": gain,
        "moment": moment, "leadfield": L, "amplitudes": amplitudes, "drive": drive,
        "noise_topographies": n_topo * q_noise, "alpha_topographies": a_topo * q_noise * 1.5,
        "white_sd": white, "line_amplitude": line_amp, "line_phase": rng.uniform(
            0, 2 * np.pi, ch_types.size), "blink_topography": b_topo,
        "trial_sd": np.array(_TRIAL_SD), **tuning.arrays(),
    }


def _background(m: dict, n_times: int, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Brain background + sensor noise ``(C, n_times)`` (no line noise, no blinks)."""
    from scipy.signal import butter, sosfiltfilt

    K = m["noise_topographies"].shape[1]
    x = m["noise_topographies"] @ el.pink_noise(K, n_times, sfreq, rng).astype(np.float64)
    if sfreq > 30:
        sos = butter(2, [8.5, 11.5], btype="bandpass", fs=sfreq, output="sos")
        alpha = sosfiltfilt(sos, rng.standard_normal((2, n_times)), axis=1)
        alpha /= alpha.std(axis=1, keepdims=True) + 1e-30
        x += m["alpha_topographies"] @ alpha
    x += m["white_sd"][:, None] * rng.standard_normal(x.shape)
    return x


def _waveforms(m: dict, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(round(_RESPONSE_WINDOW * sfreq))) / sfreq
    return t, el.gamma_waveform(t, m["latency"], m["width"]).astype(np.float64)


# --------------------------------------------------------------------------- result
class SimulatedMEG(el.SimulatedRecording):
    """What :func:`simulate_meg` wrote: paths, subjects, splits and the ground truth.

    Reopen a dataset with :meth:`SimulatedMEG.load`.

    Attributes
    ----------
    root : Path
        The BIDS root.
    subjects : list of str
        Subject labels (``"01"``, ...).
    info : dict
        The content of ``derivatives/simulation/simulation.json``.
    """

    kind = "meg"

    def evoked(self, subject: str | int, ids: list[str] | None = None, *,
               tmin: float = -0.1, tmax: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free evoked responses of the MEG sensors.

        Parameters
        ----------
        subject : str | int
            Subject label.
        ids : list of str | None
            Stimuli (default: the test stimuli).
        tmin, tmax : float
            Window relative to onset (s); the response is 0 before onset and after
            0.8 s.

        Returns
        -------
        evoked : np.ndarray
            ``(n, n_meg_channels, n_times)`` in T (T/m for gradiometers).
        times : np.ndarray
            ``(n_times,)`` seconds.
        """
        g = self.ground_truth(subject)
        ids = self.test_ids if ids is None else list(ids)
        pos = {s: i for i, s in enumerate(g["stimulus_id"].tolist())}
        missing = [s for s in ids if s not in pos]
        if missing:
            raise KeyError(f"stimulus ids not shown to subject {subject!r}: {missing[:5]}")
        amp = g["amplitudes"][[pos[s] for s in ids]]
        times, W = self._waveforms_in(g, tmin, tmax)
        return np.einsum("cs,ns,st->nct", g["leadfield"], amp, W, optimize=True), times

    def _waveforms_in(self, g: dict, tmin: float, tmax: float) -> tuple[np.ndarray, np.ndarray]:
        sf = self.sfreq
        times = np.arange(int(round(tmin * sf)), int(round(tmax * sf)) + 1) / sf
        W = el.gamma_waveform(times, g["latency"], g["width"]).astype(np.float64)
        W[:, times > _RESPONSE_WINDOW] = 0.0
        return times, W

    # ------------------------------------------------------------------ oracle
    def oracle_retrieval(self, subject: str | int, n_candidates: int | None = None,
                         n_draws: int = 30, seed: int = 0, k: int = 1,
                         n_reps: int | None = 1, *, tmin: float = 0.0,
                         tmax: float = 0.6) -> dict:
        """Test-image retrieval by a decoder that knows the true responses.

        For each of ``n_draws`` draws of ``n_candidates`` test stimuli, ``n_reps``
        single trials of each candidate are simulated afresh from the true generative
        model (noise-free evoked response with 20 % trial-to-trial amplitude variability,
        1/f background and sensor noise; no blinks or line noise, which preprocessing
        removes) and averaged; the average is identified by the nearest noise-free
        template after spatial whitening with the true background covariance, over
        ``tmin..tmax``. It ignores the noise's temporal correlations, so it is a strong
        reference rather than the exact Bayes bound.

        Parameters
        ----------
        subject : str | int
            Subject label.
        n_candidates : int | None
            Candidates per draw (``None``: all test stimuli).
        n_draws : int
            Draws.
        seed : int
            Random seed.
        k : int
            Top-k: a hit when the true stimulus is among the ``k`` nearest templates.
        n_reps : int | None
            Trials averaged per candidate (``None``: the simulated ``n_test_reps``).
        tmin, tmax : float
            Window (s) relative to onset.

        Returns
        -------
        dict
            ``top1`` (top-k accuracy, named as ``retrieval_accuracy`` does), ``ci``,
            ``draws``, ``chance`` (``k / n_candidates``), ``n_candidates``, ``n_draws``,
            ``n_reps``, ``k``.
        """
        return self._oracle(subject, n_candidates, n_draws, seed, k, n_reps, tmin, tmax)

    def _oracle_ranks(self, label: str, n_candidates: int, n_draws: int, seed: int,
                      n_reps: int, tmin: float, tmax: float) -> list[np.ndarray]:
        """The rank of the true stimulus among the candidates, per draw (see
        :meth:`oracle_retrieval`)."""
        g = self.ground_truth(label)
        ids = self.test_ids
        pos = {s: i for i, s in enumerate(g["stimulus_id"].tolist())}
        amp = g["amplitudes"][[pos[s] for s in ids]]
        times, W = self._waveforms_in(g, tmin, tmax)
        Lf = g["leadfield"]
        templates = np.einsum("cs,ns,st->nct", Lf, amp, W, optimize=True)
        cov = (g["noise_topographies"] @ g["noise_topographies"].T
               + g["alpha_topographies"] @ g["alpha_topographies"].T
               + np.diag(g["white_sd"] ** 2))
        evals, evecs = np.linalg.eigh(cov)
        whiten = (evecs / np.sqrt(np.maximum(evals, evals.max() * 1e-12))) @ evecs.T
        tw = np.einsum("dc,nct->ndt", whiten, templates, optimize=True).reshape(len(ids), -1)
        rng = el.rng_for(seed, _TAG["oracle"], int(label))
        T = times.size
        ranks = []
        for _ in range(n_draws):
            idx = rng.choice(len(ids), n_candidates, replace=False)
            a = amp[idx][:, None, :] * (1.0 + float(g["trial_sd"]) * rng.standard_normal(
                (n_candidates, n_reps, amp.shape[1])))
            sig = np.einsum("cs,nrs,st->nct", Lf, a, W, optimize=True) / n_reps
            bg = _background(g, n_candidates * n_reps * T, self.sfreq, rng)
            bg = bg.reshape(bg.shape[0], n_candidates, n_reps, T).mean(axis=2)
            y = sig + bg.transpose(1, 0, 2)
            yw = np.einsum("dc,nct->ndt", whiten, y, optimize=True).reshape(n_candidates, -1)
            m = tw[idx]
            d = (-2.0 * yw @ m.T) + (m ** 2).sum(1)[None, :]
            rank = (d < d[np.arange(n_candidates), np.arange(n_candidates)][:, None]).sum(1)
            ranks.append(rank)
        return ranks


# --------------------------------------------------------------------------- entry point
@fill_doc
@verbose
def simulate_meg(
    stimuli,
    out_dir: str | Path,
    n_subjects: int = 2,
    system: str = "ctf275",
    seed: int = 0,
    *,
    n_train: int = 120,
    n_test: int = 20,
    n_test_reps: int = 5,
    n_runs: int = 2,
    sfreq: float = 200.0,
    image_duration: float = 0.5,
    isi: float = 1.0,
    isi_jitter: float = 0.2,
    n_early: int = 6,
    n_late: int = 8,
    snr: float = 1.0,
    line_freq: float = 50.0,
    grid_mm: float = 15.0,
    overwrite: bool = False,
    verbose: bool | str | int | None = None,
) -> SimulatedMEG:
    """Simulate a THINGS-MEG-like experiment and write it as BIDS (FIF files).

    Parameters
    ----------
    stimuli : StimulusSet
        The images (e.g. :func:`braindecode_kit.simulate.make_world`).
    out_dir : str | Path
        The BIDS root to create.
    n_subjects : int
        Subjects (each with its own source positions, tuning and noise).
    system : "ctf275" | "neuromag306"
        The MEG system whose real sensor geometry is used.
    %(seed)s
    n_train : int
        Training images (shown once to every subject, in a subject-specific order).
    n_test : int
        Test images, each shown ``n_test_reps`` times.
    n_test_reps : int
        Presentations of each test image (THINGS-MEG: 12).
    n_runs : int
        Runs per subject (one FIF file each).
    sfreq : float
        Sampling frequency of the recordings (Hz; THINGS-MEG: 1200).
    image_duration, isi, isi_jitter : float
        Image on-screen time, mean gap and its uniform jitter (s; THINGS-MEG: 0.5, 1.0,
        0.2).
    n_early, n_late : int
        Occipital (~100 ms, low-level) and ventral temporal (180-450 ms, semantic)
        sources per subject.
    snr : float
        Scale of the source moments (1: early sources ~20 nAm against 100 background
        dipoles of 30 nAm; the 20-way single-trial oracle is then ~0.45, ~0.85 on the
        5-repetition average); ``0`` simulates no stimulus response.
    line_freq : float
        Power-line frequency (Hz).
    grid_mm : float
        Spacing of the volume source grid (mm).
    overwrite : bool
        Replace an existing ``out_dir``; without it, a dataset simulated with the same
        arguments is reopened and anything else refused.
    %(verbose)s

    Returns
    -------
    SimulatedMEG
        Paths, ids, the ground truth, :meth:`SimulatedMEG.evoked` and
        :meth:`SimulatedMEG.oracle_retrieval`.
    """
    t0 = time.perf_counter()
    ids_all = el.check_stimuli(stimuli)
    check_option("system", system, tuple(SYSTEMS))
    n_subjects = check_int("n_subjects", n_subjects, 1, 99)
    seed = check_int("seed", seed, 0)
    n_train = check_int("n_train", n_train, 1)
    n_test = check_int("n_test", n_test, 2)
    n_test_reps = check_int("n_test_reps", n_test_reps, 1)
    n_runs = check_int("n_runs", n_runs, 1)
    sfreq = check_float("sfreq", sfreq, 50.0, 5000.0)
    image_duration = check_float("image_duration", image_duration, 0.05, 5.0)
    isi = check_float("isi", isi, 0.0, 10.0)
    isi_jitter = check_float("isi_jitter", isi_jitter, 0.0, isi)
    n_early = check_int("n_early", n_early, 1)
    n_late = check_int("n_late", n_late, 1)
    snr = check_float("snr", snr, 0.0, 1000.0)
    line_freq = check_float("line_freq", line_freq, 1.0, 1000.0)
    grid_mm = check_float("grid_mm", grid_mm, 5.0, 40.0)
    if n_train + n_test * n_test_reps < n_runs:
        raise ValueError(f"'n_runs' ({n_runs}) exceeds the number of trials "
                         f"({n_train + n_test * n_test_reps}).")
    if line_freq >= sfreq / 2:
        raise ValueError(f"'line_freq' ({line_freq} Hz) must be below Nyquist "
                         f"({sfreq / 2} Hz for sfreq={sfreq}).")
    test_ids, train_ids = el.pick_ids(ids_all, n_train, n_test, seed, _TAG["split"])
    params = {"n_subjects": n_subjects, "system": system, "seed": seed, "n_train": n_train,
              "n_test": n_test, "n_test_reps": n_test_reps, "n_runs": n_runs, "sfreq": sfreq,
              "image_duration": image_duration, "isi": isi, "isi_jitter": isi_jitter,
              "n_early": n_early, "n_late": n_late, "snr": snr, "line_freq": line_freq,
              "grid_mm": grid_mm}
    used = test_ids + train_ids
    fp = getattr(stimuli, "fingerprint", None)
    config_hash = hash_jsonable({"version": _VERSION, "kind": "meg", "params": params,
                                 "ids": used, "fp": [fp(i) if fp else i for i in used]})
    out_dir = Path(out_dir)
    old = el.reuse(out_dir, config_hash, overwrite, SimulatedMEG)
    if old is not None:
        return old
    logger.info("Simulating %d MEG subjects (%s) into %s", n_subjects, system, out_dir)
    maps, latent, mixer = el.stimulus_features(stimuli, used, seed, _TAG["mixer"])
    fw = meg_forward(system, grid_mm)
    subject_info: dict[str, dict] = {}
    with atomic_dir(out_dir, kind="simulated meg dataset") as tmp:
        for s in range(n_subjects):
            label = f"{s + 1:02d}"
            subject_info[label] = _simulate_subject(
                tmp, label, s, params, fw, maps, latent, used, n_test)
        info = {"kind": "meg", "version": _VERSION, "config_hash": config_hash,
                "parameters": params, "subjects": list(subject_info), "test_ids": test_ids,
                "train_ids": train_ids, "subject_info": subject_info,
                "event_id": el.EVENT_ID}
        sim = tmp / "derivatives" / "simulation"
        sim.mkdir(parents=True, exist_ok=True)
        savez(sim / "desc-semanticmixer_model.npz", A=mixer.A, b=mixer.b,
                 input_weights=mixer.input_weights, centre=mixer.centre, scale=mixer.scale,
                 names=np.array(mixer.names, dtype=str))
        el.write_json(sim / "simulation.json", info)
    logger.info("Simulated %d MEG subjects in %.1f s", n_subjects, time.perf_counter() - t0)
    return SimulatedMEG(out_dir, info)


def _simulate_subject(root: Path, label: str, s: int, p: dict, fw: dict, maps: np.ndarray,
                      latent: np.ndarray, ids: list[str], n_test: int) -> dict:
    import mne
    import mne_bids

    seed, sfreq = p["seed"], p["sfreq"]
    rng = el.rng_for(seed, _TAG["subject"], s)
    m = _make_subject(fw, p["n_early"], p["n_late"], p["snr"], maps, latent, rng)
    designs = el.make_design(n_test, len(ids) - n_test, p["n_test_reps"], p["n_runs"],
                             p["image_duration"], p["isi"], p["isi_jitter"],
                             el.rng_for(seed, _TAG["design"], s))
    tables = el.trial_tables(designs, ids, n_test)
    _, W = _waveforms(m, sfreq)
    spec = SYSTEMS[p["system"]]
    meg_info = fw["info"].copy()
    raws_paths, ev_paths = [], []
    nrng = el.rng_for(seed, _TAG["noise"], s)
    for d, table in zip(designs, tables, strict=True):
        n = int(np.ceil(d.duration * sfreq))
        x = _background(m, n, sfreq, nrng)
        tt = np.arange(n) / sfreq
        for h in (1, 3):
            if h * p["line_freq"] < sfreq / 2:
                x += (m["line_amplitude"][:, None] / h) * np.sin(
                    2 * np.pi * h * p["line_freq"] * tt[None, :] + m["line_phase"][:, None])
        blinks = el.blink_times(d.duration, 0.2, nrng)
        eog = el.blink_trace(n, sfreq, blinks, nrng, 150e-6)
        x += np.outer(m["blink_topography"], eog / 150e-6)
        eog = eog + 5e-6 * nrng.standard_normal(n)
        amp = m["amplitudes"][d.columns] * (1.0 + _TRIAL_SD * nrng.standard_normal(
            (d.columns.size, m["kind"].size)))
        T = W.shape[1]
        for o, a in zip(d.onsets, amp, strict=True):
            i = int(round(o * sfreq))
            j = min(n, i + T)
            x[:, i:j] += (m["leadfield"] @ (a[:, None] * W))[:, : j - i]
        stim = el.stim_trace(n, sfreq, d.onsets, table["value"].to_numpy())
        info = mne.create_info(list(meg_info["ch_names"]) + [spec["stim"], spec["eog"]], sfreq,
                               list(meg_info.get_channel_types()) + ["stim", "eog"])
        with info._unlock():
            for k, ch in enumerate(meg_info["chs"]):
                info["chs"][k].update({key: ch[key] for key in (
                    "loc", "coil_type", "kind", "unit", "coord_frame", "cal", "range")})
            info["dev_head_t"] = meg_info["dev_head_t"]
            info["line_freq"] = p["line_freq"]
            info["lowpass"] = sfreq / 2
        raw = mne.io.RawArray(np.vstack([x, stim[None], eog[None]]), info, verbose=False)
        del x
        raw.set_meas_date(datetime.datetime(2020, 1, 1 + s % 28, 9, tzinfo=datetime.timezone.utc)
                          + datetime.timedelta(hours=d.run))
        scratch = root / ".scratch"
        scratch.mkdir(exist_ok=True)
        single = scratch / f"sub-{label}_run-{d.run:02d}_raw.fif"
        raw.save(single, fmt="single", overwrite=True, verbose=False)  # float32 on disk
        raw = mne.io.read_raw_fif(single, verbose=False)
        ev = np.column_stack([np.round(d.onsets * sfreq).astype(int), np.zeros(len(d.onsets),
                                                                               int),
                              table["value"].to_numpy(int)])
        bp = mne_bids.BIDSPath(subject=label, session="01", task="main", run=f"{d.run:02d}",
                               datatype="meg", root=root)
        mne_bids.write_raw_bids(raw, bp, events=ev, event_id=el.EVENT_ID, format="FIF",
                                allow_preload=True, overwrite=True, verbose=False)
        ev_path = bp.copy().update(suffix="events", extension=".tsv").fpath
        table = table.assign(duration=p["image_duration"])
        el.fix_events_tsv(Path(ev_path), table)
        del raw
        single.unlink()
        raws_paths.append(str(Path(bp.fpath).relative_to(root)))
        ev_paths.append(str(Path(ev_path).relative_to(root)))
    (root / ".scratch").rmdir()
    der = root / "derivatives" / "simulation" / f"sub-{label}"
    der.mkdir(parents=True, exist_ok=True)
    truth = der / f"sub-{label}_desc-sources.npz"
    savez(truth, **{k: np.asarray(v) for k, v in m.items()},
             stimulus_id=np.array(ids, dtype=str),
             split=np.array(["test"] * n_test + ["train"] * (len(ids) - n_test)),
             ch_names=np.array(meg_info["ch_names"], dtype=str))
    return {"n_trials": int(sum(d.columns.size for d in designs)),
            "n_channels": len(meg_info["ch_names"]),
            "stim_channel": spec["stim"], "eog_channel": spec["eog"],
            "paths": {"raw": raws_paths, "events": ev_paths,
                      "truth": str(truth.relative_to(root))}}
