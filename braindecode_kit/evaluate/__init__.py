"""Evaluation: retrieval top-k and 2-way identification in embedding space, and the
HTML report. Names are imported on first use (lazy), so importing this package is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_LAZY = {
    "retrieval_accuracy": "retrieval",
    "two_way_identification": "retrieval",
    "Report": "report",
}

__all__ = ["Report", "retrieval_accuracy", "two_way_identification"]

if TYPE_CHECKING:  # pragma: no cover
    from .report import Report
    from .retrieval import retrieval_accuracy, two_way_identification


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
