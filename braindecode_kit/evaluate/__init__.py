"""Evaluation: retrieval top-k and 2-way identification in embedding space, and the
HTML report. Names are imported on first use (lazy), so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

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


__getattr__, __dir__ = attach(__name__, _LAZY, ())
