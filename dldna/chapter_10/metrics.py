"""Cross-modal retrieval metrics: Recall@K in both directions (erratum 8).

The original code reported "accuracy" over concatenated batch logits, which depends on
the batch and is not retrieval. Recall@K ranks the *whole* evaluation set:

* image -> text: an image scores a hit at K when ANY of its captions (Flickr8k has five
  per image) is among the K texts most similar to it;
* text -> image: a caption scores a hit when its own image is among the K most similar
  images.

Ties count against the model: a wrong candidate with the *same* score as the best
correct one is ranked ahead of it. A collapsed model that gives every pair the same
score therefore gets (at most) chance level, never a perfect score.
Values are fractions in ``[0, 1]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def _validate(scores: torch.Tensor, text_to_image: torch.Tensor, ks: Sequence[int]) -> torch.Tensor:
    if scores.ndim != 2:
        raise ValueError(f"scores must be [N_images, N_texts]; got shape {tuple(scores.shape)}.")
    n_img, n_txt = scores.shape
    t2i = torch.as_tensor(text_to_image, device=scores.device).long()
    if t2i.shape != (n_txt,):
        raise ValueError(
            f"text_to_image must hold one image index per text ({n_txt}); got shape {tuple(t2i.shape)}."
        )
    if n_txt and (t2i.min() < 0 or t2i.max() >= n_img):
        raise ValueError(
            f"text_to_image values must be image indices in [0, {n_img}); "
            f"got range [{int(t2i.min())}, {int(t2i.max())}]."
        )
    captions_per_image = torch.bincount(t2i, minlength=n_img)
    if bool((captions_per_image == 0).any()):
        missing = torch.nonzero(captions_per_image == 0).flatten()[:5].tolist()
        raise ValueError(
            f"Images {missing} have no caption, so image->text recall is undefined for them; "
            f"evaluate only images that have captions."
        )
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores contain NaN or inf; the model has diverged or the inputs are broken.")
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be positive integers; got {ks}.")
    return t2i


@torch.no_grad()
def recall_at_k_from_scores(
    scores: torch.Tensor, text_to_image: torch.Tensor | Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@K from a precomputed similarity matrix ``scores [N_images, N_texts]``.

    Returns ``{"i2t_R@1": ..., "t2i_R@1": ..., ..., "mean_recall": ...}``; ``mean_recall``
    is the average of all the R@K values, a single number to rank models by.
    """
    scores = scores.float()
    t2i = _validate(scores, text_to_image, ks)
    n_img, n_txt = scores.shape
    is_match = t2i[None, :] == torch.arange(n_img, device=scores.device)[:, None]  # [N_img, N_txt]

    # image -> text: rank of the best-scoring correct caption among all captions
    best_match = scores.masked_fill(~is_match, float("-inf")).amax(dim=1)  # [N_img]
    i2t_rank = ((scores >= best_match[:, None]) & ~is_match).sum(dim=1)  # [N_img] wrong texts ahead

    # text -> image: rank of the caption's own image among all images
    own = scores.gather(0, t2i[None, :]).squeeze(0)  # [N_txt]
    t2i_rank = ((scores >= own[None, :]) & ~is_match).sum(dim=0)  # [N_txt] wrong images ahead

    result: dict[str, float] = {}
    for k in ks:
        result[f"i2t_R@{k}"] = (i2t_rank < k).float().mean().item()
    for k in ks:
        result[f"t2i_R@{k}"] = (t2i_rank < k).float().mean().item()
    result["mean_recall"] = sum(result.values()) / len(result)
    return result


@torch.no_grad()
def recall_at_k(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_to_image: torch.Tensor | Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    normalize: bool = True,
) -> dict[str, float]:
    """Recall@K from embeddings ``image_emb [N_img, D]`` and ``text_emb [N_txt, D]``.

    ``text_to_image[j]`` is the index of caption ``j``'s image. With ``normalize=True``
    the score is cosine similarity, CLIP's retrieval score.
    """
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            f"image_emb and text_emb must be [N, D] with the same D; got "
            f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}."
        )
    if normalize:
        image_emb, text_emb = F.normalize(image_emb.float(), dim=-1), F.normalize(text_emb.float(), dim=-1)
    scores = image_emb.float() @ text_emb.float().t()  # [N_img, N_txt]
    return recall_at_k_from_scores(scores, text_to_image, ks)
