"""Probes: writers never destroy what was there (a user's folder, a BIDS dataset, a
file), and a resumed run trusts only what it verified."""

from __future__ import annotations

import json
from pathlib import Path

import _build as b
import yaml
from probes import Case, cli

CASES: list[Case] = []


def add(name, target, make, expect=FileExistsError, fragments=(), **kw):
    CASES.append(Case(name, target, make, expect, tuple(fragments), **kw))


# ------------------------------------------------------------------ folder writers
def _onto_user_folder(write):
    def make(tmp):
        dest = b.user_folder(Path(tmp) / "mine")
        return lambda: write(dest)
    return make


def _onto_file(write):
    def make(tmp):
        dest = Path(tmp) / "a_file"
        dest.write_text("mine\n")
        return lambda: write(dest)
    return make


WRITERS = {
    "TrialSet.save": lambda dest: b.trialset().save(dest),
    "BrainDecoder.save_pretrained": lambda dest: b.decoder().save_pretrained(dest),
    "Targets.save": lambda dest: b.targets().save(dest),
}
for target, write in WRITERS.items():
    add(f"{target}-onto-user-folder", target, _onto_user_folder(write), FileExistsError,
        ("mine", "notes-0.txt"), writer=True)
    add(f"{target}-onto-file", target, _onto_file(write), FileExistsError, ("a_file",),
        writer=True)


def _simulate_onto_bids(tmp):
    root = Path(tmp) / "bids"
    b.write_bids(root, n_runs=1)

    def call():
        from braindecode_kit.simulate import make_world, simulate_fmri

        world = make_world(30, seed=0, size=16)
        return simulate_fmri(world, root, n_subjects=1, n_shared_test=5, n_voxels=50,
                             n_train_per_subject=10, verbose="ERROR")
    return call


add("simulate_fmri-onto-bids", "simulate_fmri", _simulate_onto_bids, FileExistsError,
    ("bids",), writer=True)


def _own_folder_replaced(tmp):
    dest = Path(tmp) / "ts"
    b.trialset(seed=1).save(dest)
    return lambda: b.trialset(seed=2).save(dest)


add("TrialSet.save-onto-own-folder", "TrialSet.save", _own_folder_replaced, None,
    check=lambda p: Path(p).is_dir())


def _fit_user_checkpoints(tmp):
    out = Path(tmp) / "fit"
    b.user_folder(out / "checkpoints")

    def call():
        import numpy as np

        from braindecode_kit.train import TrainConfig, fit

        X = np.random.default_rng(0).normal(size=(16, 20)).astype(np.float32)
        ids = [f"s{i % 4}" for i in range(16)]
        cfg = TrainConfig(epochs=1, batch_size=8, patience=None, val_n_draws=2)
        return fit(b.decoder(), [("01", X, ids)], b.targets(), cfg, out_dir=out,
                   resume=False, verbose="ERROR")
    return call


add("fit-resume-false-user-checkpoints", "fit", _fit_user_checkpoints, FileExistsError,
    ("checkpoints", "notes-0.txt"), writer=True)

# ------------------------------------------------------------------ run folders
#: a one-stage pipeline: fast, and enough to probe the run folder's handling
STIMULI_ONLY = {"name": "probe", "seed": 0, "stimuli": {"kind": "world", "n": 12, "size": 16},
                "stages": ["stimuli"]}


def _pipeline_file(tmp: Path) -> Path:
    path = tmp / "probe.yaml"
    path.write_text(yaml.safe_dump(STIMULI_ONLY, sort_keys=False))
    return path


def _run_into(prepare, *extra):
    def make(tmp):
        tmp = Path(tmp)
        out = prepare(tmp)
        return cli("run", str(_pipeline_file(tmp)), "--out", str(out), "-q", *extra)
    return make


def _bids_root(tmp):
    root = tmp / "bids"
    b.write_bids(root, n_runs=2)
    return root


add("cli-run-restart-onto-bids", "cli run --restart", _run_into(_bids_root, "--restart"),
    FileExistsError, ("bids", "not a run folder"), writer=True)
add("cli-run-onto-bids", "cli run", _run_into(_bids_root), FileExistsError,
    ("bids", "not a run folder"), writer=True)
