"""Resumable batch reconstruction: one PNG per job, sharded over processes with accelerate.

:func:`reconstruct_batch` turns a list of :class:`ImageJob` records (a key such as
``"fmri/sub-01/decoder/s0042"``, an embedding, optionally a seed and an img2img starting
image) into ``out_dir/<key>.png``. Each image's noise depends only on the reconstructor's
seed and the job's key (:func:`~braindecode_kit.reconstruct.base.item_seeds`), and the
batches are cut from the job list in its order (``batch_size`` jobs each), so a batch's
composition never depends on how many processes run or on what an earlier run finished:
a killed run resumed, or a run on any number of processes, writes the same files.

The output folder::

    out_dir/
        .braindecode_kit          marker: a folder this writer made
        reconstruct.json          written first: the jobs' fingerprint and the settings
        <key>.png                 one per job, each written atomically
        .done/batch-000000.json   one per finished batch: its keys, rank, PNG sha256
        manifest.json             written last, by the main process: settings,
                                  fingerprint and, per key, its file, seed, batch, sha256

Under ``accelerate launch`` the batch indices are split with
:meth:`accelerate.PartialState.split_between_processes`; every rank writes the PNGs and
``.done`` records of its own batches and the main process writes ``manifest.json`` once
all have finished. A resumed run skips a batch whose record exists and whose PNGs all
still have the recorded sha256; any other batch is generated again, whole (same
composition and seeds, hence the same images), and only its missing or changed PNGs are
written. A finished PNG is never deleted.

Because a batch is always the same jobs, a run's images do not rest on the backend being
batch-invariant. The built-in one is, on the CPU, for any batch size: batches of fewer
than 4 images are padded (``nn.Linear`` on fewer than 4 rows takes another MKL kernel,
whose rounding moved a few pixels by 1 grey level). The diffusers backends agree across
batch sizes to within 1 grey level on the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_int, check_type
from .._docs import fill_doc
from .._logging import logger, verbose
from .._logging import progress as progress_bar
from .._readers import read_json
from .._utils import (
    MARKER,
    PathLike,
    atomic_path,
    check_replaceable,
    clean_stale_temporaries,
    hash_bytes,
    hash_file,
    json_default,
    read_marker,
    write_json_atomic,
)
from .base import as_embeddings, item_seeds

__all__ = ["ImageJob", "load_batch_images", "reconstruct_batch"]

KIND = "reconstruction batch"
FORMAT_VERSION = 1
RUN_FILE = "reconstruct.json"
MANIFEST_FILE = "manifest.json"
DONE_DIR = ".done"
PNG = ".png"

_KEY_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_PART = 200
#: temporaries of :func:`atomic_path` and :func:`atomic_dir`: ``.<name>.<pid>-<x>.tmp``
_TEMP = re.compile(r"^\.(?P<name>.+)\.\d+-[^/]*\.tmp$")


@dataclasses.dataclass(frozen=True, eq=False)
class ImageJob:
    """One image to make: where it goes, what it is conditioned on, and its noise.

    Parameters
    ----------
    key : str
        The image's path inside the output folder, without extension (``/``-separated
        parts of letters, digits, ``.``, ``_``, ``-``, each starting with a letter or a
        digit), e.g. ``"fmri/sub-01/decoder/s0042"``.
    embedding : array (dim,)
        The (decoded) CLIP-space embedding.
    seed : int | None
        The image's seed (None: ``item_seeds(reconstructor.seed, [key])[0]``, so that its
        noise depends on the reconstructor's seed and the key only).
    init_image : array (height, width, 3) of uint8 | None
        An img2img starting image (e.g. the low-level head's blurry image).
    """

    key: str
    embedding: np.ndarray
    seed: int | None = None
    init_image: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _Job:
    """A checked job: float32 embedding, resolved seed, its digest."""

    key: str
    embedding: np.ndarray
    seed: int
    init_image: np.ndarray | None
    digest: str


# --------------------------------------------------------------------------- checks
def check_key(key: Any, name: str = "key") -> str:
    """Refuse a key that is not a safe relative path without extension; return it."""
    check_type(name, key, str)
    parts = key.split("/")
    bad = (not key or any(not _KEY_PART.fullmatch(p) or len(p) > _MAX_PART for p in parts))
    if bad:
        raise ValueError(
            f"Invalid value for the {name!r} parameter: a key is a relative path without "
            "extension, '/'-separated parts of letters, digits, '.', '_' and '-' (each "
            f"starting with a letter or a digit, at most {_MAX_PART} characters), e.g. "
            f"'fmri/sub-01/decoder/s0042', but got {key!r} instead.")
    if parts[-1].lower().endswith(PNG):
        raise ValueError(f"Invalid value for the {name!r} parameter: keys carry no extension "
                         f"('.png' is added), but got {key!r} instead.")
    return key


def _check_jobs(jobs: Sequence[ImageJob], seed: int, embed_dim: int | None) -> list[_Job]:
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Sequence):
        raise TypeError(f"The 'jobs' parameter must be a list of ImageJob, but got "
                        f"{type(jobs).__name__} instead.")
    if not jobs:
        raise ValueError("The 'jobs' parameter is empty: give at least one ImageJob.")
    seen: dict[str, int] = {}
    out = []
    for i, job in enumerate(jobs):
        check_type(f"jobs[{i}]", job, ImageJob)
        key = check_key(job.key, f"jobs[{i}].key")
        folded = key.lower()  # two keys equal but for case are one file on macOS/Windows
        if folded in seen:
            raise ValueError(f"Invalid value for the 'jobs' parameter: jobs[{i}].key {key!r} "
                             f"repeats jobs[{seen[folded]}].key {jobs[seen[folded]].key!r} "
                             "(keys must be unique, also ignoring case).")
        seen[folded] = i
        emb = np.asarray(job.embedding)
        if emb.ndim != 1 or not np.issubdtype(emb.dtype, np.number):
            raise ValueError(f"jobs[{i}].embedding ({key!r}) must be a 1-D numeric array "
                             f"(dim,), but got shape {emb.shape} of {emb.dtype}.")
        emb = np.ascontiguousarray(emb, dtype="<f4")
        if job.seed is None:
            s = item_seeds(seed, [key])[0]
        else:
            s = check_int(f"jobs[{i}].seed", job.seed, lo=0)
        init = job.init_image
        if init is not None:
            check_type(f"jobs[{i}].init_image", init, np.ndarray, "a numpy array")
            if init.dtype != np.uint8 or init.ndim != 3 or init.shape[2] != 3:
                raise ValueError(f"jobs[{i}].init_image ({key!r}) must be a uint8 array "
                                 f"(height, width, 3), but got shape {init.shape} of "
                                 f"{init.dtype}.")
            init = np.ascontiguousarray(init)
        out.append(_Job(key, emb, s, init, _job_digest(key, emb, s, init)))
    dims = {j.embedding.shape[0] for j in out}
    if len(dims) > 1:
        raise ValueError(f"The jobs' embeddings must all have one length, but got lengths "
                         f"{sorted(dims)}.")
    with_init = sum(j.init_image is not None for j in out)
    if 0 < with_init < len(out):
        raise ValueError(f"Either every job has an init_image or none has, but {with_init} of "
                         f"{len(out)} jobs have one; run them as two batch runs (two "
                         "out_dirs).")
    as_embeddings(np.stack([j.embedding for j in out]), embed_dim, "jobs' embeddings")
    return out


def _job_digest(key: str, emb: np.ndarray, seed: int, init: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(f"{key}\0{emb.shape}\0".encode())
    h.update(emb.tobytes())
    h.update(f"\0{seed}\0".encode())
    if init is None:
        h.update(b"no init image")
    else:
        h.update(f"{init.shape}\0".encode())
        h.update(init.tobytes())
    return h.hexdigest()


def _fingerprint(jobs: list[_Job]) -> str:
    return hash_bytes("\n".join(j.digest for j in jobs).encode())


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=json_default))


# --------------------------------------------------------------------------- the folder
def _clean_temporaries(out_dir: Path) -> int:
    """Remove the temporaries killed writers left anywhere in ``out_dir``."""
    n = 0
    for root, _, files in os.walk(out_dir):
        for f in files:
            m = _TEMP.match(f)
            if m:
                n += len(clean_stale_temporaries(Path(root) / m["name"]))
    return n


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between the run recorded in ``reconstruct.json`` and this one."""
    out = []
    s_old, s_new = old.get("settings", {}), new["settings"]
    changed = sorted(k for k in set(s_old) | set(s_new) if s_old.get(k) != s_new.get(k))
    out += [f"setting {k!r} was {s_old.get(k)!r}, now {s_new.get(k)!r}" for k in changed]
    j_old = [tuple(j) for j in old.get("jobs", [])]
    j_new = [tuple(j) for j in new["jobs"]]
    if j_old != j_new:
        d_old, d_new = dict(j_old), dict(j_new)
        removed = [k for k in d_old if k not in d_new]
        added = [k for k in d_new if k not in d_old]
        content = [k for k in d_new if k in d_old and d_old[k] != d_new[k]]

        def few(keys: list[str]) -> str:
            return ", ".join(repr(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")

        if removed:
            out.append(f"{len(removed)} job(s) removed ({few(removed)})")
        if added:
            out.append(f"{len(added)} job(s) added ({few(added)})")
        if content:
            out.append(f"{len(content)} job(s) changed embedding, seed or init image "
                       f"({few(content)})")
        if not (removed or added or content):
            out.append("the jobs are in another order (which changes the batches)")
    return out


def _check_out_dir(out_dir: Path, run: dict[str, Any]) -> None:
    """Refuse ``out_dir`` unless it is new, empty, or a batch run of these jobs and
    settings (read only: every rank checks before anyone writes)."""
    # a file, or a folder of foreign content, is refused; a folder holding only what a run
    # killed while writing the marker left is new
    entries = [p.name for p in out_dir.iterdir()] if out_dir.is_dir() else []
    marker_temps = {e for e in entries if (m := _TEMP.match(e)) and m["name"] == MARKER}
    check_replaceable(out_dir, KIND, produces=marker_temps or None)
    if not out_dir.is_dir():
        return
    run_file = out_dir / RUN_FILE
    if run_file.is_file():
        old = read_json(run_file, "batch run record")
        if old.get("kind") != KIND or old.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"The batch run record {run_file} is of another kind or format "
                             f"({old.get('kind')!r}, version {old.get('format_version')!r}); "
                             "use another out_dir.")
        if old.get("fingerprint") != run["fingerprint"] or old.get("settings") != run["settings"]:
            what = "; ".join(_differences(old, run)) or "its fingerprint differs"
            raise ValueError(
                f"The output folder {out_dir} holds a batch reconstruction of other jobs or "
                f"settings ({what}). Its images would not be those of this run, and the two "
                "are never mixed: nothing was changed. Use another out_dir (or delete this "
                "one yourself to start over).")
        return
    others = [e for e in entries if e != MARKER and not _TEMP.match(e)]
    if others:
        raise FileExistsError(
            f"Refusing to write into {out_dir}: it is marked as a batch reconstruction but "
            f"has no {RUN_FILE} and holds {sorted(others)[:5]}. Nothing was changed; use "
            "another out_dir.")


def _prepare_out_dir(out_dir: Path, run: dict[str, Any]) -> None:
    """(Main process.) Create the folder, its marker and ``reconstruct.json``; remove the
    temporaries of killed runs."""
    from .._version import __version__

    out_dir.mkdir(parents=True, exist_ok=True)
    n = _clean_temporaries(out_dir)
    if n:
        logger.info("removed %d temporary file(s) a killed run left in %s", n, out_dir)
    # in this order, so that a run killed at any point leaves a folder the next one takes
    if read_marker(out_dir) is None:
        write_json_atomic(out_dir / MARKER, {"kind": KIND, "version": __version__})
    if not (out_dir / RUN_FILE).is_file():
        write_json_atomic(out_dir / RUN_FILE, run)
    (out_dir / DONE_DIR).mkdir(exist_ok=True)


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _record_path(out_dir: Path, index: int) -> Path:
    return out_dir / DONE_DIR / f"batch-{index:06d}.json"


def _batch_record(out_dir: Path, index: int, keys: list[str]) -> dict[str, Any] | None:
    """The batch's ``.done`` record if it holds these keys and every PNG listed still has
    its recorded sha256; else None (the batch is to be made)."""
    path = _record_path(out_dir, index)
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        if rec["batch"] != index or rec["keys"] != keys or sorted(rec["sha256"]) != sorted(keys):
            raise ValueError("another batch's record")
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("the record %s is unreadable or not this batch's (%s): the batch is "
                       "made again", path, err)
        return None
    for key in keys:
        png = out_dir / f"{key}{PNG}"
        if not png.is_file() or hash_file(png) != rec["sha256"][key]:
            return None
    return rec


def _default_state():
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # as the pipeline runner and accelerate's AcceleratorState read it
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


# --------------------------------------------------------------------------- the run
@fill_doc
@verbose
def reconstruct_batch(
    reconstructor: Any,
    jobs: Sequence[ImageJob],
    out_dir: PathLike,
    *,
    batch_size: int | None = None,
    init_strength: float | None = None,
    state: Any = None,
    progress: bool = True,
    verbose: bool | str | int | None = None,
) -> dict[str, Any]:
    """Reconstruct one PNG per job into ``out_dir``, resuming what an earlier run left.

    Parameters
    ----------
    reconstructor : Reconstructor
        The generator and its sampling settings (its ``seed`` seeds the jobs without one).
    jobs : list of ImageJob
        The images to make, in the order that cuts them into batches.
    out_dir : path
        The output folder (layout in the module's documentation): new, empty, or a batch
        run of the same jobs and settings, which is resumed. Anything else is refused.
    batch_size : int | None
        Jobs per batch, i.e. per ``generate`` call and ``.done`` record (None: the
        reconstructor's ``batch_size``). Part of the settings: a resumed run keeps it.
    init_strength : float | None
        img2img ``strength`` when the jobs have init images (None: the backend's default).
    state : accelerate.PartialState | None
        The process group (None: ``PartialState()``; one process unless run under
        ``accelerate launch``). Each process makes the batches
        ``state.split_between_processes`` gives it.
    progress : bool
        Show a progress bar (main process only).
    %(verbose)s

    Returns
    -------
    dict
        ``n_jobs``, ``n_batches``, ``n_generated_this_call`` (images this process
        generated), ``n_written_this_call`` (PNGs it wrote: generated ones already on disk
        with the same bytes are left), ``n_skipped`` (images of this process's batches
        already done), ``rank``, ``num_processes``, ``out_dir``, ``manifest`` (the path
        of ``manifest.json``), ``seconds`` and ``images_per_second`` (generated images).

    Raises
    ------
    ValueError
        If a job is invalid (key, embedding, seed, init image; keys repeated; init images
        on some jobs only), or ``out_dir`` holds a run of other jobs or settings.
    FileExistsError
        If ``out_dir`` is a file, or a folder that this writer did not make.
    RuntimeError
        If, at the end, a batch has no valid record (another process failed).

    Examples
    --------
    >>> jobs = [ImageJob(f"sub-01/s{i:04d}", e) for i, e in enumerate(decoded)]  # doctest: +SKIP
    >>> reconstruct_batch(Reconstructor(), jobs, "recon/")  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if batch_size is None:
        batch_size = reconstructor.batch_size
    batch_size = check_int("batch_size", batch_size, lo=1)
    checked = _check_jobs(jobs, reconstructor.seed, reconstructor.embed_dim)
    with_init = checked[0].init_image is not None
    if init_strength is not None and not with_init:
        raise ValueError("'init_strength' needs jobs with an init_image, but no job has one.")
    if with_init and not getattr(reconstructor.impl, "takes_init_images", False):
        raise ValueError(f"The jobs have init images, but backend {reconstructor.backend!r} "
                         "does not take 'init_images'.")
    settings = _jsonable({**reconstructor.settings(), "batch_size": batch_size,
                          "init_strength": init_strength})
    fingerprint = _fingerprint(checked)
    run = {"kind": KIND, "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
           "settings": settings, "n_jobs": len(checked),
           "jobs": [[j.key, j.digest[:16]] for j in checked]}

    state = _default_state() if state is None else state
    main, rank, world = state.is_main_process, state.process_index, state.num_processes
    _check_out_dir(out_dir, run)  # every rank, before anyone writes: all raise alike
    state.wait_for_everyone()
    if main:
        _prepare_out_dir(out_dir, run)
    state.wait_for_everyone()

    batches = [list(range(i, min(i + batch_size, len(checked))))
               for i in range(0, len(checked), batch_size)]
    with state.split_between_processes(list(range(len(batches)))) as mine:
        mine = list(mine)
    todo = [b for b in mine if _batch_record(out_dir, b, [checked[i].key for i in batches[b]])
            is None]
    n_skipped = sum(len(batches[b]) for b in set(mine) - set(todo))
    if main:
        logger.info("reconstruct_batch: %d images in %d batches of %d on %d process(es) into "
                    "%s; this process: %d batches to make, %d images already done",
                    len(checked), len(batches), batch_size, world, out_dir, len(todo),
                    n_skipped)
    n_generated = n_written = 0
    bar = progress_bar(total=sum(len(batches[b]) for b in todo), desc="reconstruct",
                       disable=None if (progress and main) else True)
    for b in todo:
        tb = time.perf_counter()
        sel = [checked[i] for i in batches[b]]
        images = reconstructor.generate(
            np.stack([j.embedding for j in sel]), seeds=[j.seed for j in sel],
            init_images=[_pil(j.init_image) for j in sel] if with_init else None,
            strength=init_strength if with_init else None, batch_size=batch_size)
        n_generated += len(images)
        shas = {}
        for job, image in zip(sel, images, strict=True):
            data = _png(image)
            shas[job.key] = sha = hash_bytes(data)
            path = out_dir / f"{job.key}{PNG}"
            if not (path.is_file() and hash_file(path) == sha):
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
                n_written += 1
        write_json_atomic(_record_path(out_dir, b), {
            "batch": b, "rank": rank, "num_processes": world,
            "keys": [j.key for j in sel], "sha256": shas,
            "seconds": round(time.perf_counter() - tb, 4)})
        bar.update(len(sel))
    bar.close()

    state.wait_for_everyone()
    manifest_path = out_dir / MANIFEST_FILE
    if main:
        _write_manifest(out_dir, run, checked, batches)
    state.wait_for_everyone()  # every process returns once the manifest is there
    seconds = time.perf_counter() - t0
    summary = {
        "n_jobs": len(checked), "n_batches": len(batches),
        "n_generated_this_call": n_generated, "n_written_this_call": n_written,
        "n_skipped": n_skipped, "rank": rank, "num_processes": world,
        "out_dir": str(out_dir), "manifest": str(manifest_path),
        "seconds": round(seconds, 3),
        "images_per_second": round(n_generated / seconds, 3) if n_generated else 0.0,
    }
    if main:
        logger.info("reconstruct_batch: generated %d images (%.2f / s), skipped %d; manifest "
                    "%s", n_generated, summary["images_per_second"], n_skipped, manifest_path)
    return summary


def _pil(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(array)


def _write_manifest(out_dir: Path, run: dict[str, Any], jobs: list[_Job],
                    batches: list[list[int]]) -> None:
    """(Main process, after every rank has finished.) Check every batch's record against
    its PNGs and write ``manifest.json``."""
    images: dict[str, Any] = {}
    missing = []
    for b, idx in enumerate(batches):
        keys = [jobs[i].key for i in idx]
        rec = _batch_record(out_dir, b, keys)
        if rec is None:
            missing.append(b)
            continue
        for i in idx:
            j = jobs[i]
            images[j.key] = {"file": f"{j.key}{PNG}", "sha256": rec["sha256"][j.key],
                             "seed": j.seed, "batch": b}
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {len(batches)} batches have no valid record in "
            f"{out_dir / DONE_DIR} (batches {missing[:5]}{', ...' if len(missing) > 5 else ''}"
            "): a process failed or their PNGs changed. Run reconstruct_batch again to "
            "make them.")
    write_json_atomic(out_dir / MANIFEST_FILE, {
        "kind": KIND, "format_version": FORMAT_VERSION, "fingerprint": run["fingerprint"],
        "settings": run["settings"], "n_jobs": len(jobs), "n_batches": len(batches),
        "images": images})


# --------------------------------------------------------------------------- reading
def load_batch_images(out_dir: PathLike, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The images of a finished batch run, each checked against ``manifest.json``.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`reconstruct_batch`.
    keys : list of str | None
        Which images (None: all, in the jobs' order).

    Returns
    -------
    dict
        key -> :class:`PIL.Image.Image` (loaded into memory).

    Raises
    ------
    FileNotFoundError
        If the folder has no ``manifest.json`` (the run has not finished) or an image's
        PNG is missing.
    ValueError
        If a key is not in the manifest, or a PNG's sha256 is not the recorded one.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{out_dir} has no {MANIFEST_FILE}: it is not a finished batch reconstruction "
            "(run reconstruct_batch again with the same jobs to finish it).")
    manifest = read_json(path, "batch manifest")
    if manifest.get("kind") != KIND or not isinstance(manifest.get("images"), dict):
        raise ValueError(f"{path} is not a batch reconstruction manifest.")
    records = manifest["images"]
    if keys is None:
        keys = list(records)
    elif isinstance(keys, str):
        raise TypeError("The 'keys' parameter must be a list of keys, but got a str; wrap it "
                        "in a list.")
    unknown = [k for k in keys if k not in records]
    if unknown:
        raise ValueError(f"Invalid value for the 'keys' parameter: {unknown[:5]} "
                         f"{'are' if len(unknown) > 1 else 'is'} not in {path} "
                         f"({len(records)} images).")
    out = {}
    for key in keys:
        rec = records[key]
        file = out_dir / f"{check_key(key)}{PNG}"
        if not file.is_file():
            raise FileNotFoundError(f"The image {key!r} is missing: {file} was deleted after "
                                    "the run; run reconstruct_batch again to remake it.")
        data = file.read_bytes()
        if hash_bytes(data) != rec["sha256"]:
            raise ValueError(f"The image {key!r} ({file}) is not the one the run wrote: its "
                             f"sha256 is {hash_bytes(data)}, the manifest records "
                             f"{rec['sha256']}.")
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            out[key] = im.copy()
    return out
