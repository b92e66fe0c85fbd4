"""Input checks at the package's boundaries: one place, one message style.

Every user-facing error names the parameter, what is allowed and what came in (MNE's
style: "Invalid value for the 'kind' parameter. Allowed values are 'a', 'b', but got 'c'
instead."). Values are refused, never silently fixed. Errors are ``ValueError`` for a bad
value and ``TypeError`` for a value of the wrong kind; none is a ``KeyError``, whose
message Python prints quoted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_device",
    "check_embeddings",
    "UnknownKeyError",
    "check_finite",
    "check_float",
    "check_int",
    "check_option",
    "check_positive_int",
    "check_type",
]


class UnknownKeyError(ValueError, KeyError):
    """A name or id looked up and not found: a ``ValueError`` (a bad value came in) that
    is also a ``KeyError`` (for code catching lookups), printed without KeyError's quotes."""

    __str__ = ValueError.__str__


def check_option(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Refuse ``value`` unless it is one of ``allowed``; return it.

    Examples
    --------
    >>> check_option("kind", "lsa", ("lss", "lsa"))
    'lsa'
    """
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value against a set/dict
        ok = False
    if not ok:
        allowed_s = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"Invalid value for the {name!r} parameter. Allowed values are {allowed_s}, "
            f"but got {value!r} instead."
        )
    return value


def check_type(name: str, value: Any, types: type | tuple[type, ...],
               type_name: str | None = None) -> Any:
    """Refuse ``value`` unless it is an instance of ``types``; return it.

    ``bool`` is not accepted where ``int`` is asked for (``True`` is rarely a count).
    """
    types_t = types if isinstance(types, tuple) else (types,)
    bad_bool = isinstance(value, bool) and bool not in types_t
    if bad_bool or not isinstance(value, types_t):
        expected = type_name or " or ".join(t.__name__ for t in types_t)
        raise TypeError(
            f"The {name!r} parameter must be {_article(expected)}, but got "
            f"{type(value).__name__} ({value!r}) instead."
        )
    return value


def _article(noun: str) -> str:
    if noun.startswith(("a ", "an ", "one ", "None")):
        return noun
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None,
              allow_none: bool = False) -> int | None:
    """An integer in ``[lo, hi]`` (bounds optional); ``None`` passes if ``allow_none``."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            rng = f" in [{lo}, {hi}]"
        elif lo is not None:
            rng = f" >= {lo}"
        elif hi is not None:
            rng = f" <= {hi}"
        else:
            rng = ""
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"Invalid value for the {name!r} parameter: expected an integer{rng}{extra}, "
            f"but got {value!r} instead."
        )
    return int(value)


def check_positive_int(name: str, value: Any, allow_zero: bool = False,
                       allow_none: bool = False) -> int | None:
    """A positive integer (or non-negative with ``allow_zero``)."""
    return check_int(name, value, lo=0 if allow_zero else 1, allow_none=allow_none)


def check_float(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *,
                lo_open: bool = False, hi_open: bool = False,
                allow_none: bool = False) -> float | None:
    """A finite number in the range from ``lo`` to ``hi`` (open or closed ends)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = (math.isfinite(v) and (v > lo if lo_open else v >= lo)
              and (v < hi if hi_open else v <= hi))
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"Invalid value for the {name!r} parameter: expected a finite number in {rng}"
            f"{extra}, but got {value!r} instead."
        )
    return float(value)


def check_finite(name: str, array: np.ndarray) -> None:
    """Refuse an array with NaN or infinite values, saying how many and where."""
    arr = np.asarray(array)
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} must contain only finite values, but found {int(bad.sum())} NaN or "
                f"infinite value(s) (first at index {first})."
            )


def check_device(device: Any) -> str:
    """A torch device that exists here, as its string (``"cpu"``, ``"cuda:0"``, ...).

    Raises
    ------
    ValueError
        If ``device`` is not a torch device.
    RuntimeError
        If it names CUDA or MPS and torch sees none.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Invalid value for the 'device' parameter: expected a torch device "
                         f"such as 'cpu' or 'cuda', but got {device!r}.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was requested but torch sees no CUDA device "
                           "(torch.cuda.is_available() is False); use device='cpu'.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device={device!r} was requested but MPS is not available.")
    return str(dev)


def check_embeddings(embeddings: Any, dim: int | None = None, name: str = "embeddings", *,
                     normalise: bool = True, dim_of: str = "the expected dimension",
                     hint: str = "") -> np.ndarray:
    """Check (and by default L2-normalise) embeddings: a 2-D finite float32 array ``(n, d)``
    (one row per item; a 1-D array is one row).

    ``dim_of`` says where ``dim`` comes from and ``hint`` how to fix a wrong width, in the
    error message.

    Raises
    ------
    ValueError
        If the array is not 2-D, not finite, has the wrong width or (to normalise) all-zero
        rows.
    """
    X = np.asarray(embeddings, dtype=np.float32)
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2:
        raise ValueError(f"'{name}' must be a 2-D array (n, dim), but got shape {X.shape}.")
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"'{name}' must have {dim} columns ({dim_of}), but got shape "
                         f"{X.shape}{'; ' + hint if hint else ''}.")
    if not np.isfinite(X).all():
        raise ValueError(f"'{name}' holds {int((~np.isfinite(X)).sum())} non-finite values.")
    if not normalise:
        return np.ascontiguousarray(X)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(f"'{name}' has {int((norm == 0).sum())} all-zero rows.")
    return np.ascontiguousarray(X / norm, dtype=np.float32)
