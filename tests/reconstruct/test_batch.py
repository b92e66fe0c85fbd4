"""Resumable, sharded batch reconstruction (:mod:`braindecode_kit.reconstruct.batch`).

On a random-weight generator of the built-in layout (``write_image_decoder`` with no
module), 2 sampling steps: a plain run and its manifest; a run SIGKILLed at random points
and resumed until it finishes gives the uninterrupted run's PNGs byte for byte; two
processes under ``accelerate launch`` (``--multi_gpu`` with ``ACCELERATE_USE_CPU=1``, as in
``tests/pipeline/test_distributed.py``) make each image once and the same images; changed
jobs or settings, bad keys and foreign folders are refused; an image does not depend on
the batch it is made in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from braindecode_kit.reconstruct.base import Reconstructor, item_seeds
from braindecode_kit.reconstruct.batch import (
    DONE_DIR,
    MANIFEST_FILE,
    ImageJob,
    load_batch_images,
    reconstruct_batch,
)
from braindecode_kit.reconstruct.builtin import write_image_decoder

N_JOBS, DIM, BATCH = 24, 128, 4
N_BATCHES = N_JOBS // BATCH
ACCELERATE = Path(sys.executable).with_name("accelerate")

#: The child run: ``run_batch.py GENERATOR JOBS OUT_DIR BATCH_SIZE`` runs once;
#: with ``--serve`` it imports and loads once, then for each line "go" on stdin forks a
#: worker that runs the batch (printing "PID <pid>", then "EXIT <code>" when it ends), so
#: that a test can SIGKILL many real runs without paying torch's and diffusers' import
#: (seconds) for each.
SCRIPT = """\
import json, os, sys, traceback

import accelerate  # imported here, as everything the runs need, not in each forked run
import numpy as np
import torch

from braindecode_kit.reconstruct.base import Reconstructor
from braindecode_kit.reconstruct.batch import ImageJob, reconstruct_batch

torch.set_num_threads(1)
generator, jobs_file, out_dir, batch_size = sys.argv[1:5]
data = np.load(jobs_file)
jobs = [ImageJob(str(k), e) for k, e in zip(data["keys"], data["embeddings"])]
rec = Reconstructor("builtin", model=generator, num_inference_steps=2)


def run():
    summary = reconstruct_batch(rec, jobs, out_dir, batch_size=int(batch_size),
                                progress=False)
    print("SUMMARY " + json.dumps(summary), flush=True)


if "--serve" not in sys.argv:
    run()
    sys.exit(0)
