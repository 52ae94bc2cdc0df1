"""The shared layers: one attention, one masked mean, one learned temperature."""

from __future__ import annotations

import math

import pytest
import torch

from dldna.chapter_10.layers import LogitScale, attention, masked_mean, masked_mean_weights

B, NQ, NK, DIM, HEADS = 2, 4, 6, 16, 4
HD = DIM // HEADS


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, n, DIM, generator=g) for n in (NQ, NK, NK))


def _by_hand(q, k, v, allowed):
    """Loops over batch, heads and queries; ``allowed[b, i, j]``: query i may read key j."""
    out = torch.zeros(B, NQ, DIM)
    for b in range(B):
        for h in range(HEADS):
            cols = slice(h * HD, (h + 1) * HD)
            for i in range(NQ):
                keys = [j for j in range(NK) if allowed[b, i, j]]
                if not keys:
                    continue  # no key left: the row reads nothing
                scores = torch.stack([q[b, i, cols] @ k[b, j, cols] / math.sqrt(HD) for j in keys])
                weights = scores.softmax(0)
                out[b, i, cols] = sum(w * v[b, j, cols] for w, j in zip(weights, keys))
    return out


def test_attention_equals_a_hand_computation_with_a_key_mask():
    q, k, v = _inputs()
    key_mask = torch.tensor([[True] * NK, [True] * 3 + [False] * (NK - 3)])  # [B, Nk]
    expected = _by_hand(q, k, v, key_mask[:, None, :].expand(B, NQ, NK))
    fast = attention(q, k, v, num_heads=HEADS, mask=key_mask)
    explicit, weights = attention(q, k, v, num_heads=HEADS, mask=key_mask, return_weights=True)
    torch.testing.assert_close(fast, expected)
    torch.testing.assert_close(explicit, expected)
    sdpa_layout = attention(q, k, v, num_heads=HEADS, mask=key_mask[:, None, None, :])  # [B, 1, 1, Nk]
    torch.testing.assert_close(sdpa_layout, expected)
    assert weights.shape == (B, HEADS, NQ, NK)
    assert torch.all(weights[1, ..., 3:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, HEADS, NQ))


def test_attention_with_a_per_query_mask_and_an_empty_row():
    q, k, v = _inputs(1)
    allowed = torch.rand(B, NQ, NK, generator=torch.Generator().manual_seed(2)) > 0.4  # [B, Nq, Nk]
    allowed[0, 1] = False  # query 1 of item 0 may read no key at all
    expected = _by_hand(q, k, v, allowed)
    for return_weights in (False, True):
        out = attention(q, k, v, num_heads=HEADS, mask=allowed, return_weights=return_weights)
        out = out[0] if return_weights else out
        torch.testing.assert_close(out, expected)
        assert torch.equal(out[0, 1], torch.zeros(DIM))


def test_fully_masked_rows_read_nothing_and_keep_gradients_finite():
    q, k, v = (t.requires_grad_() for t in _inputs(3))
    nothing = torch.zeros(B, NK, dtype=torch.bool)
    for return_weights in (False, True):
        out = attention(q, k, v, num_heads=HEADS, mask=nothing, return_weights=return_weights)
        out = out[0] if return_weights else out
        assert torch.equal(out, torch.zeros_like(out))
        out.sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_multi_query_attention_equals_the_shared_head_repeated():
    q, k, v = _inputs(4)
    k1, v1 = k[..., :HD], v[..., :HD]  # one K/V head
    mask = torch.tensor([[True] * NK, [False, True, True, False, True, False]])
    shared = attention(q, k1, v1, num_heads=HEADS, mask=mask, shared_kv=True)
    repeated = attention(q, k1.repeat(1, 1, HEADS), v1.repeat(1, 1, HEADS), num_heads=HEADS, mask=mask)
    torch.testing.assert_close(shared, repeated)
    explicit, _ = attention(q, k1, v1, num_heads=HEADS, mask=mask, shared_kv=True, return_weights=True)
    torch.testing.assert_close(explicit, repeated)
    with pytest.raises(ValueError, match="head_dim"):
        attention(q, k, v, num_heads=HEADS, shared_kv=True)


def test_attention_rejects_a_mask_of_another_convention():
    q, k, v = _inputs()
    with pytest.raises(TypeError, match="torch.bool"):
        attention(q, k, v, num_heads=HEADS, mask=torch.ones(B, NK))  # a 0/1 attention_mask
    with pytest.raises(ValueError, match=r"\[B, Nk\]"):
        attention(q, k, v, num_heads=HEADS, mask=torch.ones(NK, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        attention(q, k, v, num_heads=5)


def test_attention_dropout_only_when_asked():
    q, k, v = _inputs()
    torch.manual_seed(0)
    dropped = attention(q, k, v, num_heads=HEADS, dropout=0.5)
    assert not torch.allclose(dropped, attention(q, k, v, num_heads=HEADS))


def test_masked_mean_ignores_padding():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 5, 4, generator=g)  # [N, T, D]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    mean = masked_mean(tokens, mask)
    torch.testing.assert_close(mean[0], tokens[0].mean(0))
    torch.testing.assert_close(mean[1], tokens[1, :2].mean(0))
    assert torch.equal(mean[2], torch.zeros(4))  # no real token
    garbage = tokens.masked_fill(~mask[..., None], 1e6)  # whatever padding holds
    torch.testing.assert_close(masked_mean(garbage, mask), mean)
    torch.testing.assert_close(masked_mean(tokens, None), tokens.mean(1))
    # leading axes broadcast: one mask for a batch of sequence sets
    stacked = torch.stack([tokens, 2 * tokens])  # [2, N, T, D]
    torch.testing.assert_close(masked_mean(stacked, mask[None]), torch.stack([mean, 2 * mean]))
    torch.testing.assert_close(torch.einsum("nt,ntd->nd", masked_mean_weights(mask), tokens), mean)
    with pytest.raises(ValueError, match="torch.bool"):
        masked_mean(tokens, mask.float())


def test_logit_scale_init_clamp_and_temperature():
    scale = LogitScale()
    assert scale.log_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert scale.temperature == pytest.approx(0.07, rel=1e-6)
    with torch.no_grad():
        scale.log_scale.fill_(10.0)  # exp(10) = 22026 without the cap
    assert scale.scale.item() == pytest.approx(100.0)
    assert scale.temperature == pytest.approx(0.01)
    scale().backward()
    assert scale.log_scale.grad.item() == 0.0  # above the cap it stops moving
    below = LogitScale(init_temperature=0.5, max_scale=10.0)
    below().backward()
    assert below.log_scale.grad.item() == pytest.approx(2.0)  # d exp(x) / dx = exp(x) = 1 / 0.5
    assert list(dict(below.named_parameters())) == ["log_scale"]
    with pytest.raises(ValueError, match="init_temperature"):
        LogitScale(init_temperature=0.005)  # 1 / 0.005 = 200 > the cap of 100
    with pytest.raises(ValueError, match="init_temperature"):
        LogitScale(init_temperature=0.0)
