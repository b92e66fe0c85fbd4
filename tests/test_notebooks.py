"""Tutorials stay paired: every notebooks/*.py (jupytext percent) has its .ipynb twin with
the same cells. (`make test` executes the .ipynb files with nbmake.)"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("script", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.stem)
def test_notebook_pairs_are_in_sync(script):
    twin = script.with_suffix(".ipynb")
    assert twin.exists(), f"{script.name} has no paired {twin.name}: run jupytext --sync"
    a = jupytext.read(script)
    b = jupytext.read(twin)
    src = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert src(a) == src(b), f"{script.name} and {twin.name} differ: run jupytext --sync"
