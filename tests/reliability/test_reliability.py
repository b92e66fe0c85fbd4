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


def test_the_cli_shows_a_traceback_only_with_debug(tmp_path, capsys):
    from braindecode_kit.cli import main

    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text("{}")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\nstimuli: {kind: world, n: 12}\nstages: [stimuli]\n")
    assert main(["run", str(pipeline), "--out", str(bids), "--restart", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run folder" in err and "Traceback" not in err
    with pytest.raises(FileExistsError, match="not a run folder"):
        main(["--debug", "run", str(pipeline), "--out", str(bids), "--restart", "-q"])
    assert (bids / "dataset_description.json").read_text() == "{}"


def test_a_bug_is_not_hidden(monkeypatch):
    """A TypeError raised inside a dependency (not by our checks) keeps its traceback."""
    from braindecode_kit import cli

    def broken(args):
        return sorted([1, "a"])  # TypeError raised by Python, not by braindecode_kit

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["pipelines"].set_defaults(func=broken)
    with pytest.raises(TypeError):
        cli.main(["pipelines"])
