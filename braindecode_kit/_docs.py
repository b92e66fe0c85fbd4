"""Shared docstring fragments, filled into public docstrings (MNE's ``docdict``).

Write ``%(verbose)s`` on its own line in a numpydoc ``Parameters`` section and decorate
the function with :func:`fill_doc`; the fragment is indented to match. One definition per
parameter keeps the spelling of the package's recurring arguments the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["docdict", "fill_doc"]

F = TypeVar("F", bound=Callable)

docdict: dict[str, str] = {}

docdict["verbose"] = """
verbose : bool | str | int | None
    Log level for this call only: ``True`` is ``"INFO"``, ``False`` is ``"WARNING"``,
    a level name or number sets it, ``None`` keeps the package's level (set by
    :func:`braindecode_kit.set_log_level` or ``BRAINDECODE_KIT_LOGGING_LEVEL``)."""

docdict["mask"] = """
mask : "brain" | None | path | nibabel image | nilearn masker
    The voxels to keep: ``"brain"`` computes a brain mask from the mean BOLD image
    (nilearn's ``compute_epi_mask``), ``None`` keeps every voxel, a path or image is a
    binary mask in the BOLD space, and a fitted nilearn masker is used as is."""

docdict["tmin"] = """
tmin : float
    Start of each epoch relative to its event, in seconds (negative: before onset)."""

docdict["tmax"] = """
tmax : float
    End of each epoch relative to its event, in seconds (the sample at ``tmax`` is
    included, as in :class:`mne.Epochs`)."""

docdict["l_freq"] = """
l_freq : float | None
    High-pass edge of the band-pass filter in Hz (``None``: no high-pass)."""

docdict["h_freq"] = """
h_freq : float | None
    Low-pass edge of the band-pass filter in Hz (``None``: no low-pass)."""

docdict["seed"] = """
seed : int
    Seed of every random draw this call makes; the same seed gives the same result
    on CPU."""

docdict["subject"] = """
subject : str
    The subject's label (BIDS ``sub-`` entity without the prefix, e.g. ``"01"``)."""

docdict["targets"] = """
targets : Targets | mapping of str to array
    The CLIP targets of the stimuli (:class:`~braindecode_kit.embed.Targets`, or a
    mapping ``stimulus_id -> embedding``); looked up by each trial's ``stimulus_id``."""

docdict["n_candidates"] = """
n_candidates : int
    Number of candidate images per retrieval draw (MindEye2: 300)."""

docdict["n_draws"] = """
n_draws : int
    Number of random candidate draws the accuracy is averaged over (MindEye2: 30)."""


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    lines = text.strip("\n").split("\n")
    return "\n".join((pad + ln) if ln.strip() else "" for ln in lines).lstrip()


def fill_doc(obj: F) -> F:
    """Replace ``%(name)s`` lines in ``obj.__doc__`` by the fragments of :data:`docdict`.

    Raises
    ------
    ValueError
        If the docstring names a fragment that does not exist.
    """
    doc = obj.__doc__
    if not doc:
        return obj
    lines = doc.split("\n")
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("%(") and stripped.endswith(")s"):
            key = stripped[2:-2]
            if key not in docdict:
                raise ValueError(
                    f"Unknown docstring fragment %({key})s in {getattr(obj, '__qualname__', obj)}; "
                    f"known fragments are {', '.join(sorted(docdict))}."
                )
            indent = len(line) - len(line.lstrip())
            out.append(" " * indent + _indent(docdict[key], indent))
        else:
            out.append(line)
    obj.__doc__ = "\n".join(out)
    return obj
