"""The simulated fMRI lab: layout, formats, determinism, calibration and the oracle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from braindecode_kit.simulate.fmri import SimulatedFMRI, simulate_fmri

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (40, 60, 220)}
POSITIONS = ("left", "centre", "right")


class TinyStimuli:
    """A stand-in StimulusSet (ids, load_image, attributes, fingerprint)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [f"t{seed}-{i:04d}" for i in range(n)]
        rows = []
        for _ in range(n):
            rows.append({"shape": SHAPES[rng.integers(3)],
                         "colour": list(COLOURS)[rng.integers(3)],
                         "position": POSITIONS[rng.integers(3)],
                         "size": ("small", "large")[rng.integers(2)],
                         "background": ("grey", "black")[rng.integers(2)]})
        self.attributes = pd.DataFrame(rows, index=pd.Index(self.ids, name="stimulus_id"))
        self._scene = self.attributes

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self, sid: str) -> str:
        return sid

    def load_image(self, sid: str):
        from PIL import Image, ImageDraw

        a = self._scene.loc[sid]
        bg = (128, 128, 128) if a["background"] == "grey" else (20, 20, 20)
        img = Image.new("RGB", (64, 64), bg)
        d = ImageDraw.Draw(img)
        cx = {"left": 16, "centre": 32, "right": 48}[a["position"]]
        r = 8 if a["size"] == "small" else 14
        box = (cx - r, 32 - r, cx + r, 32 + r)
        col = COLOURS[a["colour"]]
        if a["shape"] == "circle":
            d.ellipse(box, fill=col)
        elif a["shape"] == "square":
            d.rectangle(box, fill=col)
        else:
            d.polygon([(cx, 32 - r), (cx - r, 32 + r), (cx + r, 32 + r)], fill=col)
        return img


SMALL = dict(n_subjects=2, seed=0, n_shared_test=20, n_test_reps=2, n_train_per_subject=30,
             n_voxels=200, n_sessions=2, trials_per_run=20)


@pytest.fixture(scope="module")
def stimuli():
    return TinyStimuli(120)


@pytest.fixture(scope="module")
def sim(stimuli, tmp_path_factory):
    return simulate_fmri(stimuli, tmp_path_factory.mktemp("sim") / "bids", **SMALL)


def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- layout
def test_bids_layout_is_readable(sim):
    import nibabel as nib

    root = sim.root
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.8.0" and desc["DatasetType"] == "raw"
    assert desc["GeneratedBy"][0]["Name"] == "braindecode_kit"
    parts = pd.read_csv(root / "participants.tsv", sep="\t")
    assert list(parts["participant_id"]) == ["sub-01", "sub-02"]
    assert (root / "README").is_file()
    atlas_tsv = pd.read_csv(root / "derivatives/simulation/atlas-visual_dseg.tsv", sep="\t")
    assert dict(zip(atlas_tsv["index"], atlas_tsv["name"])) == {
        1: "early_visual", 2: "higher_visual", 3: "non_visual"}
    for sub in sim.subjects:
        p = sim.paths(sub)
        assert len(p["bold"]) == len(p["events"]) == len(p["bold_json"]) >= 2
        mask = nib.load(p["mask"])
        atlas = nib.load(p["atlas"])
        m = np.asarray(mask.dataobj) > 0
        a = np.asarray(atlas.dataobj)
        assert set(np.unique(a)) == {0, 1, 2, 3}
        assert np.array_equal(a > 0, m)
        n_events = 0
        for bold_p, ev_p, js_p in zip(p["bold"], p["events"], p["bold_json"]):
            assert bold_p.name.startswith(f"sub-{sub}_ses-") and "_task-images_run-" in bold_p.name
            img = nib.load(bold_p)
            assert img.ndim == 4 and img.shape[:3] == mask.shape
            assert np.allclose(img.affine, mask.affine)
            assert img.header.get_zooms()[3] == pytest.approx(sim.tr)
            assert img.header.get_xyzt_units() == ("mm", "sec")
            data = np.asarray(img.dataobj)
            assert data.dtype == np.int16
            assert np.all(data[~m] == 0) and data[m].mean() > 200  # baseline intensities
            js = json.loads(js_p.read_text())
            assert js["RepetitionTime"] == sim.tr and js["TaskName"] == "images"
            ev = pd.read_csv(ev_p, sep="\t")
            assert list(ev.columns[:6]) == ["onset", "duration", "trial_type", "stimulus_id",
                                            "repetition", "split"]
            assert (ev["trial_type"] == "image").all() and (ev["duration"] == 3.0).all()
            assert ev["onset"].is_monotonic_increasing and (np.diff(ev["onset"]) >= 4.0).all()
            # every event ends inside the run, with time for the HRF
            assert (ev["onset"] + ev["duration"]).max() + 10 < img.shape[3] * sim.tr
            n_events += len(ev)
        assert n_events == sim.info["subject_info"][sub]["n_trials"]
        with np.load(p["truebetas"], allow_pickle=False) as z:
            assert z["betas"].shape == (len(sim.test_ids(sub)) + len(sim.train_ids(sub)), m.sum())
            np.testing.assert_array_equal(z["ijk"], np.argwhere(m))
        with np.load(p["encoding_model"], allow_pickle=False) as z:
            assert {"prf_x", "prf_sigma", "exponent", "channel_weights", "semantic_weights",
                    "ncsnr", "noise_ar1", "noise_loadings"} <= set(z.files)
        js = json.loads(p["encoding_model_json"].read_text())
        assert any("Dumoulin" in r for r in js["References"])


