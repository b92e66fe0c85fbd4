"""A tiny pipeline under ``accelerate launch`` on 2 CPU processes.

accelerate's ``--cpu`` flag runs a single process unless an MPI hostfile is given, so the
two processes are launched as on GPUs (``--multi_gpu``, i.e. torchrun) with
``ACCELERATE_USE_CPU=1``: gloo on CPU. ``HF_HOME`` points at an empty folder so that no
accelerate config file is read.

Checked: the run exits 0; the stimuli are embedded and the subjects simulated once (by
the main process); the run folder is written once (one manifest, no stray temporary
file) with metrics equal to a single-process run wherever training does not enter (the
two processes train on different batches, so the trained numbers differ); each process
trained, on its own batches.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import child_env, comparable, read_json, write_config

ACCELERATE = Path(sys.executable).with_name("accelerate")

#: metric paths whose values come from a trained decoder
TRAINED = re.compile(r"^fmri\.(train\.|decoder\.|network\.|anchor\.|"
                     r"per_subject\.[^.]+\.(decoder|network)\.|"
                     # how close the trained routes lie to the truth (ridge's must match)
                     r"(per_subject\.[^.]+\.)?cosine\.(decoder|network)|"
                     r"new_subject\.(adapted|scratch|learning_curve)|"
                     r"caption\.(decoder|decoder_minus_ridge|brain_over_captioner|"
                     r"shape_named_over_chance)\b|"
                     # reconstructions from the decoder's embeddings (the ceiling, ridge and
                     # chance routes must match: images sharded over the 2 processes)
                     r"reconstruct\.decoder)|^summary\.decoder_top1$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    if not ACCELERATE.is_file():
        pytest.skip("accelerate's launcher is not installed beside this Python")
    folder = tmp_path_factory.mktemp("distributed")
    (folder / "hf_home").mkdir()
    out = folder / "run"
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           "-m", "braindecode_kit.cli", "run", str(write_config(folder)), "--out", str(out)]
    env = child_env(ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="",
                    HF_HOME=str(folder / "hf_home"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    return proc, out


def test_exits_cleanly(distributed_run):
    proc, _ = distributed_run
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert proc.stdout.count("Run folder:") == 1  # one summary, from the main process


def test_simulation_and_embedding_happen_once(distributed_run):
    proc, _ = distributed_run
    log = proc.stderr
    assert log.count("Simulating 2 fMRI subjects") == 1
    assert log.count("image embeddings:") == 1
    assert log.count("[stimuli] finished in") == 1


def test_the_run_folder_is_written_once(distributed_run, tiny_reference):
    _, out = distributed_run
    _, reference = tiny_reference
    assert sorted(p.name for p in out.glob("*manifest*")) == ["manifest.json"]
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    manifest = read_json(out / "manifest.json")
    assert all(manifest["stages"][s]["status"] == "done" for s in manifest["plan"])
    assert (out / "report.html").is_file()
    got, want = _flatten(comparable(read_json(out / "metrics.json"))), _flatten(
        comparable(reference))
    assert sorted(got) == sorted(want)  # the same keys
    untrained = [k for k in want if not TRAINED.search(k)]
    assert len(untrained) > 40
    assert {k: got[k] for k in untrained} == {k: want[k] for k in untrained}


def test_each_process_trained_on_its_own_batches(distributed_run):
    _, out = distributed_run
    ranks = [read_json(out / "train" / "shards" / f"rank-{r}.json") for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["n_train_trials"] == ranks[1]["n_train_trials"]
    # the same model, different data: each process's loss over its own batches differs
    assert len(ranks[0]["train_loss"]) == len(ranks[1]["train_loss"]) == 2
    assert ranks[0]["train_loss"] != ranks[1]["train_loss"]


def test_the_shards_are_disjoint(distributed_run):
    _, out = distributed_run
    ranks = [read_json(out / "train" / "shards" / f"rank-{r}.json") for r in (0, 1)]
    seen = [set(r["first_epoch_indices"]) for r in ranks]
    assert seen[0] and seen[1]
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) <= ranks[0]["n_train_trials"]


def test_the_reconstruct_command_shards_a_finished_run_over_two_processes(tiny_reference,
                                                                          tmp_path):
    """``accelerate launch -m braindecode_kit.cli reconstruct --run``: every image made once,
    by one rank, and the same images and metrics as one process makes."""
    import shutil

    from braindecode_kit.reconstruct.batch import load_batch_images

    if not ACCELERATE.is_file():
        pytest.skip("accelerate's launcher is not installed beside this Python")
    ref_run, _ = tiny_reference
    run = tmp_path / "run"
    shutil.copytree(ref_run, run)  # the session's reference run stays as it was
    (tmp_path / "hf_home").mkdir()
    args = ["reconstruct", "--run", str(run), "--steps", "3", "--n-stimuli", "5", "-q"]
    one = subprocess.run([sys.executable, "-m", "braindecode_kit.cli", *args, "--name", "one"],
                         capture_output=True, text=True, timeout=600, env=child_env())
    assert one.returncode == 0, one.stderr[-4000:]
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "braindecode_kit.cli", *args,
           "--name", "two"]
    env = child_env(ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="",
                    HF_HOME=str(tmp_path / "hf_home"))
    two = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-4000:]
    assert two.stdout.count("Reconstructions:") == 1  # one summary, by the main process
    ranks = set()
    for route in ("ceiling", "decoder", "decoder_lowlevel", "ridge"):
        a = load_batch_images(run / "reconstructions" / "one" / "fmri" / route)
        b = load_batch_images(run / "reconstructions" / "two" / "fmri" / route)
        assert a.keys() == b.keys() and len(a) == 5
        for k in a:
            assert a[k].tobytes() == b[k].tobytes(), (route, k)
        made = {}
        for rec in (run / "reconstructions" / "two" / "fmri" / route / ".done").glob("*.json"):
            r = read_json(rec)
            ranks.add(r["rank"])
            for key in r["keys"]:
                assert key not in made, f"{key} made twice"
                made[key] = r["rank"]
        assert set(made) == set(a)
    assert ranks == {0, 1}
    m1 = read_json(run / "reconstructions" / "one" / "metrics.json")["metrics"]
    m2 = read_json(run / "reconstructions" / "two" / "metrics.json")["metrics"]
    for m in (m1, m2):
        m["fmri"]["reconstruct"].pop("timing")
    assert m1 == m2
