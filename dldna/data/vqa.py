"""Visual question answering data: synthetic questions about the shapes scenes, one reader.

Every synthetic scene is fully described in ``scenes.jsonl`` (colour, shape, size and
position of each object), so questions about it can be asked and answered exactly:

==============  ===============================================  ======================
question type   example                                          answers
==============  ===============================================  ======================
``count``       How many shapes are there?                       1, 2, 3
``colour``      What colour is the star?                         the seven colours
``shape``       What shape is the green object?                  the six shapes
``size``        Is the blue square small or large?               small, large
``position``    Where is the red circle?                         top left ... bottom right
``relation``    Is the red circle to the left of the white star?  yes, no
``exists``      Is there a purple diamond?                       yes, no
==============  ===============================================  ======================

The files follow the layout of VQA v2 (Goyal et al., 2017): a *questions* file
(``{"questions": [{"image_id", "question", "question_id"}, ...]}``) and an *annotations*
file (``{"annotations": [{"question_id", "image_id", "question_type", "answer_type",
"multiple_choice_answer", "answers": [10 x {"answer", "answer_confidence",
"answer_id"}]}, ...]}``), so :func:`read_vqa` loads a real VQA v2 sample as well (there the
image file is ``COCO_<subtype>_<image_id:012d>.jpg``; synthetic questions also carry the
file name as ``image_name``). Answers come from the fixed vocabulary :data:`ANSWERS`; a
model head over it is a classifier, as in VQA v2 practice.

The questions of an image depend only on its scene and the seed, the images are divided
by the same seeded image-level split as the captions
(:func:`~dldna.data.flickr8k.load_or_create_split`), and the zero-shot folder (scenes that
each show a held-out colour x shape pair) gets its own questions: tests on held-out images
and on held-out pairs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from dldna.atomic import atomic_write_json

from .shapes import COLOURS, SHAPES, SIZES, relation

#: Version of the question generator; bump when questions or answers change.
VQA_VERSION = 1
VQA_DIR = "vqa"
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right",
)  # fmt: skip
#: The fixed answer vocabulary of the synthetic questions (the classifier's labels).
ANSWERS: tuple[str, ...] = ("1", "2", "3", *COLOURS, *SHAPES, *SIZES, *POSITIONS, "yes", "no")
QUESTION_TYPES: tuple[str, ...] = ("count", "colour", "shape", "size", "position", "relation", "exists")
_ANSWER_TYPES = {"count": "number", "relation": "yes/no", "exists": "yes/no"}
_RELATION_PHRASES = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
ANSWERS_PER_QUESTION = 10  # VQA v2 collects ten human answers per question


class VQAFormatError(ValueError):
    """A questions or annotations file that is not in VQA v2's layout."""


@dataclass(frozen=True)
class VQAExample:
    """One question about one image, with its answers."""

    question_id: int
    image_id: int
    image: Path | None
    question: str
    answer: str  # VQA v2's "multiple_choice_answer": the most common human answer
    answers: tuple[str, ...]
    question_type: str
    answer_type: str


def position_of(x: float, y: float) -> str:
    """The answer to "where is it?" for a centre ``(x, y)`` (fractions of the side)."""
    row = 0 if y < 1 / 3 else 2 if y > 2 / 3 else 1
    col = 0 if x < 1 / 3 else 2 if x > 2 / 3 else 1
    return POSITIONS[3 * row + col]


def _name(obj: dict) -> str:
    return f"{obj['colour']} {obj['shape']}"


