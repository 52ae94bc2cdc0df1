"""How well the scene models do on scenes they never saw, next to simple baselines.

* **Captioning**: the share of scenes whose generated caption names every object by its
  colour and shape (a colour word directly before a shape word, any of the generator's
  synonyms), and the share that names every object's colour; baseline: a caption that
  always names the most frequent colour and shape of the training scenes.
* **VQA**: VQA v2 accuracy over all questions and per question type; baseline: the most
  frequent training answer of each question type.
* **CLIP zero-shot**: for each image, the right description among ``n_candidates`` (its
  own and those of other scenes of the same set); top-1 accuracy (chance: 1/n).

Each figure is measured on the test split of the training folder (held-out images) and,
separately, on scenes that show held-out colour x shape pairs.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dldna.data import shapes
from dldna.data.vqa import (
    QUESTION_TYPES,
    VQAExample,
    guess_accuracy,
    majority_answers,
    scene_examples,
    vqa_score,
)

from . import SceneSet

_COLOUR_OF = {w: c for c, words in shapes._COLOUR_WORDS.items() for w in words}
_SHAPE_OF = {w: s for s, words in shapes._SHAPE_WORDS.items() for w in words}
_PAIR = re.compile(
    r"\b(" + "|".join(sorted(_COLOUR_OF, key=len, reverse=True)) + r")\s+("
    + "|".join(sorted(_SHAPE_OF, key=len, reverse=True)) + r")\b"
)
_COLOUR = re.compile(r"\b(" + "|".join(sorted(_COLOUR_OF, key=len, reverse=True)) + r")\b")


def named_pairs(caption: str) -> set[tuple[str, str]]:
    """The (colour, shape) pairs a caption names: a colour word directly before a shape word."""
    return {(_COLOUR_OF[c], _SHAPE_OF[s]) for c, s in _PAIR.findall(caption.lower())}


def named_colours(caption: str) -> set[str]:
    return {_COLOUR_OF[c] for c in _COLOUR.findall(caption.lower())}


def caption_scores(captions: Sequence[str], records: Sequence[dict]) -> dict[str, float]:
    """Share of scenes with every object named (colour and shape) and with every colour named."""
    objects, colours = [], []
    for caption, record in zip(captions, records):
        pairs = {(o["colour"], o["shape"]) for o in record["objects"]}
        objects.append(pairs <= named_pairs(caption))
        colours.append({c for c, _ in pairs} <= named_colours(caption))
    return {"objects": round(float(np.mean(objects)), 4), "colours": round(float(np.mean(colours)), 4)}


def baseline_caption(records: Sequence[dict]) -> str:
    """A caption that names the most frequent colour and shape of ``records``."""
    colour = Counter(o["colour"] for r in records for o in r["objects"]).most_common(1)[0][0]
    shape = Counter(o["shape"] for r in records for o in r["objects"]).most_common(1)[0][0]
    return f"a {colour} {shape}"


@torch.no_grad()
def generate_captions(model, processor, images, prompt: str | None = None, max_new_tokens: int = 40,
                      batch_size: int = 32) -> list[str]:
    """Greedy captions of ``images`` (PIL); with ``prompt`` they continue it."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        text = [prompt] * len(chunk) if prompt else None
        inputs = processor(images=chunk, text=text, return_tensors="pt").to(device)
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens)  # [B, T]
        out.extend(processor.batch_decode(ids, skip_special_tokens=True))
    return out


@torch.no_grad()
def answer_questions(model, processor, images, questions: Sequence[str], batch_size: int = 64):
    """ViLT's most probable answer and its probability for each (image, question)."""
    device = next(model.parameters()).device
    answers, probs = [], []
    for i in range(0, len(questions), batch_size):
        enc = processor(images=list(images[i : i + batch_size]), text=list(questions[i : i + batch_size]),
                        padding=True, return_tensors="pt").to(device)
        p = model(**enc).logits.softmax(-1)  # [B, num_answers]
        top = p.max(-1)
        answers.extend(model.config.id2label[int(k)] for k in top.indices)
        probs.extend(float(v) for v in top.values)
    return answers, probs


def vqa_accuracy(model, processor, scenes: SceneSet, examples: Sequence[VQAExample]) -> dict:
    """VQA v2 accuracy of ``model`` on ``examples`` about the images of ``scenes``."""
    index = {n: i for i, n in enumerate(scenes.names)}
    examples = [e for e in examples if e.image.name in index]
    images = scenes.images([index[e.image.name] for e in examples])
    predicted, _ = answer_questions(model, processor, images, [e.question for e in examples])
    scores = np.array([vqa_score(p, e.answers) for p, e in zip(predicted, examples)])
    types = np.array([e.question_type for e in examples])
    per_type = {t: round(float(scores[types == t].mean()), 4) for t in QUESTION_TYPES if (types == t).any()}
    return {"accuracy": round(float(scores.mean()), 4), "per_type": per_type, "questions": len(examples)}


