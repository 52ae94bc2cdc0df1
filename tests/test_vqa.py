"""Synthetic VQA data in VQA v2's layout, its answers, split and reader."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dldna.data import shapes, vqa
from dldna.data.flickr8k import load_or_create_split


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    shapes.generate_dataset(root, 60, seed=0, image_size=32)
    vqa.prepare_vqa(root, seed=0)
    return root


def test_layout_is_vqa_v2(folder):
    q = json.loads(vqa.question_file(folder, "train").read_text())
    a = json.loads(vqa.annotation_file(folder, "train").read_text())
    assert q["task_type"] == "Open-Ended" and q["data_subtype"] == "train"
    assert set(q["questions"][0]) >= {"image_id", "question", "question_id"}
    ann = a["annotations"][0]
    assert set(ann) >= {"question_id", "image_id", "question_type", "answer_type", "multiple_choice_answer", "answers"}
    assert len(ann["answers"]) == 10 and set(ann["answers"][0]) == {"answer", "answer_confidence", "answer_id"}
    assert [x["question_id"] for x in q["questions"]] == [x["question_id"] for x in a["annotations"]]


def test_answers_are_true_of_the_scene_and_in_the_vocabulary(folder):
    scenes = vqa.read_scenes(folder)
    examples = vqa.load_vqa(folder, "train")
    assert {e.question_type for e in examples} == set(vqa.QUESTION_TYPES)
    for e in examples:
        assert e.answer in vqa.ANSWERS and e.image.is_file()
        objects = scenes[e.image.name]["objects"]
        if e.question_type == "count":
            assert e.answer == str(len(objects))
        if e.question_type == "colour":
            shape = e.question.removeprefix("What colour is the ").removesuffix("?")
            assert [o["colour"] for o in objects if o["shape"] == shape] == [e.answer]
        if e.question_type == "shape":
            colour = e.question.removeprefix("What shape is the ").removesuffix(" object?")
            assert [o["shape"] for o in objects if o["colour"] == colour] == [e.answer]
        if e.question_type == "exists":
            pair = tuple(e.question.split()[-2:])
            pair = (pair[0], pair[1].rstrip("?"))
            present = {(o["colour"], o["shape"]) for o in objects}
            assert (pair in present) == (e.answer == "yes")


def test_same_image_split_as_captions_and_no_overlap(folder):
    split = load_or_create_split(folder, sorted(vqa.read_scenes(folder)), seed=0)
    seen = {}
    for subset in ("train", "val", "test"):
        images = {e.image.name for e in vqa.load_vqa(folder, subset)}
        assert images == set(split[subset])
        seen[subset] = images
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["val"])


def test_yes_no_balanced_and_majority_baseline_low(folder):
    examples = vqa.load_vqa(folder, "train")
    yes_no = Counter(e.answer for e in examples if e.answer_type == "yes/no")
    assert abs(yes_no["yes"] - yes_no["no"]) < 0.25 * sum(yes_no.values())
    assert vqa.majority_baseline(examples, examples) <= 0.40


def test_deterministic_and_idempotent(folder, tmp_path):
    first = vqa.question_file(folder, "train").read_bytes()
    mtime = vqa.question_file(folder, "train").stat().st_mtime_ns
    vqa.prepare_vqa(folder, seed=0)
    assert vqa.question_file(folder, "train").stat().st_mtime_ns == mtime  # nothing rewritten
    other = tmp_path / "again"
    shapes.generate_dataset(other, 60, seed=0, image_size=32)
    vqa.prepare_vqa(other, seed=0)
    assert vqa.question_file(other, "train").read_bytes() == first


def test_zero_shot_questions_about_held_out_pairs(tmp_path):
    shapes.generate_dataset(tmp_path, 12, seed=0, image_size=32, zero_shot=True)
    vqa.prepare_vqa(tmp_path, seed=0, zero_shot=True)
    examples = vqa.load_vqa(tmp_path, "zero_shot")
    scenes = vqa.read_scenes(tmp_path)
    assert {e.image.name for e in examples} == set(scenes)
    held = set(shapes.HELD_OUT)
    assert all(held & {(o["colour"], o["shape"]) for o in r["objects"]} for r in scenes.values())


def test_reader_loads_a_real_vqa_v2_sample(tmp_path):
    """The layout of v2_OpenEnded_mscoco_val2014_questions.json and its annotations."""
    questions = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {},
                 "data_subtype": "val2014",
                 "questions": [{"image_id": 39769, "question": "How many cats are in the image?",
                                "question_id": 397690}]}
    answers = ["2"] * 9 + ["two"]
    annotations = {"info": {}, "license": {}, "data_subtype": "val2014", "annotations": [{
        "question_type": "how many", "multiple_choice_answer": "2", "image_id": 39769, "answer_type": "number",
        "question_id": 397690,
        "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]}]}
    (tmp_path / "q.json").write_text(json.dumps(questions))
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    (ex,) = vqa.read_vqa(tmp_path / "q.json", tmp_path / "a.json", image_dir=tmp_path / "val2014")
    assert ex.image == tmp_path / "val2014" / "COCO_val2014_000000039769.jpg"
    assert ex.answer == "2" and ex.question_type == "how many" and len(ex.answers) == 10
    assert vqa.vqa_score("2", ex.answers) == 1.0
    assert vqa.vqa_score("two", ex.answers) == pytest.approx(1 / 3)
    (test_only,) = vqa.read_vqa(tmp_path / "q.json")  # test-dev files have no annotations
    assert test_only.answers == () and test_only.image is None


def test_reader_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(vqa.VQAFormatError, match="bad.json"):
        vqa.read_vqa(bad)
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(vqa.VQAFormatError, match="no 'questions' list"):
        vqa.read_vqa(bad)
    with pytest.raises(FileNotFoundError, match="scenes.jsonl"):
        vqa.read_scenes(tmp_path)
