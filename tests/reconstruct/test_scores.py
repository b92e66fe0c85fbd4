"""Per-image scores of reconstructions of world images."""

from __future__ import annotations

import numpy as np

from braindecode_kit.embed import Embedder
from braindecode_kit.reconstruct.scores import seen_readings, world_scores
from braindecode_kit.simulate import make_world


def test_the_seen_images_score_perfectly_and_shuffled_ones_do_not():
    world = make_world(24, seed=3)
    seen = world.to_array()
    emb = Embedder("builtin")
    feats = emb.encode_images(seen)
    readings = seen_readings(emb, world, feats)
    assert set(readings) == {"shape", "colour"}
    same = world_scores(emb, world, seen, feats, readings)
    assert set(same) == {"builtin_clip_2way", "shape_agreement", "colour_agreement",
                         "shape_correct", "colour_correct"}
    assert all(len(v) == 24 for v in same.values())
    np.testing.assert_array_equal(same["builtin_clip_2way"], 1.0)
    np.testing.assert_array_equal(same["shape_agreement"], 1.0)
    # the readings of the seen images against the world's truth
    assert same["colour_correct"].mean() == np.mean(
        readings["colour"] == world.attributes["colour"].to_numpy())
    shuffled = world_scores(emb, world, np.roll(seen, 1, axis=0), feats)  # readings made here
    assert shuffled["builtin_clip_2way"].mean() < 0.75
    assert shuffled["colour_agreement"].mean() < 0.5
