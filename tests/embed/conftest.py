"""Shared fixtures of the embedder tests: a randomly initialised built-in CLIP written to
a temporary folder once per session (the shipped weights are only used by
test_builtin_clip.py), and a small world."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_builtin_dir(tmp_path_factory):
    """A folder with a random built-in CLIP's files, laid out as training writes them."""
    from braindecode_kit.embed import write_builtin_files

    return write_builtin_files(tmp_path_factory.mktemp("tiny_builtin"), seed=0)


@pytest.fixture(scope="session")
def tiny_embedder(tiny_builtin_dir):
    from braindecode_kit.embed import Embedder

    return Embedder("builtin", pretrained=str(tiny_builtin_dir))


@pytest.fixture(scope="session")
def world():
    from braindecode_kit.simulate import make_world

    return make_world(20, seed=1)


@pytest.fixture(scope="session")
def builtin_token_shape():
    """(tokens, width) of the built-in CLIP's ModifiedResNet tower: layer4's grid
    (image_size / 32 per side) and its channels (width * 8 * 4 for the bottlenecks)."""
    from braindecode_kit.embed.builtin import BUILTIN_CLIP_CONFIG

    v = BUILTIN_CLIP_CONFIG["vision_cfg"]
    return (v["image_size"] // 32) ** 2, v["width"] * 32
