"""The package logger and the per-call ``verbose=`` switch (as MNE does it).

Every public function that does long work takes ``verbose: bool | str | int | None``.
``None`` keeps the package level (default ``WARNING``, or the environment variable
``BRAINDECODE_KIT_LOGGING_LEVEL``); ``True`` means ``INFO``; ``False`` ``WARNING``;
a level name or number sets that level for the duration of the call only.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

logger = logging.getLogger("braindecode_kit")
logger.propagate = False
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
logger.setLevel(os.environ.get("BRAINDECODE_KIT_LOGGING_LEVEL", "WARNING").upper())

F = TypeVar("F", bound=Callable[..., Any])


def _level(verbose: bool | str | int | None) -> int | None:
    if verbose is None:
        return None
    if isinstance(verbose, bool):
        return logging.INFO if verbose else logging.WARNING
    if isinstance(verbose, int):
        return verbose
    if isinstance(verbose, str):
        level = logging.getLevelName(verbose.upper())
        if not isinstance(level, int):
            raise ValueError(
                "Invalid value for the 'verbose' parameter. Allowed values are True, False, "
                f"None, an int or one of DEBUG/INFO/WARNING/ERROR, but got {verbose!r} instead."
            )
        return level
    raise TypeError(f"'verbose' must be bool, str, int or None, got {type(verbose).__name__}")


@contextlib.contextmanager
def use_log_level(verbose: bool | str | int | None) -> Iterator[None]:
    """Set the package log level for the duration of a ``with`` block."""
    level = _level(verbose)
    if level is None:
        yield
        return
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def set_log_level(verbose: bool | str | int | None) -> None:
    """Set the package log level for the rest of the process."""
    level = _level(verbose)
    if level is not None:
        logger.setLevel(level)


def verbose(func: F) -> F:
    """Decorator: honour a ``verbose=`` keyword argument for this call only."""
    sig = inspect.signature(func)
    if "verbose" not in sig.parameters:
        raise TypeError(f"{func.__qualname__} must take a 'verbose' argument")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind_partial(*args, **kwargs)
        with use_log_level(bound.arguments.get("verbose")):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def progress(iterable=None, *, total=None, desc=None, disable=None, **kwargs):
    """A tqdm progress bar: notebook-aware, off when stderr is not a terminal.

    ``BRAINDECODE_KIT_PROGRESS=1`` forces it on, ``0`` off. Only rank zero of a
    distributed run shows it (``RANK``/``LOCAL_RANK`` environment variables).
    """
    from tqdm.auto import tqdm

    if disable is None:
        env = os.environ.get("BRAINDECODE_KIT_PROGRESS")
        if env is not None:
            disable = env in ("0", "false", "False", "")
        else:
            disable = not sys.stderr.isatty()
        if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0:
            disable = True
    return tqdm(iterable, total=total, desc=desc, disable=disable, **kwargs)
