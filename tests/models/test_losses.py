"""Each loss against a value computed by hand in NumPy on tiny tensors."""

import numpy as np
import pytest
import torch

from braindecode_kit.models.losses import (
    CombinedLoss,
    LossSchedule,
    clip_loss,
    cosine_loss,
    mixco,
    mixco_grouped,
    mixco_loss,
    mse_loss,
    soft_clip_loss,
)

P = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])
T = np.array([[1.0, 0.1], [0.5, 0.5], [-0.2, 1.0]])


def _norm(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _log_softmax(a):
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def _t(a):
    return torch.tensor(a, dtype=torch.float32)


def test_clip_loss_matches_numpy():
    tau = 0.5
    logits = _norm(P) @ _norm(T).T / tau
    expected = 0.5 * (-np.mean(np.diag(_log_softmax(logits)))
                      - np.mean(np.diag(_log_softmax(logits.T))))
    got = clip_loss(_t(P), _t(T), tau)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # a perfect prediction at low temperature has a loss near zero
    assert float(clip_loss(_t(T), _t(T), 0.01)) < 1e-3


def test_clip_loss_groups_treats_repeats_as_positives():
    tau = 0.5
    groups = np.array([0, 0, 1])
    logits = _norm(P) @ _norm(T).T / tau
    pos = (groups[:, None] == groups[None]).astype(float)
    soft = pos / pos.sum(1, keepdims=True)
    expected = 0.5 * (-(soft * _log_softmax(logits)).sum(1).mean()
                      - (soft * _log_softmax(logits.T)).sum(1).mean())
    got = clip_loss(_t(P), _t(T), tau, groups=torch.tensor(groups))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(got) != pytest.approx(float(clip_loss(_t(P), _t(T), tau)), rel=1e-3)


def test_soft_clip_loss_matches_numpy():
    tau = 0.3
    p, t = _norm(P), _norm(T)
    s = np.exp(_log_softmax(t @ t.T / tau))
    logits = p @ t.T / tau
    expected = 0.5 * (-(_log_softmax(logits) * s).sum(1).mean()
                      - (_log_softmax(logits.T) * s).sum(1).mean())
    assert float(soft_clip_loss(_t(P), _t(T), tau)) == pytest.approx(expected, rel=1e-5)


def test_mixco_loss_matches_numpy():
    tau = 0.2
    perm = np.array([2, 0, 1])
    betas = np.array([0.7, 1.0, 0.4])
    q = np.zeros((3, 3))
    for i in range(3):
        q[i, i] += betas[i]
        q[i, perm[i]] += 1 - betas[i]
    logits = _norm(P) @ _norm(T).T / tau
    one = -(_log_softmax(logits) * q).sum(1).mean()
    two = -(_log_softmax(logits.T) * q.T).sum(1).mean()
    got_bi = mixco_loss(_t(P), _t(T), torch.tensor(perm), _t(betas), tau)
    got_uni = mixco_loss(_t(P), _t(T), torch.tensor(perm), _t(betas), tau, bidirectional=False)
    assert float(got_bi) == pytest.approx(0.5 * (one + two), rel=1e-5)
    assert float(got_uni) == pytest.approx(one, rel=1e-5)
    # identity permutation with unmixed rows: all the mass stays on the diagonal
    ident = mixco_loss(_t(P), _t(T), torch.arange(3), torch.ones(3), tau)
    assert float(ident) == pytest.approx(float(clip_loss(_t(P), _t(T), tau)), rel=1e-5)


def test_mixco_mixes_half_the_rows_reproducibly():
    x = torch.randn(400, 5)
    out1 = mixco(x, generator=torch.Generator().manual_seed(3))
    out2 = mixco(x, generator=torch.Generator().manual_seed(3))
    xm, perm, betas, select = out1
    assert torch.equal(xm, out2[0]) and torch.equal(perm, out2[1])
    assert 0.4 < select.float().mean() < 0.6
    assert torch.all(betas[~select] == 1)
    assert torch.equal(xm[~select], x[~select])
    i = int(torch.nonzero(select)[0])
    expect = betas[i] * x[i] + (1 - betas[i]) * x[perm[i]]
    assert torch.allclose(xm[i], expect, atol=1e-6)
    # Beta(0.15, 0.15) is U-shaped: most weights near 0 or 1
    b = betas[select]
    assert ((b < 0.1) | (b > 0.9)).float().mean() > 0.5
    assert x.shape == (400, 5)  # input untouched


def test_mixco_grouped_keeps_partners_within_subject():
    inputs = {"a": torch.randn(5, 3), "b": torch.randn(4, 7)}
    mixed, perm, betas = mixco_grouped(inputs, generator=torch.Generator().manual_seed(0))
    assert mixed["a"].shape == (5, 3) and mixed["b"].shape == (4, 7)
    assert set(perm[:5].tolist()) == set(range(5))
    assert set(perm[5:].tolist()) == set(range(5, 9))
    assert betas.shape == (9,)


def test_regression_losses_match_numpy():
    assert float(mse_loss(_t(P), _t(T))) == pytest.approx(np.mean((P - T) ** 2), rel=1e-6)
    cos = (_norm(P) * _norm(T)).sum(1)
    assert float(cosine_loss(_t(P), _t(T))) == pytest.approx(np.mean(1 - cos), rel=1e-6)
    # tokens are flattened per row
    a, b = np.arange(12.0).reshape(2, 3, 2) + 1, np.ones((2, 3, 2))
    cos2 = (_norm(a.reshape(2, -1)) * _norm(b.reshape(2, -1))).sum(1)
    assert float(cosine_loss(_t(a), _t(b))) == pytest.approx(np.mean(1 - cos2), rel=1e-4)


def test_mindeye_schedule():
    s = LossSchedule("mindeye", epochs=9)
    assert s.n_mix_epochs == 3
    assert [s.at(e).kind for e in range(9)] == ["bimixco"] * 3 + ["softclip"] * 6
    assert s.at(0).temperature == pytest.approx(0.006)
    assert s.at(3).temperature == pytest.approx(0.004)
    assert s.at(8).temperature == pytest.approx(0.0075)
    temps = [s.at(e).temperature for e in range(3, 9)]
    assert all(a < b for a, b in zip(temps, temps[1:]))
    # half-cosine: the midpoint of the anneal is the mean of both ends
    s5 = LossSchedule("mindeye", epochs=8, mix_fraction=3 / 8)
    assert s5.at(5).temperature == pytest.approx((0.004 + 0.0075) / 2)
    assert LossSchedule("infonce", temperature=0.1).at(5).kind == "infonce"
    with pytest.raises(ValueError, match="'kind'"):
        LossSchedule("nope")


def test_combined_loss_weighted_sum():
    tau = 0.5
    loss = CombinedLoss(LossSchedule("infonce", epochs=2, temperature=tau),
                        contrastive_weight=0.7, mse_weight=0.3, text_weight=2.0)
    out = {"image": _t(P), "text": _t(P[::-1].copy())}
    tgt = {"image": _t(T), "text": _t(T)}
    total, parts = loss(out, tgt)
    img = 0.7 * float(clip_loss(_t(P), _t(T), tau)) + 0.3 * np.mean((P - T) ** 2)
    txt = 0.7 * float(clip_loss(_t(P[::-1].copy()), _t(T), tau)) + 0.3 * np.mean((P[::-1] - T) ** 2)
    assert float(total) == pytest.approx(img + 2.0 * txt, rel=1e-5)
    assert parts["total"] == pytest.approx(float(total))
    assert "image/infonce" in parts and "text/mse" in parts


def test_combined_loss_learned_temperature_gets_gradient():
    loss = CombinedLoss(LossSchedule("infonce", temperature=0.1), learn_temperature=True)
    assert float(loss.logit_scale.detach().exp()) == pytest.approx(10.0)
    total, _ = loss({"image": _t(P)}, {"image": _t(T)})
    total.backward()
    assert loss.logit_scale.grad is not None and float(loss.logit_scale.grad) != 0


def test_combined_loss_bimixco_needs_perm():
    loss = CombinedLoss(LossSchedule("bimixco"))
    with pytest.raises(ValueError, match="perm"):
        loss({"image": _t(P)}, {"image": _t(T)})
    with pytest.raises(ValueError, match="contrastive_weight"):
        CombinedLoss(contrastive_weight=0)
