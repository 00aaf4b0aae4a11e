#!/usr/bin/env bash
# Choosing the CUDA backend's default execution (issue 7): LLaMA-7B-shape fp16 decode vs the copy roofline, SmolLM2
# greedy tokens vs the CPU, speculative SmolLM2 + ssms/smollm2-draft-a on the GPU, for the built-in default ("default",
# no variable: since 2026-12-02 GEMV launch variant w4 + graphs + attention 3 + norm/RoPE 2), cuBLAS (the default
# before, spelled out as $OLD), the candidate C = $CAND (the same with the GEMV's base launch variant, spelled out),
# and C with each other GEMV launch variant (w8, w4, w2, u8) and the default with FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64.
# The 2026-12-02 run (bench/gpu/results/default-candidates/) predates that default: it used a trial build whose
# built-in default was C, and its "default" rows are C (with this script's settings: the "c" rows). Every JSON
# records the execution it ran ("execution"). bench/gpu/default_w4_check.sh is the short confirmation of the new
# default (bench/gpu/results/default-w4/). The payload (executable 21 MB, SmolLM2 GGUF 98 MB, draft GGUF 23 MB) reaches a warm machine in four
# carried folders (a call carries 64 MiB), one per phase:
#   PHASE=a  executable ($CARRY/flexserve.xz), GGUF part; starts writing the random LLaMA-7B model (setsid); selftests
#   PHASE=b  GGUF part; 7B speeds (waits for the model writer)
#   PHASE=c  GGUF part; joins the GGUF; SmolLM2 correctness and speed
#   PHASE=d  draft GGUF; speculative
# The 2026-12-02 run: a (executable + 18.5 MB), b (40 MB; its 7B speeds failed: the wait then looked for config.json,
# which the writer saves before the shards), c (39.9 MB), then d followed by b again (CARRY=.gpu/i7d/d) in the last call.
# Each phase leaves its logs/JSON in /tmp/defcheck (kept while the machine is warm) and returns them as $OUT/<phase>.tgz.
set -uo pipefail
CARRY=${CARRY:?folder carried for this phase}
OUT=${OUT:-/tmp/defcheck-out}
KEEP=/tmp/defcheck
# The settings: OLD = cuBLAS (the default before 2026-12-02), spelled out; CAND = C, spelled out; the executable's
# default (C + w4) runs with no variable.
OLD="FLEXSERVE_CUDA_GEMV=0 FLEXSERVE_CUDA_GRAPHS=0 FLEXSERVE_CUDA_ATTENTION=1 FLEXSERVE_CUDA_NORM_ROPE=1"
CAND=${CAND-FLEXSERVE_CUDA_GEMV=1 FLEXSERVE_CUDA_GEMV_VARIANT=default FLEXSERVE_CUDA_GRAPHS=1 FLEXSERVE_CUDA_ATTENTION=3 FLEXSERVE_CUDA_NORM_ROPE=2}

source bench/gpu/steps.sh

