#!/usr/bin/env bash
# One GPU run (<= 5 min on an H200, prebuilt .gpu/flexserve.xz only) for the split attention (FLEXSERVE_CUDA_ATTENTION=3)
# and the wide RMSNorm/RoPE kernels (FLEXSERVE_CUDA_NORM_ROPE=2):
#  1. selftests against the CPU, each also checking that a token alone gets bit-identical logits to the same token in a
#     2-token step (with the GEMV): attn3 with the default chunking (one chunk for the selftest's short lists) and with
#     4-slot chunks (several chunks and the combine), with graphs, with cuBLAS, and the old kernels with the GEMV (the same invariance check);
#  2. the 7B decode profile (bench/gpu_profile.sh, GEMV variant w8) with attention 3 + norm/rope 2 (compare with
#     bench/gpu/results/profile/profile.log, attention 2, same variant);
#  3. the 7B decode speed and verify-step costs with GEMV (<= 64 tokens) + graphs + attention 3 + norm/rope 2.
# Results in $RESULTS (default bench/gpu/results/attn3).
set -uo pipefail
cd "$(dirname "$0")/.."
FLEXSERVE=${FLEXSERVE:-.gpu/flexserve}
LLAMA7B=${LLAMA7B:-/tmp/flexserve-llama7b-random}
RESULTS=${RESULTS:-bench/gpu/results/attn3}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$RESULTS"
if [ ! -x "$FLEXSERVE" ] && [ -f "$FLEXSERVE.xz" ]; then
    echo "unpacking $FLEXSERVE.xz"
    { xz -dc "$FLEXSERVE.xz" || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
        "$FLEXSERVE.xz"; } > "$FLEXSERVE" && chmod +x "$FLEXSERVE"
fi
[ -x "$FLEXSERVE" ] || { echo "no executable at $FLEXSERVE (nor $FLEXSERVE.xz)"; exit 1; }
start=$SECONDS
for v in gemv+graphs+attn3+nr2 gemv+graphs+attn3+chunk4+nr2 cublas+attn3+chunk4 gemv; do
    echo "== selftest $v"
    timeout -k 5 60 "$FLEXSERVE" gpu-check selftest --variant "$v" 2>&1 | tee "$RESULTS/selftest-$v.log"
    echo "selftest $v exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
done
echo "== profile (attention 3 + norm/rope 2, GEMV w8)"
FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2 VARIANTS=${VARIANTS:-w8} RESULTS="$RESULTS" FLEXSERVE="$FLEXSERVE" \
    LLAMA7B="$LLAMA7B" bash bench/gpu_profile.sh
echo "== 7B speed (GEMV <= 64 tokens + graphs + attention 3 + norm/rope 2) after $((SECONDS - start)) s"
FLEXSERVE_CUDA_GEMV=1 FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64 FLEXSERVE_CUDA_GRAPHS=1 FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2 \
    FLEXSERVE_CUDA_GEMV_VARIANT=${SPEED_VARIANT:-w8} timeout -k 10 150 "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 \
    --prompt-tokens 128 --decode-steps 128 --tree-sizes 1,8,16,32,64 --output "$RESULTS/speed-attn3.json" 2>&1 | tee "$RESULTS/speed-attn3.log"
echo "speed exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
