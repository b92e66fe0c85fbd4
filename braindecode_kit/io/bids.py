"""Finding fMRI runs, events, masks and atlases in a BIDS dataset (with nilearn's BIDS
helpers).

Layout read (BIDS 1.8, plus BIDS-derivatives for masks and atlases)::

    root/sub-XX/[ses-YY/]func/sub-XX[_ses-YY]_task-T[_run-ZZ]_bold.nii[.gz]
                                          ..._bold.json   (RepetitionTime)
                                          ..._events.tsv  (onset, duration, stimulus_id...)
    root/derivatives/<pipeline>/sub-XX/anat/sub-XX_desc-brain_mask.nii[.gz]
    root/derivatives/<pipeline>/sub-XX/anat/sub-XX_atlas-<name>_dseg.nii[.gz]
    root/derivatives/<pipeline>/atlas-<name>_dseg.tsv     (index, name)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._readers import read_json, read_tsv, require_number
from .._utils import PathLike

__all__ = [
    "FMRIRun",
    "find_fmri_runs",
    "find_derivative",
    "read_atlas_labels",
    "read_repetition_time",
    "subject_label",
]


@dataclass(frozen=True)
class FMRIRun:
    """One BOLD run found in a BIDS dataset."""

    subject: str
    session: str
    task: str
    run: str
    bold: Path
    events: Path
    sidecar: Path | None


def subject_label(subject: str | int) -> str:
    """``'sub-01'``, ``'01'`` or ``1`` -> ``'01'`` (an int is zero-padded to 2 digits)."""
    if isinstance(subject, int):
        return f"{subject:02d}"
    subject = str(subject)
    return subject[4:] if subject.startswith("sub-") else subject


def _strip(label: str | int, prefix: str) -> str:
    label = str(label)
    return label[len(prefix) + 1 :] if label.startswith(prefix + "-") else label


def find_fmri_runs(
    root: PathLike,
    subject: str | int,
    *,
    sessions: list[str | int] | None = None,
    task: str | None = None,
) -> list[FMRIRun]:
    """All BOLD runs of one subject, sorted by session then run, each with its events.

    Parameters
    ----------
    root : path
        BIDS dataset root.
    subject : str | int
        Subject label, with or without ``sub-``.
    sessions : list | None
        Session labels to keep (``'01'``, ``'ses-01'`` or ``1``); None keeps all.
    task : str | None
        Task label to keep; None keeps all tasks.

    Returns
    -------
    runs : list of FMRIRun

    Raises
    ------
    FileNotFoundError
        If the root, the subject or any matching run is missing, or a run has no
        ``_events.tsv``.
    """
    from nilearn.interfaces.bids import get_bids_files, parse_bids_filename

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BIDS root {str(root)!r} is not a directory.")
    sub = subject_label(subject)
    if not (root / f"sub-{sub}").is_dir():
        found = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
        raise FileNotFoundError(
            f"Subject {subject!r} not found in {str(root)!r}: expected a folder "
            f"'sub-{sub}', found {found}."
        )
    filters = [("task", task)] if task is not None else None
    files = []
    for ext in ("nii.gz", "nii"):
        files += get_bids_files(
            root, file_tag="bold", file_type=ext, sub_label=sub, modality_folder="func",
            filters=filters,
        )
    want = None
    if sessions is not None:
        want = {
            (f"{s:02d}" if isinstance(s, int) else _strip(s, "ses")) for s in sessions
        }
    runs = []
    for f in sorted(set(files)):
        parsed = parse_bids_filename(f)
        ent = parsed.get("entities", parsed)  # nilearn >= 0.12 nests the entities
        ses = ent.get("ses", "")
        if want is not None and ses not in want:
            continue
        path = Path(f)
        stem = path.name.split("_bold.nii")[0]
        events = path.with_name(f"{stem}_events.tsv")
        if not events.is_file():
            raise FileNotFoundError(
                f"The BOLD run {path.name!r} has no events file: expected {events.name!r} "
                "beside it."
            )
        sidecar = path.with_name(f"{stem}_bold.json")
        runs.append(
            FMRIRun(
                subject=sub,
                session=ses,
                task=ent.get("task", ""),
                run=ent.get("run", ""),
                bold=path,
                events=events,
                sidecar=sidecar if sidecar.is_file() else None,
            )
        )
    if want is not None:
        missing = want - {r.session for r in runs}
        if missing:
            raise FileNotFoundError(
                f"Session(s) {sorted(missing)} of sub-{sub} not found in {str(root)!r}."
            )
    if not runs:
        raise FileNotFoundError(
            f"No BOLD runs for sub-{sub} in {str(root)!r} (sessions={sessions}, "
            f"task={task!r})."
        )
    runs.sort(key=lambda r: (r.session, r.task, _run_key(r.run), str(r.bold)))
    return runs


def _run_key(run: str):
    return (0, int(run), "") if run.isdigit() else (1, 0, run)


def find_derivative(root: PathLike, subject: str | int, suffix: str) -> Path:
    """One subject-level derivative image, e.g. ``suffix='desc-brain_mask'`` or
    ``'atlas-visual_dseg'``, searched under ``root/derivatives/*/sub-XX/anat/``.

    Raises
    ------
    FileNotFoundError
        If no file or more than one file matches.
    """
    root = Path(root)
    sub = subject_label(subject)
    hits = sorted(
        p
        for ext in ("nii.gz", "nii")
        for p in root.glob(f"derivatives/*/sub-{sub}/anat/sub-{sub}*_{suffix}.{ext}")
    )
    if not hits:
        raise FileNotFoundError(
            f"No '{suffix}' image for sub-{sub} under {str(root / 'derivatives')!r} "
            f"(expected derivatives/<pipeline>/sub-{sub}/anat/sub-{sub}_{suffix}.nii.gz)."
        )
    if len(hits) > 1:
        raise FileNotFoundError(
            f"Several '{suffix}' images for sub-{sub}: {[str(h) for h in hits]}; pass the "
            "one to use explicitly."
        )
    return hits[0]


