"""Tiny simulated BOLD runs (nilearn's HRF), in memory and as a BIDS folder."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SHAPE = (5, 4, 3)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def make_run(seed=0, n_scans=90, tr=2.0, n_trials=14, noise=0.5, stim_prefix="s",
             n_stim=8, test_ids=("s000", "s001")):
    """One run: (bold image, events DataFrame, true betas (n_trials, n_voxels in C order),
    mask image)."""
    from nilearn.glm.first_level import compute_regressor

    rng = np.random.default_rng(seed)
    frame_times = np.arange(n_scans) * tr
    onsets = 6.0 + np.arange(n_trials) * 11.0 + rng.uniform(0, 2, n_trials)
    stim = [f"{stim_prefix}{i % n_stim:03d}" for i in rng.permutation(n_trials)]
    n_vox = int(np.prod(SHAPE))
    resp = rng.normal(size=(n_stim, n_vox)) * 2.0
    betas = np.stack([resp[int(s[len(stim_prefix):])] for s in stim]) + rng.normal(
        size=(n_trials, n_vox)) * 0.5
    X = np.column_stack([
        compute_regressor(np.array([[o], [3.0], [1.0]]), "glover", frame_times)[0][:, 0]
        for o in onsets
    ])
    drift = np.outer(np.linspace(-1, 1, n_scans), rng.normal(size=n_vox)) * 3
    Y = 1000.0 + X @ betas * 10 + drift + rng.normal(size=(n_scans, n_vox)) * noise
    data = Y.T.reshape(SHAPE + (n_scans,)).astype(np.float32)
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    zooms = img.header.get_zooms()
    img.header.set_zooms(zooms[:3] + (tr,))
    events = pd.DataFrame({"onset": onsets, "duration": 3.0, "trial_type": "image",
                           "stimulus_id": stim})
    events["split"] = ["test" if s in test_ids else "train" for s in stim]
    mask = nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE)
    return img, events, betas, mask


def write_bids(root: Path, subject="01", sessions=("01", "02"), runs=2, seed=0):
    """A BIDS folder as the team's simulator writes it (smaller)."""
    root = Path(root)
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "tiny", "BIDSVersion": "1.8.0"}))
    k = 0
    for ses in sessions:
        func = root / f"sub-{subject}" / f"ses-{ses}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        for r in range(1, runs + 1):
            img, ev, _, _ = make_run(seed=seed + k)
            k += 1
            stem = f"sub-{subject}_ses-{ses}_task-images_run-{r:02d}"
            nib.save(img, func / f"{stem}_bold.nii.gz")
            (func / f"{stem}_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
            ev.to_csv(func / f"{stem}_events.tsv", sep="\t", index=False)
    anat = root / "derivatives" / "simulation" / f"sub-{subject}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    brain = np.ones(SHAPE, np.uint8)
    brain[0, 0, 0] = 0
    nib.save(nib.Nifti1Image(brain, AFFINE), anat / f"sub-{subject}_desc-brain_mask.nii.gz")
    atlas = np.full(SHAPE, 3, np.int16)
    atlas[:2] = 1
    atlas[2:4] = 2
    nib.save(nib.Nifti1Image(atlas, AFFINE), anat / f"sub-{subject}_atlas-visual_dseg.nii.gz")
    pd.DataFrame({"index": [1, 2, 3], "name": ["early_visual", "higher_visual", "non_visual"]}
                 ).to_csv(root / "derivatives" / "simulation" / "atlas-visual_dseg.tsv",
                          sep="\t", index=False)
    return root
