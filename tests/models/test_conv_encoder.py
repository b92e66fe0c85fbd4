"""The 'conv' encoder: shapes, registry, dilation/GLU pattern, time axis checks, training."""

import numpy as np
import pytest
import torch

from braindecode_kit.models import (
    ENCODERS,
    BrainDecoder,
    ConvEncoder,
    DecoderConfig,
    SubjectSpec,
    TemporalPool,
    build_encoder,
)


def _spec(c=5, t=12):
    return SubjectSpec("seeg", (c, t), positions=np.zeros((c, 3)).tolist())


def _cfg(**kw):
    base = dict(subjects={"a": _spec(), "b": _spec(7)}, embed_dim=4, d_shared=6,
                conv_width=8, n_blocks=6, encoder="conv", adapter="channel_linear",
                adapter_dropout=0.0)
    base.update(kw)
    return DecoderConfig(**base)


def test_registry_and_shapes():
    assert ENCODERS["conv"] is ConvEncoder and ConvEncoder.consumes == "sequence"
    enc = build_encoder("conv", _cfg()).eval()
    assert enc.n_times == 12 and len(enc.blocks) == 6
    assert enc(torch.randn(3, 6, 12)).shape == (3, 6)
    # dilation doubles and resets every 5 blocks; a GLU every second block
    assert [b.conv.dilation[0] for b in enc.blocks] == [1, 2, 4, 8, 16, 1]
    assert [b.glu is not None for b in enc.blocks] == [False, True] * 3
    with pytest.raises(ValueError, match="aggregates 12 time samples"):
        enc(torch.randn(3, 6, 10))


def test_affine_pool_starts_as_the_mean():
    pool = TemporalPool(3, mode="affine", n_times=5)
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(pool(x), x.mean(-1))
    with pytest.raises(ValueError, match="needs n_times"):
        TemporalPool(3, mode="affine")


def test_subjects_must_share_the_time_axis():
    with pytest.raises(ValueError, match="same n_times"):
        BrainDecoder(_cfg(subjects={"a": _spec(5, 12), "b": _spec(5, 10)}))
    model = BrainDecoder(_cfg(), seed=0)
    with pytest.raises(ValueError, match="same n_times"):
        model.add_subject("c", _spec(5, 9))
    assert "c" not in model.config.subjects


def test_vector_adapters_are_refused():
    with pytest.raises(ValueError, match="produces vector features .* consumes sequence"):
        BrainDecoder(_cfg(adapter="linear"))


def test_a_sensor_decoder_learns_and_adapts_by_gradient():
    """fit, adapt_subject (gradient path: no closed form for sensor adapters), estimator."""
    from braindecode_kit.estimators import ContrastiveDecoder
    from braindecode_kit.train import TrainConfig, adapt_subject, can_solve_adapter, fit

    rng = np.random.default_rng(0)
    Y = rng.standard_normal((40, 4)).astype("float32")
    mix = rng.standard_normal((5, 4))

    def trials(n_rep, seed):
        r = np.random.default_rng(seed)
        ids = np.repeat(np.arange(40), n_rep)
        X = np.einsum("cd,nd,t->nct", mix, Y[ids], np.hanning(12)) + 0.3 * r.standard_normal(
            (len(ids), 5, 12))
        return X.astype("float32"), ids

    X, ids = trials(3, 1)
    cfg = _cfg(subjects={"a": _spec()}, n_blocks=2)
    tc = TrainConfig(epochs=5, batch_size=32, lr=3e-3, seed=0, val_n_candidates=20)
    res = fit(BrainDecoder(cfg, seed=0), [("a", X, Y[ids])], None, tc)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert not can_solve_adapter(res.decoder)
    Xn, idn = trials(1, 2)
    new = adapt_subject(res.decoder, ("n", Xn, Y[idn]), None, config=tc)
    assert new.predict(Xn, subject="n").shape == (40, 4)
    # only the new adapter changed
    for k, v in res.decoder.state_dict().items():
        torch.testing.assert_close(new.state_dict()[k], v)
    est = ContrastiveDecoder(adapter="channel_linear", encoder="conv", d_shared=6,
                             decoder_kwargs={"conv_width": 8},
                             epochs=2, batch_size=32, seed=0)
    assert est.fit(X, Y[ids]).predict(X[:3]).shape == (3, 4)
