"""The low-level head: a blurry image predicted from the brain, trained with the rest."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.embed import Targets
from braindecode_kit.models import BrainDecoder, DecoderConfig
from braindecode_kit.train import TrainConfig, fit

from ._common import sets


def _targets(subs, targets, size=4, seed=0):
    """Targets with blurry images that are a smooth function of the embedding."""
    ids = sorted(targets)
    Y = np.stack([targets[i] for i in ids])
    W = np.random.default_rng(seed).standard_normal((Y.shape[1], 3 * size * size))
    blurry = 1 / (1 + np.exp(-(Y @ W)))  # in (0, 1)
    return Targets(ids, Y, blurry=blurry.reshape(len(ids), 3, size, size))


def _decoder(subs, **kw):
    cfg = DecoderConfig(subjects={s: subs[s]["X_train"].shape[1] for s in subs},
                        embed_dim=16, d_shared=32, n_blocks=1, blurry_size=4, **kw)
    return BrainDecoder(cfg, seed=0)


def test_blurry_head_learns_and_round_trips(problem, tmp_path):
    subs, targets = problem
    tg = _targets(subs, targets)
    dec = _decoder(subs)
    assert "blurry" in dec.head_names
    res = fit(dec, sets(subs, "train"), tg, TrainConfig(epochs=12, batch_size=24,
                                                        patience=None, val_n_draws=3))
    l1 = [h["train_loss"] for h in res.history]
    assert l1[-1] < l1[0]
    s = "sub-01"
    pred = dec.predict(subs[s]["X_test"], subject=s, head="blurry")
    assert pred.shape == (len(subs[s]["ids_test"]), 3, 4, 4)
    assert pred.min() >= 0 and pred.max() <= 1
    truth = tg.loc(list(subs[s]["ids_test"])).blurry
    # each held-out prediction is closer to its own image than to the other test images
    P = pred.reshape(len(pred), -1)
    T = truth.reshape(len(truth), -1)
    P, T = P - P.mean(0), T - T.mean(0)
    r = (P / np.linalg.norm(P, axis=1, keepdims=True)) @ (
        T / np.linalg.norm(T, axis=1, keepdims=True)).T
    own, other = np.diag(r).mean(), (r.sum() - np.trace(r)) / (r.size - len(r))
    assert own > other + 0.1, (own, other)
    dec.save_pretrained(tmp_path / "m")
    back = BrainDecoder.from_pretrained(tmp_path / "m")
    assert back.config.blurry_size == 4
    np.testing.assert_array_equal(back.predict(subs[s]["X_test"], subject=s, head="blurry"),
                                  pred)


def test_blurry_targets_checked(problem):
    subs, targets = problem
    ids = sorted(targets)
    Y = np.stack([targets[i] for i in ids])
    with pytest.raises(ValueError, match="'blurry' must have shape"):
        Targets(ids, Y, blurry=np.zeros((len(ids), 4, 4)))
    tg = Targets(ids, Y, blurry=np.zeros((len(ids), 3, 8, 8)))
    with pytest.raises(ValueError, match="blurry head outputs"):
        fit(_decoder(subs), sets(subs, "train"), tg, TrainConfig(epochs=1, batch_size=24,
                                                                patience=None))
