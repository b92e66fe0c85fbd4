"""The runner with toy stages: manifest, metrics, skip-when-done, resume after an
interruption, a different config refused (the plan's order: tests/pipeline/test_plan.py;
a real SIGKILL: tests/pipeline/test_resume.py)."""

from __future__ import annotations

import json

import pytest

from braindecode_kit.pipeline import Stage, load_config, merge_metrics, run_pipeline
from braindecode_kit.pipeline._base import STAGES


@pytest.fixture
def toy_stages(monkeypatch):
    calls = {"a": 0, "b": 0}
    state = {"fail_b": False}

    def a(ctx):
        calls["a"] += 1
        ctx.path("a.txt").write_text("a")
        return {"metrics": {"x": {"a": 1}}, "outputs": ["a.txt"]}

    def b(ctx):
        calls["b"] += 1
        if state["fail_b"]:
            raise KeyboardInterrupt("killed")
        assert (ctx.run_dir / "a.txt").read_text() == "a"
        ctx.path("b.txt").write_text("b")
        return {"metrics": {"x": {"b": ctx.seed}}, "outputs": ["b.txt"]}

    monkeypatch.setitem(STAGES, "toy_a", Stage("toy_a", a))
    monkeypatch.setitem(STAGES, "toy_b", Stage("toy_b", b, requires=("toy_a",)))
    # listed in the wrong order: the plan follows the requirements
    cfg = load_config({"name": "toy", "seed": 5, "stages": ["toy_b", "toy_a"]})
    return cfg, calls, state


def test_runs_in_order_and_writes_manifest(tmp_path, toy_stages):
    cfg, calls, _ = toy_stages
    metrics = run_pipeline(cfg, tmp_path)
    assert metrics["x"] == {"a": 1, "b": 5}
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["x"] == {"a": 1, "b": 5}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["plan"] == ["toy_a", "toy_b"]
    assert all(manifest["stages"][s]["status"] == "done" for s in ("toy_a", "toy_b"))
    assert manifest["seed"] == 5 and "torch" in manifest["versions"]
    assert calls == {"a": 1, "b": 1}


def test_second_run_skips_done_stages(tmp_path, toy_stages):
    cfg, calls, _ = toy_stages
    run_pipeline(cfg, tmp_path)
    run_pipeline(cfg, tmp_path)
    assert calls == {"a": 1, "b": 1}


def test_missing_output_reruns_stage(tmp_path, toy_stages):
    cfg, calls, _ = toy_stages
    run_pipeline(cfg, tmp_path)
    (tmp_path / "b.txt").unlink()
    run_pipeline(cfg, tmp_path)
    assert calls == {"a": 1, "b": 2}


def test_killed_run_resumes(tmp_path, toy_stages):
    cfg, calls, state = toy_stages
    state["fail_b"] = True
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stages"]["toy_a"]["status"] == "done"
    assert manifest["stages"]["toy_b"]["status"] == "running"
    state["fail_b"] = False
    metrics = run_pipeline(cfg, tmp_path)
    assert calls == {"a": 1, "b": 2}
    assert metrics["x"] == {"a": 1, "b": 5}


def test_different_config_is_refused_then_restarted(tmp_path, toy_stages):
    cfg, calls, _ = toy_stages
    run_pipeline(cfg, tmp_path)
    other = cfg.model_copy(update={"seed": 6})
    with pytest.raises(ValueError, match="different configuration"):
        run_pipeline(other, tmp_path)
    metrics = run_pipeline(other, tmp_path, restart=True)
    assert metrics["x"]["b"] == 6 and calls["a"] == 2


def test_unknown_stage_is_named(tmp_path):
    cfg = load_config({"name": "x", "stages": ["stimuli", "nonsense"]})
    with pytest.raises(ValueError, match=r"got \['nonsense'\]"):
        run_pipeline(cfg, tmp_path)


def test_missing_requirement_is_named(tmp_path):
    cfg = load_config({"name": "x", "stages": ["embed"]})
    with pytest.raises(ValueError, match=r"'embed' needs stage\(s\) \['stimuli'\]"):
        run_pipeline(cfg, tmp_path)


def test_merge_metrics_is_deep():
    assert merge_metrics({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4}) == {
        "a": {"b": 1, "c": 3}, "d": 4}
