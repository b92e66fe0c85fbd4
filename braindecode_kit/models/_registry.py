"""Open registries of the adapter and encoder kinds, readable without torch.

A :class:`Registry` maps a kind name to its class. The built-in kinds are known by name
before their module is imported (so :class:`~braindecode_kit.models.DecoderConfig` can
validate a name without importing torch); looking a built-in up imports its module, whose
``@register_adapter``/``@register_encoder`` decorator fills the entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .._checks import check_option

__all__ = ["ADAPTERS", "ENCODERS", "FEATURE_KINDS", "Registry"]

#: what an adapter produces and an encoder consumes: ``(n, d)`` or ``(n, d, T)`` tensors
FEATURE_KINDS = ("vector", "sequence")


class Registry(Mapping[str, Any]):
    """Kind name -> class, with lazily imported built-ins.

    Parameters
    ----------
    kind : str
        What the registry holds (``"adapter"``, ``"encoder"``): used in error messages.
    builtins : mapping of str to str
        Built-in kind name -> module that registers it when imported.
    """

    def __init__(self, kind: str, builtins: Mapping[str, str]) -> None:
        self.kind = kind
        self._lazy = dict(builtins)
        self._classes: dict[str, Any] = {}

    # Mapping over every known name; a lookup imports a built-in's module if needed.
    def __getitem__(self, name: str) -> Any:
        if name not in self._classes and name in self._lazy:
            importlib.import_module(self._lazy[name])
        if name not in self._classes:
            raise KeyError(name)
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._lazy

    def names(self) -> list[str]:
        """The registered kind names, sorted (built-ins included, imported or not)."""
        return sorted(set(self._lazy) | set(self._classes))

    def add(self, name: str, cls: Any) -> None:
        """Register ``cls`` under ``name`` (a later registration replaces an earlier one)."""
        self._classes[str(name)] = cls

    def decorator(self, name: str, attr: str,
                  allowed: Sequence[str] = FEATURE_KINDS) -> Callable[[type], type]:
        """A class decorator registering its class under ``name``.

        The class must define ``from_config`` and a class attribute ``attr`` (e.g.
        ``produces``) with a value in ``allowed``; the decorator returns it unchanged.
        """

        def deco(cls: type) -> type:
            if not hasattr(cls, "from_config"):
                raise TypeError(
                    f"{self.kind.capitalize()} class {cls.__name__} must define from_config().")
            check_option(f"{cls.__name__}.{attr}", getattr(cls, attr, None), allowed)
            self.add(name, cls)
            return cls

        return deco

    def pop(self, name: str, *default: Any) -> Any:
        """Unregister ``name`` and return its class (a built-in becomes unknown)."""
        self._lazy.pop(name, None)
        return self._classes.pop(name, *default)

    def __repr__(self) -> str:
        return f"<Registry of {self.kind} kinds: {', '.join(self.names())}>"


#: adapter kind -> class (see :func:`braindecode_kit.models.register_adapter`)
ADAPTERS = Registry("adapter", {"linear": "braindecode_kit.models.adapters",
                                "mlp": "braindecode_kit.models.adapters",
                                "spatial_attention": "braindecode_kit.models.spatial",
                                "seeg_position": "braindecode_kit.models.spatial",
                                "channel_linear": "braindecode_kit.models.channel_adapter"})

#: encoder kind -> class (see :func:`braindecode_kit.models.register_encoder`)
ENCODERS = Registry("encoder", {"mlp": "braindecode_kit.models.mlp_encoder",
                                "conv": "braindecode_kit.models.conv_encoder"})
