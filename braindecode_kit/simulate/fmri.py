"""Simulated fMRI subjects written in real formats (BIDS + the NSD layout).

:func:`simulate_fmri` runs a simulated NSD-like experiment on a :class:`StimulusSet`:
several subjects, each with its own anatomy (a brain mask of a few thousand 1.8 mm
voxels, different per subject, with early visual, higher visual and non-visual regions),
its own voxel-wise encoding model (:mod:`braindecode_kit.simulate.encoding`) and noise
(:mod:`braindecode_kit.simulate.noise`), viewing a shared test set repeated across
sessions plus subject-specific training images, as in NSD (Allen et al. 2022).

The design (NSD's, scaled down)
    Each trial shows one image for 3 s followed by a 1 s gap; about one slot in six is a
    blank trial (jitter, as NSD's blank trials); runs of ``trials_per_run`` image trials
    start after 6 s of rest and end with 16 s of rest; runs are grouped into sessions.
    All subjects follow the same trial order (NSD's ``masterordering``): shared test
    images repeated ``n_test_reps`` times, training images ``n_train_reps`` times,
    randomly interleaved across sessions.
BOLD
    Trial responses (noise-free response + trial-to-trial variability, in percent signal
    change) are convolved with nilearn's Glover HRF for a 3 s boxcar (each trial's
    regressor normalised to peak 1, GLMsingle's convention, so betas are peak percent
    signal change), plus cosine drift, AR(1) noise and a run-specific baseline, scaled by
    each voxel's baseline intensity (a few hundred to a few thousand) and stored as int16
    (scanner units). Voxels outside the brain mask are 0 (skull-stripped data).

What is written (``root``)
    * ``dataset_description.json``, ``participants.tsv``, ``README``;
    * ``sub-XX/ses-YY/func/sub-XX_ses-YY_task-images_run-ZZ_bold.nii.gz`` (+ ``_bold.json``
      with ``RepetitionTime``/``TaskName`` and ``_events.tsv`` with ``onset``,
      ``duration``, ``trial_type`` (``"image"``), ``stimulus_id``, ``repetition``
      (0-based count of earlier presentations of that image to that subject), ``split``
      (``"train"``/``"test"``));
    * ``derivatives/simulation/``: ``atlas-visual_dseg.tsv`` (1 early_visual, 2
      higher_visual, 3 non_visual), ``simulation.json`` (what was simulated, read by
      :meth:`SimulatedFMRI.load`), ``desc-semanticmixer_model.npz`` (shared), and per
      subject ``sub-XX/anat/sub-XX_desc-brain_mask.nii.gz``,
      ``sub-XX/anat/sub-XX_atlas-visual_dseg.nii.gz``, ``sub-XX/anat/sub-XX_desc-ncsnr_map.nii.gz``,
      ``sub-XX/sub-XX_desc-truebetas.npz`` (noise-free response per stimulus x voxel),
      ``sub-XX/sub-XX_desc-trialbetas.npz`` (each trial's true amplitude, i.e. what an
      unbiased GLM recovers), ``sub-XX/sub-XX_desc-encoding_model.npz`` + ``.json``. All
      ``.npz`` load with ``allow_pickle=False``; voxel order is ``np.argwhere(mask)`` (C
      order), stored as ``ijk``.
    * with ``nsd_layout=True``, ``derivatives/nsd/``: ``nsddata/ppdata/subjNN/func1pt8mm/
      roi/nsdgeneral.nii.gz`` (1 nsdgeneral = visual, 0 other brain, -1 outside),
      ``.../func1pt8mm/brainmask.nii.gz``, ``nsddata_betas/ppdata/subjNN/func1pt8mm/
      betas_fithrf_GLMdenoise_RR/betas_sessionNN.hdf5`` (``betas``: int16 = percent
      signal change x 300, shape ``(n_trials_in_session, Z, Y, X)`` as NSD's files read
      in h5py, chunked per voxel; single-trial least-squares estimates from the simulated
      BOLD with the true HRF and a cosine drift basis, a simple stand-in for GLMsingle),
      ``nsddata/experiments/nsd/nsd_expdesign.mat`` (``masterordering``, ``subjectim``,
      ``sharedix``, 1-based, shared images first) and ``nsd_stim_info_merged.csv``
      (``nsdId`` 0-based -> ``stimulus_id``). Sessions hold ``n_trials / n_sessions``
      trials (NSD: 750), in ``masterordering`` order.

Everything is written into a temporary folder renamed onto ``out_dir`` at the end (a
killed run leaves nothing half-written), and the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_float, check_int
from .._docs import fill_doc
from .._logging import logger, progress, verbose
from .._readers import file_fingerprint
from .._utils import atomic_dir, hash_jsonable, json_default
from . import encoding as enc
from ._npz import savez
from .noise import (
    N_FACTORS,
    NSD_MEDIAN_NCSNR,
    cosine_drift,
    gls_variance_factor,
    make_noise_model,
    target_ncsnr,
)
from .oracle import identification_oracle, ncsnr

__all__ = ["simulate_fmri", "SimulatedFMRI"]

_VERSION = 1
VOXEL_MM = 1.8
STIM_DURATION = 3.0
ISI = 1.0
LEAD_IN = 6.0
TAIL = 16.0
ROI_NAMES = {1: "early_visual", 2: "higher_visual", 3: "non_visual"}
_VISUAL_FRACTION = 0.75  # of brain voxels
_EARLY_FRACTION = 0.45  # of visual voxels
_N_LATENT = 48
_HIGH_PASS = 1.0 / 128
_TAGS = {"split": 1, "schedule": 2, "mixer": 3, "subject": 4, "oracle": 5}


# --------------------------------------------------------------------------- helpers
def _rng(seed: int, tag: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _TAGS[tag], *[int(m) for m in more]])


def _save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, tr: float | None = None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    hdr.set_data_dtype(data.dtype)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if tr is not None:
        hdr.set_zooms((VOXEL_MM, VOXEL_MM, VOXEL_MM, float(tr)))
    hdr.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))


def _tsv(path: Path, df: pd.DataFrame) -> None:
    df.to_csv(path, sep="\t", index=False, lineterminator="\n", na_rep="n/a")


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n",
                    encoding="utf-8")


# --------------------------------------------------------------------------- design
@dataclass
class _Run:
    session: int  # 1-based
    run: int  # 1-based within session
    trials: np.ndarray  # indices into the master order
    onsets: np.ndarray
    n_scans: int


@dataclass
class _Schedule:
    columns: np.ndarray  # (T,) 0-based column of subjectim per trial (master order)
    repetition: np.ndarray  # (T,)
    session: np.ndarray  # (T,) 1-based
    runs: list[_Run]


def _make_schedule(n_test: int, n_train: int, n_test_reps: int, n_train_reps: int,
                   n_sessions: int | None, trials_per_run: int, blank_fraction: float,
                   tr: float, seed: int) -> _Schedule:
    rng = _rng(seed, "schedule")
    cols = np.concatenate([np.repeat(np.arange(n_test), n_test_reps),
                           np.repeat(n_test + np.arange(n_train), n_train_reps)])
    cols = cols[rng.permutation(cols.size)]
    T = cols.size
    if n_sessions is None:
        n_sessions = max(2, math.ceil(T / 800))
    if n_sessions > T:
        raise ValueError(f"'n_sessions' ({n_sessions}) exceeds the number of trials ({T}).")
    seen: dict[int, int] = {}
    rep = np.empty(T, np.int64)
    for t, c in enumerate(cols):
        rep[t] = seen.get(int(c), 0)
        seen[int(c)] = rep[t] + 1
    session = np.empty(T, np.int64)
    runs: list[_Run] = []
    soa = STIM_DURATION + ISI
    for s, idx in enumerate(np.array_split(np.arange(T), n_sessions), start=1):
        session[idx] = s
        n_runs = max(1, math.ceil(idx.size / trials_per_run))
        for r, ridx in enumerate(np.array_split(idx, n_runs), start=1):
            k = ridx.size
            n_blank = int(round(k * blank_fraction))
            slots = k + n_blank
            blank = np.zeros(slots, bool)
            if n_blank:
                blank[1 + rng.choice(slots - 1, size=n_blank, replace=False)] = True
            slot_idx = np.flatnonzero(~blank)
            onsets = LEAD_IN + slot_idx * soa
            n_scans = int(math.ceil((LEAD_IN + slots * soa + TAIL) / tr))
            runs.append(_Run(s, r, ridx, onsets.astype(np.float64), n_scans))
    return _Schedule(cols, rep, session, runs)


_KERNEL_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _hrf_kernel() -> tuple[np.ndarray, np.ndarray]:
    """Response to one 3 s image (nilearn's Glover HRF), on a 10 ms grid, peak 1."""
    if "glover" not in _KERNEL_CACHE:
        from nilearn.glm.first_level import compute_regressor

        dt = 0.01
        t = np.arange(0.0, 45.0, dt)
        reg, _ = compute_regressor(np.array([[0.0], [STIM_DURATION], [1.0]]), "glover", t,
                                   oversampling=1)
        k = reg[:, 0]
        _KERNEL_CACHE["glover"] = (t, k / k.max())
    return _KERNEL_CACHE["glover"]


def _run_design(run: _Run, tr: float) -> tuple[np.ndarray, np.ndarray]:
    """Trial regressors ``(n_scans, k)`` (peak 1) and drift basis ``(n_scans, q)``."""
    t, k = _hrf_kernel()
    ft = np.arange(run.n_scans) * tr
    X = np.stack([np.interp(ft - o, t, k, left=0.0, right=0.0) for o in run.onsets], axis=1)
    return X, cosine_drift(ft, _HIGH_PASS)


# --------------------------------------------------------------------------- anatomy
@dataclass
class _Anatomy:
    mask: np.ndarray  # 3-D bool
    dseg: np.ndarray  # 3-D int16 (0 outside, 1..3)
    affine: np.ndarray
    ijk: np.ndarray  # (V, 3)
    roi: np.ndarray  # (V,)


def _make_anatomy(n_visual: int, rng: np.random.Generator) -> _Anatomy:
    from scipy import ndimage

    n_brain = n_visual * math.exp(0.15 * rng.standard_normal()) / _VISUAL_FRACTION
    ratios = np.array([1.0, 1.3, 0.85]) * np.exp(0.05 * rng.standard_normal(3))
    scale = (n_brain / (4.0 / 3.0 * math.pi * ratios.prod())) ** (1.0 / 3.0)
    axes = ratios * scale
    shape = tuple(int(math.ceil(2 * a)) + 3 for a in axes)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    centre = (np.array(shape) - 1) / 2.0
    r = np.sqrt((((grid - centre) / axes) ** 2).sum(-1))
    bump = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0, mode="nearest")
    bump /= bump.std() + 1e-12
    mask = r < 1.0 + 0.06 * bump
    ijk = np.argwhere(mask)
    V = ijk.shape[0]
    y = (ijk[:, 1] - centre[1]) / axes[1]
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5, mode="nearest")
    field /= field.std() + 1e-12
    score = y + 0.08 * field[mask]  # posterior first
    order = np.argsort(score, kind="stable")
    n_vis = int(round(_VISUAL_FRACTION * V))
    n_early = int(round(_EARLY_FRACTION * n_vis))
    roi = np.full(V, 3, np.int8)
    roi[order[:n_early]] = 1
    roi[order[n_early:n_vis]] = 2
    dseg = np.zeros(shape, np.int16)
    dseg[mask] = roi
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -VOXEL_MM * centre
    return _Anatomy(mask, dseg, affine, ijk, roi)


