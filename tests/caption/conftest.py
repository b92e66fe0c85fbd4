"""Shared fixtures of the captioning tests: tiny models built in code (a randomly
initialised prefix LM of the built-in layout, a tiny GIT with a word-level tokenizer),
and a small world with its built-in CLIP embeddings."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_prefix_dir(tmp_path_factory):
    """A random prefix LM (the built-in architecture, narrower) written as training does."""
    from braindecode_kit.caption import write_prefix_lm

    config = {"prefix_length": 4, "embed_dim": 128,
              "gpt2": {"n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 40}}
    return write_prefix_lm(tmp_path_factory.mktemp("tiny_prefix"), seed=0, config=config)


@pytest.fixture(scope="session")
def world():
    from braindecode_kit.simulate import make_world

    return make_world(60, seed=3)


@pytest.fixture(scope="session")
def embedder():
    from braindecode_kit.embed import Embedder

    return Embedder("builtin")


@pytest.fixture(scope="session")
def world_embeddings(world, embedder):
    return embedder.encode_images(world)


@pytest.fixture(scope="session")
def tiny_git_dir(tmp_path_factory):
    """A tiny GitForCausalLM (2 x 2 patches of a 32 px image -> 5 vision tokens of width
    16) and a word-level tokenizer with GIT's [CLS]/[SEP] as bos/eos, saved together."""
    import torch
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import GitConfig, GitForCausalLM, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "star", "circle", "on",
             "grey", "big"]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]",
                                        unk_token="[UNK]", cls_token="[CLS]",
                                        sep_token="[SEP]", bos_token="[CLS]", eos_token="[SEP]")
    cfg = GitConfig(vision_config={"hidden_size": 16, "intermediate_size": 32,
                                   "num_hidden_layers": 1, "num_attention_heads": 2,
                                   "image_size": 32, "patch_size": 16},
                    vocab_size=len(words), hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                    pad_token_id=0, bos_token_id=2, eos_token_id=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GitForCausalLM(cfg)
    folder = tmp_path_factory.mktemp("tiny_git")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
