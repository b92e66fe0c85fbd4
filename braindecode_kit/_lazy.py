"""Lazy public names for the package and its subpackages (as MNE's ``lazy.attach``).

Each ``__init__.py`` lists its public names and the module defining each; nothing heavy
(torch, MNE, nilearn) is imported until a name is first used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def attach(
    package: str, names: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : mapping of str to str
        Public name -> module defining it: absolute (``"braindecode_kit.io.fmri"``) or
        relative to the package (``"fmri"``).
    submodules : iterable of str
        Submodules also reachable as attributes (``braindecode_kit.io.glm``).
    """
    submodules = set(submodules)

    def _module(path: str):
        absolute = path if path.startswith("braindecode_kit") else f"{package}.{path.lstrip('.')}"
        return importlib.import_module(absolute)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(_module(names[name]), name)
        elif name in submodules:
            value = _module(name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names) | submodules)

    return __getattr__, __dir__