cp -v "$CARRY"/part_* /tmp/smol-parts/ 2>/dev/null
case "$PHASE" in
a)
    [ -x "$FLEXSERVE" ] || { xz -dc "$CARRY/flexserve.xz" > "$FLEXSERVE" && chmod +x "$FLEXSERVE"; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$KEEP/card.txt"
    if [ ! -f "$LLAMA7B/config.json" ]; then
        setsid nohup python3 bench/gpu/make_llama7b.py "$LLAMA7B" /dev/null 128 0 > "$KEEP/make7b.log" 2>&1 < /dev/null &
    fi
    {
      step selftest-env "$FLEXSERVE" gpu-check selftest
      step selftest-c $CAND "$FLEXSERVE" gpu-check selftest
      step selftest-cublas "$FLEXSERVE" gpu-check selftest --variant cublas
      step selftest-old-env $OLD "$FLEXSERVE" gpu-check selftest
    } > "$KEEP/phase-a.log" 2>&1
    grep -h "execution\|FAIL\|max\|^fp\|^bf" "$KEEP/phase-a.log" | head -40
    back
    ;;
b)
    # config.json is written before the shards: wait for the writer's last line.
    for i in $(seq 1 100); do grep -q "^wrote" "$KEEP/make7b.log" 2>/dev/null && break; sleep 3; done
    cat "$KEEP/make7b.log"
    {
      big() { local name=$1; shift; step "speed7b-$name" "$@" "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 \
          --prompt-tokens 128 --decode-steps 128 --tree-sizes 1,8,16,32,64 --output "$KEEP/speed7b-$name.json"; }
      big default
      big c $CAND
      big old $OLD
      big w8 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=w8
      big w4 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=w4
      big w2 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=w2
      big u8 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=u8
      big default-gemv64 FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64
      big default-again
    } > "$KEEP/phase-b.log" 2>&1
    python3 - "$KEEP" <<'PY'
import glob, json, os, sys
for f in sorted(glob.glob(sys.argv[1] + "/speed7b-*.json")):
    r = json.load(open(f))
    v = {x["treeTokens"]: x["milliseconds"] for x in r.get("verify", [])}
    print("%-28s %-34s %7.1f tok/s  roofline %6.1f  %5.1f%%  copy %.0f GB/s  verify ms %s" % (os.path.basename(f)[8:-5], r["execution"],
          r["decodeStepsPerSecond"], r["rooflineStepsPerSecond"], 100 * r["fractionOfRoofline"], r["copyBytesPerSecond"] / 1e9,
          " ".join("%d:%.2f" % kv for kv in sorted(v.items()))))
PY
    back
    ;;
c)
    [ -f "$SMOL" ] || cat /tmp/smol-parts/part_a /tmp/smol-parts/part_b /tmp/smol-parts/part_c > "$SMOL"
    sha256sum "$SMOL" | tee "$KEEP/smol.sha256"
    {
      cor() { local name=$1 types=$2 refs=$3; shift 3; step "correctness-$name" "$@" "$FLEXSERVE" gpu-check correctness --model "$SMOL" \
          --prompts $P --new-tokens 32 --data-types $types --cpu-reference $refs --output "$KEEP/correctness-$name.json"; }
      cor default fp32,fp16,bf16 fp32,storage
      cor c fp32,fp16 fp32 $CAND
      cor w4 fp32,fp16 fp32 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=w4
      cor w2 fp32,fp16 fp32 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=w2
      cor u8 fp32,fp16 fp32 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=u8
      cor w8 fp32,fp16 fp32 $CAND FLEXSERVE_CUDA_GEMV_VARIANT=w8
      cor old fp32,fp16 fp32 $OLD
      for s in default old; do
        E=; [ $s = old ] && E=$OLD
        step smol-speed-$s $E "$FLEXSERVE" gpu-check speed --model "$SMOL" --data-type fp16 --prompt-tokens 128 --decode-steps 256 \
            --tree-sizes 1,4,8,16 --output "$KEEP/smol-speed-$s.json"
      done
    } > "$KEEP/phase-c.log" 2>&1
    grep -h "^== \|^type\|^fp\|^bf\|identical" "$KEEP/phase-c.log" | head -60
    back
    ;;
d)
    mkdir -p /tmp/draft-a && cp ssms/smollm2-draft-a/config.json /tmp/draft-a/ && cp "$CARRY/model.gguf" /tmp/draft-a/model.gguf
    ls -la /tmp/draft-a
    {
      spec() { local name=$1; shift; step "spec-$name" "$@" "$FLEXSERVE" gpu-check speculative --model "$SMOL" --ssm-model /tmp/draft-a \
          --prompts $P --num-prompts 8 --max-new-tokens 128 --trees chain4,chain8,flexflow8 --output "$KEEP/spec-$name.json"; }
      spec default
      spec c $CAND
      spec default-gemv64 FLEXSERVE_CUDA_GEMV_MAX_TOKENS=64
      spec old $OLD
      for v in w4 w2 u8 w8; do spec $v $CAND FLEXSERVE_CUDA_GEMV_VARIANT=$v; done
    } > "$KEEP/phase-d.log" 2>&1
    grep -h "^== \||" "$KEEP/phase-d.log" | head -40
    back
    ;;
esac
cat "$KEEP/status.tsv"
