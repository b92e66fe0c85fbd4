"""GIT fed predicted vision tokens, with a tiny GitConfig model built in code: the
pass-through encoder gives exactly the stock model's captions when fed the stock image
encoder's tokens; the token map fits, saves, reloads and is checked against the model."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.caption import Captioner, fit_token_map


def test_pass_through_matches_the_stock_model(tiny_git_dir, world):
    import torch
    from transformers import GitForCausalLM

    cap = Captioner("git", model=str(tiny_git_dir), max_length=5, num_beams=2)
    impl = cap.impl
    images = [world.load_image(s) for s in world.ids[:4]]
    tokens = impl.vision_tokens(images)
    assert tokens.shape == (4, impl.n_tokens, impl.token_dim) == (4, 5, 16)
    stock = GitForCausalLM.from_pretrained(str(tiny_git_dir)).eval()
    with torch.inference_mode():
        want = stock.generate(pixel_values=impl._pixels(images), max_new_tokens=5, num_beams=2,
                              do_sample=False)
        got = impl.model.generate(pixel_values=torch.from_numpy(tokens)[:, None],
                                  max_new_tokens=5, num_beams=2, do_sample=False)
    assert torch.equal(want, got)


def test_token_map_fit_save_load(tiny_git_dir, world, world_embeddings, tmp_path):
    cap = Captioner("git", model=str(tiny_git_dir), max_length=4, num_beams=1)
    with pytest.raises(RuntimeError, match="token map"):
        cap.generate(world_embeddings[:2])
    info = fit_token_map(cap, world_embeddings[:40], world.subset(world.ids[:40]),
                         out=tmp_path / "map")
    assert info["n_fitted"] == 40 and info["embed_dim"] == 128
    assert 0 < info["r2_train"] <= 1
    a = cap.generate(world_embeddings[40:46])
    assert len(a) == 6 and cap.generate(world_embeddings[40:46]) == a
    again = Captioner("git", model=str(tiny_git_dir), token_map=str(tmp_path / "map"),
                      max_length=4, num_beams=1)
    assert again.generate(world_embeddings[40:46]) == a
    assert again.embed_dim == 128 and "map_alpha" in again.settings()
    with pytest.raises(ValueError, match="128 columns"):
        again.generate(np.ones((1, 16)))


def test_git_errors(tiny_git_dir, tmp_path):
    with pytest.raises(ValueError, match="needs 'model'"):
        Captioner("git")
    with pytest.raises(FileNotFoundError, match="GIT model"):
        Captioner("git", model=str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="GIT captioner"):
        fit_token_map(object(), np.ones((2, 4)), [])
