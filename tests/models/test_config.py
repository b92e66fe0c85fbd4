"""SubjectSpec and DecoderConfig: validation, config.json round trips, old layouts."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from braindecode_kit.models import BrainDecoder, DecoderConfig, SubjectSpec

DATA = Path(__file__).parent / "data"
# written by tests' braindecode_kit of commit 19f1d71 (norms beside the adapters, subjects
# as feature counts): DecoderConfig(subjects={"s1": 12, "s2": 20}, adapter_kinds={"s2":
# "mlp"}, embed_dim=4, d_shared=8, n_blocks=1, adapter_hidden=16, text_dim=3), seed 5;
# old_layout_init.safetensors is its state dict as built, old_layout_decoder/ the model
# saved after its norms were set to random values, old_layout_predictions.npz what that
# model predicted for the inputs of _old_inputs().
OLD_CONFIG = dict(subjects={"s1": 12, "s2": 20}, adapter_kinds={"s2": "mlp"}, embed_dim=4,
                  d_shared=8, n_blocks=1, adapter_hidden=16, text_dim=3)


def _old_inputs():
    rng = np.random.default_rng(0)
    return {"s1": rng.standard_normal((5, 12)).astype("float32"),
            "s2": rng.standard_normal((5, 20)).astype("float32")}


def _sensor_specs():
    rng = np.random.default_rng(0)
    return {
        "meg1": SubjectSpec("meg", (3, 20), ch_names=["MEG0111", "MEG0121", "MEG0131"],
                            positions=rng.uniform(-1, 1, (3, 2)), sfreq=100.0),
        "seeg1": SubjectSpec("seeg", (4, 20), ch_names=["A1", "A2", "B1", "B2"],
                             positions=rng.uniform(-0.05, 0.05, (4, 3)).tolist(),
                             sfreq=512.0, adapter="mlp"),
    }


# ---------------------------------------------------------------------- SubjectSpec
def test_subject_spec_normalises_and_validates():
    spec = SubjectSpec("fmri", 1500)
    assert spec.feature_shape == (1500,) and spec.n_features == 1500 and spec.adapter is None
    meg = _sensor_specs()["meg1"]
    assert meg.feature_shape == (3, 20) and meg.n_features == 60
    assert isinstance(meg.positions, list) and all(len(p) == 2 for p in meg.positions)
    with pytest.raises(ValueError, match=r"'modality'.*'fmri', 'meg', 'seeg'.*'eeg'"):
        SubjectSpec("eeg", (3, 20))
    with pytest.raises(ValueError, match=r"'feature_shape\[1\]'.*integer >= 1.*0"):
        SubjectSpec("meg", (3, 0))
    with pytest.raises(ValueError, match="'feature_shape'.*non-empty"):
        SubjectSpec("meg", ())
    with pytest.raises(TypeError, match="'feature_shape'.*an int or a tuple of ints.*str"):
        SubjectSpec("fmri", "12")
    with pytest.raises(ValueError, match="'ch_names'.*expected 3 names.*got 2"):
        SubjectSpec("meg", (3, 20), ch_names=["a", "b"])
    with pytest.raises(TypeError, match=r"'ch_names\[1\]'.*str.*int"):
        SubjectSpec("meg", (2, 20), ch_names=["a", 2])
    with pytest.raises(ValueError, match="'positions'.*2-D or one 3-D.*sizes \\[2, 3\\]"):
        SubjectSpec("meg", (2, 20), positions=[[0, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match="'positions'.*sizes \\[4\\]"):
        SubjectSpec("meg", (2, 20), positions=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="'positions'.*expected 2 coordinates.*got 3"):
        SubjectSpec("meg", (2, 20), positions=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"'positions\[0\]'.*finite"):
        SubjectSpec("meg", (2, 20), positions=[[np.nan, 0], [0, 0]])
    with pytest.raises(ValueError, match="ch_names describe sensors.*modality is 'fmri'"):
        SubjectSpec("fmri", (2,), ch_names=["a", "b"])
    with pytest.raises(ValueError, match="'sfreq'.*finite number in \\(0.0, inf\\]"):
        SubjectSpec("meg", (2, 20), sfreq=-1)
    with pytest.raises(ValueError, match="Unknown SubjectSpec field.*'bogus'"):
        SubjectSpec.from_dict({"modality": "fmri", "feature_shape": [3], "bogus": 1})


def test_subject_spec_from_legacy_values():
    assert SubjectSpec.from_value(12) == SubjectSpec("fmri", (12,))
    assert SubjectSpec.from_value(np.int64(12)) == SubjectSpec("fmri", (12,))
    assert SubjectSpec.from_value((3, 4)) == SubjectSpec("fmri", (3, 4))
    assert SubjectSpec.from_value([3, 4]) == SubjectSpec("fmri", (3, 4))
    with pytest.raises(TypeError, match="SubjectSpec, its dict.*got bool"):
        SubjectSpec.from_value(True)


def test_subject_spec_from_trialset_duck_types():
    fmri = SimpleNamespace(modality="fmri", n_features=30, data=np.zeros((4, 30)), info=None)
    assert SubjectSpec.from_trialset(fmri) == SubjectSpec("fmri", (30,))
    # feature_shape wins over data when the TrialSet has it
    ts = SimpleNamespace(modality="meg", feature_shape=(2, 7), data=np.zeros((4, 9, 9)),
                         info=None)
    assert SubjectSpec.from_trialset(ts, adapter="mlp") == SubjectSpec("meg", (2, 7),
                                                                       adapter="mlp")
    # a sensor info: names, the 2-D layout before the 3-D positions, sfreq
    info = SimpleNamespace(ch_names=["a", "b"], sfreq=250.0,
                           positions_3d=np.array([[0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]),
                           positions_2d=None)
    seeg = SimpleNamespace(modality="seeg", data=np.zeros((4, 2, 10)), info=info)
    spec = SubjectSpec.from_trialset(seeg)
    assert spec == SubjectSpec("seeg", (2, 10), ch_names=["a", "b"],
                               positions=[[0.0, 0.1, 0.0], [0.1, 0.0, 0.0]], sfreq=250.0)
    info.positions_2d = np.array([[0.5, 0.5], [-0.5, 0.5]])
    assert SubjectSpec.from_trialset(seeg).positions == [[0.5, 0.5], [-0.5, 0.5]]


def test_subject_spec_from_trialset_with_mne_info():
    mne = pytest.importorskip("mne")
    info = mne.create_info(["EEG 001", "EEG 002", "EEG 003"], 200.0, "seeg")
    ts = SimpleNamespace(modality="seeg", data=np.zeros((2, 3, 5)), info=info)
    spec = SubjectSpec.from_trialset(ts)
    assert spec.ch_names == ["EEG 001", "EEG 002", "EEG 003"] and spec.sfreq == 200.0
    assert spec.positions is None  # no channel has a location: none recorded, none guessed
    for i, ch in enumerate(info["chs"]):
        ch["loc"][:3] = [0.01 * (i + 1), 0.02, 0.03]
    np.testing.assert_allclose(SubjectSpec.from_trialset(ts).positions,
                               [[0.01, 0.02, 0.03], [0.02, 0.02, 0.03], [0.03, 0.02, 0.03]])


# ---------------------------------------------------------------------- DecoderConfig
def test_config_roundtrip_with_sensor_specs():
    cfg = DecoderConfig(subjects={"fmri1": 12, **_sensor_specs()}, embed_dim=4, d_shared=8,
                        token_shape=(2, 3))
    assert cfg.subjects["fmri1"] == SubjectSpec("fmri", (12,))
    assert cfg.adapter_kind("seeg1") == "mlp" and cfg.adapter_kind("meg1") == "linear"
    assert cfg.feature_shape("meg1") == (3, 20) and cfg.encoder == "mlp"
    d = json.loads(cfg.to_json())
    assert d["subjects"]["meg1"]["ch_names"] == ["MEG0111", "MEG0121", "MEG0131"]
    assert len(d["subjects"]["seeg1"]["positions"][0]) == 3
    assert "adapter_kinds" not in d
    again = DecoderConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.subjects["meg1"].positions == cfg.subjects["meg1"].positions
    with pytest.raises(KeyError, match="Unknown subject 'zz'"):
        cfg.spec("zz")


def test_config_validation_names_the_parameter():
    base = dict(subjects={"s1": 12}, embed_dim=4)
    with pytest.raises(TypeError, match="'subjects' parameter must be a mapping"):
        DecoderConfig(subjects=[12], embed_dim=4)
    with pytest.raises(ValueError, match=r"subjects\['s1'\].*'feature_shape'.*-3"):
        DecoderConfig(subjects={"s1": -3}, embed_dim=4)
    with pytest.raises(TypeError, match=r"subjects\['s1'\].*got str"):
        DecoderConfig(subjects={"s1": "12"}, embed_dim=4)
    with pytest.raises(ValueError, match="'dropout'.*finite number in \\[0.0, 1.0\\)"):
        DecoderConfig(**base, dropout=1.0)
    with pytest.raises(ValueError, match="'norm'.*'layernorm', 'none'"):
        DecoderConfig(**base, norm="batch")
    with pytest.raises(ValueError, match="'adapter_kinds'.*not in subjects: \\['zz'\\]"):
        DecoderConfig(**base, adapter_kinds={"zz": "mlp"})
    with pytest.raises(ValueError, match="adapter 'linear' in its SubjectSpec but 'mlp'"):
        DecoderConfig(subjects={"s1": SubjectSpec("fmri", 12, adapter="linear")},
                      embed_dim=4, adapter_kinds={"s1": "mlp"})
    with pytest.raises(TypeError, match="'stimulus_map'.*bool"):
        DecoderConfig(**base, stimulus_map=1)


def test_old_layout_config_loads():
    """Subjects as ints/tuples and adapter_kinds overrides, as configs were once written."""
    cfg = DecoderConfig.from_dict({**OLD_CONFIG, "subjects": {"s1": 12, "s2": 20,
                                                              "s3": [3, 4]}})
    assert cfg.subjects == {"s1": SubjectSpec("fmri", (12,)),
                            "s2": SubjectSpec("fmri", (20,), adapter="mlp"),
                            "s3": SubjectSpec("fmri", (3, 4))}
    assert cfg.adapter_kinds == {} and cfg.adapter_kind("s2") == "mlp"
    assert DecoderConfig.from_json(cfg.to_json()) == cfg


# ---------------------------------------------------------------------- weights
def test_construction_draws_the_same_weights_as_before():
    """Module creation order (adapter, its norm, subject by subject, encoder, heads) and
    every random draw are those of the old layout: the seeded weights are identical."""
    old = load_file(str(DATA / "old_layout_init.safetensors"))
    new = BrainDecoder(DecoderConfig(**OLD_CONFIG), seed=5).state_dict()
    renamed = {k.replace("adapter_norms.s1.", "adapters.s1.norm.")
               .replace("adapter_norms.s2.", "adapters.s2.norm."): v for k, v in old.items()}
    assert sorted(renamed) == sorted(new)
    for k, v in new.items():
        assert torch.equal(v, renamed[k]), k


def test_old_layout_saved_model_loads(tmp_path):
    directory = tmp_path / "old"
    shutil.copytree(DATA / "old_layout_decoder", directory)
    assert any(k.startswith("adapter_norms.") for k in load_file(str(directory /
                                                                      "model.safetensors")))
    model = BrainDecoder.from_pretrained(directory)
    assert model.config == DecoderConfig(**OLD_CONFIG)
    expected = np.load(DATA / "old_layout_predictions.npz")
    for s, X in _old_inputs().items():
        for head in ("image", "text"):
            np.testing.assert_allclose(model.predict(X, subject=s, head=head),
                                       expected[f"{head}_{s}"], rtol=1e-5, atol=1e-6)
    # the norms landed in the adapters (they were set away from their initial values)
    assert not torch.allclose(model.adapters["s1"].norm.weight, torch.ones(8))
    # saved again, it is written in the new layout and reads back the same
    model.save_pretrained(tmp_path / "new")
    keys = load_file(str(tmp_path / "new" / "model.safetensors"))
    assert "adapters.s1.norm.weight" in keys and not any(k.startswith("adapter_norms")
                                                         for k in keys)
    again = BrainDecoder.from_pretrained(tmp_path / "new")
    X = _old_inputs()["s2"]
    np.testing.assert_array_equal(again.predict(X, subject="s2"), model.predict(X, subject="s2"))
    # and plain load_state_dict reads the old keys too
    fresh = BrainDecoder(DecoderConfig(**OLD_CONFIG))
    fresh.load_state_dict(load_file(str(directory / "model.safetensors")))
    np.testing.assert_array_equal(fresh.predict(X, subject="s2"), model.predict(X, subject="s2"))


def test_sensor_decoder_save_and_load(tmp_path):
    cfg = DecoderConfig(subjects={"fmri1": 12, **_sensor_specs()}, embed_dim=4, d_shared=8)
    model = BrainDecoder(cfg, seed=0)
    X = np.random.default_rng(2).standard_normal((6, 3, 20)).astype("float32")
    pred = model.predict(X, subject="meg1")
    assert pred.shape == (6, 4)
    with pytest.raises(ValueError, match=r"Subject 'meg1' \(meg\) expects \(3, 20\) features"
                                         r".*has 60.*epochs"):
        model.predict(X.reshape(6, 60), subject="meg1")
    out = model.save_pretrained(tmp_path / "m")
    raw = json.loads((out / "config.json").read_text())
    assert raw["subjects"]["meg1"]["sfreq"] == 100.0
    assert raw["subjects"]["seeg1"]["ch_names"] == ["A1", "A2", "B1", "B2"]
    loaded = BrainDecoder.from_pretrained(out)
    assert loaded.config == cfg
    assert loaded.config.subjects["seeg1"].positions == cfg.subjects["seeg1"].positions
    np.testing.assert_array_equal(loaded.predict(X, subject="meg1"), pred)


def test_add_subject_takes_a_spec_an_int_or_a_shape():
    model = BrainDecoder(DecoderConfig(subjects={"s1": 12}, embed_dim=4, d_shared=8), seed=0)
    spec = _sensor_specs()["meg1"]
    adapter = model.add_subject("meg1", spec, seed=1)
    assert model.adapters["meg1"] is adapter and adapter.linear.in_features == 60
    assert model.config.subjects["meg1"] == spec
    model.add_subject("s2", 7)
    model.add_subject("s3", (2, 5), adapter="mlp")
    assert model.config.subjects["s2"] == SubjectSpec("fmri", (7,))
    assert model.config.subjects["s3"] == SubjectSpec("fmri", (2, 5), adapter="mlp")
    assert model.predict(np.zeros((2, 2, 5), "float32"), subject="s3").shape == (2, 4)
    with pytest.raises(ValueError, match="adapter='linear' but its SubjectSpec says 'mlp'"):
        model.add_subject("s4", SubjectSpec("fmri", 3, adapter="mlp"), adapter="linear")
    with pytest.raises(ValueError, match=r"add_subject\('s5'\).*'feature_shape'"):
        model.add_subject("s5", 0)
    # the same seed gives the same adapter, whatever the global random state
    other = BrainDecoder(DecoderConfig(subjects={"s1": 12}, embed_dim=4, d_shared=8), seed=0)
    torch.manual_seed(99)
    again = other.add_subject("meg1", spec, seed=1)
    assert torch.equal(again.linear.weight, adapter.linear.weight)


def test_subject_spec_from_a_sensor_info():
    mne = pytest.importorskip("mne")
    info_module = pytest.importorskip("braindecode_kit.info")
    pos = np.array([[0.01, 0.0, 0.05], [0.0, 0.01, 0.05]])
    si = info_module.SensorInfo(mne.create_info(["a", "b"], 100.0, "seeg"), tmin=-0.1,
                                positions_3d=pos)
    ts = SimpleNamespace(modality="seeg", data=np.zeros((3, 2, 8)), info=si)
    assert SubjectSpec.from_trialset(ts) == SubjectSpec("seeg", (2, 8), ch_names=["a", "b"],
                                                        positions=pos.tolist(), sfreq=100.0)