print("READY", flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        break
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            run()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(f"PID {pid}", flush=True)
    _, status = os.waitpid(pid, 0)
    print(f"EXIT {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def load_jobs(path: Path) -> list[ImageJob]:
    data = np.load(path)
    return [ImageJob(str(k), e) for k, e in zip(data["keys"], data["embeddings"], strict=True)]


def pngs(folder: Path) -> dict[str, bytes]:
    """key -> PNG bytes of every image in a batch folder."""
    return {p.relative_to(folder).with_suffix("").as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*.png"))}


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                "BRAINDECODE_KIT_PROGRESS": "0"}, **extra)
    env.pop("WORLD_SIZE", None)
    return env


def summaries(stdout: str) -> list[dict]:
    """Every ``SUMMARY {json}`` printed (two ranks may write into one line of the pipe)."""
    decoder, out, i = json.JSONDecoder(), [], stdout.find("SUMMARY ")
    while i >= 0:
        obj, end = decoder.raw_decode(stdout, i + len("SUMMARY "))
        out.append(obj)
        i = stdout.find("SUMMARY ", end)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A random-weight generator, 24 jobs (random unit embeddings, keys in two subject
    folders), the child script, and one uninterrupted single-process run of them."""
    root = tmp_path_factory.mktemp("batch_world")
    generator = write_image_decoder(root / "generator")  # module=None: random weights
    rng = np.random.default_rng(20240601)
    emb = rng.standard_normal((N_JOBS, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    keys = np.array([f"fmri/sub-{i % 2 + 1:02d}/decoder/s{i:04d}" for i in range(N_JOBS)])
    np.savez(root / "jobs.npz", keys=keys, embeddings=emb)
    script = root / "run_batch.py"
    script.write_text(SCRIPT)
    rec = Reconstructor("builtin", model=str(generator), num_inference_steps=2)
    jobs = load_jobs(root / "jobs.npz")
    reference = root / "reference"
    summary = reconstruct_batch(rec, jobs, reference, batch_size=BATCH, progress=False)
    return {"root": root, "generator": str(generator), "jobs_file": root / "jobs.npz",
            "script": script, "rec": rec, "jobs": jobs, "reference": reference,
            "summary": summary}


# --------------------------------------------------------------------------- 1. plain run
def test_a_run_writes_one_png_per_job_and_a_manifest_of_their_hashes(world):
    ref, summary = world["reference"], world["summary"]
    got = pngs(ref)
    assert sorted(got) == sorted(j.key for j in world["jobs"])
    assert summary["n_jobs"] == summary["n_generated_this_call"] == N_JOBS
    assert summary["n_batches"] == N_BATCHES and summary["n_skipped"] == 0
    manifest = json.loads((ref / MANIFEST_FILE).read_text())
    assert summary["manifest"] == str(ref / MANIFEST_FILE)
    assert list(manifest["images"]) == [j.key for j in world["jobs"]]  # the jobs' order
    for key, data in got.items():
        assert manifest["images"][key]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["settings"] == json.loads((ref / "reconstruct.json").read_text())["settings"]
    assert manifest["settings"]["batch_size"] == BATCH
    assert len(list((ref / DONE_DIR).glob("batch-*.json"))) == N_BATCHES
    assert not list(ref.rglob("*.tmp"))
    # an image is what generate() gives for its embedding and the seed of (seed, key)
    rec, jobs = world["rec"], world["jobs"][:BATCH]
    direct = rec.generate(np.stack([j.embedding for j in jobs]),
                          seeds=item_seeds(rec.seed, [j.key for j in jobs]))
    images = load_batch_images(ref, [j.key for j in jobs])
    for job, im in zip(jobs, direct, strict=True):
        assert np.array_equal(np.asarray(images[job.key]), np.asarray(im))


def test_a_rerun_generates_nothing_and_rewrites_nothing(world, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(world["reference"], out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    summary = reconstruct_batch(world["rec"], world["jobs"], out, batch_size=BATCH,
                                progress=False)
    assert summary["n_generated_this_call"] == 0 and summary["n_written_this_call"] == 0
    assert summary["n_skipped"] == N_JOBS
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before
    assert (out / MANIFEST_FILE).read_bytes() == (world["reference"] / MANIFEST_FILE).read_bytes()


def test_a_lost_record_or_png_remakes_its_batch_and_writes_only_what_is_missing(world,
                                                                                 tmp_path):
    out = tmp_path / "run"
    shutil.copytree(world["reference"], out)
    keys = [j.key for j in world["jobs"]]
    (out / DONE_DIR / "batch-000001.json").unlink()  # batch 1: record lost, PNGs kept
    (out / f"{keys[BATCH]}.png").unlink()  # ... and one of its PNGs lost
    (out / f"{keys[2 * BATCH]}.png").write_bytes(b"not a png")  # batch 2: a PNG changed
    kept = {k: (out / f"{k}.png").stat().st_ino for k in keys[BATCH + 1:3 * BATCH]
            if k != keys[2 * BATCH]}
    # temporaries a killed run left (a dead process's), and a live writer's
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / "fmri" / "sub-01" / "decoder" / f".s0000.png.{dead.pid}-x1y2.tmp"
    stale.write_bytes(b"half")
    live = out / f".{MANIFEST_FILE}.{os.getpid()}-abcd.tmp"
    live.write_bytes(b"in progress")
    summary = reconstruct_batch(world["rec"], world["jobs"], out, batch_size=BATCH,
                                progress=False)
    assert summary["n_generated_this_call"] == 2 * BATCH  # batches 1 and 2, whole
    assert summary["n_written_this_call"] == 2  # the lost PNG and the changed one
    assert not stale.exists() and live.exists()
    live.unlink()
    assert pngs(out) == pngs(world["reference"])
    assert {k: (out / f"{k}.png").stat().st_ino for k in kept} == kept  # left in place


# --------------------------------------------------------------------------- 2. kill + resume
def _n_records(out: Path) -> int:
    done = out / DONE_DIR
    return len(list(done.glob("batch-*.json"))) if done.is_dir() else 0


def _read_until(stream, prefix: str) -> str:
    for line in stream:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise AssertionError(f"the batch server ended before printing {prefix!r}")


def test_a_run_killed_at_random_points_and_resumed_gives_the_same_images(world, tmp_path):
    """Real runs (forked from a server that imported everything once) SIGKILLed at seeded
    random times and after a random number of finished batches, each resuming the last,
    until one finishes: the PNGs and the manifest are the uninterrupted run's."""
    out = tmp_path / "killed"
    server = subprocess.Popen(
        [sys.executable, str(world["script"]), world["generator"], str(world["jobs_file"]),
         str(out), str(BATCH), "--serve"],
        env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rng = random.Random(7)
    kills = []  # batch records present after each kill
    seen: dict[str, tuple[int, bytes]] = {}  # PNGs present after a kill: inode and bytes
    try:
        _read_until(server.stdout, "READY")
        code = None
        # two kills after a few batches first (a little into the next, never past the
        # last batch), so that at least two land mid-run, then kills at random times (in
        # the set-up, a batch, the writes, the manifest) and after more batches
        plan = ["records", "records", "early", "time", "records", "time", "records", "time"]
        for attempt in range(len(plan) + 1):
            done_before = _n_records(out)
            kind = plan[attempt] if attempt < len(plan) else "finish"
            if kind == "records" and done_before + 1 > N_BATCHES - 2:
                kind = "time"
            target = delay = None
            if kind == "records":
                target = rng.randint(done_before + 1, min(done_before + 2, N_BATCHES - 2))
                delay = rng.uniform(0.0, 0.05)
            elif kind == "early":
                delay = rng.uniform(0.0, 0.1)
            elif kind == "time":
                delay = rng.uniform(0.0, 0.6)
            server.stdin.write("go\n")
            server.stdin.flush()
            pid = int(_read_until(server.stdout, "PID "))
            started = time.monotonic()
            if delay is not None:
                while time.monotonic() - started < 60:
                    if target is None and time.monotonic() - started >= delay:
                        break
                    if target is not None and _n_records(out) >= target:
                        time.sleep(delay)
                        break
                    time.sleep(0.002)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            code = int(_read_until(server.stdout, "EXIT "))
            if code == 0:
                break
            assert code == -signal.SIGKILL, f"the run failed (exit {code}), see stderr"
            kills.append(_n_records(out))
            for p in out.rglob("*.png"):
                key = p.relative_to(out).with_suffix("").as_posix()
                if key in seen:  # a PNG written before is never rewritten nor deleted
                    assert (p.stat().st_ino, p.read_bytes()) == seen[key]
                seen[key] = (p.stat().st_ino, p.read_bytes())
        assert code == 0
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    print(f"batch records present after each kill: {kills}")
    assert sum(0 < n < N_BATCHES for n in kills) >= 2, f"too few kills landed mid-run: {kills}"
    assert pngs(out) == pngs(world["reference"])
    for key, (ino, data) in seen.items():
        p = out / f"{key}.png"
        assert (p.stat().st_ino, p.read_bytes()) == (ino, data)
    got = json.loads((out / MANIFEST_FILE).read_text())
    want = json.loads((world["reference"] / MANIFEST_FILE).read_text())
    assert got == want
    assert not list(out.rglob("*.tmp"))
    assert len(load_batch_images(out)) == N_JOBS


# --------------------------------------------------------------------------- 3. two processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_make_each_image_once_and_the_same_images(world, tmp_path):
    if not ACCELERATE.is_file():
        pytest.skip("accelerate's launcher is not installed beside this Python")
    (tmp_path / "hf_home").mkdir()
    out = tmp_path / "two"
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(world["script"]),
           world["generator"], str(world["jobs_file"]), str(out), str(BATCH)]
    env = child_env(ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="",
                    HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-6000:]
    runs = sorted(summaries(proc.stdout), key=lambda s: s["rank"])
    assert [s["rank"] for s in runs] == [0, 1]
    assert all(s["num_processes"] == 2 for s in runs)
    # 6 batches split 3 / 3; each rank made its own, together every image once
    assert [s["n_generated_this_call"] for s in runs] == [N_JOBS // 2, N_JOBS // 2]
    records = [json.loads(p.read_text()) for p in sorted((out / DONE_DIR).glob("*.json"))]
    assert [r["batch"] for r in records] == list(range(N_BATCHES))
    by_rank = {r: [k for rec in records if rec["rank"] == r for k in rec["keys"]]
               for r in (0, 1)}
    assert by_rank[0] and by_rank[1] and not set(by_rank[0]) & set(by_rank[1])
    assert sorted(by_rank[0] + by_rank[1]) == sorted(j.key for j in world["jobs"])
    assert pngs(out) == pngs(world["reference"])
    assert (json.loads((out / MANIFEST_FILE).read_text())
            == json.loads((world["reference"] / MANIFEST_FILE).read_text()))
    assert not list(out.rglob("*.tmp"))


# --------------------------------------------------------------------------- 4. refusals
@pytest.fixture
def small_run(world, tmp_path):
    """A finished run of the first 6 jobs (batches of 3), in its own folder."""
    out = tmp_path / "small"
    reconstruct_batch(world["rec"], world["jobs"][:6], out, batch_size=3, progress=False)
    return out


def _listing(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize(("change", "match"), [
    ("steps", r"setting 'num_inference_steps' was 2, now 3"),
    ("seed", r"setting 'seed' was 0, now 1"),
    ("batch_size", r"setting 'batch_size' was 3, now 2"),
    ("drop", r"1 job\(s\) removed \('fmri/sub-02/decoder/s0005'\)"),
    ("add", r"1 job\(s\) added \('fmri/sub-01/decoder/s0006'\)"),
    ("embedding", r"1 job\(s\) changed embedding, seed or init image "
                  r"\('fmri/sub-01/decoder/s0000'\)"),
    ("job_seed", r"1 job\(s\) changed"),
    ("order", r"another order"),
])
def test_other_jobs_or_settings_against_an_existing_run_are_refused(world, small_run, change,
                                                                    match):
    jobs, rec, bs = list(world["jobs"][:6]), world["rec"], 3
    if change == "steps":
        rec = Reconstructor("builtin", model=world["generator"], num_inference_steps=3)
    elif change == "seed":
        rec = Reconstructor("builtin", model=world["generator"], num_inference_steps=2, seed=1)
    elif change == "batch_size":
        bs = 2
    elif change == "drop":
        jobs = jobs[:5]
    elif change == "add":
        jobs = world["jobs"][:7]
    elif change == "embedding":
        jobs[0] = ImageJob(jobs[0].key, -jobs[0].embedding)
    elif change == "job_seed":
        jobs[0] = ImageJob(jobs[0].key, jobs[0].embedding, seed=123)
    elif change == "order":
        jobs = jobs[::-1]
    before = _listing(small_run)
    with pytest.raises(ValueError, match=match) as err:
        reconstruct_batch(rec, jobs, small_run, batch_size=bs, progress=False)
    assert "another out_dir" in str(err.value) and str(small_run) in str(err.value)
    assert _listing(small_run) == before  # nothing touched


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs/path", "a//b", ".hidden",
                                 "sub-01/.done", "a/b/", "with space", "x\\y", "", "s0001.png",
                                 "é"])
def test_bad_keys_are_refused(world, tmp_path, key):
    job = ImageJob(key, world["jobs"][0].embedding)
    with pytest.raises(ValueError, match="key"):
        reconstruct_batch(world["rec"], [job], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_jobs_are_refused(world, tmp_path):
    e = world["jobs"][0].embedding
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"repeats jobs\[0\]"):
        reconstruct_batch(world["rec"], [ImageJob("a", e), ImageJob("a", e)], out)
    with pytest.raises(ValueError, match="ignoring case"):
        reconstruct_batch(world["rec"], [ImageJob("a/B", e), ImageJob("a/b", e)], out)
    with pytest.raises(TypeError, match="jobs"):
        reconstruct_batch(world["rec"], [ImageJob(3, e)], out)
    with pytest.raises(ValueError, match="1-D"):
        reconstruct_batch(world["rec"], [ImageJob("a", e[None])], out)
    with pytest.raises(ValueError, match="128 columns"):
        reconstruct_batch(world["rec"], [ImageJob("a", e[:10])], out)
    with pytest.raises(ValueError, match="seed"):
        reconstruct_batch(world["rec"], [ImageJob("a", e, seed=-1)], out)
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="1 of 2 jobs have one"):
        reconstruct_batch(world["rec"], [ImageJob("a", e, init_image=img), ImageJob("b", e)],
                          out)
    with pytest.raises(ValueError, match="uint8"):
        reconstruct_batch(world["rec"], [ImageJob("a", e, init_image=img.astype(float))], out)
    with pytest.raises(ValueError, match="init_strength"):
        reconstruct_batch(world["rec"], [ImageJob("a", e)], out, init_strength=0.5)
    with pytest.raises(ValueError, match="empty"):
        reconstruct_batch(world["rec"], [], out)
    assert not out.exists()