def test_events_repetitions_and_splits(sim):
    test = set(sim.test_ids("01"))
    assert test == set(sim.test_ids("02"))
    assert not set(sim.train_ids("01")) & set(sim.train_ids("02"))  # subject-specific
    for sub in sim.subjects:
        ev = pd.concat([pd.read_csv(f, sep="\t") for f in sim.paths(sub)["events"]])
        assert set(ev.loc[ev["split"] == "test", "stimulus_id"]) == test
        assert set(ev.loc[ev["split"] == "train", "stimulus_id"]) == set(sim.train_ids(sub))
        counts = ev.groupby("stimulus_id").size()
        assert (counts[list(test)] == SMALL["n_test_reps"]).all()
        # repetition = number of earlier presentations to this subject
        expected = ev.groupby("stimulus_id").cumcount()
        np.testing.assert_array_equal(ev["repetition"].to_numpy(), expected.to_numpy())
        assert ev.loc[ev["split"] == "train", "repetition"].eq(0).all()


def test_nsd_layout(sim):
    import h5py
    import nibabel as nib
    from scipy.io import loadmat

    nsd = sim.root / "derivatives" / "nsd"
    design = loadmat(nsd / "nsddata/experiments/nsd/nsd_expdesign.mat")
    mo, subjectim, sharedix = design["masterordering"], design["subjectim"], design["sharedix"]
    n_test = SMALL["n_shared_test"]
    assert mo.shape == (1, sim.info["subject_info"]["01"]["n_trials"])
    assert mo.min() == 1 and mo.max() == subjectim.shape[1] == n_test + SMALL["n_train_per_subject"]
    assert subjectim.shape[0] == 2 and sharedix.shape == (1, n_test)
    np.testing.assert_array_equal(subjectim[:, :n_test], np.repeat(sharedix, 2, axis=0))
    info = pd.read_csv(nsd / "nsddata/experiments/nsd/nsd_stim_info_merged.csv")
    id_of = dict(zip(info["nsdId"], info["stimulus_id"]))
    assert {id_of[int(i) - 1] for i in sharedix[0]} == set(sim.test_ids("01"))
    assert info["shared1000"].sum() == n_test
    for s, sub in enumerate(sim.subjects, start=1):
        # the NSD trial order gives the BIDS events' stimuli
        ev = pd.concat([pd.read_csv(f, sep="\t") for f in sim.paths(sub)["events"]])
        stim = [id_of[int(subjectim[s - 1, int(c) - 1]) - 1] for c in mo[0]]
        assert stim == list(ev["stimulus_id"])
        func = nsd / f"nsddata/ppdata/subj{s:02d}/func1pt8mm"
        gen = np.asarray(nib.load(func / "roi/nsdgeneral.nii.gz").dataobj)
        mask = np.asarray(nib.load(sim.paths(sub)["mask"]).dataobj) > 0
        assert set(np.unique(gen)) == {-1, 0, 1} and np.array_equal(gen >= 0, mask)
        betas = []
        for f in sim.paths(sub)["nsd_betas"]:
            with h5py.File(f, "r") as h:
                d = h["betas"]
                assert d.dtype == np.int16 and d.shape[1:] == mask.shape[::-1]
                assert d.chunks == (d.shape[0], 1, 1, 1)
                betas.append(d[:])
        b = np.concatenate(betas)
        assert b.shape[0] == len(ev)
        psc = b.transpose(0, 3, 2, 1)[:, mask].astype(np.float32) / 300.0
        with np.load(sim.paths(sub)["trialbetas"], allow_pickle=False) as z:
            amp = z["betas"]
        # int16 / 300 is percent signal change: same scale as the true trial amplitudes
        assert 0.8 < psc.std() / amp.std() < 1.3
        vis = gen[mask] == 1
        a = amp[:, vis] - amp[:, vis].mean(0)
        p = psc[:, vis] - psc[:, vis].mean(0)
        r = (a * p).sum(0) / np.sqrt((a * a).sum(0) * (p * p).sum(0))
        assert np.median(r) > 0.85


