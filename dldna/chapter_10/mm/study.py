"""The corrected cross-attention ablation: both modes, all versions, several seeds.

``python -m dldna.chapter_10.mm.study --profile smoke`` trains every version of
:mod:`dldna.chapter_10.mm.cross_attention` in ``faithful`` mode (the original protocol)
and ``tokens`` mode (token-level cross-attention) for each seed with
:func:`~dldna.chapter_10.mm.train_multimodal.run_training` (resumable: rerunning the
command skips finished runs), runs the original zero-shot check on the cat photo with
:func:`~dldna.chapter_10.mm.evaluate_models.evaluate_all_models`, and writes to ``--out``:

* ``runs.csv``: one row per (mode, seed, version);
* ``summary.csv``: mean and standard deviation over seeds of Recall@1/5/10 and of the
  final losses, per mode and version, with the chance level and a ``learns`` flag;
* ``zero_shot.csv``: the zero-shot check, per mode, seed and version;
* ``results.json``: all of the above plus the metadata needed to reproduce it (command,
  git revision, seeds, sizes, timings, library versions, date);
* ``recall.png``: Recall@1 and Recall@10 per version, mean ± std, both modes, chance marked.

Profiles set the defaults (:data:`PRESETS`); every option (one per field of
:class:`~dldna.chapter_10.mm.run.RunConfig`) can override them. The smoke preset
pre-trains the two encoders once per seed as the chapter's dual encoder and then
freezes them (their outputs are computed once); each version trains the projections
into the shared space, its cross-attention and the temperature.

On a machine with several GPUs, ``torchrun --nproc-per-node N -m
dldna.chapter_10.mm.study ...`` gives each process its share of the runs (see
:mod:`.distributed`); the summary is written once, by rank 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from dldna.atomic import atomic_write_text
from dldna.chapter_10.mm.run import RunConfig, add_config_arguments, config_from_arguments

logger = logging.getLogger(__name__)

__all__ = [
    "COMMITTED_STUDY",
    "PRESETS",
    "StudyConfig",
    "chance_table",
    "committed_study",
    "load_study",
    "main",
    "plot_recall",
    "run_study",
    "summarise",
]

#: A study's settings are a :class:`~dldna.chapter_10.mm.run.RunConfig` (one dataclass for all).
StudyConfig = RunConfig

#: Defaults per profile. ``full`` follows the original protocol (Flickr8k, 5 epochs,
#: lr 1e-4, width 256, 8 heads, encoders trained end to end) and needs a GPU.
PRESETS: dict[str, RunConfig] = {
    # Sized to train all 17 versions x 2 modes x 3 seeds on a CPU in about a quarter of an
    # hour: the encoders are pre-trained once per seed as a dual encoder and then frozen.
    "smoke": RunConfig(
        epochs=4, lr=1e-3, batch_size=16, dim=32, images=1000, max_images=500, image_grid=3, max_length=24,
        freeze_encoders=True, pretrain_epochs=8,
    ),
    "full": RunConfig(
        dim=256, num_heads=8, image_size=224, image_grid=None, eval_images=500,
    ),
}

#: The committed study's files, shipped inside the package (``importlib.resources``).
COMMITTED_STUDY = "committed_study"
STUDY_FILES = ("runs.csv", "summary.csv", "zero_shot.csv", "results.json", "recall.png")


def committed_study() -> Path:
    """The folder of the study shipped with the package (its tables, plot and JSON)."""
    return Path(str(resources.files("dldna.chapter_10.mm") / COMMITTED_STUDY))


def load_study(folder: str | Path | None = None) -> dict[str, Any]:
    """A study's tables and metadata: ``summary``, ``runs``, ``zero_shot`` (DataFrames),
    ``results`` (the JSON) and ``path``; ``folder=None`` reads the committed study."""
    path = Path(folder) if folder is not None else committed_study()
    missing = [name for name in ("summary.csv", "runs.csv", "results.json") if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is not a study folder (missing {missing}); write one with python -m dldna.chapter_10.mm.study."
        )
    lists = {c: json.loads for c in ("train_loss", "val_loss", "val_batch_acc")}
    zero_shot_file = path / "zero_shot.csv"
    return {
        "path": path,
        "summary": pd.read_csv(path / "summary.csv"),
        "runs": pd.read_csv(path / "runs.csv", converters=lists),
        "zero_shot": pd.read_csv(zero_shot_file, converters={"all_similarities": json.loads})
        if zero_shot_file.is_file()
        else pd.DataFrame(),
        "results": json.loads((path / "results.json").read_text(encoding="utf-8")),
    }


def _git_revision() -> dict[str, Any]:
    """The checked-out commit and whether the tree had changes (read-only git calls)."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def chance_table(n_images: int, captions_per_image: int) -> dict[str, float]:
    """Chance Recall@K (mean of both directions) for the evaluation size."""
    from dldna.chapter_10.mm.run import KS, chance_recall

    return {f"R@{k}": chance_recall(n_images, captions_per_image, k) for k in KS}