# --------------------------------------------------------------------------- the result
class SimulatedFMRI:
    """What :func:`simulate_fmri` wrote: paths, subjects, splits and the ground truth.

    Reopen a simulated dataset with :meth:`SimulatedFMRI.load`.

    Attributes
    ----------
    root : Path
        The BIDS root.
    subjects : list of str
        Subject labels (``"01"``, ``"02"``, ...).
    info : dict
        The content of ``derivatives/simulation/simulation.json``.
    """

    def __init__(self, root: str | Path, info: dict) -> None:
        self.root = Path(root)
        self.info = info
        self.subjects: list[str] = list(info["subjects"])

    # ------------------------------------------------------------------ opening
    @classmethod
    def load(cls, root: str | Path) -> SimulatedFMRI:
        """Reopen a dataset written by :func:`simulate_fmri`."""
        root = Path(root)
        path = root / "derivatives" / "simulation" / "simulation.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{root} is not a simulated fMRI dataset: {path} does not exist."
            )
        from .._readers import read_json

        return cls(root, read_json(path, "simulation description"))

    # ------------------------------------------------------------------ facts
    @property
    def tr(self) -> float:
        """Repetition time (s)."""
        return float(self.info["parameters"]["tr"])

    @property
    def sim_dir(self) -> Path:
        return self.root / "derivatives" / "simulation"

    def _sub(self, subject: str | int) -> dict:
        label = f"{int(subject):02d}" if isinstance(subject, (int, np.integer)) else str(subject)
        label = label.removeprefix("sub-")
        if label not in self.info["subject_info"]:
            raise ValueError(
                f"Invalid value for the 'subject' parameter. Allowed values are "
                f"{', '.join(map(repr, self.subjects))}, but got {subject!r} instead."
            )
        return self.info["subject_info"][label] | {"label": label}

    def paths(self, subject: str | int) -> dict[str, Any]:
        """Absolute paths of one subject's files (``bold``, ``events``, ``bold_json``: lists
        in session/run order; ``mask``, ``atlas``, ``truebetas``, ``trialbetas``,
        ``encoding_model``, ``encoding_model_json``, ``ncsnr_map``, and with the NSD layout
        ``nsd_betas`` (list), ``nsdgeneral``)."""
        sub = self._sub(subject)
        out: dict[str, Any] = {}
        for key, val in sub["paths"].items():
            out[key] = [self.root / v for v in val] if isinstance(val, list) else self.root / val
        return out

    def test_ids(self, subject: str | int) -> list[str]:
        """The shared test stimulus ids (the same for every subject)."""
        self._sub(subject)
        return list(self.info["test_ids"])

    def train_ids(self, subject: str | int) -> list[str]:
        """The subject's own training stimulus ids."""
        return list(self._sub(subject)["train_ids"])

    def splits(self, subject: str | int) -> pd.Series:
        """``stimulus_id -> "train"/"test"`` for one subject."""
        ids = self.test_ids(subject) + self.train_ids(subject)
        vals = ["test"] * len(self.info["test_ids"]) + ["train"] * (len(ids) - len(self.info["test_ids"]))
        return pd.Series(vals, index=pd.Index(ids, name="stimulus_id"), name="split")

    def true_betas(self, subject: str | int, stimulus_ids: list[str] | None = None
                   ) -> tuple[list[str], np.ndarray]:
        """Noise-free responses (percent signal change), ``(ids, (n, n_voxels))``."""
        with np.load(self.paths(subject)["truebetas"], allow_pickle=False) as z:
            ids = [str(s) for s in z["stimulus_id"]]
            betas = z["betas"]
        if stimulus_ids is None:
            return ids, betas
        pos = {s: i for i, s in enumerate(ids)}
        missing = [s for s in stimulus_ids if s not in pos]
        if missing:
            raise KeyError(f"stimulus ids not shown to subject {subject!r}: {missing[:5]}")
        return list(stimulus_ids), betas[[pos[s] for s in stimulus_ids]]

    def encoding_model(self, subject: str | int) -> dict[str, np.ndarray]:
        """The subject's encoding and noise model parameters (arrays)."""
        with np.load(self.paths(subject)["encoding_model"], allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def semantic_mixer(self) -> enc.SemanticMixer:
        """The shared semantic mixing network of the encoding model."""
        with np.load(self.sim_dir / "desc-semanticmixer_model.npz", allow_pickle=False) as z:
            return enc.SemanticMixer([str(n) for n in z["names"]], z["input_weights"], z["A"],
                                     z["b"], z["centre"], z["scale"])

    def predict_responses(self, subject: str | int, stimuli, ids: list[str] | None = None
                          ) -> np.ndarray:
        """Noise-free responses of one subject's voxels to any images (the true model).

        Parameters
        ----------
        subject : str | int
            Subject label.
        stimuli : StimulusSet
            Images to encode (their ``attributes`` feed the semantic pathway, matched by
            column and level names to what the simulation saw).
        ids : list of str | None
            Which stimuli (default: all).

        Returns
        -------
        np.ndarray
            ``(n, n_voxels)`` percent signal change, voxel order as the subject's mask.
        """
        model = enc.VoxelEncodingModel.from_arrays(self.encoding_model(subject))
        mixer = self.semantic_mixer()
        ids = list(stimuli.ids) if ids is None else list(ids)
        maps, X, _, _ = enc.stimulus_features(stimuli, ids, mixer=mixer)
        return model.predict(maps, mixer.transform(X))

    def ncsnr(self, subject: str | int) -> np.ndarray:
        """Per-voxel noise-ceiling SNR (beta level) in voxel order."""
        return self.encoding_model(subject)["ncsnr"]

    def summary(self) -> dict:
        """A JSON-able summary: sizes, ncsnr figures and timing."""
        subs = {}
        for s in self.subjects:
            d = self._sub(s)
            subs[s] = {k: d[k] for k in ("n_voxels", "n_visual", "n_early", "n_higher",
                                         "n_trials", "n_train", "grid_shape", "ncsnr_visual_median",
                                         "ncsnr_visual_q10", "ncsnr_visual_q90", "tsnr_median")}
        p = self.info["parameters"]
        return {
            "root": str(self.root),
            "n_subjects": len(self.subjects),
            "n_test": len(self.info["test_ids"]),
            "n_test_reps": p["n_test_reps"],
            "n_sessions": self.info["n_sessions"],
            "n_runs": self.info["n_runs"],
            "tr": p["tr"],
            "snr": p["snr"],
            "seed": p["seed"],
            "seconds": self.info.get("seconds"),
            "subjects": subs,
        }

    # ------------------------------------------------------------------ oracle
    def oracle_retrieval(self, subject: str | int, n_candidates: int = 300, n_draws: int = 30,
                         n_reps: int | None = 3, seed: int = 0) -> dict:
        """Bayes-optimal test retrieval accuracy for one subject (the ceiling).

        For each of ``n_draws`` draws of ``n_candidates`` shared test stimuli, the
        ``n_reps``-averaged single-trial beta pattern of each is sampled from the known
        beta-level noise distribution and identified by maximum likelihood (minimum
        Mahalanobis distance to each candidate's noise-free pattern, diagonal plus shared
        factor covariance). This is at the beta level, so it is an upper bound for any
        decoder working from GLM estimates of these data; see
        :mod:`braindecode_kit.simulate.oracle`.

        Parameters
        ----------
        subject : str | int
            Subject label.
        n_candidates, n_draws : int
            As :func:`braindecode_kit.evaluate.retrieval_accuracy`.
        n_reps : int | None
            Repetitions averaged per test pattern (``None``: the simulated ``n_test_reps``).
        seed : int
            Random seed.

        Returns
        -------
        dict
            ``top1``, ``ci`` (95 %), ``draws``, ``chance`` (and ``n_candidates``,
            ``n_draws``, ``n_reps``, ``direction``), as ``retrieval_accuracy``.
        """
        n_reps = int(self.info["parameters"]["n_test_reps"]) if n_reps is None else n_reps
        _, means = self.true_betas(subject, self.test_ids(subject))
        m = self.encoding_model(subject)
        diag = m["noise_trial_sd"].astype(np.float64) ** 2 + (
            m["noise_ts_sd"].astype(np.float64) ** 2 * m["noise_glm_factor"])
        lab = self._sub(subject)["label"]
        return identification_oracle(means, diag, m["noise_loadings"], n_candidates=n_candidates,
                                     n_draws=n_draws, n_reps=n_reps,
                                     seed=int(np.random.SeedSequence([seed, int(lab)]).generate_state(1)[0]))

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        p = self.info["parameters"]
        return (f"<SimulatedFMRI | {len(self.subjects)} subjects, {len(self.info['test_ids'])} "
                f"shared test images x {p['n_test_reps']}, TR {p['tr']} s, root={self.root}>")

    def _repr_html_(self) -> str:
        import html

        rows = []
        for s in self.subjects:
            d = self._sub(s)
            rows.append(
                f"<tr><td>sub-{s}</td><td>{d['n_voxels']}</td><td>{d['n_early']}</td>"
                f"<td>{d['n_higher']}</td><td>{d['n_train']}</td><td>{d['n_trials']}</td>"
                f"<td>{d['ncsnr_visual_median']:.2f} [{d['ncsnr_visual_q10']:.2f}, "
                f"{d['ncsnr_visual_q90']:.2f}]</td><td>{d['tsnr_median']:.0f}</td></tr>"
            )
        p = self.info["parameters"]
        head = ("<tr><th>subject</th><th>brain voxels</th><th>early visual</th>"
                "<th>higher visual</th><th>train images</th><th>trials</th>"
                "<th>ncsnr visual, median [10%, 90%]</th><th>tSNR</th></tr>")
        return (
            f"<div><b>SimulatedFMRI</b> at <code>{html.escape(str(self.root))}</code><br>"
            f"{len(self.info['test_ids'])} shared test images x {p['n_test_reps']} repetitions, "
            f"{self.info['n_sessions']} sessions, {self.info['n_runs']} runs per subject, "
            f"TR {p['tr']} s, snr {p['snr']}, seed {p['seed']}"
            f"<table>{head}{''.join(rows)}</table></div>"
        )


# --------------------------------------------------------------------------- main entry
@fill_doc
@verbose
def simulate_fmri(
    stimuli,
    out_dir: str | Path,
    n_subjects: int = 3,
    seed: int = 0,
    snr: float | None = None,
    tr: float = 1.5,
    *,
    n_sessions: int | None = None,
    n_shared_test: int = 300,
    n_test_reps: int = 3,
    n_train_per_subject: int | None = None,
    n_train_reps: int = 1,
    n_voxels: int = 2000,
    trials_per_run: int = 62,
    blank_fraction: float = 1.0 / 6.0,
    glm_noise_fraction: float = 0.1,
    nsd_layout: bool = True,
    compress: bool = True,
    overwrite: bool = False,
    verbose: bool | str | int | None = None,
) -> SimulatedFMRI:
    """Simulate an NSD-like fMRI experiment and write it as BIDS (+ the NSD layout).

    Parameters
    ----------
    stimuli : StimulusSet
        The images (e.g. :func:`braindecode_kit.simulate.make_world`). Its ``attributes``
        feed the semantic part of the encoding model; images are used at 64 x 64 px.
    out_dir : str | Path
        The BIDS root to create.
    n_subjects : int
        Number of subjects (each with its own anatomy, encoding weights and noise).
    seed : int
        Seed of everything (split, design, subjects, noise). Same seed, same bytes.
    snr : float | None
        Median target noise-ceiling SNR (ncsnr, beta level) of the visual voxels; ``None``
        is the NSD-calibrated default (0.3: most responsive voxels within 0.1-0.6). ``0``
        simulates no stimulus information at all (null data).
    tr : float
        Repetition time (s).
    n_sessions : int | None
        Sessions per subject (``None``: ``max(2, ceil(n_trials / 800))``).
    n_shared_test : int
        Shared test images seen by every subject (drawn from ``stimuli``).
    n_test_reps : int
        Presentations of each shared test image (spread over sessions).
    n_train_per_subject : int | None
        Subject-specific training images (disjoint between subjects, as in NSD); ``None``
        splits the stimuli left after the test set equally between subjects.
    n_train_reps : int
        Presentations of each training image (NSD: 3; default 1 keeps the run short).
    n_voxels : int
        Approximate number of visual (nsdgeneral) voxels per subject; subjects differ by
        about 15 %, and a third as many non-visual voxels are added.
    trials_per_run : int
        Image trials per run (NSD: 62-63).
    blank_fraction : float
        Blank trials per image trial, in [0, 1] (NSD: ~0.2).
    glm_noise_fraction : float
        Share of the single-trial beta noise variance due to time-series noise, in (0, 1);
        the rest is trial-to-trial response variability.
    nsd_layout : bool
        Also write ``derivatives/nsd`` in NSD's layout.
    compress : bool
        Write ``.nii.gz`` (else ``.nii``) BOLD files.
    overwrite : bool
        Replace an existing ``out_dir``. Without it, an existing dataset simulated with the
        same arguments is reopened and anything else refused.
    %(verbose)s

    Returns
    -------
    SimulatedFMRI
        Paths, subjects, splits, the ground truth and :meth:`SimulatedFMRI.oracle_retrieval`.

    Examples
    --------
    >>> from braindecode_kit.simulate import make_world, simulate_fmri
    >>> sim = simulate_fmri(make_world(400), "sim_bids", n_subjects=2,
    ...                     n_shared_test=100)  # doctest: +SKIP
    >>> sim.oracle_retrieval("01", n_candidates=100)["top1"]  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    # ------------------------------------------------------------ validation
    for attr in ("ids", "load_image", "attributes"):
        if not hasattr(stimuli, attr):
            raise TypeError(
                f"'stimuli' must be a StimulusSet (with ids, load_image and attributes), but "
                f"got {type(stimuli).__name__}."
            )
    n_subjects = check_int("n_subjects", n_subjects, 1)
    seed = check_int("seed", seed, 0)
    if n_subjects > 99:
        raise ValueError(f"'n_subjects' must be at most 99, but got {n_subjects}.")
    snr_v = NSD_MEDIAN_NCSNR if snr is None else check_float("snr", snr, 0.0, 100.0)
    tr = check_float("tr", tr, 0.1, 10.0)
    n_sessions = check_int("n_sessions", n_sessions, 1, allow_none=True)
    n_shared_test = check_int("n_shared_test", n_shared_test, 2)
    n_test_reps = check_int("n_test_reps", n_test_reps, 1)
    n_train_per_subject = check_int("n_train_per_subject", n_train_per_subject, 1,
                                     allow_none=True)
    n_train_reps = check_int("n_train_reps", n_train_reps, 1)
    n_voxels = check_int("n_voxels", n_voxels, 50)
    if n_voxels > 200_000:
        raise ValueError(f"'n_voxels' must be at most 200000, but got {n_voxels}.")
    trials_per_run = check_int("trials_per_run", trials_per_run, 1)
    blank_fraction = check_float("blank_fraction", blank_fraction, 0.0, 1.0)
    glm_noise_fraction = check_float("glm_noise_fraction", glm_noise_fraction, 0.0, 0.999,
                                      lo_open=True)
    ids_all = [str(i) for i in stimuli.ids]
    if len(set(ids_all)) != len(ids_all):
        raise ValueError("'stimuli' has duplicate ids.")
    n_stim = len(ids_all)
    if n_shared_test >= n_stim:
        raise ValueError(
            f"'n_shared_test' ({n_shared_test}) must be smaller than the number of stimuli "
            f"({n_stim}), leaving images for training."
        )
    avail = n_stim - n_shared_test
    if n_train_per_subject is None:
        n_train_per_subject = avail // n_subjects
        if n_train_per_subject < 1:
            raise ValueError(
                f"Not enough stimuli: {n_stim} stimuli leave {avail} after the "
                f"{n_shared_test} shared test images, fewer than one per subject "
                f"({n_subjects})."
            )
    need = n_shared_test + n_subjects * n_train_per_subject
    if need > n_stim:
        raise ValueError(
            f"Not enough stimuli: n_shared_test + n_subjects * n_train_per_subject = "
            f"{n_shared_test} + {n_subjects} x {n_train_per_subject} = {need} distinct images "
            f"are needed, but 'stimuli' has {n_stim}."
        )
    out_dir = Path(out_dir)
    params = {
        "n_subjects": n_subjects, "seed": seed, "snr": snr_v, "tr": tr,
        "n_sessions": n_sessions, "n_shared_test": n_shared_test, "n_test_reps": n_test_reps,
        "n_train_per_subject": n_train_per_subject, "n_train_reps": n_train_reps,
        "n_voxels": n_voxels, "trials_per_run": trials_per_run,
        "blank_fraction": blank_fraction, "glm_noise_fraction": glm_noise_fraction,
        "nsd_layout": bool(nsd_layout), "compress": bool(compress),
    }
    # ------------------------------------------------------------ stimuli and split
    rng = _rng(seed, "split")
    perm = rng.permutation(n_stim)
    test_idx = np.sort(perm[:n_shared_test])  # nsdId order, as NSD's sharedix
    train_idx = [np.sort(perm[n_shared_test + s * n_train_per_subject:
                              n_shared_test + (s + 1) * n_train_per_subject])
                 for s in range(n_subjects)]
    used = np.unique(np.concatenate([test_idx, *train_idx]))
    fingerprint_of = getattr(stimuli, "fingerprint", None)
    fps = [fingerprint_of(ids_all[i]) if fingerprint_of else ids_all[i] for i in used]
    config_hash = hash_jsonable({"version": _VERSION, "params": params, "ids": ids_all,
                                 "fingerprints": fps})
    if out_dir.exists() and any(out_dir.iterdir()):
        manifest = out_dir / "derivatives" / "simulation" / "simulation.json"
        if not overwrite:
            old: dict[str, Any] = {}
            if manifest.is_file():
                try:
                    old = json.loads(manifest.read_text(encoding="utf-8"))
                except ValueError:
                    old = {}
                old = old if isinstance(old, dict) else {}
                changed = _changed_files(out_dir, old.get("files"))
                if old.get("config_hash") == config_hash and changed is None:
                    logger.info("Reusing the simulated dataset at %s (same arguments).", out_dir)
                    return SimulatedFMRI(out_dir, old)
                if old.get("config_hash") == config_hash:
                    logger.warning("The simulated dataset at %s was changed since it was "
                                   "written (%s): simulating it again.", out_dir, changed)
            if old.get("config_hash") != config_hash:
                raise FileExistsError(
                    f"'out_dir' {out_dir} exists and is not a dataset simulated with these "
                    f"arguments; pass overwrite=True to replace it."
                )
    logger.info("Simulating %d fMRI subjects into %s", n_subjects, out_dir)

    # ------------------------------------------------------------ features (shared)
    pos_used = {int(i): k for k, i in enumerate(used)}
    maps, X, names, in_w = enc.stimulus_features(
        stimuli, [ids_all[i] for i in used],
        progress_fn=lambda it: progress(it, desc="stimulus features", leave=False))
    if names and names[0].startswith("global_"):
        logger.info("No usable stimulus attributes: the semantic pathway reads global image "
                    "statistics instead.")
    mixer = enc.make_semantic_mixer(names, in_w, X, _rng(seed, "mixer"), n_latent=_N_LATENT)
    latent = mixer.transform(X)
    t_feat = time.perf_counter() - t0

    # ------------------------------------------------------------ design (shared)
    sched = _make_schedule(n_shared_test, n_train_per_subject, n_test_reps, n_train_reps,
                           n_sessions, trials_per_run, blank_fraction, tr, seed)
    n_sessions_eff = int(sched.session.max())
    designs = []
    for run in sched.runs:
        Xr, D = _run_design(run, tr)
        full = np.concatenate([Xr, D, np.ones((run.n_scans, 1))], axis=1)
        ols = np.linalg.solve(full.T @ full, full.T)[: Xr.shape[1]]  # least-squares rows
        designs.append((Xr, D, ols))
    # GLS variance factor of a single-trial beta, at the (quantised) AR(1) coefficients,
    # averaged over trials of a few runs (runs are statistically alike)
    rho_grid = np.round(np.arange(0.1, 0.51, 0.05), 2)
    g_grid = np.zeros_like(rho_grid)
    few = designs[:: max(1, len(designs) // 4)][:4]
    for j, rho in enumerate(rho_grid):
        vals = [gls_variance_factor(np.concatenate([Xr, D, np.ones((Xr.shape[0], 1))], axis=1),
                                    Xr.shape[1], rho) for Xr, D, _ in few]
        g_grid[j] = float(np.mean(np.concatenate(vals)))

    def glm_factor_fn(rho: np.ndarray) -> np.ndarray:
        return np.interp(rho, rho_grid, g_grid)

    # ------------------------------------------------------------ write
    ext = ".nii.gz" if compress else ".nii"
    n_runs_per_subject = len(sched.runs)
    subject_info: dict[str, dict] = {}
    with atomic_dir(out_dir, kind="simulated fMRI dataset") as tmp:
        for s in range(n_subjects):
            label = f"{s + 1:02d}"
            subject_info[label] = _simulate_subject(
                tmp, label, s, seed, snr_v, tr, test_idx, train_idx[s], ids_all, pos_used, maps,
                latent, sched, designs, glm_factor_fn, glm_noise_fraction, n_voxels, ext,
                nsd_layout, n_test_reps)
        _write_top(tmp, ids_all, test_idx, train_idx, sched, subject_info, params, nsd_layout,
                   mixer)
        info = {
            "version": _VERSION,
            "config_hash": config_hash,
            "parameters": params,
            "subjects": list(subject_info),
            "test_ids": [ids_all[i] for i in test_idx],
            "n_sessions": n_sessions_eff,
            "n_runs": n_runs_per_subject,
            "hrf": "nilearn glover, 3 s boxcar, each trial regressor normalised to peak 1",
            "voxel_order": "np.argwhere(mask) (C order); saved as 'ijk'",
            "seconds": None,
            "subject_info": subject_info,
            # sizes and hashes of every file: a dataset changed since is not reused
            "files": file_fingerprint(tmp)["files"],
        }
        # keep the bytes seed-deterministic: the timing goes to the log, not the files
        _json(tmp / "derivatives" / "simulation" / "simulation.json", info)
    elapsed = time.perf_counter() - t0
    logger.info("Simulated %d subjects in %.1f s (features %.1f s)", n_subjects, elapsed, t_feat)
    sim = SimulatedFMRI(out_dir, info)
    sim.info["seconds"] = round(elapsed, 2)
    return sim


def _changed_files(root: Path, recorded: dict[str, Any] | None) -> str | None:
    """How the dataset at ``root`` differs from the files ``recorded`` at writing (None:
    it does not, or nothing was recorded)."""
    if not recorded:
        return None
    from .._readers import fingerprint_mismatch

    return fingerprint_mismatch(root, {"kind": "folder", "files": recorded})


def _simulate_subject(root: Path, label: str, s: int, seed: int, snr: float, tr: float,
                      test_idx: np.ndarray, train_idx: np.ndarray, ids_all: list[str],
                      pos_used: dict[int, int], maps: np.ndarray, latent: np.ndarray,
                      sched: _Schedule, designs: list, glm_factor_fn, glm_fraction: float,
                      n_voxels: int, ext: str, nsd_layout: bool, n_test_reps: int) -> dict:
    rng = _rng(seed, "subject", s)
    anat = _make_anatomy(n_voxels, rng)
    V = anat.ijk.shape[0]
    model = enc.make_voxel_model(anat.ijk, anat.roi, anat.mask, _N_LATENT, rng)
    sub_idx = np.concatenate([test_idx, train_idx])  # column order of subjectim
    rows = np.array([pos_used[int(i)] for i in sub_idx])
    s_maps, s_lat = maps[rows], latent[rows]
    f_ref = model.calibrate(s_maps, s_lat)
    fields = enc.smooth_field(anat.mask, anat.ijk, 2 + N_FACTORS, rng, sigma=2.0)
    noise = make_noise_model(anat.roi, fields, rng, glm_factor_fn=glm_factor_fn,
                             glm_fraction=glm_fraction)
    target = target_ncsnr(anat.roi, snr, rng)
    model.amplitude = (target * noise.beta_sd).astype(np.float32)
    base = np.where(anat.roi == 1, 1.5, np.where(anat.roi == 2, 1.0, 0.0))
    model.mean_response = (base * np.exp(0.3 * rng.standard_normal(V))).astype(np.float32)
    true = model.scale(f_ref)  # (n_sub_stim, V) in subjectim column order
    del f_ref
    beta_var = noise.beta_diag + (noise.loadings.astype(np.float64) ** 2).sum(1)
    nc = ncsnr(true, beta_var)
    # ---------------------------------------------------------------- trials and BOLD
    T = sched.columns.size
    amp = true[sched.columns] + noise.sample_trial(T, rng)  # (T, V) trial amplitudes
    sub_dir = root / f"sub-{label}"
    bold_paths, ev_paths, js_paths = [], [], []
    n_cols = sub_idx.size
    n_test = test_idx.size
    est = np.empty((T, V), np.float32)  # least-squares single-trial estimates (NSD betas)
    tsnr = []
    for run, (Xr, D, pinv) in zip(sched.runs, designs, strict=True):
        XrT = np.ascontiguousarray(Xr.T, dtype=np.float32)
        raw = noise.sample_ar1(run.n_scans, rng)  # (V, n_scans)
        raw += amp[run.trials].T @ XrT
        coef = rng.standard_normal((V, D.shape[1]), dtype=np.float32)
        coef *= (noise.drift_sd * np.sqrt(D.shape[0] / 2.0)
                 / (1.0 + np.arange(D.shape[1], dtype=np.float32)))[None, :]
        raw += coef @ np.ascontiguousarray(D.T, dtype=np.float32)
        raw += 100.0
        raw *= (noise.baseline * np.float32(1.0 + 0.02 * rng.standard_normal()) / 100.0)[:, None]
        np.rint(raw, out=raw)
        np.clip(raw, 0, np.iinfo(np.int16).max, out=raw)
        mean = raw.mean(axis=1, dtype=np.float64).astype(np.float32)
        tsnr.append(float(np.median(mean / (noise.ts_sd / 100.0 * noise.baseline))))
        vol = np.zeros(anat.mask.shape + (run.n_scans,), np.int16)
        vol[anat.mask] = raw
        raw *= (100.0 / mean)[:, None]
        raw -= 100.0
        est[run.trials] = (raw @ np.ascontiguousarray(pinv.T, dtype=np.float32)).T
        func = sub_dir / f"ses-{run.session:02d}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = f"sub-{label}_ses-{run.session:02d}_task-images_run-{run.run:02d}"
        _save_nifti(func / f"{stem}_bold{ext}", vol, anat.affine, tr)
        _json(func / f"{stem}_bold.json", {
            "RepetitionTime": tr, "TaskName": "images", "SkullStripped": True,
            "Units": "arbitrary (scanner intensity); baseline a few hundred to thousands",
        })
        cols = sched.columns[run.trials]
        events = pd.DataFrame({
            "onset": run.onsets,
            "duration": STIM_DURATION,
            "trial_type": "image",
            "stimulus_id": [ids_all[int(sub_idx[c])] for c in cols],
            "repetition": sched.repetition[run.trials],
            "split": np.where(cols < n_test, "test", "train"),
        })
        _tsv(func / f"{stem}_events.tsv", events)
        rel = lambda p: str(p.relative_to(root))  # noqa: E731
        bold_paths.append(rel(func / f"{stem}_bold{ext}"))
        ev_paths.append(rel(func / f"{stem}_events.tsv"))
        js_paths.append(rel(func / f"{stem}_bold.json"))
    # ---------------------------------------------------------------- derivatives
    der = root / "derivatives" / "simulation" / f"sub-{label}"
    (der / "anat").mkdir(parents=True, exist_ok=True)
    mask_p = der / "anat" / f"sub-{label}_desc-brain_mask.nii.gz"
    atlas_p = der / "anat" / f"sub-{label}_atlas-visual_dseg.nii.gz"
    ncmap_p = der / "anat" / f"sub-{label}_desc-ncsnr_map.nii.gz"
    _save_nifti(mask_p, anat.mask.astype(np.uint8), anat.affine)
    _save_nifti(atlas_p, anat.dseg, anat.affine)
    ncvol = np.zeros(anat.mask.shape, np.float32)
    ncvol[anat.mask] = nc
    _save_nifti(ncmap_p, ncvol, anat.affine)
    sub_ids = np.array([ids_all[int(i)] for i in sub_idx])
    true_p = der / f"sub-{label}_desc-truebetas.npz"
    savez(true_p, stimulus_id=sub_ids, betas=true, ijk=anat.ijk.astype(np.int32),
           roi=anat.roi, split=np.where(np.arange(n_cols) < n_test, "test", "train"))
    trial_p = der / f"sub-{label}_desc-trialbetas.npz"
    trial_order = np.concatenate([r.trials for r in sched.runs])
    run_of = np.empty(T, np.int16)
    onset_of = np.empty(T, np.float64)
    for r in sched.runs:
        run_of[r.trials] = r.run
        onset_of[r.trials] = r.onsets
    savez(trial_p, betas=amp, stimulus_id=sub_ids[sched.columns], session=sched.session,
           run=run_of, onset=onset_of, repetition=sched.repetition, ijk=anat.ijk.astype(np.int32),
           trial_order=trial_order)
    model_p = der / f"sub-{label}_desc-encoding_model.npz"
    savez(model_p, **model.arrays(), **noise.arrays(), ncsnr=nc, target_ncsnr=target,
           ijk=anat.ijk.astype(np.int32), affine=anat.affine, grid_shape=np.array(anat.mask.shape),
           channels=np.array(enc.CHANNELS))
    model_json = der / f"sub-{label}_desc-encoding_model.json"
    _json(model_json, _model_description(label))
    vis = anat.roi != 3
    info: dict[str, Any] = {
        "n_voxels": int(V),
        "n_visual": int(vis.sum()),
        "n_early": int((anat.roi == 1).sum()),
        "n_higher": int((anat.roi == 2).sum()),
        "n_trials": int(T),
        "n_train": int(train_idx.size),
        "grid_shape": [int(x) for x in anat.mask.shape],
        "ncsnr_visual_median": float(np.median(nc[vis])),
        "ncsnr_visual_q10": float(np.quantile(nc[vis], 0.1)),
        "ncsnr_visual_q90": float(np.quantile(nc[vis], 0.9)),
        "tsnr_median": float(np.median(tsnr)),
        "train_ids": [ids_all[int(i)] for i in train_idx],
    }
    paths: dict[str, Any] = {
        "bold": bold_paths, "events": ev_paths, "bold_json": js_paths,
        "mask": str(mask_p.relative_to(root)), "atlas": str(atlas_p.relative_to(root)),
        "ncsnr_map": str(ncmap_p.relative_to(root)),
        "truebetas": str(true_p.relative_to(root)), "trialbetas": str(trial_p.relative_to(root)),
        "encoding_model": str(model_p.relative_to(root)),
        "encoding_model_json": str(model_json.relative_to(root)),
    }
    if nsd_layout:
        paths.update(_write_nsd_subject(root, s + 1, anat, est, sched))
    info["paths"] = paths
    return info


def _write_nsd_subject(root: Path, subj: int, anat: _Anatomy, est: np.ndarray,
                       sched: _Schedule) -> dict:
    import h5py

    base = root / "derivatives" / "nsd"
    func = base / "nsddata" / "ppdata" / f"subj{subj:02d}" / "func1pt8mm"
    (func / "roi").mkdir(parents=True, exist_ok=True)
    gen = np.full(anat.mask.shape, -1, np.int16)
    gen[anat.mask] = np.where(anat.roi != 3, 1, 0)
    _save_nifti(func / "roi" / "nsdgeneral.nii.gz", gen, anat.affine)
    _save_nifti(func / "brainmask.nii.gz", anat.mask.astype(np.int16), anat.affine)
    bdir = base / "nsddata_betas" / "ppdata" / f"subj{subj:02d}" / "func1pt8mm" / \
        "betas_fithrf_GLMdenoise_RR"
    bdir.mkdir(parents=True, exist_ok=True)
    scaled = np.rint(est.astype(np.float64) * 300.0)
    lim = np.iinfo(np.int16).max
    n_clip = int((np.abs(scaled) > lim).sum())
    if n_clip:
        logger.warning("NSD betas: %d values beyond the int16 range were clipped.", n_clip)
    scaled = np.clip(scaled, -lim, lim).astype(np.int16)
    out = []
    shape = anat.mask.shape
    for ses in range(1, int(sched.session.max()) + 1):
        tri = np.flatnonzero(sched.session == ses)
        vol = np.zeros((tri.size,) + shape, np.int16)
        vol[:, anat.ijk[:, 0], anat.ijk[:, 1], anat.ijk[:, 2]] = scaled[tri]
        vol = np.ascontiguousarray(vol.transpose(0, 3, 2, 1))  # (n, Z, Y, X) as NSD in h5py
        p = bdir / f"betas_session{ses:02d}.hdf5"
        with h5py.File(p, "w", track_order=False) as f:
            f.create_dataset("betas", data=vol, chunks=(tri.size, 1, 1, 1))
        out.append(str(p.relative_to(root)))
    return {"nsd_betas": out,
            "nsdgeneral": str((func / "roi" / "nsdgeneral.nii.gz").relative_to(root))}


def _model_description(label: str) -> dict:
    return {
        "Description": f"Ground-truth encoding and noise model of simulated subject {label}.",
        "Formula": {
            "low_level": "low_v(i) = (sum_c channel_weights[v,c] * sum_p G_v(p) F_c(i,p)) ** "
                         "exponent[v]; G_v a Gaussian pRF (prf_x, prf_y, prf_sigma in deg, image "
                         "spans 8.4 deg, centre 0, y up) over 16x16 feature maps F (channels)",
            "semantic": "sem_v(i) = softplus(semantic_weights[v] . z(i)); z = relu((x*input_weights)"
                        " @ A + b) from desc-semanticmixer_model.npz, x = one-hot attributes",
            "mix": "f = lowlevel_mix*(low-low_mean)/low_std + sqrt(1-lowlevel_mix^2)*"
                   "(sem-sem_mean)/sem_std",
            "response": "beta_v(i) = mean_response[v] + amplitude[v] * (f - ref_mean[v]) / "
                        "ref_std[v]  (percent signal change; 0 for non-visual voxels)",
            "noise": "single-trial beta = beta + N(0, diag(noise_trial_sd^2 + noise_ts_sd^2 * "
                     "noise_glm_factor) + noise_loadings noise_loadings^T); BOLD time series: "
                     "AR(1) (noise_ar1) with sd noise_ts_sd, cosine drift, x noise_baseline",
            "ncsnr": "sd over the subject's stimuli of beta_v / sqrt(total beta noise variance)",
        },
        "Arrays": {
            "roi": "1 early_visual, 2 higher_visual, 3 non_visual", "ijk": "voxel indices",
            "affine": "voxel -> mm", "channels": "names of the low-level channels",
        },
        "References": [
            "Dumoulin & Wandell 2008, NeuroImage 39:647 (pRF)",
            "Kay, Winawer, Mezer & Wandell 2013, J Neurophysiol 110:481 (CSS)",
            "Kay, Naselaris, Prenger & Gallant 2008, Nature 452:352 (Gabor energy model)",
            "Heeger 1992; Carandini & Heeger 2012 (divisive normalisation)",
            "Haxby et al. 2001, Science 293:2425; Kriegeskorte et al. 2008, Neuron 60:1126",
            "Haxby et al. 2011, Neuron 72:404 (shared representational space)",
            "Allen et al. 2022, Nat Neurosci 25:116 (NSD; ncsnr)",
        ],
    }


def _write_top(root: Path, ids_all: list[str], test_idx: np.ndarray, train_idx: list[np.ndarray],
               sched: _Schedule, subject_info: dict, params: dict, nsd_layout: bool,
               mixer: enc.SemanticMixer) -> None:
    from .._version import __version__

    _json(root / "dataset_description.json", {
        "Name": "braindecode_kit simulated fMRI (NSD-like design)",
        "BIDSVersion": "1.8.0",
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [{"Name": "braindecode_kit", "Version": __version__,
                         "Description": "braindecode_kit.simulate.simulate_fmri"}],
    })
    parts = pd.DataFrame({
        "participant_id": [f"sub-{k}" for k in subject_info],
        "n_voxels": [v["n_voxels"] for v in subject_info.values()],
        "n_visual_voxels": [v["n_visual"] for v in subject_info.values()],
        "median_ncsnr_visual": [round(v["ncsnr_visual_median"], 4) for v in subject_info.values()],
    })
    _tsv(root / "participants.tsv", parts)
    (root / "README").write_text(
        "Simulated fMRI dataset written by braindecode_kit.simulate.simulate_fmri.\n\n"
        "Each subject viewed shared test images (split=test, repeated) and its own training\n"
        "images (split=train), 3 s each with 1 s gaps, in an NSD-like design. The ground truth\n"
        "(noise-free responses, trial amplitudes, encoding and noise model) is in\n"
        "derivatives/simulation/, and the same data in the NSD layout in derivatives/nsd/.\n"
        "Single-trial regressors: nilearn's Glover HRF for a 3 s boxcar, normalised to peak\n"
        "1, so true betas are peak percent signal change. BOLD is int16 scanner units, 0\n"
        "outside the brain mask.\n"
        f"Parameters: {json.dumps(params, sort_keys=True)}\n", encoding="utf-8")
    sim = root / "derivatives" / "simulation"
    sim.mkdir(parents=True, exist_ok=True)
    _json(sim / "dataset_description.json", {
        "Name": "braindecode_kit simulation ground truth", "BIDSVersion": "1.8.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "braindecode_kit", "Version": __version__}],
    })
    _tsv(sim / "atlas-visual_dseg.tsv",
         pd.DataFrame({"index": list(ROI_NAMES), "name": list(ROI_NAMES.values())}))
    savez(sim / "desc-semanticmixer_model.npz", A=mixer.A, b=mixer.b,
           input_weights=mixer.input_weights, centre=mixer.centre, scale=mixer.scale,
           names=np.array(mixer.names, dtype=str))
    if not nsd_layout:
        return
    from scipy.io import savemat

    exp = root / "derivatives" / "nsd" / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True, exist_ok=True)
    subjectim = np.stack([np.concatenate([test_idx, tr_idx]) + 1 for tr_idx in train_idx])
    mat = exp / "nsd_expdesign.mat"
    savemat(str(mat), {
        "masterordering": (sched.columns + 1).astype(np.float64)[None, :],
        "subjectim": subjectim.astype(np.float64),
        "sharedix": (test_idx + 1).astype(np.float64)[None, :],
    }, do_compression=False)
    raw = bytearray(mat.read_bytes())  # fixed header text: same seed -> same bytes
    header = b"MATLAB 5.0 MAT-file, written by braindecode_kit.simulate"
    raw[:116] = header.ljust(116, b" ")
    mat.write_bytes(bytes(raw))
    info = pd.DataFrame({"nsdId": np.arange(len(ids_all)), "stimulus_id": ids_all})
    shared = np.zeros(len(ids_all), bool)
    shared[test_idx] = True
    info["shared1000"] = shared
    for s, tr_idx in enumerate(train_idx, start=1):
        seen = shared.copy()
        seen[tr_idx] = True
        info[f"subject{s}"] = seen.astype(int)
    info.to_csv(exp / "nsd_stim_info_merged.csv", index=False, lineterminator="\n")
