"""The naive-vs-fast benchmark runs both paths in one process and reports both throughputs."""

import json
import subprocess
from pathlib import Path

import pytest

from dldna.chapter_10 import benchmark
from dldna.data.shapes import generate_dataset
from dldna.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("bench") / "shapes", 24, seed=0, image_size=48)


def test_benchmark_reports_both_paths_and_their_ratio(data_dir, tmp_path, caplog):
    out = tmp_path / "result.json"
    args = ["--profile", "smoke", "--device", "cpu", "--data-dir", str(data_dir), "--steps", "2", "--batch-size",
            "4", "--warmup", "1", "--workers", "0", "--image-size", "32", "--json", str(out)]  # fmt: skip
    with caplog.at_level("INFO", logger="dldna.chapter_10.benchmark"):
        result = benchmark.main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    naive, fast = result["naive"], result["fast"]
    assert naive["pairs"] == fast["pairs"] == 8 and naive["steps"] == fast["steps"] == 2
    assert naive["pairs_per_s"] > 0 and fast["pairs_per_s"] > 0
    assert result["speedup"] == pytest.approx(fast["pairs_per_s"] / naive["pairs_per_s"])
    assert not naive["mixed_precision"] and not fast["mixed_precision"]  # bf16 only on CUDA
    assert naive["peak_memory_mb"] is None and result["device"] == "cpu"
    assert result["image_size"] == 32 and result["train_images"] >= 4
    text = caplog.text
    assert "naive" in text and "fast" in text and "speed-up" in text


def test_bad_settings_are_refused(data_dir):
    with pytest.raises(ValueError, match="batch_size"):
        benchmark.run_benchmark(Runtime(profile="smoke"), steps=1, batch_size=1, data_dir=data_dir)
    with pytest.raises(ValueError, match="fewer than one batch"):
        benchmark.run_benchmark(Runtime(profile="smoke"), steps=1, batch_size=64, data_dir=data_dir, workers=0)


def test_gpu_check_script_is_valid_bash_and_times_the_ablation():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    text = SCRIPT.read_text()
    assert "ablation_timing" in text and 'mode="tokens"' in text
    assert "--cpu-small" in text and "DLDNA_OFFLINE=1" in text
    help_text = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--cpu-small" in help_text
