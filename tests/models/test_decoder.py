import json

import numpy as np
import pytest
import torch

from braindecode_kit.models import (
    ADAPTERS,
    BrainDecoder,
    DecoderConfig,
    LinearAdapter,
    MLPAdapter,
    register_adapter,
)


def _cfg(**kw):
    base = dict(subjects={"s1": 12, "s2": 20}, embed_dim=6, d_shared=16, n_blocks=2)
    base.update(kw)
    return DecoderConfig(**base)


def test_config_roundtrip_and_validation():
    cfg = _cfg(token_shape=(3, 4), text_dim=5, adapter_kinds={"s2": "mlp"})
    again = DecoderConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.token_shape == (3, 4)
    assert again.adapter_kind("s2") == "mlp" and again.adapter_kind("s1") == "linear"
    with pytest.raises(ValueError, match="d_shared"):
        _cfg(d_shared=0)
    with pytest.raises(ValueError, match="'norm'"):
        _cfg(norm="batch")
    with pytest.raises(ValueError, match="adapter_kinds"):
        _cfg(adapter_kinds={"zz": "mlp"})
    with pytest.raises(ValueError, match="Unknown DecoderConfig"):
        DecoderConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="subjects"):
        _cfg(subjects={"s1": -3})


def test_forward_routes_by_subject_and_heads():
    model = BrainDecoder(_cfg(token_shape=(3, 4), text_dim=5, adapter_kinds={"s2": "mlp"}),
                         seed=0).eval()
    assert isinstance(model.adapters["s1"], LinearAdapter)
    assert isinstance(model.adapters["s2"], MLPAdapter)
    x1, x2 = torch.randn(4, 12), torch.randn(3, 20)
    out = model({"s1": x1, "s2": x2})
    assert out["image"].shape == (7, 6)
    assert out["tokens"].shape == (7, 3, 4)
    assert out["text"].shape == (7, 5)
    # grouped output equals per-subject output
    assert torch.allclose(out["image"][:4], model(x1, "s1")["image"], atol=1e-6)
    assert torch.allclose(out["image"][4:], model(x2, "s2")["image"], atol=1e-6)


def test_forward_mixed_rows_with_subject_list():
    model = BrainDecoder(DecoderConfig(subjects={"a": 5, "b": 5}, embed_dim=3, d_shared=8),
                         seed=1).eval()
    x = torch.randn(6, 5)
    subj = ["a", "b", "a", "b", "b", "a"]
    out = model(x, subj)["image"]
    for i, s in enumerate(subj):
        assert torch.allclose(out[i], model(x[i:i + 1], s)["image"][0], atol=1e-6)
    with pytest.raises(ValueError, match="one subject per row"):
        model(x, ["a"])


def test_predict_checks_features_and_subject():
    model = BrainDecoder(_cfg(), seed=0)
    X = np.random.default_rng(0).standard_normal((10, 12)).astype("float32")
    pred = model.predict(X, subject="s1", batch_size=3)
    assert pred.dtype == np.float32 and pred.shape == (10, 6)
    assert model.training  # mode restored
    assert np.allclose(pred, model.predict(X, subject="s1"), atol=1e-6)
    with pytest.raises(ValueError, match="expects 20 features.*has 12"):
        model.predict(X, subject="s2")
    with pytest.raises(KeyError, match="Unknown subject 'zz'"):
        model.predict(X, subject="zz")
    with pytest.raises(ValueError, match="subject must be given"):
        model.predict(X)
    bad = X.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.predict(bad, subject="s1")


def test_predict_accepts_trialset_like():
    model = BrainDecoder(_cfg(), seed=0)

    class TS:
        subject = "s2"
        data = np.ones((4, 20), "float32")

    assert model.predict(TS()).shape == (4, 6)


def test_seeded_init_is_deterministic_and_isolated():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b = BrainDecoder(_cfg(), seed=7), BrainDecoder(_cfg(), seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka
    c = BrainDecoder(_cfg(), seed=8)
    assert not torch.equal(a.adapters["s1"].linear.weight, c.adapters["s1"].linear.weight)


def test_save_and_load_roundtrip(tmp_path):
    model = BrainDecoder(_cfg(token_shape=(2, 3), token_rank=4, text_dim=5), seed=0)
    model.add_subject("s3", 9, adapter="mlp")
    out = model.save_pretrained(tmp_path / "m")
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == ["config.json", "model.safetensors"]  # (+ the writer's hidden marker)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["subjects"]["s3"] == {"modality": "fmri", "feature_shape": [9], "adapter": "mlp",
                                     "ch_names": None, "positions": None, "sfreq": None}
    loaded = BrainDecoder.from_pretrained(out)
    X = np.random.default_rng(1).standard_normal((5, 9)).astype("float32")
    assert np.allclose(loaded.predict(X, subject="s3"), model.predict(X, subject="s3"), atol=1e-6)
    assert loaded.predict(X, subject="s3", head="tokens").shape == (5, 2, 3)
    # overwrite is atomic and leaves no temp folders
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "config.json").write_text("{}")
        BrainDecoder.from_pretrained(tmp_path / "empty")


def test_add_subject_rejects_duplicates_and_registry_is_open():
    model = BrainDecoder(_cfg(), seed=0)
    with pytest.raises(ValueError, match="already has an adapter"):
        model.add_subject("s1", 12)

    @register_adapter("test-scaled")
    class Scaled(torch.nn.Module):
        produces = "vector"

        def __init__(self, n, d):
            super().__init__()
            self.lin = torch.nn.Linear(n, d)
            self.norm = torch.nn.Identity()

        @classmethod
        def from_config(cls, spec, config):
            return cls(spec.n_features, config.d_shared)

        def forward(self, x):
            return self.norm(2 * self.lin(x.flatten(1)))

    try:
        model.add_subject("meg", (3, 4), adapter="test-scaled")
        assert model.predict(np.zeros((2, 3, 4), "float32"), subject="meg").shape == (2, 6)
        with pytest.raises(ValueError, match=r"expects \(3, 4\) features"):
            model.predict(np.zeros((2, 12), "float32"), subject="meg")
    finally:
        ADAPTERS.pop("test-scaled")
    with pytest.raises(ValueError, match="'adapter'"):
        model.add_subject("s9", 4, adapter="nope")


def test_decoder_shows_itself_in_notebooks():
    cfg = DecoderConfig(subjects={"sub-01": 30, "sub-02": 45}, embed_dim=16, d_shared=32)
    html = BrainDecoder(cfg, seed=0)._repr_html_()
    assert "BrainDecoder" in html and "sub-02" in html and "32-d" in html
    assert "stimulus map" in html and "<td style='text-align:left'>no</td>" in html
