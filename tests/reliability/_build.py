"""Tiny valid inputs the probes corrupt: BOLD runs + events + sidecars, a BIDS folder,
a saved TrialSet, a saved decoder, saved targets. numpy/nibabel/pandas only, plus the
package's long-standing public API (so the table also runs against older checkouts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SHAPE = (4, 3, 2)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
TR = 2.0
N_SCANS = 60


def bold_array(seed: int = 0, n_scans: int = N_SCANS) -> tuple[np.ndarray, pd.DataFrame]:
    """(x, y, z, t) float32 BOLD around 1000 with trial responses, and its events."""
    from nilearn.glm.first_level import compute_regressor

    rng = np.random.default_rng(seed)
    times = np.arange(n_scans) * TR
    onsets = 4.0 + np.arange(9) * 12.0
    stim = [f"s{(seed * 3 + i) % 6:02d}" for i in range(len(onsets))]
    X = np.column_stack([compute_regressor(np.array([[o], [2.0], [1.0]]), "glover", times)
                         [0][:, 0] for o in onsets])
    n_vox = int(np.prod(SHAPE))
    Y = 1000.0 + X @ rng.normal(size=(len(onsets), n_vox)) * 10 + rng.normal(
        size=(n_scans, n_vox))
    data = Y.T.reshape(SHAPE + (n_scans,)).astype(np.float32)
    events = pd.DataFrame({"onset": onsets, "duration": 2.0, "trial_type": "image",
                           "stimulus_id": stim})
    events["split"] = ["test" if s in ("s00", "s01") else "train" for s in stim]
    return data, events


def nifti(data: np.ndarray, tr: float | None = TR):
    import nibabel as nib

    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None and data.ndim == 4:
        img.header.set_zooms(img.header.get_zooms()[:3] + (tr,))
    return img


def write_run(folder: Path, stem: str, seed: int = 0, gz: bool = True,
              sidecar: dict | None = None, data: np.ndarray | None = None
              ) -> tuple[Path, Path, Path]:
    """``<stem>_bold.nii[.gz]``, ``<stem>_bold.json``, ``<stem>_events.tsv`` in ``folder``."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    arr, events = bold_array(seed)
    if data is not None:
        arr = data
    bold = folder / f"{stem}_bold.nii{'.gz' if gz else ''}"
    nib.save(nifti(arr), bold)
    side = folder / f"{stem}_bold.json"
    side.write_text(json.dumps(sidecar if sidecar is not None else {"RepetitionTime": TR}))
    ev = folder / f"{stem}_events.tsv"
    events.to_csv(ev, sep="\t", index=False, na_rep="n/a")
    return bold, side, ev


def write_runs(folder: Path, n: int = 3, gz: bool = True) -> list[tuple[Path, Path, Path]]:
    """``n`` runs of sub-01 ses-01 in ``folder``."""
    return [write_run(folder, f"sub-01_ses-01_task-images_run-{r:02d}", seed=r, gz=gz)
            for r in range(1, n + 1)]


def write_bids(root: Path, n_runs: int = 3, gz: bool = True) -> list[tuple[Path, Path, Path]]:
    """A BIDS dataset: one subject, one session, ``n_runs`` runs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "probe", "BIDSVersion": "1.8.0"}))
    return write_runs(root / "sub-01" / "ses-01" / "func", n_runs, gz=gz)


def load_bids(root: Path):
    """load_fmri_bids without derivatives (no brain mask or atlas)."""
    from braindecode_kit.io import load_fmri_bids

    return load_fmri_bids(root, "01", mask=None, atlas=None, method="lsa", verbose="ERROR")


def load_runs(runs, **kw):
    from braindecode_kit.io import load_fmri

    kw.setdefault("method", "lsa")
    return load_fmri([r[0] for r in runs], [r[2] for r in runs], verbose="ERROR", **kw)


def trials_table(n: int = 12, n_stim: int = 4, splits=None, ids=None) -> pd.DataFrame:
    stim = ids if ids is not None else [f"s{i % n_stim}" for i in range(n)]
    table = pd.DataFrame({
        "subject": "01", "session": 1, "run": 1, "onset": np.arange(n, dtype=float),
        "stimulus_id": stim, "repetition": [i // n_stim for i in range(n)],
        "split": splits if splits is not None else [
            "test" if s == "s0" else "train" for s in stim],
    })
    table.index = pd.Index([f"t{i:03d}" for i in range(n)], name="trial_id")
    return table


def trialset(n: int = 12, n_vox: int = 20, seed: int = 0, **kw):
    from braindecode_kit.info import VoxelInfo
    from braindecode_kit.trialset import TrialSet

    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, n_vox)).astype(np.float32)
    ijk = np.argwhere(np.ones(SHAPE, bool))[:n_vox]
    info = VoxelInfo(affine=AFFINE, shape=SHAPE, ijk=ijk)
    return TrialSet(data, trials_table(n, **kw), "fmri", "01", info)


def saved_trialset(folder: Path, name: str = "ts", **kw) -> Path:
    return trialset(**kw).save(folder / name)


def decoder(n_vox: int = 20, embed_dim: int = 8):
    from braindecode_kit.models import BrainDecoder, DecoderConfig

    cfg = DecoderConfig(subjects={"01": n_vox}, embed_dim=embed_dim, d_shared=8, n_blocks=1)
    return BrainDecoder(cfg, seed=0)


def saved_decoder(folder: Path) -> Path:
    path = folder / "model"
    decoder().save_pretrained(path)
    return path


def targets(ids=None, dim: int = 8, image=None):
    from braindecode_kit.embed import Targets

    ids = ids if ids is not None else [f"s{i}" for i in range(4)]
    if image is None:
        image = np.random.default_rng(0).normal(size=(len(ids), dim)).astype(np.float32)
    return Targets(ids, image)


def saved_targets(folder: Path) -> Path:
    path = folder / "targets"
    targets().save(path)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: max(1, int(len(raw) * keep))])
    return path


def user_folder(folder: Path, n: int = 3) -> Path:
    """A folder of a user's own files (must survive any writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"notes-{i}.txt").write_text(f"mine {i}\n")
    return folder
