"""The package's layering holds: import-linter contracts, and no private names across packages.

The contracts (layers from the CLI down to the data model, no cycles between siblings)
live in ``pyproject.toml``; ``make test`` runs ``lint-imports`` before the suite and this
test runs it again so a broken layering also fails a plain ``pytest``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "braindecode_kit"


def _lint_imports() -> str:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency: pip install -e '.[dev]'"
    return exe


def test_import_contracts_are_kept():
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contract is not vacuous: an upward import (data model -> pipeline) breaks it."""
    pkg = tmp_path / "braindecode_kit"
    shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    target = pkg / "splits.py"
    target.write_text(target.read_text() + "\n\ndef _up():\n    from .pipeline import run_pipeline  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "braindecode_kit.splits -> braindecode_kit.pipeline" in proc.stdout


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private_imports(files: list[Path], root: Path = ROOT) -> list[str]:
    """``from M import _name``, unless M is a private module of the importer's own package.

    A private name belongs to its module; the one way to share it is a private module
    (``train/_data.py``) that only its own package imports.
    """
    bad = []
    for path in files:
        importer = _module_name(path, root)
        is_pkg = path.name == "__init__.py"
        own_pkg = importer if is_pkg else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _resolve(importer, is_pkg, node)
            if not source.startswith("braindecode_kit"):
                continue
            source_pkg = source.rpartition(".")[0]
            for alias in node.names:
                name = alias.name
                as_module = root.joinpath(*source.split("."), name)
                if as_module.with_suffix(".py").exists() or as_module.is_dir():
                    continue  # a (house-helper) module, not a private name
                private = name.startswith("_") and not name.startswith("__")
                source_private = source.rpartition(".")[2].startswith("_")
                if private and not (source_private and source_pkg == own_pkg):
                    bad.append(f"{path.relative_to(root)}:{node.lineno}: {name} from {source}")
    return bad


@pytest.mark.parametrize("where", ["braindecode_kit", "benchmarks"])
def test_no_private_names_across_packages(where):
    files = sorted((ROOT / where).rglob("*.py"))
    assert files
    bad = _private_imports(files)
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


def test_the_private_import_check_is_not_vacuous(tmp_path):
    sub = tmp_path / "braindecode_kit" / "io"
    sub.mkdir(parents=True)
    across = sub / "probe.py"
    across.write_text("from ..models.config import _norm_shape  # noqa\n")
    inside = sub / "probe2.py"
    inside.write_text("from ._fmri_helpers import _private  # noqa\nfrom .._utils import atomic_path\n")
    sibling = sub / "probe3.py"
    sibling.write_text("from .glm import _design  # noqa\n")
    assert _private_imports([sibling], tmp_path) == [
        "braindecode_kit/io/probe3.py:1: _design from braindecode_kit.io.glm"]
    assert _private_imports([across], tmp_path) == [
        "braindecode_kit/io/probe.py:1: _norm_shape from braindecode_kit.models.config"]
    assert _private_imports([inside], tmp_path) == []
