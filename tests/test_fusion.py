"""Early, late and gated fusion: shapes, gradients, the arithmetic of each, gates that learn."""

import pytest
import torch
import torch.nn.functional as F

from dldna.chapter_10.fusion import EarlyFusion, GatedFusion, LateFusion

DIMS = (12, 8)


def _features(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, DIMS[0], generator=g), torch.randn(b, DIMS[1], generator=g)


@pytest.mark.parametrize(
    "make",
    [
        lambda: EarlyFusion(DIMS, 3),
        lambda: EarlyFusion(DIMS, 3, hidden_dim=16),
        lambda: LateFusion(DIMS, 3),
        lambda: GatedFusion(DIMS, 3, fused_dim=16),
    ],
)
def test_shapes_finite_and_every_parameter_gets_a_gradient(make):
    torch.manual_seed(0)
    model = make()
    out = model(*_features())
    logits = out.logits if isinstance(model, GatedFusion) else out
    assert logits.shape == (5, 3) and torch.isfinite(logits).all()
    logits.pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_early_fusion_concatenates_vit_and_bert_features():
    model = EarlyFusion([768, 768], num_classes=2)
    assert model.classifier.in_features == 1536  # the 1536-dim joint vector of section 10.3
    image, text = torch.randn(1, 768), torch.randn(1, 768)
    expected = torch.cat([image, text], dim=-1) @ model.classifier.weight.t() + model.classifier.bias
    torch.testing.assert_close(model(image, text), expected)


def test_late_fusion_is_a_weighted_average_of_per_modality_logits():
    torch.manual_seed(0)
    a, b = _features()
    model = LateFusion(DIMS, 3, weights=[3.0, 1.0])
    logits, per_modality = model(a, b, return_per_modality=True)
    own_a, own_b = model.classifiers[0](a), model.classifiers[1](b)
    torch.testing.assert_close(per_modality, torch.stack([own_a, own_b]))
    torch.testing.assert_close(logits, 0.75 * own_a + 0.25 * own_b)
    only_first = LateFusion(DIMS, 3, weights=[1.0, 0.0])
    only_first.load_state_dict(model.state_dict() | {"weights": only_first.weights})
    torch.testing.assert_close(only_first(a, b), own_a)
    with pytest.raises(ValueError, match="non-negative"):
        LateFusion(DIMS, 3, weights=[1.0, -1.0])


def test_gates_sum_to_one_depend_on_input_and_form_the_fused_vector():
    torch.manual_seed(0)
    model = GatedFusion(DIMS, 3, fused_dim=16)
    a, b = _features()
    out = model(a, b)
    assert out.gates.shape == (5, 2) and (out.gates >= 0).all()
    torch.testing.assert_close(out.gates.sum(dim=-1), torch.ones(5))
    assert not torch.allclose(out.gates[0], out.gates[1])  # per-example weights
    h = torch.stack([torch.tanh(model.projections[0](a)), torch.tanh(model.projections[1](b))], dim=1)
    expected = F.layer_norm(
        (out.gates.unsqueeze(-1) * h).sum(dim=1), (16,), model.norm.weight, model.norm.bias
    )
    torch.testing.assert_close(out.fused, expected)


def test_gated_fusion_learns_to_trust_the_informative_modality():
    torch.manual_seed(0)
    n = 128
    labels = torch.randint(0, 2, (n,))
    informative = F.one_hot(labels, 12).float() * 2 + 0.3 * torch.randn(n, 12)
    noise = torch.randn(n, 8) * 2
    model = GatedFusion(DIMS, 2, fused_dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = F.cross_entropy(model(informative, noise).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = model(informative, noise)
    assert (out.logits.argmax(-1) == labels).float().mean() > 0.95
    assert out.gates[:, 0].mean() > 0.6


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="at least two"):
        EarlyFusion([12], 3)
    model = EarlyFusion(DIMS, 3)
    with pytest.raises(ValueError, match="Expected 2 modality"):
        model(torch.randn(5, 12))
    with pytest.raises(ValueError, match=r"Modality 1 must be \[5, 8\]"):
        model(torch.randn(5, 12), torch.randn(5, 9))
