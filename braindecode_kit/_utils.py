"""Small helpers shared by the whole package: atomic writes, JSON and hashing.

Input checks live in :mod:`braindecode_kit._checks`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- atomic I/O
@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Nothing is left half-written: if the block raises, the temporary file is removed
    and ``path`` keeps its old content (or stays absent). The temporary is named
    ``.<name>.<pid>-<random>.tmp``, as :func:`atomic_dir`'s, so that one left by a killed
    process is recognised as stale by :func:`clean_stale_temporaries`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


MARKER = ".braindecode_kit"
"""Name of the hidden file every folder writer leaves in the folders it writes."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale_temporaries(path: PathLike) -> list[Path]:
    """Remove the temporaries an earlier, killed write of ``path`` left beside it.

    :func:`atomic_path` and :func:`atomic_dir` name their temporaries
    ``.<name>.<pid>-<random>.tmp``; those of a
    process that no longer runs are removed (a live writer's are left alone). Returns
    the removed paths.
    """
    import shutil

    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for cand in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        pid_part = cand.name[len(path.name) + 2:].split("-", 1)[0]
        if not pid_part.isdigit() or _pid_alive(int(pid_part)):
            continue
        if cand.is_dir():
            shutil.rmtree(cand, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                cand.unlink()
        removed.append(cand)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    import glob

    return glob.escape(name)


def read_marker(path: PathLike) -> dict[str, Any] | None:
    """The writer's marker of a folder (kind and version), or None if it has none."""
    file = Path(path) / MARKER
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_replaceable(path: PathLike, kind: str, produces: Iterable[str] | None = None) -> None:
    """Refuse to replace ``path`` unless it is empty or a folder this kind of writer wrote.

    A folder is this writer's when it holds the marker of the same ``kind``, or (folders
    written before markers existed) when every entry in it is one the writer produces.

    Raises
    ------
    FileExistsError
        If ``path`` is a file, or a folder holding anything else (a user's data, a BIDS
        dataset, another writer's output); the message names the path and what is there.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise FileExistsError(
            f"Refusing to write a {kind} folder at {path}: a file of that name exists and "
            "would be replaced. Remove it yourself or choose another path."
        )
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    marker = read_marker(path)
    if marker is not None:
        if marker.get("kind") == kind:
            return
        raise FileExistsError(
            f"Refusing to write a {kind} folder at {path}: it holds a {marker.get('kind')!r} "
            "written by braindecode_kit, which this would replace. Choose another path."
        )
    if produces is not None and set(entries) <= set(produces):
        return
    shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise FileExistsError(
        f"Refusing to write a {kind} folder at {path}: the folder exists and holds files "
        f"this writer did not make ({shown}). Nothing was changed; remove them yourself or "
        "choose an empty or new folder."
    )


@contextlib.contextmanager
def atomic_dir(path: PathLike, kind: str = "folder",
               produces: Iterable[str] | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` on success.

    An existing folder at ``path`` is replaced only once the new one is complete, and
    only if it is empty or was written by the same ``kind`` of writer
    (:func:`check_replaceable`): nothing a user had is destroyed. The new folder gets a
    marker naming ``kind``; stale temporaries of earlier killed writes are removed first.
    """
    import shutil

    from ._version import __version__

    path = Path(path)
    check_replaceable(path, kind, produces)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                                dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"kind": kind, "version": __version__}) + "\n",
                                  encoding="utf-8")
        if path.exists():
            check_replaceable(path, kind, produces)  # it may have changed meanwhile
            old = path.with_name(f".{path.name}.{os.getpid()}-old.tmp")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_npy_atomic(path: PathLike, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (temp file + rename), never pickling."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)


def write_json_atomic(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically; numpy scalars and arrays are converted."""
    write_text_atomic(path, json.dumps(obj, indent=indent, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """``json.dumps(default=)`` for numpy scalars and arrays and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# --------------------------------------------------------------------------- hashing
def hash_file(path: PathLike, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_bytes(data: bytes, algo: str = "sha256") -> str:
    """Hex digest of bytes."""
    return hashlib.new(algo, data).hexdigest()


def hash_jsonable(obj: Any) -> str:
    """A stable short hash of a JSON-serialisable object (keys sorted)."""
    return hash_bytes(json.dumps(obj, sort_keys=True, default=json_default).encode())[:16]
