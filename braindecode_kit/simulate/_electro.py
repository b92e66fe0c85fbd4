"""Shared parts of the MEG and sEEG simulators: the THINGS-like design, the stimulus
drive of each simulated source (from the features the fMRI encoding model uses), the
evoked waveforms and the 1/f background.

Private to :mod:`braindecode_kit.simulate`; :mod:`.meg` and :mod:`.seeg` use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_int
from .._logging import logger
from .._utils import json_default
from ..evaluate.retrieval import draw_ci
from . import encoding as enc
from ._npz import loadz

N_LATENT = 48
#: Trigger codes written on the stim channel (THINGS-MEG's trial types).
EVENT_ID = {"exp": 1, "test": 2}


def rng_for(seed: int, tag: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(tag), *[int(m) for m in more]])


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=json_default) + "\n", encoding="utf-8")


def write_tsv(path: Path, df: pd.DataFrame) -> None:
    df.to_csv(path, sep="\t", index=False, lineterminator="\n", na_rep="n/a")


# --------------------------------------------------------------------------- design
@dataclass
class RunDesign:
    """One run: which stimulus (column of the subject's stimulus list) at which onset."""

    run: int  # 1-based
    columns: np.ndarray  # index into [test ids..., train ids...]
    onsets: np.ndarray  # seconds from the start of the run
    repetition: np.ndarray
    duration: float  # seconds of recording


def make_design(n_test: int, n_train: int, n_test_reps: int, n_runs: int,
                image_duration: float, isi: float, isi_jitter: float,
                rng: np.random.Generator, lead_in: float = 2.0, tail: float = 2.0
                ) -> list[RunDesign]:
    """THINGS-MEG's design, scaled down: training images once, test images ``n_test_reps``
    times, randomly interleaved and split into runs; onset asynchrony =
    ``image_duration + isi +- isi_jitter`` (uniform)."""
    cols = np.concatenate([np.repeat(np.arange(n_test), n_test_reps),
                           n_test + np.arange(n_train)])
    cols = cols[rng.permutation(cols.size)]
    seen: dict[int, int] = {}
    rep = np.empty(cols.size, np.int64)
    for t, c in enumerate(cols):
        rep[t] = seen.get(int(c), 0)
        seen[int(c)] = int(rep[t]) + 1
    runs = []
    for r, idx in enumerate(np.array_split(np.arange(cols.size), n_runs), start=1):
        soa = image_duration + isi + rng.uniform(-isi_jitter, isi_jitter, idx.size)
        onsets = lead_in + np.concatenate([[0.0], np.cumsum(soa[:-1])])
        runs.append(RunDesign(r, cols[idx], np.round(onsets, 4), rep[idx],
                              float(onsets[-1] + soa[-1] + tail)))
    return runs


# --------------------------------------------------------------------------- stimulus drive
def stimulus_features(stimuli, ids: list[str], seed: int, tag: int):
    """Low-level maps and the latent semantic features of the stimuli (the fMRI
    encoding model's features), plus the shared semantic mixer."""
    maps, X, names, in_w = enc.stimulus_features(stimuli, ids)
    mixer = enc.make_semantic_mixer(names, in_w, X, rng_for(seed, tag), n_latent=N_LATENT)
    return maps, mixer.transform(X), mixer


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    sd = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


@dataclass
class SourceTuning:
    """Per-source tuning to the stimuli (``n_sources`` rows): low-level sources pool the
    feature maps through a Gaussian pRF (CSS exponent), semantic ones read the shared
    latent features through a softplus; the drive is standardised over the stimuli."""

    kind: np.ndarray  # 0 low-level, 1 semantic
    prf_x: np.ndarray
    prf_y: np.ndarray
    prf_sigma: np.ndarray
    exponent: np.ndarray
    channel_weights: np.ndarray  # (S, C)
    semantic_weights: np.ndarray  # (S, k)

    def drive(self, maps: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """``(n_stimuli, n_sources)`` standardised stimulus drive."""
        n, C = maps.shape[:2]
        S = self.kind.size
        out = np.zeros((n, S), np.float32)
        low = np.flatnonzero(self.kind == 0)
        if low.size:
            w = enc.prf_weights(self.prf_x[low], self.prf_y[low], self.prf_sigma[low])
            pooled = np.einsum("ncp,sp->nsc", maps.reshape(n, C, -1), w)  # (n, s, C)
            d = np.einsum("nsc,sc->ns", pooled, self.channel_weights[low])
            out[:, low] = _standardise(np.maximum(d, 0) ** self.exponent[low])
        sem = np.flatnonzero(self.kind == 1)
        if sem.size:
            z = latent @ self.semantic_weights[sem].T
            out[:, sem] = _standardise(np.logaddexp(0.0, z))
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"tuning_{k}": v for k, v in self.__dict__.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SourceTuning:
        return cls(**{k.removeprefix("tuning_"): v for k, v in arrays.items()
                      if k.startswith("tuning_")})


def make_tuning(kind: np.ndarray, hemi_sign: np.ndarray, rng: np.random.Generator
                ) -> SourceTuning:
    """Tuning of sources of ``kind`` (0 low-level, 1 semantic); ``hemi_sign`` +1 for a
    left-hemisphere source (it sees the right visual field), -1 right, 0 midline."""
    S = kind.size
    ecc = rng.uniform(0.5, 3.5, S)
    ang = rng.uniform(-np.pi / 2, np.pi / 2, S)
    x = np.abs(ecc * np.cos(ang)) * np.where(hemi_sign == 0, rng.choice([-1, 1], S), hemi_sign)
    y = ecc * np.sin(ang)
    sigma = np.where(kind == 0, 0.4 + 0.3 * ecc, 2.0 + rng.uniform(0, 2, S))
    return SourceTuning(
        kind=kind.astype(np.int8), prf_x=x.astype(np.float32), prf_y=y.astype(np.float32),
        prf_sigma=sigma.astype(np.float32),
        exponent=rng.uniform(0.3, 0.6, S).astype(np.float32),
        channel_weights=rng.gamma(2.0, 0.5, (S, len(enc.CHANNELS))).astype(np.float32),
        semantic_weights=(rng.standard_normal((S, N_LATENT)) / math.sqrt(N_LATENT)
                          ).astype(np.float32),
    )


# --------------------------------------------------------------------------- waveforms, noise
def gamma_waveform(t: np.ndarray, latency: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``(S, T)`` gamma-shaped bumps, 0 before onset, peak 1 at ``latency`` s."""
    t = np.asarray(t, np.float64)[None, :]
    lat = np.asarray(latency, np.float64)[:, None]
    k = (lat / np.asarray(width, np.float64)[:, None]) ** 2
    x = np.clip(t / lat, 1e-12, None)
    w = np.where(t > 0, np.exp(k * (np.log(x) + 1.0 - x)), 0.0)
    return w.astype(np.float32)


def spectral_noise(n_signals: int, n_times: int, sfreq: float, rng: np.random.Generator,
                   gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``(n_signals, n_times)`` unit-variance Gaussian noise whose amplitude spectrum is
    ``gain(f)`` (``f``: the rfft frequencies in Hz), drawn in the frequency domain.

    Drawn at the next FFT-friendly length and cut to ``n_times`` (the noise is
    stationary, so the cut has the same spectrum): an inverse FFT of a length with a
    large prime factor is ten times slower. float64.
    """
    from scipy.fft import next_fast_len

    m = next_fast_len(int(n_times), real=True)
    f = np.fft.rfftfreq(m, 1.0 / sfreq)
    spec = rng.standard_normal((n_signals, f.size)) + 1j * rng.standard_normal(
        (n_signals, f.size))
    spec *= np.asarray(gain(f))[None, :]
    x = np.fft.irfft(spec, n=m, axis=1)[:, :n_times]
    return x / (x.std(axis=1, keepdims=True) + 1e-30)


def pink_noise(n_signals: int, n_times: int, sfreq: float, rng: np.random.Generator,
               exponent: float = 1.0, f_min: float = 0.5) -> np.ndarray:
    """``(n_signals, n_times)`` unit-variance noise with a ``1/f**exponent`` power
    spectrum above ``f_min`` Hz (flat below), no DC (see :func:`spectral_noise`)."""

    def gain(f):
        g = np.maximum(f, f_min) ** (-exponent / 2.0)
        g[0] = 0.0
        return g

    return spectral_noise(n_signals, n_times, sfreq, rng, gain).astype(np.float32)


def blink_times(duration: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Blink onsets (s): a Poisson process of ``rate`` per second, at least 1 s apart."""
    n = rng.poisson(rate * duration)
    t = np.sort(rng.uniform(0.5, max(0.6, duration - 1.0), n))
    if t.size:
        keep = np.concatenate([[True], np.diff(t) > 1.0])
        t = t[keep]
    return t


def blink_trace(n_times: int, sfreq: float, onsets: np.ndarray, rng: np.random.Generator,
                amplitude: float) -> np.ndarray:
    """A vertical-EOG-like trace: ~300 ms monophasic blinks of ``amplitude`` (+- 30 %)."""
    out = np.zeros(n_times, np.float32)
    tt = np.arange(int(0.4 * sfreq)) / sfreq
    shape = np.sin(np.pi * tt / tt[-1]) ** 2 if tt.size > 1 else np.ones(1)
    for o in onsets:
        i = int(round(o * sfreq))
        j = min(n_times, i + shape.size)
        out[i:j] += amplitude * (1.0 + 0.3 * rng.standard_normal()) * shape[: j - i]
    return out


def trial_tables(designs: list[RunDesign], ids: list[str], n_test: int) -> list[pd.DataFrame]:
    """One events table per run (``onset``, ``duration``, ``trial_type``, ``value``,
    ``stimulus_id``, ``repetition``, ``split``), before the sample column is added."""
    out = []
    for d in designs:
        test = d.columns < n_test
        out.append(pd.DataFrame({
            "onset": d.onsets,
            "trial_type": np.where(test, "test", "exp"),
            "value": np.where(test, EVENT_ID["test"], EVENT_ID["exp"]),
            "stimulus_id": [ids[int(c)] for c in d.columns],
            "repetition": d.repetition,
            "split": np.where(test, "test", "train"),
        }))
    return out


def stim_trace(n_times: int, sfreq: float, onsets: np.ndarray, values: np.ndarray,
               width: float = 0.01) -> np.ndarray:
    """A trigger channel: ``values`` held for ``width`` s from each onset."""
    out = np.zeros(n_times, np.float32)
    w = max(1, int(round(width * sfreq)))
    for o, v in zip(onsets, values, strict=True):
        i = int(round(o * sfreq))
        out[i:i + w] = v
    return out


# --------------------------------------------------------------------------- writing
def check_stimuli(stimuli: Any) -> list[str]:
    for attr in ("ids", "load_image", "attributes"):
        if not hasattr(stimuli, attr):
            raise TypeError(
                f"'stimuli' must be a StimulusSet (with ids, load_image and attributes), but "
                f"got {type(stimuli).__name__}.")
    ids = [str(i) for i in stimuli.ids]
    if len(set(ids)) != len(ids):
        raise ValueError("'stimuli' has duplicate ids.")
    return ids


def pick_ids(ids_all: list[str], n_train: int, n_test: int, seed: int, tag: int
              ) -> tuple[list[str], list[str]]:
    need = n_train + n_test
    if need > len(ids_all):
        raise ValueError(
            f"Not enough stimuli: n_train + n_test = {n_train} + {n_test} = {need} distinct "
            f"images are needed, but 'stimuli' has {len(ids_all)}.")
    perm = rng_for(seed, tag).permutation(len(ids_all))
    return [ids_all[i] for i in np.sort(perm[:n_test])], [ids_all[i] for i in
                                                          np.sort(perm[n_test:need])]


def reuse(out_dir: Path, config_hash: str, overwrite: bool, cls):
    if out_dir.exists() and any(out_dir.iterdir()):
        manifest = out_dir / "derivatives" / "simulation" / "simulation.json"
        if not overwrite:
            if manifest.is_file():
                try:
                    old = json.loads(manifest.read_text(encoding="utf-8"))
                except ValueError:
                    old = {}
                if old.get("config_hash") == config_hash:
                    logger.info("Reusing the simulated dataset at %s (same arguments).",
                                out_dir)
                    return cls(out_dir, old)
            raise FileExistsError(
                f"'out_dir' {out_dir} exists and is not a dataset simulated with these "
                f"arguments; pass overwrite=True to replace it.")
    return None


def fix_events_tsv(path: Path, table: pd.DataFrame) -> None:
    """Add the stimulus columns to the events.tsv mne-bids wrote (same rows, same order)."""
    ev = pd.read_csv(path, sep="\t")
    ev = ev[ev["trial_type"].isin(set(table["trial_type"]))].reset_index(drop=True)
    if len(ev) != len(table) or not np.allclose(ev["onset"].to_numpy(float),
                                                table["onset"].to_numpy(float), atol=1e-2):
        raise RuntimeError(f"{path}: mne-bids wrote {len(ev)} events, expected {len(table)}.")
    for col in ("duration", "stimulus_id", "repetition", "split"):
        ev[col] = table[col].to_numpy()
    write_tsv(path, ev)
    side = path.with_suffix(".json")
    desc = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    desc.update({
        "stimulus_id": {"Description": "Identifier of the image shown (StimulusSet id)."},
        "repetition": {"Description": "0-based count of earlier presentations of the image."},
        "split": {"Description": "train (shown once) or test (shown repeatedly)."},
    })
    write_json(side, desc)


# --------------------------------------------------------------------------- result
class SimulatedRecording:
    """A simulated MEG or sEEG dataset (the shared part of SimulatedMEG/SimulatedSEEG).

    Attributes
    ----------
    root : Path
        The BIDS root.
    subjects : list of str
        Subject labels (``"01"``, ...).
    info : dict
        The content of ``derivatives/simulation/simulation.json``.
    """

    kind = ""
    _manifest = "simulation.json"

    def __init__(self, root: str | Path, info: dict) -> None:
        self.root = Path(root)
        self.info = info
        self.subjects: list[str] = list(info["subjects"])

    def _oracle(self, subject: str | int, n_candidates: int | None, n_draws: int, seed: int,
                k: int, n_reps: int | None, tmin: float, tmax: float) -> dict:
        """:meth:`oracle_retrieval` of either kind: the arguments checked, the per-draw
        ranks of :meth:`_oracle_ranks` computed once per draw set (top-1 and top-k of the
        same draws share one simulation; the dataset on disk never changes under this
        object) and summarised for ``k``."""
        label = self._label(subject)
        ids = self.test_ids
        n_candidates = len(ids) if n_candidates is None else check_int(
            "n_candidates", n_candidates, 2, len(ids))
        n_draws = check_int("n_draws", n_draws, 1)
        k = check_int("k", k, 1, n_candidates)
        n_reps = (int(self.info["parameters"]["n_test_reps"]) if n_reps is None
                  else check_int("n_reps", n_reps, 1))
        key = (label, n_candidates, n_draws, seed, n_reps, float(tmin), float(tmax))
        cache = self.__dict__.setdefault("_oracle_cache", {})
        if key not in cache:
            cache[key] = self._oracle_ranks(*key)
        return summarise_draws([float(np.mean(r < k)) for r in cache[key]], k, n_candidates,
                               n_draws, n_reps)

    def _oracle_ranks(self, label: str, n_candidates: int, n_draws: int, seed: int,
                      n_reps: int, tmin: float, tmax: float) -> list[np.ndarray]:
        """The rank of the true stimulus among the candidates, per draw."""
        raise NotImplementedError  # pragma: no cover - each kind's simulator

    @classmethod
    def load(cls, root: str | Path):
        """Reopen a dataset written by the simulator."""
        root = Path(root)
        path = root / "derivatives" / "simulation" / cls._manifest
        if not path.is_file():
            raise FileNotFoundError(
                f"{root} is not a simulated {cls.kind} dataset: {path} does not exist.")
        info = json.loads(path.read_text(encoding="utf-8"))
        if info.get("kind") != cls.kind:
            raise ValueError(f"{root} holds a simulated {info.get('kind')!r} dataset, "
                             f"expected {cls.kind!r}.")
        return cls(root, info)

    # ------------------------------------------------------------------ facts
    @property
    def sfreq(self) -> float:
        """Sampling frequency of the recordings (Hz)."""
        return float(self.info["parameters"]["sfreq"])

    @property
    def test_ids(self) -> list[str]:
        """Test stimulus ids (shown ``n_test_reps`` times to every subject)."""
        return list(self.info["test_ids"])

    @property
    def train_ids(self) -> list[str]:
        """Training stimulus ids (shown once to every subject)."""
        return list(self.info["train_ids"])

    def _label(self, subject: str | int) -> str:
        label = f"{int(subject):02d}" if isinstance(subject, (int, np.integer)) else str(subject)
        label = label.removeprefix("sub-")
        if label not in self.subjects:
            raise ValueError(
                f"Invalid value for the 'subject' parameter. Allowed values are "
                f"{', '.join(map(repr, self.subjects))}, but got {subject!r} instead.")
        return label

    def paths(self, subject: str | int) -> dict[str, Any]:
        """Absolute paths of one subject's files: ``raw`` and ``events`` (lists in run
        order), ``truth`` (the ground-truth ``.npz``)."""
        p = self.info["subject_info"][self._label(subject)]["paths"]
        return {k: [self.root / x for x in v] if isinstance(v, list) else self.root / v
                for k, v in p.items()}

    def ground_truth(self, subject: str | int) -> dict[str, np.ndarray]:
        """The subject's ground-truth arrays (``desc-sources.npz``)."""
        return loadz(self.paths(subject)["truth"])

    def events(self, subject: str | int) -> list[pd.DataFrame]:
        """The BIDS events tables of the subject's runs."""
        return [pd.read_csv(p, sep="\t") for p in self.paths(subject)["events"]]

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        p = self.info["parameters"]
        return (f"<{type(self).__name__} | {len(self.subjects)} subjects, "
                f"{len(self.train_ids)} train images x 1, {len(self.test_ids)} test images x "
                f"{p['n_test_reps']}, {p['sfreq']} Hz, root={self.root}>")


def summarise_draws(draws: list[float], k: int, n_candidates: int, n_draws: int,
                    n_reps: int) -> dict:
    """The oracle's result dict (as ``retrieval_accuracy``'s): mean, 95 % CI, draws."""
    arr = np.asarray(draws, np.float64)
    top = float(arr.mean())
    # over draws the normal interval, one draw its Wilson interval (never zero-width)
    return {"top1": top, "ci": draw_ci(arr, n_candidates), "draws": [float(d) for d in draws],
            "chance": k / n_candidates, "n_candidates": int(n_candidates),
            "n_draws": int(n_draws), "n_reps": int(n_reps), "k": int(k),
            "direction": "brain->image"}
