#!/usr/bin/env bash
# GPU half-precision numerics against the CPU emulating the GPU's storage (`gpu-check correctness --cpu-reference
# fp32,storage`), default and fastest dense execution; then LLaMA-7B-shape fp16 decode, default and fastest. Phases (the
# SmolLM2 GGUF, 98 MB, reaches a warm machine in three carried parts between calls; a call carries 64 MiB):
#   PHASE=start  unpacks the executable ($FLEXSERVE.xz) to /tmp; starts writing the random LLaMA-7B-shaped model (setsid)
#   PHASE=part   copies the carried part(s) (PARTS_FROM) to /tmp/smol-parts
#   PHASE=smol   joins the parts, runs the correctness checks, then the 7B speeds
# Logs and JSON go to $OUT (the device tool's return folder) and /tmp/bf16check (kept while the machine is warm).
set -uo pipefail
FLEXSERVE=${FLEXSERVE:-.gpu/flexserve-bf16}
OUT=${OUT:-/tmp/bf16check-out}
KEEP=/tmp/bf16check
LLAMA7B=${LLAMA7B:-/tmp/flexserve-llama7b-random}
SMOL=/tmp/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$OUT" "$KEEP"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# "default" = the built-in default: cuBLAS when this ran (results/bf16-storage, 2026-12-01/02); since 2026-12-02 GEMV w4 +
# graphs + attention 3 + norm/RoPE 2 (cuBLAS: FLEXSERVE_CUDA_GEMV=0 FLEXSERVE_CUDA_GRAPHS=0 FLEXSERVE_CUDA_ATTENTION=1 FLEXSERVE_CUDA_NORM_ROPE=1).
FAST="FLEXSERVE_CUDA_GEMV=1 FLEXSERVE_CUDA_GEMV_VARIANT=w8 FLEXSERVE_CUDA_GRAPHS=1 FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2"

step() {  # NAME [VAR=value ...] COMMAND...: runs with a time limit; log to $KEEP/NAME.log
    local name=$1; shift
    echo; echo "== $name"
    local start=$SECONDS
    timeout -k 10 "${STEP_TIMEOUT:-240}" env "$@" 2>&1 | tee "$KEEP/$name.log"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$KEEP/status.tsv"
    [ "$rc" = 0 ] || echo "!! $name failed (exit $rc)"
}

case "$PHASE" in
start)
    cp "$0" /tmp/bf16_check.sh  # later calls need not carry it
    if [ ! -x /tmp/flexserve ]; then
        { xz -dc "$FLEXSERVE.xz" || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
            "$FLEXSERVE.xz"; } > /tmp/flexserve && chmod +x /tmp/flexserve
    fi
    /tmp/flexserve gpu-check correctness --help | grep -A1 cpu-reference
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$KEEP/card.txt"
    if [ ! -f "$LLAMA7B/config.json" ]; then
        setsid nohup python3 bench/gpu/make_llama7b.py "$LLAMA7B" /dev/null 128 0 > "$KEEP/make7b.log" 2>&1 < /dev/null &
    fi
    ;;
part)
    mkdir -p /tmp/smol-parts
    cp -v ${PARTS_FROM:?}/part_* /tmp/smol-parts/ && ls -la /tmp/smol-parts; tail -3 "$KEEP/make7b.log" 2>/dev/null
    ;;
smol)
    [ -f "$SMOL" ] || cat /tmp/smol-parts/part_a /tmp/smol-parts/part_b /tmp/smol-parts/part_c > "$SMOL"
    sha256sum "$SMOL" | tee "$KEEP/smol.sha256"
    P=bench/gpu/prompts.json
    {
      step correctness-default /tmp/flexserve gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 \
          --data-types fp32,fp16,bf16 --cpu-reference fp32,storage --output "$KEEP/correctness-default.json"
      step correctness-fast $FAST /tmp/flexserve gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 \
          --data-types fp32,fp16,bf16 --cpu-reference fp32,storage --output "$KEEP/correctness-fast.json"
      step correctness-fast-gemvdefault ${FAST/FLEXSERVE_CUDA_GEMV_VARIANT=w8/FLEXSERVE_CUDA_GEMV_VARIANT=default} /tmp/flexserve gpu-check \
          correctness --model "$SMOL" --prompts $P --new-tokens 32 --data-types fp16,bf16 --cpu-reference fp32,storage \
          --output "$KEEP/correctness-fast-gemvdefault.json"
    } > "$KEEP/phase-smol.log" 2>&1
    grep -A12 "^type | CPU reference" "$KEEP"/correctness-*.log
    for i in $(seq 1 36); do [ -f "$LLAMA7B/config.json" ] && break; sleep 5; done
    cat "$KEEP/make7b.log"
    {
      step speed7b-default /tmp/flexserve gpu-check speed --model "$LLAMA7B" --data-type fp16 --prompt-tokens 128 \
          --decode-steps 128 --tree-sizes 1,8,16,64 --output "$KEEP/speed7b-default.json"
      step speed7b-fast $FAST /tmp/flexserve gpu-check speed --model "$LLAMA7B" --data-type fp16 --prompt-tokens 128 \
          --decode-steps 128 --tree-sizes 1,8,16,64 --output "$KEEP/speed7b-fast.json"
    } > "$KEEP/phase-7b.log" 2>&1
    grep -h "copy\|roofline\|decode" "$KEEP/phase-7b.log" | grep -v "^\[" | head -20
    tar czf "$OUT/json.tgz" -C "$KEEP" $(cd "$KEEP" && ls *.json 2>/dev/null)
    cp "$KEEP/phase-smol.log" "$KEEP/phase-7b.log" "$KEEP/status.tsv" "$KEEP/card.txt" "$KEEP/make7b.log" "$OUT/" 2>/dev/null
    ;;
esac
