"""The reliability probes' harness: a case, how its outcome is classified, and the tables.

A **case** is one bad (or valid) input written as data: a name, the API it probes, a
builder ``make(tmp) -> call`` that writes the input under a fresh folder and returns a
zero-argument function calling the API, the exception class expected (None: valid
input that must be accepted) and fragments its message must contain.

Outcomes (:func:`run_case`):

``clear``
    our documented exception type (``ValueError``, ``TypeError``, ``FileNotFoundError``,
    ``FileExistsError`` or a subclass), raised by braindecode_kit's own code, of the
    expected class, whose message holds every fragment (the file or parameter, and what
    was expected);
``handled``
    valid input accepted (and ``check(result)`` true where the case has one);
``unclear``
    our exception, but not of the expected class or without a fragment;
``crash``
    a bare dependency exception (``EOFError``, ``JSONDecodeError``, ``KeyError`` ...),
    or valid input refused;
``silent``
    no error where one was due (or ``check(result)`` false);
``lost``
    a writer probe destroyed or changed a file that was there before (checked over the
    whole probe folder, or the case's ``keep`` paths).

Nothing here imports braindecode_kit at module level: the same table runs against an
older checkout (``PYTHONPATH=/tmp/rel_before``; see ``benchmarks/reliability_probe.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("clear", "handled", "unclear", "crash", "silent", "lost")
OURS = (ValueError, TypeError, FileNotFoundError, FileExistsError)
#: the modules holding the tables (each defines ``CASES``, a list of :class:`Case`)
TABLES = ("cases_files", "cases_fmri", "cases_data", "cases_writers", "cases_meg", "cases_seeg")


@dataclass(frozen=True)
class Case:
    """One probe. See the module docstring."""

    name: str
    target: str  # the API probed, e.g. "load_fmri", "TrialSet.load", "cli run"
    make: Callable[[Path], Callable[[], Any]]
    expect: type[BaseException] | None  # None: valid input, must be accepted
    fragments: Sequence[str] = ()  # all must be in the message (case-insensitive)
    writer: bool = False  # check that no file under the probe folder is lost
    check: Callable[[Any], bool] | None = None  # for valid input: the result is right
    keep: Sequence[str] = field(default=())  # writer probes: only these paths (relative)


class CliFailed(ValueError):
    """The command line exited non-zero after printing an error (stderr in the message)."""


def cli(*args: str) -> Callable[[], int]:
    """A call of ``braindecode-kit ARGS`` in this process; non-zero exit -> CliFailed."""

    def call() -> int:
        from braindecode_kit.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(list(args))
            except SystemExit as exc:  # argparse, or an old SystemExit message
                rc = exc.code if isinstance(exc.code, int) else 2
                if not isinstance(exc.code, int):
                    err.write(str(exc.code) + "\n")
        if rc:
            raise CliFailed(err.getvalue().strip())
        return rc

    return call


def _package_dir() -> Path:
    import braindecode_kit

    return Path(braindecode_kit.__file__).resolve().parent


def raised_by_package(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is braindecode_kit's code."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        Path(tb.tb_frame.f_code.co_filename).resolve().relative_to(_package_dir())
    except ValueError:
        return False
    return True


def _snapshot(root: Path, keep: Sequence[str]) -> dict[str, str]:
    paths = [root / k for k in keep] if keep else [root]
    out = {}
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for p in files:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str


def run_case(case: Case, tmp: Path) -> Result:
    """Build the case's input under ``tmp``, call the API, classify what happened."""
    tmp = Path(tmp)
    try:
        call = case.make(tmp)
    except Exception as err:  # noqa: BLE001 - building the input with an old package
        return Result(case, "crash", f"building the input failed: {type(err).__name__}: {err}")
    before = _snapshot(tmp, case.keep) if case.writer else None
    outcome, detail = _call(case, call)
    if before is not None:
        after = _snapshot(tmp, ())
        gone = [p for p, h in before.items() if after.get(p) != h]
        if gone:
            return Result(case, "lost", f"{len(gone)} file(s) lost or changed, e.g. {gone[:3]}"
                          f" ({outcome}: {detail})")
    return Result(case, outcome, detail)


def _call(case: Case, call: Callable[[], Any]) -> tuple[str, str]:
    try:
        result = call()
    except BaseException as err:  # noqa: BLE001 - the probe classifies every exception
        if isinstance(err, KeyboardInterrupt):
            raise
        msg = f"{type(err).__name__}: {err}"
        if case.expect is None:
            return "crash", "valid input refused: " + _short(msg)
        ours = isinstance(err, CliFailed) and "Traceback" not in str(err)
        ours = ours or (isinstance(err, OURS) and raised_by_package(err))
        if not ours:
            where = traceback.extract_tb(err.__traceback__)[-1]
            return "crash", f"{_short(msg)} [in {Path(where.filename).name}:{where.lineno}]"
        expected = case.expect if not isinstance(err, CliFailed) else CliFailed
        text = str(err).lower()
        missing = [f for f in case.fragments if f.lower() not in text]
        if not isinstance(err, expected) and not isinstance(err, CliFailed):
            return "unclear", f"{_short(msg)} (expected {case.expect.__name__})"
        if missing:
            return "unclear", f"{_short(msg)} (lacks {missing})"
        return "clear", _short(msg)
    if case.expect is not None:
        return "silent", f"no error (expected {case.expect.__name__})"
    if case.check is not None:
        try:
            ok = bool(case.check(result))
        except Exception as err:  # noqa: BLE001
            return "silent", f"the result's check failed: {type(err).__name__}: {err}"
        if not ok:
            return "silent", "accepted, but the result is wrong"
    return "handled", "accepted"


def _short(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def all_cases() -> list[Case]:
    """Every case of every table (:data:`TABLES`), names unique."""
    cases: list[Case] = []
    for mod in TABLES:
        cases += importlib.import_module(mod).CASES
    names = [c.name for c in cases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate case names: {dup}")
    return cases


def run_all(cases: Sequence[Case] | None = None) -> list[Result]:
    """Run cases (default all), each in its own temporary folder."""
    results = []
    for case in cases if cases is not None else all_cases():
        with tempfile.TemporaryDirectory(prefix="probe-") as d:
            results.append(run_case(case, Path(d)))
    return results
