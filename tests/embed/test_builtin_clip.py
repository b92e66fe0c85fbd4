"""The shipped built-in CLIP on held-out world images, and the benchmark's mechanics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "builtin_clip.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_builtin_clip", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_builtin_clip_zero_shot():
    """The shipped weights (data/builtin_clip.safetensors) classify the largest object's
    shape and colour from text prompts on 300 images never used in training (seed 3)."""
    from braindecode_kit.embed import Embedder, zero_shot_attributes
    from braindecode_kit.simulate import TRAINING_SEED_START, make_world

    assert 3 < TRAINING_SEED_START
    emb = Embedder()  # the shipped built-in CLIP, offline
    world = make_world(300, seed=3)
    feats = emb.encode_images(world)
    shape = zero_shot_attributes(emb, world, "shape", image_features=feats)
    colour = zero_shot_attributes(emb, world, "colour", image_features=feats)
    assert shape["accuracy"] >= 0.8, shape["accuracy"]
    assert colour["accuracy"] >= 0.8, colour["accuracy"]


def test_benchmark_runs(tiny_builtin_dir, capsys):
    bench = _benchmark()
    out = bench.run(n=30, seeds=(1, 2), pretrained=str(tiny_builtin_dir), n_candidates=10,
                    n_draws=3)
    assert [r["seed"] for r in out["rows"]] == [1, 2, "all"]
    pooled = out["rows"][-1]
    assert pooled["n"] == 60 and pooled["n_draws"] == 6
    assert pooled["zero_shot_shape_chance"] == pytest.approx(1 / 6)
    assert pooled["caption_chance"] == pytest.approx(0.1)
    assert out["identity"].startswith("builtin_clip@")
    with pytest.raises(ValueError, match="held-out world seeds"):
        bench.run(n=30, seeds=(10_000,), pretrained=str(tiny_builtin_dir))
    assert bench.main(["--n", "12", "--seeds", "4", "--pretrained", str(tiny_builtin_dir),
                       "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"][0]["n"] == 12
