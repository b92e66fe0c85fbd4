"""The built-in stages, one module each; importing this package registers them.

``stimuli -> embed -> simulate_fmri -> load_fmri -> train -> ridge -> new_subject ->
evaluate -> caption -> reconstruct -> report`` is the order their ``requires``/``after`` give (ties broken by
their priority), not the order of the imports below. Only the loader stages
(``simulate_<kind>``, ``load_<kind>``) know a recording kind's formats; the others loop
over the kinds of the config and read the TrialSets the loaders wrote.

The helpers the stages share (and the benchmarks use) are re-exported here.
"""

from __future__ import annotations

from . import (  # noqa: F401  (each registers its stage)
    caption,
    embed,
    evaluate,
    load_fmri,
    load_meg,
    load_seeg,
    new_subject,
    reconstruct,
    report,
    ridge,
    simulate_fmri,
    simulate_meg,
    simulate_seeg,
    stimuli,
    train,
)
from ._common import (
    KIND_LABELS,
    decoder_config,
    fraction_label,
    get_oracle,
    get_stimuli,
    get_targets,
    get_trialsets,
    kind_path,
    pool_over_subjects,
    register_oracle,
    retrieval,
    retrieval_summary,
    small_data_config,
    split_subjects,
    subjects_of,
    test_set,
    train_config,
)

__all__ = [
    "KIND_LABELS",
    "decoder_config",
    "fraction_label",
    "get_oracle",
    "get_stimuli",
    "get_targets",
    "get_trialsets",
    "kind_path",
    "pool_over_subjects",
    "register_oracle",
    "retrieval",
    "retrieval_summary",
    "small_data_config",
    "split_subjects",
    "subjects_of",
    "test_set",
    "train_config",
]
