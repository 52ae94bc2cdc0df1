"""Recall@K on hand-made scores and embeddings whose answers are known."""

import pytest
import torch

from dldna.chapter_10.metrics import recall_at_k, recall_at_k_from_scores

# 3 images with 5 captions each: captions 0-4 -> image 0, 5-9 -> image 1, 10-14 -> image 2.
TEXT_TO_IMAGE = [0] * 5 + [1] * 5 + [2] * 5
SCORES = torch.tensor(
    [
        # image 0: only its 4th caption scores high; ANY caption in the top K is a hit
        [0.1, 0.1, 0.1, 0.9, 0.1] + [0.3] * 5 + [0.0] * 5,
        # image 1: two captions of image 2 outrank all of its own (rank 2)
        [0.0] * 5 + [0.2] * 5 + [0.8, 0.7, 0.0, 0.0, 0.0],
        # image 2: its captions are the best
        [0.0] * 5 + [0.0] * 5 + [0.6] * 5,
    ]
)


def test_recall_from_scores_hand_example():
    r = recall_at_k_from_scores(SCORES, TEXT_TO_IMAGE, ks=(1, 2, 3))
    # image->text ranks: image 0 -> 0, image 1 -> 2, image 2 -> 0
    assert r["i2t_R@1"] == pytest.approx(2 / 3)
    assert r["i2t_R@2"] == pytest.approx(2 / 3)
    assert r["i2t_R@3"] == pytest.approx(1.0)
    # text->image: captions of image 0 rank 0; of image 1 rank 1 (image 0 scores 0.3 > 0.2);
    # of image 2: captions 10 and 11 rank 1 (image 1 scores 0.8 / 0.7 > 0.6), 12-14 rank 0
    assert r["t2i_R@1"] == pytest.approx(8 / 15)
    assert r["t2i_R@2"] == pytest.approx(1.0)
    assert r["t2i_R@3"] == pytest.approx(1.0)
    assert r["mean_recall"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 8 / 15 + 1 + 1) / 6)


def test_ties_count_against_the_model():
    """A collapsed model (all scores equal) must not look perfect."""
    r = recall_at_k_from_scores(torch.zeros(3, 15), TEXT_TO_IMAGE, ks=(1, 10, 11))
    assert r["i2t_R@1"] == 0.0 and r["i2t_R@10"] == 0.0 and r["i2t_R@11"] == 1.0  # 10 wrong texts tie
    assert r["t2i_R@1"] == 0.0 and r["t2i_R@10"] == 1.0  # 2 wrong images tie


def test_recall_from_embeddings():
    images = torch.eye(4)[:3] * 2.0  # unnormalised on purpose; cosine scores ignore length
    # captions sit near their image, spread along a 4th axis no image uses
    texts = (
        torch.eye(4)[:3].repeat_interleave(5, dim=0) + 0.01 * torch.arange(15.0)[:, None] * torch.eye(4)[3]
    )
    perfect = recall_at_k(images, texts, torch.tensor(TEXT_TO_IMAGE), ks=(1, 5))
    assert all(v == 1.0 for v in perfect.values())
    # label the captions of images 0 and 1 the other way round: only image 2 is still right
    swapped = [1] * 5 + [0] * 5 + [2] * 5
    r = recall_at_k(images, texts, swapped, ks=(1, 3))
    assert r["i2t_R@1"] == pytest.approx(1 / 3) and r["t2i_R@1"] == pytest.approx(1 / 3)
    assert r["t2i_R@3"] == 1.0  # only 3 images: every caption's image is in the top 3


def test_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="no caption"):
        recall_at_k_from_scores(torch.zeros(4, 15), TEXT_TO_IMAGE)
    with pytest.raises(ValueError, match="one image index per text"):
        recall_at_k_from_scores(SCORES, TEXT_TO_IMAGE[:-1])
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k_from_scores(torch.full((3, 15), float("nan")), TEXT_TO_IMAGE)
    with pytest.raises(ValueError, match="same D"):
        recall_at_k(torch.zeros(3, 4), torch.zeros(15, 5), TEXT_TO_IMAGE)
