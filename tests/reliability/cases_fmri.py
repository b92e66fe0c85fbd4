"""Probes: fMRI recordings (``load_fmri``, ``load_fmri_bids``, masks).

MEG/sEEG engineers: add a ``cases_meg.py`` / ``cases_seeg.py`` beside this file with a
``CASES`` list built the same way (see README.md) and name it in ``probes.TABLES``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import _build as b
import numpy as np
from probes import Case

CASES: list[Case] = []
RUN2 = "run-02_bold.nii"


def add(name, target, make, expect=ValueError, fragments=(), **kw):
    CASES.append(Case(name, target, make, expect, tuple(fragments), **kw))


def _runs(edit, gz=True, n=3, **kw):
    """Three runs with ``edit(runs)`` applied; the call is load_fmri on them."""
    def make(tmp):
        runs = b.write_runs(Path(tmp) / "func", n, gz=gz)
        edit(runs)
        return lambda: b.load_runs(runs, **kw)
    return make


def _bids(edit, gz=True):
    """A BIDS dataset of three runs with ``edit(runs)`` applied; the call loads it."""
    def make(tmp):
        root = Path(tmp) / "bids"
        runs = b.write_bids(root, gz=gz)
        edit(runs)
        return lambda: b.load_bids(root)
    return make


def _second_bold(how):
    return lambda runs: how(runs[1][0])


def _second_events(how):
    return lambda runs: how(runs[1][2])


def _second_sidecar(how):
    return lambda runs: how(runs[1][1])


def _corrupt_gzip(p: Path):
    raw = bytearray(p.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(64)
    p.write_bytes(bytes(raw))


def _with_data(p: Path, fn):
    import nibabel as nib

    img = nib.load(p)
    data = np.asarray(img.dataobj).copy()
    data = fn(data)
    nib.save(b.nifti(data.astype(np.float32)), p)


def _all_nan(p):
    _with_data(p, lambda d: np.full_like(d, np.nan))


def _negative_voxel(p):
    def fn(d):
        d[0, 0, 0] -= 2000.0  # mean about -1000: not percent-signal-change scalable
        return d
    _with_data(p, fn)


def _zero_mean_voxel(p):
    def fn(d):
        d[1, 1, 1] -= d[1, 1, 1].mean()  # mean exactly 0, varying
        return d
    _with_data(p, fn)


for loader, factory in (("load_fmri", _runs), ("load_fmri_bids", _bids)):
    for gz in (False, True):
        ext = ".nii.gz" if gz else ".nii"
        add(f"{loader}-bold{ext}-truncated-run2", loader,
            factory(_second_bold(lambda p: b.truncate(p, 0.6)), gz=gz), ValueError,
            (RUN2 + (".gz" if gz else ""), "truncated"))
    add(f"{loader}-bold-empty-run2", loader,
        factory(_second_bold(lambda p: p.write_bytes(b""))), ValueError, (RUN2,))
    add(f"{loader}-bold-garbage-run2", loader,
        factory(_second_bold(lambda p: p.write_bytes(b"\x1f\x8b\x08" + b"z" * 500))),
        ValueError, (RUN2,))
    add(f"{loader}-bold-gzip-corrupt-run2", loader,
        factory(_second_bold(_corrupt_gzip)), ValueError, (RUN2,))
    add(f"{loader}-bold-all-nan-run2", loader, factory(_second_bold(_all_nan)), ValueError,
        (RUN2,))
    add(f"{loader}-events-empty-run2", loader,
        factory(_second_events(lambda p: p.write_text(""))), ValueError,
        ("run-02_events.tsv", "empty"))
    add(f"{loader}-events-binary-run2", loader,
        factory(_second_events(lambda p: p.write_bytes(b"\xff\xfe\x00\x81" * 30))),
        ValueError, ("run-02_events.tsv",))
    add(f"{loader}-events-comma-separated-run2", loader,
        factory(_second_events(lambda p: p.write_text(p.read_text().replace("\t", ",")))),
        ValueError, ("run-02", "onset"))
    add(f"{loader}-events-no-stimulus-column-run2", loader,
        factory(_second_events(lambda p: p.write_text("onset\tduration\n4\t2\n"))),
        ValueError, ("run-02", "stimulus_id"))
    add(f"{loader}-events-header-only-run2", loader,
        factory(_second_events(lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"))),
        ValueError, ("run-02", "no trials"))
    add(f"{loader}-events-text-onset-run2", loader,
        factory(_second_events(lambda p: p.write_text(
            p.read_text().replace("\n4.0\t", "\nfour\t", 1)))), ValueError, ("run-02", "onset"))
    add(f"{loader}-negative-mean-voxel", loader, factory(_second_bold(_negative_voxel)), None,
        check=lambda ts: ts.n_voxels == int(np.prod(b.SHAPE)) - 1)
    add(f"{loader}-zero-mean-voxel", loader, factory(_second_bold(_zero_mean_voxel)), None,
        check=lambda ts: ts.n_voxels == int(np.prod(b.SHAPE)) - 1)
    add(f"{loader}-valid", loader, factory(lambda runs: None), None,
        check=lambda ts: ts.n_trials == 27 and ts.n_voxels == int(np.prod(b.SHAPE)))
    add(f"{loader}-stimulus-id-trailing-space", loader,
        factory(_second_events(lambda p: p.write_text(p.read_text().replace("s03\t", "s03 \t")))),
        ValueError, ("whitespace", "s03 "))
    add(f"{loader}-stimulus-in-train-and-test", loader,
        factory(_second_events(lambda p: p.write_text(
            p.read_text().replace("s00\ttest", "s00\ttrain", 1)))), ValueError, ("s00",))

# ------------------------------------------------------------------ the _bold.json sidecar
SIDECARS = {
    "tr-with-unit": ({"RepetitionTime": "1.5 s"}, ("RepetitionTime", "1.5 s")),
    "tr-negative": ({"RepetitionTime": -2.0}, ("RepetitionTime", "positive")),
    "tr-zero": ({"RepetitionTime": 0}, ("RepetitionTime", "positive")),
    "tr-bool": ({"RepetitionTime": True}, ("RepetitionTime",)),
    "tr-list": ({"RepetitionTime": [2.0]}, ("RepetitionTime",)),
    "tr-contradicts-header": ({"RepetitionTime": 3.0}, ("3.0", "disagrees")),
}
for label, (doc, frags) in SIDECARS.items():
    write = _second_sidecar(lambda p, doc=doc: p.write_text(json.dumps(doc)))
    add(f"load_fmri_bids-sidecar-{label}", "load_fmri_bids", _bids(write), ValueError, frags)
    if label in ("tr-with-unit", "tr-contradicts-header"):
        add(f"load_fmri-sidecar-{label}", "load_fmri", _runs(write), ValueError, frags)
for label, how, frag in (
        ("invalid-json", lambda p: p.write_text('{"RepetitionTime": 2.0'), "JSON"),
        ("empty", lambda p: p.write_text(""), "empty"),
        ("not-an-object", lambda p: p.write_text("[2.0]"), "object")):
    add(f"load_fmri_bids-sidecar-{label}", "load_fmri_bids", _bids(_second_sidecar(how)),
        ValueError, ("run-02_bold.json", frag))
    add(f"load_fmri-sidecar-{label}", "load_fmri", _runs(_second_sidecar(how)), ValueError,
        ("run-02_bold.json", frag))
add("load_fmri_bids-sidecar-without-tr", "load_fmri_bids",
    _bids(_second_sidecar(lambda p: p.write_text("{}"))), None,
    check=lambda ts: ts.n_trials == 27)  # the header's TR is used

# ------------------------------------------------------------------ parameters and masks
add("load_fmri-tr-text", "load_fmri", _runs(lambda r: None, tr="2"), ValueError, ("'tr'",))
add("load_fmri-tr-negative", "load_fmri", _runs(lambda r: None, tr=-1.0), ValueError, ("'tr'",))
add("load_fmri-tr-contradicts-sidecar", "load_fmri", _runs(lambda r: None, tr=3.0), ValueError,
    ("3.0", "disagrees"))
add("load_fmri-method-unknown", "load_fmri", _runs(lambda r: None, method="ls"), ValueError,
    ("'method'", "lss"))


def _with_mask(how):
    def make(tmp):
        import nibabel as nib

        runs = b.write_runs(Path(tmp) / "func", 2)
        mask = Path(tmp) / "mask.nii"
        nib.save(b.nifti(np.ones(b.SHAPE, np.uint8), tr=None), mask)
        how(mask)
        return lambda: b.load_runs(runs, mask=mask)
    return make


add("load_fmri-mask-truncated", "load_fmri", _with_mask(lambda p: b.truncate(p, 0.7)),
    ValueError, ("mask.nii", "truncated"))
add("load_fmri-mask-garbage", "load_fmri", _with_mask(lambda p: p.write_bytes(b"x" * 400)),
    ValueError, ("mask.nii",))
add("load_fmri-mask-missing", "load_fmri", _with_mask(lambda p: p.unlink()),
    FileNotFoundError, ("mask.nii",))


def _mask_other_grid(p):
    import nibabel as nib

    nib.save(b.nifti(np.ones((5, 5, 5), np.uint8), tr=None), p)


add("load_fmri-mask-other-grid", "load_fmri", _with_mask(_mask_other_grid), ValueError,
    ("grid",))
add("load_fmri-bold-3d", "load_fmri",
    _runs(_second_bold(lambda p: _with_data(p, lambda d: d[..., 0]))), ValueError,
    ("4-D", RUN2))
add("load_fmri-bold-missing", "load_fmri", _runs(_second_bold(lambda p: p.unlink())),
    FileNotFoundError, (RUN2,))
add("load_fmri-events-missing", "load_fmri", _runs(_second_events(lambda p: p.unlink())),
    FileNotFoundError, ("run-02_events.tsv",))
add("load_fmri-bold-gz-not-gzip", "load_fmri",
    _runs(_second_bold(lambda p: p.write_bytes(gzip.compress(b"")[:5]))), ValueError,
    (RUN2,))
