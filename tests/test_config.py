"""Pipeline configuration: defaults from the library, the shipped pipelines, and clear
refusals at load time (unknown keys, bad values, kinds not implemented yet)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from braindecode_kit._resources import pipelines_dir
from braindecode_kit.pipeline import PipelineConfig, load_config
from braindecode_kit.pipeline.config import DECODER_DATA_FIELDS


def test_minimal_config_has_defaults():
    cfg = load_config({"name": "x"})
    assert isinstance(cfg, PipelineConfig)
    assert cfg.seed == 0
    assert cfg.fmri is None and cfg.kinds == []
    assert cfg.evaluate.n_candidates == 300 and cfg.evaluate.n_draws == 30
    assert cfg.new_subject.subject is None


@pytest.mark.parametrize("path", sorted(pipelines_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_pipelines_validate(path):
    cfg = load_config(path)
    assert cfg.name


def test_override_seed(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("name: x\nseed: 3\n")
    assert load_config(p).seed == 3
    assert load_config(p, seed=7).seed == 7
    assert load_config(p, seed=None).seed == 3


# --------------------------------------------------------------------------- one source
def test_train_section_is_train_config():
    from braindecode_kit.train import TrainConfig

    cfg = load_config({"name": "x", "seed": 4, "train": {"epochs": 3, "lr": 0.01}})
    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}
    assert set(type(cfg.train).model_fields) == names
    built = cfg.train.build(seed=cfg.seed)
    assert built == TrainConfig(epochs=3, lr=0.01, seed=4)  # every other value: its default


def test_decoder_section_is_decoder_config_minus_the_data():
    from braindecode_kit.models import DecoderConfig

    fields = {f.name: f for f in dataclasses.fields(DecoderConfig)}
    section = type(load_config({"name": "x"}).decoder)
    assert set(section.model_fields) == set(fields) - DECODER_DATA_FIELDS
    # the defaults are the library's (d_shared once had three different defaults)
    for name, f in section.model_fields.items():
        assert f.default == fields[name].default, name


@pytest.mark.parametrize("where, func, exclude", [
    ("fmri.simulate", "braindecode_kit.simulate:simulate_fmri",
     {"stimuli", "out_dir", "seed", "overwrite", "verbose"}),
    ("fmri.load", "braindecode_kit.io:load_fmri_bids", {"root", "subject", "verbose"}),
])
def test_function_sections_are_its_keyword_parameters(where, func, exclude):
    import importlib

    module, name = func.split(":")
    sig = inspect.signature(getattr(importlib.import_module(module), name))
    cfg = load_config({"name": "x", "fmri": {"source": "simulate"}})
    section = cfg.fmri
    for part in where.split(".")[1:]:
        section = getattr(section, part)
    expected = {n: p.default for n, p in sig.parameters.items()
                if n not in exclude and p.default is not inspect.Parameter.empty}
    assert {n: f.default for n, f in type(section).model_fields.items()} == expected


def test_fields_are_documented_from_the_library():
    cfg = load_config({"name": "x", "fmri": {}})
    sim = type(cfg.fmri.simulate).model_fields
    assert "visual" in sim["n_voxels"].description  # simulate_fmri's docstring
    assert "OneCycle" in type(cfg.train).model_fields["lr"].description  # TrainConfig's


# --------------------------------------------------------------------------- refusals
def test_unknown_key_is_named():
    with pytest.raises(ValueError, match=r"trian: Extra inputs are not permitted"):
        load_config({"name": "x", "trian": {"epochs": 3}})


@pytest.mark.parametrize("section", [
    {"fmri": {"simulate": {"extra": {"n_voxels": 10}}}},
    {"fmri": {"load": {"extra": {"rois": ["x"]}}}},
    {"decoder": {"extra": {"norm": "none"}}},
    {"train": {"extra": {"seed": 1}}},
    {"train": {"seed": 1}},  # the run's seed is the top-level one
    {"decoder": {"subjects": {"01": 10}}},  # data-derived
])
def test_no_escape_hatch(section):
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        load_config({"name": "x", **section})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ValueError, match=r"train\.epochs.*got 'many'"):
        load_config({"name": "x", "train": {"epochs": "many"}})


@pytest.mark.parametrize("section, message", [
    ({"train": {"schedule": "bogus"}}, r"train\.schedule: Invalid value for the 'schedule'"),
    ({"train": {"epochs": 0}}, r"train\.epochs: .*epochs.*got 0"),
    ({"train": {"mix_prob": 2.0}}, r"train\.mix_prob: .*mix_prob.*got 2\.0"),
    ({"decoder": {"d_shared": 0}}, r"decoder\.d_shared: .*'d_shared'.*got 0"),
    ({"decoder": {"norm": "batch"}}, r"decoder\.norm: Invalid value for the 'norm'"),
    ({"fmri": {"load": {"method": "glmsingle"}}}, r"fmri\.load\.method: .*'lss'.*'lsa'"),
    ({"fmri": {"simulate": {"n_voxels": "many"}}}, r"fmri\.simulate\.n_voxels: .*got 'many'"),
    ({"embed": {"precision": "fp8"}}, r"embed\.precision: .*'fp32'"),
    ({"new_subject": {"curve": [0.5, 2.0]}}, r"new_subject\.curve: every share must be in"),
])
def test_bad_value_is_refused_at_load_time_with_the_field_named(section, message):
    with pytest.raises(ValueError, match=message):
        load_config({"name": "x", **section})


@pytest.mark.parametrize("kind, adapter", [("meg", "spatial_attention"),
                                           ("seeg", "channel_linear")])
def test_sensor_kinds_have_their_sections_and_decoder_overrides(kind, adapter):
    cfg = load_config({"name": "x", kind: {"simulate": {"n_subjects": 3},
                                           "decoder": {"d_shared": 16},
                                           "train": {"epochs": 3}}})
    assert cfg.kinds == [kind]
    assert getattr(cfg, kind).simulate.n_subjects == 3
    dec = cfg.section_for("decoder", kind)
    assert (dec.adapter, dec.encoder, dec.d_shared) == (adapter, "conv", 16)
    assert dec.n_blocks == cfg.decoder.n_blocks  # the rest from decoder:
    assert cfg.section_for("train", kind).epochs == 3
    assert cfg.section_for("decoder", "fmri") is cfg.decoder  # fMRI: no overrides
    with pytest.raises(ValueError, match=rf"{kind}\.decoder\.encoder: Invalid value"):
        load_config({"name": "x", kind: {"decoder": {"encoder": "nope"}}})
    with pytest.raises(ValueError, match=rf"{kind}\.decoder\.nope"):
        load_config({"name": "x", kind: {"decoder": {"nope": 1}}})
    with pytest.raises(ValueError, match=rf"needs {kind}\.bids_root"):
        load_config({"name": "x", kind: {"source": "bids"}})


def test_folder_stimuli_need_a_path():
    with pytest.raises(ValueError, match="needs stimuli.path"):
        load_config({"name": "x", "stimuli": {"kind": "folder"}})


def test_bids_source_needs_root():
    with pytest.raises(ValueError, match="needs fmri.bids_root"):
        load_config({"name": "x", "fmri": {"source": "bids"}})


def test_not_a_mapping(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a YAML mapping"):
        load_config(p)


def test_bad_yaml(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Pipeline file not found"):
        load_config(tmp_path / "nope.yaml")


def test_new_subject_epochs_set_the_adaptation_schedule_only():
    from braindecode_kit.pipeline.stages import small_data_config, train_config

    cfg = load_config({"name": "x", "train": {"epochs": 12, "batch_size": 32},
                       "meg": {"train": {"epochs": 40, "val_metric": "rank"},
                               "new_subject": {"epochs": 7}}})
    meg = small_data_config(cfg, 900, "meg")
    # the new subject's schedule: its own epochs, the kind's other train settings, the
    # small-data floor of 30 steps an epoch
    assert (meg.epochs, meg.val_metric, meg.steps_per_epoch) == (7, "rank", 30)
    assert train_config(cfg, "meg").epochs == 40  # pretraining keeps the kind's
    assert small_data_config(cfg, 900, "fmri").epochs == 12  # unset: the train section's
    with pytest.raises(ValueError, match=r"meg\.new_subject\.epochs"):
        load_config({"name": "x", "meg": {"new_subject": {"epochs": 0}}})