add("cli-run-onto-user-folder", "cli run", _run_into(lambda t: b.user_folder(t / "mine")),
    FileExistsError, ("notes-0.txt",), writer=True)


def _file_out(tmp):
    (tmp / "out").write_text("mine\n")
    return tmp / "out"


add("cli-run-onto-file", "cli run", _run_into(_file_out), FileExistsError, ("out",),
    writer=True)


def _finished_run(tmp: Path) -> Path:
    from braindecode_kit.pipeline import run_pipeline

    out = tmp / "run"
    run_pipeline(STIMULI_ONLY, out, verbose="ERROR")
    return out


def _resume(edit, check_after=None):
    """A finished run with ``edit(run_dir)`` applied; the call resumes it."""
    def make(tmp):
        tmp = Path(tmp)
        out = _finished_run(tmp)
        edit(out)

        def call():
            from braindecode_kit.pipeline import run_pipeline

            run_pipeline(STIMULI_ONLY, out, verbose="ERROR")
            return out
        return call
    return make


def _metrics_ok(out: Path) -> bool:
    m = json.loads((out / "metrics.json").read_text())
    return "stimuli" in json.dumps(m) or bool(m.get("timing_s"))


def _captions_ok(out: Path) -> bool:
    doc = json.loads((out / "stimuli" / "captions.json").read_text())
    return len(doc) > 0


add("resume-metrics-deleted", "run_pipeline (resume)",
    _resume(lambda o: (o / "metrics.json").unlink()), None,
    check=lambda out: (out / "metrics.json").is_file() and _metrics_ok(out))
add("resume-output-truncated", "run_pipeline (resume)",
    _resume(lambda o: b.truncate(o / "stimuli" / "captions.json", 0.3)), None,
    check=_captions_ok)
add("resume-output-deleted", "run_pipeline (resume)",
    _resume(lambda o: (o / "stimuli" / "attributes.tsv").unlink()), None,
    check=lambda out: (out / "stimuli" / "attributes.tsv").is_file())
add("resume-manifest-invalid-json", "run_pipeline (resume)",
    _resume(lambda o: b.truncate(o / "manifest.json", 0.5)), ValueError,
    ("manifest.json", "JSON"))
add("resume-manifest-not-an-object", "run_pipeline (resume)",
    _resume(lambda o: (o / "manifest.json").write_text("[]")), ValueError,
    ("manifest.json", "object"))
add("resume-manifest-without-stages", "run_pipeline (resume)",
    _resume(lambda o: (o / "manifest.json").write_text(json.dumps(
        {k: v for k, v in json.loads((o / "manifest.json").read_text()).items()
         if k != "stages"}))), ValueError, ("manifest.json", "stages"))
add("resume-metrics-invalid-json", "run_pipeline (resume)",
    _resume(lambda o: (o / "metrics.json").write_text("{oops")), None,
    check=_metrics_ok)  # rebuilt from the manifest


def _cli_corrupt_manifest(tmp):
    tmp = Path(tmp)
    out = _finished_run(tmp)
    b.truncate(out / "manifest.json", 0.5)
    return cli("run", str(_pipeline_file(tmp)), "--out", str(out), "-q")


add("cli-run-corrupt-manifest", "cli run", _cli_corrupt_manifest, ValueError,
    ("manifest.json", "JSON"))


def _cli_bad_pipeline(text):
    def make(tmp):
        path = Path(tmp) / "bad.yaml"
        path.write_text(text)
        return cli("run", str(path), "--out", str(Path(tmp) / "run"), "-q")
    return make


add("cli-run-pipeline-invalid-yaml", "cli run", _cli_bad_pipeline("name: [unclosed"),
    ValueError, ("bad.yaml", "YAML"))
add("cli-run-pipeline-unknown-key", "cli run",
    _cli_bad_pipeline(yaml.safe_dump({**STIMULI_ONLY, "bogus": 1})), ValueError, ("bogus",))
add("cli-run-pipeline-bad-value", "cli run",
    _cli_bad_pipeline(yaml.safe_dump({**STIMULI_ONLY, "seed": "zero"})), ValueError,
    ("seed",))
