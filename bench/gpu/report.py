"""Combines the GPU check's JSON files into one table and one JSON. Usage: report.py RESULTS_DIR"""
import json, os, sys

folder = sys.argv[1]
def load(name):
    path = os.path.join(folder, name)
    try:
        return json.load(open(path)) if os.path.exists(path) else None
    except ValueError:
        return None

status = []
if os.path.exists(os.path.join(folder, "status.tsv")):
    status = [line.rstrip("\n").split("\t") for line in open(os.path.join(folder, "status.tsv")) if line.strip()]
# Plain names ("correctness", "speed") are the built-in default execution (GEMV w4 + graphs + attention 3 + norm/RoPE 2
# since 2026-12-02; cuBLAS in results from before), "-cublas" the cuBLAS execution spelled out.
names = ["correctness", "correctness-cublas", "correctness-graphs", "correctness-gemv-graphs", "correctness-all", "smol-speed-default",
         "smol-speed-cublas", "smol-speed-gemv", "smol-speed-graphs", "smol-speed-gemv-graphs", "smol-speed-all", "spec-default",
         "spec-cublas", "spec-all", "spec-gemv-graphs", "spec-gemv", "speed", "speed-cublas", "speed-gemv", "speed-gemv-graphs", "speed-all", "hf",
         "correctness-int8", "correctness-int4", "sampler", "speed-int8", "speed-int4", "speed-offload"]
data = {n: load(n + ".json") for n in names}
summary = {"steps": [{"name": s[0], "exit": s[1], "seconds": int(s[2]) if s[2].isdigit() else s[2]} for s in status], **data}
print("\n=== FlexServe GPU check ===")
card = os.path.join(folder, "card.txt")
if os.path.exists(card):
    print("card:", open(card).read().strip())
if status:
    print("steps: " + ", ".join(f"{s[0]} {'ok' if s[1] == '0' else ('SKIPPED' if s[1] == 'skipped' else 'FAILED(' + s[1] + ')')} {s[2]}s"
                                for s in status))

for name in ["correctness", "correctness-cublas", "correctness-graphs", "correctness-gemv-graphs", "correctness-all", "correctness-int8", "correctness-int4"]:
    rows = data[name]
    if not rows:
        continue
    weights = rows[0].get("weightFormat") or "f32"
    print(f"(a) SmolLM2-135M greedy decoding, GPU vs CPU ({weights} weights on both sides): {name}")
    print(f"{'type':5} | {'prompts identical':17} | {'min identical prefix':20} | {'max |dlogit|':12} | max |logit|")
    for r in rows:
        print(f"{r['dataType']:5} | {r['promptsFullyIdentical']:>8}/{r['prompts']:<8} | {r['minIdenticalPrefix']:>9}/{r['newTokens']:<10} | "
              f"{r['maxAbsLogitError']:12.5f} | {r['maxAbsLogit']:.2f}")

def speed_rows(title, keys):
    rows = [(k, data[k]) for k in keys if data[k]]
    if not rows:
        return
    print(title)
    sizes = sorted({v["treeTokens"] for _, s in rows for v in s["verify"]})
    print(f"{'run':24} | {'execution':16} | {'decode tok/s':12} | {'of roofline':11} | graphs cap/replay | verify ms " +
          " ".join(f"{n:>6}" for n in sizes))
    for k, s in rows:
        ms = {v["treeTokens"]: v["milliseconds"] for v in s["verify"]}
        graphs = f"{s.get('graphCaptures') or 0}/{s.get('graphReplays') or 0}" + (" FAILED" if s.get("graphFailure") else "")
        print(f"{k:24} | {s.get('execution') or s['smallStepKernel']:16} | {s['decodeStepsPerSecond']:12.1f} | "
              f"{100 * s['fractionOfRoofline']:10.1f}% | {graphs:17} | " + " ".join(f"{ms.get(n, float('nan')):6.2f}" for n in sizes))

speed_rows("(d) SmolLM2-135M fp16, batch-1 decode and verify per execution",
           ["smol-speed-default", "smol-speed-cublas", "smol-speed-gemv", "smol-speed-graphs", "smol-speed-gemv-graphs", "smol-speed-all"])