# --------------------------------------------------------------------------- subjects
def test_subjects_differ(sim):
    n = [sim.info["subject_info"][s]["n_voxels"] for s in sim.subjects]
    assert n[0] != n[1]
    shapes = [tuple(sim.info["subject_info"][s]["grid_shape"]) for s in sim.subjects]
    m1, m2 = (sim.encoding_model(s) for s in sim.subjects)
    assert m1["roi"].size == n[0] and m2["roi"].size == n[1]
    assert shapes[0] != shapes[1] or not np.allclose(m1["prf_x"][:50], m2["prf_x"][:50],
                                                     equal_nan=True)


def test_encoding_model_regions(sim):
    m = sim.encoding_model("01")
    roi = m["roi"]
    ids, betas = sim.true_betas("01")
    assert np.all(betas[:, roi == 3] == 0)  # non-visual voxels respond to nothing
    assert betas[:, roi == 1].std(0).min() > 0 and betas[:, roi == 2].std(0).min() > 0
    early = roi == 1
    assert np.isfinite(m["prf_x"][early]).all() and np.all(m["prf_sigma"][early] > 0)
    assert np.all((m["exponent"][roi != 3] > 0) & (m["exponent"][roi != 3] < 1))  # compressive


def test_determinism(stimuli, sim, tmp_path):
    again = simulate_fmri(stimuli, tmp_path / "again", **SMALL)
    assert _hash_tree(again.root) == _hash_tree(sim.root)
    other = simulate_fmri(stimuli, tmp_path / "other", **(SMALL | {"seed": 1}))
    h1, h2 = _hash_tree(other.root), _hash_tree(sim.root)
    assert h1["sub-01/ses-01/func/sub-01_ses-01_task-images_run-01_events.tsv"] != \
        h2["sub-01/ses-01/func/sub-01_ses-01_task-images_run-01_events.tsv"]
    assert set(other.test_ids("01")) != set(sim.test_ids("01"))


def test_reopen_summary_and_html(sim):
    again = SimulatedFMRI.load(sim.root)
    assert again.subjects == sim.subjects and again.test_ids("02") == sim.test_ids("02")
    summary = again.summary()
    json.dumps(summary)
    assert summary["n_subjects"] == 2 and summary["subjects"]["01"]["n_voxels"] > 0
    html = again._repr_html_()
    assert "sub-01" in html and "ncsnr" in html
    assert again.splits("01").value_counts()["test"] == SMALL["n_shared_test"]


# --------------------------------------------------------------------------- calibration
def test_ncsnr_calibration(stimuli, tmp_path):
    import h5py
    import nibabel as nib

    s = simulate_fmri(stimuli, tmp_path / "cal", n_subjects=1, seed=3, n_shared_test=60,
                      n_test_reps=3, n_train_per_subject=20, n_voxels=400, n_sessions=2,
                      trials_per_run=50, nsd_layout=True)
    nc = s.ncsnr("01")
    roi = s.encoding_model("01")["roi"]
    vis = roi != 3
    assert 0.1 <= np.median(nc[vis]) <= 0.6
    assert np.mean((nc[vis] >= 0.1) & (nc[vis] <= 0.6)) > 0.6  # "mostly" in NSD's range
    assert np.all(nc[~vis] == 0)
    # the same figure estimated from the written single-trial betas, as NSD computes it
    p = s.paths("01")
    mask = np.asarray(nib.load(p["mask"]).dataobj) > 0
    b = np.concatenate([h5py.File(f, "r")["betas"][:] for f in p["nsd_betas"]])
    b = b.transpose(0, 3, 2, 1)[:, mask].astype(np.float64) / 300.0
    ev = pd.concat([pd.read_csv(f, sep="\t") for f in p["events"]])
    test = (ev["split"] == "test").to_numpy()
    x, ids = b[test], ev["stimulus_id"].to_numpy()[test]
    u, inv = np.unique(ids, return_inverse=True)
    within = np.mean([x[inv == k].var(0, ddof=1) for k in range(len(u))], axis=0)
    signal = np.maximum(x.var(0) - within, 0)
    nc_data = np.sqrt(signal / within)
    assert abs(np.median(nc_data[vis]) - np.median(nc[vis])) < 0.12