def summarise(runs: pd.DataFrame, chance: dict[str, float]) -> pd.DataFrame:
    """Mean and std over seeds per (mode, version); ``learns``: every seed's R@10 is at least twice chance."""
    from dldna.chapter_10.mm.cross_attention.registry import version_key

    frame = runs.copy()
    frame["final_train_loss"] = frame["train_loss"].map(lambda x: x[-1] if len(x) else float("nan"))
    frame["final_val_loss"] = frame["val_loss"].map(lambda x: x[-1] if len(x) else float("nan"))
    frame["final_val_batch_acc"] = frame["val_batch_acc"].map(lambda x: x[-1] if len(x) else float("nan"))
    metrics = ["R@1", "R@5", "R@10", "mean_recall", "final_train_loss", "final_val_loss", "final_val_batch_acc"]
    rows = []
    for (mode, version), group in frame.groupby(["mode", "version"], sort=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = {
            "mode": mode, "version": version, "params": int(group["params"].iloc[0]), "seeds": len(group),
            "ok": len(ok), "diverged": int((group["status"] == "diverged").sum()),
        }  # fmt: skip
        for metric in metrics:
            values = ok[metric].astype(float)
            row[f"{metric}_mean"] = values.mean() if len(values) else float("nan")
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
        row["sec_per_epoch_mean"] = group["sec_per_epoch"].astype(float).mean()
        row["learns"] = bool(len(ok) == len(group) and (ok["R@10"].astype(float) >= 2 * chance["R@10"]).all())
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["_order"] = summary["version"].map(version_key)
    mode_order = {m: i for i, m in enumerate(dict.fromkeys(frame["mode"]))}
    summary["_mode"] = summary["mode"].map(mode_order)
    return summary.sort_values(["_mode", "_order"]).drop(columns=["_order", "_mode"]).reset_index(drop=True)


def plot_recall(summary: pd.DataFrame, chance: dict[str, float], path: Path, title: str) -> Path:
    """Grouped bars per version: R@1 and R@10 mean ± std over seeds for each mode, chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = list(dict.fromkeys(summary["mode"]))
    versions = list(dict.fromkeys(summary["version"]))
    x = np.arange(len(versions))
    width = 0.8 / max(len(modes), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.6 * len(versions) + 2), 7), sharex=True)
    for ax, metric in zip(axes, ("R@1", "R@10")):
        for i, mode in enumerate(modes):
            part = summary[summary["mode"] == mode].set_index("version").reindex(versions)
            ax.bar(x + (i - (len(modes) - 1) / 2) * width, part[f"{metric}_mean"], width,
                   yerr=part[f"{metric}_std"].fillna(0), capsize=2, label=f"{mode} mode")  # fmt: skip
        ax.axhline(chance[metric], color="black", linestyle="--", linewidth=1, label=f"chance ({chance[metric]:.3f})")
        ax.set_ylabel(f"{metric} (mean ± std over seeds)")
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.15)  # room for the legend
        ax.legend(loc="upper center", ncol=len(modes) + 1, fontsize=8, framealpha=0.9)
    axes[-1].set_xticks(x, versions, rotation=45)
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _coverage(runs: pd.DataFrame) -> set[tuple[str, int, str]]:
    return {(str(m), int(seed), str(v)) for m, seed, v in zip(runs["mode"], runs["seed"], runs["version"])}


def check_overwrite(out: Path, planned: set[tuple[str, int, str]], overwrite: bool) -> None:
    """Refuse to replace a study in ``out`` that covers runs the new one does not (unless ``overwrite``)."""
    existing_file = out / "runs.csv"
    if overwrite or not existing_file.is_file():
        return
    try:
        existing = _coverage(pd.read_csv(existing_file))
    except (OSError, ValueError, KeyError):
        return  # unreadable: nothing worth keeping
    lost = existing - planned
    if lost:
        raise FileExistsError(
            f"{out} holds a study of {len(existing)} runs; this one covers {len(planned)} and would drop "
            f"{len(lost)} of them (e.g. {sorted(lost)[:3]}). Write it elsewhere with --out, or pass --overwrite."
        )


def _finished_runs(runs_dir: Path, mode: str, seed: int, versions: Sequence[str]) -> int:
    """How many result files already exist (run_training checks that they match the settings)."""
    from dldna.chapter_10.mm.run import result_path

    return sum(result_path(runs_dir, mode, seed, v).is_file() for v in versions)


def _zero_shot(runs_dir: Path, runs: pd.DataFrame, image: Any) -> pd.DataFrame:
    """The original zero-shot check for every trained (mode, seed, version)."""
    from dldna.chapter_10.mm.evaluate_models import TEST_CAPTIONS, evaluate_all_models

    frames = []
    for (mode, seed), group in runs.groupby(["mode", "seed"], sort=False):
        versions = group.loc[group["status"] == "ok", "version"].tolist()
        if not versions:
            continue
        frame = evaluate_all_models(runs_dir / mode / f"seed{seed}", image, TEST_CAPTIONS, versions)
        frame.insert(0, "seed", seed)
        frame.insert(0, "mode", mode)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _zero_shot_summary(zero_shot: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (mode, version): how many seeds picked the cat caption, and how many scored all captions alike."""
    if zero_shot.empty:
        return []
    rows = []
    for (mode, version), group in zero_shot.groupby(["mode", "model_version"], sort=False):
        sims = group["all_similarities"].tolist()
        flat = sum(1 for s in sims if max(s) - min(s) < 1e-3)
        rows.append({"mode": mode, "version": version, "seeds": len(group),
                     "trained_well": int(group["trained_well"].sum()), "all_equal": flat,
                     "best_captions": group["best_caption"].tolist()})  # fmt: skip
    return rows


def run_study(
    config: StudyConfig,
    *,
    profile: str | None,
    out: Path,
    runs_dir: Path,
    data_dir: Path | None = None,
    resume: bool = True,
    command: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the study and write its tables, plot and metadata to ``out``; return the JSON payload.

    A study already in ``out`` that covers runs this one does not is never replaced
    silently: :class:`FileExistsError`, unless ``overwrite=True``.

    Started by ``torchrun`` (see :mod:`.distributed`), each process trains its share of
    the runs into ``runs_dir``; rank 0 then collects them all and writes ``out``, and the
    other ranks return an empty dictionary.
    """
    import torch
    import transformers

    from dldna.chapter_10.mm import distributed
    from dldna.chapter_10.mm.cross_attention import VERSIONS
    from dldna.chapter_10.mm.run import run_training
    from dldna.data.images import sample_image
    from dldna.data.prepare import prepare_caption_data
    from dldna.runtime import resolve_profile, setup

    started = time.perf_counter()
    versions = list(config.versions or VERSIONS)
    check_overwrite(out, {(m, s, v) for m in config.modes for s in config.seeds for v in versions}, overwrite)
    ranks = distributed.from_environment()
    runtime = setup(profile, device=ranks.device if ranks else None, seed=config.seeds[0])
    # The data (synthetic scenes) and the split depend on split_seed only, never on the training seeds.
    data_runtime = dataclasses.replace(runtime, seed=config.split_seed)

    def prepare_data() -> Any:
        return prepare_caption_data(
            data_runtime, data_dir, n_images=config.images, image_size=config.image_size, name="shapes-ablation"
        )

    if ranks is not None:
        with distributed.process_group(ranks):
            data = prepare_data() if ranks.rank == 0 else None  # one writer
            distributed.barrier()
            data = data or prepare_data()  # complete now: only read
            mine = distributed.share([(s, m, v) for s in config.seeds for m in config.modes for v in versions], ranks)
            logger.info("rank %d of %d: %d of the study's runs", ranks.rank, ranks.world_size, len(mine))
            for seed, mode in dict.fromkeys((s, m) for s, m, _ in mine):
                run_training(
                    [v for s, m, v in mine if (s, m) == (seed, mode)], config.epochs, config.lr, data.image_dir,
                    data.caption_file, mode=mode, seed=seed, config=config, output_dir=runs_dir, resume=resume,
                    profile=profile, device=runtime.device, progress=False,
                )  # fmt: skip
            distributed.barrier()
        if ranks.rank != 0:
            return {}
        resume = True  # rank 0 collects what every rank wrote
    else:
        data = prepare_data()
    frames, timings = [], []
    for seed in config.seeds:
        for mode in config.modes:
            reused = _finished_runs(runs_dir, mode, seed, versions) if resume else 0
            t0 = time.perf_counter()
            frames.append(
                run_training(
                    versions, config.epochs, config.lr, data.image_dir, data.caption_file, mode=mode, seed=seed,
                    config=config, output_dir=runs_dir, resume=resume, profile=profile, progress=progress,
                )  # fmt: skip
            )
            timings.append(
                {"mode": mode, "seed": seed, "wall_sec": round(time.perf_counter() - t0, 1), "reused_results": reused}
            )
    runs = pd.concat(frames, ignore_index=True)
    evaluated = runs.dropna(subset=["eval_images"])
    eval_images = int(evaluated["eval_images"].iloc[0]) if len(evaluated) else config.eval_images
    eval_captions = int(evaluated["eval_captions"].iloc[0]) if len(evaluated) else None
    chance = chance_table(eval_images, config.eval_captions_per_image)
    summary = summarise(runs, chance)

    cat = sample_image("coco_39769", runtime)
    zero_shot = _zero_shot(runs_dir, runs, cat)

    out.mkdir(parents=True, exist_ok=True)
    run_columns = [
        "version", "mode", "seed", "status", "params", "trained_params", "R@1", "R@5", "R@10", "i2t_R@1", "i2t_R@5",
        "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mean_recall", "train_loss", "val_loss", "val_batch_acc",
        "sec_per_epoch", "eval_sec", "stopped",
    ]  # fmt: skip
    runs_table = runs[[c for c in run_columns if c in runs.columns]]
    atomic_write_text(out / "runs.csv", runs_table.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.4f"))
    if not zero_shot.empty:
        atomic_write_text(out / "zero_shot.csv", zero_shot.to_csv(index=False))
    title = (
        f"Cross-attention ablation ({resolve_profile(profile)}): {len(config.seeds)} seed(s), {config.epochs} epoch(s), "
        f"Recall@K on {eval_images} held-out images"
    )
    plot_recall(summary, chance, out / "recall.png", title)

    run_seconds = runs["sec_per_epoch"] * runs["train_loss"].map(len) + runs["eval_sec"]
    payload = {
        "metadata": {
            "command": command,
            "git": _git_revision(),
            "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "profile": resolve_profile(profile),
            "synthetic_data": data.synthetic,
            "data": str(data.root),
            "config": asdict(config),
            "versions": versions,
            "split_sizes": {
                "train_images": config.max_images, "eval_images": eval_images, "eval_captions": eval_captions,
            },  # fmt: skip
            "chance": chance,
            "recall_definition": "R@K = mean of image->text and text->image Recall@K; i2t/t2i columns in runs.csv",
            "learns_definition": "every seed trained without diverging and reached R@10 >= 2 x chance",
            "timings": {
                # this invocation only: a resumed study reuses finished runs and is much faster
                "total_wall_sec": round(time.perf_counter() - started, 1),
                # training + evaluation time of every run, as recorded when it ran
                "run_compute_sec": round(float(run_seconds.sum()), 1),
                "per_mode_and_seed": timings,
            },
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "device": str(runtime.device),
            "processes": ranks.world_size if ranks else 1,
        },
        "summary": json.loads(summary.to_json(orient="records")),
        "zero_shot": _zero_shot_summary(zero_shot),
        "runs": json.loads(runs_table.to_json(orient="records")),
    }
    atomic_write_text(out / "results.json", json.dumps(payload, indent=1, allow_nan=False))
    logger.info("Wrote %s (%.0f s)", out, payload["metadata"]["timings"]["total_wall_sec"])
    return payload


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dldna.chapter_10.mm.study",
        description="Run the cross-attention ablation (both modes, all versions, several seeds) and write its "
        "results. A study already in --out that covers more runs is not replaced unless --overwrite is given.",
    )
    parser.add_argument("--profile", default=None, help="smoke or full (default: $DLDNA_PROFILE, else full)")
    add_config_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation/study"), help="where tables, plot and JSON go")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/ablation"), help="checkpoints and per-run results")
    parser.add_argument("--data-dir", type=Path, default=None, help="caption data folder")
    parser.add_argument("--no-resume", action="store_true", help="retrain runs whose results exist")
    parser.add_argument("--overwrite", action="store_true", help="replace a study in --out that covers more runs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    import torch

    from dldna.runtime import resolve_profile

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    profile = resolve_profile(args.profile)
    try:
        config = config_from_arguments(PRESETS[profile], args)
    except ValueError as exc:  # every wrong setting, named, before any work
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    command = "python -m dldna.chapter_10.mm.study " + shlex.join(argv)
    run_study(
        config, profile=profile, out=args.out, runs_dir=args.runs_dir, data_dir=args.data_dir,
        resume=not args.no_resume, command=command, progress=not args.quiet, overwrite=args.overwrite,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
