"""Pipelines: a YAML file -> validated config -> stages in dependency order -> one
resumable run folder (``manifest.json``, ``metrics.json``, ``report.html``).

- :mod:`~braindecode_kit.pipeline.config`: the YAML schema (:func:`load_config`,
  :class:`PipelineConfig`), made of the library's own config objects;
- :mod:`~braindecode_kit.pipeline.runner`: the plan, the manifest, resume,
  :func:`run_pipeline`, :func:`merge_metrics`;
- :mod:`~braindecode_kit.pipeline.stages`: the built-in stages, one module each;
- ``_base``: :class:`Stage`, :class:`RunContext` and the ``stage`` registry decorator,
  which the stages and the runner share.
"""

from __future__ import annotations

from ._base import RunContext, Stage, stage
from .config import PipelineConfig, load_config
from .runner import merge_metrics, plan, run_pipeline

__all__ = ["PipelineConfig", "RunContext", "Stage", "load_config", "merge_metrics", "plan",
           "run_pipeline", "stage"]