def describe(record: dict) -> str:
    """A plain description of a scene: "a red circle and a blue square"."""
    parts = [f"{'an' if o['colour'][0] in 'aeiou' else 'a'} {o['colour']} {o['shape']}" for o in record["objects"]]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def zero_shot_candidates(records: Sequence[dict], n_candidates: int = 10, seed: int = 0) -> list[list[str]]:
    """For each scene, its description first, then ``n - 1`` different ones of other scenes."""
    texts = [describe(r) for r in records]
    rng = np.random.default_rng(seed)
    out = []
    for i, own in enumerate(texts):
        others = [t for t in dict.fromkeys(texts[j] for j in rng.permutation(len(texts))) if t != own]
        out.append([own, *others[: n_candidates - 1]])
    return out


@torch.no_grad()
def clip_zero_shot(model, processor, scenes: SceneSet, n_candidates: int = 10, seed: int = 0) -> dict:
    """Top-1 accuracy of CLIP choosing each image's description among ``n_candidates``."""
    candidates = zero_shot_candidates(scenes.records, n_candidates, seed)
    texts = sorted({t for c in candidates for t in c})
    device = next(model.parameters()).device
    enc = processor(text=texts, images=scenes.images(), return_tensors="pt", padding=True).to(device)
    out = model(**enc)
    sims = out.image_embeds @ out.text_embeds.T  # [N_images, N_texts]
    position = {t: k for k, t in enumerate(texts)}
    hits = [int(sims[i, [position[t] for t in c]].argmax()) == 0 for i, c in enumerate(candidates)]
    return {"top1": round(float(np.mean(hits)), 4), "candidates": n_candidates, "images": len(hits)}


def render_scene_set(indices: Sequence[int], seed: int = 0, zero_shot: bool = False) -> SceneSet:
    """Images ``indices`` of a generator seed, rendered in memory exactly as the folder holds them."""
    from . import IMAGE_SIZE

    names, pixels, records, captions = [], [], [], []
    for index in indices:
        name, scene, texts = shapes.make_example(seed, int(index), zero_shot)
        buffer = io.BytesIO()
        shapes.render_scene(scene, IMAGE_SIZE).save(buffer, format="JPEG", quality=90)  # as generate_dataset
        image = np.array(Image.open(buffer).convert("RGB"))
        names.append(name)
        pixels.append(torch.from_numpy(image).permute(2, 0, 1))
        records.append(shapes.scene_record(name, scene))
        captions.append(texts)
    return SceneSet(names, torch.stack(pixels), records, captions)


def split_indices(part: str, n_images: int | None = None, seed: int = 0) -> list[int]:
    """Indices of the training folder's images in ``part`` (``train``, ``val`` or ``test``) of
    the seeded image-level split the captions use, in the split's order."""
    from dldna.data.flickr8k import image_level_split

    from . import SCENE_IMAGES

    names = [shapes.image_name(0, i) for i in range(n_images or SCENE_IMAGES)]
    index = {n: i for i, n in enumerate(names)}
    return [index[n] for n in image_level_split(names, seed=seed)[part]]


def held_out_sets(n_images: int | None = None, limit: int | None = None, seed: int = 0) -> dict[str, SceneSet]:
    """``test``: held-out images of the training folder (its test split, the same seeded
    image-level split as the captions); ``pairs``: scenes with held-out colour x shape pairs.

    Rendered in memory from the generator (identical to the files), so no folder is needed.
    """
    from . import ZERO_SHOT_IMAGES

    test = split_indices("test", n_images, seed)
    pairs = range(ZERO_SHOT_IMAGES)
    return {"test": render_scene_set(test[:limit]), "pairs": render_scene_set(list(pairs)[:limit], zero_shot=True)}


@functools.lru_cache(maxsize=8)
def held_out_scene(n_objects: int, rank: int = 0, seed: int = 0) -> tuple[Image.Image, dict]:
    """Scene ``rank`` (from 0) of the test split with ``n_objects`` objects: image and record."""
    matching = (i for i in split_indices("test", seed=seed) if len(shapes.make_example(0, i)[1].objects) == n_objects)
    index = next(itertools.islice(matching, rank, None), None)
    if index is None:
        raise ValueError(f"No held-out scene {rank} with {n_objects} objects (scenes have 1 to 3).")
    scenes = render_scene_set([index])
    return scenes.images()[0], scenes.records[0]


@functools.lru_cache(maxsize=4)
def train_records(n_images: int | None = None, seed: int = 0) -> tuple[dict, ...]:
    """Scene records of the training images (no rendering): what the baselines are fitted on."""
    records = []
    for i in sorted(split_indices("train", n_images, seed)):
        _, scene, _ = shapes.make_example(0, i)
        records.append(shapes.scene_record(shapes.image_name(0, i), scene))
    return tuple(records)


@functools.lru_cache(maxsize=4)
def train_majority_answers(n_images: int | None = None, seed: int = 0) -> dict[str | None, str]:
    """The most frequent answer of each question type over the training images' questions."""
    return majority_answers(scene_examples(train_records(n_images, seed), seed))


