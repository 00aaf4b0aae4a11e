#!/usr/bin/env bash
# Issue 7's remaining GPU checks (int8/int4 weights, device sampling, --offload, bf16 against a bf16 CPU), split into
# phases so the SmolLM2 GGUF (98 MB) can reach a warm GPU machine in parts between them (a call carries 64 MiB):
#   PHASE=gpu      selftests of the new paths, the device sampler's chi-square check; starts writing the random
#                  LLaMA-7B-shaped model in the background (setsid: it outlives this call on a warm machine)
#   PHASE=part     copies the carried GGUF part(s) (PARTS_FROM, a folder) to /tmp/smol-parts
#   PHASE=smol     joins the parts; SmolLM2 greedy correctness GPU vs CPU with the same int8/int4 (and bf16) weights;
#                  SmolLM2 int8/int4 decode speed
#   PHASE=7b       7B-shape decode with int8 and int4 weights vs the roofline of the bytes they stream; fp16 with
#                  --offload vs the host-to-device bandwidth measured in the same run
# Logs and JSON go to $OUT (the device tool's return folder) and /tmp/issue7 (kept while the machine is warm).
# Steps without FLEXSERVE_CUDA_* variables run the built-in default: since 2026-12-02 GEMV (launch variant w4) +
# graphs + attention 3 + norm/RoPE 2; the 2026-12-01 runs (results/issue7-run*) ran them with cuBLAS, the default
# then: for that, put $CUBLAS in front of a step. FAST is the fastest dense setting (the default with GEMV w8);
# selftest --variant NAME sets each part itself (int8 = cuBLAS + int8 weights).
set -uo pipefail
FLEXSERVE=${FLEXSERVE:-.gpu/flexserve}
OUT=${OUT:-/tmp/issue7-out}
KEEP=/tmp/issue7
LLAMA7B=${LLAMA7B:-/tmp/flexserve-llama7b-random}
SMOL=/tmp/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$OUT" "$KEEP"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ ! -x "$FLEXSERVE" ] && [ -x /tmp/flexserve ]; then cp /tmp/flexserve "$FLEXSERVE"; fi
if [ "${PHASE}" != part ]; then
    source bench/gpu/unpack.sh
    cp -f "$FLEXSERVE" /tmp/flexserve 2>/dev/null
fi
FAST="FLEXSERVE_CUDA_GEMV=1 FLEXSERVE_CUDA_GEMV_VARIANT=w8 FLEXSERVE_CUDA_GRAPHS=1 FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2"
CUBLAS="FLEXSERVE_CUDA_GEMV=0 FLEXSERVE_CUDA_GRAPHS=0 FLEXSERVE_CUDA_ATTENTION=1 FLEXSERVE_CUDA_NORM_ROPE=1"

step() {  # NAME [VAR=value ...] COMMAND...: runs with a time limit; log to $OUT/NAME.log and $KEEP
    local name=$1; shift
    echo; echo "== $name"
    local start=$SECONDS
    timeout -k 10 "${STEP_TIMEOUT:-300}" env "$@" 2>&1 | tee "$KEEP/$name.log"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$KEEP/status.tsv"
    [ "$rc" = 0 ] || echo "!! $name failed (exit $rc)"
}
collect() { cp "$KEEP"/status.tsv "$OUT"/ 2>/dev/null; for f in "$@"; do [ -f "$KEEP/$f" ] && cp "$KEEP/$f" "$OUT/"; done; }

case "$PHASE" in
gpu)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$KEEP/card.txt"
    if [ ! -f "$LLAMA7B/config.json" ]; then
        setsid nohup python3 bench/gpu/make_llama7b.py "$LLAMA7B" /dev/null 128 0 > "$KEEP/make7b.log" 2>&1 < /dev/null &
    fi
    { for v in int8 int4 gemv+graphs+attn3+nr2+int8 gemv+graphs+attn3+nr2+int4 offload int8+offload; do
        step "selftest-$v" "$FLEXSERVE" gpu-check selftest --variant "$v"
      done
      step sampler "$FLEXSERVE" gpu-check sampler --draws 200000 --output "$KEEP/sampler.json"
      step qgemv "$FLEXSERVE" gpu-check qgemv --tokens 1,8 --output "$KEEP/qgemv.json"
      # The launch variant with the least time over the five 7B products at 1 token, per format.
      python3 - "$KEEP" <<'PY'
import json, sys, collections
r = json.load(open(sys.argv[1] + "/qgemv.json"))
total = collections.defaultdict(float)
for t in r["timings"]:
    if t["tokens"] == 1: total[(t["format"], t["variant"])] += t["microsecondsPerCall"]
for fmt in ("int8Group", "int4Group"):
    best = min((v, k[1]) for k, v in total.items() if k[0] == fmt)
    print(fmt, "best qgemv variant", best[1], "%.1f us over the 5 shapes;" % best[0],
          ", ".join("%s %.1f" % (k[1], v) for k, v in sorted(total.items()) if k[0] == fmt))
    open(sys.argv[1] + "/best-" + fmt[:4], "w").write(best[1])
PY
    } > "$KEEP/phase-gpu.log" 2>&1
    cat "$KEEP/phase-gpu.log"
    cp "$KEEP/phase-gpu.log" "$KEEP/sampler.json" "$KEEP/qgemv.json" "$OUT/" 2>/dev/null; collect card.txt
    ;;