def test_snr_knob_scales_ncsnr(stimuli, tmp_path):
    kw = SMALL | {"n_subjects": 1, "nsd_layout": False}
    lo = simulate_fmri(stimuli, tmp_path / "lo", snr=0.1, **kw)
    hi = simulate_fmri(stimuli, tmp_path / "hi", snr=0.8, **kw)
    vis = lo.encoding_model("01")["roi"] != 3
    assert np.median(hi.ncsnr("01")[vis]) > 5 * np.median(lo.ncsnr("01")[vis])


# --------------------------------------------------------------------------- oracle
def test_oracle(stimuli, tmp_path):
    kw = dict(n_subjects=1, seed=0, n_shared_test=40, n_test_reps=1, n_train_per_subject=10,
              n_voxels=150, n_sessions=1, trials_per_run=25, nsd_layout=False)
    lo = simulate_fmri(stimuli, tmp_path / "lo", snr=0.02, **kw)
    hi = simulate_fmri(stimuli, tmp_path / "hi", snr=0.15, **kw)
    null = simulate_fmri(stimuli, tmp_path / "null", snr=0.0, **kw)
    r_hi = hi.oracle_retrieval("01", n_candidates=40, n_draws=20, n_reps=1)
    r_lo = lo.oracle_retrieval("01", n_candidates=40, n_draws=20, n_reps=1)
    r_null = null.oracle_retrieval("01", n_candidates=40, n_draws=20, n_reps=1)
    assert set(r_hi) >= {"top1", "ci", "draws", "chance"}
    assert r_hi["chance"] == pytest.approx(1 / 40) and len(r_hi["draws"]) == 20
    assert r_hi["ci"][0] <= r_hi["top1"] <= r_hi["ci"][1]
    assert r_hi["top1"] > r_lo["top1"] > r_hi["chance"]
    assert r_null["top1"] < 0.15  # no signal: chance level
    # more repetitions averaged -> better
    r3 = lo.oracle_retrieval("01", n_candidates=40, n_draws=20, n_reps=4)
    assert r3["top1"] > r_lo["top1"]
    # same seed -> same numbers
    assert lo.oracle_retrieval("01", n_candidates=40, n_draws=20, n_reps=1) == r_lo


