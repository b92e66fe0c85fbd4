"""The built-in world: determinism, attributes vs pixels and captions, errors, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from braindecode_kit.simulate import TRAINING_SEED_START, make_world
from braindecode_kit.simulate.world import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
)


@pytest.fixture(scope="module")
def world():
    return make_world(300, seed=3)


def test_ids_size_and_vocabulary(world):
    assert len(world) == 300 and world.ids[0] == "w3-00000" and world.ids[-1] == "w3-00299"
    assert world.load_image(world.ids[5]).size == (64, 64)
    a = world.attributes
    for col in ("shape", "colour", "size", "position", "n_objects", "background", "texture",
                "obj0_shape", "obj1_colour", "obj2_position"):
        assert col in a.columns
    assert set(a["shape"]) == set(SHAPES) and len(SHAPES) >= 6
    assert set(a["colour"]) == set(COLOURS) and len(COLOURS) >= 8
    assert set(a["size"]) == set(SIZES)
    assert set(a["position"]) == set(POSITIONS)
    assert set(a["background"]) == set(BACKGROUNDS) and set(a["texture"]) == set(TEXTURES)
    assert set(a["n_objects"]) == {1, 2, 3}
    assert (a["shape"] == a["obj0_shape"]).all() and (a["colour"] == a["obj0_colour"]).all()
    # the main object is strictly the largest when there are several
    multi = a[a["n_objects"] > 1]
    rank = {s: k for k, s in enumerate(SIZES)}
    assert (multi["size"].map(rank) > multi["obj1_size"].map(rank)).all()
    assert (a.loc[a["n_objects"] == 1, "obj1_shape"] == "").all()


def test_same_seed_same_bytes_and_prefix_property(world):
    again = make_world(20, seed=3)
    for sid in again.ids:
        assert again.load_image(sid).tobytes() == world.load_image(sid).tobytes()
        assert again.captions(sid) == world.captions(sid)
        assert again.fingerprint(sid) == world.fingerprint(sid)
    other = make_world(20, seed=4)
    same = sum(other.load_image(f"w4-{i:05d}").tobytes() == world.load_image(f"w3-{i:05d}").tobytes()
               for i in range(20))
    assert same == 0
    assert world.fingerprint("w3-00000") != other.fingerprint("w4-00000")
    assert make_world(4, seed=3, size=32).load_image("w3-00000").size == (32, 32)
    assert make_world(4, seed=3, size=32).fingerprint("w3-00000") != world.fingerprint("w3-00000")


def test_captions_mention_the_attributes(world):
    a = world.attributes
    for sid in world.ids[:100]:
        caps = world.captions(sid)
        row = a.loc[sid]
        assert len(caps) >= 3 and len(set(caps)) == len(caps)
        for c in caps:
            assert row["shape"] in c and row["colour"] in c
        assert row["background"] in caps[0] and row["background"] in caps[1]
        if row["texture"] != "plain":
            assert row["texture"] in caps[0]
        if row["n_objects"] > 1:
            assert row["obj1_shape"] in caps[2] and row["obj1_colour"] in caps[2]
    # a caption is in English: "an orange", never "a orange"
    assert not any("a orange" in c for sid in world.ids for c in world.captions(sid))


def test_pixels_follow_the_attributes(world):
    """The main object's colour is in the image at its centre; its position is where it is."""
    a = world.attributes
    for sid in world.ids[:60]:
        row = a.loc[sid]
        arr = np.asarray(world.load_image(sid)).astype(int)
        x, y = int(row["obj0_x"] * 64), int(row["obj0_y"] * 64)
        centre = arr[y, x]
        assert np.abs(centre - np.array(COLOURS[row["colour"]])).max() <= 16, sid
        r, c = divmod(POSITIONS.index(row["position"]), 3)
        assert int(row["obj0_y"] * 3) == r and int(row["obj0_x"] * 3) == c
    # anti-aliasing: edges have intermediate values, not only the flat colours
    arr = np.asarray(world.load_image(world.ids[0]))
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10


def test_bad_arguments():
    with pytest.raises(ValueError, match="'n'"):
        make_world(0)
    with pytest.raises(ValueError, match="'seed'"):
        make_world(3, seed=-1)
    with pytest.raises(ValueError, match="'size'"):
        make_world(3, size=8)
    with pytest.raises(KeyError, match="w0-00009"):
        make_world(3).load_image("w0-00009")
    assert TRAINING_SEED_START == 10_000


def test_fast_enough():
    w = make_world(400, seed=5)
    t = time.perf_counter()
    for sid in w.ids:
        w.load_image(sid)
    assert time.perf_counter() - t < 4.0  # ~1 ms an image on one shared core


def test_subset_keeps_order_and_cache(world):
    sub = world.subset(["w3-00010", "w3-00002"])
    assert sub.attributes.index.tolist() == ["w3-00010", "w3-00002"]
    assert sub.load_image("w3-00002").tobytes() == world.load_image("w3-00002").tobytes()
    assert "data:image/png;base64," in sub._repr_html_()