for name in ["spec-default", "spec-cublas", "spec-all", "spec-gemv-graphs", "spec-gemv"]:
    rows = data[name]
    if not rows:
        continue
    print(f"(e) speculative inference on the GPU (LLM and SSM there), greedy, batch 1: {name}")
    print(f"{'tree':9} | {'execution':16} | {'incr tok/s':10} | {'spec tok/s':10} | speedup | tokens/LLM step | drafting s | verifying s | mismatches")
    for r in rows:
        res = {m["mode"]: m for m in r["report"]["results"]}
        incr, spec = res.get("incremental"), res.get("speculative")
        if not incr or not spec:
            continue
        print(f"{r['tree']:9} | {r['llmExecution']:16} | {incr['tokensPerSecond']:10.1f} | {spec['tokensPerSecond']:10.1f} | "
              f"{r['report']['speedup']:6.2f}x | {spec['tokensPerLLMStep']:15.2f} | {spec['draftingSeconds']:10.2f} | "
              f"{spec['verifyingSeconds']:11.2f} | {spec['mismatches']}")

big = ["speed", "speed-cublas", "speed-gemv", "speed-gemv-graphs", "speed-all"]
speed = next((data[k] for k in big if data[k]), None)
hf = data["hf"]
if speed:
    print(f"(b) LLaMA-7B shape, random fp16 weights, batch 1, on {speed['device']}: copy bandwidth (read+write) "
          f"{speed['copyBytesPerSecond'] / 1e9:.0f} GB/s, weights {speed['weightBytes'] / 1e9:.2f} GB "
          f"-> roofline {speed['rooflineStepsPerSecond']:.1f} steps/s")
    speed_rows("(b, c) decode tokens/s and verify ms per tree size, per execution", big)
    if hf:
        best = max((data[k] for k in big if data[k]), key=lambda s: s["decodeStepsPerSecond"])
        ratio = best["decodeStepsPerSecond"] / hf["tokens_per_second"]
        summary["flexserve_best_over_hf"] = ratio
        print(f"HF transformers generate {hf['tokens_per_second']:.1f} tokens/s (torch {hf['torch']}, transformers {hf['transformers']}) "
              f"-> best FlexServe/HF {ratio:.2f}x")
sampler = data["sampler"]
if sampler:
    print("(f) sampling on the GPU vs the CPU Sampler (chi-square over many draws; same token as the exact-sum walk)")
    for c in sampler["cases"]:
        print(f"{c['name']:24} | support {c['support']:6} | chi2 {c['chiSquare']:8.1f} / {c['degreesOfFreedom']:5} (p {c['pValue']:.3f}) | "
              f"same token {c['sameTokenAsExactFraction']:.5f} | outside {c['outsideExactSupport']} | {c['microsecondsPerRow']:.0f} us/row | "
              f"{'ok' if c['passed'] else 'FAILED'}")
    print(f"greedy: {sampler['argmaxIdentical']}/{sampler['argmaxRows']} rows equal to Sampler.argmax")
for k in ["speed-int8", "speed-int4"]:
    q = data[k]
    if q:
        print(f"(f) 7B {q.get('weightFormat')}: {q['decodeStepsPerSecond']:.1f} tok/s, reads {q['decodeReadBytes'] / 1e9:.3f} GB/step -> "
              f"{100 * q['fractionOfReadRoofline']:.1f}% of its roofline ({q['rooflineOfReadBytesStepsPerSecond']:.1f} steps/s)")
o = data["speed-offload"]
if o:
    print(f"(f) 7B fp16 --offload: {o['decodeStepsPerSecond']:.2f} tok/s; {o['offloadStreamedBytes'] / 1e9:.2f} GB streamed per step at "
          f"{o['hostToDeviceBytesPerSecond'] / 1e9:.1f} GB/s host-to-device -> {100 * o['fractionOfHostToDeviceRoofline']:.1f}% of "
          f"{o['hostToDeviceRooflineStepsPerSecond']:.2f} steps/s")
out = os.path.join(folder, "gpu_check.json")
json.dump(summary, open(out, "w"), indent=2)
print(f"wrote {out}")
