#!/usr/bin/env bash
# The GPU backend's end-to-end check, on a GPU machine, with a prebuilt flexserve (no Swift there):
#  (a) SmolLM2-135M greedy tokens and logits on the GPU (fp32, fp16, bf16) vs the CPU backend;
#  (b) batch-1 decode of a LLaMA-7B-shaped fp16 model (random weights written here by torch) vs the
#      copy-bandwidth roofline, and HF transformers `generate` on the same model;
#  (c) one tree-verification step over 8/16/32/64 tokens vs one decode step.
# Prints a table; writes JSON to $RESULTS (default bench/gpu/results).
# Environment: FLEXSERVE (executable, default .gpu/flexserve), SMOL (GGUF or HF folder), LLAMA7B (folder to
# write/reuse), SKIP_7B=1 to run (a) only.
# Getting files there: a `run` call carries at most 64 MiB with the working tree (~22 MB without ssms/), so
# carry the executable xz-compressed (strip + xz: ~15 MB) and the 98 MB SmolLM2 GGUF split in ~40 MB parts over
# consecutive calls into one folder outside the repo (a warm machine keeps it), then point SMOL at the joined file.
set -euo pipefail
cd "$(dirname "$0")/.."
FLEXSERVE=${FLEXSERVE:-.gpu/flexserve}
SMOL=${SMOL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
LLAMA7B=${LLAMA7B:-/tmp/flexserve-llama7b-random}
RESULTS=${RESULTS:-bench/gpu/results}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$RESULTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/card.txt"

echo "== selftest: random small LLaMA, GPU vs CPU through batching, tree verify and KV move (cuBLAS, then the GEMV kernel)"
"$FLEXSERVE" gpu-check selftest | tee "$RESULTS/selftest.txt"
GEMV=1
FLEXSERVE_CUDA_GEMV=1 "$FLEXSERVE" gpu-check selftest > "$RESULTS/selftest-gemv.txt" || GEMV=0
cat "$RESULTS/selftest-gemv.txt"; [ $GEMV = 1 ] || echo "the GEMV kernel failed its selftest: its speed run is skipped"

echo "== (a) correctness: SmolLM2 GPU vs CPU"
"$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts bench/gpu/prompts.json --new-tokens 32 \
    --data-types fp32,fp16,bf16 --output "$RESULTS/correctness.json"

if [ "${SKIP_7B:-0}" != 1 ]; then
    echo "== (b) LLaMA-7B shape: write random fp16 weights, time HF transformers"
    python3 bench/gpu/make_llama7b.py "$LLAMA7B" "$RESULTS/hf.json" 128 128
    echo "== (b, c) FlexServe decode and verify"
    "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --prompt-tokens 128 --decode-steps 128 \
        --tree-sizes 1,8,16,32,64 --output "$RESULTS/speed.json"
    [ $GEMV = 1 ] && echo "== (b, c) again with the opt-in weight-streaming GEMV for steps of <= 8 tokens" &&
    FLEXSERVE_CUDA_GEMV=1 "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --prompt-tokens 128 \
        --decode-steps 128 --tree-sizes 1,8,16,32,64 --output "$RESULTS/speed-gemv.json"
fi
python3 bench/gpu/report.py "$RESULTS"
