"""The caption bank: the nearest caption by CLIP text embedding."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.caption import Captioner


def test_bank_returns_the_caption_whose_embedding_is_given(world, embedder):
    bank = [c for s in world.ids[:30] for c in world.captions(s)]
    cap = Captioner("bank", bank=bank + bank[:5], embedder=embedder)
    assert cap.impl.describe()["bank_size"] == len(set(bank))  # duplicates dropped
    queries = bank[::7]
    assert cap.generate(embedder.encode_texts(queries)) == queries


def test_bank_is_checked(embedder):
    with pytest.raises(ValueError, match="needs 'bank'"):
        Captioner("bank")
    with pytest.raises(ValueError, match="empty"):
        Captioner("bank", bank=[], embedder=embedder)
    cap = Captioner("bank", bank=["a red star"], embedder=embedder)
    with pytest.raises(ValueError, match="columns"):
        cap.generate(np.ones((1, 3)))
