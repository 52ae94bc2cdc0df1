"""The Perceiver runs (erratum 5), respects padding, learns, and costs less than full attention."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from dldna.chapter_10.perceiver import FullSelfAttentionClassifier, Perceiver, PerceiverConfig, measure_cost

CFG = PerceiverConfig(
    input_dim=6, latent_dim=32, num_latents=8, num_heads=4, num_self_attn_layers=2, num_classes=3
)


@pytest.mark.parametrize("cls", [Perceiver, FullSelfAttentionClassifier])
def test_shapes_finite_and_every_parameter_gets_a_gradient(cls):
    torch.manual_seed(0)
    model = cls(CFG)
    x = torch.randn(2, 20, 6)
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[0, 15:] = 0
    logits = model(x, mask)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match=r"\[batch, length, 6\]"):
        model(torch.randn(2, 20, 5))


def test_masked_inputs_get_zero_attention_and_cannot_change_the_output():
    torch.manual_seed(0)
    model = Perceiver(CFG).eval()
    x = torch.randn(2, 10, 6)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, 6:] = 0
    with torch.no_grad():
        logits, weights = model(x, mask, return_attention=True)
        assert weights.shape == (2, 4, 8, 10)  # [B, heads, latents, inputs]
        assert (weights[0, ..., 6:] == 0).all()
        assert (weights[0, ..., :6] > 0).all()
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 4, 8))
        # the fused (SDPA) path agrees with the explicit one
        torch.testing.assert_close(model(x, mask), logits, rtol=1e-4, atol=1e-5)
        # garbage in the padded positions changes nothing; the same as dropping them
        x_noisy = x.clone()
        x_noisy[0, 6:] = 100.0
        torch.testing.assert_close(model(x_noisy, mask), logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x[:1, :6])[0], logits[0], rtol=1e-4, atol=1e-5)


def test_full_attention_baseline_ignores_padding_too():
    torch.manual_seed(0)
    model = FullSelfAttentionClassifier(CFG).eval()
    x = torch.randn(1, 10, 6)
    mask = torch.tensor([[1] * 7 + [0] * 3])
    with torch.no_grad():
        torch.testing.assert_close(model(x, mask), model(x[:, :7]), rtol=1e-4, atol=1e-5)


def test_all_padding_row_is_rejected():
    model = Perceiver(CFG)
    with pytest.raises(ValueError, match="at least one real token"):
        model(torch.randn(2, 4, 6), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))


def test_perceiver_learns_a_sequence_task():
    """Class = which of three marker features is present somewhere in a noisy sequence."""
    torch.manual_seed(0)
    n, length = 48, 16
    labels = torch.arange(n) % 3
    x = 0.1 * torch.randn(n, length, 6)
    where = torch.randint(0, length, (n,))
    x[torch.arange(n), where, labels] = 3.0
    model = Perceiver(CFG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = (model(x).argmax(dim=-1) == labels).float().mean().item()
    assert loss.item() < 0.5 * math.log(3) and accuracy > 0.9


def test_measure_cost_frame_and_rising_cost_for_full_attention():
    cfg = PerceiverConfig(input_dim=8, latent_dim=32, num_latents=16, num_heads=4, num_self_attn_layers=1)
    frame = measure_cost(
        {"perceiver": lambda: Perceiver(cfg), "full": FullSelfAttentionClassifier(cfg)},
        lengths=[16, 1024],
        batch_size=4,
        repeats=3,
    )
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["model", "length", "ms_per_forward", "peak_mem_mb"]
    assert len(frame) == 4 and frame["ms_per_forward"].gt(0).all()
    assert frame.attrs["peak_mem_method"]
    full = frame[frame["model"] == "full"].set_index("length")["ms_per_forward"]
    assert full[1024] > full[16]
    with pytest.raises(ValueError, match="attention_backend"):
        measure_cost({"p": Perceiver(cfg)}, [8], attention_backend="fastest")
