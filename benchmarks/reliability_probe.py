"""Run every reliability probe (tests/reliability) against the installed package and
print the table of outcomes: clear / handled / unclear / crash / silent / lost.

    .venv/bin/python benchmarks/reliability_probe.py [--details] [--json FILE]

Against an older checkout (the probes run the same; APIs that did not exist then count
as they come out):

    git worktree add /tmp/rel_before 06c021d
    PYTHONPATH=/tmp/rel_before .venv/bin/python benchmarks/reliability_probe.py

Outcomes are defined in tests/reliability/probes.py: "clear" is our documented exception
type, raised by our code, whose message names the file/parameter and what was expected;
"handled" valid input accepted correctly; "unclear" our exception without the expected
class or fragment; "crash" a bare dependency exception (or valid input refused);
"silent" no error where one was due; "lost" a writer destroyed a file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reliability"))

os.environ.setdefault("BRAINDECODE_KIT_PROGRESS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="one line per probe")
    parser.add_argument("--json", default=None, help="write every probe's outcome here")
    args = parser.parse_args(argv)

    from probes import OUTCOMES, all_cases, run_all

    import braindecode_kit

    warnings.simplefilter("ignore")
    logging.getLogger("braindecode_kit").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    cases = all_cases()
    results = run_all(cases)
    seconds = time.perf_counter() - t0

    print(f"braindecode_kit from {Path(braindecode_kit.__file__).parent}")
    print(f"{len(results)} probes in {seconds:.0f} s\n")
    by_target: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_target[r.case.target][r.outcome] += 1
    width = max(len(t) for t in by_target) + 2
    head = f"{'target':{width}s}" + "".join(f"{o:>9s}" for o in OUTCOMES) + f"{'total':>8s}"
    print(head)
    print("-" * len(head))
    for target in sorted(by_target):
        c = by_target[target]
        print(f"{target:{width}s}" + "".join(f"{c[o] or '':>9}" for o in OUTCOMES)
              + f"{sum(c.values()):>8d}")
    total = Counter(r.outcome for r in results)
    print("-" * len(head))
    print(f"{'all':{width}s}" + "".join(f"{total[o]:>9d}" for o in OUTCOMES)
          + f"{len(results):>8d}")
    if args.details:
        print()
        for r in results:
            print(f"{r.outcome:8s} {r.case.name}: {r.detail}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"name": r.case.name, "target": r.case.target, "outcome": r.outcome,
              "detail": r.detail} for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
