"""Zero-shot attribute classification and caption retrieval, through the Embedder."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.embed import caption_retrieval, embed_stimuli, zero_shot_attributes


class _Oracle:
    """A fake CLIP that embeds an image and its own texts to the same one-hot vector."""

    def __init__(self, stimuli, attribute=None):
        self.rows = {}
        for k, sid in enumerate(stimuli.ids):
            self.rows[stimuli.captions(sid)[0]] = k
        self.n = len(stimuli)

    def encode_images(self, stimuli):
        return np.eye(self.n, dtype=np.float32)[: len(stimuli)]

    def encode_texts(self, texts):
        return np.eye(self.n, dtype=np.float32)[[self.rows[t] for t in texts]]


@pytest.mark.parametrize("attribute", ["shape", "colour"])
def test_result_fields_on_a_real_model(tiny_embedder, world, attribute):
    """On a (random) built-in CLIP: predictions are classes, accuracy is their agreement."""
    res = zero_shot_attributes(tiny_embedder, world, attribute)
    truth = world.attributes[attribute].astype(str).to_numpy()
    assert len(res["predictions"]) == len(world)
    assert set(res["predictions"]) <= set(res["classes"])
    assert res["accuracy"] == pytest.approx(np.mean(np.array(res["predictions"]) == truth))
    n_classes = 6 if attribute == "shape" else 8
    assert len(res["classes"]) == n_classes and res["chance"] == pytest.approx(1 / n_classes)
    assert 0 < res["majority"] <= 1


def test_precomputed_features(tiny_embedder, world, tmp_path):
    targets = embed_stimuli(world, tiny_embedder, text=False, cache_dir=tmp_path)
    a = zero_shot_attributes(tiny_embedder, world, "colour")
    b = zero_shot_attributes(tiny_embedder, world, "colour", image_features=targets)
    c = zero_shot_attributes(tiny_embedder, world, "colour", image_features=targets.image)
    assert a["predictions"] == b["predictions"] == c["predictions"]
    with pytest.raises(ValueError, match=r"'image_features' must have shape \(20, dim\)"):
        zero_shot_attributes(tiny_embedder, world, "colour", image_features=targets.image[:3])


def test_prompt_ensembling_classifies_what_the_text_says(world):
    """An embedder whose images sit on the prompts of their true class scores 1.0."""
    from braindecode_kit.embed.zeroshot import class_prompts
    from braindecode_kit.simulate.world import COLOURS, SHAPES

    shapes = list(SHAPES)

    class Fake:
        def encode_texts(self, texts):
            return np.eye(len(shapes), dtype=np.float32)[
                [shapes.index(t.split()[-1]) for t in texts]]

        def encode_images(self, stimuli):
            return np.eye(len(shapes), dtype=np.float32)[
                [shapes.index(s) for s in stimuli.attributes["shape"]]]

    res = zero_shot_attributes(Fake(), world, "shape")
    assert res["accuracy"] == 1.0 and res["classes"] == shapes
    assert class_prompts("shape", "star", ["red", "blue"]) == ["a red star", "a blue star"]
    assert class_prompts("colour", "red", ["star"]) == ["a red star"]
    assert len(COLOURS) == 8


def test_bad_attribute(tiny_embedder, world):
    with pytest.raises(ValueError, match=r"'attribute'.*'shape', 'colour'.*'size'"):
        zero_shot_attributes(tiny_embedder, world, "size")
    no_cols = world.subset(world.ids)
    no_cols._attributes = no_cols._attributes.drop(columns=["shape"])
    with pytest.raises(ValueError, match=r"needs a 'shape' column"):
        zero_shot_attributes(tiny_embedder, no_cols, "shape")


def test_caption_retrieval(tiny_embedder, world):
    res = caption_retrieval(tiny_embedder, world, n_candidates=10, n_draws=5, seed=0)
    assert res["chance"] == pytest.approx(0.1) and res["n_candidates"] == 10
    assert 0 <= res["top1"] <= 1 and len(res["draws"]) == 5
    perfect = caption_retrieval(_Oracle(world), world, n_candidates=10, n_draws=5)
    assert perfect["top1"] == 1.0
    with pytest.raises(ValueError, match=r"'n_candidates' \(50\) must not exceed .* \(20\)"):
        caption_retrieval(tiny_embedder, world, n_candidates=50)