def test_oracle_is_the_bayes_rule():
    """On a toy problem, the oracle matches brute-force maximum-likelihood identification
    (full Mahalanobis distances in voxel space) in expected accuracy."""
    from braindecode_kit.simulate.oracle import identification_oracle

    rng = np.random.default_rng(0)
    n, V = 30, 40
    means = rng.standard_normal((n, V)) * 0.25
    d = rng.uniform(0.5, 2.0, V)
    L = rng.standard_normal((V, 3)) * 0.8
    n_draws = 400
    out = identification_oracle(means, d, L, n_candidates=n, n_draws=n_draws, n_reps=2, seed=1)
    icov = np.linalg.inv(np.diag(d) + L @ L.T)
    acc = []
    for _ in range(n_draws):
        y = means + (rng.standard_normal((n, V)) * np.sqrt(d)
                     + rng.standard_normal((n, 3)) @ L.T) / np.sqrt(2)
        diff = y[:, None, :] - means[None, :, :]
        dist = np.einsum("ijv,vw,ijw->ij", diff, icov, diff)
        acc.append(np.mean(dist.argmin(1) == np.arange(n)))
    assert 0.2 < np.mean(acc) < 0.9  # an informative regime
    assert out["top1"] == pytest.approx(np.mean(acc), abs=0.03)
    # ignoring the shared noise factors (a diagonal-Gaussian decoder) does worse
    icov_d = np.diag(1 / (d + (L**2).sum(1)))
    acc_d = []
    for _ in range(n_draws):
        y = means + (rng.standard_normal((n, V)) * np.sqrt(d)
                     + rng.standard_normal((n, 3)) @ L.T) / np.sqrt(2)
        diff = y[:, None, :] - means[None, :, :]
        acc_d.append(np.mean(np.einsum("ijv,vw,ijw->ij", diff, icov_d, diff).argmin(1)
                             == np.arange(n)))
    assert np.mean(acc_d) < out["top1"]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"n_subjects": 0}, "n_subjects"),
    ({"snr": -1.0}, "snr"),
    ({"snr": float("nan")}, "snr"),
    ({"tr": 0}, "tr"),
    ({"n_test_reps": 0}, "n_test_reps"),
    ({"n_shared_test": 500}, "n_shared_test"),
    ({"n_train_per_subject": 100}, "Not enough stimuli"),
    ({"blank_fraction": 2.0}, "blank_fraction"),
    ({"n_voxels": 3}, "n_voxels"),
    ({"glm_noise_fraction": 0.0}, "glm_noise_fraction"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments(stimuli, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_fmri(stimuli, tmp_path / "x", **(SMALL | kwargs))
    assert not (tmp_path / "x").exists()


def test_bad_stimuli_and_existing_dir(stimuli, sim, tmp_path):
    with pytest.raises(TypeError, match="StimulusSet"):
        simulate_fmri(["a", "b"], tmp_path / "x")
    # same arguments: reopened, not rewritten
    again = simulate_fmri(stimuli, sim.root, **SMALL)
    assert again.subjects == sim.subjects
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate_fmri(stimuli, sim.root, **(SMALL | {"seed": 5}))
    with pytest.raises(ValueError, match="subject"):
        sim.paths("07")
    with pytest.raises(ValueError, match="n_candidates"):
        sim.oracle_retrieval("01", n_candidates=1000)
    with pytest.raises(FileNotFoundError, match="simulation.json"):
        SimulatedFMRI.load(tmp_path)


def test_killed_run_leaves_nothing(stimuli, tmp_path, monkeypatch):
    from braindecode_kit.simulate import fmri

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fmri, "_write_top", boom)
    with pytest.raises(KeyboardInterrupt):
        simulate_fmri(stimuli, tmp_path / "out", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_saved_model_reproduces_true_betas(sim, stimuli):
    """The saved encoding model is complete: it recomputes the stored noise-free betas."""
    ids, betas = sim.true_betas("02")
    pred = sim.predict_responses("02", stimuli, ids)
    np.testing.assert_allclose(pred, betas, rtol=1e-4, atol=1e-4)
    # and encodes new images (a subset of another subject's images) without error
    other = sim.train_ids("01")[:5]
    assert sim.predict_responses("02", stimuli, other).shape == (5, betas.shape[1])


def test_no_attributes_falls_back_to_image_statistics(tmp_path):
    class Bare(TinyStimuli):
        pass

    bare = Bare(60, seed=2)
    bare.attributes = pd.DataFrame(index=pd.Index(bare.ids, name="stimulus_id"))
    s = simulate_fmri(bare, tmp_path / "bare", **(SMALL | {"n_subjects": 1, "nsd_layout": False}))
    assert s.semantic_mixer().names[0].startswith("global_")
    ids, betas = s.true_betas("01")
    np.testing.assert_allclose(s.predict_responses("01", bare, ids), betas, rtol=1e-4, atol=1e-4)


def test_oracle_single_draw_ci_is_wilson():
    """One draw of the oracle is a proportion over its candidates: its CI is the Wilson
    interval (not the zero-width interval a std over one draw gives), and over several
    draws the normal interval over draws, inside [0, 1]."""
    from braindecode_kit.evaluate import binomial_ci
    from braindecode_kit.simulate._electro import summarise_draws
    from braindecode_kit.simulate.oracle import identification_oracle

    rng = np.random.default_rng(0)
    means = rng.standard_normal((30, 40)) * 3.0  # easy: every identification right
    one = identification_oracle(means, np.ones(40), None, n_candidates=30, n_draws=1)
    assert one["top1"] == 1.0
    assert one["ci"] == pytest.approx(binomial_ci(1.0, 30))
    assert one["ci"][0] < 0.95  # 30/30 does not pin the accuracy to 1
    many = identification_oracle(means * 0.1, np.ones(40), None, n_candidates=30, n_draws=8)
    assert 0.0 <= many["ci"][0] <= many["top1"] <= many["ci"][1] <= 1.0
    s = summarise_draws([0.25], k=1, n_candidates=200, n_draws=1, n_reps=4)
    assert s["ci"] == pytest.approx(binomial_ci(0.25, 200))
    assert s["ci"][0] < 0.25 < s["ci"][1]