def read_atlas_labels(atlas_path: PathLike, root: PathLike | None = None) -> dict[int, str]:
    """Label index -> name of a ``*_dseg.nii.gz`` atlas, from its ``.tsv`` look-up table.

    The table is looked for beside the image (``<same stem>.tsv``), then as
    ``atlas-<name>_dseg.tsv`` in the derivative pipeline's root folder. It needs the
    BIDS columns ``index`` and ``name``.
    """
    atlas_path = Path(atlas_path)
    stem = atlas_path.name.split(".nii")[0]
    candidates = [atlas_path.with_name(stem + ".tsv")]
    atlas_entity = next((p for p in stem.split("_") if p.startswith("atlas-")), None)
    if atlas_entity is not None:
        for parent in atlas_path.parents:
            candidates.append(parent / f"{atlas_entity}_dseg.tsv")
            if root is not None and parent == Path(root):
                break
    for cand in candidates:
        if cand.is_file():
            table = read_tsv(cand, "atlas look-up table")
            missing = {"index", "name"} - set(table.columns)
            if missing:
                raise ValueError(
                    f"The atlas look-up table {str(cand)!r} must have the columns 'index' "
                    f"and 'name', but {sorted(missing)} are missing (found "
                    f"{list(table.columns)})."
                )
            return {int(i): str(n) for i, n in zip(table["index"], table["name"])}
    raise FileNotFoundError(
        f"No label table for the atlas {str(atlas_path)!r}; looked for "
        f"{[str(c) for c in candidates]}."
    )


def read_repetition_time(sidecar: PathLike | None) -> float | None:
    """``RepetitionTime`` (seconds) from a ``_bold.json`` sidecar, or None."""
    if sidecar is None:
        return None
    meta = read_json(sidecar, "_bold.json sidecar")
    tr = meta.get("RepetitionTime")
    if tr is None:
        return None
    return require_number(tr, "RepetitionTime", sidecar, "_bold.json sidecar", positive=True)
