"""The study command: tables, plot and metadata from a tiny run; resuming reproduces them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from dldna.chapter_10.mm import study
from dldna.chapter_10.mm import train_multimodal as tm


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)  # main() sets its own thread count


def tiny_args(tmp_path, *extra: str) -> list[str]:
    return [
        "--profile", "smoke", "--seeds", "0", "1", "--versions", "v0", "v5", "--epochs", "1", "--images", "40",
        "--train-images", "30", "--eval-images", "4", "--pretrain-epochs", "1", "--image-size", "32", "--dim", "16",
        "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"),
        "--quiet", *extra,
    ]  # fmt: skip


def test_study_writes_tables_plot_and_metadata(tmp_path, monkeypatch):
    assert study.main(tiny_args(tmp_path)) == 0
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"runs.csv", "summary.csv", "zero_shot.csv", "results.json", "recall.png"}
    assert (out / "recall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * 2 * 2  # modes x seeds x versions
    summary = pd.read_csv(out / "summary.csv")
    assert summary[["mode", "version"]].values.tolist() == [
        ["faithful", "v0"], ["faithful", "v5"], ["tokens", "v0"], ["tokens", "v5"],
    ]  # fmt: skip
    assert (summary["seeds"] == 2).all()
    for metric in ("R@1", "R@5", "R@10", "final_train_loss", "final_val_loss"):
        assert {f"{metric}_mean", f"{metric}_std"} <= set(summary.columns)
    one = runs[(runs["mode"] == "tokens") & (runs["version"] == "v0")]["R@5"]
    row = summary[(summary["mode"] == "tokens") & (summary["version"] == "v0")].iloc[0]
    assert row["R@5_mean"] == pytest.approx(one.mean(), abs=1e-4)
    assert row["R@5_std"] == pytest.approx(one.std(ddof=1), abs=1e-4)

    zero_shot = pd.read_csv(out / "zero_shot.csv")
    assert len(zero_shot) == 8 and {"mode", "seed", "model_version", "trained_well"} <= set(zero_shot.columns)

    payload = json.loads((out / "results.json").read_text())
    meta = payload["metadata"]
    assert meta["command"].startswith("python -m dldna.chapter_10.mm.study --profile smoke")
    for key in ("git", "date_utc", "config", "split_sizes", "timings", "torch", "chance", "torch_threads"):
        assert key in meta
    assert meta["config"]["seeds"] == [0, 1] and meta["config"]["epochs"] == 1
    assert meta["split_sizes"]["eval_images"] == 4
    assert len(payload["summary"]) == 4 and len(payload["zero_shot"]) == 4

    # Rerunning resumes: nothing is trained again and the tables are the same.
    monkeypatch.setattr(tm, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    before = (out / "summary.csv").read_text()
    assert study.main(tiny_args(tmp_path)) == 0
    assert (out / "summary.csv").read_text() == before


def test_summary_learns_flag_and_chance():
    chance = study.chance_table(100, 1)
    assert chance["R@1"] == pytest.approx(0.01) and chance["R@10"] == pytest.approx(0.10)
    runs = pd.DataFrame(
        {
            "mode": ["tokens"] * 4,
            "version": ["v0", "v0", "v3", "v3"],
            "seed": [0, 1, 0, 1],
            "params": [0, 0, 64, 64],
            "status": ["ok", "ok", "ok", "diverged"],
            "R@1": [0.1, 0.2, 0.01, None],
            "R@5": [0.3, 0.4, 0.05, None],
            "R@10": [0.5, 0.6, 0.1, None],
            "mean_recall": [0.3, 0.4, 0.05, None],
            "train_loss": [[2.0, 1.0], [2.0, 1.2], [2.0, 2.0], [2.0]],
            "val_loss": [[2.0, 1.5], [2.0, 1.6], [2.0, 2.0], []],
            "val_batch_acc": [[0.1, 0.2], [0.1, 0.3], [0.1, 0.1], []],
            "sec_per_epoch": [1.0, 1.0, 1.0, 1.0],
        }
    )
    summary = study.summarise(runs, chance).set_index("version")
    assert summary.loc["v0", "learns"] and not summary.loc["v3", "learns"]
    assert summary.loc["v3", "diverged"] == 1 and summary.loc["v3", "ok"] == 1
    assert summary.loc["v0", "R@1_mean"] == pytest.approx(0.15)
    assert summary.loc["v0", "final_train_loss_mean"] == pytest.approx(1.1)


def test_bad_arguments_fail_early(tmp_path):
    with pytest.raises(SystemExit):
        study.main(["--modes", "pooled"])
    with pytest.raises(ValueError, match="Unknown profile"):
        study.main(["--profile", "huge", "--out", str(tmp_path)])


def test_a_partial_study_does_not_replace_a_larger_one(tmp_path):
    assert study.main(tiny_args(tmp_path)) == 0
    summary = (tmp_path / "out" / "summary.csv").read_text()
    partial = tiny_args(tmp_path)
    partial[partial.index("--versions") + 1 : partial.index("--versions") + 3] = ["v0"]
    with pytest.raises(FileExistsError, match="would drop 4 of them.*--overwrite"):
        study.main(partial)
    assert (tmp_path / "out" / "summary.csv").read_text() == summary
    assert study.main([*partial, "--overwrite"]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 4


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("--versions", "v99", "v99"), ("--lr", "inf", "lr = inf"), ("--epochs", "0", "epochs = 0")],
)
def test_bad_options_stop_before_any_data_is_made(tmp_path, capsys, option, value, named):
    args = [*tiny_args(tmp_path), option, value]  # the last occurrence of an option wins
    with pytest.raises(SystemExit):
        study.main(args)
    assert named in capsys.readouterr().err
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_the_committed_study_ships_with_the_package():
    committed = study.load_study()
    assert committed["path"] == study.committed_study()
    assert len(committed["runs"]) == 17 * 2 * 3 and len(committed["summary"]) == 17 * 2
    assert committed["results"]["metadata"]["command"].startswith("python -m dldna.chapter_10.mm.study")
