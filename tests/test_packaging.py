"""The wheel carries data/ and pipelines/, and a plain (non-editable) install finds them
through importlib.resources, not through a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (whl,) = out.glob("braindecode_kit-*.whl")
    return whl


def test_wheel_contains_data_and_pipelines(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "braindecode_kit/_pipelines/demo.yaml" in names
    shipped = [n for n in os.listdir(ROOT / "data") if not n.startswith(".")]
    for name in shipped:
        assert f"braindecode_kit/_data/{name}" in names, name
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_finds_shipped_files(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), str(wheel)], check=True)
    code = ("import braindecode_kit, braindecode_kit._resources as r; "
            "print(braindecode_kit.__file__); print(r.pipelines_dir()); print(r.data_dir())")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env=env).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1] == str(target / "braindecode_kit" / "_pipelines")
    assert out[2] == str(target / "braindecode_kit" / "_data")
