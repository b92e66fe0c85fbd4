"""Evaluation: retrieval top-k and 2-way identification in embedding space, image metrics
of reconstructions, and the HTML report. Names are imported on first use (lazy), so
importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# public name -> submodule that defines it
_LAZY = {
    "binomial_ci": "retrieval",
    "draw_ci": "retrieval",
    "percentile_rank": "retrieval",
    "percentile_ranks": "retrieval",
    "retrieval_accuracy": "retrieval",
    "row_cosine": "retrieval",
    "two_way_identification": "retrieval",
    "Report": "report",
    "IMAGE_METRICS": "image_metrics",
    "correlation_distance": "image_metrics",
    "frechet_distance": "image_metrics",
    "network_features": "image_metrics",
    "pixcorr": "image_metrics",
    "ssim": "image_metrics",
}

__all__ = [
    "IMAGE_METRICS",
    "Report",
    "binomial_ci",
    "correlation_distance",
    "draw_ci",
    "frechet_distance",
    "image_metrics",
    "network_features",
    "percentile_rank",
    "percentile_ranks",
    "pixcorr",
    "retrieval_accuracy",
    "row_cosine",
    "ssim",
    "two_way_identification",
]

if TYPE_CHECKING:  # pragma: no cover
    from .image_metrics import (
        IMAGE_METRICS,
        correlation_distance,
        frechet_distance,
        network_features,
        pixcorr,
        ssim,
    )
    from .report import Report
    from .retrieval import (
        binomial_ci,
        draw_ci,
        percentile_rank,
        percentile_ranks,
        retrieval_accuracy,
        row_cosine,
        two_way_identification,
    )

# The function image_metrics has its module's name. Importing the module (which needs only
# numpy) sets this package's attribute to the module, so the function is bound here,
# eagerly: `braindecode_kit.evaluate.image_metrics` is the function whichever import came
# first, and the module stays importable (`from .image_metrics import pixcorr`).
from .image_metrics import image_metrics  # noqa: E402

__getattr__, __dir__ = attach(__name__, _LAZY, ())
