"""Compare two run folders' ``metrics.json``, ignoring timings and paths.

A restructuring that keeps behaviour must leave the numbers identical::

    python benchmarks/compare_metrics.py runs/before/metrics.json runs/after/metrics.json

prints every value that differs (flattened keys) and exits 1 if any does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: keys that depend on the machine or the folder, not on the computation
IGNORED_TOP = ("timing_s",)
IGNORED_SIMULATION = ("seconds", "root")


def clean(metrics: dict[str, Any]) -> dict[str, Any]:
    """A copy without timings and paths."""
    m = json.loads(json.dumps(metrics))
    for key in IGNORED_TOP:
        m.pop(key, None)
    for kind in m.values():
        if isinstance(kind, dict) and isinstance(kind.get("simulation"), dict):
            for key in IGNORED_SIMULATION:
                kind["simulation"].pop(key, None)
    return m


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` -> ``{"a.b.0": 1}``."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = d
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    with open(argv[0]) as fa, open(argv[1]) as fb:
        a, b = (flatten(clean(json.load(f))) for f in (fa, fb))
    diff = 0
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<missing>"), b.get(k, "<missing>")
        if va != vb:
            diff += 1
            print(f"{k}: {va!r} != {vb!r}")
    print(f"{len(a)} vs {len(b)} values, {diff} differ")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
