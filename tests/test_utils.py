"""Atomic writes leave nothing half-written and give files their usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from braindecode_kit._utils import (
    MARKER,
    atomic_dir,
    atomic_path,
    clean_stale_temporaries,
    read_marker,
    write_json_atomic,
)


def test_atomic_path_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_outputs_have_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as d:
        (d / "b").write_text("2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "a"]
    assert read_marker(target)["kind"] == "folder"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary left


@pytest.mark.parametrize("content", ["user-file", "bids", "plain-file"])
def test_atomic_dir_never_replaces_what_it_did_not_write(tmp_path, content):
    target = tmp_path / "out"
    if content == "plain-file":
        target.write_text("my only copy")
    else:
        target.mkdir()
        name = "notes.txt" if content == "user-file" else "dataset_description.json"
        (target / name).write_text("my only copy")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(FileExistsError, match=f"Refusing to write a trialset folder at {target}"):
        with atomic_dir(target, kind="trialset") as d:
            (d / "data.npy").write_text("x")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    if content != "plain-file":
        assert "my only copy" in next(target.iterdir()).read_text()


def test_atomic_dir_refuses_another_writers_folder(tmp_path):
    with atomic_dir(tmp_path / "m", kind="model") as d:
        (d / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="holds a 'model'"):
        with atomic_dir(tmp_path / "m", kind="trialset"):
            pass
    # its own kind may replace it, and a legacy folder holding only its own files too
    with atomic_dir(tmp_path / "m", kind="model") as d:
        (d / "config.json").write_text("{\"v\": 2}")
    assert (tmp_path / "m" / "config.json").read_text() == '{"v": 2}'
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    with atomic_dir(legacy, kind="model", produces={"config.json", "model.safetensors"}) as d:
        (d / "config.json").write_text("new")
    assert (legacy / "config.json").read_text() == "new"


def test_a_killed_writes_temporary_is_cleaned_by_the_next(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(proc.stdout)  # a process that has exited
    stale = tmp_path / f".out.{dead_pid}-abc.tmp"
    stale.mkdir()
    (stale / "data.npy").write_bytes(b"0" * 1000)
    live = tmp_path / f".out.{os.getpid()}-def.tmp"  # a running writer's: kept
    live.mkdir()
    assert clean_stale_temporaries(tmp_path / "out") == [stale]
    assert not stale.exists() and live.exists()
    stale.mkdir()
    with atomic_dir(tmp_path / "out") as d:
        (d / "x").write_text("1")
    assert not stale.exists()
