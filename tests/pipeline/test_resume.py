"""A run killed (SIGKILL) in the middle of a stage resumes where it stopped: the finished
stages are skipped, the interrupted one is redone, and the outputs equal those of a run
that was never interrupted."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import CLI, child_env, comparable, read_json, run_cli, write_config

STAGE_ORDER = ["stimuli", "embed", "simulate_fmri", "load_fmri", "train", "ridge",
               "new_subject", "evaluate", "report"]


def _kill_while_running(config_path, out, stage: str, timeout: float = 300) -> dict:
    """Start a run, SIGKILL it as soon as the manifest says ``stage`` is running."""
    proc = subprocess.Popen([*CLI, "run", str(config_path), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=child_env())
    manifest_path = out / "manifest.json"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before {stage!r} was seen "
                            "running")
            try:
                manifest = json.loads(manifest_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                manifest = {}
            if manifest.get("stages", {}).get(stage, {}).get("status") == "running":
                proc.kill()  # SIGKILL: no cleanup, no finally blocks
                proc.wait(timeout=30)
                return manifest
            time.sleep(0.02)
        pytest.fail(f"{stage!r} was not seen running within {timeout} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.parametrize("killed", ["new_subject"])
def test_killed_run_resumes(tmp_path, tiny_reference, killed):
    _, reference = tiny_reference
    config_path = write_config(tmp_path)
    out = tmp_path / "run"
    _kill_while_running(config_path, out, killed)
    before = read_json(out / "manifest.json")
    finished = [s for s in STAGE_ORDER[:STAGE_ORDER.index(killed)]]
    assert all(before["stages"][s]["status"] == "done" for s in finished)
    assert before["stages"][killed]["status"] == "running"
    assert not (out / "report.html").exists()

    proc = run_cli(config_path, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stderr
    for s in finished:
        assert f"[{s}] done already, skipped" in log, s
    for s in STAGE_ORDER[STAGE_ORDER.index(killed):]:
        assert f"[{s}] done already" not in log and f"[{s}] finished in" in log, s

    after = read_json(out / "manifest.json")
    for s in finished:  # not run again: the same record
        assert after["stages"][s] == before["stages"][s], s
    assert after["stages"][killed]["status"] == "done"
    assert after["stages"][killed]["started"] >= before["stages"][killed]["started"]
    assert all(after["stages"][s]["status"] == "done" for s in STAGE_ORDER)
    assert comparable(read_json(out / "metrics.json")) == comparable(reference)
