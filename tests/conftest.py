"""Suite-wide guards: no network, offline hubs, one torch thread per worker, a
headless matplotlib, and shared session fixtures."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("BRAINDECODE_KIT_PROGRESS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

TESTS_DATA = os.path.join(os.path.dirname(__file__), "data")


class NetworkBlocked(RuntimeError):
    """Raised when code under test tries to open a network connection."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Refuse any socket connection that is not to a local (AF_UNIX) endpoint."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise NetworkBlocked(f"network access attempted during a test: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(
        NetworkBlocked(f"network access attempted during a test: {a!r}")))
    yield


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    yield
