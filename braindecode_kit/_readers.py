"""One reading helper per file format: a corrupt file is named, with what is wrong.

Every loader of the package reads through these helpers, so that a truncated NIfTI, an
invalid JSON sidecar, a truncated safetensors file or an empty events table raises a
``ValueError`` (``FileNotFoundError`` when the file is absent) that names the file, the
field where there is one, and what was expected -- never a bare dependency error
(``EOFError``, ``JSONDecodeError``, ``SafetensorError``, ``EmptyDataError``, ...).

Also here: the fast checksums of arrays (:func:`array_checksum`) that saved TrialSets
and masks record and verify on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CorruptFileError",
    "array_checksum",
    "array_checksums",
    "check_keys",
    "read_json",
    "read_nifti",
    "read_npy",
    "read_safetensors",
    "read_safetensors_header",
    "read_tsv",
    "reading",
    "require_number",
]


class CorruptFileError(ValueError):
    """A file exists but cannot be read as what it should be (truncated, invalid, ...)."""


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what}: no such file {str(path)!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {str(path)!r} is not a file.")


#: dependency exceptions that mean "this file's bytes are not what they should be"
def _corrupt_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [EOFError, zlib.error, UnicodeDecodeError,
                                        struct.error]
    with contextlib.suppress(ImportError):
        import gzip

        types.append(gzip.BadGzipFile)
    with contextlib.suppress(ImportError):
        from nibabel.filebasedimages import ImageFileError

        types.append(ImageFileError)
    with contextlib.suppress(ImportError):
        from nibabel.spatialimages import HeaderDataError

        types.append(HeaderDataError)
    with contextlib.suppress(ImportError):
        from safetensors import SafetensorError

        types.append(SafetensorError)
    with contextlib.suppress(ImportError):
        import pandas as pd

        types += [pd.errors.EmptyDataError, pd.errors.ParserError]
    return tuple(types)


@contextlib.contextmanager
def reading(path: Any, what: str, expected: str = "") -> Iterator[None]:
    """Turn a dependency's error while reading ``path`` into a :class:`CorruptFileError`.

    Parameters
    ----------
    path : path
        The file being read (named in the message).
    what : str
        What the file is (``"BOLD run"``, ``"model weights"``).
    expected : str
        What a valid file holds (appended to the message).
    """
    try:
        yield
    except CorruptFileError:
        raise
    except _corrupt_types() as err:
        raise _corrupt(path, what, err, expected) from err
    except (ValueError, OSError) as err:
        # numpy/nibabel signal truncation with plain ValueError/OSError ("not enough data",
        # "cannot reshape", "mmap length is greater than file size")
        if isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        raise _corrupt(path, what, err, expected) from err


def _corrupt(path: Any, what: str, err: BaseException, expected: str) -> CorruptFileError:
    reason = str(err).strip() or type(err).__name__
    low = reason.lower()
    if isinstance(err, EOFError) or any(w in low for w in (
            "not enough data", "truncated", "end of file", "eof", "incomplete",
            "cannot reshape", "greater than file size", "compressed file ended")):
        reason = f"the file is truncated or incomplete ({reason})"
    elif "crc" in low or "invalid" in low and "compress" in low:
        reason = f"the compressed data are damaged ({reason})"
    exp = f" Expected {expected}." if expected else ""
    return CorruptFileError(f"Cannot read the {what} {str(path)!r}: {reason}.{exp}")


# =========================================================================== JSON
def read_json(path: Any, what: str = "JSON file", *, expected_type: type | None = dict) -> Any:
    """Parse a JSON file, naming it (and the line and column) when it is invalid.

    Parameters
    ----------
    path : path
        The file.
    what : str
        What it is (``"_bold.json sidecar"``, ``"run manifest"``).
    expected_type : type or None
        The type of the top-level value (default ``dict``: an object); None accepts any.

    Returns
    -------
    object
        The parsed value.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CorruptFileError
        If it is not UTF-8 JSON, or its top level is not ``expected_type``.
    """
    path = Path(path)
    _require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorruptFileError(
            f"Cannot read the {what} {str(path)!r}: it is not UTF-8 text ({err}). Expected "
            "a JSON document.") from err
    if not text.strip():
        raise CorruptFileError(f"The {what} {str(path)!r} is empty; expected a JSON document.")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptFileError(
            f"The {what} {str(path)!r} is not valid JSON: {err.msg} at line {err.lineno}, "
            f"column {err.colno} (the file may be truncated or hand-edited)."
        ) from None
    if expected_type is not None and not isinstance(value, expected_type):
        raise CorruptFileError(
            f"The {what} {str(path)!r} must hold a JSON "
            f"{'object' if expected_type is dict else expected_type.__name__}, but holds "
            f"{type(value).__name__} ({str(value)[:60]!r})."
        )
    return value


def check_keys(doc: Mapping[str, Any], keys: Sequence[str], path: Any, what: str) -> None:
    """Refuse a parsed JSON object that lacks one of ``keys``, naming the file and key."""
    missing = [k for k in keys if k not in doc]
    if missing:
        raise CorruptFileError(
            f"The {what} {str(path)!r} lacks the field(s) {missing} (found "
            f"{sorted(doc)[:12]}); it is incomplete or was not written by braindecode_kit."
        )


def require_number(value: Any, field: str, path: Any, what: str, *,
                   positive: bool = False) -> float:
    """A JSON field that must be a number (not a string such as ``"1.5 s"``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = np.isfinite(v) and (v > 0 if positive else True)
    if not ok:
        kind = "a positive number" if positive else "a number"
        raise CorruptFileError(
            f"The field {field!r} of the {what} {str(path)!r} must be {kind} (in seconds "
            f"for times), but is {value!r}."
        )
    return float(value)


# =========================================================================== TSV
def read_tsv(path: Any, what: str = "TSV table", *, required: Sequence[str] = (),
             **kwargs: Any):
    """Read a tab-separated table, naming the file when it is empty or malformed.

    Parameters
    ----------
    path : path
        The file.
    what : str
        What it is (``"events file"``).
    required : sequence of str
        Columns that must be present.
    **kwargs
        Passed to :func:`pandas.read_csv` (``sep="\\t"`` is set).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    path = Path(path)
    _require_file(path, what)
    try:
        table = pd.read_csv(path, sep="\t", **kwargs)
    except pd.errors.EmptyDataError:
        raise CorruptFileError(
            f"The {what} {str(path)!r} is empty; expected a tab-separated table with a "
            f"header row{' (' + ', '.join(required) + ')' if required else ''}."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise CorruptFileError(
            f"The {what} {str(path)!r} is not a valid tab-separated table: {err}"
        ) from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise CorruptFileError(
            f"The {what} {str(path)!r} lacks the required column(s) {missing}; found "
            f"{list(table.columns)} (is it tab-separated?)."
        )
    return table


# =========================================================================== NIfTI
def read_nifti(path: Any, what: str = "NIfTI image"):
    """Open a NIfTI file, refusing a truncated or invalid one, naming it.

    The header is parsed now; for an uncompressed ``.nii`` the file size is checked
    against the header (a truncated file is refused at once). A compressed ``.nii.gz``
    is checked when read: read its data inside ``with reading(path, what):``.

    Returns
    -------
    nibabel.spatialimages.SpatialImage
    """
    import nibabel as nib

    path = Path(path)
    _require_file(path, what)
    if path.stat().st_size == 0:
        raise CorruptFileError(f"The {what} {str(path)!r} is empty (0 bytes); expected a "
                               "NIfTI-1/2 image.")
    if path.name.endswith(".nii") and path.stat().st_size < 348:
        raise CorruptFileError(
            f"Cannot read the {what} {str(path)!r}: the file is truncated ({path.stat().st_size} "
            "bytes, shorter than a NIfTI-1 header of 348 bytes).")
    if path.name.endswith(".gz"):
        _check_gzip(path, what)
    with reading(path, what, "a NIfTI-1/2 image (.nii or .nii.gz)"):
        img = nib.load(path)
        hdr = img.header
        if not path.name.endswith(".gz") and hasattr(hdr, "get_data_offset"):
            n = int(np.prod(img.shape)) * np.dtype(hdr.get_data_dtype()).itemsize
            need = int(hdr.get_data_offset()) + n
            have = path.stat().st_size
            if have < need:
                raise CorruptFileError(
                    f"Cannot read the {what} {str(path)!r}: the file is truncated: its header "
                    f"describes {img.shape} {hdr.get_data_dtype()} data ({need} bytes), but "
                    f"the file has {have} bytes."
                )
    return img


def _check_gzip(path: Path, what: str) -> None:
    """Decompress a gzip file once to check its CRC: nibabel reads a damaged stream
    without complaint and returns wrong numbers."""
    import gzip

    with reading(path, what, "a complete gzip-compressed NIfTI image"):
        with gzip.open(path, "rb") as f:
            while f.read(16 << 20):
                pass


def nifti_data(img: Any, path: Any, what: str, index: Any = ...) -> np.ndarray:
    """``img.dataobj[index]`` as an array, a truncated file named (see :func:`reading`)."""
    with reading(path, what, "a complete NIfTI-1/2 image"):
        return np.asarray(img.dataobj[index])


# =========================================================================== npy
def read_npy(path: Any, what: str = "array file", *, mmap: bool = False) -> np.ndarray:
    """``np.load`` of one ``.npy`` file (never unpickling), naming a truncated one."""
    path = Path(path)
    _require_file(path, what)
    with reading(path, what, "a complete .npy array written by numpy"):
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


# =========================================================================== safetensors
def read_safetensors_header(path: Any, what: str = "safetensors file") -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file's size.

    Raises
    ------
    CorruptFileError
        If the file is shorter than its header says (truncated), its header length is
        impossible (not a safetensors file, e.g. a pickle renamed), or the header is not
        JSON.
    """
    path = Path(path)
    _require_file(path, what)
    size = path.stat().st_size
    expect = "a safetensors file (8-byte header length, JSON header, tensor data)"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptFileError(
                f"Cannot read the {what} {str(path)!r}: it has {size} bytes, too short for a "
                f"safetensors header. Expected {expect}.")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 << 20:
            raise CorruptFileError(
                f"Cannot read the {what} {str(path)!r}: it is not a safetensors file or is "
                f"truncated (its first 8 bytes announce a {n}-byte header, but the file has "
                f"{size} bytes). Expected {expect}; loading never unpickles.")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptFileError(
            f"Cannot read the {what} {str(path)!r}: its header is not valid JSON (not a "
            f"safetensors file, or corrupt). Expected {expect}.") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"Cannot read the {what} {str(path)!r}: its header is not a "
                               "JSON object.")
    end = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        offsets = meta.get("data_offsets") if isinstance(meta, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise CorruptFileError(f"Cannot read the {what} {str(path)!r}: tensor {name!r} "
                                   "has no valid data_offsets in the header.")
        end = max(end, int(offsets[1]))
    if 8 + n + end != size:
        state = "truncated" if 8 + n + end > size else "longer than its header says"
        raise CorruptFileError(
            f"Cannot read the {what} {str(path)!r}: the file is {state} (its header "
            f"describes {8 + n + end} bytes, the file has {size}).")
    return header


def read_safetensors(path: Any, what: str = "safetensors file", *, framework: str = "pt",
                     device: str = "cpu") -> dict[str, Any]:
    """All tensors of a safetensors file (``framework`` ``"pt"`` or ``"numpy"``).

    The header is checked first (:func:`read_safetensors_header`), so a truncated file
    or another format renamed ``.safetensors`` is named, not reported as
    ``incomplete metadata`` or ``header too large``.
    """
    read_safetensors_header(path, what)
    with reading(path, what, "a safetensors file"):
        if framework == "numpy":
            from safetensors.numpy import load_file

            return load_file(str(path))
        from safetensors.torch import load_file

        return load_file(str(path), device=device)


# =========================================================================== checksums
_SAMPLE_BLOCKS = 64
_BLOCK_BYTES = 1 << 16


def array_checksum(array: np.ndarray, full: bool = False) -> str:
    """A checksum of an array's values: fast by default, complete with ``full=True``.

    The fast one hashes the dtype, the shape and ``64`` evenly spaced 64 KiB blocks of
    the bytes (all of them for arrays under 4 MiB), so a file altered in place is
    caught when the change touches a sampled block -- and always for arrays under 4 MiB.

    Parameters
    ----------
    array : ndarray
        The array (a memmap is read only where sampled).
    full : bool
        Hash every byte.

    Returns
    -------
    str
        ``"fast:<hex>"`` or ``"full:<hex>"``.
    """
    a = np.asarray(array)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    flat = a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
    raw = flat.view(np.uint8) if flat.size else np.zeros(0, np.uint8)
    n = raw.size
    if full or n <= _SAMPLE_BLOCKS * _BLOCK_BYTES:
        step = 64 << 20
        for start in range(0, n, step):
            h.update(raw[start:start + step].tobytes())
        return ("full:" if full else "fast:") + h.hexdigest()[:32]
    starts = np.linspace(0, n - _BLOCK_BYTES, _SAMPLE_BLOCKS).astype(np.int64)
    for s in starts:
        h.update(raw[s:s + _BLOCK_BYTES].tobytes())
    return "fast:" + h.hexdigest()[:32]


def array_checksums(array: np.ndarray) -> dict[str, str]:
    """Both checksums of an array (what a writer records): ``{"fast": ..., "full": ...}``."""
    return {"fast": array_checksum(array), "full": array_checksum(array, full=True)}


def verify_checksum(array: np.ndarray, recorded: Mapping[str, str] | None, path: Any,
                    what: str, verify: str | bool = "fast") -> None:
    """Refuse ``array`` if its checksum differs from the one ``recorded`` at save.

    Parameters
    ----------
    array : ndarray
        The loaded array.
    recorded : dict or None
        ``{"fast": ..., "full": ...}`` as :func:`array_checksums` made it (None: written
        before checksums, nothing to check).
    path, what
        Named in the message.
    verify : {"fast", "full", False}
        The sampled checksum (default), every byte, or no check.
    """
    from ._checks import check_option

    check_option("verify", verify, ("fast", "full", False, "none"))
    if not recorded or verify in (False, "none"):
        return
    kind = "full" if verify == "full" and "full" in recorded else "fast"
    if kind not in recorded:
        return
    now = array_checksum(array, full=kind == "full")
    if now != recorded[kind]:
        raise CorruptFileError(
            f"The {what} {str(path)!r} was changed after it was saved: its {kind} checksum "
            f"is {now}, but {recorded[kind]} was recorded when it was written. Re-create it "
            "(load the original data and save it again) rather than editing it in place."
        )


def file_fingerprint(path: Any) -> dict[str, Any]:
    """Size and SHA-256 of a file, or of every file in a folder (for the run manifest).

    Files over 64 MiB are hashed by 64 sampled 64 KiB blocks plus their size.
    """
    path = Path(path)
    if path.is_dir():
        files = {}
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.endswith(".tmp"):
                files[p.relative_to(path).as_posix()] = _file_hash(p)
        return {"kind": "folder", "files": files}
    return {"kind": "file", **_file_hash(path)}


def _file_hash(p: Path) -> dict[str, Any]:
    size = p.stat().st_size
    h = hashlib.sha256()
    with open(p, "rb") as f:
        if size <= 64 << 20:
            while block := f.read(1 << 20):
                h.update(block)
        else:
            for s in np.linspace(0, size - _BLOCK_BYTES, _SAMPLE_BLOCKS).astype(np.int64):
                f.seek(int(s))
                h.update(f.read(_BLOCK_BYTES))
    return {"size": size, "sha256": h.hexdigest()[:32]}


def fingerprint_mismatch(path: Any, recorded: Mapping[str, Any]) -> str | None:
    """Why ``path`` no longer matches its ``recorded`` fingerprint, or None if it does."""
    path = Path(path)
    if not path.exists():
        return "missing"
    now = file_fingerprint(path)
    if now["kind"] != recorded.get("kind"):
        return f"a {now['kind']} where a {recorded.get('kind')} was written"
    if now["kind"] == "file":
        if now["size"] != recorded.get("size"):
            return f"{now['size']} bytes, {recorded.get('size')} were written"
        return None if now["sha256"] == recorded.get("sha256") else "its content changed"
    old, new = recorded.get("files", {}), now["files"]
    gone = sorted(set(old) - set(new))
    if gone:
        return f"{gone[0]} missing" + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
    for name, rec in old.items():
        if new[name] != rec:
            return f"{name} changed ({new[name]['size']} bytes, {rec.get('size')} written)"
    return None


def environ_flag(name: str) -> bool:
    """Whether an environment variable is set to a true value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
