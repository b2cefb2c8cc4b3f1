#!/usr/bin/env bash
# One GPU lease, several training runs side by side: the EDSR upscalers and the Gaussian
# denoisers, each warm-started from its bundled file, each stopped by --minutes and exported
# (best validated, moving average of the weights) into $OUT with one combined, prefixed log.
# The small networks leave an H200 mostly idle one at a time, so they share it.
#
#   MINUTES=7 bash tools/device_train.sh        # on the device machine, from the repo root
#
# It expects the wheels the device image lacks in .whl/ and the training photos in .data/CBSD400
# (both git-ignored, carried); DEVICE=cpu MINUTES=0.3 runs the same thing here as a dry run.
# The working tree travels with them, 64 MiB in all: the tree is about 61 MB with every bundled
# file, so the files no run here starts from (mdsr, mnist-*, n2n-mc*, n2n-lowlight, n2n-photo*,
# the example pictures) are moved out of the checkout for the call and back after it.
set -u
OUT=${OUT:-runs/device}
MINUTES=${MINUTES:-7}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.data/CBSD400}
mkdir -p "$OUT" /tmp/device-runs
if [ "$DEVICE" = cuda ] && ls .whl/*.whl >/dev/null 2>&1; then  # the device image is Python 3.12
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
PYTHON=${PYTHON:-python3}
$PYTHON -c "import torch, restore.cli; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee "$OUT/train.log" || exit 1

run() {  # NAME ARGS...: one run in the background, its lines prefixed with its name
  local name=$1
  shift
  OMP_NUM_THREADS=2 $PYTHON -u -m restore train "$DATA" -o "$OUT/$name.safetensors" --name "$name" \
    --device "$DEVICE" --minutes "$MINUTES" --steps 1000000 --ema 0.999 --keep best \
    --run-dir "/tmp/device-runs/$name" "$@" 2>&1 | sed -u "s/^/[$name] /" >>"$OUT/train.log" &
}
SR=(--task upscale --loss l1 --lr 2e-4 --lr-warmup 200 --lr-halve-every 8000 --batch 16 --patch 48 --val-every 1000)
run edsr-x2 --init models/edsr-x2.safetensors --scale 2 --seed 11 "${SR[@]}"
run edsr-x3 --init models/edsr-x3.safetensors --scale 3 --seed 12 "${SR[@]}"
run edsr-x4 --init models/edsr-x4.safetensors --scale 4 --seed 13 "${SR[@]}"
# MDSR afresh from edsr-x2 (its x2 starts as edsr-x2's), so that its own file need not travel.
run mdsr --init models/edsr-x2.safetensors --arch mdsr_baseline --seed 16 "${SR[@]}"
DENOISE=(--noise gaussian:0-50 --lr 1e-4 --lr-warmup 200 --lr-halve-every 8000 --batch 16 --patch 64 --val-every 1000)
run n2n-gaussian --init models/n2n-gaussian.safetensors --seed 14 "${DENOISE[@]}"
run n2n-gray --init models/n2n-gray.safetensors --seed 15 "${DENOISE[@]}"
wait
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv >>"$OUT/train.log" 2>&1 || true
grep -E "validation|steps|error|Error" "$OUT/train.log" | tail -n 60
