#!/usr/bin/env bash
# The GPU backend's end-to-end check, on a GPU machine, with a prebuilt flexserve (no Swift there). One run does:
# Executions (each step clears inherited FLEXSERVE_CUDA_GEMV*/GRAPH*/ATTENTION*/NORM_ROPE variables first):
#   default  no variable: the built-in default since 2026-12-02, GEMV (launch variant w4) for steps of <= 8 tokens +
#            CUDA graphs + split attention (3) + wide norm/RoPE kernels (2);
#   cublas   $CUBLAS, the default before: cuBLAS, no graphs, attention 1, norm/RoPE 1; gemv, graphs, gemv-graphs:
#            cublas with only those parts on (GEMV variant w4);
#   all      the fastest batch-1 setting measured: the default with GEMV variant w8 (FLEXSERVE_CUDA_GEMV_VARIANT=w8).
#  selftest  random small LLaMA, GPU vs CPU through batching, tree verify, KV move and repeated decodes, for each
#            execution (default, cublas, gemv, graphs, gemv+graphs, all; int8/int4 with the default's parts; offload
#            with the default's parts and with cublas);
#  (a) correctness  SmolLM2-135M greedy tokens and logits on the GPU vs the CPU: fp32/fp16/bf16 with the default and
#            with cublas, fp16 with graphs (cuBLAS, then GEMV), fp32/fp16 with all;
#  (d) SmolLM2 batch-1 decode steps/s per execution (a small model is launch-bound: what graphs are for);
#  (e) speculative inference, LLM and SSM both on the GPU, vs incremental decoding: tokens/s, tokens per LLM step,
#            greedy mismatches (must be 0), per tree shape, with the default, cuBLAS and all with the GEMV for <= 64 tokens;
#  (b) batch-1 decode of a LLaMA-7B-shaped fp16 model (random weights written here by torch) vs the copy-bandwidth
#            roofline, and HF transformers `generate` on the same model, per execution;
#  (c) one tree-verification step over 8/16/32/64 tokens vs one decode step (inside (b));
#  (f) int8/int4 weights (FlexFlow-style groups of 32): selftests, SmolLM2 vs the CPU with the same quantization, 7B decode
#            vs the roofline of the bytes they read; `--offload` (fp16 7B streamed from pinned host memory) vs the
#            host-to-device bandwidth measured in the same run; top-k/top-p sampling on the GPU vs the CPU Sampler (chi-square).
# A failing step is recorded and the script goes on; checks whose prerequisite failed are skipped. Prints a table
# last; writes every JSON and log to $RESULTS (default bench/gpu/results), the summary to $RESULTS/gpu_check.json.
# Environment: FLEXSERVE (executable, default .gpu/flexserve, unpacked from .gpu/flexserve.xz when missing),
# SMOL (GGUF or HF folder), SSM (draft model folder, default ssms/smollm2-draft-a), LLAMA7B (folder to write/reuse),
# SKIP_7B=1 to leave out (b)/(c), PARTS (comma-separated subset of selftest,correctness,smol,spec,sampler,7b; default all: to split
# the run over calls; without selftest every execution is assumed to pass it), SPEC_PROMPTS (default 8),
# STEP_TIMEOUT seconds per step (default 240).
set -uo pipefail
cd "$(dirname "$0")/.."
FLEXSERVE=${FLEXSERVE:-.gpu/flexserve}
SMOL=${SMOL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SSM=${SSM:-ssms/smollm2-draft-a}
LLAMA7B=${LLAMA7B:-/tmp/flexserve-llama7b-random}
RESULTS=${RESULTS:-bench/gpu/results}
SPEC_PROMPTS=${SPEC_PROMPTS:-8}
STEP_TIMEOUT=${STEP_TIMEOUT:-240}
PARTS=${PARTS:-selftest,correctness,smol,spec,sampler,7b}
want() { [[ ",$PARTS," == *",$1,"* ]]; }
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$RESULTS"
source bench/gpu/unpack.sh
# A stale file from an earlier run must not pass for this run's result (a partial run, PARTS=..., adds to the folder).
[ "$PARTS" = selftest,correctness,smol,spec,sampler,7b ] && rm -f "$RESULTS"/*.json "$RESULTS"/*.log "$RESULTS"/status.tsv
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/card.txt"
STATUS=$RESULTS/status.tsv
touch "$STATUS"

# step NAME [VAR=value ...] COMMAND...: runs it with a time limit, output to the terminal and $RESULTS/NAME.log,
# and records "NAME rc seconds" in $STATUS. Returns the command's status.
step() {
    local name=$1; shift
    echo; echo "== $name"
    local start=$SECONDS
    timeout -k 10 "$STEP_TIMEOUT" env $(env | grep -oE '^FLEXSERVE_CUDA_(GEMV|GRAPH|ATTENTION|NORM_ROPE)[A-Z0-9_]*' | sed 's/^/-u /') \
        "$@" 2>&1 | tee "$RESULTS/$name.log"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$STATUS"
    [ "$rc" = 0 ] || echo "!! $name failed (exit $rc); going on"
    return "$rc"
}
skip() { printf '%s\tskipped\t0\n' "$1" >> "$STATUS"; echo; echo "== $1: skipped ($2)"; }

# The executions (see the top). "all" is the fastest batch-1 setting measured (bench/gpu/results/default-candidates):
# the default with eight warps per GEMV row (fp16 15/16 prompts identical to the CPU, so not the default).
CUBLAS="FLEXSERVE_CUDA_GEMV=0 FLEXSERVE_CUDA_GRAPHS=0 FLEXSERVE_CUDA_ATTENTION=1 FLEXSERVE_CUDA_NORM_ROPE=1"
GEMV_ENV="$CUBLAS FLEXSERVE_CUDA_GEMV=1"
GRAPH_ENV="$CUBLAS FLEXSERVE_CUDA_GRAPHS=1"
GEMV_GRAPH_ENV="$CUBLAS FLEXSERVE_CUDA_GEMV=1 FLEXSERVE_CUDA_GRAPHS=1"
ALL_ENV="FLEXSERVE_CUDA_GEMV_VARIANT=w8"
if want selftest; then
    ok_default=0; ok_cublas=0; ok_gemv=0; ok_graphs=0; ok_both=0; ok_all=0
    step selftest-default "$FLEXSERVE" gpu-check selftest && ok_default=1
    step selftest-cublas "$FLEXSERVE" gpu-check selftest --variant cublas && ok_cublas=1
    step selftest-gemv "$FLEXSERVE" gpu-check selftest --variant gemv && ok_gemv=1
    step selftest-graphs "$FLEXSERVE" gpu-check selftest --variant graphs && ok_graphs=1
    step selftest-gemv-graphs "$FLEXSERVE" gpu-check selftest --variant gemv+graphs && ok_both=1
    step selftest-all $ALL_ENV "$FLEXSERVE" gpu-check selftest && ok_all=1
    ok_quant=1; ok_offload=1
    step selftest-int8 "$FLEXSERVE" gpu-check selftest --variant gemv+graphs+attn3+nr2+int8 || ok_quant=0
    step selftest-int4 "$FLEXSERVE" gpu-check selftest --variant gemv+graphs+attn3+nr2+int4 || ok_quant=0
    step selftest-offload "$FLEXSERVE" gpu-check selftest --variant gemv+graphs+attn3+nr2+offload || ok_offload=0
    step selftest-offload-cublas "$FLEXSERVE" gpu-check selftest --variant offload || ok_offload=0
else
    ok_default=1; ok_cublas=1; ok_gemv=1; ok_graphs=1; ok_both=1; ok_all=1; ok_quant=1; ok_offload=1
fi

if want correctness; then
echo; echo "== (a) correctness: SmolLM2 GPU vs CPU"
step correctness "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts bench/gpu/prompts.json --new-tokens 32 \
    --data-types fp32,fp16,bf16 --output "$RESULTS/correctness.json"
step correctness-cublas $CUBLAS "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts bench/gpu/prompts.json --new-tokens 32 \
    --data-types fp32,fp16,bf16 --output "$RESULTS/correctness-cublas.json"
if [ $ok_graphs = 1 ]; then
    step correctness-graphs $GRAPH_ENV "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts bench/gpu/prompts.json \
        --new-tokens 32 --data-types fp16 --output "$RESULTS/correctness-graphs.json"
else skip correctness-graphs "graphs selftest failed"; fi
if [ $ok_both = 1 ]; then
    step correctness-gemv-graphs $GEMV_GRAPH_ENV "$FLEXSERVE" gpu-check correctness --model "$SMOL" \
        --prompts bench/gpu/prompts.json --new-tokens 32 --data-types fp16 --output "$RESULTS/correctness-gemv-graphs.json"
else skip correctness-gemv-graphs "gemv+graphs selftest failed"; fi
if [ $ok_all = 1 ]; then
    step correctness-all $ALL_ENV "$FLEXSERVE" gpu-check correctness --model "$SMOL" \
        --prompts bench/gpu/prompts.json --new-tokens 32 --data-types fp32,fp16 --output "$RESULTS/correctness-all.json"
else skip correctness-all "the selftest with GEMV variant w8 failed"; fi
if [ $ok_quant = 1 ]; then
    # The CPU runs the same int8/int4 matrices (fp32 activations); the GPU keeps them packed.
    for f in int8 int4; do
        step correctness-$f "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts bench/gpu/prompts.json --new-tokens 32 \
            --data-types fp32,fp16 --weight-format $f --output "$RESULTS/correctness-$f.json"
    done
else skip correctness-int8 "quantized selftests failed"; fi
fi

if want sampler; then
    echo; echo "== (f) top-k/top-p sampling on the GPU vs the CPU Sampler"
    step sampler "$FLEXSERVE" gpu-check sampler --draws 200000 --output "$RESULTS/sampler.json"
fi

if want smol; then
echo; echo "== (d) SmolLM2 batch-1 decode per execution"
smol_speed() {  # NAME OK ENV...
    local name=$1 ok=$2; shift 2
    if [ "$ok" = 1 ]; then
        step "$name" "$@" "$FLEXSERVE" gpu-check speed --model "$SMOL" --data-type fp16 --prompt-tokens 128 --decode-steps 256 \
            --tree-sizes 1,4,8,16 --output "$RESULTS/$name.json"
    else skip "$name" "its selftest failed"; fi
}
smol_speed smol-speed-default $ok_default
smol_speed smol-speed-cublas $ok_cublas $CUBLAS
smol_speed smol-speed-gemv $ok_gemv $GEMV_ENV
smol_speed smol-speed-graphs $ok_graphs $GRAPH_ENV
smol_speed smol-speed-gemv-graphs $ok_both $GEMV_GRAPH_ENV
smol_speed smol-speed-all $ok_all $ALL_ENV
fi

if want spec; then
echo; echo "== (e) speculative inference on the GPU: SmolLM2 + $SSM vs incremental decoding"
if [ -e "$SSM" ]; then  # an HF folder, or a GGUF-only draft folder
    step spec-default "$FLEXSERVE" gpu-check speculative --model "$SMOL" --ssm-model "$SSM" --prompts bench/gpu/prompts.json \
        --num-prompts "$SPEC_PROMPTS" --max-new-tokens 128 --trees chain4,chain8,flexflow8 --output "$RESULTS/spec-default.json"
    step spec-cublas $CUBLAS "$FLEXSERVE" gpu-check speculative --model "$SMOL" --ssm-model "$SSM" --prompts bench/gpu/prompts.json \
        --num-prompts "$SPEC_PROMPTS" --max-new-tokens 128 --trees chain4,chain8,flexflow8 --output "$RESULTS/spec-cublas.json"
    # GEMV for every step up to 64 tokens: one token's result does not depend on the step's size, so verification
    # reproduces incremental decoding exactly; graphs for the launch-bound small models.
    if [ $ok_all = 1 ]; then
        step spec-all $ALL_ENV FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64 "$FLEXSERVE" gpu-check speculative \
            --model "$SMOL" --ssm-model "$SSM" --prompts bench/gpu/prompts.json --num-prompts "$SPEC_PROMPTS" --max-new-tokens 128 \
            --trees chain4,chain8,flexflow8 --output "$RESULTS/spec-all.json"
    elif [ $ok_both = 1 ]; then
        step spec-gemv-graphs $GEMV_GRAPH_ENV FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64 "$FLEXSERVE" gpu-check speculative \
            --model "$SMOL" --ssm-model "$SSM" --prompts bench/gpu/prompts.json --num-prompts "$SPEC_PROMPTS" --max-new-tokens 128 \
            --trees chain4,chain8,flexflow8 --output "$RESULTS/spec-gemv-graphs.json"
    elif [ $ok_gemv = 1 ]; then
        step spec-gemv $GEMV_ENV FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64 "$FLEXSERVE" gpu-check speculative \
            --model "$SMOL" --ssm-model "$SSM" --prompts bench/gpu/prompts.json --num-prompts "$SPEC_PROMPTS" --max-new-tokens 128 \
            --trees chain4,chain8,flexflow8 --output "$RESULTS/spec-gemv.json"
    else skip spec-gemv-graphs "gemv selftests failed"; fi
else skip spec-cublas "no SSM folder at $SSM (set SSM=)"; fi
fi

if [ "${SKIP_7B:-0}" != 1 ] && want 7b; then
    echo; echo "== (b) LLaMA-7B shape: write random fp16 weights, time HF transformers"
    step make-llama7b python3 bench/gpu/make_llama7b.py "$LLAMA7B" "$RESULTS/hf.json" 128 128
    if [ -f "$LLAMA7B/config.json" ]; then
        big_speed() {  # NAME OK ENV...
            local name=$1 ok=$2; shift 2
            if [ "$ok" = 1 ]; then
                step "$name" "$@" "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --prompt-tokens 128 \
                    --decode-steps 128 --tree-sizes 1,8,16,32,64 --output "$RESULTS/$name.json"
            else skip "$name" "its selftest failed"; fi
        }
        big_speed speed $ok_default
        big_speed speed-cublas $ok_cublas $CUBLAS
        big_speed speed-gemv $ok_gemv $GEMV_ENV
        big_speed speed-gemv-graphs $ok_both $GEMV_GRAPH_ENV
        big_speed speed-all $ok_all $ALL_ENV
        for f in int8 int4; do
            if [ $ok_quant = 1 ]; then
                step speed-$f "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 \
                    --weight-format $f --prompt-tokens 128 --decode-steps 128 --tree-sizes 1,8,16,64 --output "$RESULTS/speed-$f.json"
            else skip speed-$f "quantized selftests failed"; fi
        done
        if [ $ok_offload = 1 ]; then
            step speed-offload "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --offload \
                --prompt-tokens 128 --decode-steps 16 --tree-sizes 1 --output "$RESULTS/speed-offload.json"
        else skip speed-offload "offload selftest failed"; fi
    else skip speed "no model at $LLAMA7B"; fi
fi
python3 bench/gpu/report.py "$RESULTS"
