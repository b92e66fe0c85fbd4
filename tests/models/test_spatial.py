"""Sensor adapters: spatial attention (shared across subjects), subject layer, sEEG kinds."""

import mne
import numpy as np
import pytest
import torch

from braindecode_kit.info import SensorInfo
from braindecode_kit.models import (
    ADAPTERS,
    BrainDecoder,
    ChannelLinearAdapter,
    DecoderConfig,
    PositionAttentionAdapter,
    SpatialAttentionAdapter,
    SubjectSpec,
    build_adapter,
)


def _meg_spec(n_channels=12, n_times=16, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-0.1, 0.1, (n_channels, 2))
    return SubjectSpec("meg", (n_channels, n_times), ch_names=[f"M{i}" for i in range(n_channels)],
                       positions=pos.tolist(), sfreq=100.0)


def _seeg_spec(n_channels=7, n_times=16, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-0.06, 0.06, (n_channels, 3))
    return SubjectSpec("seeg", (n_channels, n_times), ch_names=[f"C{i}" for i in range(n_channels)],
                       positions=pos.tolist(), sfreq=100.0)


def _cfg(subjects, **kw):
    base = dict(subjects=subjects, embed_dim=8, d_shared=6, conv_width=8, pos_dim=32,
                adapter="spatial_attention", encoder="conv", adapter_dropout=0.0)
    base.update(kw)
    return DecoderConfig(**base)


def test_registry_has_the_sensor_kinds():
    assert ADAPTERS["spatial_attention"] is SpatialAttentionAdapter
    assert ADAPTERS["seeg_position"] is PositionAttentionAdapter
    assert ADAPTERS["channel_linear"] is ChannelLinearAdapter
    for kind in ("spatial_attention", "seeg_position", "channel_linear"):
        assert ADAPTERS[kind].produces == "sequence"


@pytest.mark.parametrize("kind, spec", [("spatial_attention", _meg_spec()),
                                        ("seeg_position", _seeg_spec()),
                                        ("channel_linear", _seeg_spec())])
def test_sensor_adapters_map_channels_to_virtual_channels(kind, spec):
    adapter = build_adapter(kind, spec, _cfg({"s": spec})).eval()
    out = adapter(torch.randn(3, *spec.feature_shape))
    assert out.shape == (3, 6, spec.feature_shape[1])


def test_spatial_attention_needs_positions_of_its_dimension():
    spec = SubjectSpec("meg", (4, 8))
    with pytest.raises(ValueError, match="needs .* one sensor position per channel"):
        build_adapter("spatial_attention", spec, _cfg({"s": spec}))
    with pytest.raises(ValueError, match="reads 3-D sensor positions"):
        build_adapter("seeg_position", _meg_spec(), _cfg({"s": _meg_spec()}))


def test_positions_are_normalised_to_the_unit_box():
    spec = _meg_spec()
    adapter = build_adapter("spatial_attention", spec, _cfg({"s": spec}))
    pos = adapter.positions.numpy()
    assert np.allclose(pos.min(0), 0) and np.allclose(pos.max(0), 1)
    seeg = build_adapter("seeg_position", _seeg_spec(), _cfg({"s": _seeg_spec()}))
    p3 = seeg.positions.numpy()  # a fixed box: the same place is the same input everywhere
    assert np.allclose(p3, (np.asarray(_seeg_spec().positions) + 0.1) / 0.2, atol=1e-6)


def test_disc_dropout_only_in_training_mode():
    spec = _meg_spec(n_channels=40)
    model = BrainDecoder(_cfg({"s": spec}, spatial_dropout=0.3), seed=0)
    att = model.shared["spatial_attention"]
    pos = model.adapters["s"].positions
    att.eval()
    w_eval = att.weights(pos)
    assert (w_eval > 0).all()  # every sensor takes part
    assert torch.equal(w_eval, att.weights(pos))  # and deterministically
    att.train()
    torch.manual_seed(0)
    zeros = [int((att.weights(pos)[0] == 0).sum()) for _ in range(20)]
    assert max(zeros) > 0  # sensors inside the disc get no weight
    assert all(z < 40 for z in zeros)


def test_subjects_share_the_attention_and_own_their_subject_layer():
    a, b = _meg_spec(12, seed=1), _meg_spec(9, seed=2)
    model = BrainDecoder(_cfg({"a": a, "b": b}), seed=0)
    assert model.adapters["a"].attention is model.adapters["b"].attention
    assert model.adapters["a"].attention is model.shared["spatial_attention"]
    keys = list(model.state_dict())
    assert sum(k.endswith("queries") for k in keys) == 1  # one copy, under shared.
    assert "shared.spatial_attention.queries" in keys
    assert {k for k in keys if k.startswith("adapters.a.")} == {"adapters.a.subject_layer.weight"}
    # a new subject's adapter trains only its own subject layer
    new = model.add_subject("c", _meg_spec(10, seed=3), seed=0)
    assert [n for n, _ in new.named_parameters()] == ["subject_layer.weight"]
    assert new.attention is model.shared["spatial_attention"]
    out = model({"a": torch.randn(2, 12, 16), "c": torch.randn(3, 10, 16)})
    assert out["image"].shape == (5, 8)


def test_fmri_decoders_have_no_shared_modules():
    model = BrainDecoder(DecoderConfig(subjects={"s": 10}, embed_dim=4, d_shared=8), seed=0)
    assert len(model.shared) == 0
    assert not any(k.startswith("shared.") for k in model.state_dict())


def test_sensor_decoder_round_trips_with_positions(tmp_path):
    a, b = _meg_spec(12, seed=1), _meg_spec(9, seed=2)
    model = BrainDecoder(_cfg({"a": a, "b": b}), seed=0).eval()
    x = np.random.default_rng(0).standard_normal((4, 12, 16)).astype("float32")
    before = model.predict(x, subject="a")
    model.save_pretrained(tmp_path / "m")
    loaded = BrainDecoder.from_pretrained(tmp_path / "m")
    assert loaded.config.subjects["b"].positions == b.positions
    assert loaded.config.subjects["a"].ch_names == a.ch_names
    assert loaded.adapters["a"].attention is loaded.shared["spatial_attention"]
    np.testing.assert_allclose(loaded.predict(x, subject="a"), before, atol=1e-6)


def test_meg_spec_reads_the_layout_of_the_info():
    """SubjectSpec.from_trialset gives MEG subjects mne.find_layout's 2-D positions."""
    info = mne.channels.read_meg_canonical_info("ctf275")
    info = mne.pick_info(info, mne.pick_types(info, meg=True, ref_meg=False)[:30])

    class Trials:  # the duck type from_trialset reads
        modality, feature_shape, info_ = "meg", (30, 5), None

    ts = Trials()
    ts.info = SensorInfo(info, tmin=0.0)
    spec = SubjectSpec.from_trialset(ts)
    layout = mne.find_layout(info)
    assert np.asarray(spec.positions).shape == (30, 2)
    np.testing.assert_allclose(spec.positions[0], layout.pos[layout.names.index("MLC11"), :2])
    assert spec.ch_names == info.ch_names and spec.sfreq == info["sfreq"]
