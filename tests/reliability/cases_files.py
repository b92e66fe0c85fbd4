"""Probes: corrupt files of the package's own formats (TrialSet folders, decoders,
targets, checkpoints, the simulation description, COCO captions).

Each row: (name, target, make, expected exception, message fragments). ``make(tmp)``
writes a valid object under ``tmp``, corrupts one file and returns the call to probe.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import _build as b
import numpy as np
from probes import Case

CASES: list[Case] = []


def add(name, target, make, expect=ValueError, fragments=(), **kw):
    CASES.append(Case(name, target, make, expect, tuple(fragments), **kw))


# --------------------------------------------------------------------------- JSON files
#: corruption -> (how, fragment the message must hold besides the file name)
JSON_CORRUPTIONS = {
    "invalid": (lambda p: p.write_text('{"format": "x", "shape": [1, 2'), "JSON"),
    "empty": (lambda p: p.write_text(""), "empty"),
    "truncated": (lambda p: b.truncate(p, 0.5), "JSON"),
    "not_an_object": (lambda p: p.write_text("[1, 2, 3]"), "object"),
    "binary": (lambda p: p.write_bytes(b"\xff\xfe\x00\x81garbage"), "JSON"),
}


def _trialset_json(tmp):
    folder = b.saved_trialset(tmp)

    def call():
        from braindecode_kit.trialset import TrialSet

        return TrialSet.load(folder)
    return folder / "trialset.json", call


def _decoder_json(tmp):
    folder = b.saved_decoder(tmp)

    def call():
        from braindecode_kit.models import BrainDecoder

        return BrainDecoder.from_pretrained(folder)
    return folder / "config.json", call


def _targets_json(tmp):
    folder = b.saved_targets(tmp)

    def call():
        from braindecode_kit.embed import Targets

        return Targets.load(folder)
    return folder / "targets.json", call


def _coco_json(tmp):
    from PIL import Image

    images = tmp / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    cap = tmp / "captions.json"
    cap.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                               "annotations": [{"image_id": 1, "caption": "a thing"}]}))

    def call():
        from braindecode_kit.stimuli import StimulusSet

        return StimulusSet.from_coco(images, cap)
    return cap, call


def _simulation_json(tmp):
    root = tmp / "sim"
    path = root / "derivatives" / "simulation" / "simulation.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"subjects": ["01"], "seed": 0}))

    def call():
        from braindecode_kit.simulate import SimulatedFMRI

        return SimulatedFMRI.load(root)
    return path, call


def _checkpoint(tmp, file):
    """A finished 1-epoch fit with checkpoints; the call resumes it."""
    out = tmp / "fit"
    _fit_once(out)
    ckpt = sorted((out / "checkpoints").glob("epoch-*"))[-1]

    def call():
        return _fit_once(out)
    return ckpt / file, call


def _fit_once(out):
    from braindecode_kit.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    ids = [f"s{i % 8}" for i in range(32)]
    X = rng.normal(size=(32, 20)).astype(np.float32)
    tg = b.targets([f"s{i}" for i in range(8)])
    cfg = TrainConfig(epochs=1, batch_size=16, patience=None, val_n_draws=2)
    return fit(b.decoder(), [("01", X, ids)], tg, cfg, out_dir=out, verbose="ERROR")


JSON_FILES = {
    "trialset.json": ("TrialSet.load", _trialset_json),
    "decoder config.json": ("BrainDecoder.from_pretrained", _decoder_json),
    "targets.json": ("Targets.load", _targets_json),
    "COCO captions": ("StimulusSet.from_coco", _coco_json),
    "simulation.json": ("SimulatedFMRI.load", _simulation_json),
    "checkpoint state.json": ("fit (resume)", lambda tmp: _checkpoint(tmp, "state.json")),
}

for file_label, (target, setup) in JSON_FILES.items():
    for corruption, (how, fragment) in JSON_CORRUPTIONS.items():
        if file_label == "COCO captions" and corruption == "not_an_object":
            fragment = "annotations"

        def make(tmp, setup=setup, how=how):
            path, call = setup(Path(tmp))
            how(path)
            return call

        name_frag = "captions.json" if file_label == "COCO captions" else file_label.split()[-1]
        add(f"json-{file_label.replace(' ', '_')}-{corruption}", target, make, ValueError,
            (name_frag, fragment))


# --------------------------------------------------------------------------- safetensors
def _pickle_bytes() -> bytes:
    import pickle

    return pickle.dumps({"weight": np.zeros((4, 4))})


SAFETENSORS_CORRUPTIONS = {
    "truncated_half": (lambda p: b.truncate(p, 0.5), "truncated"),
    "truncated_tail": (lambda p: p.write_bytes(p.read_bytes()[:-7]), "truncated"),
    "empty": (lambda p: p.write_bytes(b""), "safetensors"),
    "pickle_renamed": (lambda p: p.write_bytes(_pickle_bytes()), "safetensors"),
    "huge_header": (lambda p: p.write_bytes(struct.pack("<Q", 1 << 40) + b"{}"), "safetensors"),
    "header_not_json": (lambda p: p.write_bytes(struct.pack("<Q", 6) + b"{nope}" + b"\0" * 8),
                        "JSON"),
}


def _decoder_weights(tmp):
    path, call = _decoder_json(tmp)
    return path.with_name("model.safetensors"), call


def _targets_weights(tmp):
    path, call = _targets_json(tmp)
    return path.with_name("targets.safetensors"), call


SAFETENSORS_FILES = {
    "decoder model.safetensors": ("BrainDecoder.from_pretrained", _decoder_weights),
    "targets.safetensors": ("Targets.load", _targets_weights),
    "checkpoint model.safetensors": ("fit (resume)",
                                     lambda tmp: _checkpoint(tmp, "model.safetensors")),
}

for file_label, (target, setup) in SAFETENSORS_FILES.items():
    for corruption, (how, fragment) in SAFETENSORS_CORRUPTIONS.items():
        if file_label.startswith("checkpoint") and corruption not in ("truncated_half",
                                                                      "pickle_renamed"):
            continue  # the reader is the same; two rows are enough for checkpoints

        def make(tmp, setup=setup, how=how):
            path, call = setup(Path(tmp))
            how(path)
            return call

        add(f"safetensors-{file_label.replace(' ', '_')}-{corruption}", target, make,
            ValueError, (file_label.split()[-1], fragment))


def _nan_weights(value):
    def make(tmp):
        from safetensors.torch import load_file, save_file

        path, call = _decoder_weights(Path(tmp))
        state = load_file(str(path))
        key = sorted(k for k in state if state[k].is_floating_point())[0]
        state[key].view(-1)[0] = value
        save_file(state, str(path))
        return call
    return make


add("decoder-weights-nan", "BrainDecoder.from_pretrained", _nan_weights(float("nan")),
    ValueError, ("model.safetensors", "NaN"))
add("decoder-weights-inf", "BrainDecoder.from_pretrained", _nan_weights(float("inf")),
    ValueError, ("model.safetensors", "infinite"))


def _decoder_config_edit(edit):
    def make(tmp):
        path, call = _decoder_json(Path(tmp))
        cfg = json.loads(path.read_text())
        edit(cfg)
        path.write_text(json.dumps(cfg))
        return call
    return make


add("decoder-config-no-subjects", "BrainDecoder.from_pretrained",
    _decoder_config_edit(lambda c: c.pop("subjects")), ValueError, ("config.json", "subjects"))
add("decoder-config-other-width", "BrainDecoder.from_pretrained",
    _decoder_config_edit(lambda c: c.update(d_shared=16)), ValueError,
    ("model.safetensors", "config.json"))
add("decoder-valid", "BrainDecoder.from_pretrained",
    lambda tmp: _decoder_json(Path(tmp))[1], None, check=lambda m: m.config.d_shared == 8)
add("targets-valid", "Targets.load", lambda tmp: _targets_json(Path(tmp))[1], None,
    check=lambda t: t.image.shape == (4, 8))


# --------------------------------------------------------------------------- TrialSet folders
def _ts(edit, scattered=False):
    """A saved TrialSet with ``edit(folder)`` applied; the call loads it."""
    def make(tmp):
        if scattered:  # voxels not in C order: the folder has ijk.npy
            from braindecode_kit.info import VoxelInfo
            from braindecode_kit.trialset import TrialSet

            ts = b.trialset()
            ijk = np.argwhere(np.ones(b.SHAPE, bool))[::-1][:20].copy()
            ts = TrialSet(np.asarray(ts.data), ts.trials, "fmri", "01",
                          VoxelInfo(affine=b.AFFINE, shape=b.SHAPE, ijk=ijk))
            folder = ts.save(Path(tmp) / "ts")
        else:
            folder = b.saved_trialset(Path(tmp))
        edit(folder)

        def call():
            from braindecode_kit.trialset import TrialSet

            return TrialSet.load(folder)
        return call
    return make


def _meta(edit):
    def apply(folder):
        path = folder / "trialset.json"
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta))
    return apply


for key in ("shape", "modality", "subject", "dtype", "columns", "index"):
    add(f"trialset-json-without-{key}", "TrialSet.load",
        _ts(_meta(lambda m, key=key: m.pop(key))), ValueError, ("trialset.json", key))
add("trialset-json-shape-text", "TrialSet.load",
    _ts(_meta(lambda m: m.update(shape="12x24"))), ValueError, ("trialset.json", "shape"))
add("trialset-json-shape-other", "TrialSet.load",
    _ts(_meta(lambda m: m.update(shape=[13, 24]))), ValueError, ("data.npy", "trialset.json"))
add("trialset-json-dtype-other", "TrialSet.load",
    _ts(_meta(lambda m: m.update(dtype="float16"))), ValueError, ("data.npy", "float16"))
add("trialset-json-format-other", "TrialSet.load",
    _ts(_meta(lambda m: m.update(format="something"))), ValueError, ("trialset.json", "format"))
add("trialset-json-newer-version", "TrialSet.load",
    _ts(_meta(lambda m: m.update(format_version=99))), ValueError, ("newer", "99"))
add("trialset-json-info-kind", "TrialSet.load",
    _ts(_meta(lambda m: m["info"].update(kind="Bogus"))), ValueError, ("info kind", "Bogus"))
add("trialset-json-info-without-mask", "TrialSet.load",
    _ts(_meta(lambda m: m["info"].pop("mask"))), ValueError, ("trialset.json", "mask"))


def _npy(how):
    return lambda folder: how(folder / "data.npy")


add("trialset-data-truncated", "TrialSet.load", _ts(_npy(lambda p: b.truncate(p, 0.6))),
    ValueError, ("data.npy", "truncated"))
add("trialset-data-empty", "TrialSet.load", _ts(_npy(lambda p: p.write_bytes(b""))),
    ValueError, ("data.npy",))
add("trialset-data-garbage", "TrialSet.load",
    _ts(_npy(lambda p: p.write_bytes(b"not an npy file at all" * 10))), ValueError,
    ("data.npy",))
add("trialset-data-pickled", "TrialSet.load",
    _ts(_npy(lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True))),
    ValueError, ("data.npy",))
add("trialset-data-missing", "TrialSet.load", _ts(_npy(lambda p: p.unlink())), ValueError,
    ("data.npy", "missing"))


def _alter_in_place(p):
    arr = np.load(p, mmap_mode="r+")
    arr[5, 7] += 1.0
    arr.flush()
    del arr


def _nan_in_place(p):
    arr = np.load(p, mmap_mode="r+")
    arr[2, 2] = np.nan
    arr.flush()
    del arr


add("trialset-data-altered-in-place", "TrialSet.load", _ts(_npy(_alter_in_place)),
    ValueError, ("data.npy", "changed"))
add("trialset-data-nan-in-place", "TrialSet.load", _ts(_npy(_nan_in_place)), ValueError,
    ("data.npy",))


def _move_voxel(folder):
    import nibabel as nib

    img = nib.load(folder / "mask.nii.gz")
    mask = np.asarray(img.dataobj).copy()
    on = np.argwhere(mask != 0)
    off = np.argwhere(mask == 0)
    if len(off):
        mask[tuple(on[-1])] = 0
        mask[tuple(off[0])] = 1
    else:  # full grid: shift one voxel onto... a grid one bigger is another grid; swap ROI
        raise RuntimeError("the probe's mask has no free voxel")
    nib.save(nib.Nifti1Image(mask, img.affine), folder / "mask.nii.gz")


add("trialset-mask-voxel-moved", "TrialSet.load", _ts(_move_voxel), ValueError,
    ("mask", "changed"))
add("trialset-mask-truncated", "TrialSet.load",
    _ts(lambda f: b.truncate(f / "mask.nii.gz", 0.5)), ValueError, ("mask.nii.gz",))
add("trialset-mask-empty", "TrialSet.load",
    _ts(lambda f: (f / "mask.nii.gz").write_bytes(b"")), ValueError, ("mask.nii.gz",))
add("trialset-mask-garbage", "TrialSet.load",
    _ts(lambda f: (f / "mask.nii.gz").write_bytes(b"\x1f\x8b" + b"x" * 200)), ValueError,
    ("mask.nii.gz",))
add("trialset-mask-missing", "TrialSet.load", _ts(lambda f: (f / "mask.nii.gz").unlink()),
    FileNotFoundError, ("mask.nii.gz",))
add("trialset-ijk-truncated", "TrialSet.load",
    _ts(lambda f: b.truncate(f / "ijk.npy", 0.5), scattered=True), ValueError, ("ijk.npy",))
add("trialset-trials-empty", "TrialSet.load",
    _ts(lambda f: (f / "trials.tsv").write_text("")), ValueError, ("trials.tsv",))
add("trialset-trials-header-only", "TrialSet.load",
    _ts(lambda f: (f / "trials.tsv").write_text(
        (f / "trials.tsv").read_text().splitlines()[0] + "\n")), ValueError, ("rows",))
add("trialset-trials-other-columns", "TrialSet.load",
    _ts(lambda f: (f / "trials.tsv").write_text("a\tb\n1\t2\n")), ValueError,
    ("trials.tsv", "columns"))
add("trialset-trials-binary", "TrialSet.load",
    _ts(lambda f: (f / "trials.tsv").write_bytes(b"\xff\xfe\x00\x81" * 20)), ValueError,
    ("trials.tsv",))
add("trialset-valid", "TrialSet.load", _ts(lambda f: None), None,
    check=lambda ts: ts.n_trials == 12 and ts.n_voxels == 20)
add("trialset-valid-scattered", "TrialSet.load", _ts(lambda f: None, scattered=True), None,
    check=lambda ts: ts.n_voxels == 20)
