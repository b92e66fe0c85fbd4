"""The built-in prefix-LM captioner: its tokenizer round-trips the world's captions,
captions are deterministic per seed (greedy and beam search), input is checked, a short
training run writes a loadable model, and the shipped model names what it sees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from braindecode_kit.caption import (
    Captioner,
    attribute_accuracy,
    build_world_tokenizer,
    caption_attributes,
)
from braindecode_kit.caption.prefix_lm import clean_caption


def test_tokenizer_round_trips_world_captions(world):
    tok = build_world_tokenizer()
    for sid in world.ids[:20]:
        for cap in world.captions(sid):
            ids = tok(cap)["input_ids"]
            assert tok.unk_token_id not in ids, cap
            assert clean_caption(tok.decode(ids)) == cap
    assert tok.unk_token_id in tok("a zebra")["input_ids"]


def test_caption_attributes_reads_the_first_shape_and_colour():
    assert caption_attributes("a big red star, a blue circle") == {"shape": "star",
                                                                   "colour": "red"}
    assert caption_attributes("there is something on grey") == {"shape": None, "colour": None}


def test_same_seed_same_captions_and_checked_input(tiny_prefix_dir, world_embeddings):
    cap = Captioner("prefix_lm", model=str(tiny_prefix_dir), max_length=6, num_beams=2)
    a = cap.generate(world_embeddings[:5])
    assert len(a) == 5 and all(isinstance(t, str) for t in a)
    assert cap.generate(world_embeddings[:5]) == a
    greedy = cap.generate(world_embeddings[:5], num_beams=1, batch_size=2)
    assert len(greedy) == 5
    # max_length bounds the words (one token per word)
    assert max(len(t.split()) for t in greedy) <= 6
    with pytest.raises(ValueError, match="128 columns"):
        cap.generate(np.ones((2, 64)))
    with pytest.raises(ValueError, match="non-finite"):
        cap.generate(np.full((1, 128), np.nan))
    with pytest.raises(ValueError, match="num_beams"):
        Captioner("prefix_lm", model=str(tiny_prefix_dir), num_beams=0)
    with pytest.raises(ValueError, match="backend"):
        Captioner("clipcap")
    with pytest.raises(FileNotFoundError, match="train-builtin captioner"):
        Captioner("prefix_lm", model=str(tiny_prefix_dir / "nowhere"))


def test_captioner_shows_itself(tiny_prefix_dir):
    cap = Captioner("prefix_lm", model=str(tiny_prefix_dir))
    html = cap._repr_html_()
    assert "Captioner" in html and "prefix_lm" in html and "num_beams" in html
    assert "beams 3" in repr(cap)


def test_short_training_writes_a_loadable_model(tmp_path):
    from braindecode_kit.caption import train_builtin_captioner

    card = train_builtin_captioner(tmp_path, steps=20, n_images=100, batch_size=32,
                                   eval_every=10, n_val=30)
    assert [h["step"] for h in card["history"]] == [10, 20]
    assert card["history"][-1]["loss"] < 3.0
    on_disk = json.loads((tmp_path / "builtin_captioner_card.json").read_text())
    assert on_disk["recipe"]["train_world_seed"] >= 10_000  # training seeds only
    cap = Captioner("prefix_lm", model=str(tmp_path), num_beams=1)
    assert len(cap.generate(np.eye(128)[:2])) == 2


def test_shipped_captioner_names_what_it_sees(world, world_embeddings):
    cap = Captioner()  # the built-in captioner, shipped in data/
    captions = cap.generate(world_embeddings)
    acc = attribute_accuracy(captions, world.attributes)
    assert acc["shape"] >= 0.8 and acc["colour"] >= 0.8, acc
