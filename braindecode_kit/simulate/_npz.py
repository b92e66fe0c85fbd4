"""Deterministic ``.npz`` files for the simulators' ground truth (no pickles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["loadz", "savez"]


def savez(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` with fixed zip timestamps (same arrays -> same bytes), no pickles."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                raise TypeError(f"array {name!r} has dtype object; refusing to pickle it")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)


def loadz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` written by :func:`savez` (nothing unpickled)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
