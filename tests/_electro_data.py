"""Small simulated MEG and sEEG datasets shared by the tests (simulated once per process;
the forward solution is cached by :func:`braindecode_kit.simulate.meg.meg_forward`)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="bdk-electro-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

MEG_KW = dict(n_train=30, n_test=10, n_test_reps=4, n_runs=2, sfreq=150.0)
SEEG_KW = dict(n_train=30, n_test=10, n_test_reps=4, n_runs=2, sfreq=500.0)


@functools.cache
def world():
    from braindecode_kit.simulate import make_world

    return make_world(120, seed=0)


@functools.cache
def simulated_meg(system: str = "ctf275", n_subjects: int = 1):
    from braindecode_kit.simulate.meg import simulate_meg

    return simulate_meg(world(), _ROOT / f"meg-{system}-{n_subjects}", n_subjects=n_subjects,
                        system=system, seed=0, **MEG_KW)


@functools.cache
def simulated_seeg(n_subjects: int = 2):
    from braindecode_kit.simulate.seeg import simulate_seeg

    return simulate_seeg(world(), _ROOT / f"seeg-{n_subjects}", n_subjects=n_subjects, seed=0,
                         **SEEG_KW)