def test_foreign_folders_are_refused(world, tmp_path):
    jobs = world["jobs"][:2]
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not make"):
        reconstruct_batch(world["rec"], jobs, user, progress=False)
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    other = tmp_path / "other"
    other.mkdir()
    (other / ".braindecode_kit").write_text(json.dumps({"kind": "BrainDecoder"}))
    with pytest.raises(FileExistsError, match="BrainDecoder"):
        reconstruct_batch(world["rec"], jobs, other, progress=False)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(FileExistsError, match="a file of that name"):
        reconstruct_batch(world["rec"], jobs, file, progress=False)
    # an empty folder is taken
    empty = tmp_path / "empty"
    empty.mkdir()
    assert reconstruct_batch(world["rec"], jobs, empty, progress=False)["n_jobs"] == 2


def test_loading_checks_every_image_against_the_manifest(small_run):
    keys = list(json.loads((small_run / MANIFEST_FILE).read_text())["images"])
    assert list(load_batch_images(small_run)) == keys
    assert list(load_batch_images(small_run, keys[1:3])) == keys[1:3]
    with pytest.raises(ValueError, match="not in"):
        load_batch_images(small_run, ["fmri/sub-01/decoder/s9999"])
    png = small_run / f"{keys[0]}.png"
    data = png.read_bytes()
    png.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match="not the one the run wrote"):
        load_batch_images(small_run)
    png.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_batch_images(small_run, keys[:1])
    (small_run / MANIFEST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="not a finished"):
        load_batch_images(small_run)