def evaluate_models(models: dict, n_images: int | None = None, limit: int | None = None, seed: int = 0,
                    sets: dict[str, SceneSet] | None = None) -> dict:
    """Figures of the models in ``models`` (``{"blip": (model, processor), ...}``) on held-out scenes.

    ``sets`` are the scenes of :func:`held_out_sets` when already rendered.
    """
    sets = sets if sets is not None else held_out_sets(n_images, limit, seed)
    limit = len(sets["test"])
    figures: dict = {"limit": limit, "seed": seed}
    if "blip" in models:
        model, processor = models["blip"]
        base = baseline_caption(train_records(n_images, seed))
        figures["captioning"] = {"baseline_caption": base}
        for key, scenes in sets.items():
            captions = generate_captions(model, processor, scenes.images())
            figures["captioning"][key] = {**caption_scores(captions, scenes.records), "scenes": len(captions),
                                          "baseline": caption_scores([base] * len(scenes.records), scenes.records)}
    if "vilt" in models:
        model, processor = models["vilt"]
        figures["vqa"] = {key: vqa_accuracy(model, processor, scenes, scene_examples(scenes.records, seed))
                          for key, scenes in sets.items()}
        guesses, test_q = train_majority_answers(n_images, seed), scene_examples(sets["test"].records, seed)
        figures["vqa"]["test"]["baseline"] = round(guess_accuracy(guesses, test_q), 4)
        figures["vqa"]["test"]["baseline_per_type"] = {
            t: round(guess_accuracy(guesses, [q for q in test_q if q.question_type == t]), 4)
            for t in QUESTION_TYPES if any(q.question_type == t for q in test_q)
        }
    if "clip" in models:
        model, processor = models["clip"]
        figures["clip"] = {key: clip_zero_shot(model, processor, scenes, seed=seed) for key, scenes in sets.items()}
        figures["clip"]["test"]["chance"] = round(1 / figures["clip"]["test"]["candidates"], 4)
    return figures


def floor_figures(figures: dict) -> dict[str, float]:
    """The figures :mod:`dldna.floors` checks, from :func:`evaluate_models`' answer."""
    out = {}
    if "captioning" in figures:
        out["captioning.objects"] = figures["captioning"]["test"]["objects"]
        out["captioning.colours"] = figures["captioning"]["test"]["colours"]
    if "vqa" in figures:
        out["vqa.accuracy"] = figures["vqa"]["test"]["accuracy"]
        out["vqa.shape"] = figures["vqa"]["test"]["per_type"].get("shape", float("nan"))
    if "clip" in figures:
        out["clip.zero_shot"] = figures["clip"]["test"]["top1"]
    return out


def evaluate_all(weights_dir: str | Path, seed: int = 0, n_images: int | None = None,
                 limit: int | None = None) -> dict:
    """Load the three models from ``weights_dir`` and measure them on held-out scenes."""
    from . import MODEL_NAMES, load_scene_model

    models = {name: load_scene_model(name, weights_dir) for name in MODEL_NAMES}
    return evaluate_models(models, n_images, limit, seed)


def near_miss_captions(record: dict) -> list[str]:
    """A scene's description, then one with a colour changed and one with a shape changed.

    The wrong ones differ from the scene in one attribute of one object, so choosing the
    right one takes binding colour to shape, not spotting words.
    """
    objects = record["objects"]
    present = {(o["colour"], o["shape"]) for o in objects}
    changed = []
    for attribute, values in (("colour", shapes.COLOURS), ("shape", shapes.SHAPES)):
        variants = ({**objects[0], attribute: v} for v in values if v != objects[0][attribute])
        other = next(o for o in variants if (o["colour"], o["shape"]) not in present)
        changed.append(describe({"objects": [other, *objects[1:]]}))
    return [describe(record), *changed]


_TABLE_ROWS = {  # task -> (model, [(figure, path in a subset's figures, path of the baseline)])
    "captioning": ("BLIP", [("every object named (colour and shape)", ("objects",), ("baseline", "objects")),
                            ("every colour named", ("colours",), ("baseline", "colours"))]),
    "vqa": ("ViLT", [("VQA accuracy", ("accuracy",), ("baseline",)),
                     *((f"{t} questions", ("per_type", t), ("baseline_per_type", t)) for t in QUESTION_TYPES)]),
    "clip": ("CLIP", [("zero-shot top-1 of 10 captions", ("top1",), ("chance",))]),
}


def _at(tree: dict, path: Sequence[str]):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def figures_table(figures: dict):
    """:func:`evaluate_models`' figures as a table: held-out images, held-out pairs, baseline."""
    import pandas as pd

    rows = []
    for task, (model, specs) in _TABLE_ROWS.items():
        for name, path, baseline in specs if task in figures else ():
            rows.append({"model": model, "figure": name, "held-out images": _at(figures[task]["test"], path),
                         "held-out colour x shape pairs": _at(figures[task]["pairs"], path),
                         "baseline": _at(figures[task]["test"], baseline)})
    return pd.DataFrame(rows).set_index(["model", "figure"])
