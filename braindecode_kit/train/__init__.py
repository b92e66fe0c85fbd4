"""Training a :class:`~braindecode_kit.models.BrainDecoder`, and adapting it to a new subject.

- :func:`fit`: multi-subject training on Hugging Face accelerate (batches balanced per
  subject, :class:`BalancedBatchSampler`), configured by a :class:`TrainConfig`, returning
  a :class:`TrainResult`; checkpoints and resume.
- :func:`adapt_subject`: a new subject's adapter against the frozen shared encoder and
  heads, in closed form (:func:`fit_stimulus_map`, :func:`ridge_adapter`) or by gradient
  descent; :func:`learning_curve`: its accuracy vs the share of the subject's stimuli.

Modules, each importing only those before it: ``config`` (TrainConfig, TrainResult),
``_data`` (sets, targets, batches), ``checkpoints``, ``_fit`` (:func:`fit`,
:func:`param_groups`), ``adapt`` (new subjects). Names are imported on first use (lazy),
so importing this package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# public name -> submodule that defines it
_LAZY = {
    "TrainConfig": "config",
    "TrainResult": "config",
    "BalancedBatchSampler": "_data",
    "fit": "_fit",
    "param_groups": "_fit",
    "adapt_subject": "adapt",
    "learning_curve": "adapt",
    "can_solve_adapter": "adapt",
    "fit_stimulus_map": "adapt",
    "ridge_adapter": "adapt",
    "shared_space_targets": "adapt",
}
_SUBMODULES = {"config", "checkpoints", "adapt"}

__all__ = [
    "BalancedBatchSampler",
    "TrainConfig",
    "TrainResult",
    "adapt_subject",
    "can_solve_adapter",
    "fit",
    "fit_stimulus_map",
    "learning_curve",
    "param_groups",
    "ridge_adapter",
    "shared_space_targets",
]

if TYPE_CHECKING:  # pragma: no cover
    from ._data import BalancedBatchSampler
    from ._fit import fit, param_groups
    from .adapt import (
        adapt_subject,
        can_solve_adapter,
        fit_stimulus_map,
        learning_curve,
        ridge_adapter,
        shared_space_targets,
    )
    from .config import TrainConfig, TrainResult


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
