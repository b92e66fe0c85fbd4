"""Adapters: the registry, the adapter contract (every registered kind), norms, dropout."""

import pytest
import torch

from braindecode_kit.models import (
    ADAPTERS,
    BrainDecoder,
    DecoderConfig,
    LinearAdapter,
    MLPAdapter,
    SubjectSpec,
    build_adapter,
    register_adapter,
)


def _cfg(**kw):
    base = dict(subjects={"s1": 12}, embed_dim=4, d_shared=8, adapter_hidden=16)
    base.update(kw)
    return DecoderConfig(**base)


def test_registry_knows_builtins_and_refuses_unknown_kinds():
    assert {"linear", "mlp"} <= set(ADAPTERS.names())
    assert ADAPTERS["linear"] is LinearAdapter and ADAPTERS["mlp"] is MLPAdapter
    msg = r"Invalid value for the 'adapter' parameter\. Allowed values are .*'linear', 'mlp'.*'nope'"
    with pytest.raises(ValueError, match=msg):
        build_adapter("nope", SubjectSpec("fmri", 12), _cfg())
    with pytest.raises(ValueError, match=msg):
        _cfg(adapter="nope")
    with pytest.raises(ValueError, match=msg):
        SubjectSpec("fmri", 12, adapter="nope")
    with pytest.raises(ValueError, match=r"subjects\['s1'\].*'adapter'.*'nope'"):
        _cfg(subjects={"s1": {"modality": "fmri", "feature_shape": [12], "adapter": "nope"}})


def test_registration_checks_the_contract():
    with pytest.raises(TypeError, match="from_config"):
        register_adapter("test-bad")(type("NoFactory", (torch.nn.Module,), {}))
    with pytest.raises(ValueError, match=r"'NoKind.produces'.*'vector', 'sequence'"):
        register_adapter("test-bad")(type("NoKind", (torch.nn.Module,),
                                          {"from_config": classmethod(lambda c, s, k: None)}))
    assert "test-bad" not in ADAPTERS

    @register_adapter("test-nonorm")
    class NoNorm(torch.nn.Module):
        produces = "vector"

        @classmethod
        def from_config(cls, spec, config):
            return cls()

    try:
        with pytest.raises(TypeError, match="must have a 'norm' module"):
            build_adapter("test-nonorm", SubjectSpec("fmri", 12), _cfg())
    finally:
        ADAPTERS.pop("test-nonorm")
    assert "test-nonorm" not in ADAPTERS


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("norm", ["layernorm", "none"])
def test_adapter_contract_flattens_3d_and_ends_with_its_norm(kind, norm):
    cfg = _cfg(norm=norm, adapter_dropout=0.0)
    spec = SubjectSpec("meg", (3, 4))
    torch.manual_seed(0)
    adapter = build_adapter(kind, spec, cfg).eval()
    assert type(adapter).produces == "vector"
    assert isinstance(adapter.norm, torch.nn.LayerNorm if norm == "layernorm" else
                      torch.nn.Identity)
    keys = list(adapter.state_dict())
    if norm == "layernorm":
        assert keys[-2:] == ["norm.weight", "norm.bias"]  # built after the layers
    else:
        assert not any(k.startswith("norm.") for k in keys)
    x = torch.randn(5, 3, 4)
    out = adapter(x)
    assert out.shape == (5, cfg.d_shared)
    # (n, C, T) is flattened: the same as the flat trials through the same weights
    flat = build_adapter(kind, SubjectSpec("fmri", 12), cfg).eval()
    flat.load_state_dict(adapter.state_dict())
    assert torch.equal(flat(x.reshape(5, 12)), out)
    # the norm is applied last: the output is the norm of the pre-norm features
    pre = adapter.linear(x.flatten(1)) if kind == "linear" else adapter.net(x.flatten(1))
    assert torch.equal(adapter.norm(pre), out)
    if norm == "layernorm":
        assert torch.allclose(out.mean(1), torch.zeros(5), atol=1e-5)


def test_linear_adapter_keeps_its_linear():
    adapter = build_adapter("linear", SubjectSpec("seeg", (6, 10)), _cfg())
    assert isinstance(adapter.linear, torch.nn.Linear)
    assert adapter.linear.weight.shape == (8, 60) and adapter.n_features == 60


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_dropout_only_in_train_mode(kind):
    adapter = build_adapter(kind, SubjectSpec("fmri", 200), _cfg(adapter_dropout=0.5))
    x = torch.randn(4, 200)
    adapter.eval()
    a, b = adapter(x), adapter(x)
    assert torch.equal(a, b)
    adapter.train()
    torch.manual_seed(0)
    c = adapter(x)
    torch.manual_seed(1)
    d = adapter(x)
    assert not torch.allclose(c, d) and not torch.allclose(c, a)
    nodrop = build_adapter(kind, SubjectSpec("fmri", 200), _cfg(adapter_dropout=0.0))
    nodrop.load_state_dict(adapter.state_dict())
    assert torch.equal(nodrop.train()(x), a)  # no dropout: train and eval agree


def test_decoder_adapters_own_their_norms():
    model = BrainDecoder(_cfg(subjects={"s1": 12, "s2": SubjectSpec("meg", (3, 4))},
                              adapter_kinds={"s2": "mlp"}), seed=0)
    assert not hasattr(model, "adapter_norms")
    keys = list(model.state_dict())
    assert "adapters.s1.norm.weight" in keys and "adapters.s2.norm.bias" in keys
    assert not any(k.startswith("adapter_norms") for k in keys)
    # construction order: each subject's layers, then its norm, subject after subject
    s1 = [k for k in keys if k.startswith("adapters.s1.")]
    assert s1 == ["adapters.s1.linear.weight", "adapters.s1.linear.bias",
                  "adapters.s1.norm.weight", "adapters.s1.norm.bias"]
    assert keys.index("adapters.s1.norm.bias") < keys.index("adapters.s2.net.1.weight")
    x = torch.randn(2, 3, 4)
    assert torch.equal(model.eval().encode(x, "s2"), model.adapters["s2"](x))
