"""Every probe of the reliability tables (see README.md) is clear or handled: a bad input
raises our exception naming the file or parameter and what was expected, a valid one is
accepted, and no writer loses a file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from probes import OUTCOMES, all_cases, run_case  # noqa: E402

CASES = all_cases()


def test_the_tables_are_big_enough():
    assert len(CASES) >= 120
    assert {c.expect for c in CASES} >= {None, ValueError, FileExistsError}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_probe(case, tmp_path):
    result = run_case(case, tmp_path)
    assert result.outcome in OUTCOMES
    assert result.outcome in ("clear", "handled"), f"{result.outcome}: {result.detail}"
