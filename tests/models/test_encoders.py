"""Shared encoders: the registry, what each consumes, a sequence encoder pooled to (n, d)."""

import numpy as np
import pytest
import torch
from torch import nn

from braindecode_kit.models import (
    ADAPTERS,
    ENCODERS,
    BrainDecoder,
    DecoderConfig,
    ResidualMLP,
    SubjectSpec,
    TemporalPool,
    build_encoder,
    register_adapter,
    register_encoder,
)


def _cfg(**kw):
    base = dict(subjects={"s1": 12}, embed_dim=4, d_shared=8, n_blocks=2)
    base.update(kw)
    return DecoderConfig(**base)


@pytest.fixture
def sequence_kinds():
    """A tiny sequence adapter and encoder, registered for one test."""

    @register_adapter("test-seq")
    class SeqAdapter(nn.Module):
        """(n, C, T) -> (n, d, T): a 1x1 convolution over channels."""

        produces = "sequence"

        def __init__(self, n_channels, d):
            super().__init__()
            self.conv = nn.Conv1d(n_channels, d, kernel_size=1)
            self.norm = nn.Identity()

        @classmethod
        def from_config(cls, spec, config):
            return cls(spec.feature_shape[0], config.d_shared)

        def forward(self, x):
            return self.norm(self.conv(x))

    @register_encoder("test-seq")
    class SeqEncoder(nn.Module):
        """(n, d, T) -> (n, d): a temporal convolution, then a learned pooling."""

        consumes = "sequence"

        def __init__(self, d):
            super().__init__()
            self.conv = nn.Conv1d(d, d, kernel_size=3, padding=1)
            self.pool = TemporalPool(d, "attention")

        @classmethod
        def from_config(cls, config):
            return cls(config.d_shared)

        def forward(self, x):
            return self.pool(torch.relu(self.conv(x)))

    yield SeqAdapter, SeqEncoder
    ADAPTERS.pop("test-seq")
    ENCODERS.pop("test-seq")


def test_registry_has_the_mlp_and_refuses_unknown_kinds():
    assert "mlp" in ENCODERS.names() and ENCODERS["mlp"] is ResidualMLP
    assert ResidualMLP.consumes == "vector"
    cfg = _cfg()
    assert cfg.encoder == "mlp"
    enc = build_encoder("mlp", cfg)
    assert isinstance(enc, ResidualMLP) and len(enc.blocks) == 2
    assert enc(torch.randn(3, 8)).shape == (3, 8)
    msg = r"Invalid value for the 'encoder' parameter\. Allowed values are 'conv', 'mlp', but got 'x'"
    with pytest.raises(ValueError, match=msg):
        _cfg(encoder="x")
    with pytest.raises(ValueError, match=msg):
        build_encoder("x", cfg)
    with pytest.raises(ValueError, match=r"'Bad.consumes'"):
        register_encoder("test-bad")(type("Bad", (nn.Module,),
                                          {"from_config": classmethod(lambda c, k: None)}))
    assert "test-bad" not in ENCODERS


def test_registry_builds_the_same_mlp_as_before():
    """build_encoder draws the same weights as constructing the MLP directly."""
    cfg = _cfg(norm="none", dropout=0.1)
    torch.manual_seed(3)
    a = build_encoder("mlp", cfg)
    torch.manual_seed(3)
    b = ResidualMLP(8, 2, 0.1, final_norm=False)
    assert isinstance(a.norm, nn.Identity) and a.blocks[0].dropout.p == 0.1
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_temporal_pool():
    x = torch.randn(2, 5, 7)
    assert torch.allclose(TemporalPool(5, "mean")(x), x.mean(-1))
    att = TemporalPool(5, "attention")
    assert att(x).shape == (2, 5)
    const = torch.randn(2, 5, 1).expand(2, 5, 7)  # constant over time: any weighting keeps it
    assert torch.allclose(att(const), const[..., 0], atol=1e-6)
    with pytest.raises(ValueError, match="'mode'"):
        TemporalPool(5, "max")


def test_sequence_encoder_is_pooled_before_the_heads(sequence_kinds):
    SeqAdapter, SeqEncoder = sequence_kinds
    cfg = _cfg(subjects={"m1": SubjectSpec("meg", (3, 10), sfreq=100.0),
                         "m2": SubjectSpec("seeg", (5, 10))},
               adapter="test-seq", encoder="test-seq", text_dim=6)
    model = BrainDecoder(cfg, seed=0).eval()
    assert isinstance(model.encoder, SeqEncoder) and isinstance(model.adapters["m1"], SeqAdapter)
    x1, x2 = torch.randn(4, 3, 10), torch.randn(2, 5, 10)
    assert model.encode(x1, "m1").shape == (4, 8, 10)  # the adapter's sequence
    out = model({"m1": x1, "m2": x2})
    assert out["image"].shape == (6, 4) and out["text"].shape == (6, 6)
    assert torch.allclose(out["image"][:4], model(x1, "m1")["image"], atol=1e-6)
    pred = model.predict(np.zeros((3, 5, 10), "float32"), subject="m2")
    assert pred.shape == (3, 4)


def test_adapter_output_must_match_encoder_input(sequence_kinds):
    with pytest.raises(ValueError, match=r"adapter 'linear' produces vector features "
                                         r"\(n, d_shared\), but the encoder 'test-seq' "
                                         r"consumes sequence"):
        BrainDecoder(_cfg(encoder="test-seq"))
    model = BrainDecoder(_cfg(), seed=0)
    with pytest.raises(ValueError, match="adapter 'test-seq' produces sequence"):
        model.add_subject("m1", SubjectSpec("meg", (3, 10)), adapter="test-seq")
    assert model.subjects == ["s1"] and "m1" not in model.config.subjects
