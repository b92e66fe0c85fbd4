"""Targets (lookup by id, save/load) and embed_stimuli (text recipe, on-disk cache)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from braindecode_kit.embed import Embedder, Targets, embed_stimuli


def _targets(n=5, d=4, text=True, tokens=True, seed=0):
    rng = np.random.default_rng(seed)
    return Targets([f"s{i}" for i in range(n)], rng.normal(size=(n, d)),
                   rng.normal(size=(n, d)) if text else None,
                   rng.normal(size=(n, 3, 2)) if tokens else None, {"identity": "x@1"})


# --------------------------------------------------------------------------- Targets
def test_loc_reorders_and_repeats():
    t = _targets()
    sub = t.loc(["s3", "s0", "s3", "s3"])
    assert sub.ids == ["s3", "s0", "s3", "s3"] and len(sub) == 4
    np.testing.assert_array_equal(sub.image, t.image[[3, 0, 3, 3]])
    np.testing.assert_array_equal(sub.text, t.text[[3, 0, 3, 3]])
    np.testing.assert_array_equal(sub.tokens, t.tokens[[3, 0, 3, 3]])
    assert sub.image.dtype == np.float32 and sub.meta == t.meta
    assert t.loc("s2").image.shape == (1, 4)
    sub.image[:] = 0  # a copy: the original is untouched
    assert np.abs(t.image).sum() > 0


def test_loc_missing_names_the_ids():
    t = _targets()
    with pytest.raises(KeyError, match=r"3 stimulus id\(s\) have no targets, e.g. \['x', 'y', "
                                       r"'z'\]"):
        t.loc(["s0", "x", "y", "x", "z"])


def test_loc_is_fast_for_many_repeated_ids():
    n = 2000
    t = Targets([f"id{i}" for i in range(n)], np.random.default_rng(0).normal(size=(n, 64)))
    ids = [f"id{i % n}" for i in range(30_000)]
    t0 = time.perf_counter()
    sub = t.loc(ids)
    assert time.perf_counter() - t0 < 0.5
    np.testing.assert_array_equal(sub.image[n + 7], t.image[7])


def test_validation():
    with pytest.raises(ValueError, match=r"one row per id: 3 ids but 2 rows"):
        Targets(["a", "b", "c"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"'ids' must be unique.*'a'"):
        Targets(["a", "a"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"'image' must contain only finite values"):
        Targets(["a", "b"], np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"'image' must be a 2-D array"):
        Targets(["a"], np.zeros(4))
    with pytest.raises(ValueError, match=r"'text' must have shape \(2, dim\)"):
        Targets(["a", "b"], np.zeros((2, 4)), text=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"'tokens' must have shape \(2, n_tokens, width\)"):
        Targets(["a", "b"], np.zeros((2, 4)), tokens=np.zeros((2, 4)))


def test_save_load_round_trip(tmp_path):
    t = _targets()
    t.save(tmp_path / "t")
    back = Targets.load(tmp_path / "t")
    assert back.ids == t.ids and back.meta == t.meta
    for k in ("image", "text", "tokens"):
        np.testing.assert_array_equal(getattr(back, k), getattr(t, k))
    # saving again replaces the folder atomically; no temporary folders remain
    _targets(3, text=False, tokens=False, seed=1).save(tmp_path / "t")
    again = Targets.load(tmp_path / "t")
    assert len(again) == 3 and again.text is None and again.tokens is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    with pytest.raises(FileNotFoundError, match="not a saved Targets folder"):
        Targets.load(tmp_path / "nothing")


def test_repr():
    t = _targets()
    assert repr(t) == "<Targets | 5 stimuli, image 4, text 4, tokens 3x2 | x@1>"
    html = t._repr_html_()
    assert "<table>" in html and "s0" in html and "(5, 3, 2)" in html


# --------------------------------------------------------------------------- embed_stimuli
def _count_calls(monkeypatch):
    calls = {"encode_images": 0, "encode_texts": 0, "encode_image_tokens": 0}
    for name in calls:
        real = getattr(Embedder, name)

        def counted(self, x, _real=real, _name=name):
            calls[_name] += 1
            return _real(self, x)

        monkeypatch.setattr(Embedder, name, counted)
    return calls


def test_embed_stimuli_rows_and_text_recipe(tiny_embedder, world, tmp_path,
                                            builtin_token_shape):
    t = embed_stimuli(world, tiny_embedder, tokens=True, cache_dir=tmp_path)
    assert t.ids == world.ids
    assert t.image.shape == (20, 128) and t.text.shape == (20, 128)
    assert t.tokens.shape == (20, *builtin_token_shape)
    np.testing.assert_allclose(t.image, tiny_embedder.encode_images(world), atol=1e-6)
    np.testing.assert_allclose(t.tokens, tiny_embedder.encode_image_tokens(world), atol=1e-5)
    caps = world.captions(world.ids[4])
    mean = tiny_embedder.encode_texts(caps).mean(0)
    np.testing.assert_allclose(t.text[4], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t.text, axis=1), 1, atol=1e-5)
    assert t.meta["identity"] == tiny_embedder.identity and t.meta["embed_dim"] == 128


def test_second_run_embeds_nothing(tiny_embedder, world, tmp_path, monkeypatch):
    calls = _count_calls(monkeypatch)
    first = embed_stimuli(world, tiny_embedder, tokens=True, cache_dir=tmp_path)
    assert calls == {"encode_images": 1, "encode_texts": 1, "encode_image_tokens": 1}
    second = embed_stimuli(world, tiny_embedder, tokens=True, cache_dir=tmp_path)
    assert calls == {"encode_images": 1, "encode_texts": 1, "encode_image_tokens": 1}
    for k in ("image", "text", "tokens"):
        np.testing.assert_array_equal(getattr(second, k), getattr(first, k))
    # a reordered subset is served from the cache too, in its own order
    sub = world.subset(world.ids[::-2])
    t = embed_stimuli(sub, tiny_embedder, cache_dir=tmp_path)
    assert calls["encode_images"] == 1 and t.ids == sub.ids
    np.testing.assert_array_equal(t.image, first.loc(sub.ids).image)


def test_cache_embeds_only_new_stimuli(tiny_embedder, tmp_path, monkeypatch):
    from braindecode_kit.simulate import make_world

    small, big = make_world(6, seed=5), make_world(10, seed=5)  # big starts with small
    assert big.ids[:6] == small.ids
    embed_stimuli(small, tiny_embedder, text=False, cache_dir=tmp_path)
    seen = []
    real = Embedder.encode_images
    monkeypatch.setattr(Embedder, "encode_images",
                        lambda self, s: seen.append(list(s.ids)) or real(self, s))
    t = embed_stimuli(big, tiny_embedder, text=False, cache_dir=tmp_path)
    assert seen == [big.ids[6:]]
    np.testing.assert_allclose(t.image, tiny_embedder.encode_images(big), atol=1e-6)


def test_cache_is_keyed_by_weights(tiny_embedder, world, tmp_path, monkeypatch):
    from braindecode_kit.embed import write_builtin_files

    embed_stimuli(world, tiny_embedder, text=False, cache_dir=tmp_path)
    other_dir = write_builtin_files(tmp_path / "other", seed=3,
                                    vocabulary=tiny_embedder.tokenizer.words)
    other = Embedder("builtin", pretrained=str(other_dir))
    calls = _count_calls(monkeypatch)
    t = embed_stimuli(world, other, text=False, cache_dir=tmp_path)
    assert calls["encode_images"] == 1
    np.testing.assert_allclose(t.image, other.encode_images(world), atol=1e-6)
    # no cache at all: embeds every time and writes nothing
    embed_stimuli(world, other, text=False, cache_dir=False)
    embed_stimuli(world, other, text=False, cache_dir=False)
    assert calls["encode_images"] == 4  # (+1 above for the reference)


def test_default_cache_dir_from_environment(tiny_embedder, world, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINDECODE_KIT_CACHE", str(tmp_path))
    embed_stimuli(world.subset(world.ids[:3]), tiny_embedder, text=False)
    shards = list((tmp_path / "embed" / tiny_embedder.identity).glob("image-*/*.safetensors"))
    assert len(shards) == 1


def test_captions_needed_for_text(tiny_embedder, tmp_path):
    from PIL import Image

    from braindecode_kit import StimulusSet

    img = {i: (lambda sid, c=c: Image.new("RGB", (64, 64), c))
           for i, c in [("a", "red"), ("b", "blue")]}
    half = StimulusSet(["a", "b"], lambda sid: img[sid](sid), captions={"a": ["a red square"]})
    with pytest.raises(ValueError, match=r"1 stimuli have none, e.g. \['b'\]"):
        embed_stimuli(half, tiny_embedder, cache_dir=tmp_path)
    bare = StimulusSet(["a", "b"], lambda sid: img[sid](sid))
    t = embed_stimuli(bare, tiny_embedder, cache_dir=tmp_path)
    assert t.text is None and t.image.shape == (2, 128)
    with pytest.raises(TypeError, match="'stimuli' must be a StimulusSet"):
        embed_stimuli([1, 2], tiny_embedder)
    with pytest.raises(TypeError, match="'embedder' must be an Embedder"):
        embed_stimuli(bare, "builtin")