def _rng(seed: int, image: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"dldna-vqa:{seed}:{image}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def scene_questions(record: dict, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(question_type, question, answer)`` triples for one ``scenes.jsonl`` record.

    Each object is referred to by its colour and shape (unique within a scene), by its
    shape alone where no other object shares it, or by its colour alone likewise. Yes/no
    questions are balanced: as many true as false ones, the false ones differing from a
    true statement in one attribute, so they cannot be answered from words alone.
    """
    objects = record["objects"]
    rng = _rng(seed, record["image"])
    shapes = Counter(o["shape"] for o in objects)
    colours = Counter(o["colour"] for o in objects)
    thing = ("shapes", "objects")[int(rng.integers(2))]
    out = [("count", f"How many {thing} are there?", str(len(objects)))]
    for obj in objects:
        if shapes[obj["shape"]] == 1:
            out.append(("colour", f"What colour is the {obj['shape']}?", obj["colour"]))
        if colours[obj["colour"]] == 1:
            out.append(("shape", f"What shape is the {obj['colour']} object?", obj["shape"]))
        out.append(("size", f"Is the {_name(obj)} small or large?", obj["size"]))
        out.append(("position", f"Where is the {_name(obj)}?", position_of(obj["x"], obj["y"])))

    present = {(o["colour"], o["shape"]) for o in objects}
    obj = objects[int(rng.integers(len(objects)))]
    if rng.random() < 0.5:
        colour, shape, answer = obj["colour"], obj["shape"], "yes"
    else:  # change the colour or the shape of a present object: binding, not word spotting
        while True:
            if rng.random() < 0.5:
                colour, shape = COLOURS[int(rng.integers(len(COLOURS)))], obj["shape"]
            else:
                colour, shape = obj["colour"], SHAPES[int(rng.integers(len(SHAPES)))]
            if (colour, shape) not in present:
                break
        answer = "no"
    article = "an" if colour[0] in "aeiou" else "a"
    out.append(("exists", f"Is there {article} {colour} {shape}?", answer))

    if len(objects) >= 2:
        i, j = (int(k) for k in rng.choice(len(objects), size=2, replace=False))
        a, b = objects[i], objects[j]
        true = relation(SimpleNamespace(**a), SimpleNamespace(**b))  # reads .x, .y
        if rng.random() < 0.5:
            asked, answer = true, "yes"
        else:
            asked, answer = {"left": "right", "right": "left", "above": "below", "below": "above"}[true], "no"
        out.append(("relation", f"Is the {_name(a)} {_RELATION_PHRASES[asked]} the {_name(b)}?", answer))
    return out


def scene_examples(records: Sequence[dict], seed: int = 0) -> list[VQAExample]:
    """The questions of :func:`scene_questions` as examples, without files (``image`` = the name)."""
    out = []
    for image_id, record in enumerate(records):
        for k, (qtype, text, answer) in enumerate(scene_questions(record, seed)):
            out.append(VQAExample(
                question_id=image_id * 100 + k, image_id=image_id, image=Path(record["image"]), question=text,
                answer=answer, answers=(answer,) * ANSWERS_PER_QUESTION, question_type=qtype,
                answer_type=_ANSWER_TYPES.get(qtype, "other"),
            ))  # fmt: skip
    return out


def read_scenes(root: str | os.PathLike[str]) -> dict[str, dict]:
    """``scenes.jsonl`` of a synthetic folder, by image name."""
    path = Path(root) / "scenes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: VQA questions are derived from the scene descriptions that "
            "dldna.data.shapes writes. Generate the folder with `python -m dldna.data.shapes --out DIR`."
        )
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {r["image"]: r for r in records}


def question_file(root: str | os.PathLike[str], subset: str) -> Path:
    return Path(root) / VQA_DIR / f"v2_OpenEnded_synthetic_{subset}_questions.json"


def annotation_file(root: str | os.PathLike[str], subset: str) -> Path:
    return Path(root) / VQA_DIR / f"v2_synthetic_{subset}_annotations.json"


def build_vqa(
    scenes: dict[str, dict], images: Sequence[str], seed: int = 0, subset: str = "train"
) -> tuple[dict, dict]:
    """VQA v2 question and annotation payloads for ``images`` (names in ``scenes``)."""
    missing = [name for name in images if name not in scenes]
    if missing:
        raise KeyError(f"{len(missing)} images have no scene record, e.g. {missing[0]!r}.")
    info = {"description": "Synthetic questions about dldna shapes scenes", "version": VQA_VERSION,
            "seed": seed, "answers": list(ANSWERS)}
    questions, annotations = [], []
    for image_id, name in enumerate(sorted(images)):
        for k, (qtype, text, answer) in enumerate(scene_questions(scenes[name], seed)):
            qid = image_id * 100 + k
            questions.append({"image_id": image_id, "image_name": name, "question": text, "question_id": qid})
            annotations.append({
                "question_id": qid, "image_id": image_id, "question_type": qtype,
                "answer_type": _ANSWER_TYPES.get(qtype, "other"), "multiple_choice_answer": answer,
                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": n + 1}
                            for n in range(ANSWERS_PER_QUESTION)],
            })  # fmt: skip
    common = {"info": info, "license": {"name": "MIT"}, "data_subtype": subset}
    return (
        {**common, "task_type": "Open-Ended", "data_type": "synthetic", "questions": questions},
        {**common, "data_type": "synthetic", "annotations": annotations},
    )


def write_vqa(
    root: str | os.PathLike[str], subsets: dict[str, Sequence[str]], seed: int = 0
) -> dict[str, tuple[Path, Path]]:
    """Write question and annotation files for each named subset of images; idempotent.

    ``vqa/manifest.json`` records what the files were made from (the folder's
    ``dataset.json``, the subsets, the seed and :data:`VQA_VERSION`); when it matches,
    nothing is read or rebuilt, otherwise every file is written again.
    """
    root = Path(root)
    paths = {subset: (question_file(root, subset), annotation_file(root, subset)) for subset in subsets}
    source = (root / "dataset.json").read_text(encoding="utf-8") if (root / "dataset.json").is_file() else ""
    digest = hashlib.blake2b(json.dumps({k: sorted(v) for k, v in subsets.items()}, sort_keys=True).encode(),
                             digest_size=16).hexdigest()
    manifest = {"version": VQA_VERSION, "seed": seed, "dataset": source, "subsets": digest}
    manifest_path = root / VQA_DIR / "manifest.json"
    if (manifest_path.is_file() and _load_json(manifest_path) == manifest
            and all(p.is_file() for pair in paths.values() for p in pair)):
        return paths
    scenes = read_scenes(root)
    for subset, images in subsets.items():
        payloads = build_vqa(scenes, images, seed=seed, subset=subset)
        for path, payload in zip(paths[subset], payloads):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, payload, indent=None)
    atomic_write_json(manifest_path, manifest)
    return paths


def prepare_vqa(root: str | os.PathLike[str], seed: int = 0, zero_shot: bool = False) -> dict[str, tuple[Path, Path]]:
    """Questions for a synthetic folder: per split of its images, or all as ``zero_shot``."""
    from .flickr8k import load_or_create_split

    names = sorted(read_scenes(root))
    subsets = {"zero_shot": names} if zero_shot else load_or_create_split(root, names, seed=seed)
    return write_vqa(root, subsets, seed=seed)


def _load_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as exc:
        raise VQAFormatError(f"{path} is not valid JSON: {exc}") from exc


def read_vqa(
    questions_path: str | os.PathLike[str],
    annotations_path: str | os.PathLike[str] | None = None,
    image_dir: str | os.PathLike[str] | None = None,
) -> list[VQAExample]:
    """Read a VQA v2 questions file and (optionally) its annotations file.

    Works for real VQA v2 files (images ``COCO_<data_subtype>_<image_id:012d>.jpg`` in
    ``image_dir``) and for the synthetic ones (``image_name`` per question, images in
    ``image_dir``, by default the folder's ``Images``). Without annotations the answers are
    empty (VQA v2's test files have none).
    """
    qpath = Path(questions_path)
    qdata = _load_json(qpath)
    if not isinstance(qdata, dict) or not isinstance(qdata.get("questions"), list):
        raise VQAFormatError(f"{qpath} has no 'questions' list; expected VQA v2's questions layout.")
    subtype = qdata.get("data_subtype", "")
    if image_dir is None and qpath.parent.name == VQA_DIR:
        image_dir = qpath.parent.parent / "Images"
    annotations: dict[int, dict] = {}
    if annotations_path is not None:
        apath = Path(annotations_path)
        adata = _load_json(apath)
        if not isinstance(adata, dict) or not isinstance(adata.get("annotations"), list):
            raise VQAFormatError(f"{apath} has no 'annotations' list; expected VQA v2's annotations layout.")
        annotations = {a["question_id"]: a for a in adata["annotations"]}
    examples = []
    for q in qdata["questions"]:
        try:
            qid, image_id, text = int(q["question_id"]), int(q["image_id"]), str(q["question"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VQAFormatError(f"{qpath}: question {q!r} lacks question_id, image_id or question.") from exc
        image = None
        if image_dir is not None:
            file = q.get("image_name") or f"COCO_{subtype}_{image_id:012d}.jpg"
            image = Path(image_dir) / file
        ann = annotations.get(qid)
        if annotations_path is not None and ann is None:
            raise VQAFormatError(f"{annotations_path}: no annotation for question_id {qid} of {qpath}.")
        answers = tuple(a["answer"] for a in ann["answers"]) if ann else ()
        examples.append(VQAExample(
            question_id=qid, image_id=image_id, image=image, question=text,
            answer=ann["multiple_choice_answer"] if ann else "", answers=answers,
            question_type=ann["question_type"] if ann else "", answer_type=ann["answer_type"] if ann else "",
        ))  # fmt: skip
    return examples


def load_vqa(root: str | os.PathLike[str], subset: str) -> list[VQAExample]:
    """The synthetic questions of ``subset`` (``train``/``val``/``test``/``zero_shot``) of a folder."""
    qpath, apath = question_file(root, subset), annotation_file(root, subset)
    if not qpath.is_file():
        raise FileNotFoundError(f"{qpath} does not exist; write it with dldna.data.vqa.prepare_vqa({str(root)!r}).")
    return read_vqa(qpath, apath)


def vqa_score(prediction: str, answers: Iterable[str]) -> float:
    """VQA v2's accuracy of one prediction: min(#annotators who gave it / 3, 1)."""
    return min(sum(a == prediction for a in answers) / 3.0, 1.0)


def majority_answers(train: Sequence[VQAExample]) -> dict[str | None, str]:
    """The most frequent answer of each question type in ``train``; key ``None``: of all."""
    by_type: dict[str | None, Counter[str]] = {None: Counter()}
    for ex in train:
        by_type.setdefault(ex.question_type, Counter())[ex.answer] += 1
        by_type[None][ex.answer] += 1
    return {t: c.most_common(1)[0][0] for t, c in by_type.items() if c}


def guess_accuracy(guesses: dict[str | None, str], test: Sequence[VQAExample]) -> float:
    """Accuracy on ``test`` of answering each question with its type's guess (:func:`majority_answers`)."""
    return float(np.mean([vqa_score(guesses.get(ex.question_type, guesses[None]), ex.answers) for ex in test]))


def majority_baseline(train: Sequence[VQAExample], test: Sequence[VQAExample]) -> float:
    """Accuracy on ``test`` of answering each question type's most frequent train answer."""
    return guess_accuracy(majority_answers(train), test)
