"""Each loss against a hand computation on a 3-example case (explicit loops, plain math)."""

import math

import pytest
import torch

from dldna.chapter_10.losses import ClipLoss, contrastive_loss, info_nce, nt_xent, triplet_loss

LOGITS = [[2.0, 0.5, -1.0], [0.3, 1.5, 0.2], [-0.4, 0.9, 1.1]]
# Three 2-d vectors per role; not normalised, so the normalisation inside is exercised.
Q = [[1.0, 0.0], [0.6, 0.8], [-1.0, 1.0]]
P = [[2.0, 0.5], [0.0, 1.0], [-1.0, 2.0]]
NEG = [[0.0, -1.0], [1.0, 1.0]]


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _ce(scores, target):
    """-log softmax(scores)[target] with plain math."""
    return -(scores[target] - math.log(sum(math.exp(s) for s in scores)))


def test_contrastive_loss_matches_hand_computation():
    row_losses = [_ce(LOGITS[i], i) for i in range(3)]
    columns = [[LOGITS[i][j] for i in range(3)] for j in range(3)]
    col_losses = [_ce(columns[j], j) for j in range(3)]
    expected = (sum(row_losses) / 3 + sum(col_losses) / 3) / 2
    got = contrastive_loss(torch.tensor(LOGITS))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_is_symmetric_in_direction_and_rejects_non_square():
    logits = torch.tensor(LOGITS)
    assert contrastive_loss(logits).item() == pytest.approx(contrastive_loss(logits.t()).item(), rel=1e-6)
    assert contrastive_loss(logits, reduction="none").shape == (3,)
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(2, 3))


def test_clip_loss_module_scales_dot_products():
    scale = 10.0
    img = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    txt = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]
    logits = [
        [scale * sum(a * b for a, b in zip(img[i], txt[j], strict=True)) for j in range(3)] for i in range(3)
    ]
    rows = [_ce(logits[i], i) for i in range(3)]
    cols = [_ce([logits[i][j] for i in range(3)], j) for j in range(3)]
    expected = (sum(rows) + sum(cols)) / 6
    got = ClipLoss()(torch.tensor(img), torch.tensor(txt), torch.tensor(scale))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_in_batch_negatives():
    t = 0.1
    expected = sum(_ce([_cos(Q[i], P[j]) / t for j in range(3)], i) for i in range(3)) / 3
    assert info_nce(torch.tensor(Q), torch.tensor(P), temperature=t).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_info_nce_shared_and_per_query_negatives():
    t = 0.5
    expected = 0.0
    for i in range(3):
        scores = [_cos(Q[i], P[i]) / t] + [_cos(Q[i], n) / t for n in NEG]
        expected += _ce(scores, 0) / 3
    got = info_nce(torch.tensor(Q), torch.tensor(P), torch.tensor(NEG), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    per_query = torch.tensor(NEG).unsqueeze(0).expand(3, -1, -1)  # same negatives, [N, M, D] form
    assert info_nce(torch.tensor(Q), torch.tensor(P), per_query, temperature=t).item() == pytest.approx(
        expected, rel=1e-5
    )
    with pytest.raises(ValueError, match="negative_keys"):
        info_nce(torch.tensor(Q), torch.tensor(P), torch.zeros(2, 3))


def test_nt_xent_matches_hand_computation():
    t = 0.5
    views = Q + P  # 2N = 6 views; view i's partner is (i + 3) % 6
    expected = 0.0
    for i in range(6):
        partner = (i + 3) % 6
        numerator = math.exp(_cos(views[i], views[partner]) / t)
        denominator = sum(math.exp(_cos(views[i], views[k]) / t) for k in range(6) if k != i)
        expected += -math.log(numerator / denominator) / 6
    got = nt_xent(torch.tensor(Q), torch.tensor(P), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_triplet_loss_matches_hand_computation(distance):
    anchor = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    positive = [[0.3, 0.4], [1.0, 1.0], [0.0, 2.0]]
    negative = [[3.0, 4.0], [-1.0, 0.0], [0.1, 1.0]]
    margin = 0.2

    def dist(a, b):
        if distance == "euclidean":
            return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))
        if all(x == 0 for x in a) or all(y == 0 for y in b):
            return 1.0  # cosine similarity of a zero vector is 0 (torch's eps convention)
        return 1 - _cos(a, b)

    per_example = [
        max(0.0, dist(a, p) - dist(a, n) + margin) for a, p, n in zip(anchor, positive, negative, strict=True)
    ]
    got = triplet_loss(
        torch.tensor(anchor),
        torch.tensor(positive),
        torch.tensor(negative),
        margin,
        distance,
        reduction="none",
    )
    assert got.tolist() == pytest.approx(per_example, rel=1e-5, abs=1e-6)
    assert any(v == 0 for v in per_example) and any(v > 0 for v in per_example)  # both hinge branches


def test_losses_give_finite_gradients_and_validate_arguments():
    z1 = torch.randn(4, 8, requires_grad=True)
    z2 = torch.randn(4, 8, requires_grad=True)
    total = nt_xent(z1, z2) + info_nce(z1, z2) + triplet_loss(z1, z2, z2.flip(0))
    total.backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="distance"):
        triplet_loss(z1, z2, z2, distance="manhattan")
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z1, z2[:3])


def test_lower_temperature_sharpens_nt_xent_for_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    aligned = z + 0.05 * torch.randn(8, 16)
    assert nt_xent(z, aligned, temperature=0.1) < nt_xent(z, aligned, temperature=1.0)
