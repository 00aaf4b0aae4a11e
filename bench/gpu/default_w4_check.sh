#!/usr/bin/env bash
# Confirms the CUDA backend's new default execution (GEMV launch variant w4 for steps of <= 8 tokens, CUDA graphs,
# attention 3, norm/RoPE 2; 2026-12-02) with the committed code and NO FLEXSERVE_CUDA_* variable set (each step
# clears them): selftests (default; default with --offload; cuBLAS for reference via --variant), LLaMA-7B-shape fp16
# decode vs the copy roofline, 7B fp16 --offload decode (16 steps), SmolLM2 greedy tokens vs the CPU (fp32, fp16;
# 16 prompts x 32 tokens). The executable (21 MB xz) and the SmolLM2 GGUF (98 MB, split 19 / 40 / 39 MB as g1 g2 g3)
# reach a warm machine in three calls (a call carries 64 MiB with the working tree), one per phase:
#   PHASE=a  CARRY holds flexserve.xz and g1: selftests, writes the random 7B model, 7B speed and --offload
#   PHASE=b  CARRY holds g2 (only copied)
#   PHASE=c  CARRY holds g3: joins the GGUF; SmolLM2 correctness and batch-1 speed
# Logs and JSON stay in /tmp/dw4 (while the machine is warm) and come back as $OUT/<phase>.tgz.
set -uo pipefail
CARRY=${CARRY:?folder carried for this phase}
OUT=${OUT:-/tmp/dw4-out}
KEEP=/tmp/dw4

source bench/gpu/steps.sh

cp -v "$CARRY"/g[123] /tmp/smol-parts/ 2>/dev/null
case "$PHASE" in
a)
    [ -x "$FLEXSERVE" ] || { xz -dc "$CARRY/flexserve.xz" > "$FLEXSERVE" && chmod +x "$FLEXSERVE"; }
    sha256sum "$FLEXSERVE" | tee "$KEEP/flexserve.sha256"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$KEEP/card.txt"
    if [ ! -f "$LLAMA7B/config.json" ]; then
        setsid nohup python3 bench/gpu/make_llama7b.py "$LLAMA7B" /dev/null 128 0 > "$KEEP/make7b.log" 2>&1 < /dev/null &
    fi
    {
      step selftest-default "$FLEXSERVE" gpu-check selftest
      step selftest-default-offload "$FLEXSERVE" gpu-check selftest --variant gemv+graphs+attn3+nr2+offload
      step selftest-cublas "$FLEXSERVE" gpu-check selftest --variant cublas
      # config.json is written before the shards: wait for the writer's last line.
      for i in $(seq 1 100); do grep -q "^wrote" "$KEEP/make7b.log" 2>/dev/null && break; sleep 3; done
      cat "$KEEP/make7b.log"
      step speed7b-default "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --prompt-tokens 128 --decode-steps 128 \
          --tree-sizes 1,8,16,32,64 --output "$KEEP/speed7b-default.json"
      step speed7b-offload "$FLEXSERVE" gpu-check speed --model "$LLAMA7B" --data-type fp16 --offload --prompt-tokens 128 \
          --decode-steps 16 --tree-sizes 1 --output "$KEEP/speed7b-offload.json"
    } > "$KEEP/phase-a.log" 2>&1
    grep -h "execution\|FAIL\|max |\|^fp\|^bf\|tok/s\|steps/s\|roofline" "$KEEP/phase-a.log" | head -40
    python3 - "$KEEP" <<'PY'
import glob, json, os, sys
for f in sorted(glob.glob(sys.argv[1] + "/speed7b-*.json")):
    r = json.load(open(f))
    v = {x["treeTokens"]: x["milliseconds"] for x in r.get("verify", [])}
    print("%-10s %-32s %7.2f tok/s  roofline %6.1f  %5.1f%%  copy %.0f GB/s  graphs %s/%s  verify ms %s" % (os.path.basename(f)[8:-5],
          r["execution"], r["decodeStepsPerSecond"], r["rooflineStepsPerSecond"], 100 * r["fractionOfRoofline"], r["copyBytesPerSecond"] / 1e9,
          r.get("graphCaptures"), r.get("graphReplays"), " ".join("%d:%.2f" % kv for kv in sorted(v.items()))))
    if r.get("offloadStreamedBytes"):
        print("   offload: %.2f GB streamed per step at %.1f GB/s host-to-device -> %.1f%% of %.2f steps/s" % (r["offloadStreamedBytes"] / 1e9,
              r["hostToDeviceBytesPerSecond"] / 1e9, 100 * r["fractionOfHostToDeviceRoofline"], r["hostToDeviceRooflineStepsPerSecond"]))
PY
    back
    ;;
b)
    ls -l /tmp/smol-parts
    ;;
c)
    [ -f "$SMOL" ] || cat /tmp/smol-parts/g1 /tmp/smol-parts/g2 /tmp/smol-parts/g3 > "$SMOL"
    sha256sum "$SMOL" | tee "$KEEP/smol.sha256"
    {
      step correctness-default "$FLEXSERVE" gpu-check correctness --model "$SMOL" --prompts $P --new-tokens 32 \
          --data-types fp32,fp16 --cpu-reference fp32 --output "$KEEP/correctness-default.json"
      step smol-speed-default "$FLEXSERVE" gpu-check speed --model "$SMOL" --data-type fp16 --prompt-tokens 128 --decode-steps 256 \
          --tree-sizes 1,4,8,16 --output "$KEEP/smol-speed-default.json"
    } > "$KEEP/phase-c.log" 2>&1
    grep -h "^== \|^type\|^fp\|^bf\|identical\|execution" "$KEEP/phase-c.log" | head -40
    back
    ;;
esac
cat "$KEEP/status.tsv" 2>/dev/null