def test_init_image_jobs_go_through_img2img(world, tmp_path):
    rng = np.random.default_rng(3)
    inits = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    jobs = [ImageJob(j.key, j.embedding, init_image=im)
            for j, im in zip(world["jobs"][:4], inits, strict=True)]
    out = tmp_path / "img2img"
    reconstruct_batch(world["rec"], jobs, out, batch_size=2, init_strength=0.5, progress=False)
    rec = world["rec"]
    direct = rec.generate(np.stack([j.embedding for j in jobs]),
                          seeds=item_seeds(rec.seed, [j.key for j in jobs]),
                          init_images=inits, strength=0.5, batch_size=2)
    images = load_batch_images(out)
    for job, im in zip(jobs, direct, strict=True):
        assert np.array_equal(np.asarray(images[job.key]), np.asarray(im))
    plain = load_batch_images(world["reference"], [j.key for j in jobs])
    assert any(not np.array_equal(np.asarray(images[k]), np.asarray(plain[k])) for k in plain)
    # the init images are part of the fingerprint
    jobs[0] = ImageJob(jobs[0].key, jobs[0].embedding, init_image=255 - inits[0])
    with pytest.raises(ValueError, match="changed embedding, seed or init image"):
        reconstruct_batch(rec, jobs, out, batch_size=2, init_strength=0.5, progress=False)
    with pytest.raises(ValueError, match="init_strength"):
        reconstruct_batch(rec, [ImageJob(j.key, j.embedding) for j in jobs], out,
                          batch_size=2, init_strength=0.5, progress=False)


