#!/usr/bin/env bash
# Where a LLaMA-7B-shaped batch-1 decode step's time goes, on a GPU machine with the prebuilt flexserve (no Swift
# there): writes the random fp16 7B model with torch (bench/gpu/make_llama7b.py, HF timing skipped), then
# `flexserve gpu-check profile`, which measures with CUDA events:
#  (a) each weight product alone for the real shapes (qkv 12288x4096, o 4096x4096, gate/up 22016x4096,
#      down 4096x11008, lm-head 32000x4096), every call on another layer's matrix, through cuBLAS and each GEMV
#      launch configuration (default, u8, w2, w4, w8; FLEXSERVE_CUDA_GEMV_VARIANT picks one in the engine);
#  (b) one decode step split by kernel category, GPU-only (queued behind a spin kernel) and as launched;
#  (c) wall time per step (eager and with CUDA graphs) minus the GPU-only time: host overhead.
# Then (ATTN1=1, default) the step again with the first attention kernel and the default GEMV only.
# Then (ATTN3=1, default) the step again with the split attention and the wide norm/rope kernels
# (FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2), GEMV variants $ATTN3_VARIANTS (default w8): profile-attn3.json.
# With FLEXSERVE_CUDA_ATTENTION=3 given, the main profile is already that one and only it runs.
# Prints the tables; writes $RESULTS/profile.json, profile-attn1.json and logs (default bench/gpu/results/profile).
# Environment: FLEXSERVE (default .gpu/flexserve, unpacked from .gpu/flexserve.xz), LLAMA7B (model folder to
# write/reuse), CONTEXT (default 256), VARIANTS (default all), FLEXSERVE_CUDA_ATTENTION (default 2 here).
set -uo pipefail
cd "$(dirname "$0")/.."
FLEXSERVE=${FLEXSERVE:-.gpu/flexserve}
LLAMA7B=${LLAMA7B:-/tmp/flexserve-llama7b-random}
RESULTS=${RESULTS:-bench/gpu/results/profile}
CONTEXT=${CONTEXT:-256}
VARIANTS=${VARIANTS:-all}
export FLEXSERVE_CUDA_ATTENTION=${FLEXSERVE_CUDA_ATTENTION:-2}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$RESULTS"
source bench/gpu/unpack.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/card.txt"
start=$SECONDS
if [ ! -f "$LLAMA7B/config.json" ]; then
    timeout -k 10 200 python3 bench/gpu/make_llama7b.py "$LLAMA7B" /dev/null 128 0 || { echo "writing the 7B model failed"; exit 1; }
fi
echo "model ready after $((SECONDS - start)) s"
timeout -k 10 240 "$FLEXSERVE" gpu-check profile --model "$LLAMA7B" --data-type fp16 --context "$CONTEXT" \
    --variants "$VARIANTS" --output "$RESULTS/profile.json" 2>&1 | tee "$RESULTS/profile.log"
rc=${PIPESTATUS[0]}
echo "profile exit $rc after $((SECONDS - start)) s"
# The same step with the first attention kernel (default GEMV only): what attention2 changes, category by category.
if [ "${ATTN1:-1}" = 1 ] && [ "$FLEXSERVE_CUDA_ATTENTION" = 2 ]; then
    FLEXSERVE_CUDA_ATTENTION=1 timeout -k 10 120 "$FLEXSERVE" gpu-check profile --model "$LLAMA7B" --data-type fp16 \
        --context "$CONTEXT" --variants default --output "$RESULTS/profile-attn1.json" 2>&1 | tee "$RESULTS/profile-attn1.log"
    echo "attention-1 profile exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
fi
if [ "${ATTN3:-1}" = 1 ] && [ "$FLEXSERVE_CUDA_ATTENTION" != 3 ]; then
    FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2 timeout -k 10 120 "$FLEXSERVE" gpu-check profile --model "$LLAMA7B" \
        --data-type fp16 --context "$CONTEXT" --variants "${ATTN3_VARIANTS:-w8}" --output "$RESULTS/profile-attn3.json" 2>&1 \
        | tee "$RESULTS/profile-attn3.log"
    echo "attention-3 + norm/rope-2 profile exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
fi
exit "$rc"
