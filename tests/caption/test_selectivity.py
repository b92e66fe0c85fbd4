"""Captions of selectivity (BrainSCUBA-style): the softmax projection stays on the bank,
the encoding model recovers a planted map, and on planted shape-selective voxels the
captions name each group's preferred shape far above chance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from braindecode_kit.caption import (
    Captioner,
    fit_encoding_model,
    preference_embeddings,
    selectivity_captions,
    simulated_selectivity,
)


def test_projection_is_unit_norm_and_goes_to_the_best_bank_item():
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((50, 16))
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    w = bank[[3, 17]] + 0.1 * rng.standard_normal((2, 16))
    sharp = preference_embeddings(w, bank, temperature=1e-3)
    np.testing.assert_allclose(sharp, bank[[3, 17]], atol=1e-4)
    soft = preference_embeddings(w, bank, temperature=10.0)  # near the bank's mean direction
    mean = bank.mean(0) / np.linalg.norm(bank.mean(0))
    assert soft[0] @ mean > 0.99
    np.testing.assert_allclose(np.linalg.norm(soft, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        preference_embeddings(w, bank, temperature=0)


def test_encoding_model_recovers_a_planted_map():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W = rng.standard_normal((8, 5))
    Y = X @ W + 0.01 * rng.standard_normal((400, 5))
    enc = fit_encoding_model(X, Y)
    assert enc["weights"].shape == (5, 8)
    assert np.all(enc["r2"] > 0.95)
    cos = np.sum(enc["weights"] * W.T, 1) / np.linalg.norm(enc["weights"], axis=1) \
        / np.linalg.norm(W.T, axis=1)
    assert np.all(cos > 0.99)
    with pytest.raises(ValueError, match="responses"):
        fit_encoding_model(X, Y[:10])


class _Sim:
    """A stand-in for SimulatedFMRI: voxel indices and noise-free responses."""

    def __init__(self, ijk, ids, betas):
        self.ijk, self.ids, self.betas = ijk, ids, betas

    def encoding_model(self, subject):
        return {"ijk": self.ijk}

    def true_betas(self, subject, ids):
        pos = {s: i for i, s in enumerate(self.ids)}
        return ids, self.betas[[pos[s] for s in ids]]


@pytest.fixture(scope="module")
def planted(embedder):
    """300 world images; 60 voxels, ten per shape, each responding to its shape."""
    from braindecode_kit.info import VoxelInfo
    from braindecode_kit.simulate import make_world
    from braindecode_kit.simulate.world import SHAPES
    from braindecode_kit.trialset import TrialSet

    world = make_world(300, seed=5)
    ids = list(world.ids)
    shapes = world.attributes["shape"].to_numpy()
    rng = np.random.default_rng(0)
    pref = np.repeat(np.arange(len(SHAPES)), 10)
    true = (shapes[:, None] == np.asarray(SHAPES)[pref][None]).astype(np.float32)
    betas = true + 0.3 * rng.standard_normal(true.shape).astype(np.float32)
    ijk = np.array([[i, 0, 0] for i in range(60)])
    info = VoxelInfo(affine=np.eye(4), shape=(60, 1, 1), ijk=ijk)
    trials = pd.DataFrame({"subject": "01", "session": 1, "run": 1, "onset": np.arange(300.0),
                           "stimulus_id": ids, "repetition": 0, "split": "train"})
    ts = TrialSet(betas, trials, modality="fmri", subject="01", info=info)
    emb = embedder.encode_images(world)
    return world, ts, _Sim(ijk, ids, true), emb, ids


def test_selectivity_names_planted_shapes(planted):
    world, ts, sim, emb, ids = planted
    pos = {s: i for i, s in enumerate(ids)}
    res = simulated_selectivity(sim, "01", ts, lambda q: emb[[pos[s] for s in q]],
                                Captioner(num_beams=1), stimuli=world, attribute="shape",
                                min_r2=0.0)
    table = res["groups"]
    assert list(table.columns) == ["unit", "caption", "score", "true", "n_voxels"]
    assert len(table) == 6
    assert res["accuracy"] >= 0.8 > 0.4 > res["chance"]
    assert res["voxel_accuracy"] >= 0.7 and res["n_voxels_scored"] == 60
    img = res["nifti"]
    assert img.shape == (60, 1, 1) and set(np.unique(img.get_fdata())) <= {0.0, 1.0}


def test_selectivity_captions_table(planted):
    world, ts, sim, emb, ids = planted
    enc = fit_encoding_model(emb, np.asarray(ts.data))
    out = selectivity_captions(enc["weights"], emb, Captioner(num_beams=1),
                               groups={"first ten": range(10)}, scores=[0.5])
    assert out.shape == (1, 3) and out["score"].iloc[0] == 0.5
    assert "circle" in out["caption"].iloc[0]  # voxels 0-9 prefer the first shape
