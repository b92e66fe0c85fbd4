"""The generation head: a regression output next to the contrastive one (what captions and
reconstructions are generated from); and, for it and the low-level head, the detach flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from braindecode_kit.embed import Targets
from braindecode_kit.evaluate import row_cosine
from braindecode_kit.models import BrainDecoder
from braindecode_kit.models.losses import CombinedLoss, LossSchedule
from braindecode_kit.train import TrainConfig, fit

from ._common import decoder, sets


def _targets(targets):
    ids = sorted(targets)
    return Targets(ids, np.stack([targets[i] for i in ids]))


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_generation_head_learns_the_embeddings_and_round_trips(problem, tmp_path, loss):
    subs, targets = problem
    dec = decoder(subs, generation_head=True)
    assert dec.head_names == ["image", "generation"]
    before = {s: dec.predict(subs[s]["X_test"], subject=s, head="generation") for s in subs}
    res = fit(dec, sets(subs, "train"), _targets(targets),
              TrainConfig(epochs=15, batch_size=24, patience=None, val_n_draws=3,
                          generation_loss=loss))
    # the head's loss is logged and falls
    g = [h[f"loss/generation/{loss}"] for h in res.history]
    assert g[-1] < 0.9 * g[0], g
    for s in subs:
        truth = np.stack([targets[i] for i in subs[s]["ids_test"]])
        pred = dec.predict(subs[s]["X_test"], subject=s, head="generation")
        assert pred.shape == truth.shape
        # held-out trials: the trained head lies closer to the true embeddings than the
        # untrained one, and closer to its own stimulus than to the other test stimuli
        assert row_cosine(pred, truth).mean() > row_cosine(before[s], truth).mean() + 0.1
        sim = _unit(pred) @ _unit(truth).T
        assert np.diag(sim).mean() > (sim.sum() - np.trace(sim)) / (sim.size - len(sim))
    dec.save_pretrained(tmp_path / "m")
    back = BrainDecoder.from_pretrained(tmp_path / "m")
    assert back.config.generation_head and "generation" in back.head_names
    s = "sub-01"
    np.testing.assert_array_equal(back.predict(subs[s]["X_test"], subject=s, head="generation"),
                                  dec.predict(subs[s]["X_test"], subject=s, head="generation"))


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("head, config", [("blurry", {"blurry_size": 4}),
                                          ("generation", {"generation_head": True})])
def test_a_detached_head_keeps_gradients_off_the_encoder(problem, head, config, detach):
    subs, _ = problem
    dec = decoder(subs, **config, **{f"{head}_detach": detach})
    s = "sub-01"
    out = dec(torch.from_numpy(subs[s]["X_train"][:8]), s)
    out[head].abs().mean().backward()
    enc_grad = sum(float(p.grad.abs().sum()) for p in dec.encoder.parameters()
                   if p.grad is not None)
    head_grad = sum(float(p.grad.abs().sum()) for p in dec.heads[head].parameters())
    assert head_grad > 0
    assert (enc_grad == 0) is detach


def test_generation_loss_is_the_regression_onto_the_image_targets():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(6, 5, generator=g)
    image = torch.randn(6, 5, generator=g)
    loss = CombinedLoss(LossSchedule(kind="infonce", epochs=1), generation_weight=2.0)
    base, _ = loss({"image": image}, {"image": target})
    # a perfect generation output adds nothing; its opposite adds 2 x (1 - (-1)) = 4
    same, parts = loss({"image": image, "generation": 3 * target}, {"image": target})
    assert float(same) == pytest.approx(float(base), abs=1e-5)
    assert parts["generation/cosine"] == pytest.approx(0.0, abs=1e-5)
    opposite, _ = loss({"image": image, "generation": -target}, {"image": target})
    assert float(opposite) == pytest.approx(float(base) + 4.0, abs=1e-4)
    mse = CombinedLoss(LossSchedule(kind="infonce", epochs=1), generation_loss="mse")
    total, parts = mse({"image": image, "generation": target + 1.0}, {"image": target})
    assert parts["generation/mse"] == pytest.approx(1.0, abs=1e-5)
    # a zero weight drops the term
    off = CombinedLoss(LossSchedule(kind="infonce", epochs=1), generation_weight=0.0)
    _, parts = off({"image": image, "generation": -target}, {"image": target})
    assert not any(k.startswith("generation") for k in parts)


def test_generation_settings_checked():
    with pytest.raises(ValueError, match="generation_loss"):
        TrainConfig(generation_loss="l1")
    with pytest.raises(ValueError, match="generation_weight"):
        TrainConfig(generation_weight=-1.0)
    with pytest.raises(ValueError, match="generation_loss"):
        CombinedLoss(generation_loss="huber")
    with pytest.raises(TypeError, match="generation_head"):
        decoder({"sub-01": {"X_train": np.zeros((2, 5))}}, generation_head="yes")


def test_without_the_head_there_is_no_generation_output(problem):
    subs, _ = problem
    dec = decoder(subs)
    assert "generation" not in dec.head_names
    with pytest.raises(ValueError, match="generation"):
        dec.predict(subs["sub-01"]["X_test"], subject="sub-01", head="generation")