# --------------------------------------------------------------------------- 5. batch-invariance
# batches of fewer than 4 images are padded by the built-in backend (CPU matmul kernels of
# fewer than 4 rows round differently). Larger batches of another size can still round a
# row differently (the kernels block rows by shape and thread: with torch 2.14 a batch of
# 6 moves single pixels by one grey level), so the bound is one grey level, and nearly all
# pixels equal; anything more would be a real dependence (another image's noise or
# conditioning moves most pixels by many levels)
@pytest.mark.parametrize("batch_size", [
    1, 2, 3, 6,
])
def test_an_image_does_not_depend_on_its_batch(world, tmp_path, batch_size):
    """The same job made beside other jobs, at another place in another batch size, gives
    the reference run's image (batches of 4, in order), up to CPU rounding."""
    jobs = list(world["jobs"])
    order = np.random.default_rng(batch_size).permutation(len(jobs))[:12]
    picked = [jobs[i] for i in order]
    out = tmp_path / f"bs{batch_size}"
    reconstruct_batch(world["rec"], picked, out, batch_size=batch_size, progress=False)
    got, want = pngs(out), pngs(world["reference"])
    assert len(got) == 12 and set(got) <= set(want)
    a = load_batch_images(out, sorted(got))
    b = load_batch_images(world["reference"], sorted(got))
    diff = np.stack([np.abs(np.asarray(a[k], dtype=int) - np.asarray(b[k], dtype=int))
                     for k in sorted(got)])
    assert diff.max() <= 1, (f"batch {batch_size} vs {BATCH}: largest pixel difference "
                             f"{diff.max()}")
    assert diff.mean() < 0.005, f"batch {batch_size}: {diff.mean():.3f} grey levels on average"
