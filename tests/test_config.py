"""Pipeline configuration: defaults, the shipped pipelines, and clear refusals."""

from __future__ import annotations

import pytest

from braindecode_kit._resources import pipelines_dir
from braindecode_kit.config import PipelineConfig, load_config


def test_minimal_config_has_defaults():
    cfg = load_config({"name": "x"})
    assert isinstance(cfg, PipelineConfig)
    assert cfg.seed == 0
    assert cfg.fmri is None
    assert cfg.evaluate.n_candidates == 300 and cfg.evaluate.n_draws == 30


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


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match=r"trian: Extra inputs are not permitted"):
        load_config({"name": "x", "trian": {"epochs": 3}})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ValueError, match=r"train\.epochs.*got 'many'"):
        load_config({"name": "x", "train": {"epochs": "many"}})


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
