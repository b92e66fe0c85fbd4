"""Output heads: pooled and token heads' shapes, the token head's low-rank factorisation."""

import pytest
import torch

from braindecode_kit.models import BrainDecoder, DecoderConfig, PooledHead, TokenHead


@pytest.mark.parametrize("hidden", [0, 16])
def test_pooled_head_shapes(hidden):
    head = PooledHead(8, 5, hidden=hidden)
    assert head(torch.randn(3, 8)).shape == (3, 5)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == (
        [(8, 5)] if hidden == 0 else [(8, 16), (16, 5)])


def test_token_head_full_and_low_rank():
    x = torch.randn(4, 8)
    full = TokenHead(8, n_tokens=6, token_dim=10)
    assert full.token_proj is None and full.proj.out_features == 60
    assert full(x).shape == (4, 6, 10)
    low = TokenHead(8, n_tokens=6, token_dim=10, rank=2)
    assert low.proj.out_features == 12 and low(x).shape == (4, 6, 10)
    n_full = sum(p.numel() for p in full.parameters())
    n_low = sum(p.numel() for p in low.parameters())
    assert n_low < n_full
    # the per-token layer is shared across tokens: tokens with equal codes are equal
    with torch.no_grad():
        low.proj.weight.zero_()
        low.proj.bias.copy_(torch.arange(2.0).repeat(6))
    out = low(x)
    assert torch.allclose(out, out[:, :1].expand_as(out))


def test_decoder_heads_follow_the_config():
    cfg = DecoderConfig(subjects={"s1": 12}, embed_dim=4, d_shared=8, token_shape=(3, 5),
                        token_rank=2, text_dim=6, head_hidden=16)
    model = BrainDecoder(cfg, seed=0).eval()
    assert model.head_names == ["image", "tokens", "text"]
    assert model.heads["tokens"].rank == 2
    out = model(torch.randn(2, 12), "s1")
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "image": (2, 4), "tokens": (2, 3, 5), "text": (2, 6)}
