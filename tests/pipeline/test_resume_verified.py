"""Resume trusts only what it verified: an output deleted or truncated after its stage
finished is redone (and nothing else), ``metrics.json`` is rebuilt from the manifest, and
a run killed at many random points ends equal to one that was never interrupted."""

from __future__ import annotations

import json
import shutil

import numpy as np

from .conftest import child_env, comparable, read_json, run_cli, write_config


def _plan(run_dir) -> list[str]:
    """The stages of the tiny pipeline, in order (from its manifest)."""
    return read_json(run_dir / "manifest.json")["plan"]


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _first_file(folder, pattern):
    return sorted(folder.glob(pattern))[0]


#: (damage, the stage that owns the output) -- one output of each kind: a JSON file, a
#: TSV, safetensors (targets, model), a BIDS NIfTI, a TrialSet's data.npy, predictions,
#: the report; deleted files and a deleted folder
TRUNCATED = {
    "stimuli/captions.json": "stimuli",
    "targets/targets.safetensors": "embed",
    "bids/sub-01/**/*_bold.nii": "simulate_fmri",
    "trials/sub-01/data.npy": "load_fmri",
    "model/model.safetensors": "train",
    "predictions/ridge_sub-01.npy": "ridge",
    "predictions/decoder_sub-01.npy": "evaluate",
    "report.html": "report",
}
DELETED = {
    "stimuli/attributes.tsv": "stimuli",
    "trials/sub-02": "load_fmri",
    "train/history.json": "train",
    "metrics.json": None,  # no stage: rebuilt from the metrics the manifest recorded
}


def _damage(run, what: dict, how) -> set[str]:
    stages = set()
    for pattern, stage in what.items():
        path = _first_file(run, pattern) if "*" in pattern else run / pattern
        assert path.exists(), pattern
        how(path)
        if stage:
            stages.add(stage)
    return stages


def _remove(path):
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_damaged_outputs_are_redone(tmp_path, tiny_reference):
    """One output of each kind truncated, others deleted, in one finished run."""
    ref_dir, reference = tiny_reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    config_path = write_config(tmp_path)
    redo = _damage(run, TRUNCATED, _truncate) | _damage(run, DELETED, _remove)
    stages = _plan(ref_dir)
    before = read_json(run / "manifest.json")

    proc = run_cli(config_path, run)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stderr
    for s in stages:
        if s in redo:
            assert f"[{s}] redone: its output" in log, (s, log[-3000:])
        elif f"[{s}] finished in" in log:  # redone only because an earlier stage changed
            assert "an earlier stage was redone" in log, s
        else:
            assert f"[{s}] done already, skipped" in log, s
    after = read_json(run / "manifest.json")
    for s in stages:
        if f"[{s}] done already, skipped" in log:
            assert after["stages"][s] == before["stages"][s], s
        assert after["stages"][s]["status"] == "done"
    assert comparable(read_json(run / "metrics.json")) == comparable(reference)
    for pattern in [*TRUNCATED, *DELETED]:  # all back, all whole
        path = _first_file(run, pattern) if "*" in pattern else run / pattern
        ref = _first_file(ref_dir, pattern) if "*" in pattern else ref_dir / pattern
        if path.is_file() and path.name != "metrics.json" and path.suffix in (
                ".npy", ".safetensors", ".json", ".tsv"):  # metrics.json: timings differ
            assert path.read_bytes() == ref.read_bytes(), pattern


def _run_in_child(config_path, out):
    """The pipeline in a forked child (its imports shared: no start-up to wait for)."""
    import multiprocessing as mp
    import os

    def target():
        os.environ.update(child_env())
        import torch

        torch.set_num_threads(1)
        from braindecode_kit.pipeline import run_pipeline

        run_pipeline(str(config_path), out, verbose="ERROR")

    proc = mp.get_context("fork").Process(target=target, daemon=True)
    proc.start()
    return proc


def _running(out) -> str | None:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # pragma: no cover - atomic writes
        return None
    return next((s for s, r in manifest.get("stages", {}).items()
                 if r.get("status") == "running"), None)


def test_a_run_killed_at_random_points_ends_as_an_uninterrupted_one(tmp_path, tiny_reference):
    """SIGKILL at 10 seeded random points: a random stage (in plan order, so the kills
    cover the whole run) and a random moment in it; each resumed run is killed again.
    A last run in a fresh process finishes; the result equals an uninterrupted run's."""
    import time

    import braindecode_kit.pipeline  # noqa: F401  (imported once, before forking)

    ref_dir, reference = tiny_reference
    stages = _plan(ref_dir)
    config_path = write_config(tmp_path)
    out = tmp_path / "run"
    rng = np.random.default_rng(13)
    points = sorted(zip(rng.choice(len(stages) - 1, size=10), rng.uniform(0.0, 1.5, size=10)))
    killed_in = []
    for index, delay in points:
        proc = _run_in_child(config_path, out)
        # until the target stage (or a later one: a short stage may pass between polls)
        while proc.is_alive() and stages.index(_running(out) or stages[0]) < index:
            time.sleep(0.005)
        proc.join(float(delay))
        if not proc.is_alive():
            continue  # the stage ended (or the run) before this point
        proc.kill()  # SIGKILL: no cleanup, no finally blocks
        proc.join(30)
        killed_in.append(_running(out))  # the manifest is never half-written
    assert len(set(killed_in)) >= 4, killed_in  # kills inside several stages
    proc = run_cli(config_path, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    manifest = read_json(out / "manifest.json")
    assert all(manifest["stages"][s]["status"] == "done" for s in stages)
    assert comparable(read_json(out / "metrics.json")) == comparable(reference)
    leftovers = [p for p in out.rglob("*.tmp")]
    assert not leftovers, leftovers