part)
    mkdir -p /tmp/smol-parts
    cp -v ${PARTS_FROM:?}/part_* /tmp/smol-parts/ && ls -la /tmp/smol-parts; tail -3 "$KEEP/make7b.log" 2>/dev/null
    ;;
smol)
    [ -f "$SMOL" ] || cat /tmp/smol-parts/part_a /tmp/smol-parts/part_b /tmp/smol-parts/part_c > "$SMOL"
    sha256sum "$SMOL" | tee "$KEEP/smol.sha256"
    P=bench/gpu/prompts.json
    B8=$(cat "$KEEP/best-int8" 2>/dev/null || echo s1); B4=$(cat "$KEEP/best-int4" 2>/dev/null || echo s1)
    {
      step correctness-int8 "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 --data-types fp32,fp16 \
          --weight-format int8 --output "$KEEP/correctness-int8.json"
      step correctness-int4 "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 --data-types fp32,fp16 \
          --weight-format int4 --output "$KEEP/correctness-int4.json"
      step correctness-int8-$B8 FLEXSERVE_CUDA_QGEMV=$B8 "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 \
          --data-types fp32,fp16 --weight-format int8 --output "$KEEP/correctness-int8-$B8.json"
      step correctness-int4-$B4 FLEXSERVE_CUDA_QGEMV=$B4 "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 \
          --data-types fp32,fp16 --weight-format int4 --output "$KEEP/correctness-int4-$B4.json"
      step correctness-int8-fast $FAST "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 --data-types fp16 \
          --weight-format int8 --output "$KEEP/correctness-int8-fast.json"
      step correctness-bf16-cpu-bf16 "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 --data-types bf16 \
          --weight-format bf16 --output "$KEEP/correctness-bf16.json"
      # Device sampling through the request manager (16 prompts in one batch): on (default) vs off (host rows);
      # greedy must match exactly, sampled (same seed, so the same uniforms) up to boundary roundings.
      for s in 1 0; do
        step incr-greedy-dev$s FLEXSERVE_CUDA_SAMPLING=$s "$FLEXSERVE" incr-decoding --model "$SMOL" --device cuda --data-type fp32 \
            --prompt $P --max-new-tokens 32 --output-file "$KEEP/incr-greedy-$s.txt"
        step incr-sample-dev$s FLEXSERVE_CUDA_SAMPLING=$s "$FLEXSERVE" incr-decoding --model "$SMOL" --device cuda --data-type fp32 \
            --prompt $P --max-new-tokens 32 --do-sample --seed 3 --temperature 0.8 --topp 0.9 --output-file "$KEEP/incr-sample-$s.txt"
      done
      for m in greedy sample; do
        echo "device sampling $m: $(diff <(grep -vi 'latency\|time\|second' "$KEEP/incr-$m-1.txt") <(grep -vi 'latency\|time\|second' "$KEEP/incr-$m-0.txt") | grep -c '^<') of $(wc -l < "$KEEP/incr-$m-1.txt") output lines differ from host sampling"
      done
      for f in int8 int4; do
        B=$(cat "$KEEP/best-$f" 2>/dev/null || echo s1)
        step smol-speed-$f FLEXSERVE_CUDA_QGEMV=$B $FAST "$FLEXSERVE" gpu-check speed --model "$SMOL" --data-type fp16 --weight-format $f --prompt-tokens 128 \
            --decode-steps 256 --tree-sizes 1,8 --output "$KEEP/smol-speed-$f.json"
      done
    } > "$KEEP/phase-smol.log" 2>&1
    cat "$KEEP/phase-smol.log"
    tar czf "$OUT/smol-json.tgz" -C "$KEEP" $(cd "$KEEP" && ls correctness-*.json smol-speed-*.json incr-*.txt 2>/dev/null)
    cp "$KEEP/phase-smol.log" "$OUT/"; collect
    ;;
7b)
    for i in $(seq 1 60); do [ -f "$LLAMA7B/config.json" ] && break; sleep 5; done
    cat "$KEEP/make7b.log"
    {
      for f in int8 int4; do
        B=$(cat "$KEEP/best-$f" 2>/dev/null || echo s1)
        step speed7b-$f FLEXSERVE_CUDA_QGEMV=$B $FAST "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --weight-format $f --prompt-tokens 128 \
            --decode-steps 128 --tree-sizes 1,8,16,64 --output "$KEEP/speed7b-$f.json"
      done
      [ "${SKIP_OFFLOAD:-0}" = 1 ] || step speed7b-offload FLEXSERVE_CUDA_GEMV=1 FLEXSERVE_CUDA_GEMV_VARIANT=w8 FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2 \
          "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --offload --prompt-tokens 128 --decode-steps 16 --tree-sizes 1 \
          --output "$KEEP/speed7b-offload.json"
    } > "$KEEP/phase-7b.log" 2>&1
    cat "$KEEP/phase-7b.log"
    tar czf "$OUT/7b-json.tgz" -C "$KEEP" $(cd "$KEEP" && ls speed7b-*.json 2>/dev/null)
    cp "$KEEP/phase-7b.log" "$OUT/"; collect
    ;;
esac
