"""The study spread over processes started by torchrun (two CPU processes, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dldna.chapter_10.mm import distributed

ROOT = Path(__file__).resolve().parents[1]


def test_ranks_from_the_torchrun_environment():
    assert distributed.from_environment({}) is None
    assert distributed.from_environment({"WORLD_SIZE": "1", "RANK": "0"}) is None
    ranks = distributed.from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "2"})
    assert ranks == distributed.Ranks(rank=2, world_size=4, local_rank=2)
    with pytest.raises(ValueError, match="RANK=5 is outside 0..3"):
        distributed.from_environment({"WORLD_SIZE": "4", "RANK": "5"})


def test_every_run_has_exactly_one_owner():
    items = [(s, m, v) for s in (0, 1, 2) for m in ("faithful", "tokens") for v in ("v0", "v3", "v9")]
    shares = [distributed.share(items, distributed.Ranks(r, 4, r)) for r in range(4)]
    assert sorted(x for share in shares for x in share) == sorted(items)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert distributed.share(items, None) == items


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_writes_one_complete_study(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [
        "--profile", "smoke", "--seeds", "0", "1", "--versions", "v0", "v5", "v9", "--epochs", "1",
        "--images", "40", "--train-images", "30", "--eval-images", "4", "--pretrain-epochs", "1",
        "--image-size", "32", "--dim", "16", "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
        "--data-dir", str(tmp_path / "data"), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "DLDNA_PROFILE": "smoke"}
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "dldna.chapter_10.mm.study", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 of 2: 6 of the study's runs" in done.stderr
    assert "rank 1 of 2: 6 of the study's runs" in done.stderr
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 2 * 2 * 3 and set(runs["status"]) == {"ok"}
    assert len(list((tmp_path / "runs").rglob("result_*.json"))) == 12
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["recall.png", "results.json", "runs.csv", "summary.csv", "zero_shot.csv"]
    )
