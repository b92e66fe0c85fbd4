"""Tests of the BIDS discovery helpers on tiny BIDS trees written in tmp_path (the files
are placeholders: discovery reads names and sidecars, never the images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braindecode_kit.io.bids import (
    FMRIRun,
    find_derivative,
    find_fmri_runs,
    read_atlas_labels,
    read_repetition_time,
    subject_label,
)


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_run(root: Path, sub: str, ses: str | None, task: str, run: str | None,
              events: bool = True, sidecar: float | None = 2.0, ext: str = "nii.gz") -> Path:
    parts = [f"sub-{sub}"] + ([f"ses-{ses}"] if ses else []) + [f"task-{task}"] + (
        [f"run-{run}"] if run else [])
    stem = "_".join(parts)
    func = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
    bold = touch(func / f"{stem}_bold.{ext}", "not an image")
    if events:
        touch(func / f"{stem}_events.tsv", "onset\tduration\tstimulus_id\n0\t1\ta\n")
    if sidecar is not None:
        touch(func / f"{stem}_bold.json", json.dumps({"RepetitionTime": sidecar}))
    return bold


@pytest.fixture
def bids(tmp_path) -> Path:
    root = tmp_path / "ds"
    touch(root / "dataset_description.json", json.dumps({"Name": "tiny", "BIDSVersion": "1.8.0"}))
    for ses in ("02", "01"):
        for run in ("10", "2", "1"):
            write_run(root, "01", ses, "images", run)
    write_run(root, "01", "01", "rest", None, sidecar=None, ext="nii")
    write_run(root, "02", None, "images", "1")
    return root


# --------------------------------------------------------------------------- labels
@pytest.mark.parametrize("given, label", [("sub-01", "01"), ("01", "01"), (1, "01"),
                                          (12, "12"), ("sub-abc", "abc")])
def test_subject_label(given, label):
    assert subject_label(given) == label


# --------------------------------------------------------------------------- runs
def test_find_fmri_runs_sorted_with_events(bids):
    runs = find_fmri_runs(bids, "sub-01", task="images")
    assert all(isinstance(r, FMRIRun) for r in runs)
    # by session, then run as a number (1, 2, 10), not as text
    assert [(r.session, r.run) for r in runs] == [
        ("01", "1"), ("01", "2"), ("01", "10"), ("02", "1"), ("02", "2"), ("02", "10")]
    first = runs[0]
    assert first.subject == "01" and first.task == "images"
    assert first.bold.name == "sub-01_ses-01_task-images_run-1_bold.nii.gz"
    assert first.events.name == "sub-01_ses-01_task-images_run-1_events.tsv"
    assert first.sidecar.name == "sub-01_ses-01_task-images_run-1_bold.json"
    assert first.events.is_file() and first.sidecar.is_file()


def test_find_fmri_runs_filters(bids):
    every = find_fmri_runs(bids, 1)
    assert len(every) == 7 and {r.task for r in every} == {"images", "rest"}
    rest = find_fmri_runs(bids, "01", task="rest")
    assert len(rest) == 1 and rest[0].bold.suffix == ".nii" and rest[0].run == ""
    assert rest[0].sidecar is None
    only2 = find_fmri_runs(bids, "01", sessions=["ses-02"], task="images")
    assert {r.session for r in only2} == {"02"} and len(only2) == 3
    assert [r.session for r in find_fmri_runs(bids, "01", sessions=[1], task="rest")] == ["01"]
    no_session = find_fmri_runs(bids, "sub-02")
    assert len(no_session) == 1 and no_session[0].session == ""


def test_find_fmri_runs_errors(bids, tmp_path):
    with pytest.raises(FileNotFoundError, match="BIDS root .* is not a directory"):
        find_fmri_runs(tmp_path / "nope", "01")
    with pytest.raises(FileNotFoundError,
                       match=r"Subject 'sub-09' not found.*'sub-09', found \['sub-01', 'sub-02'\]"):
        find_fmri_runs(bids, "sub-09")
    with pytest.raises(FileNotFoundError, match=r"Session\(s\) \['03'\] of sub-01 not found"):
        find_fmri_runs(bids, "01", sessions=["01", "03"])
    with pytest.raises(FileNotFoundError, match="No BOLD runs for sub-01.*task='movie'"):
        find_fmri_runs(bids, "01", task="movie")
    write_run(bids, "03", None, "images", "1", events=False)
    with pytest.raises(FileNotFoundError,
                       match="has no events file: expected 'sub-03_task-images_run-1_events.tsv'"):
        find_fmri_runs(bids, "03")


# --------------------------------------------------------------------------- derivatives
def test_find_derivative(bids):
    anat = bids / "derivatives" / "fmriprep" / "sub-01" / "anat"
    mask = touch(anat / "sub-01_desc-brain_mask.nii.gz")
    assert find_derivative(bids, "sub-01", "desc-brain_mask") == mask
    assert find_derivative(bids, 1, "desc-brain_mask") == mask
    with pytest.raises(FileNotFoundError,
                       match=r"No 'atlas-visual_dseg' image for sub-01.*sub-01_atlas-visual_dseg"):
        find_derivative(bids, "01", "atlas-visual_dseg")
    touch(bids / "derivatives" / "other" / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii")
    with pytest.raises(FileNotFoundError, match="Several 'desc-brain_mask' images for sub-01"):
        find_derivative(bids, "01", "desc-brain_mask")


def test_read_atlas_labels(bids):
    pipe = bids / "derivatives" / "atlases"
    atlas = touch(pipe / "sub-01" / "anat" / "sub-01_atlas-visual_dseg.nii.gz")
    with pytest.raises(FileNotFoundError, match="No label table for the atlas"):
        read_atlas_labels(atlas, root=pipe)
    touch(pipe / "atlas-visual_dseg.tsv", "index\tname\n1\tV1\n2\tFFA\n")  # pipeline level
    assert read_atlas_labels(atlas, root=pipe) == {1: "V1", 2: "FFA"}
    touch(atlas.with_name("sub-01_atlas-visual_dseg.tsv"), "index\tname\n7\tPPA\n")  # beside
    assert read_atlas_labels(atlas) == {7: "PPA"}
    touch(atlas.with_name("sub-01_atlas-visual_dseg.tsv"), "id\tlabel\n7\tPPA\n")
    with pytest.raises(ValueError, match=r"columns 'index' and 'name'.*\['index', 'name'\]"):
        read_atlas_labels(atlas)


def test_read_repetition_time(bids):
    run = find_fmri_runs(bids, "01", sessions=["01"], task="images")[0]
    assert read_repetition_time(run.sidecar) == 2.0
    assert read_repetition_time(None) is None
    no_tr = touch(bids / "x_bold.json", json.dumps({"TaskName": "images"}))
    assert read_repetition_time(no_tr) is None
