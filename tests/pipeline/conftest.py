"""A tiny pipeline run through the real command line in a subprocess (as a user runs it),
and one uninterrupted single-process run of it that the resume and distributed tests
compare with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

#: every stage, at a scale that runs in seconds: 2 subjects (one held out), 2 epochs
TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "stimuli": {"kind": "world", "n": 400},
    "fmri": {"source": "simulate",
             "simulate": {"n_subjects": 2, "n_shared_test": 40, "n_voxels": 100,
                          "n_train_per_subject": 150, "compress": False, "nsd_layout": False},
             "load": {"method": "lsa"}},
    "decoder": {"d_shared": 32, "n_blocks": 1},
    # 4 steps an epoch: divisible by 2 processes, so no process repeats another's batch
    "train": {"epochs": 2, "batch_size": 32, "patience": None, "val_n_draws": 2,
              "steps_per_epoch": 4},
    "new_subject": {"fraction": 0.5, "curve": [0.5, 1.0]},
    "evaluate": {"n_candidates": 20, "n_draws": 3},
    # the low-level head and the shipped generator at 2 steps on 6 test images per subject
    "embed": {"blurry": 8},
    "reconstruct": {"num_inference_steps": 2, "n_stimuli": 6, "batch_size": 4},
    "report": {"n_examples": 2},
}

CLI = [sys.executable, "-m", "braindecode_kit.cli"]


def write_config(folder: Path, config: dict[str, Any] = TINY) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child run: one thread (as the suite), no progress bars."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "BRAINDECODE_KIT_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}, **extra)
    env.pop("WORLD_SIZE", None)
    return env


def run_cli(config_path: Path, out: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "run", str(config_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=timeout, env=child_env())


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics without what differs between two identical runs: timings and paths."""
    m = json.loads(json.dumps(metrics))
    m.pop("timing_s", None)
    for kind in ("fmri", "meg", "seeg"):
        sim = m.get(kind, {}).get("simulation")
        if sim:
            sim.pop("seconds", None)
            sim.pop("root", None)
        m.get(kind, {}).get("reconstruct", {}).pop("timing", None)  # images per second
    return m


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory):
    """(run folder, metrics) of one uninterrupted single-process run of :data:`TINY`."""
    folder = tmp_path_factory.mktemp("tiny_reference")
    out = folder / "run"
    proc = run_cli(write_config(folder), out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, read_json(out / "metrics.json")
