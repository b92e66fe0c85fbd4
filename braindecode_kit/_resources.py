"""Where the shipped files (``data/``, ``pipelines/``) are found.

In a wheel, hatchling's ``force-include`` puts the repository's ``data/`` and
``pipelines/`` inside the package as ``braindecode_kit/_data`` and
``braindecode_kit/_pipelines``; they are found through :mod:`importlib.resources`.
In an editable install (a checkout) the same folders sit beside the package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _locate(packaged: str, checkout: str) -> Path:
    root = resources.files("braindecode_kit")
    inside = root / packaged
    if inside.is_dir():
        return Path(str(inside))
    beside = Path(str(root)).parent / checkout
    if beside.is_dir():
        return beside
    raise FileNotFoundError(
        f"The shipped folder {checkout!r} was found neither inside the installed package "
        f"({inside}) nor beside it ({beside}); the installation is incomplete."
    )


def data_dir() -> Path:
    """The folder of files the package ships (built-in model weights, vocabularies)."""
    return _locate("_data", "data")


def pipelines_dir() -> Path:
    """The folder of ready YAML pipelines."""
    return _locate("_pipelines", "pipelines")


def data_file(name: str) -> Path:
    """A shipped data file by name; a clear error if it is missing."""
    path = data_dir() / name
    if not path.exists():
        available = sorted(p.name for p in data_dir().iterdir())
        raise FileNotFoundError(
            f"Shipped data file {name!r} not found in {data_dir()}; available: {available}"
        )
    return path
