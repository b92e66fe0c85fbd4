"""The plan: dependency order (not import order), deterministic ties, refusals."""

from __future__ import annotations

import random

import pytest

from braindecode_kit.pipeline import Stage, load_config, plan
from braindecode_kit.pipeline._base import ALL_OTHERS, STAGES, stage

DEMO_ORDER = ["stimuli", "embed", "simulate_fmri", "load_fmri", "train", "ridge",
              "new_subject", "evaluate", "caption", "reconstruct", "report"]


def _noop(ctx):
    return None


def _names(stages):
    return [s.name for s in stages]


def _registry(*stages: Stage, shuffle: int | None = None) -> dict[str, Stage]:
    items = list(stages)
    if shuffle is not None:
        random.Random(shuffle).shuffle(items)
    return {s.name: s for s in items}


def test_demo_order():
    cfg = load_config({"name": "x", "fmri": {"source": "simulate"}})
    assert _names(plan(cfg)) == DEMO_ORDER


@pytest.mark.parametrize("seed", range(5))
def test_order_does_not_depend_on_registration_order(seed):
    """The built-in stages registered in any order give the same plan."""
    cfg = load_config({"name": "x", "fmri": {"source": "simulate"}})
    shuffled = _registry(*STAGES.values(), shuffle=seed)
    assert list(shuffled) != list(STAGES) or seed == 0
    assert _names(plan(cfg, shuffled)) == DEMO_ORDER


def test_bids_source_drops_the_simulation():
    cfg = load_config({"name": "x", "fmri": {"source": "bids", "bids_root": "/data"}})
    assert _names(plan(cfg)) == [n for n in DEMO_ORDER if n != "simulate_fmri"]


def test_no_recording_kind_runs_only_the_kind_free_stages():
    assert _names(plan(load_config({"name": "x"}))) == ["stimuli", "embed", "report"]


def test_new_subject_can_be_disabled():
    cfg = load_config({"name": "x", "fmri": {}, "new_subject": {"enabled": False}})
    assert "new_subject" not in _names(plan(cfg))


def test_ties_go_to_priority_then_name():
    reg = _registry(Stage("b", _noop), Stage("a", _noop), Stage("c", _noop, priority=1),
                    Stage("d", _noop, requires=("a",), priority=0))
    cfg = load_config({"name": "x", "stages": ["a", "b", "c", "d"]})
    # c (priority 1) before the priority-100 a and b; d (0) as soon as a is done
    assert _names(plan(cfg, reg)) == ["c", "a", "d", "b"]


def test_after_orders_without_requiring():
    reg = _registry(Stage("load", _noop, after=("sim",), priority=0), Stage("sim", _noop))
    assert _names(plan(load_config({"name": "x", "stages": ["load", "sim"]}), reg)) == [
        "sim", "load"]
    # without sim in the plan, load still runs (it does not need it)
    assert _names(plan(load_config({"name": "x", "stages": ["load"]}), reg)) == ["load"]


def test_after_all_others_runs_last():
    reg = _registry(Stage("report", _noop, after=(ALL_OTHERS,), priority=0),
                    Stage("a", _noop), Stage("b", _noop, requires=("a",)))
    cfg = load_config({"name": "x", "stages": ["report", "b", "a"]})
    assert _names(plan(cfg, reg)) == ["a", "b", "report"]


def test_kind_requirements_expand_to_the_config_kinds():
    reg = _registry(Stage("load_fmri", _noop), Stage("train", _noop, requires=("load_{kind}",)))
    cfg = load_config({"name": "x", "fmri": {}, "stages": ["train", "load_fmri"]})
    assert _names(plan(cfg, reg)) == ["load_fmri", "train"]
    with pytest.raises(ValueError, match=r"'train' needs stage\(s\) \['load_fmri'\]"):
        plan(load_config({"name": "x", "fmri": {}, "stages": ["train"]}), reg)


def test_a_cycle_is_refused():
    reg = _registry(Stage("a", _noop, requires=("c",)), Stage("b", _noop, requires=("a",)),
                    Stage("c", _noop, requires=("b",)), Stage("free", _noop))
    cfg = load_config({"name": "x", "stages": ["a", "b", "c", "free"]})
    with pytest.raises(ValueError, match=r"form a cycle: (a -> b -> c -> a|b -> c -> a -> b|"
                                         r"c -> a -> b -> c)"):
        plan(cfg, reg)


def test_an_after_cycle_is_refused():
    reg = _registry(Stage("a", _noop, after=("b",)), Stage("b", _noop, after=("a",)))
    with pytest.raises(ValueError, match="form a cycle"):
        plan(load_config({"name": "x", "stages": ["a", "b"]}), reg)


def test_unknown_stage_is_named():
    cfg = load_config({"name": "x", "stages": ["stimuli", "nonsense"]})
    with pytest.raises(ValueError, match=r"'stages' setting\. Allowed values are stimuli, "
                                         r"embed, .*but got \['nonsense'\]"):
        plan(cfg)


def test_missing_requirement_is_named():
    cfg = load_config({"name": "x", "stages": ["embed"]})
    with pytest.raises(ValueError, match=r"'embed' needs stage\(s\) \['stimuli'\]"):
        plan(cfg)


def test_an_invalid_plan_writes_nothing(tmp_path):
    from braindecode_kit.pipeline import run_pipeline

    out = tmp_path / "run"
    with pytest.raises(ValueError, match="nonsense"):
        run_pipeline({"name": "x", "stages": ["nonsense"]}, out)
    assert not out.exists()


def test_a_taken_name_is_refused():
    reg: dict[str, Stage] = {}

    @stage("x", registry=reg)
    def first(ctx):
        return None

    with pytest.raises(ValueError, match="A stage named 'x' is registered already"):
        @stage("x", registry=reg)
        def second(ctx):
            return None

    assert reg["x"].func is first and reg["x"].doc == ""


def test_every_built_in_stage_is_documented():
    for st in STAGES.values():
        assert st.doc, st.name
