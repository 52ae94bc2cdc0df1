#!/usr/bin/env bash
# GPU throughput check for chapter 10 (self-contained, no network).
#
# Full size (default when CUDA is available): ResNet-18 + BERT-base with random weights
# (DLDNA_PROFILE=full DLDNA_OFFLINE=1) on synthetic captioned shapes at Flickr8k scale
# (8,091 images, generated here), trained with the naive per-item pipeline (fp32) and the
# fast cached one (bf16 autocast, channels-last, fused AdamW) side by side. Prints pairs/s,
# the ratio, peak GPU memory and the GPU name; then times one epoch of the token-mode
# cross-attention ablation for three versions and projects the 17-version x 5-epoch study.
# Budget: under 8 minutes on one H100.
#
# Small CPU run (CI, automatic when there is no CUDA): tiny smoke models, 48 images,
# 32-px images, a few steps; under a minute.
#
# Usage:
#   scripts/gpu_check.sh               # full on CUDA, else small CPU run
#   scripts/gpu_check.sh --cpu-small   # force the small CPU run
#   scripts/gpu_check.sh --full        # force the full-size run (on CUDA, or slowly on CPU)
# Environment:
#   OUT            folder for gpu_check.json (default: the work folder)
#   PYTHON         interpreter (default: .venv/bin/python if present, else python3)
#   GPU_CHECK_DIR  work folder for the synthetic data (default: a new temporary folder)
#   STEPS, BATCH   timed steps per path and batch size (defaults: full 150/32, small 4/8)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

MODE=auto
for arg in "$@"; do
  case "$arg" in
    --cpu-small) MODE=cpu-small ;;
    --full) MODE=full ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (expected --cpu-small, --full or --help)" >&2; exit 2 ;;
  esac
done

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# Offline by construction: random weights, synthetic data, no Hub look-ups.
export DLDNA_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg PYTHONHASHSEED=0

if [[ "$MODE" == auto ]]; then
  if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    MODE=full
  else
    MODE=cpu-small
  fi
fi

WORK="${GPU_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/dldna-gpu-check.XXXXXX")}"
RESULTS="${OUT:-$WORK}"
mkdir -p "$WORK" "$RESULTS"
JSON="$RESULTS/gpu_check.json"
START=$SECONDS

if [[ "$MODE" == full ]]; then
  export DLDNA_PROFILE=full
  DATA_DIR="$WORK/shapes-full"
  BENCH_ARGS=(--profile full --images 8091 --source-size 384 --steps "${STEPS:-150}" --batch-size "${BATCH:-32}")
  DEVICE_ARGS=()
else
  export DLDNA_PROFILE=smoke
  DATA_DIR="$WORK/shapes-small"
  BENCH_ARGS=(--profile smoke --images 48 --image-size 32 --steps "${STEPS:-4}" --batch-size "${BATCH:-8}"
              --warmup 1 --workers 1)
  DEVICE_ARGS=(--device cpu)
fi

echo "== dldna chapter 10 GPU check: mode=$MODE, python=$PYTHON, work folder=$WORK"
"$PYTHON" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}")
EOF

benchmark() {
  # Dual encoder: naive vs fast input pipeline, one process; data is generated on first use.
  echo "== benchmark (data generation included the first time)"
  "$PYTHON" -m dldna.chapter_10.benchmark "${BENCH_ARGS[@]}" "${DEVICE_ARGS[@]}" \
    --data-dir "$DATA_DIR" --json "$JSON"
}

ablation_timing() {
  # One epoch of the token-mode ablation (image patch tokens x word tokens, pairwise fused
  # scores) for three versions on the same data, end to end (towers train too); the
  # projection multiplies the mean epoch time by 17 versions x 5 epochs.
  echo "== ablation timing (token mode, v0 / v9 / v11, one epoch each)"
  "$PYTHON" - "$MODE" "$DATA_DIR" "$WORK/ablation" "$JSON" <<'EOF'
import json, os, sys, time

from dldna.chapter_10.mm.cross_attention import VERSIONS
from dldna.chapter_10.mm.train_multimodal import run_training

mode, data_dir, out_dir, json_path = sys.argv[1:5]
sizes = (
    dict(profile="full", dim=256, num_heads=8, batch_size=32, image_size=224, eval_images=500)
    if mode == "full"
    else dict(profile="smoke", dim=32, num_heads=4, batch_size=8, image_size=32, max_images=32, eval_images=8)
)
start = time.time()
frame = run_training(
    ["v0", "v9", "v11"], epochs=1, lr=1e-4, image_dir=os.path.join(data_dir, "Images"),
    caption_file=os.path.join(data_dir, "captions.txt"), mode="tokens", output_dir=out_dir, resume=False,
    progress=False, **sizes,
)
per_epoch = {row.version: round(float(row.sec_per_epoch), 2) for row in frame.itertuples()}
# The settings fit trained with (CUDA: bf16 or fp16 autocast, channels-last, fused AdamW),
# as each version's result file records them.
run_dir = os.path.join(out_dir, "tokens", "seed0")
speedups = {v: json.load(open(os.path.join(run_dir, f"result_{v}.json")))["speedups"] for v in per_epoch}
eval_sec = float(frame["eval_sec"].mean())
mean_epoch = sum(per_epoch.values()) / len(per_epoch)
projected = len(VERSIONS) * (5 * mean_epoch + eval_sec)
timing = dict(sizes=sizes, sec_per_epoch=per_epoch, speedups=speedups, eval_sec=round(eval_sec, 2),
              wall_sec=round(time.time() - start, 1), projected_17x5_sec=round(projected, 1))
with open(json_path) as f:
    result = json.load(f)
result["ablation_tokens"] = timing
with open(json_path + ".tmp", "w") as f:
    json.dump(result, f, indent=2)
os.replace(json_path + ".tmp", json_path)
print(f"== ablation: {per_epoch} s/epoch with {speedups['v0']}; "
      f"projected 17 versions x 5 epochs: {projected / 60:.1f} min")
EOF
}

record_run() {
  # Add the mode and the script's wall time to the JSON written by the benchmark.
  "$PYTHON" - "$JSON" "$MODE" "$((SECONDS - START))" <<'EOF'
import json, os, sys
path, mode, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path) as f:
    result = json.load(f)
result.update(check_mode=mode, check_seconds=seconds)
with open(path + ".tmp", "w") as f:
    json.dump(result, f, indent=2)
os.replace(path + ".tmp", path)
naive, fast = result["naive"], result["fast"]
print(f"== result: naive {naive['pairs_per_s']:.1f} pairs/s, fast {fast['pairs_per_s']:.1f} pairs/s, "
      f"speed-up {result['speedup']:.2f}x on {result['device_name']}")
EOF
}

benchmark
ablation_timing
record_run
echo "== done in $((SECONDS - START)) s; results in $JSON"
