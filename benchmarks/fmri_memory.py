"""Benchmark: peak resident memory of loading an NSD-scale subject.

Writes, in a temporary folder, a complete NSD layout for one subject at NSD's scale
(``--scale 1``: 40 sessions x 750 trials = 30,000 trials; an nsdgeneral ROI of 15,700
voxels scattered in a 26 x 28 x 28 grid; ``betas_sessionNN.hdf5`` int16 chunked per
voxel as NSD's are; ``nsd_expdesign.mat``; ``nsd_stim_info_merged.csv``), then loads it
with :func:`braindecode_kit.recipes.nsd.load_nsd` (z-scored per session, into a
memory-mapped ``.npy`` cache) in a fresh Python process and reports that process's peak
RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) — the budget is 2 GB.

Run ``python benchmarks/fmri_memory.py [--scale 0.1] [--json] [--average]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

GRID = (26, 28, 28)  # (X, Y, Z)
N_ROI = 15_700
TRIALS_PER_SESSION = 750
N_SESSIONS = 40
BUDGET_GB = 2.0


def write_nsd_subject(root: Path, scale: float = 1.0, seed: int = 0, chunks: str = "voxel"):
    """An NSD-layout subject at ``scale`` x NSD's trial count (sessions scale, 750 each)."""
    import h5py
    import nibabel as nib
    import pandas as pd
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    n_sessions = max(1, int(round(N_SESSIONS * scale)))
    n_trials = n_sessions * TRIALS_PER_SESSION
    n_images = 10_000
    shared = np.arange(1, 1001)
    subjectim = np.stack([
        np.concatenate([shared, 1000 + s * 9000 + np.arange(1, n_images - 999)])
        for s in range(8)
    ])
    order = np.concatenate([rng.permutation(n_images) + 1 for _ in range(3)])[:30_000]
    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True, exist_ok=True)
    savemat(exp / "nsd_expdesign.mat", {"masterordering": order[None, :],
                                        "subjectim": subjectim, "sharedix": shared[None, :]})
    ids = np.unique(subjectim[0]) - 1
    pd.DataFrame({"nsdId": ids, "cocoId": ids + 1}).to_csv(exp / "nsd_stim_info_merged.csv")
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    roi = np.zeros(GRID, np.int16)
    flat = rng.permutation(int(np.prod(GRID)))[:N_ROI]
    roi.ravel()[flat] = 1
    roi_dir = root / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(roi, affine), roi_dir / "nsdgeneral.nii.gz")
    bdir = root / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    bdir.mkdir(parents=True, exist_ok=True)
    zyx = GRID[::-1]
    chunk = {"voxel": (TRIALS_PER_SESSION, 1, 1, 1),
             "row": (TRIALS_PER_SESSION, 1, 1, zyx[2]), "none": None}[chunks]
    for s in range(1, n_sessions + 1):
        data = rng.integers(-900, 900, size=(TRIALS_PER_SESSION,) + zyx, dtype=np.int16)
        with h5py.File(bdir / f"betas_session{s:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=data, chunks=chunk)
        del data
    return n_trials


_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from braindecode_kit.recipes.nsd import load_nsd
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t1 = time.perf_counter()
ts = load_nsd(sys.argv[1], 1, cache_dir=sys.argv[2], average_repetitions=sys.argv[3] == "1")
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"shape": list(ts.data.shape), "memmap": isinstance(ts.data, np.memmap),
                  "peak_rss_kb": peak, "rss_after_imports_kb": base,
                  "seconds_load": t2 - t1,
                  "n_test_trials": int((ts.trials["split"] == "test").sum())}))
"""


def run_benchmark(scale: float = 1.0, average: bool = False, chunks: str = "voxel",
                  tmp_dir: str | None = None) -> dict:
    """Write the data set, load it in a child process, return the figures."""
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        root = Path(tmp) / "nsd"
        t0 = time.perf_counter()
        n_trials = write_nsd_subject(root, scale=scale, chunks=chunks)
        t_write = time.perf_counter() - t0
        env = dict(os.environ, OMP_NUM_THREADS="1")
        repo = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root), str(Path(tmp) / "cache"),
             "1" if average else "0"],
            capture_output=True, text=True, env=env, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the loading process failed:\n{proc.stderr[-3000:]}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        cache_bytes = sum(p.stat().st_size for p in (Path(tmp) / "cache").glob("*.npy"))
        hdf5_bytes = sum(p.stat().st_size for p in root.rglob("*.hdf5"))
    peak_gb = child["peak_rss_kb"] / 1024**2  # ru_maxrss is in KiB on Linux
    return {
        "scale": scale,
        "n_trials": n_trials,
        "n_voxels": N_ROI,
        "hdf5_chunks": chunks,
        "average_repetitions": average,
        "output_shape": child["shape"],
        "output_memmap": child["memmap"],
        "output_gb": round(cache_bytes / 1024**3, 3),
        "hdf5_gb": round(hdf5_bytes / 1024**3, 3),
        "peak_rss_gb": round(peak_gb, 3),
        "rss_after_imports_gb": round(child["rss_after_imports_kb"] / 1024**2, 3),
        "budget_gb": BUDGET_GB,
        "within_budget": bool(peak_gb <= BUDGET_GB),
        "seconds_write": round(t_write, 1),
        "seconds_load": round(child["seconds_load"], 1),
        "n_test_trials": child["n_test_trials"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of NSD's 40 sessions (1 = 30,000 trials)")
    parser.add_argument("--average", action="store_true", help="average repetitions too")
    parser.add_argument("--chunks", choices=["voxel", "row", "none"], default="voxel",
                        help="HDF5 chunking of the written betas (NSD: per voxel)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tmp-dir", default=None)
    args = parser.parse_args(argv)
    res = run_benchmark(args.scale, args.average, args.chunks, args.tmp_dir)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:24s} {v}")
    return 0 if res["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
