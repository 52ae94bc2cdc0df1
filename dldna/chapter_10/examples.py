"""Retrieval examples: what a trained image-text model returns for a few queries.

:func:`generate_example` (the original chapter's name) ranks a held-out split for some
images and captions and returns two tables and a picture grid. It works for every
:class:`~dldna.chapter_10.training.RetrievalModel` of the chapter.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dldna.chapter_10.training import RetrievalModel, Speedups, check_eval_split, encode_split, eval_mode
from dldna.data.cache import CachedSplit

__all__ = ["RetrievalExamples", "generate_example"]


@dataclass
class RetrievalExamples:
    """Top-k retrievals of a few queries: two tables and a picture grid."""

    image_to_text: pd.DataFrame  # image, rank, caption, probability, correct
    text_to_image: pd.DataFrame  # query, rank, image, probability, correct
    figure: Any = field(repr=False, default=None)  # matplotlib Figure

    def _repr_html_(self) -> str:
        return self.image_to_text._repr_html_() + self.text_to_image._repr_html_()


def _tokenize_queries(tokenizer: Any, queries: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    if tokenizer is None:
        raise ValueError("Free-text queries need the tokenizer the model was trained with (tokenizer=...).")
    enc = tokenizer(list(queries), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def generate_example(
    model: RetrievalModel,
    split: CachedSplit,
    tokenizer: Any = None,
    k: int = 3,
    n_examples: int = 3,
    queries: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> RetrievalExamples:
    """Retrieval examples on a held-out split, as in the chapter's ``generate_example``.

    For ``n_examples`` images (picked with ``seed``): the top-``k`` captions of the whole
    split with their probabilities (softmax over all captions), and for one caption of
    each image (or for each of ``queries``, free text tokenised with ``tokenizer``) the
    top-``k`` images (softmax over all images). The figure shows each text query with its
    top-``k`` images; a green frame marks the image the caption belongs to.
    """
    import matplotlib.pyplot as plt

    split = check_eval_split(split, "split")
    if k < 1 or n_examples < 1:
        raise ValueError(f"k and n_examples must be positive, got k={k}, n_examples={n_examples}.")
    device = next(model.parameters()).device if device is None else torch.device(device)
    k_img, k_txt = min(k, split.num_images), min(k, len(split))
    picked = torch.randperm(split.num_images, generator=torch.Generator().manual_seed(seed))[:n_examples].tolist()
    if queries is not None:
        query_ids, query_mask = _tokenize_queries(tokenizer, queries, split.input_ids.shape[1])
    speed = Speedups.for_device(device)
    with eval_mode(model):
        image_rep, text_rep = encode_split(model, split, device, speed=speed)
        with speed.autocast(device):
            scores = model.score_all(image_rep, text_rep).float().cpu()  # [N_img, N_txt]
            if queries is not None:
                query_rep = model.embed_texts(query_ids.to(device), query_mask.to(device))
                query_scores = model.score_all(image_rep, query_rep).float().cpu()  # [N_img, Q]

    rows = []
    for image in picked:
        top = scores[image].softmax(dim=0).topk(k_txt)
        for rank, (p, t) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
            rows.append({"image": split.image_names[image], "rank": rank, "caption": split.captions[t],
                         "probability": p, "correct": int(split.image_index[t]) == image})  # fmt: skip
    image_to_text = pd.DataFrame(rows)

    if queries is None:
        first_caption = {int(i): c for c, i in reversed(list(enumerate(split.image_index.tolist())))}
        columns = [first_caption[i] for i in picked]
        texts, truth, query_scores = [split.captions[c] for c in columns], picked, scores[:, columns]
    else:
        texts, truth = list(queries), [None] * len(queries)

    rows, grid = [], []
    for q, (text, own) in enumerate(zip(texts, truth)):
        top = query_scores[:, q].softmax(dim=0).topk(k_img)
        hits = list(zip(top.indices.tolist(), top.values.tolist()))
        grid.append((text, own, hits))
        for rank, (image, p) in enumerate(hits, start=1):
            rows.append({"query": text, "rank": rank, "image": split.image_names[image], "probability": p,
                         "correct": None if own is None else image == own})  # fmt: skip
    text_to_image = pd.DataFrame(rows)

    fig, axes = plt.subplots(len(grid), k_img + 1, figsize=(2.2 * (k_img + 1), 2.4 * len(grid)), squeeze=False)
    for (text, own, hits), row in zip(grid, axes):
        row[0].axis("off")
        row[0].text(0.0, 0.5, textwrap.fill(text, 28), fontsize=9, va="center", wrap=True)
        for ax, (image, p) in zip(row[1:], hits):
            ax.imshow(np.asarray(split.images[image]))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"p = {p:.3f}", fontsize=9)
            colour = "tab:green" if image == own else "lightgray"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if image == own else 1)
    fig.suptitle(f"Text -> image: top-{k_img} images per caption (green frame: the caption's own image)", fontsize=10)
    fig.tight_layout()
    return RetrievalExamples(image_to_text=image_to_text, text_to_image=text_to_image, figure=fig)
